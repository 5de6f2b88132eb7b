package tlscert

import (
	"os"
	"path/filepath"
	"testing"
)

// Adversarial review of issue 19 (review19), the certificate store.

// DEFECT 8. Watch watches the directories of the configured paths only. A
// configured path that is a symlink into another directory — the usual
// way to point a service at certbot's output,
// /etc/zkgate/tls/api.crt -> /etc/letsencrypt/live/api/fullchain.pem,
// itself a link certbot re-points into ../../archive at each renewal — is
// renewed by a change in a directory nobody watches: the renewal is not
// picked up until a SIGHUP or POST /api/reload, though the README says
// certbot's symlink swap is seen. Fix: watch each directory along the
// symlink chain of every file too (filepath.EvalSymlinks hop by hop, or
// at least the final target's directory), re-resolving the chain after
// each reload.
func TestReview19DefectWatchMissesSymlinkIntoAnotherDirectory(t *testing.T) {
	ca := newCA(t, "test CA")
	root := t.TempDir()
	archive := filepath.Join(root, "letsencrypt", "archive", "api")
	live := filepath.Join(root, "letsencrypt", "live", "api")
	conf := filepath.Join(root, "zkgate", "tls")
	for _, d := range []string{archive, live, conf} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// certbot's layout: live/ links to numbered files in archive/.
	issue := func(n string) leaf {
		l := ca.issue(t, leafSpec{dns: []string{"api.test"}})
		writeFile(t, filepath.Join(archive, "fullchain"+n+".pem"), l.certPEM)
		writeFile(t, filepath.Join(archive, "privkey"+n+".pem"), l.keyPEM)
		return l
	}
	// relink re-points live/name at ../../archive/api/target atomically,
	// as certbot does (a new link renamed over the old one).
	relink := func(name, target string) {
		tmp := filepath.Join(live, "."+name+".new")
		if err := os.Symlink(filepath.Join("..", "..", "archive", "api", target), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(live, name)); err != nil {
			t.Fatal(err)
		}
	}
	first := issue("1")
	relink("fullchain.pem", "fullchain1.pem")
	relink("privkey.pem", "privkey1.pem")
	// The gateway's configuration points at its own directory.
	p := Pair{CertFile: filepath.Join(conf, "api.crt"), KeyFile: filepath.Join(conf, "api.key")}
	if err := os.Symlink(filepath.Join(live, "fullchain.pem"), p.CertFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(live, "privkey.pem"), p.KeyFile); err != nil {
		t.Fatal(err)
	}
	s := watched(t, Options{Pairs: []Pair{p}})
	if got := s.Certificates()[0].Serial; got != first.serial {
		t.Fatalf("serving %s, want %s", got, first.serial)
	}

	// certbot renew: new archive files, live/ links re-pointed.
	second := issue("2")
	relink("fullchain.pem", "fullchain2.pem")
	relink("privkey.pem", "privkey2.pem")
	eventually(t, "the renewal made through certbot's live/ links to be reloaded", func() bool {
		return s.Certificates()[0].Serial == second.serial
	})
	if s.Reloads() == 0 {
		t.Fatal("Reloads() = 0 after the renewal was served")
	}
	// What a reload would have read: the files are fine.
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
}

package tlscert

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// watched starts a store over pairs with a watch that ends with the test.
func watched(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	watch(t, s)
	return s
}

// watch watches s until the test ends, and waits for the watch to stop.
func watch(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Watch(t.Context()); err != nil {
		t.Fatalf("Watch: %v", err)
	}
	t.Cleanup(s.Wait) // after t.Context is canceled
}

// awaitServed waits until a new handshake with SNI name is served the
// certificate with the given serial.
func awaitServed(t *testing.T, addr, name, serial string) {
	t.Helper()
	eventually(t, "a new handshake to be served serial "+serial, func() bool {
		return served(t, addr, name) == serial
	})
}

// served returns the serial of the certificate a new handshake with SNI
// name is served.
func served(t *testing.T, addr, name string) string {
	t.Helper()
	got, err := servedSerial(addr, name, 0)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return got
}

// TestWatchReload: a renewed pair renamed into place is served to new
// handshakes while an open connection keeps its certificate; a broken pair
// is refused (old one kept, counted, logged with its path); the fixed pair
// is then served.
func TestWatchReload(t *testing.T) {
	ca := newCA(t, "test CA")
	dir := t.TempDir()
	names := []string{"gw.test"}
	first := ca.issue(t, leafSpec{dns: names})
	p := writePair(t, dir, "gw", first)
	log, hook := logtest.NewNullLogger()
	s := watched(t, Options{Pairs: []Pair{p}, Logger: log})
	srv := startEchoServer(t, s.TLSConfig())

	open, err := dial(srv.addr, &tls.Config{ServerName: "gw.test", RootCAs: ca.pool()})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()

	renewed := ca.issue(t, leafSpec{dns: names, key: first.key})
	writePair(t, dir, "gw", renewed)
	awaitServed(t, srv.addr, "gw.test", renewed.serial)
	if got := open.ConnectionState().PeerCertificates[0].SerialNumber.Text(16); got != first.serial {
		t.Errorf("open connection's certificate changed to %s", got)
	}
	if err := echo(open); err != nil {
		t.Errorf("open connection after the reload: %v", err)
	}
	if got := s.Certificates()[0].Serial; got != renewed.serial {
		t.Errorf("Certificates() serial %s, want %s", got, renewed.serial)
	}
	if s.Reloads() == 0 {
		t.Error("Reloads() = 0 after a reload")
	}

	// A key that does not match: refused, old pair kept.
	failures := s.ReloadFailures()
	other := ca.issue(t, leafSpec{dns: names})
	writeFile(t, p.KeyFile, other.keyPEM)
	eventually(t, "the broken pair to be refused", func() bool { return s.ReloadFailures() > failures })
	if got := served(t, srv.addr, "gw.test"); got != renewed.serial {
		t.Errorf("after a refused reload, served %s, want the previous %s", got, renewed.serial)
	}
	var logged *logrus.Entry
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.ErrorLevel {
			logged = e
		}
	}
	if logged == nil || logged.Data["file"] != p.KeyFile || logged.Data["key"] != "certificates[0].key_file" ||
		!strings.Contains(fmt.Sprint(logged.Data[logrus.ErrorKey]), p.KeyFile) {
		t.Errorf("refused reload logged as %v, want an error naming %s", logged, p.KeyFile)
	}

	// Fixed: the matching certificate follows.
	writeFile(t, p.CertFile, other.certPEM)
	awaitServed(t, srv.addr, "gw.test", other.serial)
	if err := echo(open); err != nil {
		t.Errorf("open connection after the second reload: %v", err)
	}
}

// TestWatchKubernetesSecret: a Secret volume holds tls.crt -> ..data/tls.crt
// and ..data -> a timestamped directory; an update swaps the ..data link.
func TestWatchKubernetesSecret(t *testing.T) {
	ca := newCA(t, "test CA")
	dir := t.TempDir()
	version := func(name string, l leaf) {
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(d, "tls.crt"), l.certPEM)
		writeFile(t, filepath.Join(d, "tls.key"), l.keyPEM)
	}
	symlink := func(target, link string) {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	first := ca.issue(t, leafSpec{dns: []string{"k8s.test"}})
	version("..2026_12_05_00_00_00.000000001", first)
	symlink("..2026_12_05_00_00_00.000000001", filepath.Join(dir, "..data"))
	symlink("..data/tls.crt", filepath.Join(dir, "tls.crt"))
	symlink("..data/tls.key", filepath.Join(dir, "tls.key"))

	s := watched(t, Options{Pairs: []Pair{{filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")}}})
	srv := startEchoServer(t, s.TLSConfig())
	if got := served(t, srv.addr, "k8s.test"); got != first.serial {
		t.Fatalf("served %s, want %s", got, first.serial)
	}

	// What the kubelet does: a new directory, a ..data_tmp link to it renamed
	// over ..data, the old directory removed.
	second := ca.issue(t, leafSpec{dns: []string{"k8s.test"}})
	version("..2026_12_05_00_01_00.000000002", second)
	symlink("..2026_12_05_00_01_00.000000002", filepath.Join(dir, "..data_tmp"))
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..2026_12_05_00_00_00.000000001")); err != nil {
		t.Fatal(err)
	}
	awaitServed(t, srv.addr, "k8s.test", second.serial)
}

// TestReloadDuringLoad: handshakes run without pause while the pair is
// renewed several times; none fails and each renewal is served.
func TestReloadDuringLoad(t *testing.T) {
	ca := newCA(t, "test CA")
	dir := t.TempDir()
	names := []string{"load.test"}
	p := writePair(t, dir, "load", ca.issue(t, leafSpec{dns: names}))
	s := watched(t, Options{Pairs: []Pair{p}})
	srv := startEchoServer(t, s.TLSConfig())

	const workers = 6
	var stop atomic.Bool
	var ok, failed atomic.Int64
	var firstErr atomic.Pointer[string]
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			// Each handshake verifies the chain and the name: a half-loaded
			// pair would fail it.
			cfg := &tls.Config{ServerName: "load.test", RootCAs: ca.pool()}
			for !stop.Load() {
				c, err := dial(srv.addr, cfg)
				if err != nil {
					failed.Add(1)
					msg := err.Error()
					firstErr.CompareAndSwap(nil, &msg)
					continue
				}
				c.Close()
				ok.Add(1)
			}
		})
	}
	const renewals = 4
	for i := range renewals {
		l := ca.issue(t, leafSpec{dns: names, rsa: i%2 == 1})
		writePair(t, dir, "load", l)
		awaitServed(t, srv.addr, "load.test", l.serial)
		before := ok.Load()
		eventually(t, "handshakes to go on after the renewal", func() bool { return ok.Load() > before+workers })
	}
	stop.Store(true)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d handshakes failed during %d renewals; first: %s", n, n+ok.Load(), renewals, *firstErr.Load())
	}
	if n := srv.failed.Load(); n != 0 {
		t.Errorf("%d handshakes failed on the server side; last: %s", n, *srv.lastErr.Load())
	}
	t.Logf("%d handshakes during %d renewals (%d reloads, %d refused)", ok.Load(), renewals, s.Reloads(), s.ReloadFailures())
}

// TestReloadKeepsOldSetWhenAnyPairIsBad: a reload is all or nothing across
// pairs.
func TestReloadKeepsOldSetWhenAnyPairIsBad(t *testing.T) {
	ca := newCA(t, "test CA")
	dir := t.TempDir()
	a1 := ca.issue(t, leafSpec{dns: []string{"a.test"}})
	b1 := ca.issue(t, leafSpec{dns: []string{"b.test"}})
	pa, pb := writePair(t, dir, "a", a1), writePair(t, dir, "b", b1)
	s, err := New(Options{Pairs: []Pair{pa, pb}})
	if err != nil {
		t.Fatal(err)
	}
	srv := startEchoServer(t, s.TLSConfig())

	a2 := ca.issue(t, leafSpec{dns: []string{"a.test"}})
	writePair(t, dir, "a", a2)
	if err := os.Remove(pb.KeyFile); err != nil {
		t.Fatal(err)
	}
	err = s.Reload()
	if err == nil || !strings.HasPrefix(err.Error(), "certificates[1].key_file "+pb.KeyFile+": no such file") {
		t.Fatalf("Reload = %v, want certificates[1].key_file %s: no such file", err, pb.KeyFile)
	}
	if s.ReloadFailures() != 1 || s.Reloads() != 0 {
		t.Errorf("ReloadFailures %d Reloads %d, want 1 and 0", s.ReloadFailures(), s.Reloads())
	}
	if got := served(t, srv.addr, "a.test"); got != a1.serial {
		t.Errorf("a.test served %s after a refused reload, want the old %s", got, a1.serial)
	}
	if got := s.Certificates()[0].Serial; got != a1.serial {
		t.Errorf("Certificates() shows %s after a refused reload, want the old %s", got, a1.serial)
	}

	writePair(t, dir, "b", b1)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := served(t, srv.addr, "a.test"); got != a2.serial {
		t.Errorf("a.test served %s, want %s", got, a2.serial)
	}
}

func TestWatchUnwatchableDirectory(t *testing.T) {
	ca := newCA(t, "test CA")
	dir := t.TempDir()
	p := writePair(t, dir, "a", ca.issue(t, leafSpec{dns: []string{"a.test"}}))
	s, err := New(Options{Pairs: []Pair{p}})
	if err != nil {
		t.Fatal(err)
	}
	// The files are loaded; then their directory goes away.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	err = s.Watch(t.Context())
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("Watch = %v, want an error naming %s", err, dir)
	}
	s.Wait()
}

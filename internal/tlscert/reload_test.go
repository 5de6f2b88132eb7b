package tlscert

import (
	"os"
	"strings"
	"testing"
)

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

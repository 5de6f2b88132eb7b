package tlscert

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

func TestCertificatesExpiry(t *testing.T) {
	ca := newCA(t, "test CA")
	dir := t.TempDir()
	now := time.Now().Truncate(time.Second)
	fresh := ca.issue(t, leafSpec{dns: []string{"fresh.test"}, notAfter: now.Add(90 * 24 * time.Hour)})
	soon := ca.issue(t, leafSpec{rsa: true, dns: []string{"soon.test", "*.soon.test"}, notAfter: now.Add(3 * 24 * time.Hour)})
	expired := ca.issue(t, leafSpec{dns: []string{"expired.test"}, notAfter: now.Add(-24 * time.Hour)})
	pairs := []Pair{writePair(t, dir, "fresh", fresh), writePair(t, dir, "soon", soon), writePair(t, dir, "expired", expired)}

	log, hook := logtest.NewNullLogger()
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	s, err := New(Options{Pairs: pairs, Logger: log, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}

	type flags struct{ soon, expired bool }
	check := func(want ...flags) {
		t.Helper()
		infos := s.Certificates()
		if len(infos) != len(want) {
			t.Fatalf("%d certificates, want %d", len(infos), len(want))
		}
		for i, info := range infos {
			if (flags{info.ExpiresSoon, info.Expired}) != want[i] {
				t.Errorf("%s: ExpiresSoon=%v Expired=%v, want %+v", info.CertFile, info.ExpiresSoon, info.Expired, want[i])
			}
		}
	}
	check(flags{false, false}, flags{true, false}, flags{true, true})

	infos := s.Certificates()
	if got := infos[1]; got.CertFile != pairs[1].CertFile || got.KeyFile != pairs[1].KeyFile ||
		!slices.Equal(got.Names, []string{"soon.test", "*.soon.test"}) || got.Serial != soon.serial ||
		!got.NotAfter.Equal(now.Add(3*24*time.Hour)) || got.Issuer != "CN=test CA" {
		t.Errorf("Certificates()[1] = %+v", got)
	}

	// The warnings of New: one per certificate near or past its end.
	warnings := func() map[string]*logrus.Entry {
		got := make(map[string]*logrus.Entry)
		for _, e := range hook.AllEntries() {
			if e.Level == logrus.WarnLevel {
				got[e.Data["cert_file"].(string)] = e
			}
		}
		return got
	}
	w := warnings()
	if len(w) != 2 || w[pairs[1].CertFile] == nil || w[pairs[2].CertFile] == nil {
		t.Fatalf("warnings for %v, want for %s and %s", w, pairs[1].CertFile, pairs[2].CertFile)
	}
	if e := w[pairs[1].CertFile]; e.Message != "TLS certificate expires soon" ||
		e.Data["not_after"] != now.Add(3*24*time.Hour).UTC().Format(time.RFC3339) ||
		!slices.Equal(e.Data["names"].([]string), []string{"soon.test", "*.soon.test"}) {
		t.Errorf("warning %q %v", e.Message, e.Data)
	}
	if e := w[pairs[2].CertFile]; e.Message != "TLS certificate has expired" {
		t.Errorf("warning %q %v", e.Message, e.Data)
	}

	// Time passes: the fresh one comes within 14 days, the soon one expires;
	// a reload warns about all three.
	clock.Store(now.Add(80 * 24 * time.Hour).UnixNano())
	check(flags{true, false}, flags{true, true}, flags{true, true})
	hook.Reset()
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if w := warnings(); len(w) != 3 {
		t.Errorf("after reload, warnings for %d certificates, want 3", len(w))
	}

	// Certificates returns copies.
	s.Certificates()[1].Names[0] = "changed"
	if s.Certificates()[1].Names[0] != "soon.test" {
		t.Error("Certificates shares its Names with the store")
	}
}

func TestExpiryWarningOption(t *testing.T) {
	ca := newCA(t, "test CA")
	now := time.Now()
	p := writePair(t, t.TempDir(), "a", ca.issue(t, leafSpec{dns: []string{"a.test"}, notAfter: now.Add(20 * 24 * time.Hour)}))
	log, hook := logtest.NewNullLogger()
	s, err := New(Options{Pairs: []Pair{p}, Logger: log, ExpiryWarning: 30 * 24 * time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Certificates()[0].ExpiresSoon {
		t.Error("20 days left, warning at 30: not flagged")
	}
	if e := hook.LastEntry(); e == nil || e.Level != logrus.WarnLevel {
		t.Errorf("no warning logged: %v", e)
	}
}

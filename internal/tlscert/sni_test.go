package tlscert

import (
	"crypto/tls"
	"fmt"
	"testing"
)

// sniFixture is a store with one pair per kind of name.
type sniFixture struct {
	store *Store
	// serials of the pairs, by role
	def, api, wild, cnOnly, sans, dupAPI, rsaWild string
}

func newSNIFixture(t testing.TB) *sniFixture {
	t.Helper()
	ca := newCA(t, "test CA")
	dir := t.TempDir()
	f := &sniFixture{}
	var pairs []Pair
	add := func(name string, spec leafSpec) string {
		l := ca.issue(t, spec)
		pairs = append(pairs, writePair(t, dir, name, l))
		return l.serial
	}
	f.def = add("default", leafSpec{dns: []string{"default.test"}})
	f.api = add("api", leafSpec{dns: []string{"API.Example.com."}})
	f.wild = add("wild", leafSpec{dns: []string{"*.example.com"}})
	f.cnOnly = add("cn", leafSpec{cn: "cn-only.test"})
	f.sans = add("sans", leafSpec{cn: "cn-ignored.test", dns: []string{"san.test"}})
	f.dupAPI = add("dup", leafSpec{dns: []string{"api.example.com"}})
	f.rsaWild = add("rsa", leafSpec{rsa: true, dns: []string{"*.rsa.test", "rsa.test"}})
	s, err := New(Options{Pairs: pairs})
	if err != nil {
		t.Fatal(err)
	}
	f.store = s
	return f
}

// sniCases are server names and the pair that must answer them.
func (f *sniFixture) cases() []struct{ sni, want, why string } {
	return []struct{ sni, want, why string }{
		{"api.example.com", f.api, "exact, the first pair naming it"},
		{"API.EXAMPLE.COM", f.api, "upper-case SNI"},
		{"Api.Example.Com", f.api, "mixed-case SNI"},
		{"www.example.com", f.wild, "wildcard"},
		{"WWW.example.com", f.wild, "wildcard, upper-case SNI"},
		{"a.b.example.com", f.def, "wildcard covers one level only"},
		{"example.com", f.def, "wildcard does not cover its parent"},
		{"cn-only.test", f.cnOnly, "common name when there are no SANs"},
		{"cn-ignored.test", f.def, "common name ignored when there are SANs"},
		{"san.test", f.sans, "SAN"},
		{"rsa.test", f.rsaWild, "RSA, exact"},
		{"x.rsa.test", f.rsaWild, "RSA, wildcard"},
		{"default.test", f.def, "default by name"},
		{"unknown.test", f.def, "unknown name: the default"},
		{"", f.def, "no SNI: the default"},
	}
}

func TestPick(t *testing.T) {
	f := newSNIFixture(t)
	snap := f.store.snap.Load()
	cases := append(f.cases(), []struct{ sni, want, why string }{
		{"api.example.com.", f.api, "trailing dot"},
		{"www.example.com.", f.wild, "wildcard, trailing dot"},
		{".example.com", f.def, "empty first label"},
		{".", f.def, "only a dot"},
		{"*.example.com", f.wild, "literal wildcard name"},
	}...)
	for _, tc := range cases {
		got := snap.pick(tc.sni).Leaf.SerialNumber.Text(16)
		if got != tc.want {
			t.Errorf("pick(%q) (%s) = serial %s, want %s", tc.sni, tc.why, got, tc.want)
		}
	}
}

// TestSNIHandshake runs each case through a real handshake over loopback,
// with TLS 1.2 and with TLS 1.3.
func TestSNIHandshake(t *testing.T) {
	f := newSNIFixture(t)
	srv := startEchoServer(t, f.store.TLSConfig())
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, tc := range f.cases() {
			t.Run(fmt.Sprintf("%s/%s", tls.VersionName(version), tc.why), func(t *testing.T) {
				c, err := dial(srv.addr, &tls.Config{ServerName: tc.sni, InsecureSkipVerify: true, MaxVersion: version})
				if err != nil {
					t.Fatalf("handshake with SNI %q: %v", tc.sni, err)
				}
				defer c.Close()
				cs := c.ConnectionState()
				if cs.Version != version {
					t.Errorf("negotiated %s", tls.VersionName(cs.Version))
				}
				if got := cs.PeerCertificates[0].SerialNumber.Text(16); got != tc.want {
					t.Errorf("SNI %q: served serial %s, want %s", tc.sni, got, tc.want)
				}
			})
		}
	}
}

// TestSNIHandshakeVerifies checks that a client verifying the chain and the
// name accepts what is served, RSA and ECDSA alike, and that ALPN is offered.
func TestSNIHandshakeVerifies(t *testing.T) {
	ca := newCA(t, "test CA")
	dir := t.TempDir()
	ec := writePair(t, dir, "ec", ca.issue(t, leafSpec{dns: []string{"ec.test"}}))
	rs := writePair(t, dir, "rsa", ca.issue(t, leafSpec{rsa: true, dns: []string{"rsa.test"}}))
	s, err := New(Options{Pairs: []Pair{ec, rs}, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := startEchoServer(t, s.TLSConfig())
	for _, name := range []string{"ec.test", "rsa.test"} {
		c, err := dial(srv.addr, &tls.Config{ServerName: name, RootCAs: ca.pool(), NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
			t.Errorf("%s: ALPN %q, want h2", name, p)
		}
		c.Close()
	}
}

func TestMinVersion(t *testing.T) {
	ca := newCA(t, "test CA")
	p := writePair(t, t.TempDir(), "a", ca.issue(t, leafSpec{dns: []string{"a.test"}}))
	s, err := New(Options{Pairs: []Pair{p}, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	srv := startEchoServer(t, s.TLSConfig())
	if _, err := servedSerial(srv.addr, "a.test", tls.VersionTLS12); err == nil {
		t.Error("a TLS 1.2 client was served with MinVersion TLS 1.3")
	}
	if _, err := servedSerial(srv.addr, "a.test", 0); err != nil {
		t.Errorf("a TLS 1.3 client: %v", err)
	}
}

// TestPickAllocs: choosing a certificate allocates nothing when the server
// name is lower case (crypto/tls hands names as the client sent them).
func TestPickAllocs(t *testing.T) {
	f := newSNIFixture(t)
	cfg := f.store.TLSConfig()
	for _, name := range []string{"api.example.com", "www.example.com", "a.b.example.com", "", "unknown.test"} {
		hello := &tls.ClientHelloInfo{ServerName: name}
		if n := testing.AllocsPerRun(1000, func() { _, _ = cfg.GetCertificate(hello) }); n != 0 {
			t.Errorf("GetCertificate(%q): %v allocations, want 0", name, n)
		}
	}
}

func BenchmarkGetCertificate(b *testing.B) {
	f := newSNIFixture(b)
	cfg := f.store.TLSConfig()
	for _, name := range []string{"api.example.com", "www.example.com", "unknown.test", "API.EXAMPLE.COM"} {
		b.Run(name, func(b *testing.B) {
			hello := &tls.ClientHelloInfo{ServerName: name}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if c, _ := cfg.GetCertificate(hello); c == nil {
						b.Fatal("nil certificate")
					}
				}
			})
		})
	}
}

// BenchmarkHandshake compares full TLS 1.3 handshakes (ECDSA P-256, over
// loopback, one echo each) served by a tls.Config with a fixed certificate
// and by a Store's: the store's choice adds nothing measurable.
func BenchmarkHandshake(b *testing.B) {
	ca := newCA(b, "test CA")
	l := ca.issue(b, leafSpec{dns: []string{"bench.test"}})
	p := writePair(b, b.TempDir(), "bench", l)
	s, err := New(Options{Pairs: []Pair{p}})
	if err != nil {
		b.Fatal(err)
	}
	cert, err := Check(p)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
	}{
		{"static", &tls.Config{Certificates: []tls.Certificate{*cert}}},
		{"store", s.TLSConfig()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv := startEchoServer(b, tc.cfg)
			client := &tls.Config{ServerName: "bench.test", RootCAs: ca.pool()}
			b.ReportAllocs()
			for b.Loop() {
				c, err := dial(srv.addr, client)
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

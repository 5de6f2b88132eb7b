package tlscert

import (
	"crypto/tls"
	"path/filepath"
	"testing"
)

// clientAuthFixture is a store asking for client certificates of caA, and
// client certificates from caA and from caB.
type clientAuthFixture struct {
	caA, caB, serverCA *testCA
	caFile             string
	store              *Store
	srv                *echoServer
	fromA, fromB       tls.Certificate
}

func newClientAuthFixture(t *testing.T, required bool) *clientAuthFixture {
	t.Helper()
	f := &clientAuthFixture{caA: newCA(t, "client CA A"), caB: newCA(t, "client CA B"), serverCA: newCA(t, "server CA")}
	dir := t.TempDir()
	p := writePair(t, dir, "server", f.serverCA.issue(t, leafSpec{dns: []string{"gw.test"}}))
	f.caFile = filepath.Join(dir, "clients.pem")
	writeFile(t, f.caFile, f.caA.pem)
	s, err := New(Options{Pairs: []Pair{p}, ClientCAFile: f.caFile, ClientAuthRequired: required})
	if err != nil {
		t.Fatal(err)
	}
	f.store = s
	f.srv = startEchoServer(t, s.TLSConfig())
	f.fromA = f.caA.issue(t, leafSpec{cn: "client a", client: true}).tlsCert()
	f.fromB = f.caB.issue(t, leafSpec{cn: "client b", client: true}).tlsCert()
	return f
}

// dialWith handshakes (and echoes once) presenting cert, if any.
func (f *clientAuthFixture) dialWith(version uint16, cert *tls.Certificate, cache tls.ClientSessionCache) (*tls.Conn, error) {
	cfg := &tls.Config{ServerName: "gw.test", RootCAs: f.serverCA.pool(), MaxVersion: version, MinVersion: version, ClientSessionCache: cache}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return dial(f.srv.addr, cfg)
}

func (f *clientAuthFixture) try(version uint16, cert *tls.Certificate) error {
	c, err := f.dialWith(version, cert, nil)
	if err == nil {
		c.Close()
	}
	return err
}

var versions = []uint16{tls.VersionTLS12, tls.VersionTLS13}

func TestClientAuthRequired(t *testing.T) {
	f := newClientAuthFixture(t, true)
	for _, v := range versions {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			if err := f.try(v, nil); err == nil {
				t.Error("a client without a certificate was served")
			}
			if err := f.try(v, &f.fromA); err != nil {
				t.Errorf("a client with a certificate of the CA: %v", err)
			}
			if err := f.try(v, &f.fromB); err == nil {
				t.Error("a client with a certificate of another CA was served")
			}
		})
	}
}

func TestClientAuthOptional(t *testing.T) {
	f := newClientAuthFixture(t, false)
	for _, v := range versions {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			before := f.srv.peerCerts.Load()
			if err := f.try(v, nil); err != nil {
				t.Errorf("a client without a certificate: %v", err)
			}
			if err := f.try(v, &f.fromA); err != nil {
				t.Errorf("a client with a certificate of the CA: %v", err)
			}
			if got := f.srv.peerCerts.Load() - before; got != 1 {
				t.Errorf("%d handshakes ended with a client certificate, want 1", got)
			}
			if err := f.try(v, &f.fromB); err == nil {
				t.Error("a client with a certificate of another CA was served")
			}
		})
	}
}

// TestClientCAReload: after the CA file changes (seen by Watch), new handshakes are verified
// against the new pool, resumed ones included: a client whose session was
// opened under the old CA cannot resume it once that CA is gone.
func TestClientCAReload(t *testing.T) {
	for _, v := range versions {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			f := newClientAuthFixture(t, true)
			cache := tls.NewLRUClientSessionCache(4)
			c, err := f.dialWith(v, &f.fromA, cache)
			if err != nil {
				t.Fatalf("first handshake of client A: %v", err)
			}
			c.Close()
			c, err = f.dialWith(v, &f.fromA, cache)
			if err != nil {
				t.Fatalf("second handshake of client A: %v", err)
			}
			if !c.ConnectionState().DidResume {
				t.Fatal("client A's second handshake did not resume: the test would prove nothing")
			}
			c.Close()
			if err := f.try(v, &f.fromB); err == nil {
				t.Fatal("client B served before the CA file names its CA")
			}

			watch(t, f.store)
			writeFile(t, f.caFile, f.caB.pem)
			eventually(t, "client B to be served after its CA replaced A's", func() bool { return f.try(v, &f.fromB) == nil })
			if err := f.try(v, &f.fromA); err == nil {
				t.Error("client A served (full handshake) after its CA was removed")
			}
			c, err = f.dialWith(v, &f.fromA, cache)
			if err == nil {
				c.Close()
				t.Errorf("client A served (resumed: %v) after its CA was removed", c.ConnectionState().DidResume)
			}
		})
	}
}

// TestClientAuthChain: a client certificate issued by an intermediate of
// the CA is accepted when the client sends the intermediate.
func TestClientAuthChain(t *testing.T) {
	f := newClientAuthFixture(t, true)
	inter := f.caA.issueCA(t, "intermediate")
	l := inter.issue(t, leafSpec{cn: "client via intermediate", client: true})
	cert := l.tlsCert()
	cert.Certificate = append(cert.Certificate, inter.cert.Raw)
	for _, v := range versions {
		if err := f.try(v, &cert); err != nil {
			t.Errorf("%s: %v", tls.VersionName(v), err)
		}
	}
	only := l.tlsCert()
	if err := f.try(tls.VersionTLS13, &only); err == nil {
		t.Error("a client certificate without its intermediate was accepted")
	}
}

package healthcheck

import (
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/zkgate/zkgate/internal/testpki"
)

// Probes follow the service's protocol: HTTPS with the service's TLS
// configuration (a certificate from another CA fails the probe), and
// HTTP/2 with prior knowledge for an endpoint that speaks only h2c.
func TestHTTPProbeFollowsServiceProtocol(t *testing.T) {
	ca, other := testpki.NewCA(t, "probe CA"), testpki.NewCA(t, "other CA")
	leaf := ca.Issue(t, testpki.Options{}, "svc.internal", "127.0.0.1")
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusNotFound)
		}
	})
	tlsLn, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf.TLS}})
	if err != nil {
		t.Fatal(err)
	}
	tlsSrv := &http.Server{Handler: ok}
	go func() { _ = tlsSrv.Serve(tlsLn) }()
	defer tlsSrv.Close()

	h2cLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true) // and no HTTP/1.1: an HTTP/1.1 probe fails
	h2cSrv := &http.Server{Handler: ok, Protocols: p}
	go func() { _ = h2cSrv.Serve(h2cLn) }()
	defer h2cSrv.Close()

	for _, tt := range []struct {
		name string
		addr string
		set  func(*ActiveConfig)
		ok   bool
	}{
		{"https with the CA", tlsLn.Addr().String(), func(a *ActiveConfig) { a.TLS = &tls.Config{RootCAs: ca.Pool(), ServerName: "svc.internal"} }, true},
		{"https with another CA", tlsLn.Addr().String(), func(a *ActiveConfig) { a.TLS = &tls.Config{RootCAs: other.Pool()} }, false},
		{"plain http to a TLS endpoint", tlsLn.Addr().String(), func(*ActiveConfig) {}, false},
		{"h2c", h2cLn.Addr().String(), func(a *ActiveConfig) { a.H2C = true }, true},
		{"HTTP/1.1 to an h2c-only endpoint", h2cLn.Addr().String(), func(*ActiveConfig) {}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Active: fastActive("http")}
			cfg.Active.Path = "/healthz"
			tt.set(&cfg.Active)
			c, _, _ := start(t, staticOf(tt.addr), cfg)
			eventually(t, "a probe", func() bool { st, _ := stateOf(c, tt.addr); return st.LastProbeResult != "" })
			st, _ := stateOf(c, tt.addr)
			if got := st.LastProbeResult == "ok"; got != tt.ok {
				t.Fatalf("probe result %q, want ok=%v", st.LastProbeResult, tt.ok)
			}
			if !tt.ok && strings.TrimSpace(st.LastProbeResult) == "" {
				t.Fatal("a failed probe says nothing")
			}
		})
	}
}

package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/testpki"
	"github.com/zkgate/zkgate/internal/zktest"
)

// Adversarial review of issue 19 (review19), the gateway's side.

// DEFECT 6. A service's upstream TLS files (tls.ca_file, tls.cert_file,
// tls.key_file) are read once, when the service is built, and never again:
// SIGHUP and POST /api/reload re-read the entry points' certificates but
// rebuild a service only when its configuration text changed
// (service.sameConfig), and nothing watches those files. When the
// endpoints move to a new internal CA (or the gateway's own client
// certificate for mutual TLS is renewed, as short-lived certificates are
// every day), the operator replaces the files, reloads as the README says
// renewals are done, and every request still fails (502) until a restart.
// Fix: have the service's TLS come from a tlscert-backed, reloadable source
// (GetClientCertificate and a VerifyPeerCertificate / VerifyConnection
// against the current pool), re-read with the entry points' stores on
// reload and watched like them; or rebuild services whose TLS files
// changed on reload.
func TestReview19DefectUpstreamCANotReloaded(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	dir := t.TempDir()
	oldCA, newCA := testpki.NewCA(t, "internal CA 2025"), testpki.NewCA(t, "internal CA 2026")
	caFile := filepath.Join(dir, "internal-ca.pem")
	testpki.WriteFile(t, caFile, oldCA.PEM)

	// One endpoint whose certificate is swapped from the old CA's to the
	// new one's, as a fleet moving to a new CA does.
	var cert atomic.Pointer[tls.Certificate]
	oldLeaf := oldCA.Issue(t, testpki.Options{}, "orders.internal")
	cert.Store(&oldLeaf.TLS)
	ep := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "orders "+r.URL.Path)
	}))
	ep.TLS = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert.Load(), nil }}
	ep.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	ep.StartTLS()
	t.Cleanup(ep.Close)

	ap, pp := zktest.FreePort(t), zktest.FreePort(t)
	text := fmt.Sprintf(`entry_points: { web: { address: "127.0.0.1:%d" } }
admin: { address: "127.0.0.1:%d" }
log: { level: debug, format: json, access_log: { enabled: false } }
shutdown: { drain_delay: 0s, grace_timeout: 10s }
zookeeper: { servers: ["%s"], session_timeout: 4s }
routes:
  - { name: orders, match: { path_prefix: / }, service: orders }
services:
  orders:
    discovery: { static: { endpoints: ["%s"] } }
    upstream: { tls: { enabled: true, ca_file: %q, server_name: orders.internal } }
`, pp, ap, srv.Addr(), strings.TrimPrefix(ep.URL, "https://"), caFile)
	g := &gateway{cfgPath: filepath.Join(dir, "gateway.yaml"), log: &syncBuffer{}, done: make(chan error, 1)}
	testpki.WriteFile(t, g.cfgPath, []byte(text))
	g.proxy, g.admin = fmt.Sprintf("http://127.0.0.1:%d", pp), fmt.Sprintf("http://127.0.0.1:%d", ap)
	g.serveReady(t)
	zktest.WaitFor(t, 15*time.Second, func() bool {
		code, body := getOrZero(g.proxy + "/o/1")
		return code == http.StatusOK && body == "orders /o/1"
	}, "the endpoint served over TLS, verified with the old CA")

	// The rotation: the CA file now holds the new CA, the endpoint serves
	// the new CA's certificate; the operator reloads.
	testpki.WriteFile(t, caFile, newCA.PEM)
	newLeaf := newCA.Issue(t, testpki.Options{}, "orders.internal")
	cert.Store(&newLeaf.TLS)
	ep.CloseClientConnections() // the next request makes a new handshake
	res, err := http.Post(g.admin+"/api/reload", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/reload: %d", res.StatusCode)
	}
	var code int
	var body string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last answer after the reload: %d %q (the old CA is still used)", code, body)
		}
	})
	zktest.WaitFor(t, 5*time.Second, func() bool {
		code, body = getOrZero(g.proxy + "/o/2")
		return code == http.StatusOK && body == "orders /o/2"
	}, "a 200 from the endpoint after its CA file was replaced and the gateway reloaded")
}

// getOrZero is GET url's status and body, 0 when it fails.
func getOrZero(url string) (int, string) {
	c := &http.Client{Timeout: 5 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// DEFECT 7. Active http probes of a service with upstream protocol h2 speak
// HTTP/1.1 over TLS: the probe client gets the service's TLS configuration,
// which lists no ALPN protocol, and HTTP/2 is set up only for h2c
// (healthcheck.ActiveConfig.H2C). An endpoint that speaks only h2 over TLS
// — every gRPC server over TLS (grpc-go refuses a handshake without ALPN
// h2), and the README's own example — fails every probe: it is never
// admitted ("endpoint failed its first probe: not routed"), the service
// counts no healthy member, and only the balancer's panic mode (every
// member routed, healthy or not) keeps traffic flowing, so a really dead
// endpoint is no longer told apart and the API and status page show the
// service down. Requests work (the proxy's transport offers "h2"). Fix:
// build the probe client for the service's protocol over TLS too
// (Protocols with HTTP2 for h2, NextProtos {"h2"}), as proxy.NewTransport
// does; better, share that decision with NewTransport.
func TestReview19DefectH2ServiceProbedInHTTP1(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	dir := t.TempDir()
	ca := testpki.NewCA(t, "internal CA")
	caFile := filepath.Join(dir, "internal-ca.pem")
	testpki.WriteFile(t, caFile, ca.PEM)

	// An endpoint speaking only HTTP/2 over TLS, as a gRPC server does.
	var probes, h1Probes atomic.Int64
	ep := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			probes.Add(1)
			return
		}
		_, _ = io.WriteString(w, r.Proto+" "+r.URL.Path)
	}))
	ep.Config.Protocols = new(http.Protocols)
	ep.Config.Protocols.SetHTTP2(true)
	ep.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			h1Probes.Add(1) // closed without a request: a client that did not pick h2
		}
	}
	ep.Config.ErrorLog = log.New(io.Discard, "", 0)
	leaf := ca.Issue(t, testpki.Options{}, "orders.internal")
	ep.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, NextProtos: []string{"h2"}}
	ep.StartTLS()
	t.Cleanup(ep.Close)

	ap, pp := zktest.FreePort(t), zktest.FreePort(t)
	text := fmt.Sprintf(`entry_points: { web: { address: "127.0.0.1:%d" } }
admin: { address: "127.0.0.1:%d" }
log: { level: debug, format: json, access_log: { enabled: false } }
shutdown: { drain_delay: 0s, grace_timeout: 10s }
zookeeper: { servers: ["%s"], session_timeout: 4s }
routes:
  - { name: orders, match: { path_prefix: / }, service: orders }
services:
  orders:
    discovery: { static: { endpoints: ["%s"] } }
    upstream: { protocol: h2, tls: { enabled: true, ca_file: %q, server_name: orders.internal } }
    health_check: { active: { type: http, path: /healthz, interval: 200ms, timeout: 200ms } }
`, pp, ap, srv.Addr(), strings.TrimPrefix(ep.URL, "https://"), caFile)
	g := &gateway{cfgPath: filepath.Join(dir, "gateway.yaml"), log: &syncBuffer{}, done: make(chan error, 1)}
	testpki.WriteFile(t, g.cfgPath, []byte(text))
	g.proxy, g.admin = fmt.Sprintf("http://127.0.0.1:%d", pp), fmt.Sprintf("http://127.0.0.1:%d", ap)
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go func() { g.done <- Serve(ctx, g.cfgPath, g.log) }()
	var code int
	var body string
	t.Cleanup(func() {
		g.stop(t)
		if t.Failed() {
			t.Logf("last answer: %d %q; probes answered: %d; connections closed without a request: %d", code, body, probes.Load(), h1Probes.Load())
		}
	})
	zktest.WaitFor(t, 10*time.Second, func() bool {
		code, body = getOrZero(g.proxy + "/o/1")
		return code == http.StatusOK && body == "HTTP/2.0 /o/1"
	}, "the h2-only endpoint serving over h2")
	zktest.WaitFor(t, 5*time.Second, func() bool { return probes.Load() > 0 },
		"an https probe (interval 200ms) answered by the h2-only endpoint")
}

// DEFECT 10. A service whose upstream.tls block names a CA, a server
// name, a client certificate or insecure_skip_verify, but leaves
// tls.enabled false (and protocol http1), validates and serves in plain
// HTTP: the whole block is ignored without a word, and the files are not
// even read. An operator who wrote "tls: { ca_file: ..., server_name: ...
// }" believes the endpoints are reached over verified TLS. Validation
// should refuse it, naming services.<name>.upstream.tls.enabled (or take
// the block as turning TLS on).
func TestReview19DefectUpstreamTLSBlockIgnoredWhenNotEnabled(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "internal CA")
	caFile := filepath.Join(dir, "internal-ca.pem")
	testpki.WriteFile(t, caFile, ca.PEM)
	for _, block := range []string{
		fmt.Sprintf("{ ca_file: %q, server_name: orders.internal }", caFile),
		"{ insecure_skip_verify: true }",
	} {
		path := filepath.Join(dir, "gateway.yaml")
		testpki.WriteFile(t, path, []byte(fmt.Sprintf(`entry_points: { web: { address: "127.0.0.1:0" } }
zookeeper: { servers: ["127.0.0.1:2181"] }
routes:
  - { name: orders, match: { path_prefix: / }, service: orders }
services:
  orders:
    discovery: { static: { endpoints: ["127.0.0.1:9443"] } }
    upstream: { tls: %s }
`, block)))
		var stderr strings.Builder
		if code := Main([]string{"validate", "--config", path}, io.Discard, &stderr); code == exitOK {
			t.Errorf("upstream.tls %s without enabled: true validates (served in plain HTTP); want an error naming services.orders.upstream.tls.enabled", block)
		} else if !strings.Contains(stderr.String(), "services.orders.upstream.tls") {
			t.Errorf("upstream.tls %s: refused without naming the key: %s", block, stderr.String())
		}
	}
}

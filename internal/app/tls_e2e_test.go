package app

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkgate/zkgate/internal/admin"
	"github.com/zkgate/zkgate/internal/testpki"
	"github.com/zkgate/zkgate/internal/zktest"
)

// tlsGateway is a gateway with a plain entry point "web" redirecting to the
// TLS entry point "websecure", serving the static service "echo".
type tlsGateway struct {
	*gateway
	secure string // "127.0.0.1:port" of websecure
	web    string // "127.0.0.1:port" of web
	dir    string
}

// startTLSGateway starts a gateway whose websecure entry point has the tls
// block given (YAML flow style), with backend as the echo service's only
// endpoint and the ZooKeeper at zkAddr.
func startTLSGateway(t *testing.T, zkAddr, dir, tlsBlock, backend string) *tlsGateway {
	t.Helper()
	wp, sp, ap := zktest.FreePort(t), zktest.FreePort(t), zktest.FreePort(t)
	text := fmt.Sprintf(`entry_points:
  web: { address: "127.0.0.1:%d", redirect_to: websecure }
  websecure: { address: "127.0.0.1:%d", tls: %s }
admin: { address: "127.0.0.1:%d" }
log: { level: debug, format: json, access_log: { enabled: false } }
shutdown: { drain_delay: 0s, grace_timeout: 10s }
zookeeper: { servers: ["%s"], session_timeout: 4s }
routes:
  - { name: echo, match: { path_prefix: / }, service: echo }
services:
  echo: { discovery: { static: { endpoints: ["%s"] } } }
`, wp, sp, tlsBlock, ap, zkAddr, backend)
	g := &gateway{cfgPath: filepath.Join(dir, "gateway.yaml"), log: &syncBuffer{}, done: make(chan error, 1)}
	testpki.WriteFile(t, g.cfgPath, []byte(text))
	g.proxy = fmt.Sprintf("https://127.0.0.1:%d", sp)
	g.admin = fmt.Sprintf("http://127.0.0.1:%d", ap)
	g.serveReady(t)
	return &tlsGateway{gateway: g, secure: fmt.Sprintf("127.0.0.1:%d", sp), web: fmt.Sprintf("127.0.0.1:%d", wp), dir: dir}
}

// tlsGet sends GET path to addr over TLS with config c on a new
// connection and returns the answer, its body and the connection state.
func tlsGet(c *tls.Config, addr, path string, h2 bool) (*http.Response, string, error) {
	p := new(http.Protocols)
	if h2 {
		p.SetHTTP2(true)
	} else {
		p.SetHTTP1(true)
	}
	tr := &http.Transport{TLSClientConfig: c, Protocols: p, ForceAttemptHTTP2: h2, DisableKeepAlives: !h2}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + path)
	if err != nil {
		return nil, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, string(b), err
}

// A TLS entry point end to end: HTTPS over TLS 1.2 and 1.3 and HTTP/2 (Go
// and curl), the certificate chosen by SNI (exact, wildcard, default), the
// plain entry point redirecting to it, the certificates in /api/state and
// /metrics, a renewed certificate served during load with no failed
// request, and a broken pair refused with the old one kept.
func TestTLSEntryPoint(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	dir := t.TempDir()
	ca := testpki.NewCA(t, "gateway CA")
	apiLeaf := ca.Issue(t, testpki.Options{Key: testpki.ECDSA, Serial: 1001}, "api.example.com", "127.0.0.1")
	wildLeaf := ca.Issue(t, testpki.Options{Key: testpki.RSA, Serial: 2001}, "*.apps.example.com")
	apiCrt, apiKey := apiLeaf.WriteFiles(t, dir, "api")
	wildCrt, wildKey := wildLeaf.WriteFiles(t, dir, "wild")
	be := backend(t, "b")
	tlsBlock := fmt.Sprintf(`{ certificates: [ { cert_file: %q, key_file: %q }, { cert_file: %q, key_file: %q } ] }`, apiCrt, apiKey, wildCrt, wildKey)
	g := startTLSGateway(t, srv.Addr(), dir, tlsBlock, hostPort(be))

	client := func(sni string, version uint16) *tls.Config {
		return &tls.Config{RootCAs: ca.Pool(), ServerName: sni, MinVersion: version, MaxVersion: version}
	}
	for _, tt := range []struct {
		sni    string
		serial int64
	}{
		{"api.example.com", 1001},
		{"shop.apps.example.com", 2001},
		{"127.0.0.1", 1001}, // no SNI for an IP address: the first pair
	} {
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			for _, h2 := range []bool{false, true} {
				c := client(tt.sni, v)
				if tt.sni == "127.0.0.1" {
					c.ServerName = ""
					c.InsecureSkipVerify = true // the default certificate has 127.0.0.1; verified below
					c.VerifyConnection = func(cs tls.ConnectionState) error {
						_, err := cs.PeerCertificates[0].Verify(x509Opts(ca, "127.0.0.1"))
						return err
					}
				}
				res, body, err := tlsGet(c, g.secure, "/x", h2)
				if err != nil {
					t.Fatalf("SNI %q TLS %x h2=%v: %v", tt.sni, v, h2, err)
				}
				if res.StatusCode != 200 || body != "b /x" || res.TLS.PeerCertificates[0].SerialNumber.Int64() != tt.serial || (res.ProtoMajor == 2) != h2 {
					t.Fatalf("SNI %q TLS %x h2=%v: %s %d %q serial %v", tt.sni, v, h2, res.Proto, res.StatusCode, body, res.TLS.PeerCertificates[0].SerialNumber)
				}
			}
		}
	}

	// curl over HTTP/2, as a user would try it.
	caFile := filepath.Join(dir, "ca.pem")
	testpki.WriteFile(t, caFile, ca.PEM)
	out, err := exec.Command("curl", "-sS", "--http2", "--cacert", caFile, "--resolve", "api.example.com:"+port(g.secure)+":127.0.0.1",
		"-w", "\n%{http_version} %{http_code}", "https://api.example.com:"+port(g.secure)+"/curl").CombinedOutput()
	if err != nil || string(out) != "b /curl\n2 200" {
		t.Fatalf("curl --http2: %v %q", err, out)
	}

	// The plain entry point redirects.
	res, err := (&http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get("http://" + g.web + "/a?b=1")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if want := "https://127.0.0.1:" + port(g.secure) + "/a?b=1"; res.StatusCode != http.StatusPermanentRedirect || res.Header.Get("Location") != want {
		t.Fatalf("plain entry point: %d Location %q, want 308 %q", res.StatusCode, res.Header.Get("Location"), want)
	}

	// The certificates are in the API and the metrics.
	ep := stateEntryPoint(t, g.admin, "websecure")
	if ep.Protocol != "https" || ep.TLS == nil || len(ep.TLS.Certificates) != 2 || ep.TLS.Certificates[0].Names[0] != "api.example.com" {
		t.Fatalf("/api/state websecure: %+v", ep)
	}
	_, metrics := get(t, g.admin+"/metrics")
	if !strings.Contains(metrics, fmt.Sprintf(`zkgate_tls_certificate_expiry_timestamp_seconds{cert_file=%q,entry_point="websecure",subject="CN=api.example.com"}`, apiCrt)) {
		t.Fatalf("no expiry series for %s:\n%s", apiCrt, grepLines(metrics, "tls_certificate"))
	}

	// A renewal during load: new handshakes get the new certificate, no
	// request fails.
	var failed, served atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if res, body, err := tlsGet(client("api.example.com", 0), g.secure, "/load", false); err != nil || res.StatusCode != 200 || body != "b /load" {
					failed.Add(1)
					lastErr.Store(fmt.Sprint(err, res))
				} else {
					served.Add(1)
				}
			}
		})
	}
	renewed := ca.Issue(t, testpki.Options{Serial: 1002}, "api.example.com", "127.0.0.1")
	renewed.WriteFiles(t, dir, "api")
	zktest.WaitFor(t, 10*time.Second, func() bool {
		res, _, err := tlsGet(client("api.example.com", 0), g.secure, "/", false)
		return err == nil && res.TLS.PeerCertificates[0].SerialNumber.Int64() == 1002
	}, "the renewed certificate served")
	zktest.WaitFor(t, 10*time.Second, func() bool { return served.Load() > 20 }, "requests served during the renewal")
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed during the renewal; last: %v", n, n+served.Load(), lastErr.Load())
	}

	// A broken pair (a key of another certificate) is refused: the renewed
	// one stays, the failure is counted and shown.
	other := ca.Issue(t, testpki.Options{}, "other.example.com")
	testpki.WriteFile(t, apiKey, other.KeyPEM)
	zktest.WaitFor(t, 10*time.Second, func() bool {
		ep := stateEntryPoint(t, g.admin, "websecure")
		return ep.TLS.ReloadFailures > 0 && strings.Contains(ep.TLS.LastReloadFailure, apiKey)
	}, "the broken pair refused and reported")
	res, _, err = tlsGet(client("api.example.com", 0), g.secure, "/", false)
	if err != nil || res.TLS.PeerCertificates[0].SerialNumber.Int64() != 1002 {
		t.Fatalf("after a broken pair: %v, serial %v; want the renewed certificate kept", err, res)
	}
	_, metrics = get(t, g.admin+"/metrics")
	if !strings.Contains(metrics, `zkgate_tls_certificate_reload_failures_total{entry_point="websecure"} `) || strings.Contains(metrics, `zkgate_tls_certificate_reload_failures_total{entry_point="websecure"} 0`) {
		t.Fatalf("reload failure not counted:\n%s", grepLines(metrics, "tls_certificate_reload"))
	}
}

// x509Opts verifies a certificate for host against ca.
func x509Opts(ca *testpki.CA, host string) x509.VerifyOptions {
	return x509.VerifyOptions{Roots: ca.Pool(), DNSName: host}
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// stateEntryPoint returns the entry point name of /api/state.
func stateEntryPoint(t *testing.T, adminURL, name string) entryPointState {
	t.Helper()
	_, body := get(t, adminURL+"/api/state")
	var st struct {
		Gateway struct {
			EntryPoints []entryPointState `json:"entry_points"`
		} `json:"gateway"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/api/state: %v\n%s", err, body)
	}
	for _, ep := range st.Gateway.EntryPoints {
		if ep.Name == name {
			return ep
		}
	}
	t.Fatalf("/api/state has no entry point %q:\n%s", name, body)
	return entryPointState{}
}

type entryPointState = admin.EntryPointInfo

// A TLS entry point that requires client certificates refuses a client
// without one or with one from another CA, and serves one from its CA.
func TestTLSClientCertificatesRequired(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	dir := t.TempDir()
	ca, clients, rogue := testpki.NewCA(t, "server CA"), testpki.NewCA(t, "clients CA"), testpki.NewCA(t, "rogue CA")
	crt, key := ca.Issue(t, testpki.Options{}, "127.0.0.1").WriteFiles(t, dir, "srv")
	clientsFile := filepath.Join(dir, "clients.pem")
	testpki.WriteFile(t, clientsFile, clients.PEM)
	be := backend(t, "b")
	g := startTLSGateway(t, srv.Addr(), dir, fmt.Sprintf(`{ certificates: [ { cert_file: %q, key_file: %q } ], min_version: "1.3", client_auth: { ca_file: %q, required: true } }`, crt, key, clientsFile), hostPort(be))
	for _, tt := range []struct {
		name string
		cert []tls.Certificate
		ok   bool
	}{
		{"no certificate", nil, false},
		{"another CA's", []tls.Certificate{rogue.Issue(t, testpki.Options{}, "client").TLS}, false},
		{"the clients CA's", []tls.Certificate{clients.Issue(t, testpki.Options{}, "client").TLS}, true},
	} {
		res, body, err := tlsGet(&tls.Config{RootCAs: ca.Pool(), Certificates: tt.cert}, g.secure, "/m", false)
		if tt.ok != (err == nil && res.StatusCode == 200 && body == "b /m") {
			t.Errorf("%s: %v %v %q, want served=%v", tt.name, err, res, body, tt.ok)
		}
	}
	// min_version 1.3: a TLS 1.2 client is refused.
	if _, _, err := tlsGet(&tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS12, Certificates: []tls.Certificate{clients.Issue(t, testpki.Options{}, "c").TLS}}, g.secure, "/", false); err == nil {
		t.Error("a TLS 1.2 client was served by an entry point with min_version 1.3")
	}
}

// zkgate validate loads the certificates as serve does: a missing key file
// and a key that does not match are refused, naming the key path and file.
func TestValidateChecksCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "CA")
	crt, key := ca.Issue(t, testpki.Options{}, "a.example").WriteFiles(t, dir, "a")
	_, otherKey := ca.Issue(t, testpki.Options{}, "b.example").WriteFiles(t, dir, "b")
	for _, tt := range []struct {
		name, key string
		want      []string
	}{
		{"good pair", key, nil},
		{"missing key", filepath.Join(dir, "missing.key"), []string{"entry_points.websecure.tls.certificates[0].key_file", "missing.key"}},
		{"key of another certificate", otherKey, []string{"entry_points.websecure.tls.certificates[0].key_file", otherKey, "does not match cert_file " + crt}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "gw.yaml")
			testpki.WriteFile(t, path, []byte(fmt.Sprintf("entry_points:\n  websecure: { address: \"127.0.0.1:0\", tls: { certificates: [ { cert_file: %q, key_file: %q } ] } }\nroutes: []\nservices: {}\n", crt, tt.key)))
			var stdout, stderr bytes.Buffer
			code := Main([]string{"validate", "-config", path}, &stdout, &stderr)
			if tt.want == nil {
				if code != 0 {
					t.Fatalf("exit %d: %s", code, stderr.String())
				}
				return
			}
			if code == 0 {
				t.Fatalf("validate accepted it: %s", stdout.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q lacks %q", stderr.String(), w)
				}
			}
		})
	}
}

// A service with TLS to its endpoints dials a Curator registration's
// sslPort over TLS (verifying it with the service's CA and server name),
// and its http probes are HTTPS too: the plain port, which answers
// "plain", is never used.
func TestUpstreamTLSUsesCuratorSSLPort(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	conn := zktest.Connect(t, srv.Addr())
	dir := t.TempDir()
	ca := testpki.NewCA(t, "internal CA")
	caFile := filepath.Join(dir, "internal-ca.pem")
	testpki.WriteFile(t, caFile, ca.PEM)

	plain := backend(t, "plain")
	var probes atomic.Int64
	tlsSrv := httptestTLS(t, ca.Issue(t, testpki.Options{Key: testpki.RSA}, "orders.internal").TLS, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			probes.Add(1)
			return
		}
		_, _ = io.WriteString(w, "tls "+r.URL.Path)
	})
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
    discovery: { zookeeper: { path: /services/orders, format: curator } }
    upstream: { tls: { enabled: true, ca_file: %q, server_name: orders.internal } }
    health_check: { active: { type: http, path: /healthz, interval: 200ms, timeout: 200ms } }
`, pp, ap, srv.Addr(), caFile)
	g := &gateway{cfgPath: filepath.Join(dir, "gateway.yaml"), log: &syncBuffer{}, done: make(chan error, 1)}
	testpki.WriteFile(t, g.cfgPath, []byte(text))
	g.proxy, g.admin = fmt.Sprintf("http://127.0.0.1:%d", pp), fmt.Sprintf("http://127.0.0.1:%d", ap)
	g.serveReady(t) // the first GET below must not race the listener's bind

	_, plainPort, _ := net.SplitHostPort(hostPort(plain))
	_, sslPort, _ := net.SplitHostPort(strings.TrimPrefix(tlsSrv.URL, "https://"))
	for _, p := range []string{"/services", "/services/orders"} {
		if _, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
			t.Fatal(err)
		}
	}
	node := fmt.Sprintf(`{"name":"orders","id":"i-1","address":"127.0.0.1","port":%s,"sslPort":%s,"payload":null,"registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC","uriSpec":null}`, plainPort, sslPort)
	if _, err := conn.Create("/services/orders/i-1", []byte(node), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	zktest.WaitFor(t, 15*time.Second, func() bool {
		code, body := get(t, g.proxy+"/o/1")
		return code == 200 && body == "tls /o/1"
	}, "the sslPort served over TLS")
	if probes.Load() == 0 {
		t.Fatal("no https probe reached the sslPort")
	}
	for range 5 {
		if code, body := get(t, g.proxy+"/o/2"); code != 200 || body != "tls /o/2" {
			t.Fatalf("GET /o/2: %d %q, want the TLS endpoint", code, body)
		}
	}
}

// httptestTLS starts an HTTPS server with cert on loopback.
func httptestTLS(t *testing.T, cert tls.Certificate, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

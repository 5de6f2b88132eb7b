package benchkit

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/app"
	"github.com/zkgate/zkgate/internal/config"
	"github.com/zkgate/zkgate/internal/zktest"
)

func TestWriteBenchCert(t *testing.T) {
	dir := t.TempDir()
	c, err := WriteBenchCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		t.Fatalf("the files are not a matching pair: %v", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		t.Fatalf("key %T, want ECDSA P-256", pair.PrivateKey)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.Pool, DNSName: host}); err != nil {
			t.Errorf("certificate for %s: %v", host, err)
		}
	}
	if st, err := os.Stat(c.KeyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: %v, %v; want 0600", st.Mode(), err)
	}
	again, err := WriteBenchCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(c.KeyFile)
	b, _ := os.ReadFile(again.KeyFile)
	if string(a) == string(b) {
		t.Error("two runs wrote the same key: want a fresh one each run")
	}
	if blk, _ := pem.Decode(a); blk == nil || blk.Type != "PRIVATE KEY" {
		t.Errorf("key file is not a PKCS #8 PEM block")
	}
}

const h2loadOut = `starting benchmark...
spawning thread #0: 4 total client(s). 1000 total requests
TLS Protocol: TLSv1.3
Cipher: TLS_AES_128_GCM_SHA256
Server Temp Key: X25519 253 bits
Application protocol: h2
progress: 10%% done

finished in %s, 12345.67 req/s, 1.23MB/s
requests: 1000 total, 1000 started, 990 done, 980 succeeded, 10 failed, 3 errored, 2 timeout
status codes: 970 2xx, 0 3xx, 4 4xx, 6 5xx
traffic: 0B (0) total
`

func TestParseH2load(t *testing.T) {
	for in, want := range map[string]time.Duration{"5.00s": 5 * time.Second, "340.12ms": 340120 * time.Microsecond, "812us": 812 * time.Microsecond} {
		r, err := ParseH2load(fmt.Sprintf(h2loadOut, in))
		if err != nil {
			t.Fatal(err)
		}
		if r.Duration != want {
			t.Errorf("duration %q = %v, want %v", in, r.Duration, want)
		}
		if r.Succeeded != 970 || r.Failed != 10 || r.Errored != 3 || r.TimedOut != 2 || r.Non2xx != 10 || r.Errors() != 25 {
			t.Errorf("%+v: want 970 answered 2xx (980 minus 10 not 2xx), 10 failed, 3 errored, 2 timed out, 10 not 2xx", r)
		}
		if r.Protocol != "TLSv1.3 TLS_AES_128_GCM_SHA256 X25519 h2" {
			t.Errorf("protocol %q", r.Protocol)
		}
	}
	for _, bad := range []string{"", "finished in 1s, 1 req/s\n", strings.Replace(fmt.Sprintf(h2loadOut, "1s"), "status codes", "codes", 1),
		fmt.Sprintf(h2loadOut, "0s")} {
		if _, err := ParseH2load(bad); err == nil {
			t.Errorf("ParseH2load(%q) succeeded, want an error", truncate(bad, 60))
		}
	}
}

func TestH2loadArgs(t *testing.T) {
	got := strings.Join(H2loadOptions{URL: "https://x/", Clients: 4, Streams: 16, Duration: 5 * time.Second}.Args(), " ")
	if got != "-t1 -c4 -m16 -D 5 https://x/" {
		t.Errorf("timed run: %q", got)
	}
	got = strings.Join(H2loadOptions{URL: "https://x/", Clients: 300, Requests: 300, H1: true}.Args(), " ")
	if got != "-t1 -c300 -m1 -n300 --h1 https://x/" {
		t.Errorf("counted run: %q", got)
	}
}

// countingTLSServer is a Go HTTPS server with the bench certificate that
// counts its new connections and the requests that came on a resumed TLS
// session.
func countingTLSServer(t *testing.T) (url string, conns, requests, resumed *atomic.Int64) {
	t.Helper()
	cert, err := WriteBenchCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	conns, requests, resumed = new(atomic.Int64), new(atomic.Int64), new(atomic.Int64)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.TLS.DidResume {
			resumed.Add(1)
		}
		_, _ = io.WriteString(w, SmallBody)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)             // wrk's connections cut at its end
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}} // session tickets on, as Go's default
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL + "/", conns, requests, resumed
}

// The handshake measurement's premise: each request comes on a new
// connection with a full handshake, none resumes a TLS session (the
// server offers tickets, as Go's and nginx's do by default). wrk with
// Connection: close, the obvious tool, resumes: it would hide them.
func TestHandshakesAreFullHandshakes(t *testing.T) {
	h2load := tool(t, "h2load")
	url, conns, requests, resumed := countingTLSServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := RunHandshakes(ctx, h2load, url, 300, time.Nanosecond) // one run of 300
	if err != nil {
		t.Fatal(err)
	}
	if res.Succeeded != 300 || res.Errors() != 0 || res.Duration <= 0 {
		t.Fatalf("%+v: want 300 answered, no error", res)
	}
	if conns.Load() != 300 || requests.Load() != 300 || resumed.Load() != 0 {
		t.Fatalf("server saw %d connections, %d requests, %d on a resumed session; want 300, 300, 0", conns.Load(), requests.Load(), resumed.Load())
	}
	if !strings.HasSuffix(res.Protocol, " http/1.1") || !strings.HasPrefix(res.Protocol, "TLSv1.3 ") {
		t.Errorf("protocol %q, want TLS 1.3 and http/1.1 by ALPN", res.Protocol)
	}

	wrk := tool(t, "wrk")
	conns.Store(0)
	requests.Store(0)
	resumed.Store(0)
	out, err := exec.CommandContext(ctx, wrk, "-t1", "-c4", "-d1s", "-H", "Connection: close", url).CombinedOutput()
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	if requests.Load() < 10 || resumed.Load() < requests.Load()/2 {
		t.Errorf("wrk -H 'Connection: close': %d requests, %d resumed; the harness's doc says wrk resumes most, so that it cannot measure handshakes",
			requests.Load(), resumed.Load())
	}
}

func TestNginxTLSConfig(t *testing.T) {
	dir := t.TempDir()
	cert, err := WriteBenchCert(filepath.Join(dir, "cert"))
	if err != nil {
		t.Fatal(err)
	}
	text := NginxTLSConfig(dir, 19128, 2, upstreams, cert.CertFile, cert.KeyFile)
	mustContain(t, "nginx.conf", text, "worker_processes 2;", "listen 127.0.0.1:19128 ssl http2 backlog=4096;",
		"ssl_certificate "+cert.CertFile+";", "ssl_certificate_key "+cert.KeyFile+";", "ssl_protocols TLSv1.2 TLSv1.3;", "keepalive_requests 1000000;",
		"keepalive 64;", "proxy_http_version 1.1;", "location /echo/ {\n"+nginxProxyHeaders+"            proxy_set_header X-Forwarded-Prefix /echo;\n            proxy_pass http://bench/;", "access_log off;")
	if strings.Contains(NginxConfig(dir, 19120, 1, upstreams), "ssl") {
		t.Error("the plain configuration mentions ssl")
	}
	nginxAccepts(t, dir, text)
}

func TestZkgateTLSConfigLoads(t *testing.T) {
	text := ZkgateTLSConfig(19126, 19127, 19100, "/services/bench1", "/c/cert.pem", "/c/key.pem", false, "go")
	cfg, err := config.Parse([]byte(text), "zkgate TLS bench config")
	if err != nil {
		t.Fatalf("the generated configuration does not load: %v\n%s", err, text)
	}
	if len(cfg.EntryPoints) != 1 {
		t.Fatalf("entry points %v, want websecure alone", cfg.EntryPoints)
	}
	ep := cfg.EntryPoints["websecure"]
	if ep.Address != "127.0.0.1:19126" || ep.TLS == nil || len(ep.TLS.Certificates) != 1 ||
		ep.TLS.Certificates[0] != (config.Certificate{CertFile: "/c/cert.pem", KeyFile: "/c/key.pem"}) {
		t.Fatalf("websecure = %+v (tls %+v)", ep, ep.TLS)
	}
	if ep.HTTP2Server != "go" {
		t.Errorf("http2_server %q, want the one asked for (go)", ep.HTTP2Server)
	}
	if ep.HTTP2 != "auto" || ep.TLS.MinVersion != "1.2" || ep.TLS.ClientAuth != nil {
		t.Errorf("http2 %q, min version %q, client auth %v: want the defaults", ep.HTTP2, ep.TLS.MinVersion, ep.TLS.ClientAuth)
	}
	if cfg.Admin.Address != "127.0.0.1:19127" || cfg.Log.AccessLog.Enabled || len(cfg.Routes) != 2 || cfg.Routes[0].Match.PathPrefix != RoutePrefix {
		t.Errorf("admin %q, access log %v, routes %+v: want the plain target's routes, no access log (as the section runs it)", cfg.Admin.Address, cfg.Log.AccessLog.Enabled, cfg.Routes)
	}
}

// checkTLSRouting asks the proxy at base (https://host:port) for both
// bodies through the route and beside it, over HTTP/1.1 and over HTTP/2 by
// ALPN, trusting pool only.
func checkTLSRouting(t *testing.T, pool *x509.CertPool, base string) {
	t.Helper()
	for path, want := range map[string]string{RoutePrefix + LargePath: string(LargeBody()), LargePath: string(LargeBody()),
		RoutePrefix + "/": SmallBody, "/other": SmallBody} {
		for _, h2 := range []bool{false, true} {
			proto, body, status, err := TLSGet(pool, base+path, h2)
			if err != nil {
				t.Fatalf("GET %s (HTTP/2 %v): %v", path, h2, err)
			}
			if wantProto := map[bool]int{false: 1, true: 2}[h2]; status != 200 || body != want || proto != wantProto {
				t.Errorf("GET %s: HTTP/%d %d, %d bytes; want HTTP/%d 200 and %d bytes", path, proto, status, len(body), wantProto, len(want))
			}
		}
	}
}

func TestNginxTLSConfigRoutes(t *testing.T) {
	nginx := tool(t, "nginx")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	cert, err := WriteBenchCert(filepath.Join(dir, "cert"))
	if err != nil {
		t.Fatal(err)
	}
	port := zktest.FreePort(t)
	cfg := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cfg, []byte(NginxTLSConfig(dir, port, 1, freeBackend(t), cert.CertFile, cert.KeyFile)), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := StartProc(ProcSpec{Name: "nginx", Argv: []string{nginx, "-p", dir, "-c", cfg, "-e", "stderr", "-g", "daemon off;"},
		Log: filepath.Join(dir, "nginx.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(10 * time.Second) })
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	if err := WaitFor(context.Background(), 20*time.Second, "nginx over TLS", tlsAnswers(p, cert.Pool, base+RoutePrefix+"/", SmallBody, false)); err != nil {
		log, _ := os.ReadFile(p.LogPath)
		t.Fatalf("%v\n%s", err, log)
	}
	checkTLSRouting(t, cert.Pool, base)

	// More than nginx's default 1000 requests on one HTTP/2 connection: at
	// the default, nginx sends a GOAWAY after 1000 and h2load fails the rest.
	h2load := tool(t, "h2load")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := RunH2load(ctx, H2loadOptions{Bin: h2load, URL: base + RoutePrefix + "/", Clients: 1, Streams: H2Streams, Requests: 1500})
	if err != nil {
		t.Fatal(err)
	}
	if res.Succeeded != 1500 || res.Errors() != 0 || !strings.HasSuffix(res.Protocol, " h2") {
		t.Errorf("h2load, 1500 requests on one connection: %+v; want every one answered over h2", res)
	}
}

// zkgate's TLS configuration, served by zkgate itself (in process) with
// the backend registered in a real ZooKeeper, as the harness runs it.
func TestZkgateTLSConfigRoutes(t *testing.T) {
	dir := t.TempDir()
	cert, err := WriteBenchCert(filepath.Join(dir, "cert"))
	if err != nil {
		t.Fatal(err)
	}
	port := zktest.FreePort(t)
	ctx, gatewayDone := serveZkgate(t, func(admin, zkPort int) string {
		return ZkgateTLSConfig(port, admin, zkPort, "/services/bench1", cert.CertFile, cert.KeyFile, false, "")
	})
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	err = WaitFor(ctx, 30*time.Second, "zkgate over TLS", func() (bool, error) {
		if err := exited(gatewayDone); err != nil {
			return false, err
		}
		_, body, status, err := TLSGet(cert.Pool, base+RoutePrefix+"/", false)
		return err == nil && status == 200 && body == SmallBody, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkTLSRouting(t, cert.Pool, base)
}

// serveZkgate starts a real ZooKeeper, a backend registered under
// /services/bench1 and zkgate itself (in process) with the configuration
// config returns for its admin port and ZooKeeper's port. Everything ends
// with the test; the context ends then, and gatewayDone receives Serve's
// result.
func serveZkgate(t *testing.T, config func(admin, zkPort int) string) (ctx context.Context, gatewayDone chan error) {
	t.Helper()
	return serveZkgateOver(t, BackendOptions{Paths: []string{"/services/bench1"}}, config)
}

// serveZkgateOver is serveZkgate with the backend b (its listen address,
// ZooKeeper servers and Ready set here).
func serveZkgateOver(t *testing.T, b BackendOptions, config func(admin, zkPort int) string) (ctx context.Context, gatewayDone chan error) {
	t.Helper()
	zktest.Require(t)
	zk := zktest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	backendDone := make(chan error, 1)
	gatewayDone = make(chan error, 1)
	gatewayStarted := false
	t.Cleanup(func() {
		cancel()
		var dones []chan error
		if gatewayStarted {
			dones = append(dones, gatewayDone)
		}
		dones = append(dones, backendDone)
		for _, done := range dones {
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Error("gateway or backend still running 20s after the end of the test")
			}
		}
	})
	ready := make(chan string, 1)
	go func() {
		b.Listen, b.ZooKeeper, b.Ready = "127.0.0.1:0", []string{zk.Addr()}, func(a string) { ready <- a }
		backendDone <- RunBackend(ctx, b, quietLog())
	}()
	select {
	case <-ready:
	case err := <-backendDone:
		backendDone <- err
		t.Fatalf("backend: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("backend not registered within 30s")
	}
	cfg := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(cfg, []byte(config(zktest.FreePort(t), zk.Port())), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &lockedWriter{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("zkgate's log:\n%s", logs.String())
		}
	})
	gatewayStarted = true
	go func() { gatewayDone <- app.Serve(ctx, cfg, logs) }()
	return ctx, gatewayDone
}

// exited returns an error when the gateway serveZkgate started has ended,
// leaving its result for the test's cleanup.
func exited(gatewayDone chan error) error {
	select {
	case err := <-gatewayDone:
		gatewayDone <- err
		return fmt.Errorf("zkgate exited: %v", err)
	default:
		return nil
	}
}

func TestSummarizeTLS(t *testing.T) {
	targets := []TargetInfo{{Name: Reference, Label: "direct"}, TLSTargets[0], TLSTargets[1], TLSTargets[2]}
	var samples []TLSSample
	add := func(round int, target, kind string, requests int64, cpuMs int64) {
		samples = append(samples, TLSSample{Round: round, Target: target, Kind: kind, Requests: requests, Duration: time.Second,
			CPU: time.Duration(cpuMs) * time.Millisecond})
	}
	for round, scale := range []int64{1, 2, 4} { // the machine doubles its speed each round: ratios stay
		add(round, Reference, KindHTTPS, 40000*scale, 900)
		add(round, "zkgate-tls", KindHTTPS, 10000*scale, 400*scale)   // 40 µs/req, 0.25× direct
		add(round, NginxTLS, KindHTTPS, 12500*scale, 375*scale)       // 30 µs/req
		add(round, "nginx-tls-2", KindHTTPS, 20000*scale, 700*scale)  // 35 µs/req
		add(round, "zkgate-tls", KindHandshake, 900*scale, 180*scale) // 200 µs
		add(round, NginxTLS, KindHandshake, 1000*scale, 150*scale)    // 150 µs
		add(round, "zkgate-tls", KindH2, 7000*scale, 280*scale)       // 40 µs
		add(round, NginxTLS, KindH2, 10000*scale, 300*scale)          // 30 µs
	}
	samples[1].Errors = 3
	rows := SummarizeTLS(samples, targets, Reference)
	if len(rows) != 4+2+2 {
		t.Fatalf("%d rows, want 8 (4 keep-alive, 2 handshake, 2 h2): %+v", len(rows), rows)
	}
	z := rows[1]
	if z.Name != "zkgate-tls" || z.Kind != KindHTTPS || z.Rate != 20000 || z.RateMin != 10000 || z.RateMax != 40000 || z.Rounds != 3 || z.Errors != 3 {
		t.Errorf("zkgate keep-alive row %+v", z)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(z.VsDirect, 0.25) || !near(z.VsNginx, 0.8) || !near(z.CPUPerReq, 40) || !near(z.CPUVsNginx, 40.0/30) {
		t.Errorf("zkgate keep-alive ratios: direct %v, nginx %v, CPU %v µs (%v× nginx); want 0.25, 0.8, 40, 1.33", z.VsDirect, z.VsNginx, z.CPUPerReq, z.CPUVsNginx)
	}
	if n := rows[2]; n.Name != NginxTLS || !math.IsNaN(n.VsNginx) || !near(n.VsDirect, 0.3125) {
		t.Errorf("nginx row %+v: want no ratio to itself, 0.3125× direct", n)
	}
	if d := rows[0]; d.Name != Reference || !math.IsNaN(d.VsDirect) || !math.IsNaN(d.VsNginx) {
		t.Errorf("direct row %+v: want no ratios", d)
	}
	if h := rows[4]; h.Kind != KindHandshake || !near(h.VsNginx, 0.9) || !math.IsNaN(h.VsDirect) {
		t.Errorf("handshake row %+v: want 0.9× nginx, no direct ratio", h)
	}

	res := TLSResults{Rows: rows, Conns: 64, Rounds: 3, Duration: 5 * time.Second}
	goals := TLSGoalsTable(res)
	for _, want := range []string{
		"| HTTPS keep-alive (wrk -c64) | 20,000 req/s (0.25× direct) | 25,000 req/s (0.31× direct) | 40,000 req/s (0.50× direct) | 0.80× | 40.0 | 30.0 | 1.33× | CPU ≤ 1.2× nginx's | no |",
		"| new TLS connection per request (full handshake) | 1,800 handshakes/s | 2,000 handshakes/s | – | 0.90× | 200.0 | 150.0 | 1.33× | rate ≥ 0.8× nginx's | yes |",
		"| HTTP/2 (h2load -c4 -m16) | 14,000 req/s | 20,000 req/s | – | 0.70× | 40.0 | 30.0 | 1.33× | rate ≥ 0.8× nginx's | no |",
	} {
		if !strings.Contains(goals, want) {
			t.Errorf("goals table lacks\n%s\nin\n%s", want, goals)
		}
	}
	table := TLSTable(res, KindHandshake)
	mustContain(t, "handshake table", table, "| target | handshakes/s median (min–max) |", "CPU µs per handshake",
		"| zkgate, TLS entry point | 1,800 (900–3,600) | – | 0.90× | – | 200.0 | 0.36 | 0 |")
	if strings.Contains(table, "| direct") {
		t.Errorf("the handshake table has a direct row:\n%s", table)
	}
}

// lockedWriter collects a log written from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// results.md carries the TLS section, its goals table first under the
// heading scripts/readme-bench.sh copies (BENCH-TLS), and says when the
// section was skipped.
func TestResultsTLSSection(t *testing.T) {
	rows := SummarizeTLS([]TLSSample{
		{Target: Reference, Kind: KindHTTPS, Requests: 300, Duration: time.Second, CPU: 3 * time.Millisecond},
		{Target: "zkgate-tls", Kind: KindHTTPS, Requests: 100, Duration: time.Second, CPU: 4 * time.Millisecond},
		{Target: NginxTLS, Kind: KindHTTPS, Requests: 100, Duration: time.Second, CPU: 3 * time.Millisecond},
	}, []TargetInfo{{Name: Reference, Label: "direct"}, TLSTargets[0], TLSTargets[1]}, Reference)
	r := Results{Options: Options{Command: "make bench", Conns: 64, Rounds: 3, Duration: 5 * time.Second, LatencyDuration: 3 * time.Second},
		TLS: &TLSResults{Rows: rows, Conns: 64, Rounds: 3, Duration: 5 * time.Second, Protocols: map[string]string{KindH2: "TLSv1.3 X h2"}}}
	md := r.Markdown()
	mustContain(t, "results.md", md, "## TLS\n", "### TLS against nginx\n\n| measurement |",
		"| HTTPS keep-alive (wrk -c64) | 100 req/s (0.33× direct) | 100 req/s (0.33× direct) | – | 1.00× | 40.0 | 30.0 | 1.33× | CPU ≤ 1.2× nginx's | no |",
		"`h2load -t1 -n1000 -c1000 --h1 https://…/echo/`", "`h2load -t1 -c4 -m16 -D 5 https://…/echo/`", "HTTP/2 (h2load -c4 -m16): TLSv1.3 X h2.",
		"### TLS, new TLS connection per request (full handshake)\n\n| target | handshakes/s")
	if i, j := strings.Index(md, "## TLS\n"), strings.Index(md, "## Discovery propagation"); i < 0 || j < i {
		t.Errorf("the TLS section is not before discovery propagation")
	}
	readme, err := os.ReadFile("../../scripts/readme-bench.sh")
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, "readme-bench.sh", string(readme), `("BENCH-TLS", "### TLS against nginx")`)
	mustContain(t, "tables", r.Tables(), "TLS against nginx\n\n| measurement |")
	r.TLS = nil
	mustContain(t, "results.md without TLS", r.Markdown(), "## TLS\n\nSkipped in this run (BENCH_TARGETS named no TLS target).")
}

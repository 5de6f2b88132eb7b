package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkgate/zkgate/internal/admin"
	"github.com/zkgate/zkgate/internal/zktest"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// gateway is a zkgate started by a test through Serve.
type gateway struct {
	cfgPath string
	proxy   string // base URL of the proxy listener
	admin   string // base URL of the admin listener
	log     *syncBuffer
	cancel  context.CancelFunc
	done    chan error
}

// writeConfig renders a gateway configuration with the given routes and
// services sections.
func writeConfig(t *testing.T, path, zkAddr string, proxyPort, adminPort int, routes, services string) {
	t.Helper()
	cfg := fmt.Sprintf(`entry_points:
  web: { address: "127.0.0.1:%d" }
admin: { address: "127.0.0.1:%d" }
log: { level: debug, format: json, access_log: { enabled: false } }
shutdown: { drain_delay: 0s, grace_timeout: 10s }
zookeeper: { servers: ["%s"], session_timeout: 4s }
routes:
%s
services:
%s
`, proxyPort, adminPort, zkAddr, routes, services)
	// Write and rename, as a careful operator (or config management) would.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

const echoRoute = `  - name: echo
    match: { path_prefix: /echo }
    strip_prefix: true
    service: echo
    balancer: round_robin`

const echoService = `  echo:
    discovery: { zookeeper: { path: /services/echo } }
    health_check: { passive: { max_failures: 0 } }`

func startGateway(t *testing.T, zkAddr, routes, services string) *gateway {
	t.Helper()
	dir := t.TempDir()
	g := &gateway{cfgPath: filepath.Join(dir, "gateway.yaml"), log: &syncBuffer{}, done: make(chan error, 1)}
	pp, ap := zktest.FreePort(t), zktest.FreePort(t)
	writeConfig(t, g.cfgPath, zkAddr, pp, ap, routes, services)
	g.proxy = fmt.Sprintf("http://127.0.0.1:%d", pp)
	g.admin = fmt.Sprintf("http://127.0.0.1:%d", ap)
	g.serveReady(t)
	return g
}

// serve runs Serve on g's configuration file until the test ends, then
// stops it and, if the test failed, logs the gateway's log.
func (g *gateway) serve(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go func() { g.done <- Serve(ctx, g.cfgPath, g.log) }()
	t.Cleanup(func() {
		g.stop(t)
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.log.String())
		}
	})
}

// serveReady serves g and waits until its admin listener reports it ready:
// its entry points are listening then, and its services have had their
// first ZooKeeper sync. A test's first request must not race the start.
func (g *gateway) serveReady(t *testing.T) {
	t.Helper()
	g.serve(t)
	zktest.WaitFor(t, 30*time.Second, func() bool {
		select {
		case err := <-g.done:
			g.done <- err // for stop
			t.Fatalf("gateway ended while starting: %v", err)
		default:
		}
		return statusOf(g.admin+"/readyz") == http.StatusOK
	}, "gateway ready at %s", g.admin)
}

func (g *gateway) stop(t *testing.T) {
	g.cancel()
	select {
	case err := <-g.done:
		if err != nil {
			t.Errorf("Serve returned %v", err)
		}
		g.done <- nil // later stops return at once
	case <-time.After(30 * time.Second):
		t.Error("gateway did not stop within 30s")
	}
}

func statusOf(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// backend is an httptest server answering with its name.
func backend(t *testing.T, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, name+" "+r.URL.Path)
	}))
	t.Cleanup(s.Close)
	return s
}

func register(t *testing.T, conn *zk.Conn, service, addr string) string {
	t.Helper()
	for _, p := range []string{"/services", "/services/" + service} {
		if _, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	node := "/services/" + service + "/" + addr
	if _, err := conn.Create(node, []byte(addr), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create %s: %v", node, err)
	}
	return node
}

func hostPort(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func TestServeFollowsZooKeeperWithoutRestart(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	conn := zktest.Connect(t, srv.Addr())
	g := startGateway(t, srv.Addr(), echoRoute, echoService)

	// No member yet: 503 with a JSON body naming route and service.
	code, body := get(t, g.proxy+"/echo/x")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"service":"echo"`) {
		t.Fatalf("before registration: %d %s, want 503 naming the service", code, body)
	}

	a := backend(t, "a")
	node := register(t, conn, "echo", hostPort(a))
	zktest.WaitFor(t, 5*time.Second, func() bool { return statusOf(g.proxy+"/echo/x") == http.StatusOK },
		"backend a routed after registration")
	if code, body := get(t, g.proxy+"/echo/x"); code != 200 || body != "a /x" {
		t.Fatalf("GET /echo/x = %d %q, want 200 \"a /x\" (prefix stripped)", code, body)
	}

	b := backend(t, "b")
	register(t, conn, "echo", hostPort(b))
	zktest.WaitFor(t, 5*time.Second, func() bool {
		_, body := get(t, g.proxy+"/echo/")
		return strings.HasPrefix(body, "b ")
	}, "backend b receives traffic after it registered")

	if err := conn.Delete(node, -1); err != nil {
		t.Fatal(err)
	}
	zktest.WaitFor(t, 5*time.Second, func() bool {
		for range 4 {
			if _, body := get(t, g.proxy+"/echo/"); strings.HasPrefix(body, "a ") {
				return false
			}
		}
		return true
	}, "backend a no longer routed after its node was deleted")

	// The admin API shows what the gateway sees.
	code, body = get(t, g.admin+"/api/services/echo")
	if code != 200 || !strings.Contains(body, hostPort(b)) || strings.Contains(body, hostPort(a)) {
		t.Fatalf("admin service view: %d %s", code, body)
	}
	// Each fact once: the member's znode path (no id repeating it), its
	// format as a field of its own (not also in meta).
	var svc struct {
		Endpoints []map[string]any `json:"endpoints"`
	}
	if err := json.Unmarshal([]byte(body), &svc); err != nil || len(svc.Endpoints) != 1 {
		t.Fatalf("admin service view: %v in %s", err, body)
	}
	ep := svc.Endpoints[0]
	meta, _ := ep["meta"].(map[string]any)
	if _, hasID := ep["id"]; hasID || ep["znode"] != "/services/echo/"+hostPort(b) || ep["format"] == nil || meta["format"] != nil {
		t.Errorf("an endpoint repeats itself or misses a fact: %v", ep)
	}
}

func TestReloadAppliesValidConfigAndKeepsRunningOnInvalid(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	conn := zktest.Connect(t, srv.Addr())
	g := startGateway(t, srv.Addr(), echoRoute, echoService)
	a := backend(t, "a")
	register(t, conn, "echo", hostPort(a))
	zktest.WaitFor(t, 5*time.Second, func() bool { return statusOf(g.proxy+"/echo/") == 200 }, "echo routed")

	// A valid change: a second route to the same service, with its own balancer.
	routes := echoRoute + `
  - name: api
    match: { path_prefix: /api }
    service: echo
    balancer: random`
	pp, ap := portOf(t, g.proxy), portOf(t, g.admin)
	writeConfig(t, g.cfgPath, srv.Addr(), pp, ap, routes, echoService)
	zktest.WaitFor(t, 10*time.Second, func() bool { return statusOf(g.proxy+"/api/v") == 200 },
		"route /api added by a file reload")
	if _, body := get(t, g.proxy+"/api/v"); body != "a /api/v" {
		t.Fatalf("new route answered %q", body)
	}

	// An invalid file: the running configuration stays, the error is logged.
	bad := `  - name: broken
    match: { path_prefix: /broken }
    service: nowhere`
	writeConfig(t, g.cfgPath, srv.Addr(), pp, ap, bad, echoService)
	zktest.WaitFor(t, 10*time.Second, func() bool {
		return strings.Contains(g.log.String(), "config reload failed")
	}, "failed reload logged")
	if !strings.Contains(g.log.String(), `unknown service \"nowhere\"`) {
		t.Errorf("reload error does not name the bad service; log:\n%s", g.log.String())
	}
	if code := statusOf(g.proxy + "/api/v"); code != 200 {
		t.Fatalf("after a bad reload /api/v = %d, want the running config kept (200)", code)
	}
	_, metrics := get(t, g.admin+"/metrics")
	if !strings.Contains(metrics, `zkgate_config_reloads_total{result="failure"} 1`) {
		t.Errorf("metrics do not count the failed reload:\n%s", grepLines(metrics, "reloads"))
	}
	// The entry point's connections are counted by what they hold.
	if !strings.Contains(metrics, `zkgate_client_connections{entry_point="web",state="parked"}`) {
		t.Errorf("metrics do not count the entry point's connections:\n%s", grepLines(metrics, "client_connections"))
	}
	// The admin API says what the gateway is: version, uptime, entry points.
	_, stateDoc := get(t, g.admin+"/api/state")
	var st admin.State
	if err := json.Unmarshal([]byte(stateDoc), &st); err != nil {
		t.Fatal(err)
	}
	if gw := st.Gateway; gw.Version == "" || gw.UptimeSeconds <= 0 || len(gw.EntryPoints) != 1 ||
		gw.EntryPoints[0].Name != "web" || "http://"+gw.EntryPoints[0].Address != g.proxy || gw.EntryPoints[0].Protocol != "http" {
		t.Errorf("/api/state gateway = %+v, want the version, an uptime and entry point web at %s", gw, g.proxy)
	}

	// The admin reload endpoint reports the same error.
	resp, err := http.Post(g.admin+"/api/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == 200 || !strings.Contains(string(b), "nowhere") {
		t.Fatalf("POST /api/reload with a bad file: %d %s", resp.StatusCode, b)
	}
}

func TestGracefulShutdownFinishesRequestsInFlight(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	conn := zktest.Connect(t, srv.Addr())
	g := startGateway(t, srv.Addr(), echoRoute, echoService)

	started := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(500 * time.Millisecond) // the request in flight during shutdown
		_, _ = io.WriteString(w, "finished")
	}))
	t.Cleanup(slow.Close)
	register(t, conn, "echo", hostPort(slow))
	zktest.WaitFor(t, 5*time.Second, func() bool {
		ok, _ := g.Ready()
		return ok
	}, "ready")
	zktest.WaitFor(t, 5*time.Second, func() bool { return len(endpointsOf(t, g)) == 1 }, "slow backend known")

	type result struct {
		code int
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get(g.proxy + "/echo/")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{code: resp.StatusCode, body: string(b)}
	}()
	<-started
	zktest.WaitFor(t, 5*time.Second, func() bool { return inFlightOf(t, g, hostPort(slow)) == 1 },
		"the admin API counts the request in flight")
	g.cancel()
	r := <-res
	if r.err != nil || r.code != 200 || r.body != "finished" {
		t.Fatalf("request in flight during shutdown: %d %q %v, want 200 finished", r.code, r.body, r.err)
	}
}

// Ready lets tests ask the admin API whether the gateway is ready.
func (g *gateway) Ready() (bool, string) {
	code := statusOf(g.admin + "/readyz")
	return code == 200, fmt.Sprint(code)
}

func endpointsOf(t *testing.T, g *gateway) []string {
	_, body := get(t, g.admin+"/api/services/echo")
	var svc admin.ServiceInfo
	if err := json.Unmarshal([]byte(body), &svc); err != nil {
		t.Fatalf("admin /api/services/echo: %v in %s", err, body)
	}
	var out []string
	for _, e := range svc.Endpoints {
		out = append(out, e.Addr)
	}
	return out
}

// inFlightOf returns the admin API's in_flight count of the echo endpoint addr.
func inFlightOf(t *testing.T, g *gateway, addr string) int64 {
	_, body := get(t, g.admin+"/api/services/echo")
	var svc admin.ServiceInfo
	if err := json.Unmarshal([]byte(body), &svc); err != nil {
		t.Fatalf("admin /api/services/echo: %v in %s", err, body)
	}
	for _, e := range svc.Endpoints {
		if e.Addr == addr {
			return e.InFlight
		}
	}
	return -1
}

func portOf(t *testing.T, url string) int {
	var p int
	if _, err := fmt.Sscanf(url[strings.LastIndexByte(url, ':')+1:], "%d", &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestReloadStartsAndStopsServices(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	conn := zktest.Connect(t, srv.Addr())
	g := startGateway(t, srv.Addr(), echoRoute, echoService)
	pp, ap := portOf(t, g.proxy), portOf(t, g.admin)
	other := backend(t, "other")
	register(t, conn, "other", hostPort(other))

	// Add a service and a route to it: its watcher starts and finds the member.
	routes := echoRoute + `
  - name: other
    match: { path_prefix: /other }
    service: other
    balancer: round_robin`
	services := echoService + `
  other:
    discovery: { zookeeper: { path: /services/other } }`
	writeConfig(t, g.cfgPath, srv.Addr(), pp, ap, routes, services)
	zktest.WaitFor(t, 10*time.Second, func() bool {
		_, body := get(t, g.proxy+"/other/")
		return body == "other /other/"
	}, "service other routed after a reload added it")

	// Remove it again: the route goes, and the watcher stops (the service
	// leaves the admin view; a leaked watcher would keep it registered).
	writeConfig(t, g.cfgPath, srv.Addr(), pp, ap, echoRoute, echoService)
	zktest.WaitFor(t, 10*time.Second, func() bool { return statusOf(g.proxy+"/other/") == http.StatusNotFound },
		"route other removed by a reload")
	if code := statusOf(g.admin + "/api/services/other"); code != http.StatusNotFound {
		t.Fatalf("service other still known after its removal: %d", code)
	}
}

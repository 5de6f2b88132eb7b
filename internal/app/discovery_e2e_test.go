package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/zkgate/zkgate/internal/admin"
	"github.com/zkgate/zkgate/internal/zktest"
)

// TestDiscoveryFilterAndPropagation runs a gateway over a real ZooKeeper with
// a metadata filter: only the member labelled zone a is routed to, the admin
// API counts the other as filtered, and the propagation lag of the
// registrations shows in the metrics and in the admin API.
func TestDiscoveryFilterAndPropagation(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	conn := zktest.Connect(t, srv.Addr())
	service := `  echo:
    discovery: { zookeeper: { path: /services/echo, filter: { zone: a } } }
    health_check: { passive: { max_failures: 0 } }`
	g := startGateway(t, srv.Addr(), echoRoute, service)

	a, b := backend(t, "a"), backend(t, "b")
	for _, p := range []string{"/services", "/services/echo"} {
		if _, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	nerve := func(name, addr, zone string) {
		host, port, _ := net.SplitHostPort(addr)
		data := fmt.Sprintf(`{"host":%q,"port":%s,"name":%q,"labels":{"zone":%q}}`, host, port, name, zone)
		if _, err := conn.Create("/services/echo/"+name+"_", []byte(data), zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	nerve("a", hostPort(a), "a")
	nerve("b", hostPort(b), "b")

	var svc admin.ServiceInfo
	zktest.WaitFor(t, 10*time.Second, func() bool {
		_, body := get(t, g.admin+"/api/services/echo")
		svc = admin.ServiceInfo{}
		return json.Unmarshal([]byte(body), &svc) == nil && svc.Discovery.Filtered == 1 && len(svc.Endpoints) == 1
	}, "one endpoint and one filtered member in the admin API")
	if svc.Endpoints[0].Addr != hostPort(a) {
		t.Fatalf("endpoint %s, want a at %s", svc.Endpoints[0].Addr, hostPort(a))
	}
	for range 10 {
		if _, body := get(t, g.proxy+"/echo/"); body != "a /" {
			t.Fatalf("routed to %q, want only a", body)
		}
	}
	lag := svc.Discovery.LastPropagationSeconds
	if lag == nil || *lag < 0 || *lag > 10 {
		t.Fatalf("last_propagation_seconds %v, want a value in [0, 10]", lag)
	}

	// a's registration was published; b's node was read too but changed
	// nothing published, so it is not measured.
	countRe := regexp.MustCompile(`zkgate_discovery_propagation_seconds_count\{service="echo"\} (\d+)`)
	sumRe := regexp.MustCompile(`zkgate_discovery_propagation_seconds_sum\{service="echo"\} (\S+)`)
	_, body := get(t, g.admin+"/metrics")
	m, s := countRe.FindStringSubmatch(body), sumRe.FindStringSubmatch(body)
	if m == nil || s == nil {
		t.Fatalf("no propagation histogram for echo in /metrics:\n%s", grepLines(body, "propagation"))
	}
	n, _ := strconv.Atoi(m[1])
	sum, _ := strconv.ParseFloat(s[1], 64)
	if n < 1 || n > 2 || sum < 0 || sum > 10*float64(n) {
		t.Fatalf("propagation histogram count %d sum %v, want 1 or 2 observations of sane size", n, sum)
	}
}

// trackedBackend is an HTTP server answering with its name that counts
// the connections open to it.
type trackedBackend struct {
	s            *httptest.Server
	open, dialed atomic.Int64
}

func startTracked(t *testing.T, name string) *trackedBackend {
	t.Helper()
	b := &trackedBackend{}
	b.s = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, name)
	}))
	b.s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			b.open.Add(1)
			b.dialed.Add(1)
		case http.StateClosed, http.StateHijacked:
			b.open.Add(-1)
		}
	}
	b.s.Start()
	t.Cleanup(b.s.Close)
	return b
}

// routedToAll sends requests for path through g until every name has
// answered.
func routedToAll(t *testing.T, g *gateway, path string, names ...string) {
	t.Helper()
	seen := map[string]bool{}
	zktest.WaitFor(t, 10*time.Second, func() bool {
		if code, body := get(t, g.proxy+path); code == http.StatusOK {
			seen[body] = true
		}
		for _, n := range names {
			if !seen[n] {
				return false
			}
		}
		return true
	}, "all of %v answering", names)
}

// TestDepartedMemberConnectionsClose: when a member deregisters (its
// ephemeral node deleted, as a backend does before it drains and exits),
// the gateway closes its keep-alive connections to it at once rather than
// at the idle timeout (90 s by default), while the member that stays keeps
// its own. With the removal guard holding a mass removal, the held members
// keep theirs while they are routed to, and lose them when the hold ends.
func TestDepartedMemberConnectionsClose(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	conn := zktest.Connect(t, srv.Addr())
	services := `  echo:
    discovery: { zookeeper: { path: /services/echo } }
    health_check: { passive: { max_failures: 0 } }
    removal_guard: { max_percent: 0 }
  held:
    discovery: { zookeeper: { path: /services/held } }
    health_check: { passive: { max_failures: 0 } }
    removal_guard: { max_percent: 50, hold: 2s }`
	routes := echoRoute + `
  - name: held
    match: { path_prefix: /held }
    strip_prefix: true
    service: held
    balancer: round_robin`
	g := startGateway(t, srv.Addr(), routes, services)

	a, b := startTracked(t, "a"), startTracked(t, "b")
	nodeA := register(t, conn, "echo", hostPort(a.s))
	register(t, conn, "echo", hostPort(b.s))
	routedToAll(t, g, "/echo/", "a", "b")
	if a.open.Load() == 0 || b.open.Load() == 0 {
		t.Fatalf("open connections a=%d b=%d, want the gateway's keep-alive connections to both", a.open.Load(), b.open.Load())
	}
	if err := conn.Delete(nodeA, -1); err != nil {
		t.Fatal(err)
	}
	zktest.WaitFor(t, 10*time.Second, func() bool { return a.open.Load() == 0 },
		"the departed member's connections closed")
	if b.open.Load() == 0 {
		t.Error("the remaining member's keep-alive connections were closed too")
	}
	for range 5 {
		if code, body := get(t, g.proxy+"/echo/"); code != http.StatusOK || body != "b" {
			t.Fatalf("after a left: %d %q, want 200 from b", code, body)
		}
	}

	// Two of three leave at once: the guard holds them for 2 s, routed to
	// and with their connections, then drops them and their connections.
	h := []*trackedBackend{startTracked(t, "h0"), startTracked(t, "h1"), startTracked(t, "h2")}
	var nodes []string
	for _, x := range h {
		nodes = append(nodes, register(t, conn, "held", hostPort(x.s)))
	}
	routedToAll(t, g, "/held/", "h0", "h1", "h2")
	// One transaction, so that the watch sees both go at once.
	if _, err := conn.Multi(&zk.DeleteRequest{Path: nodes[0], Version: -1}, &zk.DeleteRequest{Path: nodes[1], Version: -1}); err != nil {
		t.Fatal(err)
	}
	zktest.WaitFor(t, 5*time.Second, func() bool { return serviceInfoOf(t, g, "held").RemovalGuard.Held == 2 },
		"the removal guard to hold the two")
	before := h[0].dialed.Load() + h[1].dialed.Load()
	for range 6 {
		if code, _ := get(t, g.proxy+"/held/"); code != http.StatusOK {
			t.Fatalf("during the hold: %d, want 200", code)
		}
	}
	if n := h[0].dialed.Load() + h[1].dialed.Load() - before; n != 0 {
		t.Fatalf("%d new connections to the held members during the hold, want their kept-alive ones reused", n)
	}
	zktest.WaitFor(t, 10*time.Second, func() bool { return h[0].open.Load() == 0 && h[1].open.Load() == 0 },
		"the held members' connections closed when the hold ended")
	if h[2].open.Load() == 0 {
		t.Error("the member that stayed lost its keep-alive connections")
	}
}

// TestDrainedMemberConnectionsClose: draining a member through the admin
// API closes the gateway's keep-alive connections to it, and undraining it
// routes to it again on connections kept alive as before.
func TestDrainedMemberConnectionsClose(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	conn := zktest.Connect(t, srv.Addr())
	g := startGateway(t, srv.Addr(), echoRoute, `  echo:
    discovery: { zookeeper: { path: /services/echo } }
    health_check: { passive: { max_failures: 0 } }
    removal_guard: { max_percent: 0 }`)
	a, b := startTracked(t, "a"), startTracked(t, "b")
	register(t, conn, "echo", hostPort(a.s))
	register(t, conn, "echo", hostPort(b.s))
	routedToAll(t, g, "/echo/", "a", "b")

	admin := func(action string) {
		t.Helper()
		code, body, _ := adminDo(t, http.MethodPost, g.admin+"/api/services/echo/endpoints/"+hostPort(a.s)+"/"+action, "", "", "")
		if code != http.StatusOK && code != http.StatusNoContent {
			t.Fatalf("%s: %d %s", action, code, body)
		}
	}
	admin("drain")
	zktest.WaitFor(t, 10*time.Second, func() bool { return a.open.Load() == 0 },
		"the drained member's connections closed")
	for range 4 {
		if code, body := get(t, g.proxy+"/echo/"); code != http.StatusOK || body != "b" {
			t.Fatalf("while a is drained: %d %q, want 200 from b", code, body)
		}
	}
	if b.open.Load() == 0 {
		t.Error("the other member lost its keep-alive connections")
	}

	admin("undrain")
	routedToAll(t, g, "/echo/", "a")
	dialed := a.dialed.Load()
	for range 6 {
		if code, _ := get(t, g.proxy+"/echo/"); code != http.StatusOK {
			t.Fatalf("after undrain: %d, want 200", code)
		}
	}
	if n := a.dialed.Load() - dialed; n != 0 {
		t.Errorf("%d new connections to the undrained member over 6 requests, want its kept-alive one reused", n)
	}
}

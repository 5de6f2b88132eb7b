package app

import (
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/admin/browsertest"
	"github.com/zkgate/zkgate/internal/zktest"
)

var update = flag.Bool("update", false, "write the status page screenshot of the end-to-end test to docs/status-page.png")

// healthBackend is a backend whose /healthz can be made to fail.
type healthBackend struct {
	*httptest.Server
	failing atomic.Bool
}

func newHealthBackend(t *testing.T, name string) *healthBackend {
	t.Helper()
	b := &healthBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && b.failing.Load() {
			http.Error(w, "failing", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(b.Close)
	return b
}

// TestStatusReflectsScalingAndHealth drives a real gateway over a real
// ZooKeeper and checks that the admin API, the metrics and the status page in
// headless Chromium follow a scale-up, a health-check failure and a
// scale-down, without reloading the page.
func TestStatusReflectsScalingAndHealth(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	conn := zktest.Connect(t, srv.Addr())
	service := `  echo:
    discovery: { zookeeper: { path: /services/echo } }
    health_check:
      active: { type: http, path: /healthz, interval: 200ms, timeout: 150ms, healthy_threshold: 1, unhealthy_threshold: 1 }`
	g := startGateway(t, srv.Addr(), echoRoute, service)

	a, b, c := newHealthBackend(t, "a"), newHealthBackend(t, "b"), newHealthBackend(t, "c")
	nodeA := register(t, conn, "echo", hostPort(a.Server))
	register(t, conn, "echo", hostPort(b.Server))

	browser := browsertest.New(t)
	tab := browsertest.NewTab(t, browser)
	browsertest.Open(t, tab, g.admin+"/?refresh=200")
	rowState := func(addr string) string {
		sel := `tr[data-service="echo"][data-endpoint="` + addr + `"]`
		return `(document.querySelector(` + browsertest.JSString(sel) + `)||{dataset:{}}).dataset.state`
	}
	waitRow := func(addr, state, what string) {
		t.Helper()
		browsertest.WaitFor(t, tab, rowState(addr)+` === `+browsertest.JSString(state), 10*time.Second)
		t.Logf("page: %s", what)
	}
	waitRow(hostPort(a.Server), "healthy", "a healthy")
	waitRow(hostPort(b.Server), "healthy", "b healthy")
	for range 20 {
		get(t, g.proxy+"/echo/")
	}

	// Scale up: c registers and shows up on the page, in the API and in
	// the metrics.
	register(t, conn, "echo", hostPort(c.Server))
	waitRow(hostPort(c.Server), "healthy", "c appeared after it registered")
	waitMetric(t, g, `zkgate_endpoints{service="echo",state="healthy"} 3`)
	if eps := endpointsOf(t, g); len(eps) != 3 {
		t.Fatalf("API after scale-up: %v, want 3 endpoints", eps)
	}

	// A health-check failure: b turns unhealthy everywhere.
	b.failing.Store(true)
	waitRow(hostPort(b.Server), "unhealthy", "b unhealthy after its health check failed")
	waitMetric(t, g, `zkgate_endpoints{service="echo",state="unhealthy"} 1`)
	for range 10 {
		if _, body := get(t, g.proxy+"/echo/"); body == "b" {
			t.Fatal("request routed to the unhealthy backend b")
		}
	}

	// Scale down: a's node goes; its row disappears without a page reload.
	if err := conn.Delete(nodeA, -1); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, tab, rowState(hostPort(a.Server))+` === undefined`, 10*time.Second)
	waitMetric(t, g, `zkgate_endpoints{service="echo",state="healthy"} 1`)
	if eps := endpointsOf(t, g); len(eps) != 2 || strings.Contains(strings.Join(eps, ","), hostPort(a.Server)) {
		t.Fatalf("API after scale-down: %v", eps)
	}
	if n := browsertest.Eval[int](t, tab, `document.querySelectorAll('tr[data-service="echo"][data-endpoint]').length`); n != 2 {
		t.Fatalf("page shows %d endpoint rows after the scale-down, want 2", n)
	}

	shot := filepath.Join(t.TempDir(), "status-page.png")
	browsertest.Screenshot(t, tab, shot)
	if *update {
		browsertest.Screenshot(t, tab, filepath.Join("..", "..", "docs", "status-page.png"))
	}
}

func waitMetric(t *testing.T, g *gateway, series string) {
	t.Helper()
	zktest.WaitFor(t, 10*time.Second, func() bool {
		_, body := get(t, g.admin+"/metrics")
		return strings.Contains(body, series)
	}, "metric %s", series)
}

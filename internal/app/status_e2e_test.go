package app

import (
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/admin"
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
	// With the time it has been so.
	browsertest.WaitFor(t, tab, `/^for \d+s$/.test(document.querySelector('tr[data-endpoint=`+browsertest.JSString(hostPort(b.Server))+`] .ep-since')?.textContent)`, 10*time.Second)
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

// echoInfo returns the admin API's view of the service echo.
func echoInfo(t *testing.T, g *gateway) admin.ServiceInfo {
	t.Helper()
	_, body := get(t, g.admin+"/api/services/echo")
	var svc admin.ServiceInfo
	if err := json.Unmarshal([]byte(body), &svc); err != nil {
		t.Fatalf("admin /api/services/echo: %v in %s", err, body)
	}
	return svc
}

// TestStatusShowsFailingBackend drives a real gateway over a real ZooKeeper
// with one backend answering 500 to everything: the admin API and the
// status page in headless Chromium show its error rate, its ejection and
// how long it has been ejected, and the 5xx rates of its service and route.
func TestStatusShowsFailingBackend(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	conn := zktest.Connect(t, srv.Addr())
	service := `  echo:
    discovery: { zookeeper: { path: /services/echo } }
    health_check: { passive: { max_failures: 3, server_errors: true, ejection: 1m } }`
	g := startGateway(t, srv.Addr(), echoRoute, service)

	good := backend(t, "good")
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "failing", http.StatusInternalServerError)
	}))
	t.Cleanup(bad.Close)
	register(t, conn, "echo", hostPort(good))
	register(t, conn, "echo", hostPort(bad))
	zktest.WaitFor(t, 10*time.Second, func() bool { return len(endpointsOf(t, g)) == 2 }, "both backends listed")

	// Traffic until the failing backend is ejected: round robin sends it
	// every other request, three 500s in a row eject it.
	badAddr := hostPort(bad)
	stateOf := func() admin.EndpointInfo {
		for _, e := range echoInfo(t, g).Endpoints {
			if e.Addr == badAddr {
				return e
			}
		}
		return admin.EndpointInfo{}
	}
	zktest.WaitFor(t, 10*time.Second, func() bool {
		get(t, g.proxy+"/echo/")
		return stateOf().State == "ejected"
	}, "the failing backend ejected")

	// The API: the endpoint's attempts all failed, it was ejected once,
	// and since when is known; the service and the route count the 5xx.
	svc := echoInfo(t, g)
	for _, e := range svc.Endpoints {
		tr := e.Traffic
		switch e.Addr {
		case badAddr:
			if e.Since.IsZero() || time.Since(e.Since) < 0 || time.Since(e.Since) > time.Minute {
				t.Errorf("the ejected endpoint's since is %v", e.Since)
			}
			if tr.Requests < 3 || tr.Errors != tr.Requests || tr.Ejections != 1 || tr.LatencyP99Seconds == nil {
				t.Errorf("the failing endpoint's traffic %+v, want every attempt failed and 1 ejection", tr)
			}
		default:
			if tr.Requests == 0 || tr.Errors != 0 || tr.Ejections != 0 {
				t.Errorf("the good endpoint's traffic %+v, want requests without errors", tr)
			}
		}
	}
	if tr := svc.Traffic; tr.Errors < 3 || tr.Requests <= tr.Errors || tr.Ejections != 1 || tr.WindowSeconds <= 0 || tr.WindowSeconds > 60 {
		t.Errorf("the service's traffic %+v, want its 5xx among its requests and 1 ejection", tr)
	}
	_, body := get(t, g.admin+"/api/state")
	var st admin.State
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Routes) != 1 || st.Routes[0].Traffic.Errors < 3 || st.Routes[0].Traffic.Requests != svc.Traffic.Requests {
		t.Errorf("routes %+v, want echo with the service's requests and 5xx", st.Routes)
	}

	// The page: the failing endpoint shows its error rate, its ejection and
	// its time in state; the service and the route their 5xx rates.
	browser := browsertest.New(t)
	tab := browsertest.NewTab(t, browser)
	browsertest.Open(t, tab, g.admin+"/?refresh=200")
	row := `document.querySelector(` + browsertest.JSString(`tr[data-service="echo"][data-endpoint="`+badAddr+`"]`) + `)`
	browsertest.WaitFor(t, tab, row+`?.dataset.state === 'ejected'`, 10*time.Second)
	browsertest.WaitFor(t, tab, row+`.querySelector('.ep-errors').textContent === '100%' && `+
		row+`.querySelector('.ep-ejections').textContent === '1' && `+
		`/^for \d+s$/.test(`+row+`.querySelector('.ep-since').textContent)`, 10*time.Second)
	browsertest.WaitFor(t, tab, `/^5xx \d+(\.\d)?%$/.test(document.querySelector('[data-service="echo"] [data-fig="errors"]').textContent) && `+
		`document.querySelector('[data-service="echo"] [data-fig="errors"]').dataset.bad === 'true' && `+
		`document.querySelector('[data-service="echo"] [data-fig="ejections"]').textContent === '1 ejection' && `+
		`document.querySelector('#routes tr[data-route="echo"] .rt-errors').dataset.bad === 'true'`, 10*time.Second)
	shot := filepath.Join(t.TempDir(), "status-page-failing.png")
	browsertest.Screenshot(t, tab, shot)
	t.Logf("screenshot: %s", shot)
}

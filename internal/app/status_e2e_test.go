package app

import (
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkgate/zkgate/internal/admin"
	"github.com/zkgate/zkgate/internal/admin/browsertest"
	"github.com/zkgate/zkgate/internal/version"
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
		for _, e := range serviceInfo(t, g).Endpoints {
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
	svc := serviceInfo(t, g)
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

// TestStatusPageFleet drives the status page of a real fleet gateway over
// a real ZooKeeper: the gateways of the fleet listed with their address,
// version and configuration version, one announcing an older configuration
// flagged, and a malformed znode written by another client named in the
// header's summary and counted in /api/state's fleet summary.
func TestStatusPageFleet(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	conn := zktest.Connect(t, srv.Addr())
	a := backend(t, "a")
	register(t, conn, "echo", hostPort(a))
	e := newFleetEnv(srv)
	gws := []*gateway{e.start(t, "gw-1"), e.start(t, "gw-2")}
	if code, body, _ := adminDo(t, http.MethodPut, gws[0].admin+"/api/routes/echo", fleetToken, "", echoRouteAndService); code != http.StatusOK {
		t.Fatalf("PUT = %d %s", code, body)
	}
	zktest.WaitFor(t, 10*time.Second, func() bool {
		fi := getFleet(t, gws[0])
		return fi.Routes == 1 && len(fi.Gateways) == 2 && fi.Gateways[0].ConfigVersion == fi.Version && fi.Gateways[1].ConfigVersion == fi.Version
	}, "both gateways on the route's version")
	good := getFleet(t, gws[0]).Version
	// A third gateway, announced by another client, runs an older version.
	old, err := json.Marshal(map[string]any{"name": "gw-old", "address": "127.0.0.1:1", "version": "v0.9.0",
		"config_version": good - 1, "since": time.Now().Add(-time.Hour), "started": time.Now().Add(-2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Create(e.gatewaysPath+"/gw-old", old, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}

	browser := browsertest.New(t)
	tab := browsertest.NewTab(t, browser)
	browsertest.Open(t, tab, gws[0].admin+"/?refresh=200&token="+fleetToken)
	row := func(name string) string {
		return `document.querySelector('#fleet-gateways tr[data-gateway="` + name + `"]')`
	}
	browsertest.WaitFor(t, tab, `document.querySelectorAll('#fleet-gateways tr[data-gateway]').length === 3`, 10*time.Second)
	for i, name := range []string{"gw-1", "gw-2"} {
		cells := browsertest.Eval[string](t, tab, `Array.from(`+row(name)+`.cells).slice(1, 4).map((c) => c.textContent).join(' | ')`)
		want := strings.TrimPrefix(gws[i].admin, "http://") + " | " + version.Version + " | " + strconv.FormatInt(good, 10)
		if cells != want {
			t.Errorf("%s's row: %q, want %q", name, cells, want)
		}
		if browsertest.Eval[string](t, tab, row(name)+`.dataset.behind`) != "false" {
			t.Errorf("%s, on the latest version, is flagged behind", name)
		}
	}
	if got := browsertest.Eval[string](t, tab, row("gw-old")+`.dataset.behind + ' ' + `+row("gw-old")+`.cells[5].textContent`); got != "true older configuration" {
		t.Errorf("gw-old, on an older version: %q, want it flagged", got)
	}
	browsertest.WaitFor(t, tab, `document.getElementById('ready').textContent === 'Ready'`, 10*time.Second)

	// Another client writes a malformed route: the header names it.
	bad := e.configPath + "/routes/broken"
	if _, err := conn.Create(bad, []byte(`{"service": "echo", "timeout": "soon"}`), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	want := `Ready · 1 problem: fleet ` + bad + ` timeout: invalid duration "soon"`
	browsertest.WaitFor(t, tab, `document.getElementById('ready').textContent.startsWith(`+browsertest.JSString(want)+`)`, 10*time.Second)
	var st struct {
		Fleet admin.FleetSummary `json:"fleet"`
	}
	code, body, _ := adminDo(t, http.MethodGet, gws[0].admin+"/api/state", fleetToken, "", "")
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil {
		t.Fatalf("GET /api/state = %d (%v)", code, err)
	}
	if st.Fleet != (admin.FleetSummary{Enabled: true, Version: good, Problems: 1}) {
		t.Errorf("/api/state fleet = %+v, want enabled, version %d, 1 problem", st.Fleet, good)
	}
	shot := filepath.Join(t.TempDir(), "status-page-fleet.png")
	browsertest.Screenshot(t, tab, shot)
	t.Logf("screenshot: %s", shot)

	// Repaired: the header clears.
	if err := conn.Delete(bad, -1); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, tab, `document.getElementById('ready').textContent === 'Ready'`, 10*time.Second)
}

package admin

import (
	"context"
	"flag"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/admin/browsertest"
)

var update = flag.Bool("update", false, "also write the status page screenshot to docs/status-page.png")

// screenshotPath is where -update writes the screenshot the README shows.
const screenshotPath = "../../docs/status-page.png"

// row is the selector of an endpoint's row on the status page.
func row(service, addr string) string {
	sel := `tr[data-service="` + service + `"][data-endpoint="` + addr + `"]`
	return `document.querySelector(` + browsertest.JSString(sel) + `)`
}

// TestStatusPageInBrowser loads the status page in headless Chromium against
// fake sources; its subtests share one browser.
func TestStatusPageInBrowser(t *testing.T) {
	browser := browsertest.New(t)
	t.Run("live", func(t *testing.T) { testStatusPageLive(t, browsertest.NewTab(t, browser)) })
	t.Run("asks for token", func(t *testing.T) { testStatusPageAsksForToken(t, browsertest.NewTab(t, browser)) })
	t.Run("fleet", func(t *testing.T) { testStatusPageFleet(t, browsertest.NewTab(t, browser)) })
}

// testStatusPageLive checks what an operator sees: every endpoint with its
// state and colour, live updates without a reload, rates, the drain button,
// and a lost ZooKeeper session.
func testStatusPageLive(t *testing.T, b context.Context) {
	src := newFakeSource()
	src.rebase(time.Now())
	s := newTestServer(t, src, Options{Token: testToken})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()

	// Traffic to the healthy endpoints, so that the page shows rates.
	ctx, stopTraffic := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				src.addTraffic(3)
			}
		}
	})
	defer wg.Wait()
	defer stopTraffic()

	// The token comes in the query; the page must move it to sessionStorage
	// and send it as a bearer token, else every poll fails with 401.
	browsertest.Open(t, b, ts.URL+"/?refresh=200&token="+testToken)
	if loc := browsertest.Eval[string](t, b, `location.search`); loc != "?refresh=200" {
		t.Errorf("the page kept the token in its address: search = %q", loc)
	}

	for _, svc := range src.Services() {
		for _, ep := range svc.Endpoints {
			browsertest.WaitFor(t, b, row(svc.Name, ep.Addr)+`?.dataset.state === `+browsertest.JSString(ep.State), 5*time.Second)
		}
	}
	// Each state has its colour.
	for state, rgb := range map[string]string{
		StateHealthy: "rgb(22, 163, 74)", StateUnhealthy: "rgb(220, 38, 38)",
		StateEjected: "rgb(234, 88, 12)", StateDraining: "rgb(107, 114, 128)",
	} {
		got := browsertest.Eval[string](t, b, `getComputedStyle(document.querySelector('tr[data-state=`+browsertest.JSString(state)+`] .pill')).color`)
		if got != rgb {
			t.Errorf("a %s endpoint's state is shown in %s, want %s", state, got, rgb)
		}
	}
	browsertest.WaitFor(t, b, `document.getElementById('zk-state').dataset.state === 'connected'`, 5*time.Second)
	// Without fleet mode the page shows nothing of it.
	if !browsertest.Eval[bool](t, b, `document.getElementById('fleet').hidden`) {
		t.Error("the fleet section is shown without fleet mode")
	}
	// Ready, but the header says what is wrong: users serves a stale
	// membership.
	browsertest.WaitFor(t, b, `document.getElementById('ready').dataset.problems === '1' && document.getElementById('ready').textContent === 'Ready · 1 problem: users stale' && document.getElementById('ready').classList.contains('warn')`, 5*time.Second)
	// A service in panic mode is named first among them, with its counts.
	setPanic := func(on bool) {
		src.update(func(f *fakeSource) {
			svc := f.services["users"]
			svc.Panicking = on
			f.services["users"] = svc
		})
	}
	setPanic(true)
	browsertest.WaitFor(t, b, `document.getElementById('ready').textContent === 'Ready · 2 problems: users in panic mode (1 of 1 healthy), users stale'`, 5*time.Second)
	setPanic(false)
	browsertest.WaitFor(t, b, `document.getElementById('ready').dataset.problems === '1'`, 5*time.Second)
	// The header names the version, the uptime and the entry points with
	// their protocol and open connections (the fake's: 37 of them).
	browsertest.WaitFor(t, b, `/^v9\.9\.9-test · up 3h · web 127\.0\.0\.1:8080 \(http, 37 conn\)$/.test(document.getElementById('gw-info').textContent)`, 5*time.Second)
	// A TLS entry point shows its protocols and soonest expiry; a
	// certificate expiring soon and a refused reload are problems.
	src.update(func(f *fakeSource) {
		f.tls = &TLSInfo{MinVersion: "1.2", ClientAuth: "none", ReloadFailures: 1,
			LastReloadFailure: "certificates[0].key_file /etc/tls/api.key: does not match cert_file /etc/tls/api.crt",
			Certificates: []CertificateInfo{
				{CertFile: "/etc/tls/api.crt", Names: []string{"api.example.com"}, NotAfter: time.Date(2026, 12, 12, 0, 0, 0, 0, time.UTC), ExpiresSoon: true},
				{CertFile: "/etc/tls/www.crt", Names: []string{"www.example.com"}, NotAfter: time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)},
			}}
	})
	browsertest.WaitFor(t, b, `/ · websecure 127\.0\.0\.1:8443 \(https, h2, 2 conn\) cert expires 2026-12-12$/.test(document.getElementById('gw-info').textContent)`, 5*time.Second)
	browsertest.WaitFor(t, b, `document.getElementById('ready').title.includes('websecure certificate api.example.com expires 2026-12-12') && document.getElementById('ready').title.includes('websecure certificate reload refused: certificates[0].key_file /etc/tls/api.key')`, 5*time.Second)
	src.update(func(f *fakeSource) { f.tls = nil })
	browsertest.WaitFor(t, b, `document.querySelector('[data-service="users"] [data-flag="flag-stale"]') !== null`, 5*time.Second)
	// A service serving the membership snapshot says so, with the age.
	browsertest.WaitFor(t, b, `document.querySelector('[data-service="users"] [data-flag="flag-snapshot"]')?.textContent === 'from snapshot, read 12m ago'`, 5*time.Second)
	if n := browsertest.Eval[int](t, b, `document.querySelectorAll('[data-flag="flag-snapshot"]').length`); n != 1 {
		t.Errorf("%d services flagged as serving the snapshot, want 1 (users)", n)
	}
	browsertest.WaitFor(t, b, `document.getElementById('zk-detail-snapshot').textContent.startsWith('/var/lib/zkgate/membership.json: read at start') && document.getElementById('zk-detail-snapshot').textContent.includes('serving it for users')`, 5*time.Second)
	browsertest.WaitFor(t, b, `document.querySelectorAll('#routes tr[data-route]').length === 2`, 5*time.Second)
	// A healthy endpoint receiving traffic shows a positive rate.
	browsertest.WaitFor(t, b, `parseFloat(`+row("echo", "127.0.0.1:9002")+`.querySelector('.ep-rate').textContent) > 0`, 5*time.Second)

	// The last minute's figures: a failing endpoint shows its error rate
	// and how long it has been in its state.
	text := func(sel string) string {
		return `document.querySelector(` + browsertest.JSString(sel) + `)?.textContent`
	}
	epText := func(addr, class string) string {
		return row("echo", addr) + `?.querySelector('.` + class + `')?.textContent`
	}
	for _, c := range []struct{ what, expr, want string }{
		{"unhealthy endpoint's time in state", epText("127.0.0.1:9003", "ep-since"), "for 2m"},
		{"unhealthy endpoint's 5xx", epText("127.0.0.1:9003", "ep-errors"), "100%"},
		{"ejected endpoint's ejections", epText("127.0.0.1:9004", "ep-ejections"), "2"},
		{"ejected endpoint's retries", epText("127.0.0.1:9004", "ep-retries"), "54"},
		{"ejected endpoint's latency", epText("127.0.0.1:9004", "ep-latency"), "1.90s / 2.20s"},
		{"healthy endpoint's 5xx", epText("127.0.0.1:9002", "ep-errors"), "0%"},
		{"healthy endpoint's time in state", epText("127.0.0.1:9002", "ep-since"), "for 3h"},
		{"drained endpoint without traffic", epText("127.0.0.1:9005", "ep-latency"), "– / –"},
		{"service 5xx", text(`[data-service="echo"] .service-traffic [data-fig="errors"]`), "5xx 1.4%"},
		{"service p50", text(`[data-service="echo"] .service-traffic [data-fig="p50"]`), "p50 4.2ms"},
		{"service p99", text(`[data-service="echo"] .service-traffic [data-fig="p99"]`), "p99 210ms"},
		{"service retries", text(`[data-service="echo"] .service-traffic [data-fig="retries"]`), "54 retries"},
		{"service ejections", text(`[data-service="echo"] .service-traffic [data-fig="ejections"]`), "2 ejections"},
		{"route request rate", text(`#routes tr[data-route="echo"] .rt-rate`), "216"},
		{"route 5xx", text(`#routes tr[data-route="echo"] .rt-errors`), "1.4%"},
		{"route latency", text(`#routes tr[data-route="users"] .rt-latency`), "2.1ms / 9.4ms"},
		{"gateway 5xx", text(`#sum-errors`), "0.6%"},
	} {
		if got := browsertest.Eval[string](t, b, c.expr); got != c.want {
			t.Errorf("%s: %q, want %q", c.what, got, c.want)
		}
	}
	if got := browsertest.Eval[string](t, b, epText("127.0.0.1:9004", "ep-since")); !regexp.MustCompile(`^for \d+s$`).MatchString(got) {
		t.Errorf("ejected endpoint's time in state: %q, want for some seconds", got)
	}
	// Errors are shown in red.
	if got := browsertest.Eval[string](t, b, `getComputedStyle(`+row("echo", "127.0.0.1:9003")+`.querySelector('.ep-errors')).color`); got != "rgb(220, 38, 38)" {
		t.Errorf("an endpoint's 5xx rate is shown in %s, want red", got)
	}

	// The screenshot shows every state; sparklines need a few samples.
	browsertest.WaitFor(t, b, `Number(document.getElementById('app').dataset.polls) >= 12`, 10*time.Second)
	shot := filepath.Join(t.TempDir(), "status-page.png")
	browsertest.Screenshot(t, b, shot)
	t.Logf("screenshot: %s", shot)
	if *update {
		browsertest.Screenshot(t, b, screenshotPath)
		t.Logf("screenshot: %s", screenshotPath)
	}

	// An endpoint leaving ZooKeeper disappears without a page reload.
	browsertest.Eval[bool](t, b, `window.__sameDocument = true`)
	src.removeEndpoint("echo", "127.0.0.1:9004")
	browsertest.WaitFor(t, b, row("echo", "127.0.0.1:9004")+` === null`, 5*time.Second)
	if !browsertest.Eval[bool](t, b, `window.__sameDocument === true`) {
		t.Fatal("the page reloaded to show the change")
	}
	if n := browsertest.Eval[int](t, b, `document.querySelectorAll('tr[data-service="echo"][data-endpoint]').length`); n != 4 {
		t.Errorf("echo shows %d endpoints after the removal, want 4", n)
	}

	// The drain button drains through the API, with the token.
	browsertest.Eval[bool](t, b, row("echo", "127.0.0.1:9005")+`.querySelector('button[data-action="undrain"]').click() === undefined`)
	browsertest.WaitFor(t, b, row("echo", "127.0.0.1:9005")+`?.dataset.state === 'healthy'`, 5*time.Second)
	src.mu.Lock()
	actions := slices.Clone(src.actions)
	src.mu.Unlock()
	if !slices.Contains(actions, "undrain echo 127.0.0.1:9005") {
		t.Errorf("source actions = %q, want the undrain of 127.0.0.1:9005", actions)
	}

	// A removal guard holding members shows as a flag with the count and end.
	until := time.Now().Add(30 * time.Second)
	src.update(func(f *fakeSource) {
		svc := f.services["echo"]
		svc.RemovalGuard = RemovalGuardInfo{Active: true, Held: 3, Until: until, Engagements: 1}
		f.services["echo"] = svc
	})
	flag := `document.querySelector('[data-service="echo"] [data-flag="flag-guard"]')`
	browsertest.WaitFor(t, b, flag+` !== null`, 5*time.Second)
	if got, want := browsertest.Eval[string](t, b, flag+`.textContent`), "removal guard: holding 3 members until "; !strings.HasPrefix(got, want) {
		t.Errorf("removal guard flag %q, want it to start with %q", got, want)
	}
	src.update(func(f *fakeSource) {
		svc := f.services["echo"]
		svc.RemovalGuard = RemovalGuardInfo{Engagements: 1}
		f.services["echo"] = svc
	})
	browsertest.WaitFor(t, b, flag+` === null`, 5*time.Second)

	// Losing the ZooKeeper session shows in the header and a banner.
	src.update(func(f *fakeSource) {
		f.zk.State, f.zk.Connected, f.zk.SessionID = "connecting", false, ""
		f.ready, f.reason = false, "draining"
	})
	browsertest.WaitFor(t, b, `document.getElementById('zk-state').dataset.state === 'connecting' && `+
		`document.getElementById('zk-state').classList.contains('bad') && !document.getElementById('zk-banner').hidden && `+
		`document.getElementById('ready').dataset.ready === 'false'`, 5*time.Second)
}

// testStatusPageAsksForToken checks that a page opened without the token
// says so instead of showing nothing, and works once given the token.
func testStatusPageAsksForToken(t *testing.T, b context.Context) {
	s := newTestServer(t, newFakeSource(), Options{Token: testToken})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()

	if err := browsertest.Navigate(b, ts.URL+"/?refresh=200"); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(t, b, `!document.getElementById('token-form').hidden && document.getElementById('live').dataset.live === 'error'`, 5*time.Second)

	browsertest.Eval[bool](t, b, `(() => { document.getElementById('token-input').value = `+browsertest.JSString(testToken)+
		`; document.querySelector('#token-form button').click(); return true; })()`)
	browsertest.WaitFor(t, b, `document.getElementById('app').dataset.loaded === 'true' && document.getElementById('token-form').hidden`, 5*time.Second)
}

// testStatusPageFleet checks fleet mode on the page: the gateways of the
// fleet with their address, version, configuration version and time since,
// the one running an older configuration flagged, and a refused version's
// problem (znode, key, problem) named in the header's summary.
func testStatusPageFleet(t *testing.T, b context.Context) {
	src := &fleetFake{fakeSource: newFakeSource()}
	src.rebase(time.Now())
	now := time.Now()
	gateways := []FleetGateway{
		{Name: "gw-1", Address: "10.0.0.1:9901", Version: "v1.4.0", ConfigVersion: 4294967400, Since: now.Add(-2 * time.Minute)},
		{Name: "gw-2", Address: "10.0.0.2:9901", Version: "v1.4.0", ConfigVersion: 4294967400, Since: now.Add(-2 * time.Minute)},
		{Name: "gw-3", Address: "10.0.0.3:9901", Version: "v1.3.2", ConfigVersion: 4294967390, Since: now.Add(-3 * time.Hour), Behind: true},
	}
	good := FleetInfo{Name: "gw-1", ConfigPath: "/zkgate/config", GatewaysPath: "/zkgate/gateways",
		Version: 4294967400, Latest: 4294967400, Problems: []FleetProblem{}, Gateways: gateways}
	src.setFleet(good)
	ts := httptest.NewServer(newTestServer(t, src, Options{Token: testToken}).Handler())
	defer ts.Close()
	browsertest.Open(t, b, ts.URL+"/?refresh=200&token="+testToken)

	gw := func(name string) string {
		return `document.querySelector('#fleet-gateways tr[data-gateway="` + name + `"]')`
	}
	browsertest.WaitFor(t, b, `!document.getElementById('fleet').hidden && document.querySelectorAll('#fleet-gateways tr[data-gateway]').length === 3`, 5*time.Second)
	cells := func(name string) string {
		return browsertest.Eval[string](t, b, `Array.from(`+gw(name)+`.cells).map((c) => c.textContent).join(' | ')`)
	}
	if got, want := cells("gw-1"), "gw-1 (this one) | 10.0.0.1:9901 | v1.4.0 | 4294967400 | 2m ago | "; got != want {
		t.Errorf("gw-1's row: %q, want %q", got, want)
	}
	if got, want := cells("gw-3"), "gw-3 | 10.0.0.3:9901 | v1.3.2 | 4294967390 | 3h ago | older configuration"; got != want {
		t.Errorf("gw-3's row: %q, want %q", got, want)
	}
	if n := browsertest.Eval[int](t, b, `document.querySelectorAll('#fleet-gateways [data-flag="gateway-behind"]').length`); n != 1 {
		t.Errorf("%d gateways flagged as running an older configuration, want 1 (gw-3)", n)
	}
	if got := browsertest.Eval[string](t, b, `getComputedStyle(`+gw("gw-3")+`.cells[0]).backgroundColor`); got != "rgb(255, 237, 213)" {
		t.Errorf("the gateway behind is shown on %s, want the warning colour", got)
	}
	browsertest.WaitFor(t, b, `document.querySelector('#fleet-flags [data-flag="fleet-behind"]')?.textContent === '1 gateway behind'`, 5*time.Second)
	// A gateway behind is not a problem of this one: the header names only
	// the fake's stale service.
	browsertest.WaitFor(t, b, `document.getElementById('ready').textContent === 'Ready · 1 problem: users stale'`, 5*time.Second)

	// Another client writes a malformed znode: the version is refused,
	// and the header names the znode, the key and the problem.
	bad := good
	bad.Latest = 4294967410
	bad.Problems = []FleetProblem{{Znode: "/zkgate/config/routes/broken", Key: "timeout", Problem: `invalid duration "soon"`}}
	src.setFleet(bad)
	browsertest.WaitFor(t, b, `document.getElementById('ready').textContent === `+
		browsertest.JSString(`Ready · 2 problems: users stale, fleet /zkgate/config/routes/broken timeout: invalid duration "soon"`)+
		` && document.getElementById('ready').classList.contains('warn')`, 5*time.Second)
	if got, want := browsertest.Eval[string](t, b, `Array.from(document.querySelectorAll('#fleet-problems tbody td')).map((c) => c.textContent).join(' | ')`),
		`/zkgate/config/routes/broken | timeout | invalid duration "soon"`; got != want {
		t.Errorf("problems table: %q, want %q", got, want)
	}
	browsertest.WaitFor(t, b, `document.querySelector('#fleet-flags [data-flag="fleet-refused"]') !== null`, 5*time.Second)
	shot := filepath.Join(t.TempDir(), "status-page-fleet.png")
	browsertest.Screenshot(t, b, shot)
	t.Logf("screenshot: %s", shot)

	// Repaired: the problem leaves the header and the table.
	src.setFleet(good)
	browsertest.WaitFor(t, b, `document.getElementById('ready').dataset.problems === '1' && document.getElementById('fleet-problems').hidden`, 5*time.Second)
}

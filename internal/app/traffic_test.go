package app

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/healthcheck"
	"github.com/zkgate/zkgate/internal/config"
	"github.com/zkgate/zkgate/internal/metrics"
	"github.com/zkgate/zkgate/proxy"
)

// trafficFixture is a service with members a and b behind the route "r",
// as apply wires them: the membership feeds the endpoint stats, the
// traffic observer holds the route.
type trafficFixture struct {
	members *balancer.Static
	stats   *endpointStats
	traffic *traffic
	route   *proxy.Route
	a, b    balancer.Endpoint
}

func newTrafficFixture(t testing.TB, next proxy.RequestObserver) *trafficFixture {
	t.Helper()
	f := &trafficFixture{
		a:     balancer.Endpoint{ID: "a", Addr: "10.0.0.1:80", Weight: 1},
		b:     balancer.Endpoint{ID: "b", Addr: "10.0.0.2:80", Weight: 1},
		stats: newEndpointStats(),
		route: &proxy.Route{Name: "r"},
	}
	f.members = balancer.NewStatic(f.a, f.b)
	f.members.Attach(f.stats)
	t.Cleanup(func() { f.members.Detach(f.stats) })
	f.traffic = newTraffic(next)
	f.traffic.setRoutes([]*route{{cfg: config.Route{Name: "r"}, svc: &service{stats: f.stats}}})
	return f
}

func TestTrafficRecordsRouteServiceAndEndpoints(t *testing.T) {
	f := newTrafficFixture(t, nil)
	// Two requests: one retried away from a (which answered 502) onto b,
	// whose 500 went to the client; one answered 200 by b.
	f.stats.ObserveAttempt(proxy.Attempt{Addr: f.a.Addr, Outcome: healthcheck.ServerError, End: time.Now(), Duration: 2 * time.Millisecond, Retried: true})
	f.stats.ObserveAttempt(proxy.Attempt{Addr: f.b.Addr, Outcome: healthcheck.ServerError, End: time.Now(), Duration: 40 * time.Millisecond, Retried: false})
	f.traffic.ObserveRequest(f.route, "GET", 500, 45*time.Millisecond, 2)
	f.stats.ObserveAttempt(proxy.Attempt{Addr: f.b.Addr, Outcome: healthcheck.Success, End: time.Now(), Duration: 4 * time.Millisecond, Retried: false})
	f.traffic.ObserveRequest(f.route, "GET", 200, 5*time.Millisecond, 1)
	f.stats.eject(f.a.Addr)
	// Requests of no route, or of a route not installed, count nowhere.
	f.traffic.ObserveRequest(nil, "GET", 404, time.Millisecond, 0)
	f.traffic.ObserveRequest(&proxy.Route{Name: "gone"}, "GET", 500, time.Millisecond, 1)
	f.stats.ObserveAttempt(proxy.Attempt{Addr: "10.9.9.9:80", Outcome: healthcheck.ServerError, End: time.Now(), Duration: time.Millisecond, Retried: false})

	now := time.Now()
	rt := f.traffic.route("r", now)
	if rt.Requests != 2 || rt.Errors != 1 || rt.Retries != 1 || rt.LatencyP99Seconds == nil || *rt.LatencyP99Seconds < 0.039 {
		t.Errorf("route traffic %+v, want 2 requests, 1 error, 1 retry, p99 about 45ms", rt)
	}
	svc := upstreamTrafficOf(f.stats.service.Summary(now))
	if svc.Requests != 2 || svc.Errors != 1 || svc.Retries != 1 || svc.Ejections != 1 {
		t.Errorf("service traffic %+v, want the route's and 1 ejection", svc)
	}
	a := f.stats.endpoint(f.a.Addr, now)
	if a.Requests != 1 || a.Errors != 1 || a.Retries != 1 || a.Ejections != 1 {
		t.Errorf("a's traffic %+v, want 1 failed attempt, retried, and 1 ejection", a)
	}
	b := f.stats.endpoint(f.b.Addr, now)
	if b.Requests != 2 || b.Errors != 1 || b.Retries != 0 || b.Ejections != 0 || b.LatencyP50Seconds == nil {
		t.Errorf("b's traffic %+v, want 2 attempts, 1 error", b)
	}
	if got := f.traffic.route("gone", now); got.Requests != 0 {
		t.Errorf("an unknown route has traffic %+v", got)
	}
}

// The windows of departed members go with them: memory follows the
// membership, and a member coming back starts afresh.
func TestTrafficOfDepartedEndpointIsDropped(t *testing.T) {
	f := newTrafficFixture(t, nil)
	f.stats.ObserveAttempt(proxy.Attempt{Addr: f.b.Addr, Outcome: healthcheck.ServerError, End: time.Now(), Duration: time.Millisecond, Retried: false})
	f.members.Set(f.a)
	if _, ok := (*f.stats.counters.Load())[f.b.Addr]; ok {
		t.Fatal("the departed member's counters and window are kept")
	}
	f.stats.ObserveAttempt(proxy.Attempt{Addr: f.b.Addr, Outcome: healthcheck.ServerError, End: time.Now(), Duration: time.Millisecond, Retried: false}) // in flight when it left
	f.members.Set(f.a, f.b)
	if got := f.stats.endpoint(f.b.Addr, time.Now()); got.Requests != 0 {
		t.Errorf("the member back has traffic %+v from before it left", got)
	}
}

// A reload keeps the window of a route that keeps its name.
func TestTrafficRouteWindowSurvivesReload(t *testing.T) {
	f := newTrafficFixture(t, nil)
	f.traffic.ObserveRequest(f.route, "GET", 200, time.Millisecond, 1)
	svc := &service{stats: f.stats}
	f.traffic.setRoutes([]*route{{cfg: config.Route{Name: "r", Priority: 3}, svc: svc}, {cfg: config.Route{Name: "new"}, svc: svc}})
	now := time.Now()
	if got := f.traffic.route("r", now); got.Requests != 1 {
		t.Errorf("after a reload r has %+v, want its request kept", got)
	}
	if got := f.traffic.route("new", now); got.Requests != 0 {
		t.Errorf("a new route has %+v", got)
	}
	f.traffic.setRoutes([]*route{{cfg: config.Route{Name: "new"}, svc: svc}})
	if _, ok := (*f.traffic.routes.Load())["r"]; ok {
		t.Error("a removed route's window is kept")
	}
}

type refusals struct {
	mu  sync.Mutex
	got []string
}

func (r *refusals) ObserveRequest(*proxy.Route, string, int, time.Duration, int) {}
func (r *refusals) ObserveRefusal(route *proxy.Route, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, route.Name+" "+reason)
}

// The traffic observer stands in front of the metrics: refusals reach them.
func TestTrafficPassesRefusalsOn(t *testing.T) {
	next := &refusals{}
	f := newTrafficFixture(t, next)
	f.traffic.ObserveRefusal(f.route, "auth")
	if !slices.Equal(next.got, []string{"r auth"}) {
		t.Errorf("refusals passed on: %q", next.got)
	}
}

// observeOne is what the request path does for one request: an attempt,
// timed as the proxy times it for the observer, its health report, the
// request with the metrics.
func observeOne(f *trafficFixture, rep *countingReporter) {
	began := time.Now()
	took := time.Since(began)
	f.stats.ObserveAttempt(proxy.Attempt{Addr: f.a.Addr, Outcome: healthcheck.Success, End: began.Add(took), Duration: took})
	rep.Report(f.a.Addr, healthcheck.Success)
	f.traffic.ObserveRequest(f.route, "GET", 200, 4*time.Millisecond, 1)
}

func newObservedFixture(t testing.TB) (*trafficFixture, *countingReporter) {
	m := metrics.New(metrics.Options{})
	m.SetRoutes([]metrics.RouteLabels{{Route: "r", Service: "svc"}})
	f := newTrafficFixture(t, m)
	h, err := healthcheck.New(f.members, healthcheck.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return f, &countingReporter{next: h, stats: f.stats}
}

func TestTrafficAllocatesNothing(t *testing.T) {
	f, rep := newObservedFixture(t)
	if n := testing.AllocsPerRun(1000, func() { observeOne(f, rep) }); n != 0 {
		t.Errorf("observing a request allocates %v times", n)
	}
}

// BenchmarkObserve measures what the request path pays for the traffic
// figures: "before" is the metrics and the health report of one request,
// "figures" adds the windows of its attempt, route and service. Compare the
// two in the same run.
func BenchmarkObserve(b *testing.B) {
	f, rep := newObservedFixture(b)
	for _, bc := range []struct {
		name string
		fn   func()
	}{
		{"before", func() {
			rep.Report(f.a.Addr, healthcheck.Success)
			f.traffic.next.ObserveRequest(f.route, "GET", 200, 4*time.Millisecond, 1)
		}},
		{"figures", func() { observeOne(f, rep) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					bc.fn()
				}
			})
		})
	}
}

package app

import (
	"sync/atomic"
	"time"

	"github.com/zkgate/zkgate/healthcheck"
	"github.com/zkgate/zkgate/internal/admin"
	"github.com/zkgate/zkgate/internal/stats"
	"github.com/zkgate/zkgate/proxy"
)

// traffic keeps the last minute of traffic the admin API shows per route
// and per service (each service's endpoints have theirs in endpointStats).
// It is the Handler's RequestObserver: it records each request in its
// route's and its service's windows and passes it on to the metrics.
type traffic struct {
	next proxy.RequestObserver // the metrics; nil for none
	// routes are the windows of the running routes, by name; replaced
	// whole by setRoutes, read on the request path.
	routes atomic.Pointer[map[string]routeTraffic]
}

// routeTraffic are the windows a route's requests are recorded in.
type routeTraffic struct {
	route   *stats.Window
	service *stats.Window
}

var (
	_ proxy.RequestObserver = (*traffic)(nil)
	_ proxy.RefusalObserver = (*traffic)(nil)
	_ proxy.AttemptObserver = (*endpointStats)(nil)
)

func newTraffic(next proxy.RequestObserver) *traffic {
	t := &traffic{next: next}
	m := map[string]routeTraffic{}
	t.routes.Store(&m)
	return t
}

// setRoutes installs the windows of routes: a route keeps its window when
// its name stays, whatever else changed; a new route starts an empty one.
func (t *traffic) setRoutes(routes []*route) {
	old := *t.routes.Load()
	next := make(map[string]routeTraffic, len(routes))
	now := stats.Now()
	for _, r := range routes {
		w := old[r.cfg.Name].route
		if w == nil {
			w = stats.NewWindow(now)
		}
		next[r.cfg.Name] = routeTraffic{route: w, service: r.svc.stats.service}
	}
	t.routes.Store(&next)
}

// route returns the traffic of the named route over the last minute.
func (t *traffic) route(name string, now time.Time) admin.Traffic {
	if rt, ok := (*t.routes.Load())[name]; ok {
		return trafficOf(rt.route.Summary(now))
	}
	return admin.Traffic{}
}

// ObserveRequest implements proxy.RequestObserver. A request that matched
// no route, or a route that setRoutes did not install (one finishing on a
// router replaced meanwhile), is passed on to the metrics only. It
// allocates nothing.
func (t *traffic) ObserveRequest(route *proxy.Route, method string, status int, d time.Duration, attempts int) {
	if t.next != nil {
		t.next.ObserveRequest(route, method, status, d, attempts)
	}
	if route == nil {
		return
	}
	rt, ok := (*t.routes.Load())[route.Name]
	if !ok {
		return
	}
	now := stats.Now()
	failed, retries := status >= 500, max(attempts-1, 0)
	rt.route.Record(now, d, failed, retries)
	rt.service.Record(now, d, failed, retries)
}

// ObserveRefusal implements proxy.RefusalObserver: passed on to the metrics.
func (t *traffic) ObserveRefusal(route *proxy.Route, reason string) {
	if o, ok := t.next.(proxy.RefusalObserver); ok {
		o.ObserveRefusal(route, reason)
	}
}

// ObserveAttempt implements proxy.AttemptObserver: the attempt is recorded
// in its endpoint's window, failed unless it succeeded.
func (s *endpointStats) ObserveAttempt(a proxy.Attempt) {
	c := s.get(a.Addr)
	if c == nil {
		return
	}
	retries := 0
	if a.Retried {
		retries = 1
	}
	c.window.Record(a.End, a.Duration, a.Outcome != healthcheck.Success, retries)
}

// eject records the passive ejection of the endpoint at addr in its window
// and the service's (healthcheck.OnEject).
func (s *endpointStats) eject(addr string) {
	now := stats.Now()
	s.service.Eject(now)
	if c := s.get(addr); c != nil {
		c.window.Eject(now)
	}
}

// endpoint returns the traffic of the endpoint at addr over the last
// minute (zero for an address the membership does not list).
func (s *endpointStats) endpoint(addr string, now time.Time) admin.UpstreamTraffic {
	if c := s.get(addr); c != nil {
		return upstreamTrafficOf(c.window.Summary(now))
	}
	return admin.UpstreamTraffic{}
}

// trafficOf converts a window's reading for the admin API.
func trafficOf(s stats.Summary) admin.Traffic {
	t := admin.Traffic{
		WindowSeconds: s.Covered.Seconds(),
		Requests:      s.Requests,
		Errors:        s.Failures,
		Retries:       s.Retries,
	}
	if s.Requests > 0 {
		p50, p99 := s.P50.Seconds(), s.P99.Seconds()
		t.LatencyP50Seconds, t.LatencyP99Seconds = &p50, &p99
	}
	return t
}

func upstreamTrafficOf(s stats.Summary) admin.UpstreamTraffic {
	return admin.UpstreamTraffic{Traffic: trafficOf(s), Ejections: s.Ejections}
}

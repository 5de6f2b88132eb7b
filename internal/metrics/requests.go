package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RouteLabels names one route's series: the route and the service it
// forwards to.
type RouteLabels struct {
	Route   string
	Service string
}

// methodNames are the method label's values: the common methods, and
// "other" for every other method, so that a client cannot create series by
// inventing methods.
var methodNames = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"}

// classNames are the code_class label's values; "other" is a status outside
// 100-599, such as 0 when no response was written.
var classNames = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"}

const (
	numMethods = len(methodNames)
	numClasses = len(classNames)
	class5xx   = 4
	classOther = 5
)

// methodIndex returns the index of method in methodNames. Methods are case
// sensitive (RFC 9110, section 9.1).
func methodIndex(method string) int {
	switch method {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "DELETE":
		return 4
	case "PATCH":
		return 5
	case "OPTIONS":
		return 6
	}
	return numMethods - 1
}

// classIndex returns the index of status's class in classNames.
func classIndex(status int) int {
	if status < 100 || status > 599 {
		return classOther
	}
	return status/100 - 1
}

// A series is created when it is first used, not when its route is
// installed: one route would otherwise export 8 methods × 6 classes of
// counters and 6 histograms at zero (1,694 lines for 10 routes). Once
// created, a series is a pointer load: counting allocates nothing.

// lazyCounter is a counter child created at its first use.
type lazyCounter struct {
	p atomic.Pointer[counterBox]
}

type counterBox struct{ prometheus.Counter }

// get returns the counter, creating it with create on first use. Two
// goroutines may both call create; the vector returns the same child to both.
func (l *lazyCounter) get(create func() prometheus.Counter) prometheus.Counter {
	if b := l.p.Load(); b != nil {
		return b.Counter
	}
	b := &counterBox{create()}
	if !l.p.CompareAndSwap(nil, b) {
		b = l.p.Load()
	}
	return b.Counter
}

// lazyObserver is a histogram child created at its first use.
type lazyObserver struct {
	p atomic.Pointer[observerBox]
}

type observerBox struct{ prometheus.Observer }

func (l *lazyObserver) get(create func() prometheus.Observer) prometheus.Observer {
	if b := l.p.Load(); b != nil {
		return b.Observer
	}
	b := &observerBox{create()}
	if !l.p.CompareAndSwap(nil, b) {
		b = l.p.Load()
	}
	return b.Observer
}

// routeSeries are one route's series, each created at its first use.
type routeSeries struct {
	labels   RouteLabels
	requests [numMethods][numClasses]lazyCounter
	duration [numClasses]lazyObserver
	service  *serviceSeries // nil for the unmatched pseudo-route
}

// serviceSeries are one service's upstream series, each created at its
// first use.
type serviceSeries struct {
	name                string
	ok, failed, retried lazyCounter
}

// requestTable is an immutable lookup from route name to series, replaced
// whole by SetRoutes.
type requestTable struct {
	routes    map[string]*routeSeries
	services  map[string]*serviceSeries
	unmatched *routeSeries
}

func newRouteSeries(l RouteLabels, svc *serviceSeries) *routeSeries {
	return &routeSeries{labels: l, service: svc}
}

func newServiceSeries(service string) *serviceSeries { return &serviceSeries{name: service} }

// count adds one request of method and class c to rs.
func (m *Metrics) count(rs *routeSeries, mi, c int, d time.Duration) {
	rs.requests[mi][c].get(func() prometheus.Counter {
		return m.requests.WithLabelValues(rs.labels.Route, rs.labels.Service, methodNames[mi], classNames[c])
	}).Inc()
	rs.duration[c].get(func() prometheus.Observer {
		return m.duration.WithLabelValues(rs.labels.Route, rs.labels.Service, classNames[c])
	}).Observe(d.Seconds())
}

// SetRoutes installs the routes of a new router: call it with every route
// before the router starts serving. It swaps the lookup table (a route's
// series are created at its first request) and deletes the series of routes
// and services that are gone, so that a reload leaves no dead series behind. A route named
// twice keeps its first service.
//
// Requests that matched no route are counted under route="" and
// service="" (see Observe).
func (m *Metrics) SetRoutes(routes []RouteLabels) {
	m.setMu.Lock()
	defer m.setMu.Unlock()
	old := m.table.Load()
	t := &requestTable{
		routes:   make(map[string]*routeSeries, len(routes)),
		services: make(map[string]*serviceSeries),
	}
	t.unmatched = old.unmatched
	for _, r := range routes {
		if _, dup := t.routes[r.Route]; dup || r.Route == "" {
			continue
		}
		svc := t.services[r.Service]
		if svc == nil {
			svc = old.services[r.Service]
			if svc == nil {
				svc = newServiceSeries(r.Service)
			}
			t.services[r.Service] = svc
		}
		if rs := old.routes[r.Route]; rs != nil && rs.labels == r {
			t.routes[r.Route] = rs // same labels, so rs.service == svc
			continue
		}
		t.routes[r.Route] = newRouteSeries(r, svc)
	}
	m.table.Store(t)

	for name, rs := range old.routes {
		if now := t.routes[name]; now == nil || now.labels != rs.labels {
			gone := prometheus.Labels{"route": rs.labels.Route, "service": rs.labels.Service}
			m.requests.DeletePartialMatch(gone)
			m.duration.DeletePartialMatch(gone)
		}
	}
	for name := range old.services {
		if t.services[name] == nil {
			m.attempts.DeletePartialMatch(prometheus.Labels{"service": name})
		}
	}
}

// Observe counts one proxied request: route is the matched route's name
// ("" when no route matched), method the request method, status the
// status code sent to the client, d the time from request to end of
// response, attempts the number of upstream attempts (0 when none was made,
// for example with no healthy endpoint). It allocates nothing for a route
// installed by SetRoutes.
func (m *Metrics) Observe(route, method string, status int, d time.Duration, attempts int) {
	t := m.table.Load()
	rs := t.unmatched
	if route != "" {
		rs = t.routes[route]
		if rs == nil {
			m.observeUnknown(route, method, status, d)
			return
		}
	}
	c := classIndex(status)
	m.count(rs, methodIndex(method), c, d)
	svc := rs.service
	if svc == nil || attempts <= 0 {
		return
	}
	if attempts > 1 {
		svc.retried.get(func() prometheus.Counter { return m.attempts.WithLabelValues(svc.name, "retried") }).Add(float64(attempts - 1))
	}
	if c == class5xx || c == classOther {
		svc.failed.get(func() prometheus.Counter { return m.attempts.WithLabelValues(svc.name, "error") }).Inc()
	} else {
		svc.ok.get(func() prometheus.Counter { return m.attempts.WithLabelValues(svc.name, "ok") }).Inc()
	}
}

// observeUnknown counts a request of a route that SetRoutes did not install
// (a wiring mistake, or a request finishing on a router replaced meanwhile)
// with an empty service label. It allocates.
func (m *Metrics) observeUnknown(route, method string, status int, d time.Duration) {
	c := classIndex(status)
	m.requests.WithLabelValues(route, "", methodNames[methodIndex(method)], classNames[c]).Inc()
	m.duration.WithLabelValues(route, "", classNames[c]).Observe(d.Seconds())
}

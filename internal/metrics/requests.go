package metrics

import (
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

// routeSeries are one route's precomputed series.
type routeSeries struct {
	labels   RouteLabels
	requests [numMethods][numClasses]prometheus.Counter
	duration [numClasses]prometheus.Observer
	service  *serviceSeries // nil for the unmatched pseudo-route
}

// serviceSeries are one service's precomputed upstream series.
type serviceSeries struct {
	ok, failed, retried prometheus.Counter
	retries             prometheus.Counter
}

// requestTable is an immutable lookup from route name to series, replaced
// whole by SetRoutes.
type requestTable struct {
	routes    map[string]*routeSeries
	services  map[string]*serviceSeries
	unmatched *routeSeries
}

func (m *Metrics) newRouteSeries(l RouteLabels, svc *serviceSeries) *routeSeries {
	rs := &routeSeries{labels: l, service: svc}
	for c, class := range classNames {
		for mi, method := range methodNames {
			rs.requests[mi][c] = m.requests.WithLabelValues(l.Route, l.Service, method, class)
		}
		rs.duration[c] = m.duration.WithLabelValues(l.Route, l.Service, class)
	}
	return rs
}

func (m *Metrics) newServiceSeries(service string) *serviceSeries {
	return &serviceSeries{
		ok:      m.attempts.WithLabelValues(service, "ok"),
		failed:  m.attempts.WithLabelValues(service, "error"),
		retried: m.attempts.WithLabelValues(service, "retried"),
		retries: m.retries.WithLabelValues(service),
	}
}

// SetRoutes installs the routes of a new router: call it with every route
// before the router starts serving. It creates each route's series (at zero),
// swaps the lookup table, and deletes the series of routes and services that
// are gone, so that a reload leaves no dead series behind. A route named
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
				svc = m.newServiceSeries(r.Service)
			}
			t.services[r.Service] = svc
		}
		if rs := old.routes[r.Route]; rs != nil && rs.labels == r {
			t.routes[r.Route] = rs // same labels, so rs.service == svc
			continue
		}
		t.routes[r.Route] = m.newRouteSeries(r, svc)
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
			m.retries.DeleteLabelValues(name)
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
	rs.requests[methodIndex(method)][c].Inc()
	rs.duration[c].Observe(d.Seconds())
	if rs.service == nil || attempts <= 0 {
		return
	}
	if attempts > 1 {
		n := float64(attempts - 1)
		rs.service.retried.Add(n)
		rs.service.retries.Add(n)
	}
	if c == class5xx || c == classOther {
		rs.service.failed.Inc()
	} else {
		rs.service.ok.Inc()
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

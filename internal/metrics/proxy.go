package metrics

import (
	"time"

	"github.com/zkgate/zkgate/proxy"
)

var _ proxy.RequestObserver = (*Metrics)(nil)

// RouteService returns the service name a route's series carry: its Service,
// else its Upstream's name (the proxy's own default).
func RouteService(r *proxy.Route) string {
	if r.Service != "" || r.Upstream == nil {
		return r.Service
	}
	return r.Upstream.Name
}

// SetRouter installs the routes of rt (see SetRoutes). Call it before
// swapping rt into the proxy Handler.
func (m *Metrics) SetRouter(rt *proxy.Router) {
	routes := rt.Routes()
	labels := make([]RouteLabels, len(routes))
	for i, r := range routes {
		labels[i] = RouteLabels{Route: r.Name, Service: RouteService(r)}
	}
	m.SetRoutes(labels)
}

// ObserveRequest implements proxy.RequestObserver: it counts one request of
// route (nil when no route matched), see Observe. It allocates nothing for a
// route of a router installed with SetRouter.
func (m *Metrics) ObserveRequest(route *proxy.Route, method string, status int, d time.Duration, attempts int) {
	name := ""
	if route != nil {
		name = route.Name
	}
	m.Observe(name, method, status, d, attempts)
}

// ObserveRefusal implements proxy.RefusalObserver: a request route's
// policies refused for reason. Refusals are rare enough for the label
// lookup.
func (m *Metrics) ObserveRefusal(route *proxy.Route, reason string) {
	m.refusals.WithLabelValues(route.Name, reason).Inc()
}

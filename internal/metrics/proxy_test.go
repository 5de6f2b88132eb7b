package metrics

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/proxy"
)

// testRouter builds a proxy.Router of n routes over 5 upstreams.
func testRouter(t testing.TB, n int) (*proxy.Router, []*proxy.Route) {
	t.Helper()
	ups := make([]*proxy.Upstream, 5)
	for i := range ups {
		ups[i] = &proxy.Upstream{Name: fmt.Sprintf("service-%d", i), Transport: http.DefaultTransport}
	}
	routes := make([]*proxy.Route, n)
	for i := range routes {
		routes[i] = &proxy.Route{
			Name:       fmt.Sprintf("route-%d", i),
			PathPrefix: fmt.Sprintf("/r%d", i),
			Balancer:   &fixedBalancer{},
			Upstream:   ups[i%len(ups)],
		}
	}
	routes[0].Service = "named-explicitly"
	rt, err := proxy.NewRouter(routes)
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	return rt, routes
}

// fixedBalancer is the smallest balancer.Balancer a Route accepts.
type fixedBalancer struct{}

func (*fixedBalancer) Update([]balancer.Endpoint) {}
func (*fixedBalancer) Pick(string) (balancer.Endpoint, error) {
	return balancer.Endpoint{Addr: "127.0.0.1:1"}, nil
}

func TestProxyObserver(t *testing.T) {
	m := New(Options{})
	rt, routes := testRouter(t, 6)
	m.SetRouter(rt)

	m.ObserveRequest(routes[0], "GET", 200, time.Millisecond, 1)
	m.ObserveRequest(routes[3], "POST", 502, time.Millisecond, 2)
	m.ObserveRequest(nil, "GET", 404, time.Millisecond, 0)

	if got := requests(m, "route-0", "named-explicitly", "GET", "2xx"); got != 1 {
		t.Errorf("route-0 (Service set) = %v, want 1", got)
	}
	if got := requests(m, "route-3", "service-3", "POST", "5xx"); got != 1 {
		t.Errorf("route-3 (service from its Upstream) = %v, want 1", got)
	}
	if got := requests(m, "", "", "GET", "4xx"); got != 1 {
		t.Errorf("unmatched = %v, want 1", got)
	}
	if got := attempts(m, "service-3", "retried"); got != 1 {
		t.Errorf("service-3 retried attempts = %v, want 1", got)
	}
}

func TestProxyObserverDoesNotAllocate(t *testing.T) {
	m := New(Options{})
	rt, routes := testRouter(t, 20)
	m.SetRouter(rt)
	allocs := testing.AllocsPerRun(1000, func() {
		m.ObserveRequest(routes[7], "GET", 200, 12*time.Millisecond, 1)
		m.ObserveRequest(nil, "GET", 404, time.Millisecond, 0)
	})
	if allocs != 0 {
		t.Errorf("ObserveRequest allocates %v times per call pair, want 0", allocs)
	}
}

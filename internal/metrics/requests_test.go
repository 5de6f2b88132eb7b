package metrics

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

// exposition returns the text exposition of the named metrics, or of all.
func exposition(t testing.TB, m *Metrics, names ...string) string {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var b strings.Builder
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if len(names) > 0 && !slices.Contains(names, mf.GetName()) {
			continue
		}
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("encode %s: %v", mf.GetName(), err)
		}
	}
	return b.String()
}

func requests(m *Metrics, route, service, method, class string) float64 {
	return testutil.ToFloat64(m.requests.WithLabelValues(route, service, method, class))
}

func attempts(m *Metrics, service, result string) float64 {
	return testutil.ToFloat64(m.attempts.WithLabelValues(service, result))
}

func TestMethodIndex(t *testing.T) {
	tests := map[string]string{
		"GET": "GET", "HEAD": "HEAD", "POST": "POST", "PUT": "PUT", "DELETE": "DELETE",
		"PATCH": "PATCH", "OPTIONS": "OPTIONS", "CONNECT": "other", "TRACE": "other",
		"get": "other", "BREW": "other", "": "other",
	}
	for method, want := range tests {
		if got := methodNames[methodIndex(method)]; got != want {
			t.Errorf("method bucket of %q = %s, want %s", method, got, want)
		}
	}
}

func TestClassIndex(t *testing.T) {
	tests := map[int]string{
		0: "other", 99: "other", 100: "1xx", 101: "1xx", 200: "2xx", 204: "2xx", 301: "3xx",
		404: "4xx", 499: "4xx", 500: "5xx", 502: "5xx", 599: "5xx", 600: "other", -1: "other",
	}
	for status, want := range tests {
		if got := classNames[classIndex(status)]; got != want {
			t.Errorf("class of %d = %s, want %s", status, got, want)
		}
	}
}

func TestObserveRequest(t *testing.T) {
	m := New(Options{})
	m.SetRoutes([]RouteLabels{{"echo", "echo"}, {"echo-admin", "echo"}, {"users", "users"}})

	for range 3 {
		m.Observe("echo", "GET", 200, 3*time.Millisecond, 1)
	}
	m.Observe("echo", "POST", 503, 2*time.Second, 2)
	m.Observe("echo-admin", "BREW", 418, time.Millisecond, 1)
	m.Observe("users", "GET", 200, 40*time.Millisecond, 3)
	m.Observe("users", "DELETE", 0, time.Millisecond, 1)
	m.Observe("users", "GET", 503, time.Millisecond, 0) // no endpoint: no attempt

	checks := []struct {
		route, service, method, class string
		want                          float64
	}{
		{"echo", "echo", "GET", "2xx", 3},
		{"echo", "echo", "POST", "5xx", 1},
		{"echo", "echo", "POST", "2xx", 0},
		{"echo-admin", "echo", "other", "4xx", 1},
		{"users", "users", "GET", "2xx", 1},
		{"users", "users", "GET", "5xx", 1},
		{"users", "users", "DELETE", "other", 1},
	}
	for _, c := range checks {
		if got := requests(m, c.route, c.service, c.method, c.class); got != c.want {
			t.Errorf("requests{route=%s,service=%s,method=%s,code_class=%s} = %v, want %v", c.route, c.service, c.method, c.class, got, c.want)
		}
	}

	wantAttempts := map[[2]string]float64{
		{"echo", "ok"}: 4, {"echo", "error"}: 1, {"echo", "retried"}: 1,
		{"users", "ok"}: 1, {"users", "error"}: 1, {"users", "retried"}: 2,
	}
	for k, want := range wantAttempts {
		if got := attempts(m, k[0], k[1]); got != want {
			t.Errorf("upstream_attempts_total{service=%s,result=%s} = %v, want %v", k[0], k[1], got, want)
		}
	}

	text := exposition(t, m, "zkgate_request_duration_seconds")
	for _, want := range []string{
		`zkgate_request_duration_seconds_count{code_class="2xx",route="echo",service="echo"} 3`,
		`zkgate_request_duration_seconds_bucket{code_class="2xx",route="echo",service="echo",le="0.0025"} 0`,
		`zkgate_request_duration_seconds_bucket{code_class="2xx",route="echo",service="echo",le="0.005"} 3`,
		`zkgate_request_duration_seconds_sum{code_class="5xx",route="echo",service="echo"} 2`,
		`zkgate_request_duration_seconds_count{code_class="2xx",route="users",service="users"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
}

// TestSeriesCreatedAtFirstUse: installing routes creates no series (one
// route used to export 48 counters and 6 histograms at zero, and another
// block for route=""); a request creates the series it counts, and only
// those.
func TestSeriesCreatedAtFirstUse(t *testing.T) {
	m := New(Options{})
	m.SetRoutes(manyRoutes(10))
	if text := exposition(t, m, "zkgate_requests_total", "zkgate_request_duration_seconds", "zkgate_upstream_attempts_total"); text != "" {
		t.Errorf("series before any request:\n%s", text)
	}
	m.Observe("route-3", "GET", 200, time.Millisecond, 2)
	if n := testutil.CollectAndCount(m.requests); n != 1 {
		t.Errorf("requests_total has %d series after one request, want 1", n)
	}
	if n := testutil.CollectAndCount(m.duration); n != 1 {
		t.Errorf("request_duration_seconds has %d series after one request, want 1", n)
	}
	if n := testutil.CollectAndCount(m.attempts); n != 2 {
		t.Errorf("upstream_attempts_total has %d series after one retried request, want 2 (ok, retried)", n)
	}
}

func TestSetRoutesDeletesGoneSeries(t *testing.T) {
	m := New(Options{})
	m.SetRoutes([]RouteLabels{{"a", "svc-a"}, {"b", "svc-b"}, {"c", "svc-c"}})
	m.Observe("a", "GET", 200, time.Millisecond, 1)
	m.Observe("b", "GET", 200, time.Millisecond, 1)
	m.Observe("c", "GET", 200, time.Millisecond, 1)

	// b is removed; c now sends to svc-a.
	m.SetRoutes([]RouteLabels{{"a", "svc-a"}, {"c", "svc-a"}})
	text := exposition(t, m)
	for _, gone := range []string{`route="b"`, `service="svc-b"`, `service="svc-c"`} {
		if strings.Contains(text, gone) {
			t.Errorf("exposition still has %s after the reload", gone)
		}
	}
	if got := requests(m, "a", "svc-a", "GET", "2xx"); got != 1 {
		t.Errorf("route a kept across the reload: requests = %v, want 1 (not reset)", got)
	}
	m.Observe("c", "GET", 200, time.Millisecond, 1)
	if got := requests(m, "c", "svc-a", "GET", "2xx"); got != 1 {
		t.Errorf("route c with its new service: requests = %v, want 1", got)
	}
	if got := attempts(m, "svc-a", "ok"); got != 2 {
		t.Errorf("svc-a ok attempts = %v, want 2", got)
	}
}

func TestObserveUnknownAndUnmatched(t *testing.T) {
	m := New(Options{})
	m.Observe("", "GET", 404, time.Millisecond, 0)
	if got := requests(m, "", "", "GET", "4xx"); got != 1 {
		t.Errorf("unmatched requests = %v, want 1", got)
	}
	m.SetRoutes([]RouteLabels{{"echo", "echo"}})
	m.Observe("", "GET", 404, time.Millisecond, 0)
	if got := requests(m, "", "", "GET", "4xx"); got != 2 {
		t.Errorf("unmatched requests after SetRoutes = %v, want 2 (kept)", got)
	}
	m.Observe("ghost", "PUT", 200, time.Millisecond, 1)
	if got := requests(m, "ghost", "", "PUT", "2xx"); got != 1 {
		t.Errorf("requests of a route SetRoutes did not install = %v, want 1 with an empty service", got)
	}
}

func TestObserveRequestDoesNotAllocate(t *testing.T) {
	m := New(Options{})
	m.SetRoutes(manyRoutes(20))
	cases := []struct {
		route, method string
		status        int
		attempts      int
	}{
		{"route-7", "GET", 200, 1},
		{"route-19", "POST", 503, 3},
		{"route-0", "PROPFIND", 0, 1},
		{"", "GET", 404, 0},
	}
	for _, c := range cases {
		allocs := testing.AllocsPerRun(1000, func() {
			m.Observe(c.route, c.method, c.status, 12*time.Millisecond, c.attempts)
		})
		if allocs != 0 {
			t.Errorf("ObserveRequest(%q, %q, %d) allocates %v times, want 0", c.route, c.method, c.status, allocs)
		}
	}
}

// TestObserveDuringReloads observes from several goroutines while routes are
// reinstalled; run with -race. A route present in every table loses nothing.
func TestObserveDuringReloads(t *testing.T) {
	m := New(Options{})
	m.SetRoutes([]RouteLabels{{"stable", "s"}})
	const workers, perWorker = 4, 2000
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range perWorker {
				m.Observe("stable", "GET", 200, time.Millisecond, 1)
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			m.SetRoutes([]RouteLabels{{"stable", "s"}, {fmt.Sprintf("churn-%d", i), "c"}})
			m.Observe(fmt.Sprintf("churn-%d", i), "GET", 200, time.Millisecond, 1)
		}
	})
	wg.Wait()
	if got := requests(m, "stable", "s", "GET", "2xx"); got != workers*perWorker {
		t.Errorf("stable route counted %v requests, want %d", got, workers*perWorker)
	}
	if n := testutil.CollectAndCount(m.requests); n != 2 {
		t.Errorf("requests_total has %d series after the churn, want 2 (stable's and the last churn route's)", n)
	}
}

func manyRoutes(n int) []RouteLabels {
	routes := make([]RouteLabels, n)
	for i := range routes {
		routes[i] = RouteLabels{Route: fmt.Sprintf("route-%d", i), Service: fmt.Sprintf("service-%d", i%5)}
	}
	return routes
}

func BenchmarkObserveRequest(b *testing.B) {
	m := New(Options{})
	rt, routes := testRouter(b, 20)
	m.SetRouter(rt)
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveRequest(routes[7], "GET", 200, 12*time.Millisecond, 1)
	}
}

func BenchmarkObserveRequestParallel(b *testing.B) {
	m := New(Options{})
	rt, routes := testRouter(b, 20)
	m.SetRouter(rt)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			// Spread over routes, as real traffic does.
			m.ObserveRequest(routes[i%len(routes)], "GET", 200, 12*time.Millisecond, 1)
			i++
		}
	})
}

func BenchmarkObserveRequestParallelOneRoute(b *testing.B) {
	m := New(Options{})
	rt, routes := testRouter(b, 20)
	m.SetRouter(rt)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveRequest(routes[7], "GET", 200, 12*time.Millisecond, 1)
		}
	})
}

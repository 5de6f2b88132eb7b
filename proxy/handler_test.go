package proxy

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/zkgate/zkgate/balancer"
)

func TestProxyForwardsRequestAndResponse(t *testing.T) {
	be := newBackend(t, "a", nil)
	route := testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr())
	fe, _ := newFrontend(t, Options{}, route)

	req, _ := http.NewRequest("POST", fe.URL+"/items/7?x=1&y=2", strings.NewReader("hello"))
	req.Header.Set("X-Custom", "v")
	res, body := do(t, req)
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	e := decodeEcho(t, body)
	if e.Method != "POST" || e.Path != "/items/7" || e.Query != "x=1&y=2" || e.Body != "hello" {
		t.Errorf("backend saw %s %s?%s body %q", e.Method, e.Path, e.Query, e.Body)
	}
	if got := e.Header["X-Custom"]; len(got) != 1 || got[0] != "v" {
		t.Errorf("X-Custom = %v", got)
	}
	if e.Host != strings.TrimPrefix(fe.URL, "http://") {
		t.Errorf("PassHostHeader: backend saw Host %q, want the client's %q", e.Host, fe.URL)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("response Content-Type %q not passed back", ct)
	}
}

func TestProxyStripPrefix(t *testing.T) {
	be := newBackend(t, "a", nil)
	route := testRoute(t, "api", "round_robin", testUpstream(t, "svc"), be.addr())
	route.PathPrefix = "/api"
	route.StripPrefix = true
	fe, _ := newFrontend(t, Options{}, route)

	tests := []struct{ target, path, query string }{
		{"/api", "/", ""},
		{"/api/", "/", ""},
		{"/api?q=1", "/", "q=1"},
		{"/api/x/y?q=1&r=%2F", "/x/y", "q=1&r=%2F"},
		{"/api/a%2Fb", "/a/b", ""},
	}
	for _, tt := range tests {
		res, body := get(t, fe.URL+tt.target)
		if res.StatusCode != 200 {
			t.Fatalf("%s: status %d", tt.target, res.StatusCode)
		}
		e := decodeEcho(t, body)
		if e.Path != tt.path || e.Query != tt.query {
			t.Errorf("%s: backend saw path %q query %q, want %q %q", tt.target, e.Path, e.Query, tt.path, tt.query)
		}
	}
	// The escaped slash stays escaped on the wire.
	req, _ := http.NewRequest("GET", fe.URL+"/api/a%2Fb", nil)
	req.Header.Set("X-Forwarded-Prefix", "/spoofed")
	_, body := do(t, req)
	e := decodeEcho(t, body)
	if e.URI != "/a%2Fb" {
		t.Errorf("backend request URI %q, want /a%%2Fb", e.URI)
	}
	if got := e.Header["X-Forwarded-Prefix"]; len(got) != 1 || got[0] != "/api" {
		t.Errorf("X-Forwarded-Prefix = %v, want [/api]", got)
	}
}

func TestProxyHostHeaderFromEndpoint(t *testing.T) {
	be := newBackend(t, "a", nil)
	up := testUpstream(t, "svc")
	up.PassHostHeader = false
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", up, be.addr()))
	req, _ := http.NewRequest("GET", fe.URL+"/", nil)
	req.Host = "public.example.com"
	_, body := do(t, req)
	e := decodeEcho(t, body)
	if e.Host != be.addr() {
		t.Errorf("backend saw Host %q, want the endpoint %q", e.Host, be.addr())
	}
	if got := e.Header["X-Forwarded-Host"]; len(got) != 1 || got[0] != "public.example.com" {
		t.Errorf("X-Forwarded-Host = %v, want the client's host", got)
	}
}

func TestProxySetAndRemoveHeaders(t *testing.T) {
	be := newBackend(t, "a", nil)
	route := testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr())
	route.SetHeaders = map[string]string{"x-env": "prod", "X-Replace": "new"}
	route.RemoveHeaders = []string{"authorization"}
	fe, _ := newFrontend(t, Options{}, route)
	for range 2 { // the shared header values must survive a request
		req, _ := http.NewRequest("GET", fe.URL+"/", nil)
		req.Header.Set("Authorization", "Bearer secret")
		req.Header.Set("X-Replace", "old")
		_, body := do(t, req)
		e := decodeEcho(t, body)
		if _, ok := e.Header["Authorization"]; ok {
			t.Error("Authorization was not removed")
		}
		if got := e.Header["X-Env"]; len(got) != 1 || got[0] != "prod" {
			t.Errorf("X-Env = %v", got)
		}
		if got := e.Header["X-Replace"]; len(got) != 1 || got[0] != "new" {
			t.Errorf("X-Replace = %v, want [new]", got)
		}
	}
}

func TestProxyRoutesByHostAndPrefix(t *testing.T) {
	a, b := newBackend(t, "a", nil), newBackend(t, "b", nil)
	ra := testRoute(t, "ra", "round_robin", testUpstream(t, "sa"), a.addr())
	ra.Hosts = []string{"*.a.test"}
	rb := testRoute(t, "rb", "round_robin", testUpstream(t, "sb"), b.addr())
	rb.PathPrefix = "/b"
	fe, _ := newFrontend(t, Options{}, ra, rb)
	for _, tt := range []struct {
		host, path string
		status     int
		want       string
	}{
		{"x.a.test", "/b", 200, "b"}, // both match; the longer prefix ranks first
		{"other", "/b/1", 200, "b"},
		{"x.a.test", "/z", 200, "a"},
		{"other", "/z", 404, ""},
	} {
		req, _ := http.NewRequest("GET", fe.URL+tt.path, nil)
		req.Host = tt.host
		res, body := do(t, req)
		if res.StatusCode != tt.status {
			t.Errorf("%s%s: status %d, want %d", tt.host, tt.path, res.StatusCode, tt.status)
			continue
		}
		if tt.status == 200 && decodeEcho(t, body).Backend != tt.want {
			t.Errorf("%s%s: answered by %s, want %s", tt.host, tt.path, body, tt.want)
		}
	}
}

func TestProxyEachBalancerSelectable(t *testing.T) {
	bes := []*backend{newBackend(t, "a", nil), newBackend(t, "b", nil), newBackend(t, "c", nil)}
	addrs := []string{bes[0].addr(), bes[1].addr(), bes[2].addr()}
	up := testUpstream(t, "svc")
	var routes []*Route
	for _, algo := range balancer.Names() {
		r := testRoute(t, algo, algo, up, addrs...)
		r.PathPrefix = "/" + algo
		if algo == "consistent_hash" {
			r.HashOn = "header:X-User"
		}
		routes = append(routes, r)
	}
	fe, _ := newFrontend(t, Options{}, routes...)
	for _, algo := range balancer.Names() {
		t.Run(algo, func(t *testing.T) {
			seen := map[string]int{}
			for i := range 30 {
				req, _ := http.NewRequest("GET", fe.URL+"/"+algo+"/x", nil)
				req.Header.Set("X-User", "user-"+strconv.Itoa(i))
				res, body := do(t, req)
				if res.StatusCode != 200 {
					t.Fatalf("status %d: %s", res.StatusCode, body)
				}
				seen[decodeEcho(t, body).Backend]++
			}
			if algo == "round_robin" || algo == "weighted_round_robin" {
				for _, b := range bes {
					if seen[b.name] != 10 {
						t.Errorf("%s: backend %s got %d of 30, want 10 (%v)", algo, b.name, seen[b.name], seen)
					}
				}
			} else if len(seen) < 2 {
				t.Errorf("%s: 30 requests all went to %v", algo, seen)
			}
		})
	}
}

func TestProxyConsistentHashSticksPerKey(t *testing.T) {
	bes := []*backend{newBackend(t, "a", nil), newBackend(t, "b", nil), newBackend(t, "c", nil)}
	route := testRoute(t, "r", "consistent_hash", testUpstream(t, "svc"), bes[0].addr(), bes[1].addr(), bes[2].addr())
	route.HashOn = "cookie:session"
	fe, _ := newFrontend(t, Options{}, route)
	owners := map[string]bool{}
	for k := range 8 {
		key := "session=s" + strconv.Itoa(k)
		first := ""
		for range 5 {
			req, _ := http.NewRequest("GET", fe.URL+"/", nil)
			req.Header.Set("Cookie", "theme=dark; "+key)
			_, body := do(t, req)
			got := decodeEcho(t, body).Backend
			if first == "" {
				first = got
			} else if got != first {
				t.Fatalf("key %s went to %s then %s", key, first, got)
			}
		}
		owners[first] = true
	}
	if len(owners) < 2 {
		t.Errorf("8 keys all owned by %v", owners)
	}
}

func TestProxyLeastRequestDoneCalled(t *testing.T) {
	be := newBackend(t, "a", nil)
	dead := deadAddr(t)
	up := testUpstream(t, "svc")
	up.Retry = RetryPolicy{Attempts: 2}
	route := testRoute(t, "r", "least_request", up, be.addr(), dead)
	fe, _ := newFrontend(t, Options{}, route)
	for range 10 {
		if res, body := get(t, fe.URL+"/"); res.StatusCode != 200 {
			t.Fatalf("status %d: %s", res.StatusCode, body)
		}
	}
	lr := route.Balancer.(*balancer.LeastRequest)
	waitFor(t, "in-flight counts back to 0", func() bool {
		return lr.InFlight(be.addr()) == 0 && lr.InFlight(dead) == 0
	})
}

// TestProxyLeastRequestRepicksAreDone retries across several dead
// endpoints: a retry's pick that lands on an endpoint already tried is
// discarded, and must be ended like any other pick, or its in-flight count
// stays up for good and least_request avoids that endpoint from then on.
func TestProxyLeastRequestRepicksAreDone(t *testing.T) {
	be := newBackend(t, "a", nil)
	addrs := []string{be.addr(), deadAddr(t), deadAddr(t), deadAddr(t)}
	up := testUpstream(t, "svc")
	up.Retry = RetryPolicy{Attempts: 4}
	route := testRoute(t, "r", "least_request", up, addrs...)
	fe, _ := newFrontend(t, Options{}, route)
	for range 40 {
		if res, body := get(t, fe.URL+"/"); res.StatusCode != 200 && res.StatusCode != 502 {
			t.Fatalf("status %d: %s", res.StatusCode, body)
		}
	}
	lr := route.Balancer.(*balancer.LeastRequest)
	waitFor(t, "in-flight counts back to 0", func() bool {
		for _, a := range addrs {
			if lr.InFlight(a) != 0 {
				return false
			}
		}
		return true
	})
}

func TestProxyNilRouterServes404(t *testing.T) {
	s := newTestServer(t, NewHandler(nil, Options{}))
	res, body := get(t, s.URL+"/")
	if res.StatusCode != 404 || decodeError(t, res, body).Error != "no route" {
		t.Errorf("status %d body %s", res.StatusCode, body)
	}
}

func TestHandlerSetRouterSwaps(t *testing.T) {
	a, b := newBackend(t, "a", nil), newBackend(t, "b", nil)
	fe, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), a.addr()))
	if _, body := get(t, fe.URL+"/"); decodeEcho(t, body).Backend != "a" {
		t.Fatal("before the swap: not backend a")
	}
	h.SetRouter(mustRouter(t, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), b.addr())))
	if _, body := get(t, fe.URL+"/"); decodeEcho(t, body).Backend != "b" {
		t.Fatal("after the swap: not backend b")
	}
}

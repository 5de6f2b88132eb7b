package proxy

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/zkgate/zkgate/balancer"
)

var routerUpstream = &Upstream{Name: "svc", Transport: http.DefaultTransport}

// rt returns a matchable route; its balancer is never used by the router.
func rt(name string, edit func(*Route)) *Route {
	r := &Route{Name: name, Balancer: balancer.NewRoundRobin(), Upstream: routerUpstream}
	if edit != nil {
		edit(r)
	}
	return r
}

func mustRouter(t testing.TB, routes ...*Route) *Router {
	t.Helper()
	r, err := NewRouter(routes)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func matchName(router *Router, method, target, host string, hdr map[string]string) string {
	req := httptest.NewRequest(method, target, nil)
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if r := router.Match(req); r != nil {
		return r.Name
	}
	return ""
}

func TestRouterMatchHost(t *testing.T) {
	router := mustRouter(t,
		rt("exact", func(r *Route) { r.Hosts = []string{"Example.COM"} }),
		rt("wild", func(r *Route) { r.Hosts = []string{"*.example.com"} }),
		rt("v6", func(r *Route) { r.Hosts = []string{"[::1]"} }),
	)
	tests := []struct{ host, want string }{
		{"example.com", "exact"},
		{"EXAMPLE.com", "exact"},
		{"example.com:8080", "exact"},
		{"example.com.", "exact"},
		{"a.example.com", "wild"},
		{"a.b.example.com", "wild"},
		{"A.Example.Com:443", "wild"},
		{"[::1]:8080", "v6"},
		{"badexample.com", ""},
		{"example.org", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := matchName(router, "GET", "/", tt.host, nil); got != tt.want {
			t.Errorf("host %q matched %q, want %q", tt.host, got, tt.want)
		}
	}
}

func TestRouterMatchPathPrefixSegments(t *testing.T) {
	router := mustRouter(t,
		rt("api", func(r *Route) { r.PathPrefix = "/api" }),
		rt("slash", func(r *Route) { r.PathPrefix = "/v1/" }),
		rt("root", func(r *Route) { r.PathPrefix = "/" }),
	)
	tests := []struct{ path, want string }{
		{"/api", "api"},
		{"/api/", "api"},
		{"/api/x/y", "api"},
		{"/apis", "root"},
		{"/ap", "root"},
		{"/API", "root"}, // paths are case-sensitive
		{"/v1", "slash"},
		{"/v1/x", "slash"},
		{"/v10", "root"},
		{"/", "root"},
	}
	for _, tt := range tests {
		if got := matchName(router, "GET", tt.path, "h", nil); got != tt.want {
			t.Errorf("path %q matched %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestRouterMatchMethodsAndHeaders(t *testing.T) {
	router := mustRouter(t,
		rt("write", func(r *Route) { r.Methods = []string{"POST", "PUT"}; r.Priority = 2 }),
		rt("beta", func(r *Route) { r.Headers = map[string]string{"x-channel": "beta"}; r.Priority = 1 }),
		rt("traced", func(r *Route) { r.Headers = map[string]string{"X-Trace": ""}; r.Priority = 1 }),
		rt("any", nil),
	)
	tests := []struct {
		method string
		hdr    map[string]string
		want   string
	}{
		{"POST", nil, "write"},
		{"PUT", nil, "write"},
		{"GET", nil, "any"},
		{"post", nil, "any"}, // methods are case-sensitive
		{"GET", map[string]string{"X-Channel": "beta"}, "beta"},
		{"GET", map[string]string{"X-Channel": "stable"}, "any"},
		{"GET", map[string]string{"X-Trace": "1"}, "traced"},
		{"GET", map[string]string{"X-Trace": ""}, "traced"},
	}
	for _, tt := range tests {
		if got := matchName(router, tt.method, "/", "h", tt.hdr); got != tt.want {
			t.Errorf("%s %v matched %q, want %q", tt.method, tt.hdr, got, tt.want)
		}
	}
}

func TestRouterPriorityOrder(t *testing.T) {
	router := mustRouter(t,
		rt("first-generic", nil),
		rt("second-generic", nil),
		rt("short", func(r *Route) { r.PathPrefix = "/a" }),
		rt("long", func(r *Route) { r.PathPrefix = "/a/b" }),
		rt("hosted", func(r *Route) { r.PathPrefix = "/a/b"; r.Hosts = []string{"h"} }),
		rt("low", func(r *Route) { r.PathPrefix = "/a/b/c"; r.Priority = -1 }),
		rt("high", func(r *Route) { r.PathPrefix = "/z"; r.Priority = 10 }),
	)
	tests := []struct{ path, host, want string }{
		{"/x", "h", "first-generic"}, // equal rank: declaration order
		{"/a/x", "h", "short"},
		{"/a/b/x", "other", "long"},
		{"/a/b/x", "h", "hosted"},   // same prefix: a route with hosts first
		{"/a/b/c", "other", "long"}, // priority beats prefix length
		{"/z", "h", "high"},
	}
	for _, tt := range tests {
		if got := matchName(router, "GET", tt.path, tt.host, nil); got != tt.want {
			t.Errorf("%s%s matched %q, want %q", tt.host, tt.path, got, tt.want)
		}
	}
	var names []string
	for _, r := range router.Routes() {
		names = append(names, r.Name)
	}
	want := "high,hosted,long,short,first-generic,second-generic,low"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("Routes() order = %s, want %s", got, want)
	}
}

func TestNewRouterRejectsBadRoutes(t *testing.T) {
	tests := []struct {
		name  string
		route *Route
		want  string
	}{
		{"no name", rt("", nil), "name is empty"},
		{"no balancer", rt("r", func(r *Route) { r.Balancer = nil }), "balancer is nil"},
		{"no upstream", rt("r", func(r *Route) { r.Upstream = nil }), "upstream is nil"},
		{"no transport", rt("r", func(r *Route) { r.Upstream = &Upstream{Name: "s"} }), `upstream "s": transport is nil`},
		{"relative prefix", rt("r", func(r *Route) { r.PathPrefix = "api" }), `path prefix "api" must start with '/'`},
		{"dirty prefix", rt("r", func(r *Route) { r.PathPrefix = "/a/../b" }), "must be a clean path"},
		{"double slash prefix", rt("r", func(r *Route) { r.PathPrefix = "/a//b" }), "must be a clean path"},
		{"bad wildcard", rt("r", func(r *Route) { r.Hosts = []string{"a.*.com"} }), "'*' is allowed only"},
		{"host with port", rt("r", func(r *Route) { r.Hosts = []string{"a.com:80"} }), "without port"},
		{"bad method", rt("r", func(r *Route) { r.Methods = []string{"GE T"} }), "not a valid method"},
		{"connect", rt("r", func(r *Route) { r.Methods = []string{"CONNECT"} }), "CONNECT is never proxied"},
		{"bad header", rt("r", func(r *Route) { r.Headers = map[string]string{"a b": ""} }), "not a valid header name"},
		{"bad set value", rt("r", func(r *Route) { r.SetHeaders = map[string]string{"X": "a\r\nB: c"} }), "contains CR, LF or NUL"},
		// A route never decides the framing, Host or a hop-by-hop field:
		// the fast path wrote a second Host line for a set Host.
		{"set host", rt("r", func(r *Route) { r.SetHeaders = map[string]string{"host": "evil"} }), `set header "host": a hop-by-hop, framing, Host or Expect field`},
		{"set framing", rt("r", func(r *Route) { r.SetHeaders = map[string]string{"Transfer-Encoding": "chunked"} }), "hop-by-hop, framing"},
		{"set length", rt("r", func(r *Route) { r.SetHeaders = map[string]string{"Content-Length": "0"} }), "hop-by-hop, framing"},
		{"set upgrade", rt("r", func(r *Route) { r.SetHeaders = map[string]string{"Upgrade": "h2c"} }), "hop-by-hop, framing"},
		{"remove connection", rt("r", func(r *Route) { r.RemoveHeaders = []string{"connection"} }), `remove header "connection": a hop-by-hop`},
		{"bad hash", rt("r", func(r *Route) { r.HashOn = "ip" }), `hash_on "ip" is not a hash key`},
		{"hash header without name", rt("r", func(r *Route) { r.HashOn = "header:" }), "want header:NAME"},
		{"negative timeout", rt("r", func(r *Route) { r.Timeout = -1 }), "is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRouter([]*Route{tt.route})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewRouter error = %v, want it to contain %q", err, tt.want)
			}
			if tt.route.Name != "" && !strings.Contains(err.Error(), strconv.Quote(tt.route.Name)) {
				t.Errorf("error %q does not name route %q", err, tt.route.Name)
			}
		})
	}
	_, err := NewRouter([]*Route{rt("dup", nil), rt("dup", nil)})
	if err == nil || !strings.Contains(err.Error(), `route "dup": duplicate name`) {
		t.Errorf("duplicate names: error = %v", err)
	}
}

func TestRouterMatchDoesNotAllocate(t *testing.T) {
	router := benchRouter(t)
	req := httptest.NewRequest("GET", "/svc17/items/42", nil)
	req.Host = "api.example.com:8080"
	req.Header.Set("X-Tenant", "t1")
	allocs := testing.AllocsPerRun(1000, func() {
		if router.Match(req) == nil {
			t.Fatal("no match")
		}
	})
	if allocs != 0 {
		t.Errorf("Match allocates %v times per call, want 0", allocs)
	}
}

// benchRouter is a realistic table: 40 routes over hosts, prefixes, methods
// and headers.
func benchRouter(t testing.TB) *Router {
	var routes []*Route
	for i := range 20 {
		n := strconv.Itoa(i)
		routes = append(routes,
			rt("svc"+n, func(r *Route) { r.PathPrefix = "/svc" + n; r.Hosts = []string{"*.example.com"} }),
			rt("svc"+n+"-w", func(r *Route) {
				r.PathPrefix = "/svc" + n + "/admin"
				r.Methods = []string{"POST"}
				r.Headers = map[string]string{"X-Tenant": "t1"}
			}),
		)
	}
	return mustRouter(t, routes...)
}

func BenchmarkRouterMatch(b *testing.B) {
	router := benchRouter(b)
	req := httptest.NewRequest("GET", "/svc17/items/42", nil)
	req.Host = "api.example.com:8080"
	b.ReportAllocs()
	for b.Loop() {
		if router.Match(req) == nil {
			b.Fatal("no match")
		}
	}
}

func TestRouterMatchExactPathRegexAndQuery(t *testing.T) {
	router := mustRouter(t,
		rt("prefix", func(r *Route) { r.PathPrefix = "/api" }),
		rt("exact", func(r *Route) { r.Path = "/api/health" }),
		rt("versioned", func(r *Route) { r.PathRegex = `^/v[0-9]+/` }),
		rt("tenant", func(r *Route) { r.PathPrefix = "/api"; r.Query = map[string]string{"tenant": "acme corp", "debug": ""} }),
	)
	for _, tt := range []struct{ target, want string }{
		{"/api/health", "exact"},
		{"/api/health/", "prefix"},
		{"/api/health/x", "prefix"},
		{"/api/healthz", "prefix"},
		{"/v2/users", "versioned"},
		{"/v/users", ""},
		{"/x/v2/users", ""},
		{"/api/x?tenant=acme+corp&debug", "tenant"},
		{"/api/x?debug=1&tenant=acme%20corp", "tenant"},
		{"/api/x?tenant=acme%20corp", "prefix"},              // debug missing
		{"/api/x?tenant=acme&debug", "prefix"},               // wrong value
		{"/api/x?tenant=acme%2", "prefix"},                   // malformed escape never matches
		{"/api/x?t%65nant=acme+corp&debug=", "tenant"},       // an escaped name
		{"/api/x?tenant=acme+corp&tenant=x&debug", "tenant"}, // one of the values
		{"/api/health?tenant=acme+corp&debug", "exact"},      // exact beats prefix+query
	} {
		if got := matchName(router, http.MethodGet, tt.target, "h", nil); got != tt.want {
			t.Errorf("GET %s matched %q, want %q", tt.target, got, tt.want)
		}
	}
}

func TestQueryMatchDoesNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() {
		if !queryHas("a=1&tenant=acme+corp&b=%41", "tenant", "acme corp") || !queryHas("b=%41", "b", "A") {
			t.Fatal("no match")
		}
	}); n != 0 {
		t.Fatalf("queryHas allocates %.0f times", n)
	}
}

// The fast path and the net/http side match queries and exact paths alike.
func TestQueryAndExactPathOnBothPaths(t *testing.T) {
	a, b := newBackend(t, "a", nil), newBackend(t, "b", nil)
	up := testUpstream(t, "svc")
	ra := testRoute(t, "a", "round_robin", up, a.addr())
	ra.Query = map[string]string{"tenant": "acme"}
	rb := testRoute(t, "b", "round_robin", up, b.addr())
	rb.Path = "/exact"
	_, h := newFrontend(t, Options{}, ra, rb)
	for _, fast := range []bool{true, false} {
		fe := startFrontend(t, h, ServerConfig{DisableFastPath: !fast})
		addr := strings.TrimPrefix(fe.URL, "http://")
		for _, tt := range []struct{ target, want string }{
			{"/x?tenant=acme", "a"},
			{"/exact", "b"},
			{"/exact?tenant=acme", "b"},
			{"/x?tenant=other", ""},
		} {
			res, body := rawRequest(t, addr, "GET "+tt.target+" HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
			got := ""
			if res.StatusCode == http.StatusOK {
				got = decodeEcho(t, body).Backend
			}
			if got != tt.want {
				t.Errorf("fast=%v GET %s: %d from %q, want %q", fast, tt.target, res.StatusCode, got, tt.want)
			}
		}
	}
}

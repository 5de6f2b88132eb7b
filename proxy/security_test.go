package proxy

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// Each security property of the proxy has its own named test here.

func frontAddr(url string) string { return strings.TrimPrefix(url, "http://") }

func TestReverseProxyAbsoluteFormTargetNeverForwardedToItsHost(t *testing.T) {
	be := newBackend(t, "ours", nil)
	decoy := newBackend(t, "decoy", nil)
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))

	req := "GET http://user:pw@" + decoy.addr() + "/steal?x=1 HTTP/1.1\r\nHost: ignored.example\r\nConnection: close\r\n\r\n"
	res, body := rawRequest(t, frontAddr(fe.URL), req)
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	e := decodeEcho(t, body)
	if e.Backend != "ours" || e.Path != "/steal" || e.Query != "x=1" {
		t.Errorf("absolute-form request reached %s %s?%s", e.Backend, e.Path, e.Query)
	}
	if e.URI != "/steal?x=1" {
		t.Errorf("backend received target %q, want origin-form /steal?x=1", e.URI)
	}
	if auth, ok := e.Header["Authorization"]; ok {
		t.Errorf("the target's userinfo became Authorization %v", auth)
	}
	if n := decoy.hits.Load(); n != 0 {
		t.Errorf("the host named in the request target received %d requests", n)
	}
}

func TestReverseProxyAbsoluteFormRoutedByOurRoutes(t *testing.T) {
	be := newBackend(t, "ours", nil)
	decoy := newBackend(t, "decoy", nil)
	route := testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr())
	route.Hosts = []string{"api.example"}
	fe, _ := newFrontend(t, Options{}, route)

	// The target's host (not the Host header, RFC 9112 section 3.2.2) picks
	// the route; it names no route here, so nothing is forwarded.
	req := "GET http://" + decoy.addr() + "/ HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n"
	res, _ := rawRequest(t, frontAddr(fe.URL), req)
	if res.StatusCode != 404 {
		t.Errorf("status %d, want 404", res.StatusCode)
	}
	if be.hits.Load()+decoy.hits.Load() != 0 {
		t.Error("a request without a route was forwarded")
	}
}

func TestReverseProxyConnectRefused(t *testing.T) {
	be := newBackend(t, "ours", nil)
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	req := "CONNECT " + be.addr() + " HTTP/1.1\r\nHost: " + be.addr() + "\r\nConnection: close\r\n\r\n"
	res, body := rawRequest(t, frontAddr(fe.URL), req)
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("CONNECT status %d, want 405", res.StatusCode)
	}
	if e := decodeError(t, res, body); e.Error != "method not allowed" {
		t.Errorf("error body %+v", e)
	}
	if be.hits.Load() != 0 {
		t.Error("CONNECT reached the backend")
	}
}

func TestReverseProxyPathTraversalCannotEscapeStrippedPrefix(t *testing.T) {
	api := newBackend(t, "api", nil)
	route := testRoute(t, "api", "round_robin", testUpstream(t, "svc"), api.addr())
	route.PathPrefix = "/api"
	route.StripPrefix = true
	fe, _ := newFrontend(t, Options{}, route)

	tests := []struct {
		target string
		status int
		path   string // what the api backend must see on 200
	}{
		{"/api/../admin", 404, ""},
		{"/api/%2e%2e/admin", 404, ""},
		{"/api/%2E%2e/%2e%2e/admin", 404, ""},
		{"/api/./../admin", 404, ""},
		{"/api//../admin", 404, ""},
		{"/api%2F..%2Fadmin", 400, ""},
		{"/api/..%2Fadmin", 400, ""},
		{"//api/x", 200, "/x"},
		{"/api/x/../y", 200, "/y"},
		{"/api/x/%2e%2e/y", 200, "/y"},
		{"/api/../api/z", 200, "/z"},
		{"/x/../api/..", 404, ""},
	}
	for _, tt := range tests {
		before := api.hits.Load()
		res, body := rawRequest(t, frontAddr(fe.URL), "GET "+tt.target+" HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
		if res.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d (%s)", tt.target, res.StatusCode, tt.status, body)
			continue
		}
		if tt.status != 200 {
			if api.hits.Load() != before {
				t.Errorf("%s: reached the backend", tt.target)
			}
			continue
		}
		e := decodeEcho(t, body)
		if e.Path != tt.path || e.URI != tt.path {
			t.Errorf("%s: backend saw path %q (target %q), want %q", tt.target, e.Path, e.URI, tt.path)
		}
	}
}

func TestXForwardedForReplacedFromUntrustedPeer(t *testing.T) {
	be := newBackend(t, "a", nil)
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	req, _ := http.NewRequest("GET", fe.URL+"/", nil)
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("X-Forwarded-Host", "evil.example")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Real-IP", "6.6.6.6")
	req.Header.Set("Forwarded", "for=6.6.6.6")
	req.Header.Set("X-Forwarded-Prefix", "/evil")
	req.Host = "public.example"
	_, body := do(t, req)
	h := decodeEcho(t, body).Header
	want := map[string]string{
		"X-Forwarded-For":   "127.0.0.1",
		"X-Forwarded-Host":  "public.example",
		"X-Forwarded-Proto": "http",
		"X-Real-Ip":         "127.0.0.1",
	}
	for k, v := range want {
		if got := h[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %v, want [%s]", k, got, v)
		}
	}
	for _, k := range []string{"Forwarded", "X-Forwarded-Prefix"} {
		if got, ok := h[k]; ok {
			t.Errorf("%s = %v, want it removed", k, got)
		}
	}
}

func TestXForwardedForAppendedFromTrustedPeer(t *testing.T) {
	be := newBackend(t, "a", nil)
	opts := Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}}
	fe, _ := newFrontend(t, opts, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	req, _ := http.NewRequest("GET", fe.URL+"/", nil)
	req.Header.Add("X-Forwarded-For", "1.1.1.1, 203.0.113.9")
	req.Header.Add("X-Forwarded-For", "10.0.0.5")
	req.Header.Set("X-Forwarded-Host", "public.example")
	req.Header.Set("X-Forwarded-Proto", "https")
	_, body := do(t, req)
	h := decodeEcho(t, body).Header
	want := map[string]string{
		"X-Forwarded-For":   "1.1.1.1, 203.0.113.9, 10.0.0.5, 127.0.0.1",
		"X-Forwarded-Host":  "public.example",
		"X-Forwarded-Proto": "https",
		// The rightmost address not of a trusted proxy: 1.1.1.1 may be
		// forged by 203.0.113.9, which is not trusted.
		"X-Real-Ip": "203.0.113.9",
	}
	for k, v := range want {
		if got := h[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %v, want [%s]", k, got, v)
		}
	}
}

func TestXRealIPClientAddress(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name, remote string
		xff          []string
		want         string
		wantTrusted  bool
	}{
		{"untrusted peer", "192.0.2.1:1234", []string{"1.2.3.4"}, "192.0.2.1", false},
		{"trusted peer without header", "10.1.1.1:1234", nil, "10.1.1.1", true},
		{"trusted chain", "10.1.1.1:1234", []string{"198.51.100.7, 10.2.2.2"}, "198.51.100.7", true},
		{"all trusted", "10.1.1.1:1234", []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3", true},
		{"garbage stops the walk", "10.1.1.1:1234", []string{"1.2.3.4, bogus, 10.2.2.2"}, "10.2.2.2", true},
		{"ipv4-mapped peer", "[::ffff:10.1.1.1]:1234", []string{"198.51.100.7"}, "198.51.100.7", true},
		{"ipv6 client", "10.1.1.1:1234", []string{"2001:db8::1"}, "2001:db8::1", true},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		for _, v := range tt.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		ip, tr := clientIP(peerHost(r.RemoteAddr), headerMap(r.Header), trusted)
		if ip != tt.want || tr != tt.wantTrusted {
			t.Errorf("%s: clientIP = %q, %v; want %q, %v", tt.name, ip, tr, tt.want, tt.wantTrusted)
		}
	}
}

func TestReverseProxyStripHeadersPresentInConnection(t *testing.T) {
	be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		for _, h := range []string{"X-Hop", "Keep-Alive", "Proxy-Authorization", "Te", "Upgrade", "Proxy-Connection"} {
			if v, ok := r.Header[h]; ok {
				t.Errorf("backend received hop-by-hop header %s: %v", h, v)
			}
		}
		if r.Header.Get("X-Keep") != "1" {
			t.Error("end-to-end header X-Keep was dropped")
		}
		w.Header().Set("Connection", "X-Resp-Hop")
		w.Header().Set("X-Resp-Hop", "1")
		w.Header().Set("X-Resp-Keep", "1")
		w.WriteHeader(204)
	})
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	raw := "GET / HTTP/1.1\r\nHost: h\r\nConnection: close, X-Hop\r\nX-Hop: secret\r\nX-Keep: 1\r\n" +
		"Keep-Alive: timeout=5\r\nProxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nTe: gzip\r\n\r\n"
	res, _ := rawRequest(t, frontAddr(fe.URL), raw)
	if res.StatusCode != 204 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if _, ok := res.Header["X-Resp-Hop"]; ok {
		t.Error("client received the response header named in the backend's Connection")
	}
	if res.Header.Get("X-Resp-Keep") != "1" {
		t.Error("end-to-end response header dropped")
	}
	if be.hits.Load() != 1 {
		t.Errorf("backend hits %d, want 1", be.hits.Load())
	}
}

func TestReverseProxyInvalidUpgradeRefused(t *testing.T) {
	be := newBackend(t, "a", nil)
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	raw := "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: w\xc3\xa9bsocket\r\n\r\n"
	res, body := rawRequest(t, frontAddr(fe.URL), raw)
	checkError(t, res, body, http.StatusBadRequest, "bad request", "r", "svc")
	if be.hits.Load() != 0 {
		t.Error("the request reached the backend")
	}
}

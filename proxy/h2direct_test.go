package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// directFrontend starts a native h2c entry point with one route to addr
// (route timeout to, none when zero) and counts the requests
// forward.direct serves.
func directFrontend(t *testing.T, addr string, to time.Duration) (*frontend, *atomic.Int32) {
	t.Helper()
	r := testRoute(t, "r", "round_robin", testUpstream(t, "svc"), addr)
	r.Timeout = to
	_, h := newFrontend(t, Options{}, r)
	var n atomic.Int32
	h.onDirect = func() { n.Add(1) }
	return startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C, HTTP2Server: HTTP2ServerZkgate}), &n
}

// TestDirectShortBodyResetsStream: an answer whose body ends before its
// Content-Length (the upstream closed) is reset (RST_STREAM
// INTERNAL_ERROR), never ended with END_STREAM as if it were whole.
func TestDirectShortBodyResetsStream(t *testing.T) {
	addr := review23Backend(t, func(_ string, nc net.Conn) bool {
		_, _ = io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
		return false // and the connection closes
	})
	fe, direct := directFrontend(t, addr, 0)
	c := dialH2Raw(t, strings.TrimPrefix(fe.URL, "http://"))
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.headers("/x"), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	got := 0
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("the stream neither ended nor was reset: %v", err)
		}
		if f.Header().StreamID != 1 {
			continue
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			got += len(f.Data())
			if f.StreamEnded() {
				t.Fatalf("a body cut at %d of 100 bytes was ended as whole", got)
			}
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				t.Fatal("the answer's head ended the stream")
			}
		case *http2.RSTStreamFrame:
			if f.ErrCode != http2.ErrCodeInternal {
				t.Fatalf("RST_STREAM %v, want INTERNAL_ERROR", f.ErrCode)
			}
			if direct.Load() != 1 {
				t.Fatalf("forward.direct served %d requests, want 1", direct.Load())
			}
			return
		}
	}
}

// TestDirectRouteTimeout: Route.Timeout bounds the wait for the answer's
// head (504), not the body that follows a head in time — as the timer of
// the other paths, stopped when the head arrives.
func TestDirectRouteTimeout(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var calls atomic.Int32
	addr := review23Backend(t, func(_ string, nc net.Conn) bool {
		if calls.Add(1) == 1 {
			<-release // never answers in time
			return false
		}
		_, _ = io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
		time.Sleep(1500 * time.Millisecond) // the body after the route's timeout (what is tested, not a wait)
		_, _ = io.WriteString(nc, "late")
		return true
	})
	// A second: the head, sent at once, arrives well within it even on a
	// loaded machine; the body comes half a second after it.
	fe, direct := directFrontend(t, addr, time.Second)
	c := h2cClient(t)
	res, err := c.Get(fe.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d past the route timeout, want 504", res.StatusCode)
	}
	res, err = c.Get(fe.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK || string(body) != "late" {
		t.Fatalf("a head in time with a late body: %d %q %v, want 200 \"late\"", res.StatusCode, body, err)
	}
	if direct.Load() != 2 {
		t.Fatalf("forward.direct served %d requests, want 2", direct.Load())
	}
}

// TestDirectInformational: a 103 before the answer reaches the client, with
// its fields, then the answer.
func TestDirectInformational(t *testing.T) {
	addr := review23Backend(t, func(_ string, nc net.Conn) bool {
		_, _ = io.WriteString(nc, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"+
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Answer: yes\r\n\r\nok")
		return true
	})
	fe, direct := directFrontend(t, addr, 0)
	var hints []string
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			hints = append(hints, http.StatusText(code)+": "+h.Get("Link"))
			return nil
		},
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fe.URL+"/x", nil)
	res, err := h2cClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || string(body) != "ok" || res.Header.Get("X-Answer") != "yes" || res.ContentLength != 2 {
		t.Fatalf("answer %d %q %v %v", res.StatusCode, body, res.Header, err)
	}
	if len(hints) != 1 || hints[0] != "Early Hints: </style.css>; rel=preload" {
		t.Fatalf("informational answers seen: %q", hints)
	}
	if direct.Load() != 1 {
		t.Fatalf("forward.direct served %d requests, want 1", direct.Load())
	}
}

// TestDirectRequestPolicies: a route whose policies act on requests only
// (authentication with forwarded claims, IP rules, a rate limit) is served
// by forward.direct, with those policies applied: a refused request never
// reaches it, the claims replace a spoofed field. A route whose policies
// edit answers (CORS, response fields, compression) is not, and its edits
// are in the answer.
func TestDirectRequestPolicies(t *testing.T) {
	b := newBackend(t, "b", nil)
	serve := func(t *testing.T, pol *Policies) (string, *atomic.Int32) {
		r := testRoute(t, "r", "round_robin", testUpstream(t, "svc"), b.addr())
		r.Policies = pol
		_, h := newFrontend(t, Options{}, r)
		var n atomic.Int32
		h.onDirect = func() { n.Add(1) }
		return startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C, HTTP2Server: HTTP2ServerZkgate}).URL, &n
	}
	get := func(t *testing.T, url string, fields ...string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url+"/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fields {
			name, value, _ := strings.Cut(f, ": ")
			req.Header.Add(name, value)
		}
		res, err := h2cClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, body
	}

	t.Run("request policies", func(t *testing.T) {
		url, direct := serve(t, &Policies{
			IPAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			Auth: &AuthPolicy{JWT: &JWTAuth{Verifier: fakeVerifier{"t1": {"sub": "alice"}},
				ForwardClaims: map[string]string{"sub": "X-User-ID"}}},
			RateLimit: &RateLimitPolicy{Key: "route", Limiter: &countLimiter{n: 2}},
		})
		res, body := get(t, url, "Authorization: Bearer t1", "X-User-ID: mallory")
		if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 || direct.Load() != 1 {
			t.Fatalf("HTTP/%d %d %s, %d direct; want HTTP/2 200 by forward.direct", res.ProtoMajor, res.StatusCode, body, direct.Load())
		}
		e := decodeEcho(t, body)
		if got := e.Header["X-User-Id"]; len(got) != 1 || got[0] != "alice" || len(e.Header["Authorization"]) != 0 {
			t.Errorf("the backend saw X-User-Id %q and Authorization %q; want the claim alone and no credential", got, e.Header["Authorization"])
		}
		if res, body := get(t, url, "Authorization: Bearer t2"); res.StatusCode != http.StatusUnauthorized || direct.Load() != 1 {
			t.Errorf("a bad token: %d %s with %d direct; want 401 before forwarding", res.StatusCode, body, direct.Load())
		}
		get(t, url, "Authorization: Bearer t1")
		if res, _ := get(t, url, "Authorization: Bearer t1"); res.StatusCode != http.StatusTooManyRequests || direct.Load() != 2 {
			t.Errorf("the third request: %d with %d direct; want 429 before forwarding", res.StatusCode, direct.Load())
		}
	})
	for _, c := range []struct {
		name  string
		pol   *Policies
		check func(h http.Header) bool
	}{
		{"CORS", &Policies{CORS: &CORSPolicy{AllowedOrigins: []string{"https://app.example"}}},
			func(h http.Header) bool { return h.Get("Access-Control-Allow-Origin") == "https://app.example" }},
		{"response field set", &Policies{SetResponseHeaders: map[string]string{"X-Frame-Options": "DENY"}},
			func(h http.Header) bool { return h.Get("X-Frame-Options") == "DENY" }},
		{"response field removed", &Policies{RemoveResponseHeaders: []string{"Content-Type"}},
			func(h http.Header) bool { _, ok := h["Content-Type"]; return !ok }},
	} {
		t.Run(c.name, func(t *testing.T) {
			url, direct := serve(t, c.pol)
			res, body := get(t, url, "Origin: https://app.example")
			if res.StatusCode != http.StatusOK || direct.Load() != 0 || !c.check(res.Header) {
				t.Errorf("%d %s with %d direct, header %v; want 200 with the route's edit, not by forward.direct", res.StatusCode, body, direct.Load(), res.Header)
			}
		})
	}
}

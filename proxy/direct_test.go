package proxy

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zkgate/zkgate/balancer"
)

// plainTransport hides a *Transport so that its routes take ReverseProxy.
type plainTransport struct{ http.RoundTripper }

// plainMode is the frontend the direct-path tests run on: "fast" (a
// Server with its fast path, as zkgate runs) or "nethttp" (every connection
// on net/http, so that the Handler's direct path serves plain requests).
var plainMode = "fast"

// TestDirectPath runs every direct-path test on both frontends: the
// behaviours of the plain-request paths are the same.
func TestDirectPath(t *testing.T) {
	tests := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"TakenOnlyForPlainRequests", testDirectPathTakenOnlyForPlainRequests},
		{"NotForOtherTransportsOrProtocolHeaders", testDirectPathNotForOtherTransportsOrProtocolHeaders},
		{"SendsWhatReverseProxySends", testDirectPathSendsWhatReverseProxySends},
		{"ServerSentEventsFlushedAtOnce", testDirectPathServerSentEventsFlushedAtOnce},
		{"StreamWithoutLengthFlushed", testDirectPathStreamWithoutLengthFlushed},
		{"Trailers", testDirectPathTrailers},
		{"InformationalPassedOn", testDirectPathInformationalPassedOn},
		{"RetriesAndReports", testDirectPathRetriesAndReports},
		{"ErrorStatuses", testDirectPathErrorStatuses},
		{"AbortsTruncatedBody", testDirectPathAbortsTruncatedBody},
	}
	for _, mode := range []string{"fast", "nethttp"} {
		for _, tc := range tests {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				plainMode = mode
				defer func() { plainMode = "fast" }()
				tc.fn(t)
			})
		}
	}
}

// directFrontend starts the proxy serving routes on the plainMode frontend
// and returns it with a counter of the requests a plain-request path (the
// fast path or the Handler's direct path) served.
func directFrontend(t *testing.T, opts Options, routes ...*Route) (string, *atomic.Int64) {
	t.Helper()
	rt, err := NewRouter(routes)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(rt, opts)
	n := &atomic.Int64{}
	h.onDirect = func() { n.Add(1) }
	h.onFast = func() { n.Add(1) }
	fe := startFrontend(t, h, ServerConfig{DisableFastPath: plainMode == "nethttp"})
	return fe.URL, n
}

func wantDirect(t *testing.T, n *atomic.Int64, want int64) {
	t.Helper()
	if got := n.Load(); got != want {
		t.Errorf("direct path served %d requests, want %d", got, want)
	}
}

func testDirectPathTakenOnlyForPlainRequests(t *testing.T) {
	be := newBackend(t, "a", nil)
	url, n := directFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	cases := []struct {
		name   string
		req    func() *http.Request
		direct bool
	}{
		{"GET", func() *http.Request { r, _ := http.NewRequest("GET", url+"/a?x=1", nil); return r }, true},
		{"HEAD", func() *http.Request { r, _ := http.NewRequest("HEAD", url+"/a", nil); return r }, true},
		{"DELETE", func() *http.Request { r, _ := http.NewRequest("DELETE", url+"/a", nil); return r }, true},
		{"Connection keep-alive", func() *http.Request {
			r, _ := http.NewRequest("GET", url+"/a", nil)
			r.Header.Set("Connection", "keep-alive, X-Hop")
			return r
		}, true},
		// The fast path also takes small bodies; the Handler's direct
		// path none.
		{"POST with body", func() *http.Request {
			r, _ := http.NewRequest("POST", url+"/a", strings.NewReader("x"))
			return r
		}, plainMode == "fast"},
		{"Expect", func() *http.Request {
			r, _ := http.NewRequest("GET", url+"/a", nil)
			r.Header.Set("Expect", "100-continue")
			return r
		}, false},
		{"Upgrade", func() *http.Request {
			r, _ := http.NewRequest("GET", url+"/a", nil)
			r.Header.Set("Connection", "Upgrade")
			r.Header.Set("Upgrade", "h2c")
			return r
		}, false},
		{"semicolon query", func() *http.Request { r, _ := http.NewRequest("GET", url+"/a?x=1;y=2", nil); return r }, false},
		{"bad escape query", func() *http.Request { r, _ := http.NewRequest("GET", url+"/a?x=%zz", nil); return r }, false},
	}
	for _, c := range cases {
		before := n.Load()
		res, body := do(t, c.req())
		if res.StatusCode >= 300 {
			t.Errorf("%s: status %d: %s", c.name, res.StatusCode, body)
		}
		if got := n.Load() > before; got != c.direct {
			t.Errorf("%s: direct = %v, want %v", c.name, got, c.direct)
		}
	}
}

func testDirectPathNotForOtherTransportsOrProtocolHeaders(t *testing.T) {
	be := newBackend(t, "a", nil)
	plain := testUpstream(t, "plain")
	plain.Transport = plainTransport{plain.Transport}
	setConn := testRoute(t, "conn", "round_robin", testUpstream(t, "svc"), be.addr())
	setConn.PathPrefix = "/conn"
	setConn.SetHeaders = map[string]string{"connection": "close"}
	url, n := directFrontend(t, Options{}, testRoute(t, "plain", "round_robin", plain, be.addr()), setConn)
	for _, p := range []string{"/x", "/conn"} {
		if res, body := get(t, url+p); res.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", p, res.StatusCode, body)
		}
	}
	wantDirect(t, n, 0)
}

// TestDirectPathSendsWhatReverseProxySends compares what an endpoint
// receives, and what the client receives, through both paths.
func testDirectPathSendsWhatReverseProxySends(t *testing.T) {
	be := newBackend(t, "a", nil)
	beResp := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Resp-Hop")
		w.Header().Set("X-Resp-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Add("X-Multi", "1")
		w.Header().Add("X-Multi", "2")
		_, _ = io.WriteString(w, "hello")
	})
	routes := func(up *Upstream) []*Route {
		r := testRoute(t, "echo", "round_robin", up, be.addr())
		r.PathPrefix = "/api"
		r.StripPrefix = true
		r.SetHeaders = map[string]string{"X-Set": "s"}
		r.RemoveHeaders = []string{"X-Drop"}
		r2 := testRoute(t, "resp", "round_robin", up, beResp.addr())
		r2.PathPrefix = "/resp"
		return []*Route{r, r2}
	}
	direct := testUpstream(t, "svc")
	plain := testUpstream(t, "svc")
	plain.Transport = plainTransport{plain.Transport}
	durl, n := directFrontend(t, Options{}, routes(direct)...)
	purl, _ := directFrontend(t, Options{}, routes(plain)...)

	send := func(base string) echoReply {
		req, _ := http.NewRequest("GET", base+"/api/items/a%2Fb?q=1&r=%41", nil)
		req.Header["User-Agent"] = nil // none sent
		req.Header.Set("Connection", "keep-alive, X-Hop")
		req.Header.Set("X-Hop", "gone")
		req.Header.Set("Keep-Alive", "timeout=5")
		req.Header.Set("Proxy-Authorization", "secret")
		req.Header.Set("Te", "trailers, deflate")
		req.Header.Set("Forwarded", "for=1.2.3.4")
		req.Header.Set("X-Forwarded-For", "1.2.3.4")
		req.Header.Set("X-Forwarded-Host", "evil")
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Prefix", "/evil")
		req.Header.Set("X-Real-Ip", "1.2.3.4")
		req.Header.Set("X-Drop", "d")
		req.Header.Add("X-Keep", "1")
		req.Header.Add("X-Keep", "2")
		res, body := do(t, req)
		if res.StatusCode != 200 {
			t.Fatalf("status %d: %s", res.StatusCode, body)
		}
		return decodeEcho(t, body)
	}
	dEcho, pEcho := send(durl), send(purl)
	dEcho.Header["X-Forwarded-Host"], pEcho.Header["X-Forwarded-Host"] = nil, nil // the frontends' ports differ
	dEcho.Host, pEcho.Host = "", ""
	if !reflect.DeepEqual(dEcho, pEcho) {
		t.Errorf("direct path sent\n%+v\nReverseProxy sent\n%+v", dEcho, pEcho)
	}
	for _, h := range []string{"X-Hop", "Keep-Alive", "Proxy-Authorization", "Forwarded", "X-Drop", "User-Agent"} {
		if v, ok := dEcho.Header[h]; ok {
			t.Errorf("direct path forwarded %s: %q", h, v)
		}
	}
	if got := dEcho.Header["Te"]; len(got) != 1 || got[0] != "trailers" {
		t.Errorf("Te = %q, want trailers", got)
	}
	if dEcho.Path != "/items/a/b" || dEcho.RawPath != "/items/a%2Fb" || dEcho.Query != "q=1&r=%41" {
		t.Errorf("path %q raw %q query %q", dEcho.Path, dEcho.RawPath, dEcho.Query)
	}

	dres, dbody := get(t, durl+"/resp")
	pres, pbody := get(t, purl+"/resp")
	dres.Header.Del("Date")
	pres.Header.Del("Date")
	if !reflect.DeepEqual(dres.Header, pres.Header) || string(dbody) != string(pbody) {
		t.Errorf("direct answered %v %q, ReverseProxy %v %q", dres.Header, dbody, pres.Header, pbody)
	}
	if dres.Header.Get("X-Resp-Hop") != "" || dres.Header.Get("Keep-Alive") != "" {
		t.Errorf("hop-by-hop response headers passed: %v", dres.Header)
	}
	wantDirect(t, n, 2)
}

func testDirectPathServerSentEventsFlushedAtOnce(t *testing.T) {
	release := make(chan struct{})
	be := newBackend(t, "sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.Header().Set("Content-Length", "26") // a length must not stop the flushes
		_, _ = io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, "data: last!\n\n")
	})
	url, n := directFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	defer close(release)

	res := openStream(t, url+"/events")
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event: %q, %v", line, err)
	}
	wantDirect(t, n, 1)
}

func testDirectPathStreamWithoutLengthFlushed(t *testing.T) {
	release := make(chan struct{})
	be := newBackend(t, "s", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush() // the head alone
		select {
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, "{}\n")
	})
	url, n := directFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	res := openStream(t, url+"/")
	close(release) // the head arrived before any of the body
	if line, err := bufio.NewReader(res.Body).ReadString('\n'); err != nil || line != "{}\n" {
		t.Fatalf("first line: %q, %v", line, err)
	}
	wantDirect(t, n, 1)
}

func testDirectPathTrailers(t *testing.T) {
	be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Checksum", "abc")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	})
	url, n := directFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	res, body := get(t, url+"/")
	if string(body) != "body" {
		t.Errorf("body %q", body)
	}
	for k, v := range map[string]string{"X-Checksum": "abc", "X-Late": "late"} {
		if got := res.Trailer.Get(k); got != v {
			t.Errorf("trailer %s = %q, want %q (all: %v)", k, got, v, res.Trailer)
		}
	}
	wantDirect(t, n, 1)
}

func testDirectPathInformationalPassedOn(t *testing.T) {
	be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		_, _ = io.WriteString(w, "done")
	})
	url, n := directFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	var got []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, http.StatusText(code)+" "+h.Get("Link"))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", url+"/", nil)
	res, body := do(t, req)
	if res.StatusCode != 200 || string(body) != "done" {
		t.Errorf("status %d body %q", res.StatusCode, body)
	}
	if len(got) != 1 || got[0] != "Early Hints </style.css>; rel=preload" {
		t.Errorf("1xx answers %q", got)
	}
	if res.Header.Get("Link") != "" {
		t.Errorf("1xx header leaked into the final answer: %v", res.Header)
	}
	wantDirect(t, n, 1)
}

func testDirectPathRetriesAndReports(t *testing.T) {
	be := newBackend(t, "a", nil)
	dead := deadAddr(t)
	rec := &recorder{}
	up := testUpstream(t, "svc")
	up.Retry = RetryPolicy{Attempts: 2}
	up.Reporter = rec
	route := testRoute(t, "r", "least_request", up, dead, be.addr())
	url, n := directFrontend(t, Options{}, route)
	// least_request picks between equally idle endpoints at random: send
	// until the dead one has been tried (bounded), so that the test does
	// not depend on the draw.
	connectFailures, sent := 0, 0
	for sent < 64 && connectFailures == 0 {
		if res, body := get(t, url+"/"); res.StatusCode != 200 {
			t.Fatalf("status %d: %s", res.StatusCode, body)
		}
		sent++
		for _, r := range rec.list() {
			if r == dead+" "+"connect_failure" {
				connectFailures++
			}
		}
	}
	wantDirect(t, n, int64(sent))
	if connectFailures == 0 {
		t.Errorf("no connect failure reported for %s after %d requests: %v", dead, sent, rec.list())
	}
	lr := route.Balancer.(*balancer.LeastRequest)
	waitFor(t, "in-flight counts back to 0", func() bool {
		return lr.InFlight(be.addr()) == 0 && lr.InFlight(dead) == 0
	})
}

func testDirectPathErrorStatuses(t *testing.T) {
	release := make(chan struct{})
	slow := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	timeout := testRoute(t, "slow", "round_robin", testUpstream(t, "svc"), slow.addr())
	timeout.PathPrefix = "/slow"
	timeout.Timeout = 50 * time.Millisecond
	dead := testRoute(t, "dead", "round_robin", testUpstream(t, "svc"), deadAddr(t))
	dead.PathPrefix = "/dead"
	none := testRoute(t, "none", "round_robin", testUpstream(t, "svc"))
	none.PathPrefix = "/none"
	url, n := directFrontend(t, Options{}, timeout, dead, none)
	for _, c := range []struct {
		path   string
		status int
		msg    string
	}{
		{"/slow", http.StatusGatewayTimeout, "gateway timeout"},
		{"/dead", http.StatusBadGateway, "bad gateway"},
		{"/none", http.StatusServiceUnavailable, "no healthy endpoint"},
	} {
		res, body := get(t, url+c.path)
		if res.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.path, res.StatusCode, c.status, body)
			continue
		}
		if e := decodeError(t, res, body); e.Error != c.msg || e.Service != "svc" {
			t.Errorf("%s: error body %+v", c.path, e)
		}
	}
	wantDirect(t, n, 3)
}

func testDirectPathAbortsTruncatedBody(t *testing.T) {
	be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "short") // chunked: the end is the last chunk
		w.(http.Flusher).Flush()
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	})
	url, n := directFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	// The answer is aborted: before its head was sent (an error from Get)
	// or after (an error reading the body).
	res, err := client.Get(url + "/")
	if err == nil {
		_, err = io.ReadAll(res.Body)
		res.Body.Close()
	}
	if err == nil {
		t.Error("a truncated answer was passed on as complete")
	}
	wantDirect(t, n, 1)
}

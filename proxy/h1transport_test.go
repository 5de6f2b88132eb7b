package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawServer is a TCP endpoint whose connections are served by handle, one
// goroutine each; it counts the connections accepted.
type rawServer struct {
	l       net.Listener
	accepts atomic.Int64
}

func newRawServer(t *testing.T, handle func(n int64, c net.Conn)) *rawServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{l: l}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n := s.accepts.Add(1)
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(n, c)
			}()
		}
	}()
	return s
}

func (s *rawServer) addr() string { return s.l.Addr().String() }

// readRequest reads one request from br and drains its body.
func readRawRequest(br *bufio.Reader) (*http.Request, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, req.Body)
	return req, err
}

// countingServer is an httptest server counting the connections it got.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	s := httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s, &conns
}

func newTestTransport(t *testing.T, cfg TransportConfig) *Transport {
	t.Helper()
	tr := NewTransport(cfg)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// fetch sends a request without body through tr and returns the status
// and body.
func fetch(t *testing.T, tr http.RoundTripper, method, url string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

func TestLeanTransportReusesConnections(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		h      http.HandlerFunc
		body   string
	}{
		{"content-length", "GET", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") }, "hello"},
		{"chunked", "GET", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "b")
		}, "ab"},
		{"head", "HEAD", func(w http.ResponseWriter, r *http.Request) { w.Header().Set("Content-Length", "5") }, ""},
		{"no-content", "GET", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }, ""},
		{"not-modified", "GET", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotModified) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, conns := countingServer(t, tc.h)
			tr := newTestTransport(t, TransportConfig{})
			for i := 0; i < 3; i++ {
				_, body, err := fetch(t, tr, tc.method, s.URL+"/x")
				if err != nil || body != tc.body {
					t.Fatalf("request %d: body %q, err %v; want %q", i, body, err, tc.body)
				}
			}
			if n := conns.Load(); n != 1 {
				t.Errorf("%d connections for 3 sequential requests, want 1", n)
			}
		})
	}
}

func TestLeanTransportConnectionClose(t *testing.T) {
	s, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, "bye")
	})
	tr := newTestTransport(t, TransportConfig{})
	for i := 0; i < 2; i++ {
		if _, body, err := fetch(t, tr, "GET", s.URL); err != nil || body != "bye" {
			t.Fatalf("body %q, err %v", body, err)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2: a Connection: close answer must not be reused", n)
	}
}

func TestLeanTransportEarlyCloseDropsConnection(t *testing.T) {
	big := strings.Repeat("x", 64<<10)
	s, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, big) })
	tr := newTestTransport(t, TransportConfig{})
	req, _ := http.NewRequest("GET", s.URL, nil)
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = res.Body.Read(make([]byte, 10))
	res.Body.Close()
	if _, body, err := fetch(t, tr, "GET", s.URL); err != nil || body != big {
		t.Fatalf("second request: %d bytes, err %v", len(body), err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2: a half-read connection must not be reused", n)
	}
}

// TestLeanTransportRetriesStaleConnection: the endpoint closes every
// connection after one answer without saying so; a GET on the reused
// connection is retried once on a fresh one, a POST is not.
func TestLeanTransportRetriesStaleConnection(t *testing.T) {
	s := newRawServer(t, func(_ int64, c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readRawRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	tr := newTestTransport(t, TransportConfig{})
	url := "http://" + s.addr() + "/"
	for i := 0; i < 3; i++ {
		if _, body, err := fetch(t, tr, "GET", url); err != nil || body != "ok" {
			t.Fatalf("GET %d: body %q, err %v", i, body, err)
		}
	}
	if n := s.accepts.Load(); n != 3 {
		t.Errorf("%d connections for 3 GETs, want 3: each reused one was stale and retried on a fresh one", n)
	}
	// The connection of the last GET is pooled and now closed by the
	// endpoint: a POST that was written to it must fail, not be resent.
	waitFor(t, "the endpoint to close the kept connection", func() bool { return s.accepts.Load() >= 3 })
	before := s.accepts.Load()
	_, _, err := fetch(t, tr, "POST", url)
	if err == nil {
		// The write may have failed outright (nothing written): then a
		// fresh connection was used, which is allowed.
		if s.accepts.Load() != before+1 {
			t.Fatalf("POST succeeded on %d new connections", s.accepts.Load()-before)
		}
		return
	}
	var se *staleError
	if !errors.As(err, &se) || se.wroteNothing {
		t.Errorf("POST error %v, want a stale connection error after writing", err)
	}
}

func TestLeanTransportDialErrorIsDialOpError(t *testing.T) {
	tr := newTestTransport(t, TransportConfig{DialTimeout: time.Second})
	_, _, err := fetch(t, tr, "GET", "http://"+deadAddr(t)+"/")
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Fatalf("error %#v, want a *net.OpError with Op dial", err)
	}
}

func TestLeanTransportResponseHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s := newRawServer(t, func(_ int64, c net.Conn) {
		_, _ = readRawRequest(bufio.NewReader(c))
		<-release
	})
	tr := newTestTransport(t, TransportConfig{ResponseHeaderTimeout: 50 * time.Millisecond})
	_, _, err := fetch(t, tr, "GET", "http://"+s.addr()+"/")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("error %v, want a timeout", err)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		t.Fatalf("a header timeout classified as a dial error: %v", err)
	}
}

// TestLeanTransportCancelMidBody: a stream whose client goes away is cut
// at once, and its connection is not reused.
func TestLeanTransportCancelMidBody(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s := newRawServer(t, func(_ int64, c net.Conn) {
		_, _ = readRawRequest(bufio.NewReader(c))
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
		<-release
	})
	tr := newTestTransport(t, TransportConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+s.addr()+"/", nil)
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(res.Body, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("first event %q, %v", buf, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := res.Body.Read(buf)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("the read after cancellation succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the body read was not interrupted by the cancellation")
	}
	res.Body.Close()
	if p := tr.pool(s.addr()); len(p.idle) != 0 {
		t.Error("the interrupted connection was pooled")
	}
}

func TestLeanTransportPassesInformationalResponses(t *testing.T) {
	s := newRawServer(t, func(_ int64, c net.Conn) {
		_, _ = readRawRequest(bufio.NewReader(c))
		_, _ = io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"+
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	tr := newTestTransport(t, TransportConfig{})
	var got []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, h.Get("Link"))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "http://"+s.addr()+"/", nil)
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || len(got) != 1 || got[0] != "</a.css>; rel=preload" {
		t.Errorf("status %d, 1xx links %q", res.StatusCode, got)
	}
}

func TestLeanTransportRejectsGarbage(t *testing.T) {
	s := newRawServer(t, func(_ int64, c net.Conn) {
		_, _ = readRawRequest(bufio.NewReader(c))
		_, _ = io.WriteString(c, "SSH-2.0-nope\r\n\r\n")
	})
	tr := newTestTransport(t, TransportConfig{})
	if _, _, err := fetch(t, tr, "GET", "http://"+s.addr()+"/"); err == nil {
		t.Fatal("a malformed answer was accepted")
	}
	if p := tr.pool(s.addr()); len(p.idle) != 0 {
		t.Error("a broken connection was pooled")
	}
}

func TestLeanTransportIdleTimeout(t *testing.T) {
	s, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "x") })
	tr := newTestTransport(t, TransportConfig{IdleConnTimeout: 30 * time.Millisecond})
	if _, _, err := fetch(t, tr, "GET", s.URL); err != nil {
		t.Fatal(err)
	}
	p := tr.pool(strings.TrimPrefix(s.URL, "http://"))
	waitFor(t, "the idle connection to be swept", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.idle) == 0 && !p.sweeping
	})
	if _, _, err := fetch(t, tr, "GET", s.URL); err != nil {
		t.Fatal(err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2: the idle one expired", n)
	}
}

func TestLeanTransportMaxIdlePerHost(t *testing.T) {
	s, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "x") })
	tr := newTestTransport(t, TransportConfig{MaxIdleConnsPerHost: 1})
	var bodies []io.ReadCloser
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest("GET", s.URL, nil)
		res, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, res.Body)
	}
	for _, b := range bodies {
		_, _ = io.Copy(io.Discard, b)
		b.Close()
	}
	if p := tr.pool(strings.TrimPrefix(s.URL, "http://")); len(p.idle) != 1 {
		t.Errorf("%d idle connections kept, want 1", len(p.idle))
	}
}

func TestLeanableRequests(t *testing.T) {
	mk := func(method string, body io.Reader, hdr ...string) *http.Request {
		r, _ := http.NewRequest(method, "http://127.0.0.1:1/", body)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		return r
	}
	for _, tc := range []struct {
		name string
		req  *http.Request
		want bool
	}{
		{"get", mk("GET", nil), true},
		{"delete", mk("DELETE", nil), true},
		{"post with body", mk("POST", strings.NewReader("x")), false},
		{"upgrade", mk("GET", nil, "Connection", "Upgrade", "Upgrade", "websocket"), false},
		{"expect", mk("GET", nil, "Expect", "100-continue"), false},
	} {
		if got := leanable(tc.req); got != tc.want {
			t.Errorf("%s: leanable %v, want %v", tc.name, got, tc.want)
		}
	}
	tr := mk("GET", nil)
	tr.Trailer = http.Header{"X-T": nil}
	if leanable(tr) {
		t.Error("a request with trailers took the lean path")
	}
}

// deadlineConn is a net.Conn recording its read deadlines.
type deadlineConn struct {
	net.Conn
	set []time.Time
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.set = append(c.set, t)
	return nil
}

// A coarse response-header deadline may fire late, never early: whatever
// deadline is kept or set lies within a sixteenth of the timeout after the
// wanted one.
func TestUpConnCoarseDeadlineNeverEarly(t *testing.T) {
	const timeout = 16 * time.Second
	dc := &deadlineConn{}
	c := &upConn{nc: dc}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for ms := 0; ms < 10000; ms += 7 {
		want := start.Add(time.Duration(ms) * time.Millisecond).Add(timeout)
		c.setDeadline(want, timeout, false)
		if c.dl.Before(want) || c.dl.Sub(want) > timeout/16 {
			t.Fatalf("request at +%dms: deadline %s after the wanted one, want 0 to %s", ms, c.dl.Sub(want), timeout/16)
		}
	}
	// One deadline serves about a sixteenth of the timeout's worth of
	// requests: 10 s of them with a 1 s slack take about 10 updates.
	if n := len(dc.set); n < 5 || n > 15 {
		t.Errorf("%d deadline updates for 10s of requests, want about 10", n)
	}
	c.setDeadline(start.Add(time.Hour), timeout, true)
	if !c.dl.Equal(start.Add(time.Hour)) {
		t.Errorf("an exact deadline was moved to %s", c.dl)
	}
}

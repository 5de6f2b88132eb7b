package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// review23Backend serves HTTP/1.1 requests on raw connections: for each
// request read, answer(path, nc) writes what it likes; it returns false to
// stop serving the connection (which is then closed).
func review23Backend(t *testing.T, answer func(path string, nc net.Conn) bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
				br := bufio.NewReader(nc)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if !answer(req.URL.Path, nc) {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// awaitEOF reads nc until it ends and reports whether the peer closed it
// (io.EOF or a reset) rather than the read deadline passing.
func awaitEOF(nc net.Conn, within time.Duration) bool {
	_ = nc.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, nc)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// review23Headers is the HPACK block of a GET of path with the extra
// fields kv (name, value, ...).
func review23Headers(c *h2Raw, path string, kv ...string) []byte {
	c.buf.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "gateway.test"}, {":path", path}} {
		_ = c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	for i := 0; i+1 < len(kv); i += 2 {
		_ = c.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return bytes.Clone(c.buf.Bytes())
}

// review23Answer reads frames until stream id ends, and returns its
// status ("" if there was no final head), body and whether it was reset.
func review23Answer(t *testing.T, c *h2Raw, id uint32) (status string, body []byte, reset bool) {
	t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("stream %d: no end of the answer: %v", id, err)
		}
		if f.Header().StreamID != id {
			continue
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if s := f.PseudoValue("status"); s != "" && s[0] != '1' {
				status = s
			}
			if f.StreamEnded() {
				return status, body, false
			}
		case *http2.DataFrame:
			body = append(body, f.Data()...)
			if f.StreamEnded() {
				return status, body, false
			}
		case *http2.RSTStreamFrame:
			return status, body, true
		}
	}
}

// TestReview23DirectChunkedResetAbortsUpstream: an answer without a length
// goes lean's way after its head (fr.withBody + forward.answer), but with
// the stream's abort of the upstream connection removed (setUpstream(nil))
// and a stop that never aborts. The lean path's context.AfterFunc
// interrupts the body's read when the client resets the stream; on the
// direct path the handler stays blocked on the upstream connection (and
// holds it) until the endpoint sends more or closes — for an event stream
// or long poll, indefinitely, and Server.Shutdown waits for it.
func TestReview23DirectChunkedResetAbortsUpstream(t *testing.T) {
	gone := make(chan bool, 1)
	addr := review23Backend(t, func(_ string, nc net.Conn) bool {
		_, _ = io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello\n\r\n")
		gone <- awaitEOF(nc, 4*time.Second) // then nothing more, as an idle event stream
		return false
	})
	fe, direct := directFrontend(t, addr, 0)
	c := dialH2Raw(t, strings.TrimPrefix(fe.URL, "http://"))
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.headers("/events"), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	for got := 0; got < len("hello\n"); {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("no first event: %v", err)
		}
		if d, ok := f.(*http2.DataFrame); ok && d.StreamID == 1 {
			got += len(d.Data())
		}
	}
	if err := c.fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	if closed := <-gone; !closed {
		t.Fatal("the upstream connection of a chunked answer was not closed within 4s of the client's RST_STREAM (lean aborts it at once)")
	}
	if direct.Load() != 1 {
		t.Fatalf("forward.direct served %d requests, want 1", direct.Load())
	}
}

// TestReview23DirectAfterBaseContextEnded: the direct exchange is aborted
// by abortUpstreams only for the streams that had an upstream connection
// at the moment the base context ended; one begun after that, on a pooled
// connection, ignores its (cancelled) context: it is forwarded, answered,
// and never interrupted. The lean path's context.AfterFunc on an ended
// context aborts the connection at once, so such a request is not
// forwarded (TestNativeH2RequestContextEnds, which only has a backend
// that never answers, so no pooled connection).
func TestReview23DirectAfterBaseContextEnded(t *testing.T) {
	held, forwarded := make(chan bool, 1), make(chan string, 8)
	addr := review23Backend(t, func(path string, nc net.Conn) bool {
		forwarded <- path
		if path == "/hold" {
			held <- awaitEOF(nc, 4*time.Second)
			return false
		}
		_, _ = io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	ctx, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	r := testRoute(t, "r", "round_robin", testUpstream(t, "svc"), addr)
	_, h := newFrontend(t, Options{}, r)
	var direct atomic.Int32
	h.onDirect = func() { direct.Add(1) }
	fe := startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C, HTTP2Server: HTTP2ServerZkgate, BaseContext: ctx})
	c := dialH2Raw(t, strings.TrimPrefix(fe.URL, "http://"))
	send := func(id uint32, path string) {
		t.Helper()
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.headers(path), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	// Stream 1 holds a connection; stream 3 leaves a second one pooled.
	send(1, "/hold")
	if p := <-forwarded; p != "/hold" {
		t.Fatalf("backend got %s", p)
	}
	send(3, "/ok")
	if st, body, _ := review23Answer(t, c, 3); st != "200" || string(body) != "ok" {
		t.Fatalf("stream 3: %s %q", st, body)
	}
	<-forwarded
	// The base context ends: abortUpstreams has run once stream 1's
	// upstream connection is closed.
	cancelBase()
	if closed := <-held; !closed {
		t.Fatal("the held exchange was not aborted when the base context ended")
	}
	send(5, "/ok")
	st, body, reset := review23Answer(t, c, 5)
	if st == "200" {
		t.Fatalf("a request made after the base context ended was forwarded and answered %s %q (reset %v); the lean path aborts it", st, body, reset)
	}
	if direct.Load() != 3 {
		t.Fatalf("forward.direct served %d requests, want 3", direct.Load())
	}
}

// TestReview23DirectAbortedConnNotPooled: abortUpstreams (the base
// context ended) sets a deadline in the past on the connection of a
// stream whose answer is still being sent; when the rest of the body was
// already buffered, directAnswer goes on, ends the stream and gives the
// connection back to the pool with its read AND write deadlines in the
// past (clearDeadline resets only the read one, and only when it set one).
// The next request that takes it — from any entry point sharing the
// upstream's Transport — fails with an i/o timeout: 504. The lean path's
// h1Body.finish does not keep a connection whose abort fired (stop()
// reports false).
func TestReview23DirectAbortedConnNotPooled(t *testing.T) {
	body := strings.Repeat("b", 100)
	addr := review23Backend(t, func(_ string, nc net.Conn) bool {
		_, _ = io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"+body)
		return true
	})
	ctx, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	up := testUpstream(t, "svc")
	r := testRoute(t, "r", "round_robin", up, addr)
	_, h := newFrontend(t, Options{}, r)
	var direct atomic.Int32
	h.onDirect = func() { direct.Add(1) }
	fe1 := startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C, HTTP2Server: HTTP2ServerZkgate, BaseContext: ctx})
	fe2 := startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C, HTTP2Server: HTTP2ServerZkgate})

	c := dialH2Raw(t, strings.TrimPrefix(fe1.URL, "http://"))
	// A small stream window: the answer's body waits for the client.
	if err := c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 10}); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.headers("/x"), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	got := 0
	for got < 10 {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := f.(*http2.DataFrame); ok && d.StreamID == 1 {
			got += len(d.Data())
		}
	}
	// The handler now waits for window, the rest of the body in uc's
	// buffer. The stream's upstream connection:
	conns := fe1.srv.h2List()
	if len(conns) != 1 {
		t.Fatalf("%d native HTTP/2 connections", len(conns))
	}
	hc := conns[0]
	hc.mu.Lock()
	var uc *upConn
	if st := hc.streams[1]; st != nil {
		uc = st.up
	}
	hc.mu.Unlock()
	if uc == nil {
		t.Fatal("stream 1 has no upstream connection while its body is sent")
	}
	cancelBase()
	// A write of nothing fails once the deadline is in the past.
	waitFor(t, "abortUpstreams to abort the stream's upstream connection", func() bool {
		_, err := uc.nc.Write(nil)
		return errors.Is(err, os.ErrDeadlineExceeded)
	})
	if err := c.fr.WriteWindowUpdate(1, 1000); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if f.Header().StreamID != 1 {
			continue
		}
		if d, ok := f.(*http2.DataFrame); ok {
			got += len(d.Data())
			if d.StreamEnded() {
				break
			}
		}
		if _, ok := f.(*http2.RSTStreamFrame); ok {
			break
		}
	}
	// The handler has returned (and given uc back, or closed it) once
	// the connection's handlers are done.
	waitFor(t, "the handler of stream 1 to return", func() bool {
		hc.mu.Lock()
		defer hc.mu.Unlock()
		return hc.handlers == 0
	})

	res, err := h2cClient(t).Get(fe2.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || string(b) != body {
		t.Fatalf("a request on another entry point after the aborted exchange: %d %q, want 200 (the aborted connection was pooled)", res.StatusCode, b)
	}
	if direct.Load() != 2 {
		t.Fatalf("forward.direct served %d requests, want 2", direct.Load())
	}
}

// TestReview23DirectFallbackRouteTimeout: a request forward.direct takes
// (directEligible) but roundTripH1 does not send (h1Target refuses it:
// here a bodiless GET declaring a trailer, which sets req.Trailer and
// which leanEligible and directEligible do not look at) goes through
// f.RoundTrip with the outbound request made for forward.direct: without
// Route.Timeout's timer (ex.outbound(..., timer=false)) and without the
// trace. Route.Timeout is then not enforced at all: the client waits as
// long as the endpoint takes, instead of 504 at the route's timeout (the
// lean path's timer cancels the request's context).
func TestReview23DirectFallbackRouteTimeout(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	addr := review23Backend(t, func(_ string, nc net.Conn) bool {
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
		_, _ = io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate")
		return false
	})
	fe, direct := directFrontend(t, addr, 200*time.Millisecond)
	c := dialH2Raw(t, strings.TrimPrefix(fe.URL, "http://"))
	_ = c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: review23Headers(c, "/x", "trailer", "x-checksum"), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("no answer 2s after a 200ms Route.Timeout (forward.direct served %d): %v", direct.Load(), err)
		}
		if f.Header().StreamID != 1 {
			continue
		}
		if hf, ok := f.(*http2.MetaHeadersFrame); ok {
			if st := hf.PseudoValue("status"); st != "504" {
				t.Fatalf("status %s past the route timeout, want 504", st)
			}
			return
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok {
			t.Fatalf("stream reset (%v) past the route timeout, want 504", rst.ErrCode)
		}
	}
}

// TestReview23DirectConnectionNamedDate: a Date the upstream's Connection
// field names is hop-by-hop: ReverseProxy and forward.lean drop it, and
// the server then adds its own Date. forward.direct drops the field too
// but, having seen a Date, added none: the answer had no Date.
func TestReview23DirectConnectionNamedDate(t *testing.T) {
	addr := review23Backend(t, func(_ string, nc net.Conn) bool {
		_, _ = io.WriteString(nc, "HTTP/1.1 200 OK\r\nConnection: date\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	fe, direct := directFrontend(t, addr, 0)
	res, err := h2cClient(t).Get(fe.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("answer %d %q", res.StatusCode, b)
	}
	if direct.Load() != 1 {
		t.Fatalf("forward.direct served %d requests, want 1", direct.Load())
	}
	if d := res.Header.Values("Date"); len(d) != 1 || d[0] == "Mon, 01 Jan 2001 00:00:00 GMT" {
		t.Fatalf("Date fields %q, want the gateway's own (the upstream's is named by Connection)", d)
	}
}

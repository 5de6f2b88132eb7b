package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// awaitClose fails unless ch yields (a value, or its close) within a bound.
func awaitClose(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not happen", what)
	}
}

// abortBackend reports on arrived each request head it reads, and on gone
// each connection the gateway then closes; it never answers.
func abortBackend(t *testing.T) (addr string, arrived, gone chan struct{}) {
	t.Helper()
	arrived, gone = make(chan struct{}, 8), make(chan struct{}, 8)
	addr = review23Backend(t, func(_ string, nc net.Conn) bool {
		arrived <- struct{}{}
		if awaitEOF(nc, 30*time.Second) {
			gone <- struct{}{}
		}
		return false
	})
	return addr, arrived, gone
}

// TestNativeH2RequestContextEnds: a request's context ends — and the
// upstream exchange with it — when the client resets the stream, and when
// the server's base context ends; a request that comes after that is
// answered at once rather than forwarded and left waiting.
func TestNativeH2RequestContextEnds(t *testing.T) {
	addr, arrived, gone := abortBackend(t)
	ctx, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	_, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), addr))
	fe := startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C, HTTP2Server: HTTP2ServerZkgate, BaseContext: ctx})
	c := dialH2Raw(t, strings.TrimPrefix(fe.URL, "http://"))
	send := func(id uint32) {
		t.Helper()
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.headers("/wait"), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	send(1)
	awaitClose(t, arrived, "the first request reaching the backend")
	if err := c.fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	awaitClose(t, gone, "the upstream exchange ending after the client's RST_STREAM")

	send(3)
	awaitClose(t, arrived, "the second request reaching the backend")
	cancelBase()
	awaitClose(t, gone, "the upstream exchange ending with the base context")

	send(5)
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("no answer to a request made after the base context ended: %v", err)
		}
		if f.Header().StreamID != 5 {
			continue
		}
		if hf, ok := f.(*http2.MetaHeadersFrame); ok {
			if st := hf.PseudoValue("status"); st == "200" {
				t.Fatalf("a request made after the base context ended was answered %s", st)
			}
			return
		}
		if _, ok := f.(*http2.RSTStreamFrame); ok {
			return
		}
	}
}

// TestNativeH2ShutdownIdleReadsOn: Server.Shutdown on an idle native
// HTTP/2 connection sends GOAWAY and goes on reading (a PING sent after
// the GOAWAY is answered), rather than closing at once, which could drop
// the GOAWAY under a reset when the client's next request is in flight;
// the connection ends, and Shutdown returns, once the client closes.
func TestNativeH2ShutdownIdleReadsOn(t *testing.T) {
	be := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	_, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), strings.TrimPrefix(be.URL, "http://")))
	fe := startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C, HTTP2Server: HTTP2ServerZkgate})
	c := dialH2Raw(t, strings.TrimPrefix(fe.URL, "http://"))
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.headers("/x"), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	for answered := false; !answered; {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		if f.Header().StreamID == 1 && f.Header().Flags.Has(http2.FlagDataEndStream) {
			answered = true
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- fe.srv.Shutdown(ctx) }()
	if code := c.awaitGoAway(t); code != http2.ErrCodeNo {
		t.Fatalf("GOAWAY %v, want NO_ERROR", code)
	}
	data := [8]byte{'a', 'f', 't', 'e', 'r'}
	if err := c.fr.WritePing(false, data); err != nil {
		t.Fatalf("the connection closed right after the GOAWAY: %v", err)
	}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("no PING ACK after the GOAWAY: the connection was closed (%v)", err)
		}
		if p, ok := f.(*http2.PingFrame); ok && p.IsAck() && p.Data == data {
			break
		}
	}
	_ = c.nc.Close()
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after the client closed")
	}
}

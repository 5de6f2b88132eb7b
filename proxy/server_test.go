package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// The Server's life cycle, with the fast path and without: each test runs
// for both configurations.

var serverModes = []struct {
	name string
	fast bool
}{{"fast", true}, {"net/http", false}}

// testServer is a Server on a loopback listener with one route to addr.
type testServer struct {
	srv    *Server
	addr   string
	served chan error // Serve's result
}

func startServer(t *testing.T, fast bool, cfg ServerConfig, addr string) *testServer {
	t.Helper()
	rt, err := NewRouter([]*Route{testRoute(t, "r", "round_robin", testUpstream(t, "svc"), addr)})
	if err != nil {
		t.Fatal(err)
	}
	cfg.DisableFastPath = !fast
	s := &testServer{srv: NewServer(NewHandler(rt, Options{}), cfg), served: make(chan error, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	go func() { s.served <- s.srv.Serve(ln) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

// wantServeClosed checks that Serve returned http.ErrServerClosed.
func (s *testServer) wantServeClosed(t *testing.T) {
	t.Helper()
	wantServeReturn(t, s.served, "Serve")
}

// wantServeReturn waits, bounded, for the result of a Serve call (what
// names it) and checks it is http.ErrServerClosed.
func wantServeReturn(t *testing.T, served <-chan error, what string) {
	t.Helper()
	select {
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("%s returned %v, want http.ErrServerClosed", what, err)
		}
	case <-time.After(diffDeadline):
		t.Errorf("%s did not return", what)
	}
}

// blockingBackend answers every request 200 "done" once release is
// closed; arrived receives one value per request as it arrives.
func blockingBackend(t *testing.T) (addr string, arrived chan struct{}, release func()) {
	t.Helper()
	arrived = make(chan struct{}, 16)
	ch := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	be := newScriptedBackend(t, "blocking", &requestLog{}, func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
		arrived <- struct{}{}
		select {
		case <-ch:
		case <-time.After(diffDeadline):
		}
		answer(w, req, "200 OK", "done")
		return true
	})
	t.Cleanup(release) // before the backend's cleanup, which waits for its handlers
	return be.addr(), arrived, release
}

// awaitArrival waits, bounded, until a request reached the blocking
// backend.
func awaitArrival(t *testing.T, arrived <-chan struct{}) {
	t.Helper()
	select {
	case <-arrived:
	case <-time.After(diffDeadline):
		t.Fatal("the request did not reach the backend")
	}
}

// clientConn is a raw client connection with its reader.
type clientConn struct {
	net.Conn
	br *bufio.Reader
}

func dialServer(t *testing.T, addr string) *clientConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, diffDeadline)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(diffDeadline))
	return &clientConn{Conn: c, br: bufio.NewReader(c)}
}

func (c *clientConn) send(t *testing.T, raw string) {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
}

func (c *clientConn) response(t *testing.T, method string) *rawMessage {
	t.Helper()
	m, err := readMessage(c.br, true, method)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return m
}

// wantClosed checks that the server closes the connection (bounded by the
// connection's deadline) without sending anything more.
func (c *clientConn) wantClosed(t *testing.T) {
	t.Helper()
	b, err := c.br.ReadByte()
	if err == nil {
		rest, _ := c.br.Peek(c.br.Buffered())
		t.Fatalf("the connection is still open: read %q", append([]byte{b}, rest...))
	}
	if got := connErr(err); got != "closed" {
		t.Fatalf("waiting for the server to close the connection: %v", err)
	}
}

// waitListenerClosed waits until addr refuses connections.
func waitListenerClosed(t *testing.T, addr string) {
	t.Helper()
	waitFor(t, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
}

const plainGet = "GET /x HTTP/1.1\r\nHost: example.net\r\n\r\n"

func TestServerShutdownWaitsForRequestInFlight(t *testing.T) {
	for _, mode := range serverModes {
		t.Run(mode.name, func(t *testing.T) {
			addr, arrived, release := blockingBackend(t)
			s := startServer(t, mode.fast, ServerConfig{}, addr)
			c := dialServer(t, s.addr)
			c.send(t, plainGet)
			awaitArrival(t, arrived)

			done := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), diffDeadline)
				defer cancel()
				done <- s.srv.Shutdown(ctx)
			}()
			waitListenerClosed(t, s.addr)
			select {
			case err := <-done:
				t.Fatalf("Shutdown returned (%v) while a request was in flight", err)
			default:
			}

			release()
			m := c.response(t, http.MethodGet)
			if m.statusCode() != 200 || string(m.body) != "done" {
				t.Fatalf("the request in flight got %q %q, want 200 done", m.start, m.body)
			}
			c.wantClosed(t)
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			case <-time.After(diffDeadline):
				t.Fatal("Shutdown did not return after the request ended")
			}
			s.wantServeClosed(t)
		})
	}
}

func TestServerShutdownClosesIdleConnections(t *testing.T) {
	for _, mode := range serverModes {
		t.Run(mode.name, func(t *testing.T) {
			be := newScriptedBackend(t, "b", &requestLog{}, okResponder("b"))
			s := startServer(t, mode.fast, ServerConfig{}, be.addr())
			c := dialServer(t, s.addr)
			c.send(t, plainGet)
			if m := c.response(t, http.MethodGet); m.statusCode() != 200 {
				t.Fatalf("status %q", m.start)
			}
			// A second connection handed to net/http (a request with a
			// body), idle too.
			h := dialServer(t, s.addr)
			h.send(t, "POST /x HTTP/1.1\r\nHost: example.net\r\nContent-Length: 2\r\n\r\nhi")
			if m := h.response(t, http.MethodPost); m.statusCode() != 200 {
				t.Fatalf("status %q", m.start)
			}

			ctx, cancel := context.WithTimeout(context.Background(), diffDeadline)
			defer cancel()
			if err := s.srv.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			c.wantClosed(t)
			h.wantClosed(t)
			s.wantServeClosed(t)
		})
	}
}

func TestServerShutdownDeadline(t *testing.T) {
	for _, mode := range serverModes {
		t.Run(mode.name, func(t *testing.T) {
			addr, arrived, _ := blockingBackend(t)
			s := startServer(t, mode.fast, ServerConfig{}, addr)
			c := dialServer(t, s.addr)
			c.send(t, plainGet)
			awaitArrival(t, arrived)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if err := s.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Shutdown with a request stuck returned %v, want context.DeadlineExceeded", err)
			}
			s.wantServeClosed(t)
			if err := s.srv.Close(); err != nil {
				t.Errorf("Close after Shutdown: %v", err)
			}
			c.wantClosed(t)
		})
	}
}

func TestServerCloseClosesActiveConnections(t *testing.T) {
	for _, mode := range serverModes {
		t.Run(mode.name, func(t *testing.T) {
			addr, arrived, _ := blockingBackend(t)
			s := startServer(t, mode.fast, ServerConfig{}, addr)
			c := dialServer(t, s.addr)
			c.send(t, plainGet)
			awaitArrival(t, arrived)
			if err := s.srv.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			c.wantClosed(t)
			s.wantServeClosed(t)
			waitListenerClosed(t, s.addr)
		})
	}
}

func TestServerServeAfterShutdown(t *testing.T) {
	for _, mode := range serverModes {
		t.Run(mode.name, func(t *testing.T) {
			be := newScriptedBackend(t, "b", &requestLog{}, okResponder("b"))
			s := startServer(t, mode.fast, ServerConfig{}, be.addr())
			if err := s.srv.Shutdown(context.Background()); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			s.wantServeClosed(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			served := make(chan error, 1)
			go func() { served <- s.srv.Serve(ln) }()
			wantServeReturn(t, served, "Serve after Shutdown")
		})
	}
}

func TestServerServesSeveralListeners(t *testing.T) {
	for _, mode := range serverModes {
		t.Run(mode.name, func(t *testing.T) {
			be := newScriptedBackend(t, "b", &requestLog{}, okResponder("b"))
			s := startServer(t, mode.fast, ServerConfig{}, be.addr())
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			second := make(chan error, 1)
			go func() { second <- s.srv.Serve(ln) }()
			for _, addr := range []string{s.addr, ln.Addr().String()} {
				c := dialServer(t, addr)
				c.send(t, plainGet)
				if m := c.response(t, http.MethodGet); m.statusCode() != 200 {
					t.Errorf("%s: status %q", addr, m.start)
				}
			}
			if err := s.srv.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			s.wantServeClosed(t)
			wantServeReturn(t, second, "the second Serve")
		})
	}
}

func TestServerIdleTimeout(t *testing.T) {
	for _, mode := range serverModes {
		t.Run(mode.name, func(t *testing.T) {
			be := newScriptedBackend(t, "b", &requestLog{}, okResponder("b"))
			s := startServer(t, mode.fast, ServerConfig{IdleTimeout: 50 * time.Millisecond}, be.addr())
			c := dialServer(t, s.addr)
			c.send(t, plainGet)
			if m := c.response(t, http.MethodGet); m.statusCode() != 200 {
				t.Fatalf("status %q", m.start)
			}
			c.wantClosed(t) // long before the connection's own deadline
		})
	}
}

// TestServerDiffTimeoutsAndLimits compares what a client gets from both
// configurations when it stalls mid-head or sends too large a head.
func TestServerDiffTimeoutsAndLimits(t *testing.T) {
	timeout := ServerConfig{ReadHeaderTimeout: 50 * time.Millisecond}
	limit := ServerConfig{MaxHeaderBytes: 2048}
	big := "GET /x HTTP/1.1\r\nHost: example.net\r\nX-Big: " + strings.Repeat("b", 8000) + "\r\n\r\n"
	for _, tc := range []struct {
		name string
		cfg  ServerConfig
		raw  string
	}{
		{"stalled head", timeout, "GET /x HTTP/1.1\r\nHost: example.net\r\n"},
		{"stalled request line", timeout, "GET /x HT"},
		{"stalled first byte", timeout, ""},
		{"head past MaxHeaderBytes", limit, big},
		{"head past the default MaxHeaderBytes", ServerConfig{}, "GET /x HTTP/1.1\r\nHost: example.net\r\nX-Big: " + strings.Repeat("b", 1<<20+8000) + "\r\n\r\n"},
		{"head past MaxHeaderBytes with a header timeout", ServerConfig{ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 2048}, big},
		{"plain request", timeout, plainGet},
		{"plain request with limit", limit, plainGet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got [2]string
			for i, mode := range serverModes {
				be := newScriptedBackend(t, "b", &requestLog{}, okResponder("b"))
				s := startServer(t, mode.fast, tc.cfg, be.addr())
				c := dialServer(t, s.addr)
				c.send(t, tc.raw)
				var b strings.Builder
				for {
					m, err := readMessage(c.br, true, http.MethodGet)
					if err != nil {
						b.WriteString("read: " + connErr(err) + "\n")
						break
					}
					formatResponse(&b, m)
					if m.statusCode() == 200 {
						break
					}
				}
				// The fast path says what is wrong after net/http's words.
				got[i] = rejectionReason.ReplaceAllString(b.String(), `$1"`)
			}
			if got[0] != got[1] {
				t.Errorf("the client received differs (- net/http, + fast path):\n%s", lineDiff(got[1], got[0]))
			}
		})
	}
}

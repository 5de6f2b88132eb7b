//go:build linux

package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// loopFrontend starts the proxy serving routes on a Server with one loop.
func loopFrontend(t *testing.T, routes ...*Route) (*frontend, *Handler) {
	t.Helper()
	rt, err := NewRouter(routes)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(rt, Options{})
	return startFrontend(t, h, ServerConfig{Loops: 1}), h
}

// getOK sends a GET of path on c and checks a 200 with body.
func getOK(t *testing.T, c *clientConn, path, body string) {
	t.Helper()
	c.send(t, "GET "+path+" HTTP/1.1\r\nHost: h\r\n\r\n")
	m := c.response(t, "GET")
	if m.statusCode() != 200 || string(m.body) != body {
		t.Fatalf("GET %s: answer %q %q, want 200 %q", path, m.start, m.body, body)
	}
}

// TestLoopServesKeepAlive: a keep-alive connection's requests after its
// first are served in the loop, which holds the connection between them
// without a goroutine; pipelined requests are answered in order.
func TestLoopServesKeepAlive(t *testing.T) {
	be := newScriptedBackend(t, "b", &requestLog{}, okResponder("b"))
	fe, _ := loopFrontend(t, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	c := dialServer(t, strings.TrimPrefix(fe.URL, "http://"))
	for range 20 {
		getOK(t, c, "/x", "hello from b\n")
	}
	// (A request is counted once its answer is out.)
	waitFor(t, "the 19 requests after the first served in the loop", func() bool { return fe.srv.LoopStats().Served == 19 })
	waitFor(t, "the connection to wait in the loop", func() bool { return fe.srv.ConnStats().Parked == 1 })
	if st := fe.srv.LoopStats(); st.HandedOff != 0 || st.Escalated != 0 {
		t.Fatalf("loop stats %+v: want none handed off or escalated", st)
	}
	// Three requests in one write: answered in order, the connection kept.
	c.send(t, strings.Repeat("GET /p HTTP/1.1\r\nHost: h\r\n\r\n", 3))
	for i := range 3 {
		if m := c.response(t, "GET"); m.statusCode() != 200 {
			t.Fatalf("pipelined request %d: answer %q", i, m.start)
		}
	}
	getOK(t, c, "/after", "hello from b\n")
}

// TestLoopConnectionsHoldNoGoroutine: connections between requests in a
// loop have no goroutine each.
func TestLoopConnectionsHoldNoGoroutine(t *testing.T) {
	be := newScriptedBackend(t, "b", &requestLog{}, okResponder("b"))
	fe, _ := loopFrontend(t, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	addr := strings.TrimPrefix(fe.URL, "http://")
	warm := dialServer(t, addr)
	getOK(t, warm, "/w", "hello from b\n")
	waitFor(t, "the first connection in the loop", func() bool { return fe.srv.ConnStats().Parked == 1 })
	base := runtime.NumGoroutine()
	const n = 100
	for range n {
		c := dialServer(t, addr)
		getOK(t, c, "/x", "hello from b\n")
		getOK(t, c, "/y", "hello from b\n")
	}
	waitFor(t, "the connections in the loop", func() bool { return fe.srv.ConnStats().Parked == n+1 })
	if g := runtime.NumGoroutine(); g > base+n/10 {
		t.Fatalf("%d goroutines for %d connections waiting in a loop, %d before", g, n, base)
	}
}

// TestLoopEscalatesLargeBody: an answer larger than the loop waits for is
// relayed by the goroutine the exchange escalates to, whole; the
// connection goes on, back in the loop.
func TestLoopEscalatesLargeBody(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB
	be := newScriptedBackend(t, "b", &requestLog{}, func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
		body := "small"
		if strings.Contains(req.start, "/big") {
			body = big
		}
		answer(w, req, "200 OK", body)
		return true
	})
	fe, _ := loopFrontend(t, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	c := dialServer(t, strings.TrimPrefix(fe.URL, "http://"))
	getOK(t, c, "/a", "small")
	getOK(t, c, "/b", "small")
	getOK(t, c, "/big", big)
	if st := fe.srv.LoopStats(); st.Escalated < 1 {
		t.Fatalf("loop stats %+v: the large body was not relayed by an escalated exchange", st)
	}
	// It stays with goroutines while busy (it waits hot), and goes back
	// into the loop once quiet (hotIdle).
	served := fe.srv.LoopStats().Served
	getOK(t, c, "/c", "small")
	if st := fe.srv.ConnStats(); st.Waiting != 1 {
		t.Fatalf("connections %+v: want the busy one waiting hot after an escalation", st)
	}
	waitFor(t, "the connection back in the loop", func() bool { return fe.srv.ConnStats().Parked == 1 })
	getOK(t, c, "/d", "small")
	waitFor(t, "a request served in the loop after the escalation", func() bool { return fe.srv.LoopStats().Served > served })
}

// TestLoopHandsOffSplitHead: a request whose head comes in two pieces goes
// to a goroutine, which reads the rest.
func TestLoopHandsOffSplitHead(t *testing.T) {
	be := newScriptedBackend(t, "b", &requestLog{}, okResponder("b"))
	fe, _ := loopFrontend(t, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	c := dialServer(t, strings.TrimPrefix(fe.URL, "http://"))
	getOK(t, c, "/a", "hello from b\n")
	waitFor(t, "the connection in the loop", func() bool { return fe.srv.ConnStats().Parked == 1 })
	c.send(t, "GET /split HTTP/1.1\r\nHo")
	waitFor(t, "the hand-off", func() bool { return fe.srv.LoopStats().HandedOff == 1 })
	c.send(t, "st: h\r\n\r\n")
	if m := c.response(t, "GET"); m.statusCode() != 200 {
		t.Fatalf("split request: answer %q", m.start)
	}
	getOK(t, c, "/b", "hello from b\n")
}

// heldBackend accepts connections and answers the first request on each
// at once; later requests are read and never answered. closed counts the
// connections the gateway closed.
type heldBackend struct {
	ln     net.Listener
	closed atomic.Int32
	held   atomic.Int32
}

func newHeldBackend(t *testing.T) *heldBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &heldBackend{ln: ln}
	acceptEach(t, ln, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(diffDeadline))
		br := bufio.NewReader(c)
		for i := 0; ; i++ {
			if _, err := readMessage(br, false, ""); err != nil {
				return
			}
			if i == 0 {
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				continue
			}
			b.held.Add(1)
			if _, err := br.ReadByte(); err != nil {
				b.closed.Add(1) // the gateway closed it
			}
			return
		}
	})
	return b
}

// acceptEach serves each connection ln accepts with serve on a goroutine
// of its own, closing it after, until the test ends.
func acceptEach(t *testing.T, ln net.Listener, serve func(net.Conn)) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
}

// TestLoopClientGoneAborts: a client that goes away while the loop awaits
// its answer has the upstream exchange aborted (its connection closed),
// as the client watch aborts it without loops.
func TestLoopClientGoneAborts(t *testing.T) {
	be := newHeldBackend(t)
	fe, _ := loopFrontend(t, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.ln.Addr().String()))
	c := dialServer(t, strings.TrimPrefix(fe.URL, "http://"))
	getOK(t, c, "/a", "ok")
	waitFor(t, "the connection in the loop", func() bool { return fe.srv.ConnStats().Parked == 1 })
	c.send(t, "GET /held HTTP/1.1\r\nHost: h\r\n\r\n")
	waitFor(t, "the request upstream", func() bool { return be.held.Load() == 1 })
	c.Close()
	waitFor(t, "the upstream connection closed", func() bool { return be.closed.Load() == 1 })
	waitFor(t, "the client connection gone", func() bool { return len(fe.srv.connList()) == 0 })
	if st := fe.srv.LoopStats(); st.Escalated != 0 {
		t.Fatalf("loop stats %+v: the abort escalated", st)
	}
}

// TestLoopAnswerDeadline: an endpoint that does not answer within the
// route's timeout gets the request a 504, as without loops.
func TestLoopAnswerDeadline(t *testing.T) {
	be := newHeldBackend(t)
	r := testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.ln.Addr().String())
	r.Timeout = 300 * time.Millisecond
	fe, _ := loopFrontend(t, r)
	c := dialServer(t, strings.TrimPrefix(fe.URL, "http://"))
	getOK(t, c, "/a", "ok")
	waitFor(t, "the connection in the loop", func() bool { return fe.srv.ConnStats().Parked == 1 })
	start := time.Now()
	c.send(t, "GET /held HTTP/1.1\r\nHost: h\r\n\r\n")
	m := c.response(t, "GET")
	if m.statusCode() != 504 {
		t.Fatalf("answer %q, want 504", m.start)
	}
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Fatalf("504 after %v, before the route's timeout", took)
	}
	waitFor(t, "the upstream connection closed", func() bool { return be.closed.Load() == 1 })
}

// TestLoopShutdown: Shutdown closes the connections idle in a loop and
// returns; the loop then ends.
func TestLoopShutdown(t *testing.T) {
	be := newScriptedBackend(t, "b", &requestLog{}, okResponder("b"))
	fe, _ := loopFrontend(t, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	addr := strings.TrimPrefix(fe.URL, "http://")
	var cs []*clientConn
	for range 5 {
		c := dialServer(t, addr)
		getOK(t, c, "/a", "hello from b\n")
		cs = append(cs, c)
	}
	waitFor(t, "the connections in the loop", func() bool { return fe.srv.ConnStats().Parked == 5 })
	ctx, cancel := context.WithTimeout(context.Background(), diffDeadline)
	defer cancel()
	if err := fe.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, c := range cs {
		c.wantClosed(t)
	}
}

// TestLoopPoolClosesDepartedMember: the loop's idle connections to an
// endpoint that left the membership close (Transport.Retain), as the
// runtime's pool's do.
func TestLoopPoolClosesDepartedMember(t *testing.T) {
	var upClosed atomic.Int32
	be := newScriptedBackend(t, "b", &requestLog{}, okResponder("b"))
	// A second listener in front of be counts the gateway's closes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acceptEach(t, ln, func(c net.Conn) {
		b, err := net.Dial("tcp", be.addr())
		if err != nil {
			return
		}
		defer b.Close()
		go func() { _, _ = io.Copy(c, b) }()
		_, _ = io.Copy(b, c)
		upClosed.Add(1)
	})
	up := testUpstream(t, "svc")
	fe, _ := loopFrontend(t, testRoute(t, "r", "round_robin", up, ln.Addr().String()))
	c := dialServer(t, strings.TrimPrefix(fe.URL, "http://"))
	getOK(t, c, "/a", "hello from b\n")
	getOK(t, c, "/b", "hello from b\n")
	getOK(t, c, "/c", "hello from b\n")
	if st := fe.srv.LoopStats(); st.Served < 1 {
		t.Fatalf("loop stats %+v: nothing served in the loop", st)
	}
	up.Transport.(*Transport).Retain(nil)
	waitFor(t, "the loop's idle upstream connection closed", func() bool { return upClosed.Load() >= 1 })
}

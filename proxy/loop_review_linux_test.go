//go:build linux

package proxy

// Review regressions for the loops (commit 4e688dd). Each test fails on
// 4e688dd/cf90e56 and states the expected behaviour (the goroutine path's).

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLoopReviewStrayBytesAfterBody: bytes an endpoint sends behind an
// answer's body, arriving with its last segment, are in the socket when
// the loop pools the connection, and no edge comes for them (it was spent
// on the answer). The loop reuses the connection without a peek (only
// "marked" ones are peeked), so the next request on it gets the stray
// bytes as its answer. The goroutine path's pool peeks (hostPool.reusable)
// and dials anew.
func TestLoopReviewStrayBytesAfterBody(t *testing.T) {
	body := strings.Repeat("b", 26000)
	be := newScriptedBackend(t, "b", &requestLog{}, func(w *bufio.Writer, c net.Conn, req *rawMessage) bool {
		if !strings.Contains(req.start, "/big") {
			answer(w, req, "200 OK", "good")
			return true
		}
		// The head and 1000 bytes first (the loop waits for the rest,
		// bodyWait), then the rest with a stray answer behind it in one
		// write: relayN's last read takes exactly the body, the stray
		// stays in the socket.
		_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 26000\r\n\r\n" + body[:1000])
		_ = w.Flush()
		time.Sleep(50 * time.Millisecond)
		_, _ = io.WriteString(c, body[1000:]+"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!")
		return true
	})
	fe, _ := loopFrontend(t, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	c := dialServer(t, strings.TrimPrefix(fe.URL, "http://"))
	getOK(t, c, "/a", "good")
	waitFor(t, "the connection in the loop", func() bool { return fe.srv.ConnStats().Parked == 1 })
	getOK(t, c, "/big", body)
	getOK(t, c, "/x", "good") // fails: answer "evil!"
}

// TestLoopReviewEscalationAfterRelease: an exchange that escalates in its
// final flush (c.end, after relay has released the upstream connection
// into the loop's pool) moves that pooled connection to the runtime's
// poller (escalate: lc.uc is still set, uc.lp == l) but leaves it in
// l.pools. The next exchange the loop sends on it waits for an epoll
// event that never comes: with no Route.Timeout and no
// ResponseHeaderTimeout it hangs for ever.
func TestLoopReviewEscalationAfterRelease(t *testing.T) {
	body := strings.Repeat("x", 3000) // head+body fit c.bw: flushed by c.end
	be := newScriptedBackend(t, "b", &requestLog{}, func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
		answer(w, req, "200 OK", body)
		return true
	})
	fe, _ := loopFrontend(t, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	addr := strings.TrimPrefix(fe.URL, "http://")

	// A: a client with a small receive window that pipelines and does
	// not read.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	ac, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ac.Close() })
	_ = ac.SetDeadline(time.Now().Add(diffDeadline))
	a := &clientConn{Conn: ac, br: bufio.NewReader(ac)}
	getOK(t, a, "/a", body)
	waitFor(t, "A in the loop", func() bool { return fe.srv.ConnStats().Parked == 1 })
	b := dialServer(t, addr)
	getOK(t, b, "/b1", body)
	waitFor(t, "B in the loop", func() bool { return fe.srv.ConnStats().Parked == 2 })

	// 32-byte requests: every 4 KiB read holds whole ones (a request cut
	// by a read would be handed off rather than escalated).
	req := "GET /ppppp HTTP/1.1\r\nHost: h\r\n\r\n"
	if len(req) != 32 {
		t.Fatal(len(req))
	}
	go func() { _, _ = io.WriteString(ac, strings.Repeat(req, 3072)) }()
	waitFor(t, "A's exchange escalated (its client does not read)", func() bool { return fe.srv.LoopStats().Escalated >= 1 })
	if st := fe.srv.LoopStats(); st.HandedOff != 0 {
		t.Fatalf("loop stats %+v: A's requests were handed off, not escalated", st)
	}

	_ = b.SetDeadline(time.Now().Add(3 * time.Second))
	b.send(t, "GET /b2 HTTP/1.1\r\nHost: h\r\n\r\n")
	m, err := readMessage(b.br, true, "GET")
	if err != nil {
		t.Fatalf("B's request after A's escalation: %v (the loop sent it on a connection it no longer polls)", err)
	}
	if m.statusCode() != 200 {
		t.Fatalf("B: %q", m.start)
	}
}

// TestLoopReviewTruncatedBody: an endpoint that closes midway through a
// Content-Length body the loop waits for (bodyWait) leaves the exchange
// pending: answer() ignores the hang-up and no further edge comes. The
// goroutine path relays what came and closes the client connection.
func TestLoopReviewTruncatedBody(t *testing.T) {
	be := newScriptedBackend(t, "b", &requestLog{}, func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
		if strings.Contains(req.start, "/trunc") {
			_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
			return false // flushed, then closed
		}
		answer(w, req, "200 OK", "good")
		return true
	})
	fe, _ := loopFrontend(t, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	c := dialServer(t, strings.TrimPrefix(fe.URL, "http://"))
	getOK(t, c, "/a", "good")
	waitFor(t, "the connection in the loop", func() bool { return fe.srv.ConnStats().Parked == 1 })
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	c.send(t, "GET /trunc HTTP/1.1\r\nHost: h\r\n\r\n")
	got, err := io.ReadAll(c.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("truncated answer: nothing but %q within 3s: the loop still waits for the body", got)
	}
}

// TestLoopReviewWakeAfterExit: a loop that has ended (Shutdown) closed its
// eventfd, but beginClose wakes every loop again on the next Close: an
// 8-byte write to whatever descriptor has taken the number since.
func TestLoopReviewWakeAfterExit(t *testing.T) {
	var held []*os.File
	t.Cleanup(func() { // after the frontend's own Close
		for _, f := range held {
			f.Close()
		}
	})
	be := newScriptedBackend(t, "b", &requestLog{}, okResponder("b"))
	fe, _ := loopFrontend(t, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	c := dialServer(t, strings.TrimPrefix(fe.URL, "http://"))
	getOK(t, c, "/a", "hello from b\n")
	waitFor(t, "the connection in the loop", func() bool { return fe.srv.ConnStats().Parked == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), diffDeadline)
	defer cancel()
	if err := fe.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	l := fe.srv.loops.ls[0]
	waitFor(t, "the loop to end", func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.exited })
	var victim *os.File
	for range 256 {
		r, w, err := os.Pipe()
		if err != nil {
			break
		}
		held = append(held, r, w)
		if int(w.Fd()) == l.evfd {
			victim = r
			break
		}
	}
	if victim == nil {
		t.Skip("the eventfd's number was not reused here")
	}
	_ = fe.srv.Close()
	_ = victim.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 16)
	if n, _ := victim.Read(buf); n > 0 {
		t.Fatalf("Server.Close wrote %x into a pipe that took the ended loop's eventfd number", buf[:n])
	}
}

// TestLoopReviewIdleTimeoutAfterLateFirstRequest: a connection silent for
// hotIdle before its first request is kicked, parked into a loop, and has
// its requests served there; the loop never sets cconn.served, so its
// sweep keeps bounding the idle connection by ReadHeaderTimeout rather
// than IdleTimeout (cconn.idleTimeout). Without loops it stays open.
func TestLoopReviewIdleTimeoutAfterLateFirstRequest(t *testing.T) {
	be := newScriptedBackend(t, "b", &requestLog{}, okResponder("b"))
	rt, err := NewRouter([]*Route{testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr())})
	if err != nil {
		t.Fatal(err)
	}
	fe := startFrontend(t, NewHandler(rt, Options{}), ServerConfig{Loops: 1, ReadHeaderTimeout: 1500 * time.Millisecond, IdleTimeout: 30 * time.Second})
	// A warm upstream connection, so that the loop serves c's request
	// inline (a dial would escalate it, and the goroutine sets served).
	warm := dialServer(t, strings.TrimPrefix(fe.URL, "http://"))
	getOK(t, warm, "/w", "hello from b\n")
	c := dialServer(t, strings.TrimPrefix(fe.URL, "http://"))
	waitFor(t, "the silent connection parked in the loop", func() bool { return fe.srv.ConnStats().Parked == 2 })
	getOK(t, c, "/a", "hello from b\n")
	waitFor(t, "its request served in the loop", func() bool { return fe.srv.LoopStats().Served == 1 })
	time.Sleep(2 * time.Second) // the idle time under test: past ReadHeaderTimeout and a sweep, well within IdleTimeout
	c.send(t, "GET /b HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, err := readMessage(c.br, true, "GET"); err != nil {
		t.Fatalf("idle 2s with ReadHeaderTimeout 1.5s and IdleTimeout 30s: %v (closed at ReadHeaderTimeout)", err)
	}
}

// TestLoopReview2InlineFloodStarvesLoop: a client that keeps its socket's
// receive queue at 4 KiB or more of whole requests the loop answers itself
// (here 404s; a rate limit's 429s or a CORS preflight are the same) makes
// every read full: idle() pushes todoRead, run() pops it at once (LIFO),
// and turn() is never reached while the todo list is non-empty. No
// epoll_wait, no mail, no sweep, no deadline: every other connection of the
// loop waits as long as the flood lasts. On the goroutine path B's
// goroutine is served on another processor.
func TestLoopReview2InlineFloodStarvesLoop(t *testing.T) {
	be := newScriptedBackend(t, "b", &requestLog{}, okResponder("b"))
	r := testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr())
	r.Hosts = []string{"h"} // Host "x" matches no route: 404 answered in the loop
	fe, _ := loopFrontend(t, r)
	addr := strings.TrimPrefix(fe.URL, "http://")

	b := dialServer(t, addr)
	getOK(t, b, "/b1", "hello from b\n")
	waitFor(t, "B in the loop", func() bool { return fe.srv.ConnStats().Parked == 1 })

	a := dialServer(t, addr)
	req := "GET /ppppp HTTP/1.1\r\nHost: x\r\n\r\n"
	if len(req) != 32 {
		t.Fatal(len(req))
	}
	a.send(t, req)
	if m := a.response(t, "GET"); m.statusCode() != 404 {
		t.Fatalf("A: %q", m.start)
	}
	waitFor(t, "A in the loop", func() bool { return fe.srv.ConnStats().Parked == 2 })

	// 4 KiB of whole requests per write: every 4 KiB read of the loop
	// ends on a request's end (a cut one would be handed off).
	// Several writers keep the socket's queue full (each write goes
	// whole, one after the other).
	chunk := strings.Repeat(req, 4096/len(req))
	for range 4 {
		go func() {
			for {
				if _, err := io.WriteString(a.Conn, chunk); err != nil {
					return
				}
			}
		}()
	}
	go func() { _, _ = io.Copy(io.Discard, a.Conn) }() // A reads its answers
	waitFor(t, "the flood under way", func() bool { return fe.srv.LoopStats().Served > 2000 })

	_ = b.SetDeadline(time.Now().Add(2 * time.Second))
	b.send(t, "GET /b2 HTTP/1.1\r\nHost: h\r\n\r\n")
	m, err := readMessage(b.br, true, "GET")
	if err != nil {
		t.Fatalf("B's request while A floods the loop with inline-answered requests: %v (loop stats %+v)", err, fe.srv.LoopStats())
	}
	if m.statusCode() != 200 {
		t.Fatalf("B: %q", m.start)
	}
}

// TestLoopReview2NoLoopClosesKeepAlive: when no loop can start (newLoop
// fails: out of descriptors, say), a connection that would wait in a loop
// is parked in the poller as without loops, not closed: keep-alive stays.
func TestLoopReview2NoLoopClosesKeepAlive(t *testing.T) {
	be := newScriptedBackend(t, "b", &requestLog{}, okResponder("b"))
	fe, _ := loopFrontend(t, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	fe.srv.loops.newLoop = func(*Server) (*loop, error) { return nil, errors.New("simulated: too many open files") }
	c := dialServer(t, strings.TrimPrefix(fe.URL, "http://"))
	getOK(t, c, "/a", "hello from b\n")
	c.send(t, "GET /a2 HTTP/1.1\r\nHost: h\r\n\r\n") // (hot: the next wait is a park)
	if _, err := readMessage(c.br, true, "GET"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the connection parked in the poller", func() bool { return fe.srv.ConnStats().Parked == 1 })
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	c.send(t, "GET /b HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, err := readMessage(c.br, true, "GET"); err != nil {
		t.Fatalf("second request on a keep-alive connection with no loop running: %v (closed instead of parked)", err)
	}
}

//go:build linux

package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// inWaitLog records, in order, whether each fast-path request was served
// inside its connection's hot wait (Handler.onFast).
type inWaitLog struct {
	mu    sync.Mutex
	flags []bool
}

func (l *inWaitLog) hook(inWait bool) {
	l.mu.Lock()
	l.flags = append(l.flags, inWait)
	l.mu.Unlock()
}

// at returns the flag of the i-th request (from 0).
func (l *inWaitLog) at(i int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return i < len(l.flags) && l.flags[i]
}

func (l *inWaitLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.flags)
}

// TestServeInWait: on a keep-alive connection that sends its requests in
// quick succession, a request that came whole (its head, and its body when
// it has a Content-Length) is served inside the hot wait that read it
// (waitserve.go); a chunked one, and the second of two requests read
// together, are served outside it; a request that arrives while one is
// served inside the wait is read as soon as that one is answered, inside
// the same wait, its readiness not lost. Every request gets its own
// answer.
func TestServeInWait(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	_, c, log := warmInWait(t, func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
		if strings.Contains(req.start, "/held") {
			arrived <- struct{}{}
			<-release
		}
		answer(w, req, "200 OK", req.start+"|"+string(req.body))
		return true
	})

	answered := 3 // requests answered so far (warmInWait's): the index of the next one's flag
	// want reads the answer to the request for path, whose body, when
	// given, the endpoint must have received.
	want := func(method, path string, inWait bool, body ...string) {
		t.Helper()
		m := c.response(t, method)
		if m.statusCode() != 200 || !strings.Contains(string(m.body), path+" ") ||
			len(body) > 0 && !strings.HasSuffix(string(m.body), "|"+body[0]) {
			t.Fatalf("%s %s: answer %q %q", method, path, m.start, m.body)
		}
		if got := log.at(answered); got != inWait {
			t.Errorf("%s %s served inside the hot wait: %v, want %v", method, path, got, inWait)
		}
		answered++
	}
	get := func(path string) { c.send(t, "GET "+path+" HTTP/1.1\r\nHost: h\r\n\r\n") }

	for _, p := range []string{"/c", "/d", "/e"} {
		get(p)
		want("GET", p, true)
	}
	c.send(t, "POST /body HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi")
	want("POST", "/body", true, "hi")
	c.send(t, "POST /chunked HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
	want("POST", "/chunked", false)
	c.send(t, "POST /body2 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhoGET /after HTTP/1.1\r\nHost: h\r\n\r\n")
	want("POST", "/body2", true, "ho")
	want("GET", "/after", false)

	// /next arrives while /held is served inside the wait: it waits in
	// the gateway's socket before /held is answered.
	get("/held")
	<-arrived
	get("/next")
	waitFor(t, "/next to wait in the gateway's socket", func() bool { return peerRecvQueue(t, c.Conn) > 0 })
	close(release)
	want("GET", "/held", true)
	want("GET", "/next", true)

	// Two requests in one segment: the first inside the wait, the second,
	// left in the input buffer, outside.
	c.send(t, "GET /p1 HTTP/1.1\r\nHost: h\r\n\r\nGET /p2 HTTP/1.1\r\nHost: h\r\n\r\n")
	want("GET", "/p1", true)
	want("GET", "/p2", false)

	get("/last")
	want("GET", "/last", true)
}

// TestServeInWaitWatch: a request served inside the hot wait holds the
// client socket's read lock, so its client watch peeks rather than reads.
// A client that goes away (here with a reset) while such a request waits
// for an endpoint that never answers has the exchange aborted.
func TestServeInWaitWatch(t *testing.T) {
	respond, aborted := stallResponder()
	_, c, log := warmInWait(t, respond)
	c.send(t, "GET /stall HTTP/1.1\r\nHost: h\r\n\r\n")
	wantInWait(t, log, 3)
	_ = c.Conn.(*net.TCPConn).SetLinger(0)
	_ = c.Close() // a reset
	select {
	case <-aborted:
	case <-time.After(diffDeadline):
		t.Fatal("the exchange of a request served in the wait whose client went away was not aborted")
	}
}

// warmInWait starts an endpoint answering with respond and the gateway in
// front of it, and sends three quick requests on a connection (the first
// is read outside a hot wait, the second wakes the connection from the
// poller it was parked in): the requests that follow on it are served
// inside its hot wait. log records whether each was.
func warmInWait(t *testing.T, respond responder, upstream ...func(*Upstream)) (fe *frontend, c *clientConn, log *inWaitLog) {
	t.Helper()
	be := newScriptedBackend(t, "b", &requestLog{}, respond)
	up := testUpstream(t, "svc")
	for _, f := range upstream {
		f(up)
	}
	fe, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", up, be.addr()))
	log = &inWaitLog{}
	h.onFast = log.hook
	c = dialServer(t, strings.TrimPrefix(fe.URL, "http://"))
	for range 3 {
		c.send(t, "GET /quick HTTP/1.1\r\nHost: h\r\n\r\n")
		if m := c.response(t, "GET"); m.statusCode() != 200 {
			t.Fatalf("quick request: answer %q", m.start)
		}
	}
	return fe, c, log
}

// wantInWait waits, bounded, until the n-th request (from 0) is served,
// and checks that it was inside the hot wait.
func wantInWait(t *testing.T, log *inWaitLog, n int) {
	t.Helper()
	waitFor(t, "the request to be served", func() bool { return log.count() > n })
	if !log.at(n) {
		t.Fatalf("request %d was not served inside the hot wait", n)
	}
}

// peerRecvQueue returns how many bytes wait unread in the receive queue of
// the loopback socket at the other end of c (Linux's /proc/net/tcp).
func peerRecvQueue(t *testing.T, c net.Conn) int {
	t.Helper()
	hexAddr := func(a net.Addr) string {
		ta := a.(*net.TCPAddr)
		ip := ta.IP.To4()
		if ip == nil {
			t.Fatalf("peerRecvQueue reads IPv4 sockets only, not %v", a)
		}
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ta.Port)
	}
	local, remote := hexAddr(c.RemoteAddr()), hexAddr(c.LocalAddr())
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[1] == local && f[2] == remote {
			_, rx, _ := strings.Cut(f[4], ":")
			n, err := strconv.ParseInt(rx, 16, 64)
			if err != nil {
				t.Fatalf("/proc/net/tcp: %q: %v", line, err)
			}
			return int(n)
		}
	}
	t.Fatalf("/proc/net/tcp lists no socket %s → %s", local, remote)
	return 0
}

// TestServeInWaitConnectionEnds: a request served inside the hot wait
// after which the connection ends has it closed, once the wait has
// returned (closing the socket inside it would wait for the read lock the
// wait holds, for ever).
func TestServeInWaitConnectionEnds(t *testing.T) {
	for _, tc := range []struct{ name, last string }{
		{"Connection: close", "GET /last HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"},
		{"HTTP/1.0", "GET /last HTTP/1.0\r\nHost: h\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, c, log := warmInWait(t, func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
				answer(w, req, "200 OK", "ok")
				return true
			})
			c.send(t, tc.last)
			if m := c.response(t, "GET"); m.statusCode() != 200 {
				t.Fatalf("answer %q", m.start)
			}
			wantInWait(t, log, 3)
			wantClosed(t, c)
		})
	}
}

// TestServeInWaitServerClose: Server.Close does not wait for a request
// served inside a hot wait (its socket's close would, for the read lock):
// the request's watch sees the socket closing and aborts its exchange,
// whether the endpoint has not answered yet or keeps its answer's body
// silent, and whether or not the client has sent its next request; the
// client's connection is closed. A client that goes away
// during such a silent body has the exchange aborted too.
func TestServeInWaitServerClose(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream bool // the endpoint sends a head and a chunk, then nothing
		leave  bool // the client goes away rather than the server closing
		next   bool // the client sends its next request first
	}{
		{"no answer yet", false, false, false},
		{"no answer yet, next request sent", false, false, true},
		{"silent body", true, false, false},
		{"silent body, client gone", true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			respond, aborted := stallResponder()
			if tc.stream {
				stall := respond
				respond = func(w *bufio.Writer, c net.Conn, req *rawMessage) bool {
					if strings.Contains(req.start, "/stall") {
						_, _ = w.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
						_ = w.Flush()
					}
					return stall(w, c, req)
				}
			}
			fe, c, log := warmInWait(t, respond)
			c.send(t, "GET /stall HTTP/1.1\r\nHost: h\r\n\r\n")
			if tc.stream {
				for line := ""; !strings.Contains(line, "first"); {
					var err error
					if line, err = c.br.ReadString('\n'); err != nil {
						t.Fatalf("reading the stream: %v", err)
					}
				}
			}
			wantInWait(t, log, 3)
			if tc.next {
				// Bytes in the socket: the watch cannot see past them,
				// but still sees the server close it.
				c.send(t, "GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
				waitFor(t, "the next request to wait in the gateway's socket", func() bool { return peerRecvQueue(t, c.Conn) > 0 })
				// Long enough for the watch to have seen the bytes (it
				// looks every watchDelay; nothing tells when it has):
				// this orders nothing the test's outcome depends on.
				time.Sleep(2 * watchDelay)
			}
			if tc.leave {
				_ = c.Conn.(*net.TCPConn).CloseWrite()
			} else {
				closed := make(chan struct{})
				go func() {
					_ = fe.srv.Close()
					close(closed)
				}()
				select {
				case <-closed:
				case <-time.After(diffDeadline):
					t.Fatal("Server.Close waited for a request served inside a hot wait")
				}
			}
			select {
			case <-aborted:
			case <-time.After(diffDeadline):
				t.Fatal("the exchange was not aborted")
			}
			_ = c.SetReadDeadline(time.Now().Add(diffDeadline))
			if _, err := io.Copy(io.Discard, c.br); err != nil && !isReset(err) {
				t.Fatalf("the client's connection was not closed: %v", err)
			}
		})
	}
}

// TestServeInWaitRefusedBody: a whole body over its route's limit, read
// by a hot wait, is refused there (413) and the connection closed with a
// lingering drain of what the client still sends, done once the wait has
// returned (it reads, which the wait's read lock forbids inside it): the
// client gets the answer and the end of stream, and the gateway lets the
// connection go.
func TestServeInWaitRefusedBody(t *testing.T) {
	fe, c, log := warmInWait(t, func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
		answer(w, req, "200 OK", "ok")
		return true
	}, func(up *Upstream) { up.MaxBodyBytes = 4 })
	// A body within the limit, to show that bodies on this connection are
	// served inside the wait (a refused one is not reported to onFast).
	c.send(t, "POST /small HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n1234")
	if m := c.response(t, "POST"); m.statusCode() != 200 {
		t.Fatalf("POST /small: answer %q", m.start)
	}
	wantInWait(t, log, 3)
	c.send(t, "POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 8\r\n\r\n12345678")
	if m := c.response(t, "POST"); m.statusCode() != 413 {
		t.Fatalf("POST /big: answer %q, want 413", m.start)
	}
	// What the client sends after is drained, not answered.
	c.send(t, "GET /after HTTP/1.1\r\nHost: h\r\n\r\n")
	_ = c.Conn.(*net.TCPConn).CloseWrite()
	wantClosed(t, c)
	waitFor(t, "the gateway to let the connection go", func() bool { return fe.srv.ConnStats() == ConnStats{} })
}

package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWatchAfterQuickRequests: a connection's watch timer is set by its
// first request and not moved by the quick ones that follow; when it fires
// while a later request is in flight but has not yet waited watchDelay, it
// must be set again for the rest of that request's delay. Here a client
// sends quick requests for about half of watchDelay, then a request the
// endpoint never answers, and goes away: the watch must still start, see
// the client gone and abort the exchange, which closes the endpoint's
// connection. A timer left unset after such a firing never starts the
// watch, and the endpoint's connection stays open.
func TestWatchAfterQuickRequests(t *testing.T) {
	respond, aborted := stallResponder()
	be := newScriptedBackend(t, "b", &requestLog{}, respond)
	s := startServer(t, true, ServerConfig{}, be.addr())
	c := dialServer(t, s.addr)
	start := time.Now()
	n := 0
	for n == 0 || time.Since(start) < watchDelay/2 {
		c.send(t, "GET /quick HTTP/1.1\r\nHost: h\r\n\r\n")
		if m := c.response(t, "GET"); m.statusCode() != 200 {
			t.Fatalf("quick request %d: status %d", n, m.statusCode())
		}
		n++
	}
	c.send(t, "GET /stall HTTP/1.1\r\nHost: h\r\n\r\n")
	_ = c.Conn.(*net.TCPConn).CloseWrite() // the client is gone: end of stream
	t.Logf("%d quick requests in %v before the stalled one", n, time.Since(start))
	select {
	case <-aborted:
	case <-time.After(diffDeadline):
		t.Fatal("the exchange of a request whose client went away was not aborted: its watch never started")
	}
	wantClosed(t, c)
}

// wantClosed checks that the gateway closes c, bounded: no answer, the
// end of stream.
func wantClosed(t *testing.T, c *clientConn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(diffDeadline))
	if b, err := c.br.ReadByte(); err != io.EOF && !isReset(err) {
		t.Fatalf("the gateway did not close the connection: read %q, %v", b, err)
	}
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// stallResponder answers every request at once but those for /stall,
// which it never answers: aborted is closed when the gateway closes the
// connection of one.
func stallResponder() (respond responder, aborted chan struct{}) {
	aborted = make(chan struct{})
	return func(w *bufio.Writer, c net.Conn, req *rawMessage) bool {
		if !strings.Contains(req.start, "/stall") {
			answer(w, req, "200 OK", "quick")
			return true
		}
		_ = c.SetReadDeadline(time.Now().Add(diffDeadline))
		if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
			close(aborted)
		}
		return false
	}, aborted
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

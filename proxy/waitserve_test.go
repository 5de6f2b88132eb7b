package proxy

import (
	"bufio"
	"net"
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

func (l *inWaitLog) last() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.flags) > 0 && l.flags[len(l.flags)-1]
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
// quick succession, a whole request without a body is served inside the
// hot wait that read it (waitserve.go); a request with a body, and the
// second of two requests read together, are served outside it; a request
// that arrives while one is served inside the wait is read as soon as
// that one is answered, inside the same wait, its readiness not lost.
// Every request gets its own answer.
func TestServeInWait(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	be := newScriptedBackend(t, "b", &requestLog{}, func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
		if strings.Contains(req.start, "/held") {
			arrived <- struct{}{}
			<-release
		}
		answer(w, req, "200 OK", req.start)
		return true
	})
	fe, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	var log inWaitLog
	h.onFast = log.hook
	c := dialServer(t, strings.TrimPrefix(fe.URL, "http://"))

	answered := 0 // requests answered so far: the index of the next one's flag
	want := func(method, path string, inWait bool) {
		t.Helper()
		m := c.response(t, method)
		if m.statusCode() != 200 || !strings.Contains(string(m.body), path+" ") {
			t.Fatalf("%s %s: answer %q %q", method, path, m.start, m.body)
		}
		if got := log.at(answered); got != inWait {
			t.Errorf("%s %s served inside the hot wait: %v, want %v", method, path, got, inWait)
		}
		answered++
	}
	get := func(path string) { c.send(t, "GET "+path+" HTTP/1.1\r\nHost: h\r\n\r\n") }

	// The first request, and the one that wakes the connection from the
	// poller it was parked in, are read outside a hot wait.
	for _, p := range []string{"/a", "/b"} {
		get(p)
		c.response(t, "GET")
		answered++
	}
	for _, p := range []string{"/c", "/d", "/e"} {
		get(p)
		want("GET", p, true)
	}
	c.send(t, "POST /body HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi")
	want("POST", "/body", false)

	// /next arrives while /held is served inside the wait.
	get("/held")
	<-arrived
	get("/next")
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
	be, aborted := stallBackend(t)
	fe, h := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	var log inWaitLog
	h.onFast = log.hook
	c := dialServer(t, strings.TrimPrefix(fe.URL, "http://"))
	for range 3 {
		c.send(t, "GET /quick HTTP/1.1\r\nHost: h\r\n\r\n")
		c.response(t, "GET")
	}
	c.send(t, "GET /stall HTTP/1.1\r\nHost: h\r\n\r\n")
	waitFor(t, "the stalled request to be served", func() bool { return log.count() == 4 })
	if !log.last() {
		t.Fatal("the stalled request was not served inside the hot wait")
	}
	_ = c.Conn.(*net.TCPConn).SetLinger(0)
	_ = c.Close() // a reset
	select {
	case <-aborted:
	case <-time.After(diffDeadline):
		t.Fatal("the exchange of a request served in the wait whose client went away was not aborted")
	}
}

package proxy

// Regression tests from the adversarial review of the HTTP/1.1
// desynchronisation fix (issue 15): each failed before its fix.

import (
	"bufio"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// pipeEcho is a scripted backend answering each request with its path,
// "|" and its decoded body; paths containing "slow" are answered after
// 150ms, so that the fast path's client watch runs and reads a byte of the
// next pipelined request.
func pipeEcho(t *testing.T, log *requestLog) *scriptedBackend {
	return newScriptedBackend(t, "echo", log, func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
		parts := strings.Split(req.start, " ")
		if strings.Contains(parts[1], "slow") {
			time.Sleep(150 * time.Millisecond)
		}
		answer(w, req, "200 OK", parts[1]+"|"+string(req.body))
		return true
	})
}

// randBody returns n bytes that look like requests, to catch a body being
// parsed as one.
func randBody(r *rand.Rand, n int) string {
	const evil = "GET /SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n0\r\n\r\n"
	var b strings.Builder
	for b.Len() < n {
		if r.Intn(4) == 0 {
			b.WriteString(evil)
		} else {
			b.WriteByte(byte('a' + r.Intn(26)))
		}
	}
	return b.String()[:n]
}

// TestPipelinedRequestsFragmentedSlow sends random pipelined requests (no body, Content-Length
// bodies, chunked bodies, all under 64 KiB) in random fragments, some answered
// slowly, and checks every answer is the one of its request and that the
// backend saw exactly the requests sent.
func TestPipelinedRequestsFragmentedSlow(t *testing.T) { pipelineFuzz(t, 5, 12) }

// TestPipelinedRequestsFragmented is the fuzz without slow answers (no client
// watch): it passes, the input buffer's bookkeeping is sound.
func TestPipelinedRequestsFragmented(t *testing.T) { pipelineFuzz(t, 0, 40) }

func pipelineFuzz(t *testing.T, slowOneIn int, seeds int64) {
	log := &requestLog{}
	be := pipeEcho(t, log)
	s := startServer(t, true, ServerConfig{}, be.addr())
	for seed := int64(1); seed <= seeds; seed++ {
		r := rand.New(rand.NewSource(seed))
		var stream strings.Builder
		var want []string
		nreq := 6 + r.Intn(10)
		for i := 0; i < nreq; i++ {
			path := fmt.Sprintf("/p%d-%d", seed, i)
			if slowOneIn > 0 && r.Intn(slowOneIn) == 0 {
				path += "-slow"
			}
			switch r.Intn(3) {
			case 0:
				fmt.Fprintf(&stream, "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", path)
				want = append(want, path+"|")
			case 1:
				body := randBody(r, r.Intn(30000))
				fmt.Fprintf(&stream, "POST %s HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)
				want = append(want, path+"|"+body)
			case 2:
				fmt.Fprintf(&stream, "POST %s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", path)
				var all strings.Builder
				total := r.Intn(60000)
				for all.Len() < total {
					k := 1 + r.Intn(min(total-all.Len(), 9000))
					c := randBody(r, k)
					all.WriteString(c)
					ext := ""
					if r.Intn(3) == 0 {
						ext = ";a=b"
					}
					fmt.Fprintf(&stream, "%x%s\r\n%s\r\n", k, ext, c)
				}
				stream.WriteString("0\r\n\r\n")
				want = append(want, path+"|"+all.String())
			}
		}
		c := dialServer(t, s.addr)
		raw := stream.String()
		go func() {
			for len(raw) > 0 {
				k := min(len(raw), 1+r.Intn(7000))
				if _, err := c.Write([]byte(raw[:k])); err != nil {
					return
				}
				raw = raw[k:]
				if r.Intn(3) == 0 {
					time.Sleep(time.Duration(r.Intn(30)) * time.Millisecond)
				}
			}
		}()
		for i, w := range want {
			m := c.response(t, "POST")
			if got := string(m.body); got != w {
				t.Fatalf("seed %d answer %d: got %q..., want %q...", seed, i, got[:min(60, len(got))], w[:min(60, len(w))])
			}
		}
		c.Close()
		if strings.Contains(log.take(), "] GET /SMUGGLED") {
			t.Fatalf("seed %d: a body reached the backend as a request", seed)
		}
	}
}

// countingBackend is an HTTP backend that counts the TCP connections it
// accepted.
func countingBackend(t *testing.T) (addr string, conns *atomic.Int64) {
	conns = new(atomic.Int64)
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	be.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	be.Start()
	t.Cleanup(be.Close)
	return be.Listener.Addr().String(), conns
}

// TestPoolKeepsConnectionPastHeaderDeadline: the fast path leaves the
// response-header read deadline set on a pooled connection whose answer
// arrived whole (fillUp clears it only when it must wait). reusable's
// MSG_PEEK goes through RawConn.Read, which fails with the expired deadline
// before peeking: peerClosed reports true and a healthy idle connection is
// closed and redialled. With ResponseHeaderTimeout (or a route Timeout) set,
// every request after a pause longer than it costs a new connection.
func TestPoolKeepsConnectionPastHeaderDeadline(t *testing.T) {
	addr, conns := countingBackend(t)
	tr := NewTransport(TransportConfig{DialTimeout: 2 * time.Second, ResponseHeaderTimeout: 200 * time.Millisecond})
	t.Cleanup(tr.CloseIdleConnections)
	up := &Upstream{Name: "svc", Transport: tr, PassHostHeader: true}
	rt, err := NewRouter([]*Route{testRoute(t, "r", "round_robin", up, addr)})
	if err != nil {
		t.Fatal(err)
	}
	fe := startFrontend(t, NewHandler(rt, Options{}), ServerConfig{})
	c := dialServer(t, strings.TrimPrefix(fe.URL, "http://"))
	for i := 0; i < 3; i++ {
		c.send(t, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
		if m := c.response(t, "GET"); m.statusCode() != 200 {
			t.Fatalf("status %d", m.statusCode())
		}
		time.Sleep(400 * time.Millisecond) // idle well within IdleConnTimeout
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("the backend saw %d connections for 3 sequential requests on one idle-pooled connection, want 1", n)
	}
}

// TestRejectAfterWriteTimeout: reject writes its answer under the
// write deadline the previous request's begin set (start+WriteTimeout),
// never renewed: on a keep-alive connection older than WriteTimeout the
// 400 is never sent, the connection just closes.
func TestRejectAfterWriteTimeout(t *testing.T) {
	log := &requestLog{}
	be := newScriptedBackend(t, "ok", log, okResponder("ok"))
	s := startServer(t, true, ServerConfig{WriteTimeout: 200 * time.Millisecond}, be.addr())
	c := dialServer(t, s.addr)
	c.send(t, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if m := c.response(t, "GET"); m.statusCode() != 200 {
		t.Fatalf("status %d", m.statusCode())
	}
	time.Sleep(300 * time.Millisecond)
	c.send(t, "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n")
	m, err := readMessage(c.br, true, "GET")
	if err != nil {
		t.Fatalf("no 400 answer to a rejected request on a connection older than WriteTimeout: %v", connErr(err))
	}
	if m.statusCode() != 400 {
		t.Fatalf("status %d, want 400", m.statusCode())
	}
}

// TestWatchByteNeverLost: the client watch keeps the byte it reads in
// c.watchBuf until the next fill. When the next request is already whole in
// the input buffer, no fill happens; if that request is slow too, its watch
// reads the following byte into the same watchBuf, overwriting the first:
// one byte of the client's stream is lost and the gateway parses the rest
// shifted. Here the third request, "POST /a", reaches the backend as
// "OST /a" (net/http takes "OST" as a method).
func TestWatchByteNeverLost(t *testing.T) {
	log := &requestLog{}
	be := newScriptedBackend(t, "b", log, func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
		if strings.Contains(req.start, "slow") {
			time.Sleep(300 * time.Millisecond)
		}
		answer(w, req, "200 OK", req.start)
		return true
	})
	s := startServer(t, true, ServerConfig{}, be.addr())
	c := dialServer(t, s.addr)
	// Two slow requests, whole in one segment: both land in the input buffer.
	c.send(t, "GET /slow1 HTTP/1.1\r\nHost: h\r\n\r\nGET /slow2 HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(200 * time.Millisecond) // the watch of /slow1 is reading
	c.send(t, "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
	for i := 0; i < 3; i++ {
		m := c.response(t, "GET")
		t.Logf("answer %d: %d %q", i, m.statusCode(), m.body)
	}
	got := log.take()
	if !strings.Contains(got, "] POST /a HTTP/1.1") {
		t.Fatalf("the backend did not receive POST /a; it received:\n%s", got)
	}
}

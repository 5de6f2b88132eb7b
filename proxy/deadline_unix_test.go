//go:build unix

package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tests of the fast path's clocks and deadlines against real sockets whose
// buffers they keep small, so that a write or a relay waits where the test
// needs it to.

// sockBuf is a dialer's or listener's Control setting the socket's
// buffer opt (SO_RCVBUF, SO_SNDBUF) to size: the kernel then keeps it
// small (about twice size) rather than growing it, so that a test can
// fill it.
func sockBuf(opt, size int) func(_, _ string, rc syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var err error
		if cerr := rc.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, size) }); cerr != nil {
			return cerr
		}
		return err
	}
}

// TestPipelinedRequestStartsWhenServed: a request already read behind
// one whose answer's flush waited for the client counts its time, and its
// route's Timeout, from when it is served, not from the end of the one
// before it. The client pipelines many requests and reads nothing until
// their answers, flushed one by one, have filled the socket's buffers and
// a flush waits; it then pauses longer than the route's Timeout before
// reading. Counted from before that flush, the next request's deadline
// has passed when it is sent, and it is answered 504 at once.
func TestPipelinedRequestStartsWhenServed(t *testing.T) {
	body := strings.Repeat("x", 2048) // each answer goes out whole in end's flush
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(be.Close)
	up := &Upstream{Name: "svc", Transport: NewTransport(TransportConfig{DialTimeout: 2 * time.Second}), PassHostHeader: true}
	t.Cleanup(up.Transport.(*Transport).CloseIdleConnections)
	r := testRoute(t, "r", "round_robin", up, be.Listener.Addr().String())
	r.Timeout = 300 * time.Millisecond
	fe, _ := newFrontend(t, Options{}, r)

	d := net.Dialer{Timeout: diffDeadline, Control: sockBuf(syscall.SO_RCVBUF, 4096)}
	nc, err := d.Dial("tcp", strings.TrimPrefix(fe.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(diffDeadline))
	// 6.6 MB of answers: more than the socket buffers toward the client
	// hold (the gateway's send buffer grows to about 4 MB on loopback).
	const n = 3000
	go func() {
		_, _ = io.WriteString(nc, strings.Repeat("GET /x HTTP/1.1\r\nHost: h\r\n\r\n", n))
	}()
	time.Sleep(2 * r.Timeout) // the pause: no answer is read meanwhile
	br := bufio.NewReader(nc)
	for i := range n {
		m, err := readMessage(br, true, "GET")
		if err != nil {
			t.Fatalf("answer %d: %v", i, connErr(err))
		}
		if m.statusCode() != 200 {
			t.Fatalf("answer %d: status %d, want 200: a pipelined request served after a flush that waited counted its route Timeout from before the flush", i, m.statusCode())
		}
	}
}

// TestEndpointThatStopsReadingTimesOut: the request's write to an
// endpoint is bounded as the wait for its answer is. An endpoint that
// accepts and never reads, with socket buffers smaller than the request's
// body, held a fast-path request in its write for as long as the client
// waited; with ResponseHeaderTimeout it is answered 504 at that timeout.
func TestEndpointThatStopsReadingTimesOut(t *testing.T) {
	lc := net.ListenConfig{Control: sockBuf(syscall.SO_RCVBUF, 4096)} // accepted sockets inherit it
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	held := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held <- c // never read
		}
	}()
	t.Cleanup(func() {
		for {
			select {
			case c := <-held:
				c.Close()
			default:
				return
			}
		}
	})
	tr := NewTransport(TransportConfig{DialTimeout: 2 * time.Second, ResponseHeaderTimeout: 300 * time.Millisecond})
	tr.dialer.Control = sockBuf(syscall.SO_SNDBUF, 4096)
	t.Cleanup(tr.CloseIdleConnections)
	up := &Upstream{Name: "svc", Transport: tr, PassHostHeader: true}
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", up, ln.Addr().String()))

	c := dialServer(t, strings.TrimPrefix(fe.URL, "http://"))
	body := strings.Repeat("b", 60000) // held whole by the fast path (≤ 64 KiB)
	start := time.Now()
	c.send(t, fmt.Sprintf("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
	m, err := readMessage(c.br, true, "POST")
	if err != nil {
		t.Fatalf("no answer while the endpoint does not read the request: %v", connErr(err))
	}
	if m.statusCode() != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", m.statusCode())
	}
	t.Logf("answered %d after %v", m.statusCode(), time.Since(start).Round(time.Millisecond))
}

// TestBodyOutlivesHeaderDeadline: the response-header deadline does not
// bound the body, even one relayed without ever waiting for the endpoint.
// The relay lifts the deadline before it waits; an endpoint that has the
// whole body ready for a client that reads slower than it writes never
// makes the relay wait, and the deadline, still set, cut the body off
// once it passed. A body with a length is relayed past the connection's
// buffer (relayN's direct reads); one delimited by the connection's close
// through it (upConn.Read).
func TestBodyOutlivesHeaderDeadline(t *testing.T) {
	const size = 4 << 20
	body := strings.Repeat("d", size)
	for _, tc := range []struct {
		name string
		head string
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n"},
		{"until close", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The endpoint writes the whole answer at once and closes.
			be := newRecBackend(t, func(_, _ int, _ *http.Request, _ []byte, c net.Conn) bool {
				_, _ = io.WriteString(c, tc.head+body)
				return false
			})
			tr := NewTransport(TransportConfig{DialTimeout: 2 * time.Second, ResponseHeaderTimeout: 300 * time.Millisecond})
			t.Cleanup(tr.CloseIdleConnections)
			up := &Upstream{Name: "svc", Transport: tr, PassHostHeader: true}
			rt, err := NewRouter([]*Route{testRoute(t, "r", "round_robin", up, be.addr())})
			if err != nil {
				t.Fatal(err)
			}
			// Small socket buffers toward the client, so that the relay's
			// writes wait for it from the first bytes on.
			lc := net.ListenConfig{Control: sockBuf(syscall.SO_SNDBUF, 4096)}
			ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := NewServer(NewHandler(rt, Options{}), ServerConfig{})
			go func() { _ = srv.Serve(ln) }()
			t.Cleanup(func() { _ = srv.Close() })

			c := dialServer(t, ln.Addr().String())
			c.send(t, "GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
			res, err := http.ReadResponse(c.br, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			// Slower than the endpoint: 32 KiB every 10 ms, the body in
			// about 1.3 s, four times the header timeout.
			got, buf := 0, make([]byte, 32<<10)
			for {
				n, err := io.ReadFull(res.Body, buf)
				got += n
				if err == io.EOF || err == io.ErrUnexpectedEOF && got == size {
					break
				}
				if err != nil {
					t.Fatalf("the body broke off after %d of %d bytes: %v", got, size, connErr(err))
				}
				time.Sleep(10 * time.Millisecond)
			}
			if got != size {
				t.Fatalf("body of %d bytes, want %d", got, size)
			}
		})
	}
}

package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// ---------------------------------------------------------------------
// The adversarial review of issue 19's HTTP/2 work: roundTripH1 and the
// fast path's stale-connection rule (coalescingConn's in
// review21_coalesce_test.go). Helpers:

// r21Backend is a raw HTTP/1.1 backend: serve is called for every request
// head read (conn index, request index on that conn, request line); it
// writes the answer itself and returns false to stop serving the conn.
type r21Backend struct {
	ln       net.Listener
	requests atomic.Int32
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func newR21Backend(t *testing.T, serve func(w *bufio.Writer, conn, n int, line string) bool) *r21Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &r21Backend{ln: ln}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for ci := 0; ; ci++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, nc)
			b.mu.Unlock()
			b.wg.Add(1)
			go func(ci int) {
				defer b.wg.Done()
				defer nc.Close()
				br, bw := bufio.NewReader(nc), bufio.NewWriter(nc)
				for n := 0; ; n++ {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					for { // the rest of the head
						l, err := br.ReadString('\n')
						if err != nil {
							return
						}
						if l == "\r\n" {
							break
						}
					}
					b.requests.Add(1)
					if !serve(bw, ci, n, strings.TrimSpace(line)) {
						return
					}
					if bw.Flush() != nil {
						return
					}
				}
			}(ci)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			_ = c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *r21Backend) addr() string { return b.ln.Addr().String() }

// r21Request is a bodiless request as net/http's HTTP/2 server hands it on
// (ProtoMajor 2), to addr.
func r21Request(t *testing.T, ctx context.Context, method, addr string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/2.0", 2, 0
	return req
}

// ---------------------------------------------------------------------
// roundTripH1

// r21SlowSecondAnswer is a backend that never answers the second request
// of its first connection (every other one gets 200), and a transport
// whose ResponseHeaderTimeout is 200ms.
func r21SlowSecondAnswer(t *testing.T) (*r21Backend, *Transport) {
	t.Helper()
	be := newR21Backend(t, func(w *bufio.Writer, conn, n int, line string) bool {
		if conn == 0 && n == 1 {
			return true // the second request on the first connection: no answer
		}
		w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	tr := NewTransport(TransportConfig{DialTimeout: 2 * time.Second, ResponseHeaderTimeout: 200 * time.Millisecond})
	t.Cleanup(tr.CloseIdleConnections)
	return be, tr
}

// TestReview21H1HeaderTimeoutNotRetried: when ResponseHeaderTimeout passes
// on a reused connection, roundTripH1 treats it as a stale keep-alive
// connection (nothing was read) and sends the request again on a new one:
// the backend gets it twice and the client waits twice the timeout.
// net/http's transport returns "timeout awaiting response headers" and
// sends nothing more.
func TestReview21H1HeaderTimeoutNotRetried(t *testing.T) {
	be, tr := r21SlowSecondAnswer(t)

	res, err := tr.RoundTrip(r21Request(t, context.Background(), http.MethodGet, be.addr()))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(res.Body)
	res.Body.Close()

	res, err = tr.RoundTrip(r21Request(t, context.Background(), http.MethodGet, be.addr()))
	if err == nil {
		res.Body.Close()
		t.Errorf("a request whose answer did not come within ResponseHeaderTimeout got %d (sent again on a new connection)", res.StatusCode)
	} else if kind := classify(err, nil, false, false); kind != failTimeout {
		t.Errorf("classified %v, want failTimeout (%v)", kind, err)
	}
	if n := be.requests.Load(); n != 2 {
		t.Errorf("the backend received %d requests, want 2: a timed-out request was sent again", n)
	}
}

// TestReview21H1DialFollowsContext: roundTripH1 dials with Dial and a
// deadline, not with the request's context: a client that goes away, or a
// Route.Timeout (a cancellation, not a context deadline), does not end a
// connect that hangs (an endpoint that drops SYNs); the request holds on
// for the whole DialTimeout. net/http's transport dials with DialContext.
// The hanging connect is modelled by a Dialer.ControlContext that waits
// for the dial's own context.
func TestReview21H1DialFollowsContext(t *testing.T) {
	tr := NewTransport(TransportConfig{DialTimeout: 4 * time.Second})
	t.Cleanup(tr.CloseIdleConnections)
	entered := make(chan struct{}, 1)
	tr.dialer.ControlContext = func(ctx context.Context, _, _ string, _ syscall.RawConn) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-ctx.Done() // a connect that gets no answer ends with the dial's context
		return ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		res, err := tr.RoundTrip(r21Request(t, ctx, http.MethodGet, "127.0.0.1:9"))
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the dial did not start")
	}
	cancel() // the client went away / Route.Timeout fired
	start := time.Now()
	select {
	case err := <-done:
		if took := time.Since(start); took > time.Second {
			t.Errorf("RoundTrip returned %v after the request's context was cancelled, want promptly (%v)", took, err)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("RoundTrip did not return")
	}
}

// TestReview21H1StaleRetryAsFastPath: a DELETE written on a reused
// connection that the endpoint then closes without answering is sent again
// on a new connection by roundTripH1 exactly as by the fast path: whether a
// request may be sent twice is isReplayable's decision (RFC 9110 §9.2.2:
// DELETE is idempotent), for both (net/http's transport resends only GET,
// HEAD, OPTIONS and TRACE).
func TestReview21H1StaleRetryAsFastPath(t *testing.T) {
	deletesThrough := func(send func(addr string, method string)) int32 {
		var deletes atomic.Int32
		be := newR21Backend(t, func(w *bufio.Writer, conn, n int, line string) bool {
			if strings.HasPrefix(line, "DELETE") {
				if deletes.Add(1) == 1 {
					return false // carried out, then the connection closes unanswered
				}
			}
			w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return true
		})
		send(be.addr(), http.MethodGet)
		send(be.addr(), http.MethodDelete)
		return deletes.Load()
	}
	tr := NewTransport(TransportConfig{DialTimeout: 2 * time.Second})
	t.Cleanup(tr.CloseIdleConnections)
	h1 := deletesThrough(func(addr, method string) {
		res, err := tr.RoundTrip(r21Request(t, context.Background(), method, addr))
		if err == nil {
			_, _ = io.ReadAll(res.Body)
			res.Body.Close()
		}
	})
	var side *diffSide
	fast := deletesThrough(func(addr, method string) {
		if side == nil {
			side = newDiffSide(t, "fast", true, Options{}, oneRoute(t, "round_robin", nil, addr))
		}
		req, err := http.NewRequest(method, "http://"+side.addr+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := (&http.Client{Timeout: diffDeadline}).Do(req)
		if err == nil {
			_, _ = io.ReadAll(res.Body)
			res.Body.Close()
		}
	})
	if h1 != fast || h1 != 2 {
		t.Errorf("the backend received the DELETE %d times through roundTripH1 and %d through the fast path; want 2 both", h1, fast)
	}
}

// TestReview21FastPathHeaderTimeoutNotRetried: the fast path, like
// roundTripH1, does not take a response-header timeout on a reused
// connection for a connection the endpoint had closed (staleConn): the
// request is not sent again, the client gets 504.
func TestReview21FastPathHeaderTimeoutNotRetried(t *testing.T) {
	be, tr := r21SlowSecondAnswer(t)
	side := newDiffSide(t, "fast", true, Options{}, oneRoute(t, "round_robin", func(r *Route) {
		r.Upstream.Transport = tr
	}, be.addr()))
	c := &http.Client{Timeout: diffDeadline}
	var codes []int
	for range 2 {
		res, err := c.Get("http://" + side.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(res.Body)
		res.Body.Close()
		codes = append(codes, res.StatusCode)
	}
	if codes[0] != http.StatusOK || codes[1] != http.StatusGatewayTimeout {
		t.Errorf("statuses %v, want [200 504]", codes)
	}
	if n := be.requests.Load(); n != 2 {
		t.Errorf("the backend received %d requests, want 2: a timed-out request was sent again", n)
	}
}

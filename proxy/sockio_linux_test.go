//go:build linux && !386

package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// sockPair returns the two ends of a loopback TCP connection, the first
// with a bound sockIO.
func sockPair(t *testing.T) (*net.TCPConn, *sockIO, *net.TCPConn) {
	t.Helper()
	a, b := tcpPair(t)
	raw, err := a.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	s := new(sockIO)
	s.init(raw)
	return a, s, b
}

// TestSockIOReadWrite: sockIO moves bytes both ways as net.Conn does, and
// readNow never waits (that Read does is TestSockIOReadDeadline's).
func TestSockIOReadWrite(t *testing.T) {
	a, s, b := sockPair(t)
	_ = a.SetDeadline(time.Now().Add(10 * time.Second))
	_ = b.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	if n, err := s.readNow(buf); n != 0 || err != errWouldBlock {
		t.Fatalf("readNow on a quiet socket: %d, %v; want 0, errWouldBlock", n, err)
	}
	if _, err := b.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Read(buf); err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("Read: %q, %v", buf[:n], err)
	}
	if n, err := s.Write([]byte("pong")); n != 4 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if _, err := io.ReadFull(b, buf[:4]); err != nil || string(buf[:4]) != "pong" {
		t.Fatalf("peer read %q, %v", buf[:4], err)
	}
	if _, err := b.Write([]byte("now")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := s.readNow(buf)
		if err == nil {
			if string(buf[:n]) != "now" {
				t.Fatalf("readNow: %q", buf[:n])
			}
			break
		}
		if err != errWouldBlock || time.Now().After(deadline) {
			t.Fatalf("readNow: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	_ = b.CloseWrite()
	if n, err := s.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read at the end of stream: %d, %v; want 0, io.EOF", n, err)
	}
	if n, err := s.readNow(buf); n != 0 || err != io.EOF {
		t.Fatalf("readNow at the end of stream: %d, %v; want 0, io.EOF", n, err)
	}
}

// TestSockIOReadDeadline: a read waiting on a quiet socket ends at the
// connection's read deadline, with the error net.Conn gives.
func TestSockIOReadDeadline(t *testing.T) {
	a, s, _ := sockPair(t)
	_ = a.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	n, err := s.Read(make([]byte, 8))
	var ne net.Error
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past the deadline: %d, %v; want a timeout", n, err)
	}
}

// TestSockIOWritesPastTheSendBuffer: a write larger than the socket's
// buffers goes out whole, waiting for room as the peer reads, and so does
// writeTwo's pair, whose pieces are sent in order however the kernel
// splits the writes.
func TestSockIOWritesPastTheSendBuffer(t *testing.T) {
	a, s, b := sockPair(t)
	_ = a.SetWriteBuffer(16 << 10)
	_ = b.SetReadBuffer(16 << 10)
	_ = a.SetDeadline(time.Now().Add(20 * time.Second))
	_ = b.SetDeadline(time.Now().Add(20 * time.Second))
	big := func(n int, seed byte) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = seed + byte(i*7)
		}
		return p
	}
	one, head, body := big(3<<20, 1), big(3000, 2), big(5<<20, 3)
	want := append(append(append([]byte{}, one...), head...), body...)
	got := make(chan []byte, 1)
	go func() {
		p, _ := io.ReadAll(io.LimitReader(b, int64(len(want))))
		got <- p
	}()
	if n, err := s.Write(one); n != len(one) || err != nil {
		t.Fatalf("Write: %d of %d, %v", n, len(one), err)
	}
	if n, err := s.writeTwo(head, body); n != len(head)+len(body) || err != nil {
		t.Fatalf("writeTwo: %d of %d, %v", n, len(head)+len(body), err)
	}
	peerRead(t, got, want)
	if n, err := s.writeTwo(nil, []byte("x")); n != 1 || err != nil {
		t.Fatalf("writeTwo with an empty first piece: %d, %v", n, err)
	}
}

// TestSockIOWriteAwait: writeAwait returns once the answer to what it
// wrote (in one piece or two) has arrived, so that a read then finds it without waiting; a
// deadline ends the wait, leaving the timeout to the read; a write the
// send buffer cannot take whole still goes out whole; and one whose wait
// cannot begin (the deadline has passed) is written all the same.
func TestSockIOWriteAwait(t *testing.T) {
	t.Run("answer", func(t *testing.T) {
		a, s, b := sockPair(t)
		_ = a.SetDeadline(time.Now().Add(10 * time.Second))
		_ = b.SetDeadline(time.Now().Add(10 * time.Second))
		const rounds = 20
		go func() {
			p := make([]byte, 4)
			for range rounds {
				if _, err := io.ReadFull(b, p); err != nil || string(p) != "ping" {
					return
				}
				if _, err := b.Write([]byte("pong")); err != nil {
					return
				}
			}
		}()
		// The request in one piece, either one, or split across both.
		pieces := [][2]string{{"", "ping"}, {"ping", ""}, {"pi", "ng"}}
		for i := range rounds { // each round: an answer the wait must see
			pc := pieces[i%len(pieces)]
			if n, err := s.writeAwait([]byte(pc[0]), []byte(pc[1])); n != 4 || err != nil {
				t.Fatalf("round %d: writeAwait(%q, %q): %d, %v", i, pc[0], pc[1], n, err)
			}
			buf := make([]byte, 8)
			n, err := s.readNow(buf)
			if err != nil || string(buf[:n]) != "pong" {
				t.Fatalf("round %d: readNow after writeAwait: %q, %v; want the answer there", i, buf[:n], err)
			}
		}
	})
	t.Run("deadline", func(t *testing.T) {
		a, s, b := sockPair(t)
		_ = a.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		if n, err := s.writeAwait(nil, []byte("ping")); n != 4 || err != nil {
			t.Fatalf("writeAwait to a silent peer: %d, %v; want the write done", n, err)
		}
		if n, err := s.readNow(make([]byte, 8)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("readNow after the wait: %d, %v; want the deadline's error", n, err)
		}
		_ = b.SetReadDeadline(time.Now().Add(10 * time.Second))
		if p, err := io.ReadAll(io.LimitReader(b, 4)); err != nil || string(p) != "ping" {
			t.Fatalf("the peer read %q, %v", p, err)
		}
		// The deadline has passed: no wait, but the write is made.
		if n, err := s.writeAwait(nil, []byte("late")); n != 4 || err != nil {
			t.Fatalf("writeAwait past the deadline: %d, %v", n, err)
		}
		if p, err := io.ReadAll(io.LimitReader(b, 4)); err != nil || string(p) != "late" {
			t.Fatalf("the peer read %q, %v", p, err)
		}
	})
	t.Run("past the send buffer", func(t *testing.T) {
		a, s, b := sockPair(t)
		_ = a.SetWriteBuffer(16 << 10)
		_ = b.SetReadBuffer(16 << 10)
		_ = a.SetDeadline(time.Now().Add(20 * time.Second))
		_ = b.SetDeadline(time.Now().Add(20 * time.Second))
		want := make([]byte, 6<<20)
		for i := range want {
			want[i] = byte(i * 13)
		}
		got := make(chan []byte, 1)
		go func() {
			p, _ := io.ReadAll(io.LimitReader(b, int64(len(want))))
			got <- p
			_, _ = b.Write([]byte("done"))
		}()
		if n, err := s.writeAwait(want[:1<<20], want[1<<20:]); n != len(want) || err != nil {
			t.Fatalf("writeAwait: %d of %d, %v", n, len(want), err)
		}
		peerRead(t, got, want)
		buf := make([]byte, 8)
		if n, err := io.ReadFull(readerFunc(s.Read), buf[:4]); err != nil || string(buf[:n]) != "done" {
			t.Fatalf("Read: %q, %v", buf[:n], err)
		}
	})
	t.Run("reset peer", func(t *testing.T) {
		a, s, b := sockPair(t)
		_ = a.SetDeadline(time.Now().Add(10 * time.Second))
		_ = b.SetLinger(0)
		_ = b.Close()
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, err := s.writeAwait(nil, make([]byte, 4096)); err != nil {
				if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("writeAwait to a reset peer: %v; want EPIPE or ECONNRESET", err)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("writes to a reset peer kept succeeding")
			}
		}
	})
}

// TestUpConnSplitRequestReadAsUsual: a request larger than the upstream
// connection's write buffer goes out in two writes, and an endpoint may
// answer after the first (nginx refusing a body it will not take): the
// last write must not wait for readiness the answer has brought already,
// which the wait would clear (the read would then wait for the deadline
// with the answer in the socket).
func TestUpConnSplitRequestReadAsUsual(t *testing.T) {
	a, b := tcpPair(t)
	uc := newUpConn(a, &hostPool{})
	if !uc.sock.ok() {
		t.Fatal("the upstream connection has no sockIO")
	}
	_ = a.SetDeadline(time.Now().Add(5 * time.Second))
	_ = b.SetDeadline(time.Now().Add(10 * time.Second))
	const answer = "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n"
	go func() {
		if _, err := io.ReadFull(b, make([]byte, uc.bw.Size())); err == nil {
			_, _ = b.Write([]byte(answer)) // before the rest of the request
		}
		_, _ = io.Copy(io.Discard, b)
	}()
	uc.nwritten = 0
	_, _ = uc.bw.Write(make([]byte, 100))
	_, _ = uc.bw.Write(make([]byte, uc.bw.Size())) // the buffer's worth goes out now
	if uc.nwritten == 0 || uc.bw.Buffered() == 0 {
		t.Fatalf("the request was not split: %d written, %d buffered", uc.nwritten, uc.bw.Buffered())
	}
	// The answer is in the socket, and the runtime's poller has had the
	// chance to take its readiness, before the rest is written.
	raw, err := a.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		_ = raw.Control(func(fd uintptr) {
			n, _ = recvRaw(fd, make([]byte, 1), syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		})
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the answer did not come")
		}
		runtime.Gosched()
	}
	// Let this goroutine's processor go idle, so that the runtime's
	// poller collects the answer's readiness (no API tells when it has):
	// this provokes the lost wake-up; it does not order the test.
	time.Sleep(20 * time.Millisecond)
	uc.setDeadline(time.Now().Add(time.Second), 0, true)
	if err := uc.flushRequest(true); err != nil {
		t.Fatalf("flushRequest: %v", err)
	}
	got := make([]byte, len(answer))
	if _, err := io.ReadFull(uc.br, got); err != nil || string(got) != answer {
		t.Fatalf("reading the answer after the split request: %q, %v; want it at once", got, err)
	}
}

// TestUpConnWholeRequestAwaitsTheAnswer: a request sent in one write,
// under a read deadline, returns from flushRequest with its answer
// arrived; without a deadline it does not wait (bytes sent unasked could
// leave the wait unbounded).
func TestUpConnWholeRequestAwaitsTheAnswer(t *testing.T) {
	a, b := tcpPair(t)
	uc := newUpConn(a, &hostPool{})
	_ = b.SetDeadline(time.Now().Add(10 * time.Second))
	second := make(chan struct{}) // the second answer waits for it
	go func() {
		p := make([]byte, 4)
		for i := range 2 {
			if _, err := io.ReadFull(b, p); err != nil {
				return
			}
			if i == 1 {
				<-second
			}
			_, _ = b.Write([]byte("pong"))
		}
	}()
	uc.nwritten = 0
	uc.setDeadline(time.Now().Add(5*time.Second), 0, true)
	_, _ = uc.bw.WriteString("ping")
	if err := uc.flushRequest(true); err != nil {
		t.Fatalf("flushRequest: %v", err)
	}
	buf := make([]byte, 8)
	if n, err := uc.sock.readNow(buf); err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("readNow after flushRequest: %q, %v; want the answer there", buf[:n], err)
	}

	uc.nwritten = 0
	uc.clearDeadline()
	_, _ = uc.bw.WriteString("ping")
	flushed := make(chan error, 1)
	go func() { flushed <- uc.flushRequest(true) }()
	select {
	case err := <-flushed:
		if err != nil {
			t.Fatalf("flushRequest without a deadline: %v", err)
		}
	case <-time.After(5 * time.Second):
		close(second)
		t.Fatal("flushRequest without a read deadline waited for the answer")
	}
	close(second)
	_ = a.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(uc.br, buf[:4]); err != nil || string(buf[:4]) != "pong" {
		t.Fatalf("the second answer: %q, %v", buf[:4], err)
	}
}

// readerFunc is a function as an io.Reader.
type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// peerRead checks that the peer read want, which it sends on got once it
// has read as many bytes, within 20 seconds.
func peerRead(t *testing.T, got <-chan []byte, want []byte) {
	t.Helper()
	select {
	case p := <-got:
		if !bytes.Equal(p, want) {
			t.Fatalf("the peer read %d bytes that differ from the %d written", len(p), len(want))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the peer did not read everything")
	}
}

// TestSockIOWriteToResetPeer: writing to a peer that reset the connection
// fails with the system's error (EPIPE or ECONNRESET), as net.Conn's
// write does, and raises no SIGPIPE (the process would die of one on a
// descriptor the runtime does not own).
func TestSockIOWriteToResetPeer(t *testing.T) {
	a, s, b := sockPair(t)
	_ = a.SetDeadline(time.Now().Add(10 * time.Second))
	_ = b.SetLinger(0)
	_ = b.Close() // a reset
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.Write(make([]byte, 4096))
		if err != nil {
			if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("write to a reset peer: %v; want EPIPE or ECONNRESET", err)
			}
			var op *net.OpError
			if !errors.As(err, &op) || op.Op != "write" {
				t.Fatalf("write error %v is not a *net.OpError of op write", err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("writes to a reset peer kept succeeding")
		}
	}
}

// TestSockIOOnClosedConn: once the connection is closed, sockIO's calls
// fail as net.Conn's do (net.ErrClosed), touching no descriptor.
func TestSockIOOnClosedConn(t *testing.T) {
	a, s, _ := sockPair(t)
	_ = a.Close()
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read: %v; want net.ErrClosed", err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write: %v; want net.ErrClosed", err)
	}
	if _, err := s.readNow(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("readNow: %v; want net.ErrClosed", err)
	}
}

// countingListener's connections count what the server writes through
// them and pass SyscallConn on, as a listener that meters traffic may.
type countingListener struct {
	net.Listener
	written atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingClientConn{Conn: c, l: l}, nil
}

type countingClientConn struct {
	net.Conn
	l *countingListener
}

func (c *countingClientConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.l.written.Add(int64(n))
	return n, err
}

func (c *countingClientConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

// A client connection a listener wrapped is written through its wrapper
// on every request, not through the socket once it has waited between
// requests: only a plain *net.TCPConn gets sockIO's raw calls.
func TestWrappedClientConnWrittenThroughWrapper(t *testing.T) {
	b := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("hello")) })
	rt, err := NewRouter([]*Route{testRoute(t, "r", "round_robin", testUpstream(t, "svc"), b.addr())})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	s := NewServer(NewHandler(rt, Options{}), ServerConfig{})
	done := make(chan error, 1)
	go func() { done <- s.Serve(cl) }()
	t.Cleanup(func() {
		_ = s.Close()
		<-done
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	var per []int64
	for i := range 3 {
		before := cl.written.Load()
		if _, err := io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		// The wrapper counts once the server's write returns, which may
		// be after the client has read the answer.
		for deadline := time.Now().Add(2 * time.Second); cl.written.Load() == before && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		per = append(per, cl.written.Load()-before)
	}
	for i, n := range per {
		if n == 0 {
			t.Fatalf("bytes written through the wrapper per answer: %v; answer %d bypassed it", per, i)
		}
	}
}

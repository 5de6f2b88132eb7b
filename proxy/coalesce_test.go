package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the writes that reach a connection.
type countingConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// coalescedPipe returns a started coalescingConn over one end of a
// synchronous pipe (a write there waits for the reader), the count of
// writes reaching that end, and the other end.
func coalescedPipe(t *testing.T) (*coalescingConn, *countingConn, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	cc := &countingConn{Conn: a}
	c := newCoalescingConn(cc)
	c.start()
	_ = b.SetReadDeadline(time.Now().Add(10 * time.Second)) // bounds readN
	t.Cleanup(func() { _ = c.Close(); _ = b.Close() })
	return c, cc, b
}

// flusherStopped waits until c's flusher has ended, failing after within.
func flusherStopped(t *testing.T, c *coalescingConn, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c.mu.Lock()
		done := !c.flushing
		c.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the flusher did not end within %v", within)
		}
		time.Sleep(time.Millisecond) // polling a condition with a bound
	}
}

func TestCoalescingConnPassesThroughBeforeStart(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := newCoalescingConn(a)
	defer c.Close()
	_ = b.SetReadDeadline(time.Now().Add(10 * time.Second))
	done := make(chan error, 1)
	go func() { _, err := c.Write([]byte("handshake")); done <- err }()
	if got := readN(t, b, len("handshake")); got != "handshake" {
		t.Fatalf("peer read %q", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flushing || c.buf != nil {
		t.Fatalf("before start a write used the buffer (flushing %v, buffer %v)", c.flushing, c.buf != nil)
	}
}

// TestCoalescingConnGathersWrites: writes made while one write is in the
// kernel (here: waiting for the pipe's reader) go out together.
func TestCoalescingConnGathersWrites(t *testing.T) {
	c, cc, peer := coalescedPipe(t)
	parts := []string{"first", "second", "third", "fourth", "fifth"}
	for _, p := range parts {
		if n, err := c.Write([]byte(p)); err != nil || n != len(p) {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	want := "firstsecondthirdfourthfifth"
	if got := readN(t, peer, len(want)); got != want {
		t.Fatalf("peer read %q, want %q", got, want)
	}
	flusherStopped(t, c, 10*time.Second)
	if n := cc.writes.Load(); n > 2 {
		t.Fatalf("%d writes reached the connection for 5 Writes made while the first waited; want at most 2", n)
	}
	c.mu.Lock()
	held := c.buf != nil
	c.mu.Unlock()
	if held {
		t.Fatal("an idle conn still holds a buffer")
	}
}

// TestCoalescingConnKeepsOrder: concurrent writers' bytes arrive whole and
// each writer's in its order.
func TestCoalescingConnKeepsOrder(t *testing.T) {
	c, _, peer := coalescedPipe(t)
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				msg := fmt.Sprintf("<%d:%04d>", w, i)
				if _, err := c.Write([]byte(msg)); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	total := writers * each * len("<0:0000>")
	got := readN(t, peer, total)
	wg.Wait()
	next := make([]int, writers)
	for i := 0; i < len(got); i += 8 {
		var w, n int
		if _, err := fmt.Sscanf(got[i:i+8], "<%d:%04d>", &w, &n); err != nil {
			t.Fatalf("message at %d is %q: torn", i, got[i:i+8])
		}
		if n != next[w] {
			t.Fatalf("writer %d: message %d came where %d was due", w, n, next[w])
		}
		next[w]++
	}
}

// TestCoalescingConnBackPressure: a peer that reads nothing stops the
// writer once a buffer's worth waits, and the write deadline ends the wait
// with the deadline's error.
func TestCoalescingConnBackPressure(t *testing.T) {
	c, _, _ := coalescedPipe(t)
	if err := c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	piece := bytes.Repeat([]byte("x"), 1024)
	accepted := 0
	var err error
	for accepted < 1<<20 {
		var n int
		if n, err = c.Write(piece); err != nil {
			break
		}
		accepted += n
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after %d bytes: error %v, want the deadline's", accepted, err)
	}
	// One buffer in the flusher's write, one filling.
	if limit := 2 * (inBufMin << coalesceClass); accepted > limit {
		t.Fatalf("accepted %d bytes from a writer whose peer reads nothing; want at most %d", accepted, limit)
	}
	if _, err := c.Write(piece); err == nil {
		t.Fatal("a Write after the failed flush succeeded")
	}
}

// TestCoalescingConnCloseWritesWhatWaits: Close delivers what was written
// before it, then the peer reads the end.
func TestCoalescingConnCloseWritesWhatWaits(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := newCoalescingConn(a)
	c.start()
	want := bytes.Repeat([]byte("goaway "), 3000)
	if _, err := c.Write(want); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		_ = b.SetReadDeadline(time.Now().Add(10 * time.Second))
		all, _ := io.ReadAll(b)
		got <- all
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if all := <-got; !bytes.Equal(all, want) {
		t.Fatalf("peer read %d bytes before the end, want %d", len(all), len(want))
	}
	if _, err := c.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v, want net.ErrClosed", err)
	}
}

// TestCoalescingConnFailedWriteCloses: when the flusher's write fails (here
// its deadline passes: the peer reads nothing), the connection is closed so
// that its reader, which would wait for the peer, sees it; Writes fail.
func TestCoalescingConnFailedWriteCloses(t *testing.T) {
	c, _, _ := coalescedPipe(t)
	if err := c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("to a peer that does not read")); err != nil {
		t.Fatalf("the first Write only buffers, got %v", err)
	}
	flusherStopped(t, c, 10*time.Second)
	if _, err := c.Write([]byte("again")); err == nil {
		t.Fatal("a Write after the failed flush succeeded")
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read after the failed flush: %v, want the closed connection's error", err)
	}
}

// TestCoalescingConnGatherTLSRecords: in gather mode (zkgate's own HTTP/2
// server beneath TLS) one tls.Conn.Write made while the conn is held
// reaches the socket as one write per 64 KiB buffer, although crypto/tls
// cuts it into many records (small ones on a young connection); without
// the hold every record is a write of its own. The bytes arrive whole and
// in order either way.
func TestCoalescingConnGatherTLSRecords(t *testing.T) {
	cliConn, nc := tcpPair(t)
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	_ = cliConn.SetDeadline(time.Now().Add(20 * time.Second))
	cc := &countingConn{Conn: nc}
	wc := newCoalescingConn(cc)
	srv := tls.Server(wc, &tls.Config{Certificates: []tls.Certificate{r21Cert(t)}})
	cli := tls.Client(cliConn, &tls.Config{InsecureSkipVerify: true, ServerName: "review21"})
	const size = 100 << 10
	read := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(cli, 2*size))
		read <- b
	}()
	if err := srv.Handshake(); err != nil {
		t.Fatal(err)
	}
	wc.startGather()
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i * 7)
	}

	before := cc.writes.Load()
	wc.hold()
	if n, err := srv.Write(payload); err != nil || n != size {
		t.Fatalf("held Write = %d, %v", n, err)
	}
	if err := wc.release(); err != nil {
		t.Fatalf("release: %v", err)
	}
	held := cc.writes.Load() - before
	if held > 2 {
		t.Errorf("a held %d-byte TLS write reached the socket in %d writes; want at most 2 (64 KiB each)", size, held)
	}
	wc.mu.Lock()
	kept := wc.buf != nil
	wc.mu.Unlock()
	if kept {
		t.Error("the conn keeps a buffer after release")
	}

	before = cc.writes.Load()
	if _, err := srv.Write(payload); err != nil {
		t.Fatal(err)
	}
	if direct := cc.writes.Load() - before; direct <= held {
		t.Errorf("without a hold the write took %d socket writes, a held one %d: the records were not gathered", direct, held)
	}
	var got []byte
	select {
	case got = <-read:
	case <-time.After(20 * time.Second):
		t.Fatal("the client did not read the payloads")
	}
	if len(got) != 2*size || !bytes.Equal(got[:size], payload) || !bytes.Equal(got[size:], payload) {
		t.Fatalf("the client read %d bytes, not the two payloads in order", len(got))
	}
}

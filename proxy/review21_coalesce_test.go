package proxy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The adversarial review of issue 19's HTTP/2 work (coalescingConn's
// deadlines and Close); roundTripH1's are in review21_test.go.

// ---------------------------------------------------------------------
// coalescingConn

// byteTimeoutWrite writes p as net/http's HTTP/2 server writes with
// WriteByteTimeout (http2writeWithByteTimeout): deadline, Write, no
// deadline.
func byteTimeoutWrite(c net.Conn, timeout time.Duration, p []byte) (int, error) {
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	n, err := c.Write(p)
	_ = c.SetWriteDeadline(time.Time{})
	return n, err
}

// TestReview21CoalesceByteTimeoutBoundsFlush: net/http's HTTP/2 server
// (zkgate sets WriteByteTimeout 60s) sets a write deadline around each
// Write and clears it when Write returns. coalescingConn's Write returns at
// once, so the flusher writes with no deadline at all: a peer that stops
// reading holds the connection, its goroutine and buffer forever, where
// without coalescing the write failed after the byte timeout.
func TestReview21CoalesceByteTimeoutBoundsFlush(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close() // ends a stuck flusher at the end
	c := newCoalescingConn(a)
	c.start()
	defer c.Close()
	if _, err := byteTimeoutWrite(c, 100*time.Millisecond, []byte("to a peer that stops reading")); err != nil {
		t.Fatal(err)
	}
	// A peer that reads nothing must not hold the flusher past the
	// Write's 100ms deadline.
	flusherStopped(t, c, 3*time.Second)
	if _, err := c.Write([]byte("again")); err == nil {
		t.Fatal("a Write after the byte timeout passed succeeded")
	}
}

// deadlineHookConn reports the write deadlines set on it.
type deadlineHookConn struct {
	net.Conn
	set chan time.Time
}

func (c *deadlineHookConn) SetWriteDeadline(d time.Time) error {
	err := c.Conn.SetWriteDeadline(d)
	select {
	case c.set <- d:
	default:
	}
	return err
}

func (c *deadlineHookConn) SetDeadline(d time.Time) error {
	err := c.Conn.SetDeadline(d)
	select {
	case c.set <- d:
	default:
	}
	return err
}

// TestReview21CoalesceCloseBoundedWithWriter: Close promises to return
// within coalesceCloseTimeout. While it waits for the flusher, Writes are
// still taken (err is set only once the flusher ended) and their write
// deadline replaces Close's: net/http's HTTP/2 writer goroutine
// (http2writeWithByteTimeout) sets one, writes, and clears it, and the
// flusher then waits with no deadline on a peer that reads nothing — Close
// never returns (h2c: nothing above the coalescingConn stops the Write;
// over TLS a Write already blocked at Close does the same).
func TestReview21CoalesceCloseBoundedWithWriter(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close() // ends the stuck flusher at the end
	hook := &deadlineHookConn{Conn: a, set: make(chan time.Time, 16)}
	c := newCoalescingConn(hook)
	c.start()
	if _, err := c.Write([]byte("waiting")); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select { // Close has set its deadline
	case <-hook.set:
	case <-time.After(3 * time.Second):
		t.Fatal("Close set no deadline")
	}
	_, _ = byteTimeoutWrite(c, 60*time.Second, []byte("a frame written while the connection closes"))
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not return within 3s (coalesceCloseTimeout is 1s)")
	}
}

// gateConn signals when a Write reaches it.
type gateConn struct {
	net.Conn
	writing chan struct{}
}

func (c *gateConn) Write(p []byte) (int, error) {
	select {
	case c.writing <- struct{}{}:
	default:
	}
	return c.Conn.Write(p)
}

// tlsHookConn sits between tls.Conn and the coalescingConn: it reports a
// write deadline at or before now (tls.Conn.closeNotify sets one right
// after queueing its alert).
type tlsHookConn struct {
	net.Conn
	past chan struct{}
	once sync.Once
}

func (c *tlsHookConn) SetWriteDeadline(d time.Time) error {
	err := c.Conn.SetWriteDeadline(d)
	if !d.IsZero() && !d.After(time.Now()) {
		c.once.Do(func() { close(c.past) })
	}
	return err
}

func r21Cert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "review21"},
		DNSNames:     []string{"review21"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// socketConn is a net.Pipe end that behaves as a socket does when its
// write deadline is moved into the past while a Write is in progress: that
// Write fails before SetWriteDeadline returns (on a real socket the poller
// wakes the writer, which usually runs before anything else moves the
// deadline again).
type socketConn struct {
	net.Conn
	writing  chan struct{} // a Write started
	active   atomic.Int32
	returned chan struct{}
}

func (c *socketConn) Write(p []byte) (int, error) {
	c.active.Add(1)
	select {
	case c.writing <- struct{}{}:
	default:
	}
	n, err := c.Conn.Write(p)
	c.active.Add(-1)
	select {
	case c.returned <- struct{}{}:
	default:
	}
	return n, err
}

func (c *socketConn) SetWriteDeadline(d time.Time) error {
	err := c.Conn.SetWriteDeadline(d)
	if !d.IsZero() && !d.After(time.Now()) && c.active.Load() > 0 {
		select {
		case <-c.returned:
		case <-time.After(2 * time.Second):
		}
	}
	return err
}

// prefixConn replays bytes read from its connection before reading more.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// TestReview21CoalesceTLSCloseDeliversWhatWaits: tls.Conn.Close queues its
// close_notify (Write returns at once) and then sets the write deadline to
// now ("any subsequent writes will fail"), before the coalescingConn's Close
// sets its 1s: a flusher write in progress — the peer reading slowly — fails
// at once, and the answer bytes waiting with it and the close_notify are
// lost; the peer sees the connection cut instead of the data and a clean
// end. Without coalescing the answer's Write would have completed first.
func TestReview21CoalesceTLSCloseDeliversWhatWaits(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	gate := &socketConn{Conn: a, writing: make(chan struct{}, 1), returned: make(chan struct{}, 1)}
	wc := newCoalescingConn(gate)
	hook := &tlsHookConn{Conn: wc, past: make(chan struct{})}
	srv := tls.Server(hook, &tls.Config{Certificates: []tls.Certificate{r21Cert(t)}, SessionTicketsDisabled: true}) // no post-handshake tickets on the pipe
	pc := &prefixConn{Conn: b}
	cli := tls.Client(pc, &tls.Config{InsecureSkipVerify: true, ServerName: "review21"})
	_ = a.SetDeadline(time.Now().Add(5 * time.Second))
	_ = b.SetDeadline(time.Now().Add(10 * time.Second))
	hs := make(chan error, 1)
	go func() { hs <- cli.Handshake() }()
	if err := srv.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-hs; err != nil {
		t.Fatal(err)
	}
	_ = a.SetDeadline(time.Time{})
	select { // forget the handshake's writes
	case <-gate.writing:
	default:
	}
	select {
	case <-gate.returned:
	default:
	}
	wc.start()

	want := []byte("the last answer on this connection")
	if _, err := srv.Write(want); err != nil {
		t.Fatal(err)
	}
	select { // the flusher writes it
	case <-gate.writing:
	case <-time.After(3 * time.Second):
		t.Fatal("the flusher did not write")
	}
	// The peer reads one byte, slowly: the flusher's write is in progress.
	one := make([]byte, 1)
	if _, err := io.ReadFull(b, one); err != nil {
		t.Fatal(err)
	}
	pc.pre = one
	closed := make(chan struct{}) // closed when srv.Close returned
	go func() { _ = srv.Close(); close(closed) }()
	select { // tls.Conn.Close has queued close_notify and set its past deadline
	case <-hook.past:
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("tls.Conn.Close set no deadline")
	}
	got, err := io.ReadAll(cli)
	if !bytes.Equal(got, want) || err != nil {
		t.Errorf("the client read %q, %v; want %q then close_notify (io.EOF)", got, err, want)
	}
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("tls.Conn.Close did not return")
	}
}

// TestReview21CoalesceHoldsTwoMaxTLSRecords: the buffer is meant to hold
// "two TLS records of the largest size" so that while one buffer is in the
// kernel the next gathers two records. A full TLS 1.3 record is
// 5 + 16384 + 1 + 16 = 16406 bytes (TLS 1.2 GCM: 16413): two are 32812,
// more than the 32768-byte buffer, so in a bulk transfer the second record
// waits for the flusher and every write carries one record (performance
// only).
func TestReview21CoalesceHoldsTwoMaxTLSRecords(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	gate := &gateConn{Conn: a, writing: make(chan struct{}, 1)}
	c := newCoalescingConn(gate)
	c.start()
	defer c.Close()
	record := make([]byte, 5+16384+1+16)
	if _, err := c.Write(record); err != nil {
		t.Fatal(err)
	}
	select { // the first record is being written; the peer reads nothing yet
	case <-gate.writing:
	case <-time.After(3 * time.Second):
		t.Fatal("the flusher did not write")
	}
	done := make(chan error, 1)
	go func() {
		for range 2 {
			if _, err := c.Write(record); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Error("two full-size TLS records do not fit in one coalescing buffer: the second waits for the flusher")
		go func() { _, _ = io.Copy(io.Discard, b) }() // let the writer end
		<-done
	}
}

package proxy

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// coalescingConn gathers the writes of a connection that net/http's HTTP/2
// server serves into as few write system calls as the socket takes.
//
// Go's HTTP/2 server writes and flushes the frames of each answer on their
// own: with 16 streams in flight on a connection that is a write per
// answer and then some (1.9 per request measured with h2load -m16), where
// nginx writes whatever every stream has ready in one go. Once on, Write
// appends to a buffer and returns; one flusher goroutine, running only
// while bytes wait, writes the whole buffer at a time, so what the server
// writes while a write is in the kernel goes out with the next one. The
// conn sits beneath TLS (tls.Server's transport), so it sees records.
//
// Before start, Write goes straight to the connection: the TLS handshake
// and a connection that chose HTTP/1.1 (the fast path, which writes an
// answer at a time) are untouched.
//
// Back-pressure and deadlines keep their meaning: Write blocks while its
// bytes would not fit beside those waiting (32 KiB), a deadline set on the conn bounds the flusher's
// write (and so a Write blocked behind it), and a failed write fails every
// later Write and closes the connection. Close writes what waits first,
// within coalesceCloseTimeout.
type coalescingConn struct {
	net.Conn
	on atomic.Bool

	mu       sync.Mutex
	drained  sync.Cond // signalled when the flusher took or wrote bytes, or stopped
	buf      *[]byte   // waiting to be written (nil: none, no buffer held)
	flushing bool      // a flusher goroutine runs
	err      error     // the flusher's write failed, or the conn closed
}

// coalesceClass is the input-buffer size class (clientbuf.go) of the
// buffer writes gather in: 32 KiB, two TLS records of the largest size.
// While one buffer is being written the next fills, so at most two are
// held, and none while nothing waits.
const coalesceClass = 3

// coalesceCloseTimeout bounds the write of what waits at Close.
const coalesceCloseTimeout = time.Second

func newCoalescingConn(nc net.Conn) *coalescingConn {
	c := &coalescingConn{Conn: nc}
	c.drained.L = &c.mu
	return c
}

// start makes later Writes coalesce. It is called before the connection is
// handed to another goroutine.
func (c *coalescingConn) start() { c.on.Store(true) }

func (c *coalescingConn) Write(p []byte) (int, error) {
	if !c.on.Load() {
		return c.Conn.Write(p)
	}
	c.mu.Lock()
	// Wait while p would not fit beside what waits (p alone always fits:
	// an empty buffer grows for it).
	for c.err == nil && c.buf != nil && len(*c.buf) > 0 && len(*c.buf)+len(p) > cap(*c.buf) {
		c.drained.Wait()
	}
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	if c.buf == nil {
		c.buf = getInBuf(coalesceClass)
		*c.buf = (*c.buf)[:0]
	}
	*c.buf = append(*c.buf, p...)
	if !c.flushing {
		c.flushing = true
		go c.flush()
	}
	c.mu.Unlock()
	return len(p), nil
}

// flush writes what waits until nothing does, then ends.
func (c *coalescingConn) flush() {
	c.mu.Lock()
	for c.buf != nil && len(*c.buf) > 0 && c.err == nil {
		b := c.buf
		c.buf = nil
		c.drained.Broadcast() // room for the Writes waiting
		c.mu.Unlock()
		_, err := c.Conn.Write(*b)
		putInBuf(b)
		c.mu.Lock()
		if err != nil && c.err == nil {
			c.err = err
			_ = c.Conn.Close() // the connection is broken; its reader must see it
		}
	}
	if c.buf != nil {
		putInBuf(c.buf) // empty, or not to be written: hold none while idle
		c.buf = nil
	}
	c.flushing = false
	c.drained.Broadcast()
	c.mu.Unlock()
}

// Close writes what waits (within coalesceCloseTimeout), then closes the
// connection.
func (c *coalescingConn) Close() error {
	if !c.on.Load() {
		return c.Conn.Close()
	}
	c.mu.Lock()
	if c.flushing {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(coalesceCloseTimeout))
		for c.flushing {
			c.drained.Wait()
		}
	}
	failed := c.err
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.drained.Broadcast()
	c.mu.Unlock()
	if failed != nil {
		return nil // closed when the write failed
	}
	return c.Conn.Close()
}

// CloseWrite writes what waits, then half-closes the connection (net/http
// does before closing a connection it answered with an error).
func (c *coalescingConn) CloseWrite() error {
	c.mu.Lock()
	for c.flushing {
		c.drained.Wait()
	}
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

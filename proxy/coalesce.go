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
// bytes would not fit beside those waiting (64 KiB). Once on, a write
// deadline set on the conn does not touch the socket, whose writes are the
// flusher's: it bounds the bytes of the Writes made under it (net/http's
// HTTP/2 server sets one around each Write, WriteByteTimeout, and clears it
// when Write returns), and the flusher writes a buffer within the earliest
// deadline of what it holds. A failed write fails every later Write and
// closes the connection. Close refuses later Writes and gives what waits
// until coalesceCloseTimeout (or an earlier deadline of its own) to go
// out; tls.Conn's close_notify, written just before, goes with it.
//
// zkgate's own HTTP/2 server gathers its frames itself and needs no
// flusher: it uses the conn in gather mode instead (gather). Its one write
// of frames becomes several TLS records (small ones on a young connection:
// crypto/tls sizes records to about one segment for the first 128 KiB), and
// while the server holds the conn (hold, release) the records wait in the
// buffer and go out together in the server's goroutine, without a
// goroutine handoff.
type coalescingConn struct {
	net.Conn
	on      atomic.Bool
	gathers atomic.Bool // gather mode
	holding bool        // gather mode: Writes wait in buf until release

	mu       sync.Mutex
	drained  sync.Cond // signalled when the flusher took or wrote bytes, or stopped
	buf      *[]byte   // waiting to be written (nil: none, no buffer held)
	bufDL    time.Time // the earliest write deadline of the bytes in buf (zero: none)
	wdl      time.Time // the write deadline set on the conn, for the next Writes
	flushing bool      // a flusher goroutine runs
	closing  bool      // Close began: Writes are refused
	closeDL  time.Time // what waits must be written by then once closing
	err      error     // the flusher's write failed, or the conn closed
}

// coalesceClass is the input-buffer size class (clientbuf.go) of the
// buffer writes gather in: 64 KiB, three TLS records of the largest size
// (16,406 bytes in TLS 1.3, 16,413 in TLS 1.2 with GCM). While one buffer
// is being written the next fills, so at most two are held, and none
// while nothing waits.
const coalesceClass = 4

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

// earliest returns the earlier of two deadlines, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func (c *coalescingConn) SetWriteDeadline(t time.Time) error {
	if !c.on.Load() {
		return c.Conn.SetWriteDeadline(t)
	}
	c.mu.Lock()
	c.wdl = t
	c.mu.Unlock()
	return nil
}

func (c *coalescingConn) SetDeadline(t time.Time) error {
	if !c.on.Load() {
		return c.Conn.SetDeadline(t)
	}
	_ = c.SetWriteDeadline(t)
	return c.Conn.SetReadDeadline(t)
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	if !c.on.Load() {
		if c.gathers.Load() {
			return c.gather(p)
		}
		return c.Conn.Write(p)
	}
	c.mu.Lock()
	// Wait while p would not fit beside what waits (p alone always fits:
	// an empty buffer grows for it).
	for c.err == nil && !c.closing && c.buf != nil && len(*c.buf) > 0 && len(*c.buf)+len(p) > cap(*c.buf) {
		c.drained.Wait()
	}
	if c.closing || c.err != nil {
		err := c.err
		if err == nil {
			err = net.ErrClosed
		}
		c.mu.Unlock()
		return 0, err
	}
	if c.buf == nil {
		c.buf = getInBuf(coalesceClass)
		*c.buf = (*c.buf)[:0]
		c.bufDL = c.wdl
	} else {
		c.bufDL = earliest(c.bufDL, c.wdl)
	}
	*c.buf = append(*c.buf, p...)
	if !c.flushing {
		c.flushing = true
		go c.flush()
	}
	c.mu.Unlock()
	return len(p), nil
}

// startGather puts the conn in gather mode. It is called before the
// connection is handed to another goroutine, and excludes start.
func (c *coalescingConn) startGather() { c.gathers.Store(true) }

// gather is Write in gather mode: p waits in the buffer while the conn is
// held, and goes straight out otherwise. Bytes that would not fit beside
// those waiting (64 KiB) push them out first, so a hold keeps at most one
// buffer; a p larger than a buffer goes out on its own.
func (c *coalescingConn) gather(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if !c.holding {
		return c.Conn.Write(p)
	}
	if c.buf == nil {
		c.buf = getInBuf(coalesceClass)
		*c.buf = (*c.buf)[:0]
	}
	if len(*c.buf)+len(p) > cap(*c.buf) {
		if err := c.writeHeldLocked(); err != nil {
			return 0, err
		}
		if len(p) > cap(*c.buf) {
			n, err := c.Conn.Write(p)
			if err != nil {
				c.err = err
			}
			return n, err
		}
	}
	*c.buf = append(*c.buf, p...)
	return len(p), nil
}

// writeHeldLocked writes the bytes waiting in gather mode; a failed write
// fails every later one.
func (c *coalescingConn) writeHeldLocked() error {
	if c.buf == nil || len(*c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(*c.buf)
	*c.buf = (*c.buf)[:0]
	if err != nil {
		c.err = err
	}
	return err
}

// hold makes gather-mode Writes wait until release.
func (c *coalescingConn) hold() {
	c.mu.Lock()
	c.holding = true
	c.mu.Unlock()
}

// release writes what waited since hold in one write, gives the buffer
// back, and reports the first write error since hold.
func (c *coalescingConn) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holding = false
	err := c.writeHeldLocked()
	if c.buf != nil {
		putInBuf(c.buf)
		c.buf = nil
	}
	if err == nil {
		err = c.err
	}
	return err
}

// flush writes what waits until nothing does, then ends. The socket's
// write deadline is set under the lock, so that Close's cannot be undone.
func (c *coalescingConn) flush() {
	c.mu.Lock()
	for c.buf != nil && len(*c.buf) > 0 && c.err == nil {
		b, dl := c.buf, c.bufDL
		c.buf, c.bufDL = nil, time.Time{}
		if c.closing {
			dl = earliest(dl, c.closeDL)
		}
		_ = c.Conn.SetWriteDeadline(dl)
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

// Close refuses later Writes, writes what waits (by coalesceCloseTimeout),
// then closes the connection.
func (c *coalescingConn) Close() error {
	if !c.on.Load() {
		return c.Conn.Close()
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.closing = true
	c.closeDL = time.Now().Add(coalesceCloseTimeout)
	if c.flushing {
		// The write in progress may have a later deadline, or none.
		_ = c.Conn.SetWriteDeadline(c.closeDL)
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

//go:build unix

package proxy

import (
	"io"
	"syscall"
)

// peerClosed reports whether the endpoint has closed the idle connection
// c (or sent bytes nobody asked for): one non-blocking MSG_PEEK receive,
// which consumes nothing. The fast path asks before it reuses a pooled
// connection (hostPool.reusable), since its pool has no reader watching
// idle connections as net/http's transport has.
func (c *upConn) peerClosed() bool {
	if c.raw == nil {
		return false
	}
	c.peekN, c.peekErr = 0, nil
	// Control, not Read: Read fails on a read deadline left from the last
	// exchange, which would throw a healthy connection away.
	if err := c.raw.Control(c.peekFn); err != nil {
		return true
	}
	if c.peekErr == syscall.EAGAIN || c.peekErr == syscall.EWOULDBLOCK {
		return false // alive and quiet
	}
	return true // EOF (0 bytes), an error, or unexpected bytes
}

// nowReader reads what a socket has received already, without waiting:
// the upstream connection's relay (upConn.readNow) and each side of a
// tunnel (tunnel.go) read through one.
type nowReader struct {
	raw syscall.RawConn
	buf []byte
	n   int
	err error
	fn  func(uintptr) bool // r.recv, bound once
}

func (r *nowReader) init(raw syscall.RawConn) { r.raw, r.fn = raw, r.recv }

// readNow reads into p what has arrived: errWouldBlock when nothing is
// there, io.EOF at the end of stream.
func (r *nowReader) readNow(p []byte) (int, error) {
	if r.raw == nil {
		return 0, errWouldBlock
	}
	r.buf = p
	err := r.raw.Read(r.fn)
	r.buf = nil
	if err != nil {
		return 0, err
	}
	switch n, err := r.n, r.err; {
	case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR:
		return 0, errWouldBlock
	case err != nil:
		return 0, err
	case n == 0:
		return 0, io.EOF
	default:
		return n, nil
	}
}

// recv is r.fn: one non-blocking receive.
func (r *nowReader) recv(fd uintptr) bool {
	r.n, _, r.err = syscall.Recvfrom(int(fd), r.buf, syscall.MSG_DONTWAIT)
	return true
}

// recv is cc.recvFn, the hot wait's RawConn.Read function: one
// non-blocking read into a buffer taken from the pool for it, given back
// when nothing came (the runtime then waits for readability). What came —
// the start of the next request, or the end of stream — is left in cc.got
// for the next fconn's input buffer: the wait costs the reads a blocking
// read costs, and holds no buffer.
func (cc *cconn) recv(fd uintptr) bool {
	bp := getInBuf(0)
	n, _, err := syscall.Recvfrom(int(fd), *bp, syscall.MSG_DONTWAIT)
	if err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR {
		putInBuf(bp)
		return false
	}
	if n <= 0 { // the end of stream, or an error: nothing to serve
		putInBuf(bp)
		return true
	}
	cc.got, cc.gotN = bp, n
	return true
}

// peek is c.peekFn: the raw receive for peerClosed, run by RawConn.Control
// (MSG_DONTWAIT: it never waits).
func (c *upConn) peek(fd uintptr) {
	c.peekN, _, c.peekErr = syscall.Recvfrom(int(fd), c.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
}

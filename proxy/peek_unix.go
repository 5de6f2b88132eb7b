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

// readNow reads what the endpoint has sent already into p, without
// waiting: errWouldBlock when nothing is there.
func (c *upConn) readNow(p []byte) (int, error) {
	if c.raw == nil {
		return 0, errWouldBlock
	}
	c.nowBuf = p
	if err := c.raw.Read(c.readNowFn); err != nil {
		c.nowBuf = nil
		return 0, err
	}
	c.nowBuf = nil
	n, err := c.peekN, c.peekErr
	switch {
	case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
		return 0, errWouldBlock
	case err != nil:
		return 0, err
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// recvNow is c.readNowFn: the raw receive for readNow.
func (c *upConn) recvNow(fd uintptr) bool {
	c.peekN, _, c.peekErr = syscall.Recvfrom(int(fd), c.nowBuf, syscall.MSG_DONTWAIT)
	return true
}

// peek is c.peekFn: the raw receive for peerClosed, run by RawConn.Control
// (MSG_DONTWAIT: it never waits).
func (c *upConn) peek(fd uintptr) {
	c.peekN, _, c.peekErr = syscall.Recvfrom(int(fd), c.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
}

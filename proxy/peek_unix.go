//go:build unix

package proxy

import (
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

// recv is the hot wait's RawConn.Read function (through a hotWaiter): one
// non-blocking read into a buffer taken from the pool for it, given back
// when nothing came (the runtime then waits for readability). What came —
// the start of the next request, or the end of stream — is left in cc.got
// for the next fconn's input buffer: the wait costs the reads a blocking
// read costs, and holds no buffer.
func (cc *cconn) recv(fd uintptr) bool {
	bp := getInBuf(0)
	n, err := recvRaw(fd, *bp, recvFlags)
	if err == syscall.EAGAIN {
		putInBuf(bp)
		return false
	}
	if n <= 0 { // the end of stream, or an error: nothing to serve
		putInBuf(bp)
		return true
	}
	cc.got, cc.gotN = bp, int32(n)
	return true
}

// peek is c.peekFn: the raw receive for peerClosed, run by RawConn.Control
// (MSG_DONTWAIT: it never waits).
func (c *upConn) peek(fd uintptr) {
	var e syscall.Errno
	c.peekN, e = recvRaw(fd, c.peekBuf[:], syscall.MSG_PEEK|recvFlags)
	c.peekErr = nil
	if e != 0 {
		c.peekErr = e
	}
}

// peekFd is a client watch's peekFn: one byte received with MSG_PEEK,
// without waiting.
func (w *clientWatch) peekFd(fd uintptr) {
	var b [1]byte
	w.peekN, w.peekE = recvRaw(fd, b[:], syscall.MSG_PEEK|recvFlags)
}

//go:build !unix

package proxy

// peerClosed cannot look without blocking here: it reports false, and a
// dead pooled connection shows when it is used.
func (c *upConn) peerClosed() bool { return false }

func (c *upConn) peek(uintptr) {}

// readNow cannot read without waiting here: the caller then waits.
func (c *upConn) readNow([]byte) (int, error) { return 0, errWouldBlock }

func (c *upConn) recvNow(uintptr) bool { return true }

//go:build !unix

package proxy

// peerClosed cannot look without blocking here: it reports false, and a
// dead pooled connection shows when it is used.
func (c *upConn) peerClosed() bool { return false }

func (c *upConn) peek(uintptr) {}

// recv reports nothing read: the poller that waits with it is Linux's.
func (cc *cconn) recv(uintptr) bool { return true }

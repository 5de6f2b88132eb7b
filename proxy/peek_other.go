//go:build !unix

package proxy

// peerClosed cannot look without blocking here: it reports false, and a
// dead pooled connection shows when it is used.
func (c *upConn) peerClosed() bool { return false }

func (c *upConn) peek(uintptr) bool { return true }

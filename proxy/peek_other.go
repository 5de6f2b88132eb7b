//go:build !unix

package proxy

import "syscall"

// peerClosed cannot look without blocking here: it reports false, and a
// dead pooled connection shows when it is used.
func (c *upConn) peerClosed() bool { return false }

func (c *upConn) peek(uintptr) {}

// recv reports nothing read: the poller that waits with it is Linux's.
func (cc *cconn) recv(uintptr) bool { return true }

// peekFd cannot look without blocking here: the client is taken as there.
// No request is served inside a wait here (waitserve.go), which only
// peeking watches need.
func (w *clientWatch) peekFd(uintptr) { w.peekE = syscall.EAGAIN }

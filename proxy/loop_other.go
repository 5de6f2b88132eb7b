//go:build !linux

package proxy

import "net"

// Loops are Linux's (loop_linux.go); elsewhere a Server has none.

type loops struct{}

type loop struct{}

type lconn struct{}

func newLoops(*Server, int) *loops { return nil }

func (*loops) wake() {}

func (*loop) putIdle(*upConn) {}

func (*cconn) takeLoop() (moved, gone bool) { return false, false }

func loopConn(nc net.Conn) net.Conn { return nc }

func plainTCP(nc net.Conn) bool {
	_, ok := nc.(*net.TCPConn)
	return ok
}

func closeConn(nc net.Conn) { _ = nc.Close() }

func (*cconn) loopable(bool) bool { return false }

// LoopStats is zero: no loops here.
func (s *Server) LoopStats() LoopStats { return LoopStats{} }

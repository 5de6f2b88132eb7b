//go:build unix

package zktest

import (
	"net"
	"strconv"
	"syscall"
	"testing"
)

// RefusedAddr returns a loopback address that refuses connections for as
// long as t runs. A TCP socket bound to it, not listening and without
// SO_REUSEADDR, holds the port: no listener of a test running beside t can
// take it (a closed listener's port could be handed out again at once), and
// the kernel gives no outgoing connection that port as its own, which, for
// a connection to a port of the same host, would connect the socket to
// itself and "succeed".
func RefusedAddr(t testing.TB) string {
	t.Helper()
	// Under ForkLock, as the standard library makes its sockets: a
	// process started between the socket and CloseOnExec (a ZooKeeper or
	// gateway of a test running beside t) would inherit it and hold the
	// port past t.
	syscall.ForkLock.RLock()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		t.Fatalf("zktest: refused address: socket: %v", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		_ = syscall.Close(fd)
		t.Fatalf("zktest: refused address: bind: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		_ = syscall.Close(fd)
		t.Fatalf("zktest: refused address: getsockname: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}

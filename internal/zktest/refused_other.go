//go:build !unix

package zktest

import (
	"net"
	"testing"
)

// RefusedAddr returns a loopback address that refuses connections: the
// address of a listener closed at once. Unlike the Unix version it does not
// hold the port, which another listener may take.
func RefusedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("zktest: refused address: %v", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

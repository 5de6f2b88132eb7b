package zktest

import (
	"errors"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestRefusedAddr: a connection to the address is refused, again and again,
// and no listener can take its port while the test runs.
func TestRefusedAddr(t *testing.T) {
	addr := RefusedAddr(t)
	for range 50 {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			_ = c.Close()
			t.Fatalf("a connection to %s was accepted", addr)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial %s: %v, want connection refused", addr, err)
		}
	}
	if runtime.GOOS == "windows" {
		return
	}
	if l, err := net.Listen("tcp", addr); err == nil {
		_ = l.Close()
		t.Fatalf("a listener took %s, the refused address's port", addr)
	}
}

//go:build linux

package proxy

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// testOwner is a pollOwner that reports its wake-ups.
type testOwner struct{ woke chan struct{} }

func (o *testOwner) woken()     { o.woke <- struct{}{} }
func (o *testOwner) gone() bool { return false }
func (o *testOwner) expire()    {}

// rawReg returns a registration of nc with its descriptor's number, as a
// first park fetches it.
func rawReg(t *testing.T, nc net.Conn, owner pollOwner) *pollReg {
	t.Helper()
	raw, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	r := &pollReg{raw: raw, fd: -1, owner: owner}
	a := getArmer()
	defer putArmer(a)
	if !a.fetchFd(r) {
		t.Fatal("fetchFd failed on an open socket")
	}
	return r
}

// TestReview18StaleParkLosesReusedSlot: poller.park writes the slot of the
// descriptor's number before Control checks the socket is still open, and
// on failure clears that slot. A park that comes late for a socket closed
// meanwhile — a tunnel side's pump parking it again just as the other side
// closed the tunnel (tunnel.go pump: closed is checked, then park), or a
// Server's park racing its Close while another Server sharing the pollers
// accepts — whose number was reused by a socket parked since, overwrites
// and then clears the new socket's slot: the new socket stays armed in the
// epoll set but its event finds no slot and is dropped, so it is never
// woken (nor ever expired by the sweep, which finds no slot either).
func TestReview18StaleParkLosesReusedSlot(t *testing.T) {
	if !pollersReady() {
		t.Fatal("no poller on Linux")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dial := func() (client, server net.Conn) {
		t.Helper()
		c, err := net.DialTimeout("tcp", ln.Addr().String(), diffDeadline)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); s.Close() })
		return c, s
	}
	// The old socket: its number known, as a parked socket's is; then
	// closed. The new one is made until it reuses the number (the lowest
	// free one: at once, unless something else opened a descriptor).
	var stale, fresh *pollReg
	var freshPeer net.Conn
	owner := &testOwner{woke: make(chan struct{}, 1)}
	for range 20 {
		oldConn, oldPeer := dial()
		stale = rawReg(t, oldConn, &testOwner{woke: make(chan struct{}, 1)})
		oldConn.Close()
		oldPeer.Close()
		c, peer := dial()
		fresh = rawReg(t, c, owner)
		if fresh.fd == stale.fd {
			freshPeer = peer
			break
		}
	}
	if freshPeer == nil {
		t.Fatal("no descriptor number was reused in 20 tries")
	}
	a := getArmer()
	defer putArmer(a)
	if !pollerFor(fresh).park(fresh, 0, a) {
		t.Fatal("parking the open socket failed")
	}
	// The late park of the closed socket fails, as it should...
	if pollerFor(stale).park(stale, 0, a) {
		t.Fatal("parking a closed socket succeeded")
	}
	// ...and must leave the socket now holding the number parked.
	if _, err := freshPeer.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-owner.woke:
	case <-time.After(2 * time.Second):
		t.Fatal("the parked socket became readable but was never woken: a failed park of a closed socket with the same number dropped its slot")
	}
}

package benchkit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zkgate/zkgate/discovery"
	"github.com/zkgate/zkgate/internal/zktest"
)

func TestWaitFor(t *testing.T) {
	ctx := context.Background()
	n := 0
	if err := WaitFor(ctx, 5*time.Second, "three calls", func() (bool, error) { n++; return n == 3, nil }); err != nil || n != 3 {
		t.Errorf("WaitFor = %v after %d calls, want nil after 3", err, n)
	}
	boom := errors.New("boom")
	err := WaitFor(ctx, 5*time.Second, "a failing thing", func() (bool, error) { return false, boom })
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "a failing thing") {
		t.Errorf("WaitFor with a failing condition = %v, want boom, naming the condition", err)
	}
	err = WaitFor(ctx, 50*time.Millisecond, "never", func() (bool, error) { return false, nil })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 50ms waiting for never") {
		t.Errorf("WaitFor timing out = %v, want a deadline error naming the condition", err)
	}
}

func TestPortFree(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if PortFree(port) {
		t.Errorf("PortFree(%d) = true while listening on it", port)
	}
	if err := checkPorts(port - offBackends); err == nil || !strings.Contains(err.Error(), fmt.Sprint(port)) {
		t.Errorf("checkPorts with %d busy = %v, want an error naming it", port, err)
	}
	_ = ln.Close()
	if !PortFree(port) {
		t.Errorf("PortFree(%d) = false after closing the listener", port)
	}
}

// TestWithZooKeeper starts a real ZooKeeper with StartZooKeeper and checks
// what uses it: backends registering, and propagation instances.
func TestWithZooKeeper(t *testing.T) {
	zktest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var procs Procs
	port := zktest.FreePort(t)
	zkProc, err := StartZooKeeper(ctx, &procs, t.TempDir(), port)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := procs.StopAll(10 * time.Second); err != nil {
			t.Error(err)
		}
		if zkProc.Alive() {
			t.Error("ZooKeeper alive after StopAll")
		}
	}()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conn := zktest.Connect(t, addr)

	t.Run("a busy port is not mistaken for a started server", func(t *testing.T) {
		var other Procs
		defer other.StopAll(5 * time.Second)
		_, err := StartZooKeeper(ctx, &other, t.TempDir(), port)
		if err == nil || !strings.Contains(err.Error(), "already in use") {
			t.Fatalf("second ZooKeeper on port %d: %v, want the port reported in use", port, err)
		}
	})

	t.Run("backend registers under every path and deregisters", func(t *testing.T) {
		bctx, bcancel := context.WithCancel(ctx)
		ready := make(chan string, 1)
		done := make(chan error, 1)
		go func() {
			done <- RunBackend(bctx, BackendOptions{Listen: "127.0.0.1:0", ID: "b1", ZooKeeper: []string{addr},
				Paths: []string{"/services/one", "/services/both"}, Ready: func(a string) { ready <- a }}, quietLog())
		}()
		var baddr string
		select {
		case baddr = <-ready:
		case err := <-done:
			t.Fatalf("RunBackend: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("backend not registered within 30s")
		}
		for _, p := range []string{"/services/one", "/services/both"} {
			kids, _, err := conn.Children(p)
			if err != nil || !slices.Equal(kids, []string{baddr}) {
				t.Errorf("children of %s = %v (%v), want [%s]", p, kids, err, baddr)
			}
		}
		bcancel()
		if err := <-done; err != nil {
			t.Fatalf("RunBackend after cancel: %v", err)
		}
		for _, p := range []string{"/services/one", "/services/both"} {
			if kids, _, err := conn.Children(p); err != nil || len(kids) != 0 {
				t.Errorf("children of %s after stop = %v (%v), want none", p, kids, err)
			}
		}
	})

	t.Run("instances register, deregister and close", func(t *testing.T) {
		client, err := discovery.Dial(ctx, discovery.ClientConfig{Servers: []string{addr}}, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		inst, err := ZkInstances{Client: client, Path: "/services/prop", Prefix: "p-", Log: quietLog()}.Spawn(4)
		if err != nil {
			t.Fatal(err)
		}
		if inst.ID() != "p-4" {
			t.Errorf("ID = %q, want p-4", inst.ID())
		}
		if err := inst.Register(ctx); err != nil {
			t.Fatal(err)
		}
		kids, _, err := conn.Children("/services/prop")
		if err != nil || len(kids) != 1 || !strings.HasPrefix(kids[0], "127.0.0.1:") {
			t.Fatalf("children after Register = %v (%v), want one 127.0.0.1:port", kids, err)
		}
		if err := inst.Deregister(ctx); err != nil {
			t.Fatal(err)
		}
		if kids, _, err := conn.Children("/services/prop"); err != nil || len(kids) != 0 {
			t.Errorf("children after Deregister = %v (%v), want none", kids, err)
		}
		// Close of a registered instance deregisters it.
		again, err := ZkInstances{Client: client, Path: "/services/prop", Prefix: "p-", Log: quietLog()}.Spawn(5)
		if err != nil {
			t.Fatal(err)
		}
		if err := again.Register(ctx); err != nil {
			t.Fatal(err)
		}
		if err := again.Close(); err != nil {
			t.Fatal(err)
		}
		if kids, _, err := conn.Children("/services/prop"); err != nil || len(kids) != 0 {
			t.Errorf("children after Close = %v (%v), want none", kids, err)
		}
		if err := inst.Close(); err != nil {
			t.Errorf("Close of a deregistered instance = %v", err)
		}
	})
}

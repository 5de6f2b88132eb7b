package discovery

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/zkgate/zkgate/internal/zktest"
)

// Tests of the Registrar's watch on its own node: what another client does
// to the node while the Registrar's session lives. The cases are listed in
// registrarCases.

const (
	deletedLine = "registration deleted by another client; re-registered"
	changedLine = "registration data changed by another client; restored"
)

// awaitNode waits, watching path from conn, until the node exists and ok
// accepts its data and stat, and returns them.
func awaitNode(t testing.TB, conn *zk.Conn, path, desc string, ok func([]byte, *zk.Stat) bool) ([]byte, *zk.Stat) {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	var last string
	for {
		data, st, ch, err := conn.GetW(path)
		switch {
		case err == nil && ok(data, st):
			return data, st
		case err == nil:
			last = fmt.Sprintf("data %q owner 0x%x", data, st.EphemeralOwner)
		case errors.Is(err, zk.ErrNoNode):
			// GetW sets no watch on a missing node; ExistsW does.
			var found bool
			if found, _, ch, err = conn.ExistsW(path); err != nil {
				t.Fatalf("exists %s: %v", path, err)
			}
			last = "no node"
			if found {
				continue
			}
		default:
			t.Fatalf("get %s: %v", path, err)
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%s: not within %v; last seen: %s", desc, wait, last)
		}
	}
}

// ownedBy accepts the node when the session of c owns it and it holds data.
func ownedBy(c *Client, data []byte) func([]byte, *zk.Stat) bool {
	return func(got []byte, st *zk.Stat) bool {
		return st.EphemeralOwner == c.Status().SessionID && string(got) == string(data)
	}
}

func testRegistrarRestoresDeleted(t *testing.T, srv *zktest.Server) {
	for _, format := range []Format{FormatPlain, FormatCurator} {
		t.Run(string(format), func(t *testing.T) {
			raw := zktest.Connect(t, srv.Addr()) // the other client
			c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
			reg, sink := registerLogged(t, c, RegistrarConfig{Path: testPath(t), Addr: "127.0.0.1:8111", Weight: 4, Format: format})
			want, _, err := raw.Get(reg.Node())
			if err != nil {
				t.Fatal(err)
			}
			// Each deletion finds the watch set again.
			for i := 1; i <= 3; i++ {
				remove(t, raw, reg.Node())
				awaitNode(t, raw, reg.Node(), fmt.Sprintf("deletion %d: the node back with its data", i), ownedBy(c, want))
				waitFor(t, fmt.Sprintf("deletion %d: Registered and logged", i), func() bool {
					return reg.Registered() && sink.count(deletedLine) == i
				})
				if got := reg.Recreations(); got != uint64(i) {
					t.Errorf("deletion %d: Recreations() = %d", i, got)
				}
			}
			if n := sink.count(reg.Node()); n != 3 {
				t.Errorf("%d warnings name the znode %s, want 3", n, reg.Node())
			}
		})
	}
}

func testRegistrarRestoresData(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	reg, sink := registerLogged(t, c, RegistrarConfig{Path: testPath(t), Addr: "127.0.0.1:8112", Weight: 2})
	if _, err := raw.Set(reg.Node(), []byte("127.0.0.1:8112,900"), -1); err != nil {
		t.Fatal(err)
	}
	awaitNode(t, raw, reg.Node(), "the data written back", ownedBy(c, []byte("127.0.0.1:8112,2")))
	waitFor(t, "the restore logged", func() bool { return sink.count(changedLine) == 1 })
	if reg.Recreations() != 0 || !reg.Registered() {
		t.Errorf("Recreations() = %d, Registered() = %v; want 0, true", reg.Recreations(), reg.Registered())
	}
}

func testRegistrarRestoresAfterExpiry(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	proxy := zktest.NewProxy(t, srv.Addr())
	c := dial(t, ClientConfig{Servers: []string{proxy.Addr()}, SessionTimeout: 4 * time.Second})
	reg, sink := registerLogged(t, c, RegistrarConfig{Path: testPath(t), Addr: "127.0.0.1:8113"})
	old := c.Status().SessionID
	if n := proxy.ExpireSessions(t); n != 1 {
		t.Fatalf("expired %d sessions, want 1", n)
	}
	data := []byte("127.0.0.1:8113,1")
	_, st := awaitNode(t, raw, reg.Node(), "the node back in a new session", func(got []byte, st *zk.Stat) bool {
		return st.EphemeralOwner != old && ownedBy(c, data)(got, st)
	})
	waitFor(t, "Registered in the new session", reg.Registered)
	if sink.count(deletedLine) != 0 {
		t.Error("the re-registration after a session expiry was logged as a deletion by another client")
	}

	// The new session's watch restores the node too.
	remove(t, raw, reg.Node())
	awaitNode(t, raw, reg.Node(), "the node back after its deletion", ownedBy(c, data))
	waitFor(t, "the deletion logged", func() bool { return sink.count(deletedLine) == 1 })
	if c.Status().SessionID != st.EphemeralOwner || reg.Recreations() != 2 {
		t.Errorf("session 0x%x (was 0x%x), Recreations() = %d; want the same session, 2", c.Status().SessionID, st.EphemeralOwner, reg.Recreations())
	}
}

func testRegistrarDeregisterNotUndone(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	p := testPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// Another client's deletion races the deregistration: whichever comes
	// first, the node stays deleted.
	for i := range 10 {
		reg, _ := registerLogged(t, c, RegistrarConfig{Path: p, Addr: fmt.Sprintf("127.0.0.1:%d", 8120+i)})
		deleted := make(chan error, 1)
		go func() { deleted <- raw.Delete(reg.Node(), -1) }()
		if err := reg.Deregister(ctx); err != nil {
			t.Fatalf("Deregister: %v", err)
		}
		if err := <-deleted; err != nil && !errors.Is(err, zk.ErrNoNode) {
			t.Fatalf("delete: %v", err)
		}
		if ok, _, err := raw.Exists(reg.Node()); err != nil || ok {
			t.Fatalf("after Deregister: exists %v, %v; want the node gone", ok, err)
		}
		if reg.Registered() {
			t.Error("Registered() after Deregister")
		}
		// Nothing is left to act on a later event: no goroutine, no
		// subscription.
		c.subMu.RLock()
		_, watched := c.byPath[reg.Node()][reg]
		_, subscribed := c.all[reg]
		c.subMu.RUnlock()
		if reg.done != nil || watched || subscribed {
			t.Fatalf("after Deregister: keep running %v, watched %v, subscribed %v", reg.done != nil, watched, subscribed)
		}
	}

	// A deregistered node that another client creates and deletes is left
	// alone. The conf shares the Registrar's client, so once it has seen
	// the deletion the client has routed that event.
	reg, _ := registerLogged(t, c, RegistrarConfig{Path: p, Addr: "127.0.0.1:8130"})
	if err := reg.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	_, rec, _ := watch(t, c, p, ZkConfOptions{})
	rec.awaitAddrs(t)
	create(t, raw, reg.Node(), "127.0.0.1:8130,1", zk.FlagEphemeral)
	rec.awaitAddrs(t, "127.0.0.1:8130")
	remove(t, raw, reg.Node())
	rec.awaitAddrs(t)
	if ok, _, err := raw.Exists(reg.Node()); err != nil || ok || reg.Recreations() != 0 {
		t.Errorf("exists %v, %v, Recreations() = %d; want the node gone and never created again", ok, err, reg.Recreations())
	}
}

func testRegistrarLeavesOthersNode(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	c1 := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	first, sink := registerLogged(t, c1, RegistrarConfig{Path: p, Addr: "127.0.0.1:8131"})
	// A second process registers the same node (a restart at the same
	// address while the first still runs): it replaces the node, and the
	// first leaves it to it instead of fighting over it.
	c2 := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	second, _ := registerLogged(t, c2, RegistrarConfig{Path: p, Addr: "127.0.0.1:8131", Weight: 2})
	waitFor(t, "the first Registrar to yield", func() bool {
		return !first.Registered() && sink.count("registration replaced by another session") > 0
	})
	data, st, err := raw.Get(second.Node())
	if err != nil || st.EphemeralOwner != c2.Status().SessionID || string(data) != "127.0.0.1:8131,2" {
		t.Fatalf("node %q owner 0x%x, %v; want the second's (0x%x)", data, st.EphemeralOwner, err, c2.Status().SessionID)
	}
	// When the second deregisters, the first takes the node back.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := second.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	awaitNode(t, raw, first.Node(), "the first's node back", ownedBy(c1, []byte("127.0.0.1:8131,1")))
	waitFor(t, "the first Registered", first.Registered)
}

package discovery

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/internal/zktest"
)

// TestSeedUntilFirstRead starts confs while their ZooKeeper server is down
// and seeds them from a snapshot: observers get the snapshot's members at
// once, reported stale and seeded; when the server comes back the first read
// replaces them (an empty read too), and a later Seed changes nothing. Only
// lists read from ZooKeeper reach OnPublish (the snapshot writer). It runs
// a server of its own, since it stops it.
func TestSeedUntilFirstRead(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	setup := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	empty := testPath(t) // never created: reads as an empty list
	mkdirs(t, setup, p)
	create(t, setup, p+"/127.0.0.1:8001", "", 0)
	create(t, setup, p+"/127.0.0.1:8003", "127.0.0.1:8003,4", 0)
	srv.Stop(t)

	log, _ := testLog()
	c, err := Connect(ClientConfig{Servers: []string{srv.Addr()}, SessionTimeout: 30 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var recorded atomic.Int64
	z, r, sink := watch(t, c, p, ZkConfOptions{OnPublish: func([]balancer.Endpoint) { recorded.Add(1) }})
	ze, re, _ := watch(t, c, empty, ZkConfOptions{})

	readAt := time.Now().Add(-time.Minute).Truncate(time.Second)
	seed := []balancer.Endpoint{
		{ID: p + "/127.0.0.1:8001", Addr: "127.0.0.1:8001", Weight: 1},
		{ID: p + "/127.0.0.1:8002", Addr: "127.0.0.1:8002", Weight: 2},
	}
	if !z.Seed(seed, readAt) || !ze.Seed(seed[:1], readAt) {
		t.Fatal("Seed refused before any read of ZooKeeper")
	}
	// Seed publishes synchronously: the observer has the list now.
	if got := addrsOf(r.last()); len(got) != 2 || got[0] != "127.0.0.1:8001" || got[1] != "127.0.0.1:8002" {
		t.Fatalf("observer has %v right after Seed, want the seeded members", got)
	}
	if at, ok := z.Seeded(); !ok || !at.Equal(readAt) || !z.Stale() || z.Synced() {
		t.Errorf("after Seed: Seeded %v %v, Stale %v, Synced %v; want %v true, stale, not synced", at, ok, z.Stale(), z.Synced(), readAt)
	}
	if st := z.Stats(); !st.SeededAt.Equal(readAt) || st.Endpoints != 2 {
		t.Errorf("Stats after Seed: SeededAt %v Endpoints %d; want %v and 2", st.SeededAt, st.Endpoints, readAt)
	}
	if n := recorded.Load(); n != 0 {
		t.Errorf("OnPublish called %d times for a seeded list; the snapshot must hold only lists read from ZooKeeper", n)
	}
	if sink.count("serving the members of the snapshot") != 1 {
		t.Error("no warning that the snapshot's members are served")
	}

	srv.Restart(t)
	r.awaitAddrs(t, "127.0.0.1:8001", "127.0.0.1:8003")
	re.await(t, "an empty list", func(eps []balancer.Endpoint) bool { return eps != nil && len(eps) == 0 })
	waitFor(t, "not stale once read", func() bool { return !z.Stale() && !ze.Stale() })
	if _, ok := z.Seeded(); ok {
		t.Error("still Seeded after the first read")
	}
	if st := z.Stats(); !st.SeededAt.IsZero() {
		t.Errorf("Stats.SeededAt %v after the first read, want zero", st.SeededAt)
	}
	if ep, _ := find(r.last(), "127.0.0.1:8003"); ep.Weight != 4 {
		t.Errorf("read member has weight %d, want 4 (from ZooKeeper)", ep.Weight)
	}
	// OnPublish runs after the subscribers have the list: awaited.
	waitFor(t, "OnPublish called for the list read from ZooKeeper", func() bool { return recorded.Load() >= 1 })

	// A late Seed (the gateway's bound expired just as the read came)
	// must not put the snapshot back.
	updates := r.updates()
	if z.Seed(seed, readAt) {
		t.Error("Seed accepted after the first read")
	}
	if r.updates() != updates || len(z.Endpoints()) != 2 || z.Endpoints()[1].Addr != "127.0.0.1:8003" {
		t.Errorf("a refused Seed changed the list: %v", addrsOf(z.Endpoints()))
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := z.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
}

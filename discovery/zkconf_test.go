package discovery

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/internal/zktest"
)

var confCases = []zkCase{
	{"ConfAddRemoveWeight", testConfAddRemoveWeight},
	{"ConfFormats", testConfFormats},
	{"ConfMissingPathAppearsLater", testConfMissingPath},
	{"ConfPathDeletedAndRecreated", testConfPathDeleted},
	{"ConfBurstCoalesced", testConfBurst},
	{"ConfMalformedSkippedOnce", testConfMalformed},
	{"ConfNerveBadNodesHideNone", testConfNerveBadNodes},
	{"ConfSessionExpiryRearms", testConfSessionExpiry},
	{"ConfDisconnectKeepsListAndCatchesUp", testConfDisconnect},
	{"ConfDeadClientNodeVanishes", testConfDeadClient},
	{"ConfVerifyRepairsMissedChange", testConfVerifyRepairs},
	{"ConfWatchResetFailureRearms", testConfWatchResetFailure},
	{"ConfSharedPath", testConfSharedPath},
	{"ConfUnreadableNode", testConfUnreadable},
	{"ConfFilter", testConfFilter},
	{"ConfPropagation", testConfPropagation},
	{"ConfLogsChange", testConfLogsChange},
	{"ConfMultiDeleteAppliedAtOnce", testConfMultiDelete},
}

// testConfMultiDelete: members deleted in one transaction (a multi) leave
// in one published change, never one at a time: the first deletion's event
// can arrive before the others', and the removal guard judges each change
// by how many members it removes at once. Ten rounds of nine deletions.
func testConfMultiDelete(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	mkdirs(t, raw, p)
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	_, r, _ := watch(t, c, p, ZkConfOptions{})
	const keep = "127.0.0.1:9100"
	create(t, raw, p+"/"+keep, "", zk.FlagEphemeral)
	for round := range 10 {
		addrs := []string{keep}
		var ops []any
		for i := 1; i <= 9; i++ {
			a := fmt.Sprintf("127.0.0.1:%d", 9100+10*round+i)
			create(t, raw, p+"/"+a, "", zk.FlagEphemeral)
			addrs = append(addrs, a)
			ops = append(ops, &zk.DeleteRequest{Path: p + "/" + a, Version: -1})
		}
		r.awaitAddrs(t, addrs...)
		from := r.updates()
		if _, err := raw.Multi(ops...); err != nil {
			t.Fatalf("round %d: delete nine members in one multi: %v", round, err)
		}
		r.awaitAddrs(t, keep)
		r.mu.Lock()
		seen := slices.Clone(r.lists[from:])
		r.mu.Unlock()
		for _, eps := range seen {
			if n := len(eps); n > 1 && n < 10 {
				t.Fatalf("round %d: a published list of %d members (%v) between the ten before the multi and the one after", round, n, addrsOf(eps))
			}
		}
	}
}

func testConfAddRemoveWeight(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	mkdirs(t, raw, p)
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	z, r, _ := watch(t, c, p, ZkConfOptions{})

	r.await(t, "an empty list", func(eps []balancer.Endpoint) bool { return eps != nil && len(eps) == 0 })
	if !z.Synced() || z.Stale() {
		t.Errorf("after the first read: Synced %v Stale %v, want true false", z.Synced(), z.Stale())
	}

	create(t, raw, p+"/127.0.0.1:9001", "127.0.0.1:9001,1", zk.FlagEphemeral)
	create(t, raw, p+"/127.0.0.1:9002", "", zk.FlagEphemeral)
	r.awaitAddrs(t, "127.0.0.1:9001", "127.0.0.1:9002")

	if _, err := raw.Set(p+"/127.0.0.1:9001", []byte("127.0.0.1:9001,5"), -1); err != nil {
		t.Fatal(err)
	}
	r.await(t, "weight 5 on 127.0.0.1:9001", func(eps []balancer.Endpoint) bool {
		e, ok := find(eps, "127.0.0.1:9001")
		return ok && e.Weight == 5
	})
	// A second change of the same node: the data watch was set again.
	if _, err := raw.Set(p+"/127.0.0.1:9001", []byte("127.0.0.1:9001,2"), -1); err != nil {
		t.Fatal(err)
	}
	r.await(t, "weight 2 on 127.0.0.1:9001", func(eps []balancer.Endpoint) bool {
		e, ok := find(eps, "127.0.0.1:9001")
		return ok && e.Weight == 2
	})

	remove(t, raw, p+"/127.0.0.1:9001")
	r.awaitAddrs(t, "127.0.0.1:9002")
	remove(t, raw, p+"/127.0.0.1:9002")
	r.awaitAddrs(t)

	got := z.Endpoints()
	if len(got) != 0 {
		t.Errorf("Endpoints() = %v, want empty", got)
	}
	if st := z.Stats(); st.WatchEvents == 0 || st.Publishes < 5 || st.FullSyncs != 1 {
		t.Errorf("stats %+v: want watch events, at least 5 publications and exactly one full sync", st)
	}
}

func testConfFormats(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	curatorJSON := strings.Replace(string(golden(t, "curator_hashmap_weight.json")), "backend-7.internal", "127.0.0.1", 1)
	tests := []struct {
		format Format
		nodes  map[string]string // node name → data
		flags  int32
		addrs  []string
		weight int
	}{
		{FormatPlain, map[string]string{"127.0.0.1:7001": "", "x": "127.0.0.1:7002,3"}, zk.FlagEphemeral, []string{"127.0.0.1:7001", "127.0.0.1:7002"}, 0},
		{FormatCurator, map[string]string{"c2f4b0a8-9f51-4a8e-8f7e-53b1d2c4e9aa": curatorJSON}, zk.FlagEphemeral, []string{"127.0.0.1:9090"}, 5},
		{FormatServerSet, map[string]string{"member_": string(golden(t, "serverset_aurora.json"))}, zk.FlagEphemeral | zk.FlagSequence, []string{"10.1.2.3:31181"}, 1},
		{FormatNerve, map[string]string{"i-0a1b2c3d4e5f60718_": string(golden(t, "nerve_labels.json"))}, zk.FlagEphemeral | zk.FlagSequence, []string{"10.0.4.21:31045"}, 10},
	}
	for _, tt := range tests {
		for _, opt := range []Format{tt.format, FormatAuto} {
			t.Run(fmt.Sprintf("%s-as-%s", tt.format, opt), func(t *testing.T) {
				p := testPath(t)
				mkdirs(t, raw, p)
				for name, data := range tt.nodes {
					create(t, raw, p+"/"+name, data, tt.flags)
				}
				_, r, _ := watch(t, c, p, ZkConfOptions{Format: opt})
				r.awaitAddrs(t, tt.addrs...)
				for _, e := range r.last() {
					if e.Meta["format"] != string(tt.format) || !strings.HasPrefix(e.ID, p+"/") {
						t.Errorf("endpoint %+v: want format %s and an ID under %s", e, tt.format, p)
					}
					if tt.weight > 0 && e.Weight != tt.weight {
						t.Errorf("endpoint %+v: want weight %d", e, tt.weight)
					}
				}
			})
		}
	}
}

func testConfMissingPath(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	z, r, _ := watch(t, c, p, ZkConfOptions{})
	r.awaitAddrs(t)
	if !z.Synced() || z.Stats().Exists {
		t.Errorf("missing path: Synced %v Exists %v, want true false", z.Synced(), z.Stats().Exists)
	}
	mkdirs(t, raw, p)
	create(t, raw, p+"/127.0.0.1:8001", "", zk.FlagEphemeral)
	r.awaitAddrs(t, "127.0.0.1:8001")
}

func testConfPathDeleted(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	mkdirs(t, raw, p)
	create(t, raw, p+"/127.0.0.1:8001", "", zk.FlagEphemeral)
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	z, r, _ := watch(t, c, p, ZkConfOptions{})
	r.awaitAddrs(t, "127.0.0.1:8001")

	// What Curator does ~1 min after the last instance leaves.
	remove(t, raw, p+"/127.0.0.1:8001")
	remove(t, raw, p)
	r.awaitAddrs(t)
	waitFor(t, "Exists false", func() bool { return !z.Stats().Exists })

	mkdirs(t, raw, p)
	create(t, raw, p+"/127.0.0.1:8002", "", zk.FlagEphemeral)
	r.awaitAddrs(t, "127.0.0.1:8002")
	if z.Stale() {
		t.Error("Stale after the path came back, want false")
	}
}

func testConfBurst(t *testing.T, srv *zktest.Server) {
	const n = 200
	p := testPath(t)
	setup := zktest.Connect(t, srv.Addr())
	mkdirs(t, setup, p)
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	z, r, _ := watch(t, c, p, ZkConfOptions{})
	r.awaitAddrs(t)
	before := r.updates()

	// Four clients register 50 instances each, concurrently.
	want := make([]string, 0, n)
	for i := range n {
		want = append(want, fmt.Sprintf("127.0.0.1:%d", 20000+i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 4 {
		conn := zktest.Connect(t, srv.Addr())
		wg.Go(func() {
			var inner sync.WaitGroup
			for i := w; i < n; i += 4 {
				inner.Go(func() {
					if _, err := conn.Create(p+"/"+want[i], []byte(want[i]+",1"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
						errs <- err
					}
				})
			}
			inner.Wait()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r.awaitAddrs(t, want...)
	notes := r.updates() - before
	t.Logf("%d registrations reached the observer in %d notifications", n, notes)
	if notes > n/4 {
		t.Errorf("%d notifications for %d registrations: the burst was not coalesced", notes, n)
	}
	if got := len(z.Endpoints()); got != n {
		t.Errorf("Endpoints() has %d entries, want %d", got, n)
	}
}

func testConfMalformed(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	mkdirs(t, raw, p)
	create(t, raw, p+"/127.0.0.1:8001", "", zk.FlagEphemeral)
	create(t, raw, p+"/broken", `{"address":"127.0.0.1","port":99999}`, zk.FlagEphemeral)
	create(t, raw, p+"/127.0.0.1:8002", "127.0.0.1:8002,2", zk.FlagEphemeral)

	proxy := zktest.NewProxy(t, srv.Addr())
	c := dial(t, ClientConfig{Servers: []string{proxy.Addr()}, SessionTimeout: 4 * time.Second})
	z, r, sink := watch(t, c, p, ZkConfOptions{})
	r.awaitAddrs(t, "127.0.0.1:8001", "127.0.0.1:8002")
	warned := func() int { return sink.count(p + "/broken") }
	if warned() != 1 {
		t.Errorf("%d warnings naming %s/broken, want 1", warned(), p)
	}
	if st := z.Stats(); st.Malformed != 1 || st.MalformedTotal != 1 {
		t.Errorf("stats %+v: want Malformed 1, MalformedTotal 1", st)
	}

	// A new session re-reads everything: the unchanged node is not
	// warned about again.
	if n := proxy.ExpireSessions(t); n != 1 {
		t.Fatalf("expired %d sessions, want 1", n)
	}
	waitFor(t, "a full re-read in the new session", func() bool { return z.Stats().FullSyncs >= 2 && !z.Stale() })
	if warned() != 1 || z.Stats().MalformedTotal != 1 {
		t.Errorf("after a full re-read: %d warnings, MalformedTotal %d; want 1 and 1", warned(), z.Stats().MalformedTotal)
	}

	// Fixing the node serves it.
	if _, err := raw.Set(p+"/broken", []byte(`{"address":"127.0.0.1","port":8003}`), -1); err != nil {
		t.Fatal(err)
	}
	r.awaitAddrs(t, "127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003")
	if st := z.Stats(); st.Malformed != 0 {
		t.Errorf("Malformed = %d after the fix, want 0", st.Malformed)
	}
}

// testConfNerveBadNodes: beside two good Nerve nodes, a drained one, a
// malformed one and one no format claims are each skipped, and hide
// nothing; the bad ones are warned about by path and reason.
func testConfNerveBadNodes(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	mkdirs(t, raw, p)
	const seq = zk.FlagEphemeral | zk.FlagSequence
	create(t, raw, p+"/i-0aaa_", `{"host":"127.0.0.1","port":7101,"name":"i-0aaa","weight":3,"labels":{"az":"a"}}`, seq)
	create(t, raw, p+"/i-0bbb_", `{"host":"127.0.0.1","port":7102,"name":"i-0bbb"}`, seq)
	create(t, raw, p+"/i-0ccc_", `{"host":"127.0.0.1","port":7103,"name":"i-0ccc","weight":0}`, seq)
	bad := create(t, raw, p+"/i-0ddd_", `{"host":"127.0.0.1","port":"http","name":"i-0ddd"}`, seq)
	unclaimed := create(t, raw, p+"/abc", `{"name":"i-0eee","port":7105}`, zk.FlagEphemeral)

	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	z, r, sink := watch(t, c, p, ZkConfOptions{})
	r.awaitAddrs(t, "127.0.0.1:7101", "127.0.0.1:7102")
	if e, _ := find(r.last(), "127.0.0.1:7101"); e.Weight != 3 || e.Meta["labels.az"] != "a" || e.Meta["format"] != "nerve" {
		t.Errorf("endpoint %+v: want weight 3, labels.az a, format nerve", e)
	}
	if st := z.Stats(); st.Malformed != 2 || st.NotServing != 1 {
		t.Errorf("stats %+v: want Malformed 2 and NotServing 1", st)
	}
	if n := sink.count(bad + " (nerve): malformed node: port:"); n != 1 {
		t.Errorf("%d warnings that %s has a bad port, want 1", n, bad)
	}
	if n := sink.count(unclaimed + ": not a plain, curator, serverset or nerve node: the JSON object has none of the fields"); n != 1 {
		t.Errorf("%d warnings that no format claims %s, want 1", n, unclaimed)
	}

	// Completing the unclaimed node serves it as Nerve.
	if _, err := raw.Set(unclaimed, []byte(`{"name":"i-0eee","port":7105,"host":"127.0.0.1"}`), -1); err != nil {
		t.Fatal(err)
	}
	r.awaitAddrs(t, "127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7105")
}

func testConfSessionExpiry(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	mkdirs(t, raw, p)
	create(t, raw, p+"/127.0.0.1:8001", "", zk.FlagEphemeral)
	proxy := zktest.NewProxy(t, srv.Addr())
	c := dial(t, ClientConfig{Servers: []string{proxy.Addr()}, SessionTimeout: 4 * time.Second})
	z, r, _ := watch(t, c, p, ZkConfOptions{})
	r.awaitAddrs(t, "127.0.0.1:8001")
	oldSession := c.Status().SessionID

	// Cut the watcher off, expire its session, change the service
	// meanwhile, then let it back.
	proxy.Cut()
	if n := proxy.ExpireSessions(t); n != 1 {
		t.Fatalf("expired %d sessions, want 1", n)
	}
	waitFor(t, "Stale while cut off", z.Stale)
	if got := addrsOf(z.Endpoints()); len(got) != 1 {
		t.Errorf("while cut off the list is %v, want the last known one", got)
	}
	create(t, raw, p+"/127.0.0.1:8002", "", zk.FlagEphemeral)
	proxy.Restore()
	r.awaitAddrs(t, "127.0.0.1:8001", "127.0.0.1:8002")
	waitFor(t, "not Stale in the new session", func() bool { return !z.Stale() })

	st := c.Status()
	if st.SessionID == oldSession || st.Expirations < 1 || st.Established < 2 || !st.HasSession {
		t.Errorf("client status %+v: want a new session after one expiry", st)
	}
	// Watches were set again in the new session: later changes arrive.
	remove(t, raw, p+"/127.0.0.1:8001")
	r.awaitAddrs(t, "127.0.0.1:8002")
	if _, err := raw.Set(p+"/127.0.0.1:8002", []byte("127.0.0.1:8002,9"), -1); err != nil {
		t.Fatal(err)
	}
	r.await(t, "weight 9", func(eps []balancer.Endpoint) bool { return len(eps) == 1 && eps[0].Weight == 9 })
}

func testConfDisconnect(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	mkdirs(t, raw, p)
	create(t, raw, p+"/127.0.0.1:8001", "", zk.FlagEphemeral)
	create(t, raw, p+"/127.0.0.1:8002", "", zk.FlagEphemeral)
	proxy := zktest.NewProxy(t, srv.Addr())
	c := dial(t, ClientConfig{Servers: []string{proxy.Addr()}, SessionTimeout: 20 * time.Second})
	z, r, _ := watch(t, c, p, ZkConfOptions{})
	r.awaitAddrs(t, "127.0.0.1:8001", "127.0.0.1:8002")
	session := c.Status().SessionID
	updates := r.updates()

	proxy.Cut()
	waitFor(t, "Stale while disconnected", z.Stale)
	// Changes the watcher cannot see yet: a removal, an addition and a
	// weight change.
	remove(t, raw, p+"/127.0.0.1:8001")
	create(t, raw, p+"/127.0.0.1:8003", "", zk.FlagEphemeral)
	if _, err := raw.Set(p+"/127.0.0.1:8002", []byte("127.0.0.1:8002,4"), -1); err != nil {
		t.Fatal(err)
	}
	if r.updates() != updates || len(z.Endpoints()) != 2 {
		t.Errorf("while disconnected the observer got %d new lists and Endpoints is %v; want none and the last known list",
			r.updates()-updates, addrsOf(z.Endpoints()))
	}
	proxy.Restore()
	r.await(t, "8002 (weight 4) and 8003", func(eps []balancer.Endpoint) bool {
		e, ok := find(eps, "127.0.0.1:8002")
		return len(eps) == 2 && ok && e.Weight == 4 && eps[1].Addr == "127.0.0.1:8003"
	})
	waitFor(t, "not Stale after the reconnect", func() bool { return !z.Stale() })
	if st := c.Status(); st.SessionID != session || st.Disconnects < 1 {
		t.Errorf("status %+v: want the session 0x%x kept after a disconnect", st, session)
	}
	t.Logf("after the reconnect: %d repairs, %d full syncs", z.Stats().Repairs, z.Stats().FullSyncs)
	remove(t, raw, p+"/127.0.0.1:8003")
	r.awaitAddrs(t, "127.0.0.1:8002")
}

func testConfDeadClient(t *testing.T, srv *zktest.Server) {
	p := testPath(t)
	setup := zktest.Connect(t, srv.Addr())
	mkdirs(t, setup, p)
	// A zkCli-like client behind a proxy registers, then "dies" without
	// closing its session: the proxy cuts it off for good.
	proxy := zktest.NewProxy(t, srv.Addr())
	dead, ev := zktest.ConnectEvents(t, 2*time.Second, proxy.Addr())
	create(t, dead, p+"/127.0.0.1:8009", "", zk.FlagEphemeral)
	create(t, setup, p+"/127.0.0.1:8001", "", zk.FlagEphemeral)

	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	_, r, _ := watch(t, c, p, ZkConfOptions{})
	r.awaitAddrs(t, "127.0.0.1:8001", "127.0.0.1:8009")
	proxy.Cut()
	// The server expires the session after its timeout; the node goes.
	r.awaitAddrs(t, "127.0.0.1:8001")
	if ev.Seen(zk.StateExpired) {
		t.Error("the dead client was told of its expiry; the proxy should have kept it cut off")
	}
}

func testConfVerifyRepairs(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	mkdirs(t, raw, p)
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}, ResyncInterval: 100 * time.Millisecond})
	z, r, _ := watch(t, c, p, ZkConfOptions{})
	r.awaitAddrs(t)
	synced := z.LastSync()
	waitFor(t, "a periodic verification", func() bool { return z.LastSync().After(synced) })
	if st := z.Stats(); st.Repairs != 0 || st.FullSyncs != 1 {
		t.Errorf("stats %+v: with working watches want no repair and one full sync", st)
	}

	// Lose the watch events, as when the server lost the watches: only
	// the periodic verification can find the change.
	c.unsubscribe(p, z)
	c.subscribe("", z)
	create(t, raw, p+"/127.0.0.1:8001", "", zk.FlagEphemeral)
	r.awaitAddrs(t, "127.0.0.1:8001")
	if st := z.Stats(); st.Repairs < 1 || st.FullSyncs < 2 {
		t.Errorf("stats %+v: want a repair by full re-read", st)
	}
	c.subscribe(p, z)
	create(t, raw, p+"/127.0.0.1:8002", "", zk.FlagEphemeral)
	r.awaitAddrs(t, "127.0.0.1:8001", "127.0.0.1:8002")
}

func testConfWatchResetFailure(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	mkdirs(t, raw, p)
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	z, r, _ := watch(t, c, p, ZkConfOptions{})
	r.awaitAddrs(t)
	// What the client does when go-zookeeper logs that it failed to set
	// the watches again after a reconnect.
	zkLogger{log: z.log, onWatchResetFailure: c.watchResetFailed}.Printf("Failed to set previous watches: %v", zk.ErrConnectionClosed)
	waitFor(t, "a full re-read", func() bool { return z.Stats().FullSyncs >= 2 })
	if st := c.Status(); st.WatchResetFailures != 1 {
		t.Errorf("WatchResetFailures = %d, want 1", st.WatchResetFailures)
	}
	create(t, raw, p+"/127.0.0.1:8001", "", zk.FlagEphemeral)
	r.awaitAddrs(t, "127.0.0.1:8001")
}

func testConfSharedPath(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	mkdirs(t, raw, p)
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	a, ra, _ := watch(t, c, p, ZkConfOptions{})
	_, rb, _ := watch(t, c, p, ZkConfOptions{Format: FormatPlain})
	// A watcher of the parent sees the service path as one (malformed)
	// node, and must not steal its events.
	_, rp, _ := watch(t, c, parentPath(p), ZkConfOptions{})
	ra.awaitAddrs(t)
	rb.awaitAddrs(t)
	rp.awaitAddrs(t)
	create(t, raw, p+"/127.0.0.1:8001", "", zk.FlagEphemeral)
	ra.awaitAddrs(t, "127.0.0.1:8001")
	rb.awaitAddrs(t, "127.0.0.1:8001")
	a.Close()
	create(t, raw, p+"/127.0.0.1:8002", "", zk.FlagEphemeral)
	rb.awaitAddrs(t, "127.0.0.1:8001", "127.0.0.1:8002")
	if got := addrsOf(a.Endpoints()); len(got) != 1 {
		t.Errorf("a closed conf changed its list to %v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := a.WaitSynced(ctx); err != nil {
		t.Error(err)
	}
}

func testConfUnreadable(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	mkdirs(t, raw, p)
	create(t, raw, p+"/127.0.0.1:8001", "", zk.FlagEphemeral)
	if _, err := raw.Create(p+"/127.0.0.1:8002", nil, zk.FlagEphemeral, zk.DigestACL(zk.PermAll, "other", "secret")); err != nil {
		t.Fatal(err)
	}
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}, ResyncInterval: 50 * time.Millisecond})
	z, r, sink := watch(t, c, p, ZkConfOptions{})
	r.awaitAddrs(t, "127.0.0.1:8001")
	for range 3 { // verifications do not take the unreadable node for a missed change
		synced := z.LastSync()
		waitFor(t, "a periodic verification", func() bool { return z.LastSync().After(synced) })
	}
	st := z.Stats()
	if st.Malformed != 1 || st.MalformedTotal != 1 || st.Repairs != 0 || sink.count(p+"/127.0.0.1:8002") != 1 {
		t.Errorf("stats %+v, %d warnings: want the unreadable node skipped, warned about once, and no repair",
			st, sink.count(p+"/127.0.0.1:8002"))
	}
}

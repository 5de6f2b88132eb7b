package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkgate/zkgate/internal/zktest"
)

// awaitSession waits until the gateway has a usable ZooKeeper session and
// the echo service's list is fresh again, and returns how long that took.
func awaitSession(t *testing.T, e *env, what string) time.Duration {
	t.Helper()
	start := time.Now()
	await(t, 30*time.Second, func() bool {
		z := e.gw.zooKeeper(t)
		return z.Connected && !e.gw.service(t).Stale
	}, "the gateway's ZooKeeper session and a fresh echo list after %s", what)
	return time.Since(start)
}

// TestZooKeeperOutage stops the standalone ZooKeeper for 10s under load: no
// request fails, the gateway keeps its membership meanwhile, and once
// ZooKeeper is back a backend added is routed within a second of its
// registration.
func TestZooKeeperOutage(t *testing.T) {
	row := scenario(t, "5 ZooKeeper down 10s")
	const outage = 10 * time.Second
	zks := zktest.Start(t)
	e := newEnv(t, []string{zks.Addr()}, gatewayConfig{ActiveCheck: true})
	bs := []*backend{e.backend(t, "z1"), e.backend(t, "z2")}
	e.awaitEndpoints(t, 2)
	load := startLoad(t, e.gw)
	for _, b := range bs {
		firstSeen(t, load, b.id, 10*time.Second)
	}

	downAt := time.Now()
	zks.Stop(t)
	await(t, 15*time.Second, func() bool { return !e.gw.zooKeeper(t).Connected },
		"the gateway to notice ZooKeeper is gone")
	time.Sleep(time.Until(downAt.Add(outage))) // the scenario: ZooKeeper stays down this long
	svc := e.gw.service(t)
	if svc.Counts.Healthy != 2 {
		t.Errorf("%v into the outage the gateway lists %d healthy endpoints, want the 2 it knew: %+v", outage, svc.Counts.Healthy, svc.Endpoints)
	}
	if !svc.Stale {
		t.Errorf("the echo list is not marked stale without ZooKeeper")
	}
	zks.Restart(t)
	back := awaitSession(t, e, "ZooKeeper's restart")
	for _, b := range bs {
		await(t, 15*time.Second, func() bool { return e.members.has(b.addr) }, "the znode of %s after the outage", b.id)
	}
	e.awaitEndpoints(t, 2)

	nb := e.backend(t, "z3-after")
	reg := e.registeredAt(t, nb)
	routed := firstSeen(t, load, nb.id, 15*time.Second).Sub(reg)
	if routed > time.Second {
		t.Errorf("backend added after ZooKeeper returned was first routed %v after its registration, want within 1s", routed)
	}
	e.awaitEndpoints(t, 3)
	time.Sleep(time.Second) // the scenario: load on three backends
	res := load.Stop()
	row.load(res)
	checkNoFailures(t, e.gw, res, row)
	z := e.gw.zooKeeper(t)
	row.note("membership kept (stale=%v) session back %v after restart (reconnects=%d expirations=%d); new backend routed %v after registration",
		svc.Stale, back.Round(time.Millisecond), z.Reconnects, z.Expirations, routed.Round(time.Millisecond))
	t.Logf("load: %s", res.Summary())
}

// TestEnsembleLeaderKilled kills the leader of a 3-node ensemble under load:
// no request fails, the registrations survive the election, and discovery
// goes on (a backend added afterwards is routed).
func TestEnsembleLeaderKilled(t *testing.T) {
	row := scenario(t, "6 ensemble leader killed")
	ens := zktest.StartEnsemble(t, 3)
	e := newEnv(t, ens.Addrs(), gatewayConfig{ActiveCheck: true})
	bs := []*backend{e.backend(t, "q1"), e.backend(t, "q2")}
	e.awaitEndpoints(t, 2)
	load := startLoad(t, e.gw)
	for _, b := range bs {
		firstSeen(t, load, b.id, 10*time.Second)
	}
	time.Sleep(time.Second) // the scenario: steady load first

	killAt := time.Now()
	old := ens.KillLeader(t)
	ens.WaitQuorum(t)
	quorum := time.Since(killAt)
	leader := ens.Leader(t)
	back := awaitSession(t, e, "the leader's death")
	for _, b := range bs {
		if !e.members.has(b.addr) {
			t.Errorf("the znode of %s is gone after the election", b.id)
		}
	}
	if n := e.members.goneCount(); n != 0 {
		t.Errorf("%d registrations went away during the election, want none", n)
	}
	e.awaitEndpoints(t, 2)

	nb := e.backend(t, "q3-after")
	reg := e.registeredAt(t, nb)
	routed := firstSeen(t, load, nb.id, 15*time.Second).Sub(reg)
	e.awaitEndpoints(t, 3)
	time.Sleep(time.Second) // the scenario: load on three backends
	res := load.Stop()
	row.load(res)
	checkNoFailures(t, e.gw, res, row)
	row.note("leader %d killed, member %d leads, quorum after %v, gateway fresh %v later; registrations lost=%d; new backend routed %v after registration",
		old, leader, quorum.Round(time.Millisecond), back.Round(time.Millisecond), e.members.goneCount(), routed.Round(time.Millisecond))
	t.Logf("load: %s", res.Summary())
}

// TestGatewaySessionExpiry cuts the gateway off ZooKeeper (through a proxy)
// for longer than its session timeout, so that its session expires: no
// request fails, and once it is back with a new session its watches are set
// again: a backend registered during the cut, one added after, and one
// leaving are all seen.
func TestGatewaySessionExpiry(t *testing.T) {
	row := scenario(t, "7 gateway session expiry")
	const session = 2 * time.Second
	zks := zktest.Start(t)
	proxy := zktest.NewProxy(t, zks.Addr())
	e := newEnv(t, []string{zks.Addr()}, gatewayConfig{ZooKeeper: []string{proxy.Addr()}, SessionTimeout: session, ActiveCheck: true})
	bs := []*backend{e.backend(t, "s1"), e.backend(t, "s2")}
	e.awaitEndpoints(t, 2)
	load := startLoad(t, e.gw)
	for _, b := range bs {
		firstSeen(t, load, b.id, 10*time.Second)
	}
	before := e.gw.zooKeeper(t)

	cutAt := time.Now()
	proxy.Cut()
	during := e.backend(t, "s3-during-cut")
	e.registeredAt(t, during)
	time.Sleep(time.Until(cutAt.Add(3 * session))) // the scenario: cut off for three session timeouts
	if n := e.gw.service(t).Counts.Healthy; n != 2 {
		t.Errorf("during the cut the gateway lists %d healthy endpoints, want the 2 it knew", n)
	}
	proxy.Restore()
	restoreAt := time.Now()
	await(t, 30*time.Second, func() bool {
		z := e.gw.zooKeeper(t)
		return z.Connected && z.SessionID != before.SessionID && z.Expirations > before.Expirations
	}, "a new gateway session after the expiry (before: %+v)", before)
	after := e.gw.zooKeeper(t)
	seenDuring := firstSeen(t, load, during.id, 15*time.Second).Sub(restoreAt)
	e.awaitEndpoints(t, 3)

	nb := e.backend(t, "s4-after")
	reg := e.registeredAt(t, nb)
	routed := firstSeen(t, load, nb.id, 15*time.Second).Sub(reg)
	e.awaitEndpoints(t, 4)
	stopGracefully(t, during)
	e.awaitEndpoints(t, 3)
	time.Sleep(time.Second) // the scenario: load on the three left
	res := load.Stop()
	row.load(res)
	checkNoFailures(t, e.gw, res, row)
	row.note("session %s→%s (expirations=%d); backend registered during the cut routed %v after restore; added after: routed %v after registration; removal seen",
		before.SessionID, after.SessionID, after.Expirations, seenDuring.Round(time.Millisecond), routed.Round(time.Millisecond))
	t.Logf("load: %s", res.Summary())
}

// TestMalformedNode adds malformed znodes among good ones under load: the
// good endpoints keep serving, discovery goes on, and every bad node is
// reported by the malformed-nodes metric and named in the gateway's log.
func TestMalformedNode(t *testing.T) {
	row := scenario(t, "8 malformed znode")
	zks := zktest.Start(t)
	e := newEnv(t, []string{zks.Addr()}, gatewayConfig{ActiveCheck: true})
	bs := []*backend{e.backend(t, "m1"), e.backend(t, "m2")}
	e.awaitEndpoints(t, 2)
	load := startLoad(t, e.gw)
	for _, b := range bs {
		firstSeen(t, load, b.id, 10*time.Second)
	}

	bad := map[string]string{
		servicePath + "/bad-json":       `{"address": `,
		servicePath + "/not-an-address": "hello world",
		servicePath + "/127.0.0.1:9":    "127.0.0.1:9,zero",
	}
	for p, data := range bad {
		if _, err := e.conn.Create(p, []byte(data), 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatalf("create malformed node %s: %v", p, err)
		}
	}
	const metric = `zkgate_discovery_malformed_nodes_total{service="echo"}`
	var count float64
	await(t, 15*time.Second, func() bool {
		count, _ = e.gw.metric(t, metric)
		return count >= float64(len(bad))
	}, "%s to count the %d malformed nodes", metric, len(bad))
	for p := range bad {
		await(t, 10*time.Second, func() bool {
			b, err := os.ReadFile(e.gw.proc.stderr)
			return err == nil && strings.Contains(string(b), p)
		}, "the gateway log to name the malformed node %s", p)
	}
	e.awaitEndpoints(t, 2)

	nb := e.backend(t, "m3-beside-bad")
	reg := e.registeredAt(t, nb)
	routed := firstSeen(t, load, nb.id, 15*time.Second).Sub(reg)
	e.awaitEndpoints(t, 3)
	time.Sleep(time.Second) // the scenario: load on three backends beside the bad nodes
	res := load.Stop()
	row.load(res)
	checkNoFailures(t, e.gw, res, row)
	row.note("%d malformed nodes: metric=%v, each named in the log; good endpoints kept; new backend routed %v after registration",
		len(bad), count, routed.Round(time.Millisecond))
	t.Logf("load: %s", res.Summary())
}

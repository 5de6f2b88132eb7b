package zktest

import (
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

func TestEnsembleSurvivesLeaderLoss(t *testing.T) {
	t.Parallel()
	e := StartEnsemble(t, 3)
	for i, addr := range e.Addrs() {
		if mode, err := Mode(addr); err != nil || (mode != "leader" && mode != "follower") {
			t.Fatalf("member %d: Mode = %q, %v; want leader or follower", i, mode, err)
		}
	}
	conn := Connect(t, e.Addrs()...)
	if _, err := conn.Create("/before", []byte("b"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create /before: %v", err)
	}

	old := e.KillLeader(t)
	if e.PID(old) != 0 {
		t.Errorf("PID(%d) = %d after kill, want 0", old, e.PID(old))
	}
	e.WaitQuorum(t)
	if leader := e.Leader(t); leader == old {
		t.Fatalf("leader is still the killed member %d", old)
	}

	// The client rides over to a surviving member by itself.
	WaitFor(t, 30*time.Second, func() bool {
		data, _, err := conn.Get("/before")
		return err == nil && string(data) == "b"
	}, "/before readable after the leader's death")
	WaitFor(t, 30*time.Second, func() bool {
		_, err := conn.Create("/after", []byte("a"), 0, zk.WorldACL(zk.PermAll))
		return err == nil || err == zk.ErrNodeExists
	}, "a write after the leader's death")

	// The old leader rejoins and serves what was written without it.
	e.Restart(t, old)
	if mode, err := Mode(e.Addrs()[old]); err != nil || mode != "follower" {
		t.Errorf("restarted member %d: Mode = %q, %v; want follower", old, mode, err)
	}
	rejoined := Connect(t, e.Addrs()[old])
	if _, err := rejoined.Sync("/after"); err != nil {
		t.Fatalf("sync on member %d: %v", old, err)
	}
	data, _, err := rejoined.Get("/after")
	if err != nil || string(data) != "a" {
		t.Fatalf("get /after on restarted member %d = %q, %v; want a", old, data, err)
	}
}

// BenchmarkStartEnsemble3 measures one 3-node ensemble start, until every
// member is leader or follower and serves sessions; the kill is not timed.
func BenchmarkStartEnsemble3(b *testing.B) {
	for b.Loop() {
		e := StartEnsemble(b, 3)
		b.StopTimer()
		for i := range e.Addrs() {
			e.Kill(b, i)
		}
		b.StartTimer()
	}
}

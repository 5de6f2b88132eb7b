package discovery

import (
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/zkgate/zkgate/internal/zktest"
)

// outage is how long ZooKeeper stays down in TestZooKeeperOutage: the
// scenario itself, not a synchronisation.
const outage = 3 * time.Second

// TestZooKeeperOutage stops the (only) ZooKeeper server for a few seconds:
// the conf keeps its last list and reports it stale; once the server is
// back, changes made right after its restart reach the observer. It runs a
// server of its own, since it stops it.
func TestZooKeeperOutage(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	setup := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	mkdirs(t, setup, p)
	// Persistent instance nodes: no other session's fate may change the
	// membership during the outage.
	create(t, setup, p+"/127.0.0.1:8001", "", 0)
	create(t, setup, p+"/127.0.0.1:8002", "", 0)

	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}, SessionTimeout: 30 * time.Second})
	z, r, _ := watch(t, c, p, ZkConfOptions{})
	r.awaitAddrs(t, "127.0.0.1:8001", "127.0.0.1:8002")
	updates := r.updates()

	srv.Stop(t)
	waitFor(t, "Stale once ZooKeeper is down", z.Stale)
	time.Sleep(outage)
	if !z.Stale() || r.updates() != updates || len(z.Endpoints()) != 2 {
		t.Fatalf("during the outage: Stale %v, %d new lists, Endpoints %v; want stale and the last list kept",
			z.Stale(), r.updates()-updates, addrsOf(z.Endpoints()))
	}

	srv.Restart(t)
	after := zktest.Connect(t, srv.Addr())
	remove(t, after, p+"/127.0.0.1:8001")
	create(t, after, p+"/127.0.0.1:8003", "127.0.0.1:8003,2", zk.FlagEphemeral)
	r.awaitAddrs(t, "127.0.0.1:8002", "127.0.0.1:8003")
	waitFor(t, "not Stale once ZooKeeper is back", func() bool { return !z.Stale() })
	t.Logf("client status after the outage: %+v", c.Status())

	// And the watches work again.
	remove(t, after, p+"/127.0.0.1:8002")
	r.awaitAddrs(t, "127.0.0.1:8003")
}

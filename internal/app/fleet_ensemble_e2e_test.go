package app

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/zktest"
)

// TestFleetEnsembleLeaderKilled writes routes through three fleet
// gateways of a 3-node ensemble while its leader is killed: every write
// that was acknowledged (200) is in ZooKeeper afterwards and served by
// every gateway; writes during the election fail with an error, never a
// false acknowledgement. make test runs it without the race detector
// (the Makefile's RACE_EXEMPT): the reconnection it provokes trips a race
// inside go-zookeeper's Conn.
func TestFleetEnsembleLeaderKilled(t *testing.T) {
	zktest.Require(t)
	ens := zktest.StartEnsemble(t, 3)
	conn := zktest.Connect(t, ens.Addrs()...)
	register(t, conn, "echo", hostPort(backend(t, "a")))
	e := &fleetEnv{configPath: "/fleet-ens/config", gatewaysPath: "/fleet-ens/gateways"}
	servers := `["` + strings.Join(ens.Addrs(), `", "`) + `"]`
	var gws []*gateway
	for i := range 3 {
		gws = append(gws, e.startWith(t, fmt.Sprintf("gw-%d", i+1), "zookeeper: { servers: "+servers+", session_timeout: 6s }", ""))
	}
	if code, body, _ := adminDo(t, http.MethodPut, gws[0].admin+"/api/services/echo", fleetToken, "",
		`{"discovery": {"zookeeper": {"path": "/services/echo"}}, "health_check": {"passive": {"max_failures": 0}}}`); code != http.StatusOK {
		t.Fatalf("PUT service = %d %s", code, body)
	}

	// Three writers, one per gateway, 20 routes each; the leader is killed
	// once the first writes are in.
	var (
		mu      sync.Mutex
		acked   []string
		refused []string
		// unanswered are the writes the gateway did not answer: it
		// answers each, refusing one ZooKeeper did not take.
		unanswered []string
		wg         sync.WaitGroup
		started    = make(chan struct{}, 3)
	)
	for w, g := range gws {
		wg.Go(func() {
			for i := range 20 {
				name := fmt.Sprintf("w%d-%d", w, i)
				body := fmt.Sprintf(`{"service": "echo", "match": {"path_prefix": "/%s"}}`, name)
				// Off the test's goroutine, so no t.Fatal: a write that
				// got no answer (within the client's 10 s) is a failure,
				// reported after the writers end.
				code, msg, _, err := adminTry(http.MethodPut, g.admin+"/api/routes/"+name, fleetToken, "", body)
				mu.Lock()
				switch {
				case err != nil:
					unanswered = append(unanswered, fmt.Sprintf("%s: %v", name, err))
				case code == http.StatusOK:
					acked = append(acked, name)
				default:
					refused = append(refused, fmt.Sprintf("%s: %d %s", name, code, strings.TrimSpace(msg)))
				}
				mu.Unlock()
				if i == 3 {
					started <- struct{}{}
				}
			}
		})
	}
	for range 3 {
		<-started
	}
	old := ens.KillLeader(t)
	wg.Wait()
	ens.WaitQuorum(t)
	t.Logf("leader %d killed; %d writes acknowledged, %d refused:\n%s", old, len(acked), len(refused), strings.Join(refused, "\n"))
	for _, u := range unanswered {
		t.Errorf("write without an answer: %s", u)
	}
	if len(acked) < 12 {
		t.Fatalf("only %d of 60 writes acknowledged", len(acked))
	}
	// The test's own client lost its server with the leader too; it reads
	// once it has a session again.
	for _, name := range acked {
		var ok bool
		zktest.WaitFor(t, 20*time.Second, func() bool {
			var err error
			ok, _, err = conn.Exists(e.configPath + "/routes/" + name)
			return err == nil
		}, "ZooKeeper answering whether route %s exists", name)
		if !ok {
			t.Errorf("acknowledged route %s is not in ZooKeeper", name)
		}
	}
	for _, g := range gws {
		for _, name := range acked {
			zktest.WaitFor(t, 20*time.Second, func() bool { return statusOf(g.proxy+"/"+name+"/x") == http.StatusOK },
				"acknowledged route %s served by %s", name, g.admin)
		}
	}
}

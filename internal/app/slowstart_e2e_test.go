package app

import (
	"strings"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/zktest"
)

// TestSlowStartRampsNewZooKeeperMember registers a second backend in a real
// ZooKeeper under a service with slow_start: 10s behind a
// weighted_round_robin route: right after it joins it gets much less than
// the half it is entitled to (at most its ramped weight's share, measured
// against the time elapsed), and its full half once the window has passed.
func TestSlowStartRampsNewZooKeeperMember(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	conn := zktest.Connect(t, srv.Addr())
	const window = 10 * time.Second
	g := startGateway(t, srv.Addr(), `  - name: echo
    match: { path_prefix: /echo }
    strip_prefix: true
    service: echo
    balancer: weighted_round_robin`, `  echo:
    discovery: { zookeeper: { path: /services/echo } }
    health_check: { passive: { max_failures: 0 } }
    slow_start: 10s`)

	a, b := backend(t, "a"), backend(t, "b")
	register(t, conn, "echo", hostPort(a))
	zktest.WaitFor(t, 5*time.Second, func() bool { return statusOf(g.proxy+"/echo/") == 200 }, "backend a routed")
	joined := time.Now() // b joins the balancer after this
	register(t, conn, "echo", hostPort(b))
	zktest.WaitFor(t, 5*time.Second, func() bool {
		_, body := get(t, g.proxy+"/echo/")
		return strings.HasPrefix(body, "b ")
	}, "backend b routed after it registered")

	shareOfB := func(n int) float64 {
		hits := 0
		for range n {
			if _, body := get(t, g.proxy+"/echo/"); strings.HasPrefix(body, "b ") {
				hits++
			}
		}
		return float64(hits) / float64(n)
	}
	early := shareOfB(100)
	elapsed := time.Since(joined)
	// The ramped weight at the end of the batch (elapsed overestimates
	// the time since b joined) bounds b's share during it; 0.05 covers a
	// partial smooth round-robin cycle.
	f := min(1, 0.1+0.9*elapsed.Seconds()/window.Seconds())
	if limit := f/(1+f) + 0.05; early > limit || early > 0.4 {
		t.Fatalf("b's share in the first %v after registering = %.2f, want at most %.2f (and well below the full 0.5)", elapsed, early, limit)
	}
	t.Logf("b's share in the first %v: %.2f", elapsed.Round(time.Millisecond), early)

	zktest.WaitFor(t, window+10*time.Second, func() bool { return shareOfB(20) == 0.5 },
		"b at its full half of the picks after the %v window", window)
}

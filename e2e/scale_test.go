package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/loadgen"
	"github.com/zkgate/zkgate/internal/zktest"
)

// scaleUpRounds is how often TestScaleUp goes from two backends to five.
const scaleUpRounds = 4

// TestScaleUp scales 2 → 5 backends under load, scaleUpRounds times (back to
// two gracefully in between): every new backend receives traffic without a
// gateway restart, and no request fails. It reports the time from each new
// backend's registration (its znode's creation) to its first proxied answer.
func TestScaleUp(t *testing.T) {
	row := scenario(t, "1 scale up 2→5")
	zks := zktest.Start(t)
	e := newEnv(t, []string{zks.Addr()}, gatewayConfig{ActiveCheck: true})
	base := []*backend{e.backend(t, "base-1"), e.backend(t, "base-2")}
	e.awaitEndpoints(t, 2)
	load := startLoad(t, e.gw)
	for _, b := range base {
		firstSeen(t, load, b.id, 10*time.Second)
	}

	var lat []time.Duration
	for round := 1; round <= scaleUpRounds; round++ {
		var added []*backend
		for i := 3; i <= 5; i++ {
			added = append(added, e.backend(t, fmt.Sprintf("up%d-%d", round, i)))
		}
		for _, b := range added {
			seen := firstSeen(t, load, b.id, 15*time.Second)
			reg := e.registeredAt(t, b)
			lat = append(lat, seen.Sub(reg))
		}
		e.awaitEndpoints(t, 5)
		stopGracefully(t, added...)
		e.awaitEndpoints(t, 2)
	}
	res := load.Stop()
	row.load(res)
	checkNoFailures(t, e.gw, res, row)

	slices.Sort(lat)
	row.note("registration→first-request n=%d p50=%v p99=%v max=%v", len(lat),
		loadgen.Percentile(lat, 50).Round(time.Millisecond), loadgen.Percentile(lat, 99).Round(time.Millisecond),
		lat[len(lat)-1].Round(time.Millisecond))
	t.Logf("registration → first proxied answer, each new backend: %v", lat)
	t.Logf("load: %s", res.Summary())
}

// TestScaleDownGraceful scales 5 → 2 backends with SIGTERM under load: each
// deregisters, drains and exits, and no request fails.
func TestScaleDownGraceful(t *testing.T) {
	row := scenario(t, "2 graceful scale down 5→2")
	zks := zktest.Start(t)
	e := newEnv(t, []string{zks.Addr()}, gatewayConfig{ActiveCheck: true})
	var bs []*backend
	for i := 1; i <= 5; i++ {
		bs = append(bs, e.backend(t, fmt.Sprintf("b%d", i)))
	}
	e.awaitEndpoints(t, 5)
	load := startLoad(t, e.gw)
	for _, b := range bs {
		firstSeen(t, load, b.id, 10*time.Second)
	}
	time.Sleep(time.Second) // the scenario: steady load on five backends first

	stopped := bs[2:]
	stopAt := time.Now()
	stopGracefully(t, stopped...)
	exited := time.Since(stopAt)
	e.awaitEndpoints(t, 2)
	time.Sleep(2 * time.Second) // the scenario: two more seconds of load on the two left
	res := load.Stop()
	row.load(res)
	checkNoFailures(t, e.gw, res, row)

	for _, b := range stopped {
		if _, ok := e.members.goneAt(b.addr); !ok {
			t.Errorf("znode of %s still present after it stopped", b.id)
		}
		if last := res.LastSeen[b.id]; last.After(stopAt.Add(exited)) {
			t.Errorf("%s answered at %v, after it exited (%v)", b.id, last, stopAt.Add(exited))
		}
	}
	for _, b := range bs[:2] {
		if last := res.LastSeen[b.id]; !last.After(stopAt.Add(exited)) {
			t.Errorf("%s received nothing after the scale-down (last answer %v)", b.id, last)
		}
	}
	row.note("3 backends SIGTERMed, all exited 0 within %v", exited.Round(time.Millisecond))
	t.Logf("load: %s", res.Summary())
}

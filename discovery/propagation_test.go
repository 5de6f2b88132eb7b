package discovery

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/internal/zktest"
)

func TestLagHistogram(t *testing.T) {
	var h lagHistogram
	if p := h.snapshot(); p.Count != 0 || len(p.Counts) != len(PropagationBuckets)+1 {
		t.Fatalf("empty snapshot %+v", p)
	}
	h.observe(-time.Second) // clock skew: counted as 0
	h.observe(3 * time.Millisecond)
	h.observe(2 * time.Minute)
	p := h.snapshot()
	if p.Count != 3 || p.Last != 2*time.Minute || p.Sum != 120.003 {
		t.Errorf("snapshot %+v: want 3 observations, last 2m, sum 120.003", p)
	}
	if p.Counts[0] != 1 || p.Counts[1] != 0 || p.Counts[2] != 1 || p.Counts[len(p.Counts)-1] != 1 {
		t.Errorf("counts %v: want one in ≤1ms (the clamped one), one in (2.5ms,5ms], one above the last bound", p.Counts)
	}
	if c := p.Cumulative(); c[.001] != 1 || c[.005] != 2 || c[60] != 2 {
		t.Errorf("cumulative %v", c)
	}
}

// testConfPropagation measures the lag of 200 membership changes (100 new
// nodes, 100 data changes) and none for the first read or a removal; each
// value lies between 0 and the time from before the write to the
// publication. It logs p50 and p99.
func testConfPropagation(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	mkdirs(t, raw, p)
	create(t, raw, p+"/127.0.0.1:9999", "", zk.FlagEphemeral)
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	z, r, _ := watch(t, c, p, ZkConfOptions{})
	r.awaitAddrs(t, "127.0.0.1:9999")
	if n := z.Stats().Propagation.Count; n != 0 {
		t.Fatalf("the first read was measured: %d observations", n)
	}

	var lags []time.Duration
	measure := func(desc string, change func(), cond func([]balancer.Endpoint) bool) {
		t.Helper()
		want := uint64(len(lags) + 1)
		start := time.Now()
		change()
		r.await(t, desc, cond)
		waitFor(t, desc+" measured", func() bool { return z.Stats().Propagation.Count == want })
		// mtime is in whole milliseconds: up to 1ms early.
		bound := time.Since(start) + time.Millisecond
		lag := z.Stats().Propagation.Last
		if lag < 0 || lag > bound {
			t.Fatalf("%s: lag %v, want 0 to %v", desc, lag, bound)
		}
		lags = append(lags, lag)
	}
	for i := range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 10000+i)
		measure("new "+addr, func() { create(t, raw, p+"/"+addr, "", zk.FlagEphemeral) },
			func(eps []balancer.Endpoint) bool { _, ok := find(eps, addr); return ok })
	}
	for i := range 100 {
		w := 2 + i
		measure(fmt.Sprintf("weight %d", w), func() {
			if _, err := raw.Set(p+"/127.0.0.1:9999", fmt.Appendf(nil, "127.0.0.1:9999,%d", w), -1); err != nil {
				t.Fatal(err)
			}
		}, func(eps []balancer.Endpoint) bool { e, ok := find(eps, "127.0.0.1:9999"); return ok && e.Weight == w })
	}
	remove(t, raw, p+"/127.0.0.1:10000")
	r.await(t, "127.0.0.1:10000 removed", func(eps []balancer.Endpoint) bool { _, ok := find(eps, "127.0.0.1:10000"); return !ok })
	// A publication that went unmeasured is over by the time the next
	// change publishes; the next change shows that the count moved by one.
	measure("new 127.0.0.1:10100", func() { create(t, raw, p+"/127.0.0.1:10100", "", zk.FlagEphemeral) },
		func(eps []balancer.Endpoint) bool { _, ok := find(eps, "127.0.0.1:10100"); return ok })

	st := z.Stats().Propagation
	var sum time.Duration
	for _, l := range lags {
		sum += l
	}
	if diff := st.Sum - sum.Seconds(); diff > 1e-6 || diff < -1e-6 {
		t.Errorf("histogram sum %v, the observations add up to %v", st.Sum, sum.Seconds())
	}
	slices.Sort(lags)
	q := func(f float64) time.Duration { return lags[int(f*float64(len(lags)-1))] }
	t.Logf("propagation lag over %d changes: p50 %v, p99 %v, max %v", len(lags), q(.50), q(.99), lags[len(lags)-1])
}

package app

import (
	"testing"

	"github.com/zkgate/zkgate/balancer"
)

func TestCountingBalancerCountsAttemptsInFlight(t *testing.T) {
	a := balancer.Endpoint{ID: "a", Addr: "10.0.0.1:80", Weight: 1}
	b := balancer.Endpoint{ID: "b", Addr: "10.0.0.2:80", Weight: 1}
	members := balancer.NewStatic(a, b)
	stats := newEndpointStats()
	members.Attach(stats)
	lr, err := balancer.New("least_request")
	if err != nil {
		t.Fatal(err)
	}
	members.Attach(lr)
	cb := newCountingBalancer(lr, stats)

	var picked []balancer.Endpoint
	for range 4 {
		ep, err := cb.Pick("")
		if err != nil {
			t.Fatal(err)
		}
		picked = append(picked, ep)
	}
	if got := stats.inFlight(a.Addr) + stats.inFlight(b.Addr); got != 4 {
		t.Fatalf("in flight after 4 picks = %d, want 4", got)
	}
	// The wrapped least_request balancer still sees the picks and Dones.
	if got := lr.(*balancer.LeastRequest).InFlight(a.Addr); got != stats.inFlight(a.Addr) {
		t.Fatalf("least_request counts %d for %s, the stats %d", got, a.Addr, stats.inFlight(a.Addr))
	}

	// b leaves with attempts in flight and comes back: its counter is kept,
	// so the Dones of the old attempts bring it to zero, not below.
	members.Set(a)
	members.Set(a, b)
	for _, ep := range picked {
		cb.Done(ep)
	}
	if x, y := stats.get(a.Addr).inFlight.Load(), stats.get(b.Addr).inFlight.Load(); x != 0 || y != 0 {
		t.Fatalf("in flight after every Done = %d and %d, want 0", x, y)
	}
	if got := lr.(*balancer.LeastRequest).InFlight(a.Addr); got != 0 {
		t.Fatalf("least_request still counts %d for %s", got, a.Addr)
	}
	ep, _ := cb.Pick("")
	if got := stats.inFlight(ep.Addr); got != 1 {
		t.Fatalf("in flight after a fresh pick = %d, want 1", got)
	}

	// A departed member with nothing in flight is dropped.
	cb.Done(ep)
	members.Set(a)
	if _, ok := (*stats.counters.Load())[b.Addr]; ok {
		t.Fatal("the counters of a departed idle member are kept")
	}
}

// BenchmarkCountingBalancer measures what the admin API's in-flight count
// adds to a pick: compare "counted" with "bare".
func BenchmarkCountingBalancer(b *testing.B) {
	eps := make([]balancer.Endpoint, 8)
	for i := range eps {
		eps[i] = balancer.Endpoint{ID: string(rune('a' + i)), Addr: "10.0.0." + string(rune('1'+i)) + ":8080", Weight: 1}
	}
	members := balancer.NewStatic(eps...)
	stats := newEndpointStats()
	members.Attach(stats)
	rr, err := balancer.New("round_robin")
	if err != nil {
		b.Fatal(err)
	}
	members.Attach(rr)
	for _, bc := range []struct {
		name string
		b    balancer.Balancer
	}{{"bare", rr}, {"counted", newCountingBalancer(rr, stats)}} {
		b.Run(bc.name, func(b *testing.B) {
			track, _ := bc.b.(balancer.Tracker)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ep, err := bc.b.Pick("")
					if err != nil {
						b.Fatal(err)
					}
					if track != nil {
						track.Done(ep)
					}
				}
			})
		})
	}
}

package balancer

import (
	"sync"
	"testing"
)

// setLoad sets the in-flight count of addr in b's current snapshot.
func setLoad(t *testing.T, b *LeastRequest, addr string, n int64) {
	t.Helper()
	c := b.snap.Load().byAddr.get(addr)
	if c == nil {
		t.Fatalf("no counter for %s", addr)
	}
	c.n.Store(n)
}

func TestLeastRequestPrefersLessLoaded(t *testing.T) {
	for _, n := range []int{2, 3, 10} {
		b := NewLeastRequest()
		eps := listN(n, 0)
		b.Update(eps)
		busy := eps[0].Addr
		setLoad(t, b, busy, 10)
		for i := range 1000 {
			e, err := b.Pick("")
			if err != nil {
				t.Fatal(err)
			}
			if e.Addr == busy {
				t.Fatalf("n=%d: pick %d chose %s with 10 requests in flight over idle endpoints", n, i, busy)
			}
			b.Done(e)
		}
		if got := b.InFlight(busy); got != 10 {
			t.Errorf("n=%d: busy endpoint's count changed to %d", n, got)
		}
	}
}

func TestLeastRequestBalancesInFlight(t *testing.T) {
	b := NewLeastRequest()
	b.Update(list(1, 1))
	// Without Done, two endpoints compared at every pick stay within one
	// request of each other.
	for range 101 {
		if _, err := b.Pick(""); err != nil {
			t.Fatal(err)
		}
	}
	x, y := b.InFlight("10.0.0.1:80"), b.InFlight("10.0.0.2:80")
	if x+y != 101 || x-y > 1 || y-x > 1 {
		t.Errorf("in flight %d and %d after 101 picks, want 50 and 51", x, y)
	}
}

func TestLeastRequestCountsSurviveUpdates(t *testing.T) {
	b := NewLeastRequest()
	b.Update(list(1, 1))
	a := list(1, 1)[0]
	setLoad(t, b, a.Addr, 3)

	b.Update(list(1, 1, 1)) // a stays
	if got := b.InFlight(a.Addr); got != 3 {
		t.Fatalf("in flight after an Update = %d, want 3", got)
	}
	b.Done(a)
	if got := b.InFlight(a.Addr); got != 2 {
		t.Fatalf("Done after an Update left %d in flight, want 2", got)
	}

	// a leaves with requests in flight, and comes back before they end.
	b.Update(list(1, 1, 1)[1:])
	b.Done(a)
	if got := b.InFlight(a.Addr); got != 1 {
		t.Fatalf("Done after a left: %d in flight, want 1", got)
	}
	b.Update(list(1, 1, 1))
	if got := b.InFlight(a.Addr); got != 1 {
		t.Fatalf("a came back with %d in flight, want its 1 request still running", got)
	}
	b.Done(a)
	if got := b.InFlight(a.Addr); got != 0 {
		t.Fatalf("in flight = %d after the last Done, want 0", got)
	}
}

func TestLeastRequestForgetsIdleDeparted(t *testing.T) {
	b := NewLeastRequest()
	b.Update(list(1, 1))
	gone := list(1, 1)[1]
	setLoad(t, b, gone.Addr, 1)
	b.Update(list(1))
	if b.snap.Load().byAddr.get(gone.Addr) == nil {
		t.Fatal("counter of a departed endpoint with a request in flight was dropped")
	}
	b.Done(gone)
	three := list(1, 1, 1)
	b.Update([]Endpoint{three[0], three[2]}) // a change of membership prunes
	if b.snap.Load().byAddr.get(gone.Addr) != nil {
		t.Error("idle counter of a departed endpoint was kept")
	}
}

func TestLeastRequestDoneNeverNegative(t *testing.T) {
	b := NewLeastRequest()
	b.Update(list(1))
	e := list(1)[0]
	b.Done(e)
	b.Done(Endpoint{Addr: "unknown:1"})
	if got := b.InFlight(e.Addr); got != 0 {
		t.Errorf("in flight = %d after Done without Pick, want 0", got)
	}
	NewLeastRequest().Done(e) // before any Update: no panic
}

func TestLeastRequestSameMembershipKeepsCounters(t *testing.T) {
	b := NewLeastRequest()
	b.Update(list(1, 1))
	snap := b.snap.Load()
	b.Update(list(1, 1))
	if b.snap.Load() != snap {
		t.Error("an Update with the same membership replaced the snapshot")
	}
	setLoad(t, b, "10.0.0.2:80", 5)
	next := list(4, 1) // a weight and metadata change: same addresses
	next[0].Meta = map[string]string{"zone": "z"}
	b.Update(next)
	if b.snap.Load().nodes[0].load != snap.nodes[0].load {
		t.Error("a weight-only Update replaced the counters")
	}
	e, err := b.Pick("") // the other one has 5 in flight
	if err != nil {
		t.Fatal(err)
	}
	if e.Addr != "10.0.0.1:80" || e.Meta["zone"] != "z" || e.Weight != 4 {
		t.Errorf("picked %+v, want 10.0.0.1:80 with the updated weight and metadata", e)
	}
}

func TestLeastRequestConcurrentPickDone(t *testing.T) {
	b := NewLeastRequest()
	eps := listN(8, 0)
	b.Update(eps)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 2000 {
				e, err := b.Pick("")
				if err != nil {
					t.Error(err)
					return
				}
				b.Done(e)
			}
		})
	}
	wg.Wait()
	for _, e := range eps {
		if got := b.InFlight(e.Addr); got != 0 {
			t.Errorf("%s: %d in flight after every request is done", e.Addr, got)
		}
	}
}

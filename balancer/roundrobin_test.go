package balancer

import (
	"slices"
	"testing"
)

func TestRoundRobinExactSequence(t *testing.T) {
	b := NewRoundRobin()
	b.Update(list(5, 1, 1)) // weights are ignored
	a, bb, c := "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"
	want := []string{a, bb, c, a, bb, c, a, bb, c}
	if got := picks(t, b, len(want)); !slices.Equal(got, want) {
		t.Errorf("picks = %v, want %v", got, want)
	}
}

func TestRoundRobinSameMembershipKeepsPosition(t *testing.T) {
	b := NewRoundRobin()
	b.Update(list(1, 1, 1))
	picks(t, b, 2) // next is the third endpoint
	snap := b.snap.Load()
	b.Update(list(1, 1, 1)) // a fresh but equal list, as ZooKeeper may fire
	if b.snap.Load() != snap {
		t.Error("an Update with the same membership replaced the snapshot")
	}
	want := []string{"10.0.0.3:80", "10.0.0.1:80", "10.0.0.2:80"}
	if got := picks(t, b, 3); !slices.Equal(got, want) {
		t.Errorf("picks after a same-membership Update = %v, want %v", got, want)
	}
}

func TestRoundRobinChangeKeepsCounter(t *testing.T) {
	b := NewRoundRobin()
	b.Update(list(1, 1, 1))
	picks(t, b, 2)
	// Four endpoints now: the third pick overall is index 2 of the new list.
	b.Update(list(1, 1, 1, 1))
	want := []string{"10.0.0.3:80", "10.0.0.4:80", "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}
	if got := picks(t, b, len(want)); !slices.Equal(got, want) {
		t.Errorf("picks after a change = %v, want %v", got, want)
	}
}

func TestRoundRobinEvenShares(t *testing.T) {
	b := NewRoundRobin()
	b.Update(listN(7, 3))
	counts := map[string]int{}
	for _, a := range picks(t, b, 7*100) {
		counts[a]++
	}
	for _, e := range listN(7, 3) {
		if counts[e.Addr] != 100 {
			t.Errorf("%s picked %d times in 100 cycles, want 100", e.Addr, counts[e.Addr])
		}
	}
}

func TestRoundRobinMetaOnlyChangeIsPublished(t *testing.T) {
	b := NewRoundRobin()
	b.Update(list(1))
	next := list(1)
	next[0].Meta = map[string]string{"zone": "b"}
	b.Update(next)
	e, err := b.Pick("")
	if err != nil {
		t.Fatal(err)
	}
	if e.Meta["zone"] != "b" {
		t.Errorf("picked endpoint has Meta %v, want the updated one", e.Meta)
	}
}

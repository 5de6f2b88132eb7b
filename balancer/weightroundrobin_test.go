package balancer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// letters maps the addresses of list(...) to a, b, c, ...
func letters(addrs []string) string {
	var sb strings.Builder
	for _, a := range addrs {
		sb.WriteByte('a' + a[len("10.0.0.")] - '1')
	}
	return sb.String()
}

func TestWeightRoundRobinNginxSequence(t *testing.T) {
	tests := []struct {
		weights []int
		cycle   string
	}{
		{[]int{5, 1, 1}, "aabacaa"},
		{[]int{1, 1, 1}, "abc"},
		{[]int{4, 2, 1}, "abacaba"},
		{[]int{2, 3}, "babab"},
		{[]int{10, 20, 30}, "cbacbc"}, // divided by 10: 1, 2, 3
		{[]int{0, -3, 2}, "cabc"},     // weights below 1 count as 1
		{[]int{7}, "a"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.weights), func(t *testing.T) {
			b := NewWeightRoundRobin()
			b.Update(list(tt.weights...))
			want := strings.Repeat(tt.cycle, 3)
			if got := letters(picks(t, b, len(want))); got != want {
				t.Errorf("picks = %s, want %s", got, want)
			}
		})
	}
}

// reference returns count picks of the naive nginx algorithm over weights.
func reference(weights []int, count int) []int32 {
	ref := newNaiveSmooth(weights)
	out := make([]int32, count)
	for i := range out {
		out[i] = int32(ref.next())
	}
	return out
}

func TestSmoothScheduleMatchesNginx(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 300 {
		n := 1 + r.IntN(12)
		if trial%50 == 0 {
			n = 300 // many endpoints per weight group
		}
		maxW := []int{1, 3, 10, 100}[trial%4]
		w := randomWeights(r, n, maxW)
		total := 0
		for _, x := range w {
			total += x
		}
		got := smoothSchedule(w)
		// Two cycles of the reference: the second must repeat the first.
		want := reference(w, 2*total)
		if !slices.Equal(got, want[:total]) || !slices.Equal(got, want[total:]) {
			t.Fatalf("weights %v: schedule %v, nginx %v", w, got, want)
		}
	}
}

func TestWeightRoundRobinMatchesNginxAcrossPicks(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 50 {
		w := randomWeights(r, 1+r.IntN(20), 50)
		b := NewWeightRoundRobin()
		eps := listN(len(w), 0)
		for i := range eps {
			eps[i].Weight = w[i]
		}
		b.Update(eps)
		// The balancer divides by the GCD, which leaves the sequence alone.
		want := reference(w, 3*len(b.snap.Load().schedule)+5)
		for k, idx := range want {
			e, err := b.Pick("")
			if err != nil {
				t.Fatal(err)
			}
			if e.Addr != eps[idx].Addr {
				t.Fatalf("weights %v: pick %d = %s, nginx picks %s", w, k, e.Addr, eps[idx].Addr)
			}
		}
	}
}

func TestWeightRoundRobinAfterWeightChange(t *testing.T) {
	b := NewWeightRoundRobin()
	b.Update(list(5, 1, 1))
	if got := letters(picks(t, b, 10)); got != "aabacaaaab" {
		t.Fatalf("before the change: %s", got)
	}
	// c's weight goes from 1 to 3: the new cycle (total 9) is entered at
	// position 10 mod 9 = 1.
	b.Update(list(5, 1, 3))
	cycle := reference([]int{5, 1, 3}, 9)
	var want strings.Builder
	for k := range 20 {
		want.WriteByte(byte('a' + cycle[(1+k)%9]))
	}
	if got := letters(picks(t, b, 20)); got != want.String() {
		t.Errorf("after the change: %s, want %s (nginx cycle for 5,1,3 from position 1)", got, want.String())
	}
}

func TestWeightRoundRobinSameMembershipKeepsPosition(t *testing.T) {
	b := NewWeightRoundRobin()
	b.Update(list(5, 1, 1))
	first := letters(picks(t, b, 3))
	snap := b.snap.Load()
	b.Update(list(5, 1, 1))
	if b.snap.Load() != snap {
		t.Error("an Update with the same membership replaced the snapshot")
	}
	if got := first + letters(picks(t, b, 4)); got != "aabacaa" {
		t.Errorf("picks around a same-membership Update = %s, want aabacaa", got)
	}
	// A change of metadata only publishes the new endpoints but keeps the
	// schedule.
	meta := list(5, 1, 1)
	meta[1].Meta = map[string]string{"v": "2"}
	b.Update(meta)
	if &b.snap.Load().schedule[0] != &snap.schedule[0] {
		t.Error("a metadata-only Update rebuilt the schedule")
	}
	e, _ := b.Pick("")
	if e.Addr != "10.0.0.1:80" {
		t.Errorf("pick after a metadata-only Update = %s, want the cycle's head 10.0.0.1:80", e.Addr)
	}
}

func TestWeightRoundRobinShares(t *testing.T) {
	eps := listN(50, 7)
	b := NewWeightRoundRobin()
	b.Update(eps)
	total := 0
	for _, e := range eps {
		total += e.Weight
	}
	counts := map[string]int{}
	for _, a := range picks(t, b, 40*total) {
		counts[a]++
	}
	for _, e := range eps {
		if counts[e.Addr] != 40*e.Weight {
			t.Errorf("%s (weight %d) picked %d times in 40 cycles, want %d", e.Addr, e.Weight, counts[e.Addr], 40*e.Weight)
		}
	}
}

func TestScheduleWeightsScalesLargeTotals(t *testing.T) {
	eps := listN(100, 0)
	for i := range eps {
		eps[i].Weight = 100000 + i // GCD 1, total about 1e7
	}
	eps[0].Weight = 1 // the smallest keeps at least 1
	w := scheduleWeights(weightsOf(eps))
	sum := 0
	for _, x := range w {
		sum += x
		if x < 1 {
			t.Fatalf("scaled weight %d below 1", x)
		}
	}
	if sum > maxSchedule {
		t.Fatalf("scaled total %d exceeds maxSchedule %d", sum, maxSchedule)
	}
	if w[0] != 1 {
		t.Errorf("weight 1 scaled to %d, want 1", w[0])
	}
	// Heavier stays heavier, and the ratio of two large weights survives
	// within one scaled unit.
	for i := 2; i < len(w); i++ {
		if w[i] < w[i-1] {
			t.Fatalf("scaling inverted weights: %d then %d", w[i-1], w[i])
		}
	}
	want := float64(w[1]) * float64(eps[99].Weight) / float64(eps[1].Weight)
	if d := float64(w[99]) - want; d > 1 || d < -1 {
		t.Errorf("scaled weight %d, want %.1f±1", w[99], want)
	}
}

func TestScheduleWeightsDividesByGCD(t *testing.T) {
	got := scheduleWeights(weightsOf(list(30, 60, 90)))
	if want := []int{1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("scheduleWeights = %v, want %v", got, want)
	}
}

func TestScheduleWeightsLongList(t *testing.T) {
	// More endpoints than maxSchedule: each is picked once a cycle.
	eps := make([]Endpoint, maxSchedule+10)
	for i := range eps {
		eps[i].Weight = 1 + i%3
	}
	w := scheduleWeights(weightsOf(eps))
	for i, x := range w {
		if x != 1 {
			t.Fatalf("weight %d = %d, want 1", i, x)
		}
	}
}

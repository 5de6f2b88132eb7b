package balancer

import (
	"math"
	"sync"
	"sync/atomic"
)

// maxSchedule bounds the length of a smooth weighted round-robin cycle that
// WeightRoundRobin precomputes (4 bytes an entry: 1 MiB at most), unless the
// list itself is longer.
const maxSchedule = 1 << 18

// WeightRoundRobin is nginx's smooth weighted round robin: over one cycle of
// W picks, W being the sum of the weights, each endpoint is picked as many
// times as its weight, and the picks of a heavy endpoint are spread between
// the others' instead of coming in a burst. Weights 5, 1, 1 for a, b, c give
// a a b a c a a, cycle after cycle. A missing weight is 1 and Normalize turns
// a weight below 1 into 1.
//
// nginx's algorithm costs O(n) a pick. This one computes the whole cycle on
// Update, as nginx would produce it starting from all current weights zero,
// and a pick reads the entry an atomic counter points at. Weights are first
// divided by their greatest common divisor, which leaves the sequence
// unchanged. A cycle longer than maxSchedule entries (and than the list) is
// not stored: the weights are then scaled down proportionally, each to at
// least 1, until the cycle fits, so that the sequence stays smooth and the
// shares are approximated within one scaled unit.
//
// The counter survives every Update: after a change of membership, picks
// enter the new cycle at the position the counter has reached (so frequent
// changes do not favour the head of the cycle), and an Update that changes
// nothing (see Equal) leaves the position exactly where it was.
//
// With WithSlowStart, a new endpoint's weight ramps up over the window (see
// slowStart): the cycle is recomputed at each step of the ramp.
//
// The zero value is ready to use and picks nothing until its first Update.
type WeightRoundRobin struct {
	mu   sync.Mutex // serializes Update and ramp refreshes; Pick never takes it
	snap atomic.Pointer[wrrSnapshot]
	next atomic.Uint64
	ss   *slowStart // nil: slow start off
}

type wrrSnapshot struct {
	eps []Endpoint
	// schedule is one cycle of the smooth sequence, as indexes into eps.
	schedule []int32
}

// NewWeightRoundRobin returns an empty WeightRoundRobin balancer.
func NewWeightRoundRobin(opts ...Option) *WeightRoundRobin {
	return &WeightRoundRobin{ss: newSlowStart(buildOptions(opts))}
}

// Update implements Observer. It keeps endpoints (normalizing it first if it
// is not normalized): the caller must not modify it afterwards.
func (b *WeightRoundRobin) Update(endpoints []Endpoint) {
	endpoints = normalized(endpoints)
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.snap.Load()
	switch {
	case cur != nil && Equal(cur.eps, endpoints):
		return
	case cur != nil && sameWeights(cur.eps, endpoints):
		b.snap.Store(&wrrSnapshot{eps: endpoints, schedule: cur.schedule})
		return
	}
	var prev []Endpoint
	if cur != nil {
		prev = cur.eps
	}
	b.ss.observe(prev, endpoints)
	b.rebuild(endpoints)
}

// rebuild stores a snapshot of endpoints with the cycle of their effective
// weights, and arms the ramp refresh while some endpoint ramps. b.mu is held.
func (b *WeightRoundRobin) rebuild(endpoints []Endpoint) {
	w, ramping := b.ss.weights(endpoints)
	b.snap.Store(&wrrSnapshot{eps: endpoints, schedule: smoothSchedule(scheduleWeights(w))})
	if ramping {
		b.ss.schedule(b.refresh)
	}
}

// refresh recomputes the cycle at a step of the slow-start ramp.
func (b *WeightRoundRobin) refresh() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ss.fired()
	b.rebuild(b.snap.Load().eps)
}

// Pick implements Balancer; key is ignored.
func (b *WeightRoundRobin) Pick(string) (Endpoint, error) {
	s := b.snap.Load()
	if s == nil || len(s.schedule) == 0 {
		return Endpoint{}, ErrNoEndpoint
	}
	k := b.next.Add(1) - 1
	return s.eps[s.schedule[k%uint64(len(s.schedule))]], nil
}

// scheduleWeights returns the weights the cycle is computed from: the
// weights w (each at least 1), which it modifies, divided by their greatest
// common divisor and, when their sum still exceeds max(maxSchedule, len(w)),
// scaled down until it does not.
func scheduleWeights(w []int) []int {
	limit := max(maxSchedule, len(w))
	g := 0
	for i := range w {
		g = gcd(g, w[i])
	}
	total := divideAll(w, g)
	if total <= uint64(limit) {
		return w
	}
	// Scale to a target sum; rounding each weight down but to at least 1
	// can overshoot the target by up to len(eps), so halve it until the
	// result fits. With a target of len(eps) or less every weight becomes 1.
	orig := float64(total)
	for target := float64(limit); ; target /= 2 {
		scaled := make([]int, len(w))
		sum := 0
		g = 0
		for i := range w {
			scaled[i] = max(1, int(math.Floor(float64(w[i])*target/orig)))
			sum += scaled[i]
			g = gcd(g, scaled[i])
		}
		if sum <= limit {
			divideAll(scaled, g)
			return scaled
		}
	}
}

// divideAll divides every weight by g and returns their sum, saturated at
// math.MaxUint64.
func divideAll(w []int, g int) uint64 {
	var total uint64
	for i := range w {
		w[i] /= g
		if total > math.MaxUint64-uint64(w[i]) {
			total = math.MaxUint64
		} else {
			total += uint64(w[i])
		}
	}
	return total
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// wrrGroup is the endpoints sharing one weight. In nginx's algorithm they
// gain current weight at the same rate, so they are picked in turn, lowest
// index first: the group's candidate is member picks%len(members), which has
// been picked picks/len(members) times.
type wrrGroup struct {
	weight  int64
	members []int32
	picks   int64
}

// smoothSchedule returns one cycle of nginx's smooth weighted round robin
// over weights w, starting from all current weights zero. At step t (from 1)
// nginx's current weight of endpoint i is w[i]*t - total*picked[i], and it
// picks the largest, the lowest index among equals. Only each weight
// group's candidate can be that largest, so a step costs O(groups) rather
// than O(len(w)): the cycle costs O(total*groups).
func smoothSchedule(w []int) []int32 {
	var total int64
	byWeight := map[int]int{}
	var groups []wrrGroup
	for i, wi := range w {
		total += int64(wi)
		gi, ok := byWeight[wi]
		if !ok {
			gi = len(groups)
			byWeight[wi] = gi
			groups = append(groups, wrrGroup{weight: int64(wi)})
		}
		groups[gi].members = append(groups[gi].members, int32(i))
	}
	schedule := make([]int32, 0, total)
	for t := int64(1); t <= total; t++ {
		best, bestCur, bestIdx := -1, int64(0), int32(0)
		for gi := range groups {
			g := &groups[gi]
			size := int64(len(g.members))
			idx := g.members[g.picks%size]
			cur := g.weight*t - total*(g.picks/size)
			if best < 0 || cur > bestCur || (cur == bestCur && idx < bestIdx) {
				best, bestCur, bestIdx = gi, cur, idx
			}
		}
		groups[best].picks++
		schedule = append(schedule, bestIdx)
	}
	return schedule
}

var _ Balancer = (*WeightRoundRobin)(nil)

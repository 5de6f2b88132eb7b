package balancer

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// Random picks an endpoint at random, each with a probability proportional to
// its weight: uniformly when all weights are equal, as they are when no node
// gives a weight (a missing weight is 1, and Normalize turns a weight below 1
// into 1). Like nginx's random, it needs no coordination between pickers or
// gateway instances.
//
// Draws come from math/rand/v2's top-level generator, which is safe for
// concurrent use without a lock. Unequal weights are served in O(1) by Vose's
// alias table, built on Update: one draw chooses a slot, a second chooses
// between the slot's own endpoint and its alias.
//
// With WithSlowStart, a new endpoint's weight ramps up over the window (see
// slowStart): the alias table is rebuilt at each step of the ramp.
//
// The zero value is ready to use and picks nothing until its first Update.
type Random struct {
	mu   sync.Mutex // serializes Update and ramp refreshes; Pick never takes it
	snap atomic.Pointer[randomSnapshot]
	ss   *slowStart // nil: slow start off
	// src replaces rand.Uint64 when set; tests inject a seeded generator.
	src func() uint64
}

type randomSnapshot struct {
	eps []Endpoint
	// keep and alias form the alias table, nil when all weights are equal:
	// slot i yields endpoint i when a uniform draw is below keep[i] and
	// endpoint alias[i] otherwise. A slot that is all its own has alias[i]==i.
	keep  []uint64
	alias []int32
}

// NewRandom returns an empty Random balancer.
func NewRandom(opts ...Option) *Random {
	return &Random{ss: newSlowStart(buildOptions(opts))}
}

// Update implements Observer. It keeps endpoints (normalizing it first if it
// is not normalized): the caller must not modify it afterwards.
func (b *Random) Update(endpoints []Endpoint) {
	endpoints = normalized(endpoints)
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.snap.Load()
	switch {
	case cur != nil && Equal(cur.eps, endpoints):
		return
	case cur != nil && sameWeights(cur.eps, endpoints):
		b.snap.Store(&randomSnapshot{eps: endpoints, keep: cur.keep, alias: cur.alias})
		return
	}
	var prev []Endpoint
	if cur != nil {
		prev = cur.eps
	}
	b.ss.observe(prev, endpoints)
	b.rebuild(endpoints)
}

// rebuild stores a snapshot of endpoints with the alias table of their
// effective weights, and arms the ramp refresh while some endpoint ramps.
// b.mu is held.
func (b *Random) rebuild(endpoints []Endpoint) {
	w, ramping := b.ss.weights(endpoints)
	next := &randomSnapshot{eps: endpoints}
	next.keep, next.alias = aliasTable(w)
	b.snap.Store(next)
	if ramping {
		b.ss.schedule(b.refresh)
	}
}

// refresh rebuilds the alias table at a step of the slow-start ramp.
func (b *Random) refresh() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ss.fired()
	b.rebuild(b.snap.Load().eps)
}

// Pick implements Balancer; key is ignored.
func (b *Random) Pick(string) (Endpoint, error) {
	s := b.snap.Load()
	if s == nil || len(s.eps) == 0 {
		return Endpoint{}, ErrNoEndpoint
	}
	draw := rand.Uint64
	if b.src != nil {
		draw = b.src
	}
	i := uniform(draw(), len(s.eps))
	if s.keep != nil && draw() >= s.keep[i] {
		i = int(s.alias[i])
	}
	return s.eps[i], nil
}

// uniform maps a uniform 64-bit draw to [0, n) by taking the high word of
// u*n (Lemire's method without the rejection step: the bias is below n/2^64).
func uniform(u uint64, n int) int {
	hi, _ := bits.Mul64(u, uint64(n))
	return int(hi)
}

// aliasTable builds Vose's alias table for weights w, or returns nil slices
// when all weights are equal and a uniform draw suffices.
func aliasTable(w []int) (keep []uint64, alias []int32) {
	n := len(w)
	if n == 0 {
		return nil, nil
	}
	var total float64
	equal := true
	for _, wi := range w {
		total += float64(wi)
		equal = equal && wi == w[0]
	}
	if equal {
		return nil, nil
	}
	// p[i] is endpoint i's probability times n: a slot holds exactly 1.
	p := make([]float64, n)
	small := make([]int32, 0, n)
	large := make([]int32, 0, n)
	for i, wi := range w {
		p[i] = float64(wi) * float64(n) / total
		if p[i] < 1 {
			small = append(small, int32(i))
		} else {
			large = append(large, int32(i))
		}
	}
	keep = make([]uint64, n)
	alias = make([]int32, n)
	for len(small) > 0 && len(large) > 0 {
		l, g := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		keep[l], alias[l] = fraction(p[l]), g
		// g gives slot l what l lacks and keeps the rest of its share.
		p[g] -= 1 - p[l]
		if p[g] < 1 {
			large = large[:len(large)-1]
			small = append(small, g)
		}
	}
	// What remains holds a share of 1 up to rounding: the slot is its own.
	for _, rest := range [][]int32{small, large} {
		for _, i := range rest {
			keep[i], alias[i] = math.MaxUint64, i
		}
	}
	return keep, alias
}

// fraction converts a probability in [0, 1) to a threshold for a uniform
// 64-bit draw.
func fraction(p float64) uint64 {
	if p <= 0 {
		return 0
	}
	if p >= 1 {
		return math.MaxUint64
	}
	return uint64(p * (1 << 64))
}

var _ Balancer = (*Random)(nil)

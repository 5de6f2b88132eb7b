package balancer

import (
	"sync"
	"sync/atomic"
)

// RoundRobin picks the endpoints one after the other in address order,
// ignoring their weights (WeightRoundRobin honours them).
//
// One atomic counter, shared by every snapshot, numbers the picks: pick k
// returns endpoint k mod n of the snapshot current at that pick. An Update
// keeps the counter, so a list that changes often does not send the first
// picks after each change to the first address, and an Update that changes
// nothing (see Equal) leaves the position exactly where it was.
//
// The zero value is ready to use and picks nothing until its first Update.
type RoundRobin struct {
	mu   sync.Mutex // serializes Update; Pick never takes it
	snap atomic.Pointer[rrSnapshot]
	next atomic.Uint64
}

type rrSnapshot struct {
	eps []Endpoint
}

// NewRoundRobin returns an empty RoundRobin balancer.
func NewRoundRobin() *RoundRobin { return &RoundRobin{} }

// Update implements Observer. It keeps endpoints (normalizing it first if it
// is not normalized): the caller must not modify it afterwards.
func (b *RoundRobin) Update(endpoints []Endpoint) {
	endpoints = normalized(endpoints)
	b.mu.Lock()
	defer b.mu.Unlock()
	if cur := b.snap.Load(); cur != nil && Equal(cur.eps, endpoints) {
		return
	}
	b.snap.Store(&rrSnapshot{eps: endpoints})
}

// Pick implements Balancer; key is ignored.
func (b *RoundRobin) Pick(string) (Endpoint, error) {
	s := b.snap.Load()
	if s == nil || len(s.eps) == 0 {
		return Endpoint{}, ErrNoEndpoint
	}
	k := b.next.Add(1) - 1
	return s.eps[k%uint64(len(s.eps))], nil
}

var _ Balancer = (*RoundRobin)(nil)

package balancer

import (
	"hash/maphash"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// LeastRequest sends each request to the less loaded of two endpoints drawn
// at random ("power of two random choices"), load being the number of
// requests in flight to it. Comparing two random candidates rather than
// taking the global minimum costs O(1), and avoids sending every new request
// to the same momentarily idle endpoint. Weights are ignored: the load
// itself is the signal.
//
// LeastRequest implements Tracker: Pick counts a request in flight to the
// endpoint it returns, and the caller must call Done with that endpoint once
// the request has finished. Counters are keyed by address and survive
// Updates: an endpoint that stays keeps its count, and one that leaves keeps
// its counter while requests to it are still in flight (until an Update
// finds it idle), so that Done always decrements the right counter, even
// when the endpoint comes back in between. A Done without a matching Pick
// does not leave a counter below zero.
//
// The zero value is ready to use and picks nothing until its first Update.
type LeastRequest struct {
	mu   sync.Mutex // serializes Update; Pick and Done never take it
	snap atomic.Pointer[lrSnapshot]
}

type lrSnapshot struct {
	eps []Endpoint
	// nodes[i] is eps[i] with its counter, side by side so that a pick
	// reads both at once.
	nodes []lrNode
	// byAddr holds the counters of eps and those of departed endpoints
	// with requests still in flight, for Done.
	byAddr *counterTable
}

type lrNode struct {
	ep   Endpoint
	load *inflight
}

// inflight counts the requests in flight to addr. It fills a cache line, so
// that pickers updating neighbouring counters do not contend, and holds its
// address so that Done's lookup finds both on that line.
type inflight struct {
	n    atomic.Int64
	addr string
	_    [40]byte
}

// done decrements the counter, undoing a decrement below zero at once.
func (c *inflight) done() {
	if c.n.Add(-1) < 0 {
		c.n.Add(1)
	}
}

// NewLeastRequest returns an empty LeastRequest balancer.
func NewLeastRequest() *LeastRequest { return &LeastRequest{} }

// Update implements Observer. It keeps endpoints (normalizing it first if it
// is not normalized): the caller must not modify it afterwards.
func (b *LeastRequest) Update(endpoints []Endpoint) {
	endpoints = normalized(endpoints)
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.snap.Load()
	switch {
	case cur != nil && Equal(cur.eps, endpoints):
		return
	case cur != nil && sameAddrs(cur.eps, endpoints):
		next := &lrSnapshot{eps: endpoints, nodes: make([]lrNode, len(endpoints)), byAddr: cur.byAddr}
		for i, e := range endpoints {
			next.nodes[i] = lrNode{ep: e, load: cur.nodes[i].load}
		}
		b.snap.Store(next)
		return
	}
	var old *counterTable
	if cur != nil {
		old = cur.byAddr
	}
	next := &lrSnapshot{eps: endpoints, nodes: make([]lrNode, len(endpoints))}
	// New counters come from one block, so that neighbours in eps have
	// neighbouring counters.
	fresh := 0
	for _, e := range endpoints {
		if old.get(e.Addr) == nil {
			fresh++
		}
	}
	block := make([]inflight, fresh)
	var departed []*inflight
	if old != nil {
		for _, c := range old.slots {
			if c != nil && c.n.Load() > 0 && !containsAddr(endpoints, c.addr) {
				departed = append(departed, c)
			}
		}
	}
	next.byAddr = newCounterTable(len(endpoints) + len(departed))
	for i, e := range endpoints {
		c := old.get(e.Addr)
		if c == nil {
			c = &block[0]
			c.addr = e.Addr
			block = block[1:]
		}
		next.nodes[i] = lrNode{ep: e, load: c}
		next.byAddr.put(c)
	}
	for _, c := range departed {
		next.byAddr.put(c)
	}
	b.snap.Store(next)
}

// containsAddr reports whether the normalized list eps holds addr.
func containsAddr(eps []Endpoint, addr string) bool {
	_, found := slices.BinarySearchFunc(eps, addr, func(e Endpoint, addr string) int { return strings.Compare(e.Addr, addr) })
	return found
}

// Pick implements Balancer; key is ignored. The caller must call Done with
// the returned endpoint when the request has finished.
func (b *LeastRequest) Pick(string) (Endpoint, error) {
	s := b.snap.Load()
	if s == nil || len(s.eps) == 0 {
		return Endpoint{}, ErrNoEndpoint
	}
	n := len(s.eps)
	best := 0
	if n > 1 {
		// Two distinct candidates, one from each half of a 64-bit draw
		// (the bias, below n/2^32, does not matter here): j is drawn among
		// the n-1 others.
		u := rand.Uint64()
		i := int((u >> 32) * uint64(n) >> 32)
		j := int((u & math.MaxUint32) * uint64(n-1) >> 32)
		if j >= i {
			j++
		}
		best = i
		if s.nodes[j].load.n.Load() < s.nodes[i].load.n.Load() {
			best = j
		}
	}
	node := &s.nodes[best]
	node.load.n.Add(1)
	return node.ep, nil
}

// Done implements Tracker: it ends one request in flight to ep.
func (b *LeastRequest) Done(ep Endpoint) {
	if s := b.snap.Load(); s != nil {
		if c := s.byAddr.get(ep.Addr); c != nil {
			c.done()
		}
	}
}

// InFlight returns the number of requests in flight to addr, as counted by
// Pick and Done.
func (b *LeastRequest) InFlight(addr string) int64 {
	if s := b.snap.Load(); s != nil {
		if c := s.byAddr.get(addr); c != nil {
			return c.n.Load()
		}
	}
	return 0
}

// counterTable maps addresses to counters for Done: an open-addressing
// table with linear probing, read-only once published. A lookup reads one
// slot and the counter, which Done needs anyway, where a Go map would read
// several cache lines.
type counterTable struct {
	seed  maphash.Seed
	slots []*inflight // a power of two, at most half full; nil is free
}

func newCounterTable(n int) *counterTable {
	size := 1 << bits.Len(uint(2*n))
	return &counterTable{seed: maphash.MakeSeed(), slots: make([]*inflight, size)}
}

func (t *counterTable) put(c *inflight) {
	mask := uint64(len(t.slots) - 1)
	for i := maphash.String(t.seed, c.addr) & mask; ; i = (i + 1) & mask {
		if t.slots[i] == nil {
			t.slots[i] = c
			return
		}
	}
}

// get returns the counter of addr, or nil; t may be nil.
func (t *counterTable) get(addr string) *inflight {
	if t == nil {
		return nil
	}
	mask := uint64(len(t.slots) - 1)
	for i := maphash.String(t.seed, addr) & mask; ; i = (i + 1) & mask {
		if c := t.slots[i]; c == nil || c.addr == addr {
			return c
		}
	}
}

var (
	_ Balancer = (*LeastRequest)(nil)
	_ Tracker  = (*LeastRequest)(nil)
)

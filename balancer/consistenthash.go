package balancer

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
)

const (
	// vnodesPerWeight is the number of ring points one unit of weight gives
	// an endpoint. More points spread the keys more evenly (the share of an
	// endpoint with p points deviates from its weight's by about 1/sqrt(p)).
	vnodesPerWeight = 100
	// maxRing bounds the ring (8 bytes a point: 2 MiB at most) unless the
	// list itself is longer. A larger ring spreads keys more evenly but
	// makes every Pick's search miss the cache more.
	maxRing = 1 << 18
)

// ConsistentHash maps each key to an endpoint through a hash ring, so that a
// key keeps its endpoint while the membership changes and a change of one
// endpoint among n moves about 1/n of the keys: adding an endpoint moves keys
// only to it, removing one moves only its keys.
//
// Each endpoint owns vnodesPerWeight points on the ring per unit of weight (a
// missing weight is 1 and Normalize turns a weight below 1 into 1), and a key
// belongs to the endpoint owning the first point at or after the key's hash.
// Large lists get fewer points per unit (see vnodeCounts), so that the ring
// stays within maxRing points: the keys then spread less evenly, and a change
// that alters the number of points per unit moves about half of them.
//
// The mapping depends only on the addresses, the weights and the key: two
// processes with the same list map every key alike. Positions are 32-bit:
// an endpoint's are the high halves of the splitmix64 sequence seeded with
// the FNV-1a 64 hash of its address, a key's is the high half of its FNV-1a
// 64 hash passed through the splitmix64 finalizer, and points at one position
// are ordered by address. Changing any of this remaps every key, so it is
// part of the contract.
//
// Pick with an empty key, which a request lacking the configured header or
// cookie yields, returns a uniformly random endpoint rather than sending all
// such requests to a single endpoint.
//
// The zero value is ready to use and picks nothing until its first Update.
type ConsistentHash struct {
	mu   sync.Mutex // serializes Update; Pick never takes it
	snap atomic.Pointer[chSnapshot]
}

type chSnapshot struct {
	eps []Endpoint
	*ring
}

// ring is the sorted points with their owners, plus an index on the points'
// top bits that narrows each search to a few points.
type ring struct {
	// points holds each point's position in its high 32 bits and its
	// owner's index in eps in its low 32 bits, sorted: points at one
	// position are ordered by owner, hence by address.
	points []uint64
	// counts[i] is the number of points of eps[i].
	counts []int
	// index[p] is the first point whose value>>shift is p or more;
	// len(index) == 1<<(64-shift) + 1.
	index []uint32
	shift uint
}

// NewConsistentHash returns an empty ConsistentHash balancer.
func NewConsistentHash() *ConsistentHash { return &ConsistentHash{} }

// Update implements Observer. It keeps endpoints (normalizing it first if it
// is not normalized): the caller must not modify it afterwards.
func (b *ConsistentHash) Update(endpoints []Endpoint) {
	endpoints = normalized(endpoints)
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.snap.Load()
	switch {
	case cur != nil && Equal(cur.eps, endpoints):
		return
	case cur != nil && sameWeights(cur.eps, endpoints):
		b.snap.Store(&chSnapshot{eps: endpoints, ring: cur.ring})
		return
	}
	var prev []Endpoint
	var prevRing *ring
	if cur != nil {
		prev, prevRing = cur.eps, cur.ring
	}
	b.snap.Store(&chSnapshot{eps: endpoints, ring: buildRing(endpoints, prev, prevRing)})
}

// Pick implements Balancer: it returns the endpoint owning key, or a random
// endpoint when key is empty.
func (b *ConsistentHash) Pick(key string) (Endpoint, error) {
	s := b.snap.Load()
	if s == nil || len(s.eps) == 0 {
		return Endpoint{}, ErrNoEndpoint
	}
	if key == "" {
		return s.eps[uniform(rand.Uint64(), len(s.eps))], nil
	}
	return s.eps[s.owner(hashKey(key))], nil
}

// owner returns the index in eps of the owner of the first point at or
// after position pos, wrapping around.
func (r *ring) owner(pos uint32) int {
	key := uint64(pos) << 32
	p := key >> r.shift
	lo, hi := r.index[p], r.index[p+1]
	for lo < hi {
		mid := lo + (hi-lo)/2
		if r.points[mid] < key {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if int(lo) == len(r.points) {
		lo = 0
	}
	return int(uint32(r.points[lo]))
}

// vnodeCounts returns how many ring points each endpoint gets: perWeight
// points per unit of weight, perWeight being vnodesPerWeight halved (rounding
// down) as often as needed to keep the ring within max(maxRing, len(eps))
// points. Halving in steps rather than scaling to fit exactly leaves the
// counts, hence the mapping, unchanged by most changes of membership; a
// change that crosses a step moves about half the keys. When even one point
// per unit of weight exceeds the bound, the counts are the weights scaled
// down proportionally, at least 1 each.
func vnodeCounts(eps []Endpoint) []int {
	limit := float64(max(maxRing, len(eps)))
	var total float64
	for _, e := range eps {
		total += float64(max(e.Weight, 1))
	}
	per := vnodesPerWeight
	for per > 1 && total*float64(per) > limit {
		per /= 2
	}
	scale := float64(per)
	if total*scale > limit {
		scale = limit / total
	}
	counts := make([]int, len(eps))
	for i, e := range eps {
		counts[i] = max(1, int(math.Floor(float64(max(e.Weight, 1))*scale)))
	}
	return counts
}

// appendPoints appends the count points of the endpoint at addr, owned by
// index owner: the positions are the high halves of the splitmix64
// sequence seeded with the FNV-1a 64 hash of addr.
func appendPoints(points []uint64, addr string, count, owner int) []uint64 {
	state := fnv1a(addr)
	for range count {
		state += splitmixGamma
		points = append(points, mix64(state)>>32<<32|uint64(owner))
	}
	return points
}

// buildRing returns the ring of eps. When prevRing, the ring of prev, is
// given and most endpoints keep their points, it reuses them: it drops the
// points of departed endpoints and of those whose count changed, renumbers
// the owners, and merges in the new points, in O(points) rather than
// O(points log points).
func buildRing(eps, prev []Endpoint, prevRing *ring) *ring {
	counts := vnodeCounts(eps)
	total := 0
	for _, c := range counts {
		total += c
	}
	// renumber[i] is the new index of prev[i], or -1 if its points go.
	var renumber []int
	fresh := make([]bool, len(eps))
	freshPoints := total
	if prevRing != nil {
		renumber = make([]int, len(prev))
		i := 0
		for j, e := range eps {
			for i < len(prev) && prev[i].Addr < e.Addr {
				renumber[i] = -1
				i++
			}
			if i < len(prev) && prev[i].Addr == e.Addr && prevRing.counts[i] == counts[j] {
				renumber[i] = j
				freshPoints -= counts[j]
				i++
				continue
			}
			fresh[j] = true
		}
		for ; i < len(prev); i++ {
			renumber[i] = -1
		}
	}
	r := &ring{counts: counts}
	if prevRing == nil || freshPoints > total/2 {
		r.points = make([]uint64, 0, total)
		for j, e := range eps {
			r.points = appendPoints(r.points, e.Addr, counts[j], j)
		}
		slices.Sort(r.points)
	} else {
		added := make([]uint64, 0, freshPoints)
		for j, e := range eps {
			if fresh[j] {
				added = appendPoints(added, e.Addr, counts[j], j)
			}
		}
		slices.Sort(added)
		r.points = mergePoints(make([]uint64, 0, total), prevRing.points, renumber, added)
	}
	r.buildIndex()
	return r
}

// mergePoints appends to out, in order, the old points whose owners are
// kept (renumbered) and the added points. Renumbering keeps the old points
// sorted, since it preserves the order of owners.
func mergePoints(out, old []uint64, renumber []int, added []uint64) []uint64 {
	for _, p := range old {
		owner := renumber[uint32(p)]
		if owner < 0 {
			continue
		}
		p = p>>32<<32 | uint64(owner)
		for len(added) > 0 && added[0] < p {
			out = append(out, added[0])
			added = added[1:]
		}
		out = append(out, p)
	}
	return append(out, added...)
}

// buildIndex indexes the points by their top bits, about 8 points a bucket,
// so that a search reads a cache line or two.
func (r *ring) buildIndex() {
	indexBits := min(max(bits.Len(uint(len(r.points)))-4, 0), 20)
	r.shift = uint(64 - indexBits)
	r.index = make([]uint32, 1<<indexBits+1)
	for _, p := range r.points {
		r.index[(p>>r.shift)+1]++
	}
	for i := 1; i < len(r.index); i++ {
		r.index[i] += r.index[i-1]
	}
}

const (
	fnvOffset64   = 14695981039346656037
	fnvPrime64    = 1099511628211
	splitmixGamma = 0x9e3779b97f4a7c15
)

// fnv1a returns the FNV-1a 64 hash of s.
func fnv1a(s string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return h
}

// mix64 is splitmix64's finalizer: it spreads every input bit over the whole
// output, which FNV-1a alone does poorly for short keys.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// hashKey is the ring position of a key: the high half of its FNV-1a 64
// hash passed through the splitmix64 finalizer.
func hashKey(key string) uint32 { return uint32(mix64(fnv1a(key)) >> 32) }

var _ Balancer = (*ConsistentHash)(nil)

package balancer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"testing"
)

// hashKeys returns n distinct keys shaped like user IDs.
func hashKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "user-" + strconv.Itoa(i)
	}
	return keys
}

// mapping returns the address each key maps to.
func mapping(t *testing.T, b Balancer, keys []string) []string {
	t.Helper()
	out := make([]string, len(keys))
	for i, k := range keys {
		e, err := b.Pick(k)
		if err != nil {
			t.Fatalf("Pick(%q): %v", k, err)
		}
		out[i] = e.Addr
	}
	return out
}

func TestFNV1aVectors(t *testing.T) {
	// Published FNV-1a 64 test vectors: the ring depends on them.
	for s, want := range map[string]uint64{"": 0xcbf29ce484222325, "a": 0xaf63dc4c8601ec8c, "foobar": 0x85944171f73967e8} {
		if got := fnv1a(s); got != want {
			t.Errorf("fnv1a(%q) = %#x, want %#x", s, got, want)
		}
	}
}

func TestConsistentHashGoldenMapping(t *testing.T) {
	// Pins the mapping: a change here remaps every key of every gateway
	// deployed with the old code, which must be a deliberate decision.
	b := NewConsistentHash()
	b.Update(listN(5, 0))
	got := mapping(t, b, []string{"alice", "bob", "carol", "dave", "erin", "frank"})
	want := []string{"10.000.001.1:80", "10.000.004.1:80", "10.000.002.1:80", "10.000.002.1:80", "10.000.003.1:80", "10.000.003.1:80"}
	if !slices.Equal(got, want) {
		t.Errorf("mapping = %q, want %q", got, want)
	}
}

func TestConsistentHashStableAcrossInstances(t *testing.T) {
	keys := hashKeys(20000)
	eps := listN(50, 4)
	b1, b2 := NewConsistentHash(), NewConsistentHash()
	b1.Update(eps)
	// The second instance gets the same membership in another order and
	// through an intermediate state, as another gateway process might.
	b2.Update(eps[:10])
	rev := slices.Clone(eps)
	slices.Reverse(rev)
	b2.Update(rev)
	if m1, m2 := mapping(t, b1, keys), mapping(t, b2, keys); !slices.Equal(m1, m2) {
		t.Error("two balancers with the same endpoints map keys differently")
	}
}

// ringMapping returns the address each key hash maps to in b's snapshot:
// Pick without the key hashing, which the remapping tests do once.
func ringMapping(b *ConsistentHash, hashes []uint32) []string {
	s := b.snap.Load()
	out := make([]string, len(hashes))
	for i, h := range hashes {
		out[i] = s.eps[s.owner(h)].Addr
	}
	return out
}

func TestConsistentHashRemapping(t *testing.T) {
	keys := hashKeys(200000)
	hashes := make([]uint32, len(keys))
	for i, k := range keys {
		hashes[i] = hashKey(k)
	}
	for _, n := range []int{10, 100, 1000} {
		eps := listN(n, 0)
		extra := Endpoint{Addr: "192.168.0.1:80", Weight: 1}
		grown := Normalize(append(slices.Clone(eps), extra))
		gone := eps[n/2]
		shrunk := slices.Delete(slices.Clone(eps), n/2, n/2+1)

		b := NewConsistentHash()
		b.Update(eps)
		before := ringMapping(b, hashes)
		b.Update(grown)
		afterAdd := ringMapping(b, hashes)
		b.Update(shrunk)
		afterRemove := ringMapping(b, hashes)

		bound := 1.5 / float64(n)
		moved := 0
		for i := range keys {
			if afterAdd[i] != before[i] {
				moved++
				if afterAdd[i] != extra.Addr {
					t.Fatalf("n=%d: adding %s moved key %q from %s to %s", n, extra.Addr, keys[i], before[i], afterAdd[i])
				}
			}
		}
		movedOnAdd := float64(moved) / float64(len(keys))
		if movedOnAdd > bound || moved == 0 {
			t.Errorf("n=%d: adding one endpoint moved %.4f of the keys, want (0, %.4f]", n, movedOnAdd, bound)
		}
		moved = 0
		for i := range keys {
			if afterRemove[i] != before[i] {
				moved++
				if before[i] != gone.Addr {
					t.Fatalf("n=%d: removing %s moved key %q from %s", n, gone.Addr, keys[i], before[i])
				}
			}
		}
		movedOnRemove := float64(moved) / float64(len(keys))
		if movedOnRemove > bound || moved == 0 {
			t.Errorf("n=%d: removing one endpoint moved %.4f of the keys, want (0, %.4f]", n, movedOnRemove, bound)
		}
		t.Logf("n=%d: moved %.5f on add, %.5f on remove (bound %.5f)", n, movedOnAdd, movedOnRemove, bound)
	}
}

func TestConsistentHashWeightShares(t *testing.T) {
	keys := hashKeys(100000)
	eps := list(1, 1, 2, 4)
	b := NewConsistentHash()
	b.Update(eps)
	counts := map[string]int{}
	for _, a := range mapping(t, b, keys) {
		counts[a]++
	}
	for _, e := range eps {
		want := float64(len(keys)) * float64(e.Weight) / 8
		if got := float64(counts[e.Addr]); got < 0.8*want || got > 1.2*want {
			t.Errorf("%s (weight %d) owns %.0f keys, want %.0f ±20%%", e.Addr, e.Weight, got, want)
		}
	}
}

func TestConsistentHashWeightChangeMovesFewKeys(t *testing.T) {
	keys := hashKeys(50000)
	b := NewConsistentHash()
	b.Update(list(1, 1, 1, 1))
	before := mapping(t, b, keys)
	b.Update(list(1, 2, 1, 1)) // the second gains points; nothing else moves
	for i, a := range mapping(t, b, keys) {
		if a != before[i] && a != "10.0.0.2:80" {
			t.Fatalf("key %q moved from %s to %s, not to the endpoint that gained weight", keys[i], before[i], a)
		}
	}
}

// plainOwner is ring.owner without the index: a binary search over all the
// points.
func plainOwner(r *ring, pos uint32) int {
	key := uint64(pos) << 32
	i := sort.Search(len(r.points), func(i int) bool { return r.points[i] >= key })
	if i == len(r.points) {
		i = 0
	}
	return int(uint32(r.points[i]))
}

func TestRingIndexMatchesPlainSearch(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 3, 40, 500} {
		rg := buildRing(listN(n, 3), nil, nil)
		if !slices.IsSorted(rg.points) {
			t.Fatalf("n=%d: ring not sorted", n)
		}
		last := uint32(rg.points[len(rg.points)-1] >> 32)
		probe := []uint32{0, 1, ^uint32(0), uint32(rg.points[0] >> 32), last, last + 1}
		for range 2000 {
			probe = append(probe, r.Uint32())
			pos := uint32(rg.points[r.IntN(len(rg.points))] >> 32)
			probe = append(probe, pos, pos-1, pos+1)
		}
		for _, pos := range probe {
			if got, want := rg.owner(pos), plainOwner(rg, pos); got != want {
				t.Fatalf("n=%d: owner(%#x) = %d, want %d", n, pos, got, want)
			}
		}
	}
}

func TestRingIncrementalBuildMatchesFull(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	eps := listN(300, 4)
	prev := buildRing(eps, nil, nil)
	for step := range 30 {
		next := slices.Clone(eps)
		switch step % 3 {
		case 0: // remove one
			i := r.IntN(len(next))
			next = slices.Delete(next, i, i+1)
		case 1: // add one
			next = Normalize(append(next, Endpoint{Addr: "172.16.0." + strconv.Itoa(step) + ":80", Weight: 1 + r.IntN(3)}))
		case 2: // change a weight
			next[r.IntN(len(next))].Weight += 1 + r.IntN(3)
		}
		got := buildRing(next, eps, prev)
		want := buildRing(next, nil, nil)
		if !slices.Equal(got.points, want.points) || !slices.Equal(got.index, want.index) {
			t.Fatalf("step %d: incremental ring differs from a full build", step)
		}
		eps, prev = next, got
	}
}

func TestVnodeCounts(t *testing.T) {
	weights := func(n, w int) []Endpoint {
		eps := make([]Endpoint, n)
		for i := range eps {
			eps[i].Weight = w
		}
		return eps
	}
	sum := func(counts []int) (s int) {
		for _, c := range counts {
			s += c
		}
		return s
	}
	if got, want := vnodeCounts(list(1, 3)), []int{vnodesPerWeight, 3 * vnodesPerWeight}; !slices.Equal(got, want) {
		t.Errorf("vnodeCounts = %v, want %v", got, want)
	}
	// Just fitting: every unit of weight keeps vnodesPerWeight points.
	fits := maxRing / vnodesPerWeight
	if got := vnodeCounts(weights(fits, 1)); got[0] != vnodesPerWeight || sum(got) > maxRing {
		t.Errorf("%d endpoints: %d points each (%d in all), want %d", fits, got[0], sum(got), vnodesPerWeight)
	}
	// One more halves the points per unit, in one step for all.
	if got := vnodeCounts(weights(fits+1, 2)); got[0] != 2*(vnodesPerWeight/4) {
		t.Errorf("%d endpoints of weight 2: %d points each, want %d", fits+1, got[0], 2*(vnodesPerWeight/4))
	}
	// A total weight beyond maxRing is scaled down proportionally, each
	// keeping at least one point.
	eps := weights(100, 100000)
	eps[0].Weight = 1
	counts := vnodeCounts(eps)
	if s := sum(counts); s > maxRing+len(eps) {
		t.Errorf("ring of %d points exceeds maxRing %d", s, maxRing)
	}
	if counts[0] != 1 || counts[1] < maxRing/100-1 {
		t.Errorf("scaled counts %d and %d, want 1 and about %d", counts[0], counts[1], maxRing/100)
	}
}

func TestConsistentHashEmptyKeyIsRandom(t *testing.T) {
	b := NewConsistentHash()
	b.Update(list(1, 1, 1))
	seen := map[string]bool{}
	for _, a := range picks(t, b, 600) {
		seen[a] = true
	}
	if len(seen) != 3 {
		t.Errorf("600 picks with an empty key reached %d of 3 endpoints", len(seen))
	}
}

func TestConsistentHashMetaOnlyKeepsRing(t *testing.T) {
	b := NewConsistentHash()
	b.Update(list(1, 2))
	r := b.snap.Load().ring
	next := list(1, 2)
	next[0].ID = "re-registered"
	b.Update(next)
	if s := b.snap.Load(); s.ring != r || s.eps[0].ID != "re-registered" {
		t.Error("an ID-only Update rebuilt the ring or dropped the new ID")
	}
}

func ExampleConsistentHash() {
	b := NewConsistentHash()
	b.Update([]Endpoint{{Addr: "10.0.0.1:80"}, {Addr: "10.0.0.2:80"}})
	first, _ := b.Pick("user-42")
	again, _ := b.Pick("user-42")
	fmt.Println(first.Addr == again.Addr)
	// Output: true
}

package balancer

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"
)

// eachAlgorithm runs f on a fresh balancer of every algorithm.
func eachAlgorithm(t *testing.T, f func(t *testing.T, b Balancer)) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			b, err := New(name)
			if err != nil {
				t.Fatal(err)
			}
			f(t, b)
		})
	}
}

// pickDone picks with key and, for trackers, ends the request at once.
func pickDone(b Balancer, key string) (Endpoint, error) {
	e, err := b.Pick(key)
	if tr, ok := b.(Tracker); ok && err == nil {
		tr.Done(e)
	}
	return e, err
}

func TestEmptyListHasNoEndpoint(t *testing.T) {
	eachAlgorithm(t, func(t *testing.T, b Balancer) {
		if _, err := b.Pick("k"); !errors.Is(err, ErrNoEndpoint) {
			t.Errorf("Pick before any Update: err = %v, want ErrNoEndpoint", err)
		}
		b.Update(list(1, 2))
		if _, err := b.Pick("k"); err != nil {
			t.Fatalf("Pick with endpoints: %v", err)
		}
		for _, empty := range [][]Endpoint{nil, {}} {
			b.Update(empty)
			if e, err := b.Pick("k"); !errors.Is(err, ErrNoEndpoint) {
				t.Errorf("Pick after Update(%#v) = %+v, %v; want ErrNoEndpoint", empty, e, err)
			}
		}
	})
	for _, b := range []Balancer{&Random{}, &RoundRobin{}, &WeightRoundRobin{}, &ConsistentHash{}, &LeastRequest{}} {
		if _, err := b.Pick("k"); !errors.Is(err, ErrNoEndpoint) {
			t.Errorf("zero %T: err = %v, want ErrNoEndpoint", b, err)
		}
	}
}

func TestPickReturnsMembersWhole(t *testing.T) {
	eps := list(1, 2, 3)
	for i := range eps {
		eps[i].Meta = map[string]string{"i": strconv.Itoa(i)}
	}
	eachAlgorithm(t, func(t *testing.T, b Balancer) {
		b.Update(eps)
		for i := range 100 {
			e, err := pickDone(b, "key-"+strconv.Itoa(i))
			if err != nil {
				t.Fatal(err)
			}
			j := slices.IndexFunc(eps, func(x Endpoint) bool { return x.Addr == e.Addr })
			if j < 0 || !Equal([]Endpoint{e}, eps[j:j+1]) {
				t.Fatalf("picked %+v, not one of %+v", e, eps)
			}
		}
	})
}

func TestUpdateNormalizesInput(t *testing.T) {
	raw := []Endpoint{
		{Addr: "10.0.0.3:80", Weight: 0},
		{Addr: "10.0.0.1:80", Weight: 1},
		{Addr: "10.0.0.3:80", Weight: 1},
		{Addr: "10.0.0.2:80", Weight: -1},
	}
	eachAlgorithm(t, func(t *testing.T, b Balancer) {
		b.Update(raw)
		seen := map[string]int{}
		for i := range 300 {
			e, err := pickDone(b, strconv.Itoa(i))
			if err != nil {
				t.Fatal(err)
			}
			seen[e.Addr]++
		}
		if len(seen) != 3 {
			t.Errorf("picks reached %v, want the 3 distinct addresses", seen)
		}
	})
	rr := NewRoundRobin()
	rr.Update(raw)
	if got, want := picks(t, rr, 3), []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}; !slices.Equal(got, want) {
		t.Errorf("round robin over an unsorted list picked %v, want %v", got, want)
	}
}

func TestPickAllocatesNothing(t *testing.T) {
	eachAlgorithm(t, func(t *testing.T, b Balancer) {
		b.Update(listN(200, 5))
		keys := hashKeys(64)
		i := 0
		allocs := testing.AllocsPerRun(1000, func() {
			i++
			if _, err := pickDone(b, keys[i%len(keys)]); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("Pick allocates %.1f times a call, want 0", allocs)
		}
	})
}

// Pick's key points into a reused buffer on the proxy's fast path (the
// Balancer doc's contract): picking through one buffer, overwritten for
// each key, must give every key the endpoint a fresh string gets, before
// and after the buffer changed. A balancer that kept the key (a cache keyed
// by it) would answer a later key with an earlier one's endpoint.
func TestPickDoesNotKeepTheKey(t *testing.T) {
	// Only consistent hashing reads the key.
	b := &ConsistentHash{}
	b.Update(listN(50, 3))
	{
		keys := hashKeys(200)
		buf := make([]byte, 64)
		viaBuffer := func(k string) string {
			n := copy(buf, k)
			clear(buf[n:])
			return unsafe.String(&buf[0], n)
		}
		got := make([]string, len(keys))
		for i, k := range keys {
			e, err := pickDone(b, viaBuffer(k))
			if err != nil {
				t.Fatal(err)
			}
			got[i] = e.Addr
		}
		for i, k := range keys {
			viaBuffer("overwritten-" + k)
			e, err := pickDone(b, strings.Clone(k))
			if err != nil {
				t.Fatal(err)
			}
			if e.Addr != got[i] {
				t.Fatalf("key %q: %s through the reused buffer, %s as a fresh string", k, got[i], e.Addr)
			}
		}
	}
}

func TestConcurrentPickAndUpdate(t *testing.T) {
	lists := [][]Endpoint{listN(3, 0), listN(10, 4), listN(7, 2), {}, listN(1, 0)}
	members := map[string]bool{}
	for _, l := range lists {
		for _, e := range l {
			members[e.Addr] = true
		}
	}
	eachAlgorithm(t, func(t *testing.T, b Balancer) {
		b.Update(lists[0])
		var stop atomic.Bool
		var wg sync.WaitGroup
		var picked atomic.Int64
		for g := range 3 {
			wg.Go(func() {
				for k := 0; !stop.Load() || k < 200; k++ {
					e, err := pickDone(b, strconv.Itoa(g*1000+k))
					switch {
					case errors.Is(err, ErrNoEndpoint):
					case err != nil:
						t.Error(err)
						return
					case !members[e.Addr]:
						t.Errorf("picked %q, in no published list", e.Addr)
						return
					default:
						picked.Add(1)
					}
				}
			})
		}
		for k := range 100 {
			b.Update(lists[k%len(lists)])
		}
		stop.Store(true)
		wg.Wait()
		if picked.Load() == 0 {
			t.Error("no pick succeeded")
		}
	})
}

// snapshotOf returns b's current snapshot pointer.
func snapshotOf(t *testing.T, b Balancer) any {
	t.Helper()
	switch b := b.(type) {
	case *Random:
		return b.snap.Load()
	case *RoundRobin:
		return b.snap.Load()
	case *WeightRoundRobin:
		return b.snap.Load()
	case *ConsistentHash:
		return b.snap.Load()
	case *LeastRequest:
		return b.snap.Load()
	}
	t.Fatalf("unknown balancer %T", b)
	return nil
}

func TestSameMembershipUpdateKeepsSnapshot(t *testing.T) {
	eachAlgorithm(t, func(t *testing.T, b Balancer) {
		b.Update(listN(50, 3))
		before := snapshotOf(t, b)
		// A fresh list with the same membership, as a ZooKeeper event that
		// changes nothing produces; also in another order.
		b.Update(listN(50, 3))
		shuffled := listN(50, 3)
		slices.Reverse(shuffled)
		b.Update(shuffled)
		if snapshotOf(t, b) != before {
			t.Error("an Update with the same membership replaced the snapshot")
		}
		changed := listN(50, 3)
		changed[7].Weight++
		b.Update(changed)
		if snapshotOf(t, b) == before {
			t.Error("an Update changing a weight kept the old snapshot")
		}
	})
}

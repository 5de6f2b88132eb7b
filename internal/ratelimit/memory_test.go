package ratelimit

import (
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// heapAfterGC returns the live heap.
func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// distinctKeys is how many distinct keys the memory tests send: 1,000,000,
// or, under the race detector (which makes each a thousand times slower
// and measures nothing about memory), 250,000, still 2.5 times the bound.
func distinctKeys() int {
	if raceEnabled {
		return 250_000
	}
	return 1_000_000
}

// TestMemoryBoundedUnderDistinctKeys sends 1,000,000 distinct client
// addresses (IPv4 text, as the client_ip key is) through a Limiter of the
// default MaxKeys, 100,000 per virtual second against a limit of 1 per
// second: keys both refill (and are dropped as full) and are evicted while
// active. The number of keys stays within MaxKeys, and the heap, once the
// bound is reached, stops growing.
func TestMemoryBoundedUnderDistinctKeys(t *testing.T) {
	distinct := distinctKeys()
	cfg := Config{Average: 1, Burst: 1}
	base := heapAfterGC()
	l := newLimiter(t, cfg)
	ip := netip.MustParseAddr("10.0.0.0")
	var buf []byte
	var atBound uint64 // heap when the limiter first holds MaxKeys' worth
	for i := range distinct {
		ip = ip.Next()
		buf = ip.AppendTo(buf[:0])
		now := at(time.Duration(i) * 10 * time.Microsecond)
		l.Allow(string(buf), now)
		if i == 2*DefaultMaxKeys {
			atBound = heapAfterGC() - base
			if n := l.Keys(); n > DefaultMaxKeys || n < DefaultMaxKeys*9/10 {
				t.Fatalf("after %d keys: %d tracked, want at most (and near) %d", i+1, n, DefaultMaxKeys)
			}
		}
	}
	keys := l.Keys()
	total := heapAfterGC() - base
	runtime.KeepAlive(l)
	if keys > DefaultMaxKeys {
		t.Errorf("%d keys tracked after %d distinct keys, MaxKeys is %d", keys, distinct, DefaultMaxKeys)
	}
	perKey := float64(total) / float64(keys)
	t.Logf("%d distinct keys: %d tracked, heap %.2f MB (%.2f MB at 200,000 keys), %.1f bytes per tracked key, %d evicted while active",
		distinct, keys, float64(total)/1e6, float64(atBound)/1e6, perKey, l.Evicted())
	// The map of a shard is sized by its peak; churn past the bound must
	// not grow it (tombstones, rehashing) beyond a tenth.
	if total > atBound+atBound/10 {
		t.Errorf("heap grew from %d to %d bytes between 200,000 and %d distinct keys: not bounded", atBound, total, distinct)
	}
	// The package doc says about 60 bytes per key, 6 MB at the default
	// bound. (Maps that kept their deleted slots grew to 98 bytes per key.)
	// The race detector's runtime costs a few bytes more.
	maxPerKey := 75.0
	if raceEnabled {
		maxPerKey = 90
	}
	if perKey > maxPerKey || float64(total) > maxPerKey*DefaultMaxKeys {
		t.Errorf("%.0f bytes per key, %d in all: want at most %.0f per key and %.0f in all", perKey, total, maxPerKey, maxPerKey*DefaultMaxKeys)
	}
}

// TestMemoryBoundedUnderActiveFlood: 1,000,000 distinct keys at one
// instant, none of which ever refills: every room is made by evicting
// active keys, and the bound still holds.
func TestMemoryBoundedUnderActiveFlood(t *testing.T) {
	distinct := distinctKeys()
	l := newLimiter(t, Config{Average: 1, Period: time.Hour, Burst: 1, MaxKeys: 50_000})
	ip := netip.MustParseAddr("2001:db8::")
	var buf []byte
	for range distinct {
		ip = ip.Next()
		buf = ip.AppendTo(buf[:0])
		if !l.Allow(string(buf), t0).Allowed {
			t.Fatalf("new key %s refused", buf)
		}
	}
	if n := l.Keys(); n > 50_000 || n < 40_000 {
		t.Errorf("%d keys tracked, want at most (and near) 50,000", n)
	}
	if n := l.Evicted(); n < uint64(distinct-50_000) {
		t.Errorf("Evicted() = %d, want at least %d", n, distinct-50_000)
	}
}

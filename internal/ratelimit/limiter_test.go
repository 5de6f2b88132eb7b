package ratelimit

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// t0 is the virtual clock's origin in these tests: a time without a
// monotonic reading, far from the limiter's epoch.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func newLimiter(t testing.TB, cfg Config) *Limiter {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func check(t *testing.T, what string, got, want Decision) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %+v, want %+v", what, got, want)
	}
}

// TestDecisions walks one key through a burst, a refusal and a refill and
// checks every field of every decision: Burst 5, 10 per second (one token
// per 100ms, 500ms to fill).
func TestDecisions(t *testing.T) {
	l := newLimiter(t, Config{Average: 10, Burst: 5})
	ms := time.Millisecond
	for i := range 5 {
		check(t, "burst request "+strconv.Itoa(i), l.Allow("k", at(0)),
			Decision{Allowed: true, Remaining: 4 - i, Reset: time.Duration(i+1) * 100 * ms})
	}
	check(t, "sixth request at once", l.Allow("k", at(0)),
		Decision{RetryAfter: 100 * ms, Reset: 500 * ms})
	check(t, "1ns before the first token is back", l.Allow("k", at(100*ms-1)),
		Decision{RetryAfter: 1, Reset: 400*ms + 1})
	check(t, "when the first token is back", l.Allow("k", at(100*ms)),
		Decision{Allowed: true, Remaining: 0, Reset: 500 * ms})
	// 2.5 tokens back by 350ms: one is taken, 1.5 are left.
	check(t, "after 2.5 intervals", l.Allow("k", at(350*ms)),
		Decision{Allowed: true, Remaining: 1, Reset: 350 * ms})
	// Idle until full: the next request finds a full bucket.
	check(t, "when full again", l.Allow("k", at(700*ms)),
		Decision{Allowed: true, Remaining: 4, Reset: 100 * ms})
	check(t, "long after", l.Allow("k", at(time.Hour)),
		Decision{Allowed: true, Remaining: 4, Reset: 100 * ms})
	// Another key is independent.
	check(t, "another key", l.Allow("other", at(time.Hour)),
		Decision{Allowed: true, Remaining: 4, Reset: 100 * ms})
}

// TestRefillExact checks that an exhausted bucket gives back exactly
// Average tokens per Period, for rates whose interval is and is not a whole
// number of nanoseconds, over one and many periods.
func TestRefillExact(t *testing.T) {
	cases := []struct {
		average float64
		period  time.Duration
		burst   int
		step    time.Duration // how often the key empties its bucket
	}{
		{10, time.Second, 10, time.Second},
		{3, time.Second, 3, time.Second}, // 333,333,333.3ns per token
		{60, time.Minute, 1, time.Second},
		{0.5, time.Second, 1, time.Second}, // one every 2s
		{1000, time.Second, 50, 50 * time.Millisecond},
		{7, 3 * time.Second, 3, time.Second}, // 7/3 per second
	}
	for _, c := range cases {
		name := strconv.FormatFloat(c.average, 'g', -1, 64) + "/" + c.period.String()
		t.Run(name, func(t *testing.T) {
			l := newLimiter(t, Config{Average: c.average, Period: c.period, Burst: c.burst})
			got := 0
			for l.Allow("k", at(0)).Allowed {
				got++
			}
			if got != c.burst {
				t.Fatalf("an idle key got %d requests at once, want the burst %d", got, c.burst)
			}
			// tokens(k) is how many tokens have come back by k steps.
			tokens := func(k int) int { return int(float64(k) * float64(c.step) * c.average / float64(c.period)) }
			total := 0
			for k := 1; k <= 30; k++ {
				n := 0
				for l.Allow("k", at(time.Duration(k)*c.step)).Allowed {
					n++
				}
				if want := tokens(k) - tokens(k-1); n != want {
					t.Errorf("step %d (%s): %d tokens back, want %d", k, time.Duration(k)*c.step, n, want)
				}
				total += n
			}
			if want := tokens(30); total != want {
				t.Errorf("%d tokens back over %s, want %d", total, 30*c.step, want)
			}
		})
	}
}

// TestOutOfOrderStamps checks that a request stamped before one already
// counted is charged from the later stamp, so that skewed callers cannot
// admit more than the rate.
func TestOutOfOrderStamps(t *testing.T) {
	l := newLimiter(t, Config{Average: 1, Burst: 1})
	if !l.Allow("k", at(time.Second)).Allowed {
		t.Fatal("first request refused")
	}
	d := l.Allow("k", at(0))
	if d.Allowed || d.RetryAfter != 2*time.Second {
		t.Errorf("a request stamped 1s before the counted one: %+v, want refused for 2s", d)
	}
}

// TestAbsurdClock checks that times far from now (the zero Time, the year
// 9999) neither overflow nor admit more than the burst.
func TestAbsurdClock(t *testing.T) {
	l := newLimiter(t, Config{Average: 1, Period: time.Hour, Burst: 2})
	for _, now := range []time.Time{{}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)} {
		n := 0
		for range 10 {
			d := l.Allow(now.String(), now)
			if d.Allowed {
				n++
			}
			if d.Remaining < 0 || d.RetryAfter < 0 || d.Reset < 0 || d.Reset > 2*time.Hour {
				t.Errorf("at %s: %+v", now, d)
			}
		}
		if n != 2 {
			t.Errorf("at %s: %d of 10 allowed, want the burst of 2", now, n)
		}
	}
}

// TestKeyNotRetained checks that Allow copies a new key rather than keeping
// the caller's string: the proxy passes keys that alias a buffer it reuses.
// A limiter that kept the string would find its map key rewritten under it.
func TestKeyNotRetained(t *testing.T) {
	l := newLimiter(t, Config{Average: 1, Burst: 1})
	buf := []byte("client-a")
	key := unsafe.String(&buf[0], len(buf))
	if !l.Allow(key, at(0)).Allowed {
		t.Fatal("first request of client-a refused")
	}
	copy(buf, "client-b") // the caller reuses its buffer
	if l.Allow("client-a", at(0)).Allowed {
		t.Error("client-a's second request allowed: its bucket was lost when the caller's buffer changed")
	}
	if !l.Allow("client-b", at(0)).Allowed {
		t.Error("client-b's first request refused: it was charged client-a's bucket")
	}
}

// TestAllowAllocatesNothingForKnownKeys is the hot path's promise.
func TestAllowAllocatesNothingForKnownKeys(t *testing.T) {
	l := newLimiter(t, Config{Average: 100, Burst: 10})
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "198.51.100." + strconv.Itoa(i)
		l.Allow(keys[i], at(0))
	}
	var i int
	now := at(0)
	allocs := testing.AllocsPerRun(10000, func() {
		now = now.Add(time.Millisecond)
		l.Allow(keys[i%len(keys)], now)
		l.Allow(keys[0], now) // also refused requests
		i++
	})
	if allocs != 0 {
		t.Errorf("Allow for tracked keys: %v allocations per run, want 0", allocs)
	}
}

// TestEvictsFullBucketsFirst fills a limiter with idle and busy keys, lets
// the idle ones refill, and checks that new keys displace those and forgive
// the busy ones nothing.
func TestEvictsFullBucketsFirst(t *testing.T) {
	l := newLimiter(t, Config{Average: 1, Burst: 1, MaxKeys: 64})
	for i := range 32 {
		l.Allow("idle"+strconv.Itoa(i), at(0)) // full again at 1s
	}
	for i := range 32 {
		l.Allow("busy"+strconv.Itoa(i), at(900*time.Millisecond)) // full at 1.9s
	}
	for i := range 32 {
		if !l.Allow("new"+strconv.Itoa(i), at(1500*time.Millisecond)).Allowed {
			t.Fatalf("new%d refused", i)
		}
	}
	if n := l.Keys(); n != 64 {
		t.Fatalf("%d keys tracked, want 64 (MaxKeys)", n)
	}
	for i := range 32 {
		if l.Allow("busy"+strconv.Itoa(i), at(1600*time.Millisecond)).Allowed {
			t.Errorf("busy%d was forgiven its debt: evicted while idle keys were full", i)
		}
	}
	if n := l.Evicted(); n != 0 {
		t.Errorf("Evicted() = %d, want 0: only full buckets needed dropping", n)
	}
}

// TestFloodKeepsTheHammeringKey floods a full limiter with new keys, all
// active, while one key is hammered: the flood evicts keys nearest to full,
// never the hammering key, which stays limited.
func TestFloodKeepsTheHammeringKey(t *testing.T) {
	l := newLimiter(t, Config{Average: 10, Burst: 10, MaxKeys: 1000})
	admitted := 0
	for i := range 100_000 {
		now := at(time.Duration(i) * 10 * time.Microsecond) // 1s in all
		if l.Allow("hammer", now).Allowed {
			admitted++
		}
		l.Allow("flood"+strconv.Itoa(i), now)
		if n := l.Keys(); i%1000 == 0 && n > 1000 {
			t.Fatalf("%d keys tracked, MaxKeys is 1000", n)
		}
	}
	// Burst 10 + 10 per second over 1s (less one interval at the end).
	if admitted < 19 || admitted > 20 {
		t.Errorf("the hammering key was admitted %d times in 1s, want 19..20: it was given a fresh bucket", admitted)
	}
	if l.Evicted() == 0 {
		t.Error("Evicted() = 0, want the flood's forced evictions counted")
	}
}

// TestSelectNth checks the quickselect against a sort, on inputs with
// duplicates, sorted and reversed runs.
func TestSelectNth(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	inputs := [][]int64{{5}, {2, 1}, {3, 3, 3, 3}}
	for range 200 {
		n := 1 + rng.IntN(300)
		a := make([]int64, n)
		span := int64(1 + rng.IntN(1000))
		for i := range a {
			a[i] = rng.Int64N(span)
		}
		switch rng.IntN(3) {
		case 1:
			slices.Sort(a)
		case 2:
			slices.Sort(a)
			slices.Reverse(a)
		}
		inputs = append(inputs, a)
	}
	for _, a := range inputs {
		sorted := slices.Sorted(slices.Values(a))
		for _, n := range []int{0, len(a) / 8, len(a) / 2, len(a) - 1} {
			b := slices.Clone(a)
			got := selectNth(b, n)
			if got != sorted[n] || b[n] != got {
				t.Fatalf("selectNth(%v, %d) = %d, want %d", a, n, got, sorted[n])
			}
			for i := range b {
				if i < n && b[i] > got || i > n && b[i] < got {
					t.Fatalf("selectNth(%v, %d): %v is not partitioned around index %d", a, n, b, n)
				}
			}
		}
	}
}

// TestLongKeysCostTheSame checks that keys longer than MaxKeyLen are
// tracked by their digest: distinct long keys stay distinct, a known long
// key allocates nothing, and a flood of 8 KiB keys (a header's value) costs
// no more memory per key than short ones.
func TestLongKeysCostTheSame(t *testing.T) {
	l := newLimiter(t, Config{Average: 1, Period: time.Hour, Burst: 1, MaxKeys: 1000})
	long := func(i int) string {
		return strings.Repeat("x", 8<<10-8) + strconv.Itoa(10_000_000+i)
	}
	a, b := long(1), long(2)
	if !l.Allow(a, t0).Allowed || !l.Allow(b, t0).Allowed {
		t.Fatal("a first request of a long key refused")
	}
	if l.Allow(a, t0).Allowed || l.Allow(b, t0).Allowed {
		t.Fatal("a long key's second request allowed: its bucket was not found")
	}
	if allocs := testing.AllocsPerRun(100, func() { l.Allow(a, t0) }); allocs != 0 {
		t.Errorf("Allow for a tracked long key: %v allocations per run, want 0", allocs)
	}
	keys := make([]string, 2000)
	for i := range keys {
		keys[i] = long(i)
	}
	base := heapAfterGC()
	for _, k := range keys {
		l.Allow(k, t0)
	}
	perKey := float64(heapAfterGC()-base) / float64(l.Keys())
	runtime.KeepAlive(keys)
	if perKey > 200 {
		t.Errorf("%.0f bytes per 8 KiB key tracked, want under 200: long keys are kept whole", perKey)
	}
}

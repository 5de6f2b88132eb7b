package ratelimit

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hammer runs workers goroutines that share one virtual clock: each request
// advances it by step and is stamped with it, so the stamps of concurrent
// callers interleave (and arrive slightly out of order) as on a real
// server. Each of requests requests goes to key(i). It returns how many
// were admitted per key and the window the clock covered.
func hammer(l *Limiter, workers, requests int, step time.Duration, key func(i int) string) (map[string]int, time.Duration) {
	var clock, next atomic.Int64
	var mu sync.Mutex
	admitted := map[string]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			mine := map[string]int{}
			for {
				i := int(next.Add(1) - 1)
				if i >= requests {
					break
				}
				now := at(time.Duration(clock.Add(int64(step))))
				k := key(i)
				if l.Allow(k, now).Allowed {
					mine[k]++
				}
			}
			mu.Lock()
			for k, n := range mine {
				admitted[k] += n
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return admitted, time.Duration(clock.Load())
}

// within checks that got admissions in a window are within 5% of the
// configured Burst + Average × window, and never above it (GCRA's bound
// holds whatever the order of the stamps).
func within(t *testing.T, what string, got int, burst int, average float64, period, window time.Duration) {
	t.Helper()
	want := float64(burst) + average*float64(window)/float64(period)
	if float64(got) > want+1e-9 || float64(got) < 0.95*want {
		t.Errorf("%s: %d admitted in %s, want within 5%% of %.1f and not above it", what, got, window, want)
	}
}

// TestAccuracyOneKeyConcurrent: 8 goroutines hammer one key at 10,000
// requests per virtual second against a limit of 100 per second with a
// burst of 200, over 20 virtual seconds.
func TestAccuracyOneKeyConcurrent(t *testing.T) {
	cfg := Config{Average: 100, Burst: 200}
	l := newLimiter(t, cfg)
	admitted, window := hammer(l, 8, 200_000, 100*time.Microsecond, func(int) string { return "203.0.113.7" })
	within(t, "one key", admitted["203.0.113.7"], cfg.Burst, cfg.Average, time.Second, window)
}

// TestAccuracyManyKeysConcurrent: 8 goroutines spread requests over 500
// keys, each offered 4 times its limit of 10 per second (burst 20), over 10
// virtual seconds: every key, and the sum, stays within 5%.
func TestAccuracyManyKeysConcurrent(t *testing.T) {
	cfg := Config{Average: 10, Burst: 20}
	const keys = 500
	l := newLimiter(t, cfg)
	names := make([]string, keys)
	for i := range names {
		names[i] = "2001:db8::" + strconv.Itoa(i)
	}
	admitted, window := hammer(l, 8, 200_000, 50*time.Microsecond, func(i int) string { return names[i%keys] })
	total := 0
	for _, k := range names {
		within(t, k, admitted[k], cfg.Burst, cfg.Average, time.Second, window)
		total += admitted[k]
	}
	within(t, "all keys", total, keys*cfg.Burst, keys*cfg.Average, time.Second, window)
	if n := l.Keys(); n != keys {
		t.Errorf("%d keys tracked, want %d", n, keys)
	}
}

// TestAccuracyFractionalRate: a slow limit (90 per minute, burst 5) under
// 8 goroutines over 10 virtual minutes.
func TestAccuracyFractionalRate(t *testing.T) {
	cfg := Config{Average: 90, Period: time.Minute, Burst: 5}
	l := newLimiter(t, cfg)
	admitted, window := hammer(l, 8, 100_000, 6*time.Millisecond, func(int) string { return "k" })
	within(t, "90/min", admitted["k"], cfg.Burst, cfg.Average, time.Minute, window)
}

// TestBurstExactUnderContention: 8 goroutines take from one key's bucket
// at the same instant; exactly Burst requests are admitted, whichever
// goroutine's compare-and-swap wins each race.
func TestBurstExactUnderContention(t *testing.T) {
	const burst = 20_000
	l := newLimiter(t, Config{Average: 1, Period: time.Hour, Burst: burst})
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			n := 0
			for range burst / 2 {
				if l.Allow("k", t0).Allowed {
					n++
				}
			}
			admitted.Add(int64(n))
		})
	}
	wg.Wait()
	if n := admitted.Load(); n != burst {
		t.Errorf("%d admitted at one instant, want the burst of %d", n, burst)
	}
}

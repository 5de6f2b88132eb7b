package stats

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)

func TestWindowCountsTheLastMinute(t *testing.T) {
	w := NewWindow(t0)
	w.Record(t0.Add(time.Second), 10*time.Millisecond, false, 0)
	w.Record(t0.Add(2*time.Second), 20*time.Millisecond, true, 2)
	w.Eject(t0.Add(3 * time.Second))
	w.Record(t0.Add(30*time.Second), 30*time.Millisecond, true, 1)

	s := w.Summary(t0.Add(40 * time.Second))
	want := Summary{Covered: 40 * time.Second, Requests: 3, Failures: 2, Retries: 3, Ejections: 1}
	s.P50, s.P99 = 0, 0
	if s != want {
		t.Errorf("after 40s: %+v, want %+v", s, want)
	}

	// At 62s the first bucket (0-5s) has left the window; the one of 30s
	// stays until 90s.
	s = w.Summary(t0.Add(62 * time.Second))
	if s.Requests != 1 || s.Failures != 1 || s.Retries != 1 || s.Ejections != 0 {
		t.Errorf("after 62s: %+v, want only the request of 30s", s)
	}
	if s.Covered != 57*time.Second {
		t.Errorf("after 62s the window covers %v, want 57s (11 buckets and 2s of the current one)", s.Covered)
	}
	if s := w.Summary(t0.Add(90 * time.Second)); s.Requests != 0 || s.P50 != 0 {
		t.Errorf("after 90s: %+v, want nothing", s)
	}
}

// A bucket used again a minute later is cleared before it counts.
func TestWindowReusedBucketStartsEmpty(t *testing.T) {
	w := NewWindow(t0)
	for range 5 {
		w.Record(t0.Add(time.Second), time.Second, true, 1)
	}
	later := t0.Add(Span + time.Second) // the same slot of the ring
	w.Record(later, time.Millisecond, false, 0)
	s := w.Summary(later)
	if s.Requests != 1 || s.Failures != 0 || s.Retries != 0 {
		t.Errorf("reused bucket: %+v, want the one new request only", s)
	}
	if s.P99 > 2*time.Millisecond {
		t.Errorf("p99 %v: the old bucket's latencies were kept", s.P99)
	}
}

// A recording older than the bucket's counts (it waited more than a
// minute) is dropped rather than counted in a newer period.
func TestWindowDropsStaleRecording(t *testing.T) {
	w := NewWindow(t0)
	w.Record(t0.Add(Span+time.Second), time.Millisecond, false, 0)
	w.Record(t0.Add(time.Second), time.Millisecond, true, 0)
	if s := w.Summary(t0.Add(Span + time.Second)); s.Requests != 1 || s.Failures != 0 {
		t.Errorf("%+v, want the recent request only", s)
	}
}

func TestWindowCoversItsAgeWhenYoung(t *testing.T) {
	w := NewWindow(t0)
	if s := w.Summary(t0); s.Covered != 0 {
		t.Errorf("a new window covers %v, want 0", s.Covered)
	}
	if s := w.Summary(t0.Add(7 * time.Second)); s.Covered != 7*time.Second {
		t.Errorf("a 7s old window covers %v, want 7s", s.Covered)
	}
	if s := w.Summary(t0.Add(-time.Second)); s.Covered != 0 {
		t.Errorf("before its origin a window covers %v, want 0", s.Covered)
	}
	// From then on between 55s and 60s.
	for d := Span; d < 3*Span; d += 700 * time.Millisecond {
		if c := w.Summary(t0.Add(d)).Covered; c < Span-Width || c > Span {
			t.Fatalf("at %v the window covers %v, want 55s to 60s", d, c)
		}
	}
}

func TestWindowQuantiles(t *testing.T) {
	w := NewWindow(t0)
	now := t0.Add(time.Second)
	// 1ms to 1000ms, one request each.
	for i := 1; i <= 1000; i++ {
		w.Record(now, time.Duration(i)*time.Millisecond, false, 0)
	}
	s := w.Summary(now)
	within(t, "p50", s.P50, 500*time.Millisecond)
	within(t, "p99", s.P99, 990*time.Millisecond)

	// 98 fast requests and 2 slow ones: p50 is fast, p99 slow.
	w = NewWindow(t0)
	for range 98 {
		w.Record(now, 2*time.Millisecond, false, 0)
	}
	w.Record(now, 3*time.Second, true, 0)
	w.Record(now, 3*time.Second, true, 0)
	s = w.Summary(now)
	within(t, "p50", s.P50, 2*time.Millisecond)
	within(t, "p99", s.P99, 3*time.Second)
}

// Every duration in the histogram's range is reported within 12.5%; the
// ones outside it at its bounds.
func TestLatencyBucketPrecision(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		d := time.Duration(r.Int64N(int64(1<<maxShift-1<<minShift))) + 1<<minShift
		got := latencyValue(latencyIndex(d))
		if diff := float64(got-d) / float64(d); diff > 0.125 || diff < -0.125 {
			t.Fatalf("%v is reported as %v (%.1f%%)", d, got, 100*diff)
		}
	}
	for _, c := range []struct{ d, want time.Duration }{
		{0, 1 << minShift},
		{time.Microsecond, 1 << minShift},
		{time.Hour, 1 << maxShift},
		{-time.Second, 1 << minShift},
	} {
		if got := latencyValue(latencyIndex(c.d)); got != c.want {
			t.Errorf("%v is reported as %v, want %v", c.d, got, c.want)
		}
	}
	// The buckets are ordered and none is empty of durations.
	prev := time.Duration(0)
	for i := range latencyBuckets {
		v := latencyValue(i)
		if v <= prev && i > 0 {
			t.Fatalf("bucket %d stands for %v, not above bucket %d's %v", i, v, i-1, prev)
		}
		if i > 0 && i < latencyBuckets-1 && latencyIndex(v) != i {
			t.Fatalf("bucket %d's value %v falls in bucket %d", i, v, latencyIndex(v))
		}
		prev = v
	}
}

func within(t *testing.T, what string, got, want time.Duration) {
	t.Helper()
	if diff := float64(got-want) / float64(want); diff > 0.125 || diff < -0.125 {
		t.Errorf("%s = %v, want %v within 12.5%%", what, got, want)
	}
}

// Recording is lock-free: concurrent recorders within one bucket lose
// nothing.
func TestWindowConcurrentRecords(t *testing.T) {
	w := NewWindow(t0)
	now := t0.Add(time.Second)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range 1000 {
				w.Record(now, time.Duration(i)*time.Microsecond, i%10 == 0, i%2)
				if i%100 == 0 {
					_ = w.Summary(now)
				}
			}
		})
	}
	wg.Wait()
	s := w.Summary(now)
	if s.Requests != 8000 || s.Failures != 800 || s.Retries != 4000 {
		t.Errorf("%+v, want 8000 requests, 800 failures, 4000 retries", s)
	}
}

func TestWindowAllocatesNothing(t *testing.T) {
	w := NewWindow(t0)
	now := t0
	if n := testing.AllocsPerRun(1000, func() {
		now = now.Add(37 * time.Millisecond) // crosses buckets, clearing them
		w.Record(now, 3*time.Millisecond, true, 1)
		w.Eject(now)
	}); n != 0 {
		t.Errorf("Record allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = w.Summary(now) }); n != 0 {
		t.Errorf("Summary allocates %v times", n)
	}
}

// Now runs on the monotonic clock: a window reads its times against one
// taken with time.Now.
func TestNowIsMonotonic(t *testing.T) {
	before := time.Now()
	now := Now()
	after := time.Now()
	if now.Before(before) || now.After(after) {
		t.Errorf("Now() = %v, not between %v and %v", now, before, after)
	}
	if now.Round(0) == now {
		t.Error("Now() has no monotonic clock reading")
	}
}

func BenchmarkWindowRecord(b *testing.B) {
	w := NewWindow(Now())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.Record(Now(), 3*time.Millisecond, false, 0)
		}
	})
}

// A window's buckets are allocated at its first recording, not before: an
// idle route, service or endpoint costs a few words.
func TestWindowBucketsAtFirstRecording(t *testing.T) {
	now := time.Unix(1000, 0)
	w := NewWindow(now)
	if s := w.Summary(now.Add(time.Second)); s.Requests != 0 || s.P99 != 0 || w.ring.Load() != nil {
		t.Fatalf("an idle window: %+v, buckets allocated %v", s, w.ring.Load() != nil)
	}
	w.Eject(now.Add(2 * time.Second))
	if w.ring.Load() == nil {
		t.Fatal("no buckets after the first recording")
	}
	w.Record(now.Add(3*time.Second), time.Millisecond, true, 1)
	if s := w.Summary(now.Add(4 * time.Second)); s.Requests != 1 || s.Failures != 1 || s.Ejections != 1 || s.Retries != 1 {
		t.Fatalf("after recording: %+v", s)
	}
	if n := testing.AllocsPerRun(100, func() { w.Record(now.Add(5*time.Second), time.Millisecond, false, 0) }); n != 0 {
		t.Fatalf("Record allocates %v times after the first", n)
	}
}

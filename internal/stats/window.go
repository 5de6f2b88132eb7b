// Package stats keeps what the status page shows of recent traffic: a
// rolling window of the last minute's requests, failures, retries,
// ejections and latencies, per route, per service and per endpoint.
//
// A Window is a ring of Buckets buckets of Width each, allocated at its
// first recording. Recording allocates nothing after that and takes no
// lock: it finds the bucket of the current time, clears it first if it
// still holds an older period's counts, and adds with atomic operations.
// The recording that claims a bucket for a new period marks it as being
// cleared while it clears it; the others recording in that period wait for
// the mark to go (a few hundred nanoseconds, once per Width), so that no
// count is cleared away. Reading sums the buckets of the last Span, leaving
// out one being cleared. Latencies go to a fixed histogram of logarithmic
// buckets (four per power of two) from which quantiles are estimated within
// 12.5%.
package stats

import (
	"math/bits"
	"runtime"
	"sync/atomic"
	"time"
)

const (
	// Buckets is the number of buckets of a Window.
	Buckets = 12
	// Width is the time one bucket covers.
	Width = 5 * time.Second
	// Span is the time a Window covers: its last bucket is the current,
	// partly elapsed one, so a reading covers between Span-Width and Span.
	Span = Buckets * Width
)

// The latency histogram: durations below 2^minShift ns (16µs) share the
// first bucket, those of 2^maxShift ns (137s) and more the last; in between,
// every power of two is cut into 1<<subBits buckets of equal width. A
// quantile is reported as the middle of its bucket, within 12.5% of the
// true value.
const (
	subBits        = 2
	minShift       = 14
	maxShift       = 37
	latencyBuckets = (maxShift-minShift)<<subBits + 2
)

// base is the time Now counts from.
var base = time.Now()

// Now returns the current time, for recording: it reads only the monotonic
// clock, which a Window needs, and costs about half as much as time.Now
// where clock readings are slow (virtual machines).
func Now() time.Time { return base.Add(time.Since(base)) }

// Window counts the traffic of the last Span. The zero value is not usable:
// use NewWindow. Safe for concurrent use.
//
// Its buckets (about 5 KiB) are allocated at its first recording, so that
// the windows of routes, services and endpoints that see no traffic cost a
// few words each (a fleet of 1,000 routes and services, most idle, keeps
// its heap small).
type Window struct {
	origin time.Time // bucket periods are counted from here
	ring   atomic.Pointer[ring]
}

// ring is a Window's buckets.
type ring [Buckets]bucket

type bucket struct {
	// period+1 of the counts held; 0 when never used; -(period+1) while
	// it is being cleared for that period.
	tag       atomic.Int64
	failures  atomic.Uint64
	retries   atomic.Uint64
	ejections atomic.Uint64
	// latencyHit counts the requests by latency; their sum is the number
	// of requests, so that recording a success is one atomic add.
	latencyHit [latencyBuckets]atomic.Uint32
}

// NewWindow returns an empty window that starts at now: until it is Span
// old, its readings cover its age.
func NewWindow(now time.Time) *Window {
	return &Window{origin: now}
}

// Record counts one request that took d; failed says whether it failed,
// retries is the number of retries it took. It takes no lock and allocates
// nothing.
func (w *Window) Record(now time.Time, d time.Duration, failed bool, retries int) {
	b := w.bucket(now)
	if b == nil {
		return
	}
	if failed {
		b.failures.Add(1)
	}
	if retries > 0 {
		b.retries.Add(uint64(retries))
	}
	b.latencyHit[latencyIndex(d)].Add(1)
}

// Eject counts one ejection at now.
func (w *Window) Eject(now time.Time) {
	if b := w.bucket(now); b != nil {
		b.ejections.Add(1)
	}
}

// period returns the number of whole Widths from the window's origin to now
// (0 before the origin).
func (w *Window) period(now time.Time) int64 {
	return max(int64(now.Sub(w.origin)/Width), 0)
}

// bucket returns the bucket of now's period, cleared if it held an older
// period's counts; nil when now is older than the bucket's counts (a
// recording that waited longer than Span).
func (w *Window) bucket(now time.Time) *bucket {
	tag := w.period(now) + 1
	r := w.ring.Load()
	if r == nil {
		// The first recording: one ring is kept whoever wins.
		w.ring.CompareAndSwap(nil, new(ring))
		r = w.ring.Load()
	}
	b := &r[(tag-1)%Buckets]
	for {
		cur := b.tag.Load()
		switch {
		case cur == tag:
			return b
		case cur < 0:
			// Being cleared, for -cur: when that is this period or an
			// older one, its counts are ready (or it can be claimed) once
			// the clearing ends.
			if -cur > tag {
				return nil
			}
			runtime.Gosched()
		case cur > tag:
			return nil
		case b.tag.CompareAndSwap(cur, -tag):
			b.clear()
			b.tag.Store(tag)
			return b
		}
	}
}

func (b *bucket) clear() {
	b.failures.Store(0)
	b.retries.Store(0)
	b.ejections.Store(0)
	for i := range b.latencyHit {
		b.latencyHit[i].Store(0)
	}
}

// Summary is a Window's reading.
type Summary struct {
	// Covered is the time the counts cover: Span less the unelapsed part
	// of the current bucket, or the window's age when that is shorter.
	Covered time.Duration
	// Requests, Failures, Retries and Ejections are counts over Covered.
	Requests  uint64
	Failures  uint64
	Retries   uint64
	Ejections uint64
	// P50 and P99 are the latency quantiles of the requests (see the
	// package doc for the precision); zero without requests.
	P50, P99 time.Duration
}

// Summary reads the window at now. It allocates nothing.
func (w *Window) Summary(now time.Time) Summary {
	cur := w.period(now)
	var s Summary
	var hist [latencyBuckets]uint64
	r := w.ring.Load()
	if r == nil {
		r = &emptyRing
	}
	for i := range r {
		b := &r[i]
		p := b.tag.Load() - 1
		if p < 0 || p > cur || p <= cur-Buckets {
			continue
		}
		s.Failures += b.failures.Load()
		s.Retries += b.retries.Load()
		s.Ejections += b.ejections.Load()
		for j := range hist {
			n := uint64(b.latencyHit[j].Load())
			hist[j] += n
			s.Requests += n
		}
	}
	age := max(now.Sub(w.origin), 0)
	s.Covered = min(age, (Buckets-1)*Width+age-time.Duration(cur)*Width)
	// A failure is counted just before its request's latency: a reading
	// between the two sees the failure alone. Keep the figures coherent.
	s.Failures = min(s.Failures, s.Requests)
	s.P50, s.P99 = quantile(&hist, 0.50), quantile(&hist, 0.99)
	return s
}

// emptyRing is what a window that recorded nothing reads.
var emptyRing ring

// latencyIndex returns the histogram bucket of d.
func latencyIndex(d time.Duration) int {
	if d < 1<<minShift {
		return 0
	}
	n := uint64(d)
	e := bits.Len64(n) - 1 // 2^e <= n < 2^(e+1)
	if e >= maxShift {
		return latencyBuckets - 1
	}
	sub := int(n>>(e-subBits)) & (1<<subBits - 1)
	return 1 + (e-minShift)<<subBits + sub
}

// latencyValue returns the duration that stands for bucket i: the middle of
// its range; the bound for the first and last buckets.
func latencyValue(i int) time.Duration {
	switch {
	case i <= 0:
		return 1 << minShift
	case i >= latencyBuckets-1:
		return 1 << maxShift
	}
	e := minShift + (i-1)>>subBits
	sub := (i - 1) & (1<<subBits - 1)
	// 2^e × (1 + (sub + ½) / 2^subBits)
	return time.Duration(1)<<e + time.Duration(2*sub+1)<<(e-subBits-1)
}

// quantile returns the q-quantile (0 < q < 1) of the histogram: the value
// of the bucket holding the request of rank ⌈q·n⌉; 0 when it is empty.
func quantile(hist *[latencyBuckets]uint64, q float64) time.Duration {
	var n uint64
	for _, c := range hist {
		n += c
	}
	if n == 0 {
		return 0
	}
	rank := uint64(q * float64(n))
	if float64(rank) < q*float64(n) {
		rank++
	}
	rank = max(rank, 1)
	var seen uint64
	for i, c := range hist {
		seen += c
		if seen >= rank {
			return latencyValue(i)
		}
	}
	return latencyValue(latencyBuckets - 1)
}

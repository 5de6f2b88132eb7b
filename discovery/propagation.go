package discovery

import (
	"sync"
	"time"
)

// PropagationBuckets are the upper bounds, in seconds, of the propagation
// lag histogram (see ConfStats.Propagation).
var PropagationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Propagation is the histogram of a service's propagation lag: the time from
// a member's znode change to the publication of the list that carries it to
// the balancers.
//
// The change time is the znode's mtime as ZooKeeper recorded it (for a new
// node its mtime equals its ctime), in milliseconds of the server's clock.
// Not measured: removals (a deleted node has no stat, and the parent's mtime
// does not change when its children do), changes that leave the published
// list as it was, and the conf's first read (its nodes were written before
// the gateway watched). Clock skew between the ZooKeeper server and the
// gateway can make the difference negative: it is then counted as 0. Changes
// made while the gateway had no session are measured when it catches up, so
// an outage shows as lag.
type Propagation struct {
	// Buckets are the upper bounds (PropagationBuckets); Counts[i] counts
	// the observations in (Buckets[i-1], Buckets[i]], and the last entry of
	// Counts, one longer than Buckets, those above the last bound.
	Buckets []float64
	Counts  []uint64
	Count   uint64
	Sum     float64 // seconds
	// Last is the latest observation, valid when Count > 0.
	Last time.Duration
}

// Cumulative returns the count of observations at or below each bound, as
// Prometheus histograms are written.
func (p Propagation) Cumulative() map[float64]uint64 {
	out := make(map[float64]uint64, len(p.Buckets))
	var n uint64
	for i, b := range p.Buckets {
		n += p.Counts[i]
		out[b] = n
	}
	return out
}

// lagHistogram accumulates a Propagation; safe for concurrent use.
type lagHistogram struct {
	mu sync.Mutex
	p  Propagation
}

func (h *lagHistogram) observe(d time.Duration) {
	d = max(d, 0)
	s := d.Seconds()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.p.Counts == nil {
		h.p.Buckets = PropagationBuckets
		h.p.Counts = make([]uint64, len(PropagationBuckets)+1)
	}
	i := 0
	for i < len(h.p.Buckets) && s > h.p.Buckets[i] {
		i++
	}
	h.p.Counts[i]++
	h.p.Count++
	h.p.Sum += s
	h.p.Last = d
}

// snapshot returns a copy of the histogram, with Buckets and Counts set even
// before the first observation.
func (h *lagHistogram) snapshot() Propagation {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.p
	p.Buckets = PropagationBuckets
	if h.p.Counts == nil {
		p.Counts = make([]uint64, len(PropagationBuckets)+1)
	} else {
		p.Counts = append([]uint64(nil), h.p.Counts...)
	}
	return p
}

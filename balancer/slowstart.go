package balancer

import (
	"math"
	"time"
)

// Option configures a balancer built by New or by a constructor that takes
// options.
type Option func(*options)

type options struct {
	slowStart time.Duration
	clock     clock
}

// WithSlowStart ramps the weight of each new endpoint linearly from
// SlowStartFloor of its weight to its full weight over window (see
// SlowStart). Zero or a negative window turns slow start off, the default.
// Only the balancers that weigh their picks (Random and WeightRoundRobin)
// honour it; the others ignore it.
func WithSlowStart(window time.Duration) Option {
	return func(o *options) { o.slowStart = window }
}

// withClock replaces the real clock; tests inject a fake one.
func withClock(c clock) Option {
	return func(o *options) { o.clock = c }
}

func buildOptions(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.clock == nil {
		o.clock = realClock{}
	}
	return o
}

const (
	// SlowStartFloor is the fraction of its weight a new endpoint starts
	// slow start with.
	SlowStartFloor = 0.1
	// rampScale is the number of effective-weight units one unit of weight
	// is worth while some endpoint ramps, so that a weight-1 endpoint can
	// start at a tenth of its weight: the smallest effective weight is one
	// such unit, 1/rampScale of a weight.
	rampScale = 100
	// rampSteps is the number of times the effective weights are
	// recomputed over a window, at least minRampStep apart: the ramp is a
	// staircase of window/rampSteps steps that follows the line within one
	// step.
	rampSteps   = 20
	minRampStep = 50 * time.Millisecond
)

// slowStart tracks, by address, when the endpoints of a balancer joined and
// turns their weights into effective weights that ramp up over the window.
// It is the one place slow start is decided; a balancer holds one and calls
// it with its own lock held (slowStart has no lock of its own), only when it
// builds a snapshot: Pick never touches it, so it costs nothing per pick.
//
// An endpoint is new when it appears in an Update after the first that held
// any endpoint: the members of that first list are at full weight at once.
// An endpoint that leaves and comes back (a backend restarting, or one that
// was unhealthy, since health checking publishes only the healthy members)
// is new again when it comes back. A balancer built again (on a reload that
// changes its route) starts again with its whole list at full weight.
//
// While some endpoint ramps, the balancer's snapshot is rebuilt every
// window/rampSteps (at least minRampStep) by a timer, which stops once
// every endpoint has reached its full weight.
type slowStart struct {
	window time.Duration
	clock  clock
	// started is set by the first Update that holds an endpoint.
	started bool
	// joined holds the join time of the endpoints still ramping.
	joined map[string]time.Time
	// pending is set while a refresh timer is armed.
	pending bool
}

func newSlowStart(o options) *slowStart {
	if o.slowStart <= 0 {
		return nil
	}
	return &slowStart{window: o.slowStart, clock: o.clock, joined: map[string]time.Time{}}
}

// observe records the joins and departures of an Update from prev to eps,
// both normalized. s may be nil (slow start off).
func (s *slowStart) observe(prev, eps []Endpoint) {
	if s == nil {
		return
	}
	if !s.started {
		s.started = len(eps) > 0
		return
	}
	now := s.clock.Now()
	for addr := range s.joined {
		if !containsAddr(eps, addr) {
			delete(s.joined, addr)
		}
	}
	for _, e := range eps {
		if !containsAddr(prev, e.Addr) {
			s.joined[e.Addr] = now
		}
	}
}

// weights returns the effective weights of eps, the endpoints of the last
// observed Update, and whether some endpoint is still ramping. While none
// ramps they are the endpoints' weights; while one does, every weight is
// counted in units of 1/rampScale and a ramping endpoint's is
// weight*(SlowStartFloor + (1-SlowStartFloor)*elapsed/window), at least 1
// unit. s may be nil (slow start off).
func (s *slowStart) weights(eps []Endpoint) ([]int, bool) {
	w := make([]int, len(eps))
	for i, e := range eps {
		w[i] = max(e.Weight, 1)
	}
	if s == nil || len(s.joined) == 0 {
		return w, false
	}
	now := s.clock.Now()
	ramping := false
	for i, e := range eps {
		full := satMul(w[i], rampScale)
		w[i] = full
		at, ok := s.joined[e.Addr]
		if !ok {
			continue
		}
		elapsed := now.Sub(at)
		if elapsed >= s.window {
			delete(s.joined, e.Addr)
			continue
		}
		ramping = true
		f := SlowStartFloor + (1-SlowStartFloor)*float64(max(elapsed, 0))/float64(s.window)
		w[i] = max(1, int(math.Round(float64(full)*f)))
	}
	return w, ramping
}

// schedule arms the refresh timer, unless one is armed already, to call
// refresh after one ramp step. The balancer calls it when weights reported
// ramping, and refresh must clear pending (see fired) under the balancer's
// lock before rebuilding.
func (s *slowStart) schedule(refresh func()) {
	if s.pending {
		return
	}
	s.pending = true
	s.clock.AfterFunc(max(s.window/rampSteps, minRampStep), refresh)
}

// fired clears pending; the refresh function calls it first.
func (s *slowStart) fired() { s.pending = false }

// satMul returns a*b for non-negative a and b, saturated at math.MaxInt.
func satMul(a, b int) int {
	if a > math.MaxInt/b {
		return math.MaxInt
	}
	return a * b
}

// clock is the time source of slow start.
type clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func())
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) { time.AfterFunc(d, f) }

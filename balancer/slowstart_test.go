package balancer

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when Advance is called; AfterFunc
// functions run, in deadline order, from Advance once their time has come.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	f  func()
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), f: f})
}

// Advance moves the clock forward by d, stopping at each timer's deadline
// to run it (without the clock's lock, so that it may arm another).
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		i := -1
		for j, t := range c.timers {
			if !t.at.After(end) && (i < 0 || t.at.Before(c.timers[i].at)) {
				i = j
			}
		}
		if i < 0 {
			break
		}
		t := c.timers[i]
		c.timers = slices.Delete(c.timers, i, i+1)
		c.now = t.at
		c.mu.Unlock()
		t.f()
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}

// Pending returns the number of armed timers.
func (c *fakeClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

const testWindow = 30 * time.Second

// slowStartCases are the balancers that honour slow start, built with a
// 30s window on clock c. tol is the absolute tolerance of a measured share:
// weighted round robin's is exact over whole cycles, random's is a sample
// of sharePicks draws (standard deviation below 0.002).
var slowStartCases = []struct {
	name string
	make func(c clock) Balancer
	tol  float64
}{
	{"weighted_round_robin", func(c clock) Balancer {
		return NewWeightRoundRobin(WithSlowStart(testWindow), withClock(c))
	}, 0.002},
	{"random", func(c clock) Balancer {
		b := NewRandom(WithSlowStart(testWindow), withClock(c))
		b.src = rand.New(rand.NewPCG(7, 7^0x5eed)).Uint64
		return b
	}, 0.01},
}

// sharePicks is the number of picks a share is measured over: a multiple of
// every weighted round-robin cycle in these tests.
const sharePicks = 2 * 3 * 5 * 7 * 11 * 13 * 17

// share returns the fraction of sharePicks picks that went to addr.
func share(t *testing.T, b Balancer, addr string) float64 {
	t.Helper()
	n := 0
	for _, a := range picks(t, b, sharePicks) {
		if a == addr {
			n++
		}
	}
	return float64(n) / sharePicks
}

// expectedShare is the share of an endpoint of weight w ramped to fraction
// f among others of total weight rest at full weight.
func expectedShare(w, f, rest float64) float64 { return w * f / (w*f + rest) }

// TestSlowStartShare follows a new member of weight 2 joining two members of
// weight 2 through a 30s window: it gets the floor's share (10% of its
// weight: 0.2/4.2 = 4.8%) at join, 55% of its weight at the middle
// (1.1/5.1 = 21.6%), and its full third after the window, while the
// members present from the first Update start at full weight.
func TestSlowStartShare(t *testing.T) {
	for _, tc := range slowStartCases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			b := tc.make(clk)
			all := list(2, 2, 2)
			b.Update(all[:2])
			if got := share(t, b, all[0].Addr); math.Abs(got-0.5) > tc.tol {
				t.Fatalf("first members: share %.4f, want 0.5 (full weight at once)", got)
			}
			if clk.Pending() != 0 {
				t.Fatalf("first members armed a ramp timer")
			}
			clk.Advance(time.Hour)
			b.Update(all)
			newAddr := all[2].Addr
			steps := []struct {
				at   time.Duration
				want float64
			}{
				{0, expectedShare(2, SlowStartFloor, 4)},
				{testWindow / 2, expectedShare(2, SlowStartFloor+(1-SlowStartFloor)/2, 4)},
				{testWindow, 1.0 / 3},
			}
			var elapsed time.Duration
			for _, s := range steps {
				clk.Advance(s.at - elapsed)
				elapsed = s.at
				got := share(t, b, newAddr)
				t.Logf("t=%v: new member's share %.4f (want %.4f±%.3f)", s.at, got, s.want, tc.tol)
				if math.Abs(got-s.want) > tc.tol {
					t.Errorf("t=%v: new member's share %.4f, want %.4f±%.3f", s.at, got, s.want, tc.tol)
				}
			}
			if n := clk.Pending(); n != 0 {
				t.Errorf("%d ramp timers still armed after the window", n)
			}
		})
	}
}

// TestSlowStartReturningMember checks that a member that leaves (as an
// unhealthy one does from the healthy list) ramps again when it returns,
// and that one that stays keeps its full weight.
func TestSlowStartReturningMember(t *testing.T) {
	for _, tc := range slowStartCases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			b := tc.make(clk)
			all := list(1, 1, 1)
			b.Update(all)
			b.Update(all[:2])
			clk.Advance(time.Minute)
			b.Update(all)
			want := expectedShare(1, SlowStartFloor, 2)
			if got := share(t, b, all[2].Addr); math.Abs(got-want) > tc.tol {
				t.Errorf("returning member: share %.4f, want %.4f±%.3f", got, want, tc.tol)
			}
			if got := share(t, b, all[0].Addr); math.Abs(got-(1-want)/2) > tc.tol {
				t.Errorf("staying member: share %.4f, want %.4f±%.3f", got, (1-want)/2, tc.tol)
			}
		})
	}
}

// TestSlowStartOff checks that without a window a new member gets its full
// share at once and no timer is armed.
func TestSlowStartOff(t *testing.T) {
	clk := newFakeClock()
	for _, b := range []Balancer{
		NewWeightRoundRobin(WithSlowStart(0), withClock(clk)),
		NewRandom(withClock(clk)),
	} {
		all := list(1, 1, 1)
		b.Update(all[:2])
		b.Update(all)
		if got := share(t, b, all[2].Addr); math.Abs(got-1.0/3) > 0.01 {
			t.Errorf("%T: new member's share %.4f without slow start, want 1/3", b, got)
		}
	}
	if n := clk.Pending(); n != 0 {
		t.Errorf("%d timers armed without slow start", n)
	}
}

// TestSlowStartPickAllocs checks that picks allocate nothing while a member
// ramps.
func TestSlowStartPickAllocs(t *testing.T) {
	for _, tc := range slowStartCases {
		clk := newFakeClock()
		b := tc.make(clk)
		all := list(1, 2, 3)
		b.Update(all[:2])
		b.Update(all)
		if a := testing.AllocsPerRun(1000, func() { _, _ = b.Pick("") }); a != 0 {
			t.Errorf("%s: Pick allocates %.1f times while ramping", tc.name, a)
		}
	}
}

// TestSlowStartRealClock runs the ramp on the real clock with a short
// window: the timer refreshes the weights until the new member reaches its
// full share, then stops.
func TestSlowStartRealClock(t *testing.T) {
	b := NewWeightRoundRobin(WithSlowStart(200 * time.Millisecond))
	all := list(1, 1)
	b.Update(all[:1])
	b.Update(all)
	// At full weights 1 and 1 the cycle is 2 picks long.
	eventually(t, "the new member's full weight", func() bool { return len(b.snap.Load().schedule) == 2 })
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ss.pending || len(b.ss.joined) != 0 {
		t.Errorf("ramp state not cleared after the window: pending %v, joined %v", b.ss.pending, b.ss.joined)
	}
}

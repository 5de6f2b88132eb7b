package healthcheck

import "time"

// Clock is the time source of a checker: it schedules probes and ejection
// expiries and stamps the times shown by Status. Tests inject a fake clock to
// expire ejections without sleeping. The timeouts of the probes themselves
// always run on real time.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that sends on its channel once the clock
	// reaches at (at once if it has). Timers take a deadline rather than a
	// duration so that no time passes between reading the clock and arming
	// the timer: the deadline is exact on any clock.
	NewTimer(at time.Time) Timer
}

// Timer is a one-shot timer made by a Clock.
type Timer interface {
	// C returns the channel the timer sends on when it fires.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did so.
	Stop() bool
}

// realClock is the Clock of the time package.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(at time.Time) Timer { return realTimer{time.NewTimer(time.Until(at))} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// Option adjusts a checker made by New.
type Option func(*options)

type options struct {
	clock     Clock
	onEject   func(addr string)
	onMembers func(addrs []string)
}

// WithClock makes the checker use clock instead of the system clock.
func WithClock(clock Clock) Option {
	return func(o *options) {
		if clock != nil {
			o.clock = clock
		}
	}
}

// OnEject makes the checker call f with the address of every member it
// ejects (passive checks), as it ejects it. f is called with the checker's
// lock held: it must be quick and must not call the checker.
func OnEject(f func(addr string)) Option {
	return func(o *options) { o.onEject = f }
}

// OnMembers makes the checker call f with the addresses of its members,
// sorted, each time that set changes (once at the start, when the first
// membership comes): the members the membership lists and those the
// removal guard holds, healthy or not. An address leaves it when the
// checker drops the member, so a member held by the guard stays in it
// until the hold ends. f is called with the checker's lock held: it must
// be quick and must not call the checker.
func OnMembers(f func(addrs []string)) Option {
	return func(o *options) { o.onMembers = f }
}

package proxy

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of RetryBudgetConfig, as Finagle's RetryBudget has them.
const (
	MinRetryBudgetWindow  = time.Second
	MaxRetryBudgetWindow  = time.Minute
	MaxRetryBudgetPercent = 1000
	// MaxRetryBudgetMinPerSecond keeps the reserve well inside an int64.
	MaxRetryBudgetMinPerSecond = 1_000_000
)

// DefaultRetryBudgetWindow is how long a request's deposit lasts when
// RetryBudgetConfig.Window is 0.
const DefaultRetryBudgetWindow = 10 * time.Second

// budgetSlices is the number of slices a budget's window is kept in: a
// deposit expires between (budgetSlices-1)/budgetSlices of a window and a
// whole window after it was made.
const budgetSlices = 10

// retryCost is what one retry withdraws, in the budget's unit: a request
// deposits Percent units, so that Percent/100 retries per request are
// allowed.
const retryCost = 100

// RetryBudgetConfig configures a RetryBudget.
type RetryBudgetConfig struct {
	// Percent is the share of the service's requests that may be retried,
	// in percent of the requests made within Window (0 to 1000: 20 allows
	// one retry for every five requests).
	Percent int
	// MinPerSecond is the floor: retries allowed whatever the request rate,
	// for a service that has just started or sees few requests. It is
	// given as a reserve of MinPerSecond × Window retries, each of which
	// returns to the reserve a Window after it was spent. 0 gives no floor.
	MinPerSecond int
	// Window is how long a request's deposit (and a retry's withdrawal)
	// counts, between 1s and 1m. 0 means DefaultRetryBudgetWindow.
	Window time.Duration
	// Now is the budget's clock. Nil means time.Now; tests pass a fake.
	Now func() time.Time
}

// RetryBudget caps the retries of one service at a share of its request
// rate plus a floor, so that retries cannot multiply the load on a service
// that fails: each request deposits Percent/100 of a retry, each retry
// withdraws one, and a retry is refused when the balance — the reserve of
// MinPerSecond × Window plus the deposits less the withdrawals made within
// the last Window — is below one. This is Finagle's RetryBudget (and
// Linkerd's). Hence, from a full reserve, N requests made within one
// Window are allowed at most N×Percent/100 + MinPerSecond×Window retries.
//
// Deposit, made by every request, is lock-free and allocates nothing: one
// compare-and-swap on the current slice's counter. TryWithdraw, made by
// retries only, takes a mutex so that concurrent retries cannot together
// overdraw the balance. A budget is shared by every route to its service
// (it belongs to the Upstream's RetryPolicy). Safe for concurrent use.
type RetryBudget struct {
	deposit int64         // units a request deposits (Percent)
	reserve int64         // units always available (MinPerSecond × Window × retryCost)
	slice   time.Duration // Window / budgetSlices
	base    time.Time     // slice 0 begins here
	now     func() time.Time
	// ownClock: now is RetryBudgetConfig.Now, which depositAt reads too.
	ownClock bool

	// slices hold the deposits less the withdrawals of the last
	// budgetSlices slices: slice s in slices[s%budgetSlices], as
	// uint32(s)<<32 | uint32(int32(sum)).
	slices [budgetSlices]atomic.Uint64

	withdraw  sync.Mutex // serializes TryWithdraw
	exhausted atomic.Uint64
}

// FieldError is a problem with one field of a configuration, named by its
// path in the configuration file's terms ("percent").
type FieldError struct {
	Path string
	Err  error
}

// Error returns "path: problem".
func (e *FieldError) Error() string { return e.Path + ": " + e.Err.Error() }

// Unwrap returns the problem.
func (e *FieldError) Unwrap() error { return e.Err }

// Validate reports every field of c out of range, joined, each a
// *FieldError. A zero Window is valid (it takes the default).
func (c RetryBudgetConfig) Validate() error {
	var errs []error
	if c.Percent < 0 || c.Percent > MaxRetryBudgetPercent {
		errs = append(errs, &FieldError{"percent", fmt.Errorf("must be between 0 and %d, got %d", MaxRetryBudgetPercent, c.Percent)})
	}
	if c.MinPerSecond < 0 || c.MinPerSecond > MaxRetryBudgetMinPerSecond {
		errs = append(errs, &FieldError{"min_per_second", fmt.Errorf("must be between 0 and %d, got %d", MaxRetryBudgetMinPerSecond, c.MinPerSecond)})
	}
	if w := c.Window; w != 0 && (w < MinRetryBudgetWindow || w > MaxRetryBudgetWindow) {
		errs = append(errs, &FieldError{"window", fmt.Errorf("must be between %s and %s, got %s", MinRetryBudgetWindow, MaxRetryBudgetWindow, w)})
	}
	return errors.Join(errs...)
}

// NewRetryBudget returns a budget with a full reserve, or cfg's problems
// (see Validate).
func NewRetryBudget(cfg RetryBudgetConfig) (*RetryBudget, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultRetryBudgetWindow
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &RetryBudget{
		deposit:  int64(cfg.Percent),
		reserve:  int64(cfg.MinPerSecond) * retryCost * int64(cfg.Window) / int64(time.Second),
		slice:    cfg.Window / budgetSlices,
		base:     now(),
		now:      now,
		ownClock: cfg.Now != nil,
	}, nil
}

// Deposit credits the budget with one request. It takes no lock and
// allocates nothing.
func (b *RetryBudget) Deposit() {
	if b.deposit != 0 {
		b.add(b.current(), b.deposit)
	}
}

// depositAt is Deposit for a request that read the clock at now (at its
// start, or once its body was read: microseconds before, well within a
// slice): the request path reads the clock once for all that needs it. A
// budget made with its own clock (RetryBudgetConfig.Now) reads that
// instead.
func (b *RetryBudget) depositAt(now time.Time) {
	if b.deposit == 0 {
		return
	}
	if b.ownClock || now.IsZero() {
		now = b.now()
	}
	b.add(b.sliceAt(now), b.deposit)
}

// TryWithdraw reports whether a retry may be made now, and if so withdraws
// it from the budget. A refused retry is counted (Exhausted).
func (b *RetryBudget) TryWithdraw() bool {
	b.withdraw.Lock()
	s := b.current()
	ok := b.balance(s) >= retryCost
	if ok {
		b.add(s, -retryCost)
	}
	b.withdraw.Unlock()
	if !ok {
		b.exhausted.Add(1)
	}
	return ok
}

// Available returns the number of retries the budget allows now.
func (b *RetryBudget) Available() int64 {
	return max(b.balance(b.current()), 0) / retryCost
}

// Exhausted returns the number of retries refused so far.
func (b *RetryBudget) Exhausted() uint64 { return b.exhausted.Load() }

// current returns the number of the slice the clock is in.
func (b *RetryBudget) current() uint32 { return b.sliceAt(b.now()) }

// sliceAt returns the number of the slice now is in. A time before the
// budget's creation counts as slice 0.
func (b *RetryBudget) sliceAt(now time.Time) uint32 {
	d := now.Sub(b.base)
	if d < 0 {
		return 0
	}
	return uint32(d / b.slice) // wraps after 2³² slices (13 years at least): compared modulo 2³²
}

// add adds delta to the sum of slice s, starting the slice afresh when its
// counter still holds an older slice. A caller that read the clock so long
// ago that its slice is already reused for a later one drops its delta.
// The sum saturates at the bounds of an int32.
func (b *RetryBudget) add(s uint32, delta int64) {
	c := &b.slices[s%budgetSlices]
	for {
		old := c.Load()
		var sum int64
		switch at := uint32(old >> 32); {
		case at == s:
			sum = int64(int32(uint32(old)))
		case int32(at-s) > 0:
			return // a later slice owns the counter: s has expired
		}
		sum = min(max(sum+delta, math.MinInt32), math.MaxInt32)
		if c.CompareAndSwap(old, uint64(s)<<32|uint64(uint32(int32(sum)))) {
			return
		}
	}
}

// balance returns the reserve plus the sums of the slices that have not
// expired at slice s: s itself and the budgetSlices-1 before it.
func (b *RetryBudget) balance(s uint32) int64 {
	sum := b.reserve
	for i := range b.slices {
		v := b.slices[i].Load()
		if s-uint32(v>>32) < budgetSlices {
			sum += int64(int32(uint32(v)))
		}
	}
	return sum
}

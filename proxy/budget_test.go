package proxy

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// budgetClock is a clock that moves only when told to.
type budgetClock struct{ ns atomic.Int64 }

var budgetEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *budgetClock) now() time.Time          { return budgetEpoch.Add(time.Duration(c.ns.Load())) }
func (c *budgetClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func newTestBudget(t *testing.T, percent, minPerSecond int, window time.Duration) (*RetryBudget, *budgetClock) {
	t.Helper()
	clock := &budgetClock{}
	b, err := NewRetryBudget(RetryBudgetConfig{Percent: percent, MinPerSecond: minPerSecond, Window: window, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	return b, clock
}

// withdrawAll withdraws until the budget refuses and returns how many
// retries it allowed (at most limit, to stop a budget that never refuses).
func withdrawAll(b *RetryBudget, limit int) int {
	n := 0
	for n < limit && b.TryWithdraw() {
		n++
	}
	return n
}

func TestRetryBudgetReserveIsMinPerSecondTimesWindow(t *testing.T) {
	b, _ := newTestBudget(t, 0, 3, 10*time.Second)
	if got := b.Available(); got != 30 {
		t.Errorf("Available = %d, want 30 (3/s × 10s)", got)
	}
	if got := withdrawAll(b, 1000); got != 30 {
		t.Errorf("the reserve allowed %d retries without requests, want 30", got)
	}
	if got := b.Exhausted(); got != 1 {
		t.Errorf("Exhausted = %d, want the 1 refused retry", got)
	}
	if b.TryWithdraw() {
		t.Error("retry allowed from a spent reserve")
	}
	if got := b.Exhausted(); got != 2 {
		t.Errorf("Exhausted = %d, want 2", got)
	}
}

func TestRetryBudgetAllowsPercentOfRequests(t *testing.T) {
	b, _ := newTestBudget(t, 20, 0, 10*time.Second)
	if b.TryWithdraw() {
		t.Fatal("retry allowed with neither requests nor reserve")
	}
	for range 10 {
		b.Deposit()
	}
	if got := withdrawAll(b, 1000); got != 2 {
		t.Errorf("10 requests at 20%% allowed %d retries, want 2", got)
	}
	for range 4 {
		b.Deposit()
	}
	if b.TryWithdraw() {
		t.Error("4 more requests (0.8 of a retry) allowed a retry")
	}
	b.Deposit()
	if !b.TryWithdraw() {
		t.Error("5 more requests (1 retry) did not allow a retry")
	}
	if got, want := b.Exhausted(), uint64(3); got != want {
		t.Errorf("Exhausted = %d, want %d", got, want)
	}
}

func TestRetryBudgetPercentAboveHundred(t *testing.T) {
	b, _ := newTestBudget(t, 250, 0, time.Second)
	for range 2 {
		b.Deposit()
	}
	if got := withdrawAll(b, 1000); got != 5 {
		t.Errorf("2 requests at 250%% allowed %d retries, want 5", got)
	}
}

func TestRetryBudgetDepositsExpireAfterWindow(t *testing.T) {
	b, clock := newTestBudget(t, 100, 0, 10*time.Second)
	clock.advance(500 * time.Millisecond)
	b.Deposit() // in the slice [0s, 1s)
	clock.advance(9*time.Second + 499*time.Millisecond)
	if got := b.Available(); got != 1 {
		t.Fatalf("at 9.999s: Available = %d, want the deposit made at 0.5s", got)
	}
	clock.advance(time.Millisecond) // 10s: the slice [0s, 1s) leaves the window
	if got := b.Available(); got != 0 {
		t.Fatalf("at 10s: Available = %d, want 0: the deposit has expired", got)
	}
	if b.TryWithdraw() {
		t.Error("an expired deposit paid for a retry")
	}
}

func TestRetryBudgetWithdrawalsReturnToReserveAfterWindow(t *testing.T) {
	b, clock := newTestBudget(t, 0, 2, 5*time.Second)
	if got := withdrawAll(b, 1000); got != 10 {
		t.Fatalf("reserve allowed %d retries, want 10", got)
	}
	clock.advance(4 * time.Second) // withdrawals of slice 0 still count
	if b.TryWithdraw() {
		t.Fatal("the spent reserve refilled before the window passed")
	}
	clock.advance(time.Second)
	if got := withdrawAll(b, 1000); got != 10 {
		t.Errorf("a window later the reserve allowed %d retries, want 10", got)
	}
}

// A steady rate of requests and retries over many windows: the retries
// allowed in each window are the requests' share plus the floor, never more.
func TestRetryBudgetSteadyStateBound(t *testing.T) {
	const (
		percent, floor = 20, 3
		window         = 10 * time.Second
		perSecond      = 100 // requests, each wanting a retry
		seconds        = 60
	)
	b, clock := newTestBudget(t, percent, floor, window)
	var allowed [seconds]int
	for s := range seconds {
		for range perSecond {
			b.Deposit()
			if b.TryWithdraw() {
				allowed[s]++
			}
			clock.advance(time.Second / perSecond)
		}
	}
	w := int(window / time.Second)
	for s := 0; s+w <= seconds; s++ {
		sum := 0
		for _, n := range allowed[s : s+w] {
			sum += n
		}
		// At its last retry, the balance of the window is not negative:
		// retries ≤ reserve + the window's deposits.
		bound := perSecond*w*percent/100 + floor*w
		if sum > bound {
			t.Errorf("seconds [%d, %d): %d retries, want at most %d", s, s+w, sum, bound)
		}
	}
	// Past the first window the floor is spent once per window and the
	// share of requests is the rest: 20 + 3 retries a second.
	last := allowed[seconds-w:]
	sum := 0
	for _, n := range last {
		sum += n
	}
	if want := perSecond*w*percent/100 + floor*w; sum != want {
		t.Errorf("last window: %d retries, want %d (%v)", sum, want, allowed)
	}
}

func TestRetryBudgetConcurrentWithdrawalsDoNotOverdraw(t *testing.T) {
	b, _ := newTestBudget(t, 20, 1, 10*time.Second)
	const requests, retries = 1000, 1000
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range requests / 8 {
				b.Deposit()
			}
		})
	}
	wg.Wait()
	var granted atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range retries / 8 {
				if b.TryWithdraw() {
					granted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	want := int64(requests*20/100 + 10) // share + 1/s × 10s
	if got := granted.Load(); got != want {
		t.Errorf("%d retries granted, want exactly %d", got, want)
	}
	if got := b.Exhausted(); got != uint64(retries-want) {
		t.Errorf("Exhausted = %d, want %d", got, retries-want)
	}
}

func TestRetryBudgetDropsDepositOfAReusedSlice(t *testing.T) {
	b, clock := newTestBudget(t, 100, 0, time.Second)
	stale := b.current() // slice 0, read by a request that then stalls
	clock.advance(time.Second)
	b.Deposit() // slice 10 takes slice 0's counter
	b.add(stale, 100*retryCost)
	if got := b.Available(); got != 1 {
		t.Errorf("Available = %d, want 1: a deposit for an expired slice must not count", got)
	}
}

// TestRetryBudgetDepositAtCountsInTheRequestsSlice: the request path
// deposits at the time it read (its start); a deposit at a time one
// window past counts for then, not for the budget's clock, unless the
// budget was made with a clock of its own, which it then reads.
func TestRetryBudgetDepositAtCountsInTheRequestsSlice(t *testing.T) {
	b, err := NewRetryBudget(RetryBudgetConfig{Percent: 100, Window: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b.depositAt(b.base.Add(time.Second + time.Millisecond)) // slice 10
	if got := b.balance(b.sliceAt(b.base.Add(time.Second))); got != retryCost {
		t.Errorf("balance in the deposit's window = %d, want %d", got, retryCost)
	}
	if got := b.balance(b.sliceAt(b.base.Add(950 * time.Millisecond))); got != 0 {
		t.Errorf("balance in the window before the deposit's slice = %d, want 0", got)
	}

	own, clock := newTestBudget(t, 100, 0, time.Second)
	clock.advance(5 * time.Second)
	own.depositAt(time.Now()) // not the budget's clock: ignored for it
	if got := own.Available(); got != 1 {
		t.Errorf("Available with its own clock = %d, want 1 (the deposit at its clock)", got)
	}
}

func TestRetryBudgetDepositAllocatesNothing(t *testing.T) {
	b, _ := newTestBudget(t, 20, 3, 10*time.Second)
	if n := testing.AllocsPerRun(1000, b.Deposit); n != 0 {
		t.Errorf("Deposit allocates %v times, want 0", n)
	}
}

func TestRetryBudgetConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		cfg  RetryBudgetConfig
		want string
	}{
		{RetryBudgetConfig{Percent: -1}, "percent: must be between 0 and 1000, got -1"},
		{RetryBudgetConfig{Percent: 1001}, "percent: must be between 0 and 1000, got 1001"},
		{RetryBudgetConfig{MinPerSecond: -3}, "min_per_second: must be between 0 and 1000000, got -3"},
		{RetryBudgetConfig{Window: 500 * time.Millisecond}, "window: must be between 1s and 1m0s, got 500ms"},
		{RetryBudgetConfig{Window: 2 * time.Minute}, "window: must be between 1s and 1m0s, got 2m0s"},
	} {
		_, err := NewRetryBudget(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewRetryBudget(%+v) = %v, want an error with %q", tt.cfg, err, tt.want)
		}
	}
	b, err := NewRetryBudget(RetryBudgetConfig{Percent: 20, MinPerSecond: 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Available(); got != 100 {
		t.Errorf("default window: Available = %d, want 100 (10/s × 10s)", got)
	}
}

// BenchmarkRetryBudgetDeposit is the budget's cost to every request.
func BenchmarkRetryBudgetDeposit(b *testing.B) {
	budget, err := NewRetryBudget(RetryBudgetConfig{Percent: 20, MinPerSecond: 10, Window: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			budget.Deposit()
		}
	})
}

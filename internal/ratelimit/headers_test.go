package ratelimit

import (
	"testing"
	"time"
)

func TestAppendPolicy(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Average: 100}, `"default";q=100;w=1`},
		{Config{Name: "api", Average: 100, Burst: 200}, `"api";q=200;w=2`},
		{Config{Average: 10, Period: time.Minute}, `"default";q=10;w=60`},
		{Config{Average: 3, Burst: 3}, `"default";q=3;w=1`}, // 999,999,999ns rounds up to 1s
		{Config{Average: 1, Burst: 5}, `"default";q=5;w=5`},
		// A fill under a second is advertised as one second: w is whole
		// seconds and never zero (draft section 3.1.3).
		{Config{Average: 1000, Burst: 1}, `"default";q=1;w=1`},
		// 7 per 3s with a burst of 2: 857ms to fill, rounded up.
		{Config{Average: 7, Period: 3 * time.Second, Burst: 2}, `"default";q=2;w=1`},
		{Config{Average: 0.5, Burst: 3}, `"default";q=3;w=6`},
		{Config{Name: `a "quoted" \ name`, Average: 1}, `"a \"quoted\" \\ name";q=1;w=1`},
	}
	for _, c := range cases {
		l := newLimiter(t, c.cfg)
		if got := string(l.AppendPolicy([]byte("x:"))); got != "x:"+c.want {
			t.Errorf("%+v: RateLimit-Policy %q, want %q", c.cfg, got, "x:"+c.want)
		}
	}
}

// TestAppendRateLimit checks the RateLimit and Retry-After values along a
// key's decisions: t is the time to full while allowed, and equals
// Retry-After when refused (the draft's section 6: Retry-After must not
// point before the end of the effective window).
func TestAppendRateLimit(t *testing.T) {
	l := newLimiter(t, Config{Name: "api", Average: 1, Burst: 3})
	ms := time.Millisecond
	steps := []struct {
		now        time.Duration
		rateLimit  string
		retryAfter string // for refused requests
	}{
		{0, `"api";r=2;t=1`, ""},
		{0, `"api";r=1;t=2`, ""},
		{0, `"api";r=0;t=3`, ""},
		{0, `"api";r=0;t=1`, "1"},         // a token in 1s
		{500 * ms, `"api";r=0;t=1`, "1"},  // in 500ms: rounded up
		{1000 * ms, `"api";r=0;t=3`, ""},  // the token came back and was taken
		{1001 * ms, `"api";r=0;t=1`, "1"}, // 999ms to wait
		{3500 * ms, `"api";r=1;t=2`, ""},  // 2.5 tokens back, one taken: 1.5 left, 1.5s to full
		{time.Hour, `"api";r=2;t=1`, ""},  // full again
	}
	for i, s := range steps {
		d := l.Allow("k", at(s.now))
		if got := string(l.AppendRateLimit(nil, d)); got != s.rateLimit {
			t.Errorf("step %d (%+v): RateLimit %q, want %q", i, d, got, s.rateLimit)
		}
		if d.Allowed != (s.retryAfter == "") {
			t.Fatalf("step %d: %+v, want allowed %v", i, d, s.retryAfter == "")
		}
		if !d.Allowed {
			if got := string(l.AppendRetryAfter(nil, d)); got != s.retryAfter {
				t.Errorf("step %d (%+v): Retry-After %q, want %q", i, d, got, s.retryAfter)
			}
		}
	}
}

func TestSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{
		-time.Second: 0, 0: 0, 1: 1, time.Second - 1: 1, time.Second: 1,
		time.Second + 1: 2, 90 * time.Second: 90, MaxFill: int64(MaxFill / time.Second),
	} {
		if got := seconds(d); got != want {
			t.Errorf("seconds(%s) = %d, want %d", d, got, want)
		}
	}
}

// TestAppendAllocatesNothing: the header values are written into the
// caller's buffer.
func TestAppendAllocatesNothing(t *testing.T) {
	l := newLimiter(t, Config{Name: "route-name", Average: 100, Burst: 200})
	buf := make([]byte, 0, 256)
	d := l.Allow("k", at(0))
	allocs := testing.AllocsPerRun(1000, func() {
		b := l.AppendPolicy(buf[:0])
		b = l.AppendRateLimit(b, d)
		b = l.AppendRetryAfter(b, d)
		buf = b
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run, want 0", allocs)
	}
}

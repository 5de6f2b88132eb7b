package healthcheck

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// passiveOnly returns a config with passive checks only.
func passiveOnly(maxFailures int) Config {
	return Config{Passive: PassiveConfig{
		MaxFailures: maxFailures, Ejection: 10 * time.Second, MaxEjection: time.Minute, MaxEjectionPercent: 50,
	}}
}

func TestEjectionTime(t *testing.T) {
	base, max := 10*time.Second, 65*time.Second
	for level, want := range []time.Duration{0: 10 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 65 * time.Second, 65 * time.Second} {
		if got := ejectionTime(base, max, level); got != want {
			t.Errorf("ejectionTime(level %d) = %s, want %s", level, got, want)
		}
	}
	if got := ejectionTime(time.Second, 24*time.Hour, 1000); got != 24*time.Hour {
		t.Errorf("ejectionTime(level 1000) = %s, want the cap (no overflow)", got)
	}
}

func TestPassiveEjectionAndExpiry(t *testing.T) {
	clock := newFakeClock()
	up := staticOf("127.0.0.1:1", "127.0.0.1:2")
	c, rec, hook := start(t, up, passiveOnly(3), WithClock(clock))
	const a = "127.0.0.1:1"

	c.Report(a, ConnectFailure)
	c.Report(a, Timeout)
	c.Report(a, Success) // resets the run
	c.Report(a, ConnectFailure)
	c.Report(a, ConnectFailure)
	if st, _ := stateOf(c, a); st.State != StateHealthy || st.PassiveFailures != 2 {
		t.Fatalf("after a reset and 2 failures: %+v, want healthy with 2 failures", st)
	}
	ejectedAt := clock.Now()
	c.Report(a, Timeout)
	if got := rec.addrs(); got != "127.0.0.1:2" {
		t.Fatalf("published %s after 3 failures, want the member ejected", got)
	}
	st, _ := stateOf(c, a)
	if st.State != StateEjected || st.Ejections != 1 || !st.EjectedUntil.Equal(ejectedAt.Add(10*time.Second)) {
		t.Fatalf("after ejection: %+v, want ejected once until +10s", st)
	}
	c.Report(a, ConnectFailure) // in-flight requests of an ejected member are ignored
	if st, _ := stateOf(c, a); st.PassiveFailures != 0 {
		t.Fatalf("failures counted while ejected: %d", st.PassiveFailures)
	}

	clock.Advance(9 * time.Second)
	clock.Advance(999 * time.Millisecond)
	if got := rec.addrs(); got != "127.0.0.1:2" {
		t.Fatalf("restored before the ejection expired: %s", got)
	}
	clock.Advance(time.Millisecond)
	eventually(t, "restore when the ejection expires", func() bool { return rec.addrs() == "127.0.0.1:1,127.0.0.1:2" })
	if st, _ := stateOf(c, a); st.State != StateHealthy || !st.EjectedUntil.IsZero() || st.Ejections != 1 {
		t.Fatalf("after restore: %+v", st)
	}
	msgs := logged(hook, logrus.InfoLevel)
	if countMsg(msgs, "endpoint ejected") != 1 || countMsg(msgs, "endpoint restored") != 1 {
		t.Fatalf("logged %q, want one ejection and one restore", msgs)
	}
}

func TestEjectionTimeGrowsAndDecays(t *testing.T) {
	clock := newFakeClock()
	c, rec, _ := start(t, staticOf("127.0.0.1:1", "127.0.0.1:2"), passiveOnly(1), WithClock(clock))
	const a = "127.0.0.1:1"
	ejectFor := func() time.Duration {
		t.Helper()
		now := clock.Now()
		c.Report(a, ConnectFailure)
		st, _ := stateOf(c, a)
		if st.State != StateEjected {
			t.Fatalf("not ejected: %+v", st)
		}
		d := st.EjectedUntil.Sub(now)
		clock.Advance(d)
		eventually(t, "restore", func() bool { return rec.addrs() == "127.0.0.1:1,127.0.0.1:2" })
		return d
	}
	var got []string
	for range 5 {
		got = append(got, ejectFor().String())
	}
	if want := "10s,20s,40s,1m0s,1m0s"; strings.Join(got, ",") != want {
		t.Fatalf("ejection times %s, want %s", strings.Join(got, ","), want)
	}
	clock.Advance(59 * time.Second) // in service for less than max_ejection
	if d := ejectFor(); d != time.Minute {
		t.Fatalf("ejection after 59s in service = %s, want still 1m", d)
	}
	clock.Advance(time.Minute) // in service for max_ejection: back to the base
	if d := ejectFor(); d != 10*time.Second {
		t.Fatalf("ejection after 1m in service = %s, want 10s", d)
	}
	if st := c.Status(); st.Ejections != 7 || st.Endpoints[0].Ejections != 7 {
		t.Fatalf("ejections = %d/%d, want 7", st.Ejections, st.Endpoints[0].Ejections)
	}
}

func TestEjectionPercentCap(t *testing.T) {
	for _, tt := range []struct {
		members, percent, want int
	}{
		{4, 50, 2},
		{5, 50, 2},
		{1, 50, 0}, // a lone member is never ejected
		{3, 100, 3},
		{10, 10, 1},
	} {
		t.Run(fmt.Sprintf("%d members %d%%", tt.members, tt.percent), func(t *testing.T) {
			addrs := make([]string, tt.members)
			for i := range addrs {
				addrs[i] = fmt.Sprintf("127.0.0.1:%d", i+1)
			}
			cfg := passiveOnly(2)
			cfg.Passive.MaxEjectionPercent = tt.percent
			cfg.PanicThreshold = 0
			c, _, _ := start(t, staticOf(addrs...), cfg, WithClock(newFakeClock()))
			for range 3 { // several runs of failures: refusals are retried
				for _, a := range addrs {
					c.Report(a, ConnectFailure)
					c.Report(a, ConnectFailure)
				}
			}
			ejected := 0
			for _, e := range c.Status().Endpoints {
				if e.State == StateEjected {
					ejected++
				}
			}
			if ejected != tt.want {
				t.Fatalf("%d ejected, want %d", ejected, tt.want)
			}
			if pub := len(c.Endpoints()); pub != tt.members-tt.want && !(tt.members == tt.want && c.Panicking()) {
				t.Fatalf("published %d members, want %d", pub, tt.members-tt.want)
			}
		})
	}
}

func TestServerErrorsCountOnlyWhenEnabled(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		cfg := passiveOnly(3)
		cfg.Passive.ServerErrors = enabled
		c, _, _ := start(t, staticOf("127.0.0.1:1", "127.0.0.1:2"), cfg, WithClock(newFakeClock()))
		c.Report("127.0.0.1:1", ConnectFailure)
		for range 3 {
			c.Report("127.0.0.1:1", ServerError)
		}
		st, _ := stateOf(c, "127.0.0.1:1")
		switch {
		case enabled && st.State != StateEjected:
			t.Errorf("server_errors on: state %s after 3 5xx, want ejected", st.State)
		case !enabled && (st.State != StateHealthy || st.PassiveFailures != 1):
			t.Errorf("server_errors off: %+v, want healthy with the connect failure still counted (5xx neither fails nor succeeds)", st)
		}
	}
}

func TestReportIgnored(t *testing.T) {
	// Passive checks off.
	c, _, _ := start(t, staticOf("127.0.0.1:1", "127.0.0.1:2"), Config{}, WithClock(newFakeClock()))
	for range 10 {
		c.Report("127.0.0.1:1", ConnectFailure)
	}
	if st, _ := stateOf(c, "127.0.0.1:1"); st.State != StateHealthy || st.PassiveFailures != 0 {
		t.Fatalf("passive off: %+v", st)
	}
	// Unknown address, unknown outcome.
	up := staticOf("127.0.0.1:1", "127.0.0.1:2")
	c, _, _ = start(t, up, passiveOnly(1), WithClock(newFakeClock()))
	c.Report("127.0.0.1:9", ConnectFailure)
	c.Report("127.0.0.1:1", Outcome(200))
	if st := c.Status(); st.Ejections != 0 {
		t.Fatalf("ejections = %d after ignored reports", st.Ejections)
	}
	if Outcome(200).String() != "unknown" || ConnectFailure.String() != "connect_failure" {
		t.Fatal("Outcome.String")
	}
}

func TestConcurrentFailuresEjectOnce(t *testing.T) {
	c, _, _ := start(t, staticOf("127.0.0.1:1", "127.0.0.1:2"), passiveOnly(3), WithClock(newFakeClock()))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				c.Report("127.0.0.1:1", ConnectFailure)
			}
		})
	}
	wg.Wait()
	if st := c.Status(); st.Ejections != 1 || st.Endpoints[0].State != StateEjected {
		t.Fatalf("ejections = %d, state %s; want one ejection", st.Ejections, st.Endpoints[0].State)
	}
}

func TestReportDoesNotAllocate(t *testing.T) {
	cfg := passiveOnly(1 << 30) // never reaches an ejection
	cfg.Passive.ServerErrors = true
	c, _, _ := start(t, staticOf("127.0.0.1:1", "127.0.0.1:2"), cfg, WithClock(newFakeClock()))
	addr := strings.Clone("127.0.0.1:2") // not the map key's own string
	for _, o := range []Outcome{Success, ConnectFailure, Timeout, ServerError} {
		if n := testing.AllocsPerRun(1000, func() { c.Report(addr, o) }); n != 0 {
			t.Errorf("Report(%s) allocates %.1f times", o, n)
		}
	}
	if n := testing.AllocsPerRun(1000, func() { c.Report("127.0.0.1:9", ConnectFailure) }); n != 0 {
		t.Errorf("Report(unknown) allocates %.1f times", n)
	}
}

func BenchmarkReport(b *testing.B) {
	addrs := make([]string, 16)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("10.0.0.%d:8080", i+1)
	}
	cfg := passiveOnly(1 << 30)
	c, err := New(staticOf(addrs...), cfg, nil, WithClock(newFakeClock()))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.Run("serial/success", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			c.Report(addrs[i&15], Success)
		}
	})
	b.Run("serial/failure", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			c.Report(addrs[i&15], ConnectFailure)
		}
	})
	b.Run("parallel/success", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				c.Report(addrs[i&15], Success)
			}
		})
	})
	b.Run("parallel/mixed", func(b *testing.B) { // 1 failure in 16
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				o := Success
				if i&15 == 0 {
					o = ConnectFailure
				}
				c.Report(addrs[i&15], o)
			}
		})
	})
}

// Status says since when each member is in its state, and OnEject hears of
// every ejection as it happens.
func TestStatusSinceAndOnEject(t *testing.T) {
	clock := newFakeClock()
	start0 := clock.Now()
	var mu sync.Mutex
	var ejected []string
	up := staticOf("127.0.0.1:1", "127.0.0.1:2")
	c, rec, _ := start(t, up, passiveOnly(1), WithClock(clock), OnEject(func(addr string) {
		mu.Lock()
		defer mu.Unlock()
		ejected = append(ejected, addr)
	}))
	const a, b = "127.0.0.1:1", "127.0.0.1:2"
	for _, addr := range []string{a, b} {
		if st, _ := stateOf(c, addr); st.State != StateHealthy || !st.Since.Equal(start0) {
			t.Fatalf("%s at start: %+v, want healthy since the start", addr, st)
		}
	}

	clock.Advance(3 * time.Second)
	c.Report(a, ConnectFailure)
	if got := rec.addrs(); got != b {
		t.Fatalf("published %s, want %s ejected", got, a)
	}
	if st, _ := stateOf(c, a); st.State != StateEjected || !st.Since.Equal(start0.Add(3*time.Second)) {
		t.Errorf("after the ejection: %+v, want ejected since +3s", st)
	}
	if st, _ := stateOf(c, b); !st.Since.Equal(start0) {
		t.Errorf("%s changed nothing but its since moved: %+v", b, st)
	}
	mu.Lock()
	got := slices.Clone(ejected)
	mu.Unlock()
	if !slices.Equal(got, []string{a}) {
		t.Errorf("OnEject heard %q, want [%s]", got, a)
	}

	clock.Advance(10 * time.Second) // the ejection expires
	eventually(t, "restore", func() bool { return rec.addrs() == a+","+b })
	if st, _ := stateOf(c, a); st.State != StateHealthy || !st.Since.Equal(start0.Add(13*time.Second)) {
		t.Errorf("after the restore: %+v, want healthy since +13s", st)
	}

	clock.Advance(time.Second)
	if err := c.Drain(b); err != nil {
		t.Fatal(err)
	}
	if st, _ := stateOf(c, b); st.State != StateDraining || !st.Since.Equal(start0.Add(14*time.Second)) {
		t.Errorf("after the drain: %+v, want draining since +14s", st)
	}
}

package healthcheck

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zkgate/zkgate/balancer"
)

func TestPublishesUpstreamAtOnce(t *testing.T) {
	up := staticOf("127.0.0.1:2", "127.0.0.1:1")
	c, rec, _ := start(t, up, Config{})
	if got := rec.addrs(); got != "127.0.0.1:1,127.0.0.1:2" {
		t.Fatalf("published %s, want every member sorted", got)
	}
	if got := addrsOf(c.Endpoints()); got != "127.0.0.1:1,127.0.0.1:2" {
		t.Fatalf("Endpoints() = %s", got)
	}
	n := rec.count()
	up.Set(eps("127.0.0.1:1", "127.0.0.1:2")...) // same list: upstream does not publish
	up.Set(eps("127.0.0.1:1")...)
	up.Set(eps("127.0.0.1:1")...)
	if got := rec.count() - n; got != 1 {
		t.Fatalf("%d publications for one change, want 1", got)
	}
}

func TestWeightChangeKeepsHealth(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	up := staticOf(a.addr, b.addr)
	c, rec, _ := start(t, up, Config{Active: fastActive("tcp")})
	a.stop()
	eventually(t, "stopped backend removed", func() bool { return rec.addrs() == b.addr })

	up.Set(balancer.Endpoint{Addr: a.addr, Weight: 7, ID: "a2"}, balancer.Endpoint{Addr: b.addr, Weight: 3})
	st, _ := stateOf(c, a.addr)
	if st.State != StateUnhealthy || st.Weight != 7 || st.ID != "a2" {
		t.Fatalf("after a weight change: %+v, want unhealthy with weight 7 and ID a2", st)
	}
	last := c.Endpoints()
	if len(last) != 1 || last[0].Addr != b.addr || last[0].Weight != 3 {
		t.Fatalf("published %+v, want only %s with its new weight 3", last, b.addr)
	}
}

func TestLeavingEndpointStopsItsProbeLoop(t *testing.T) {
	a, b, d := newBackend(t), newBackend(t), newBackend(t)
	up := staticOf(a.addr, b.addr, d.addr)
	c, _, _ := start(t, up, Config{Active: fastActive("tcp")})
	eventually(t, "every endpoint probed", func() bool { return a.hits.Load() > 0 && b.hits.Load() > 0 && d.hits.Load() > 0 })
	base := runtime.NumGoroutine()
	if n := c.loops.Load(); n != 3 {
		t.Fatalf("%d probe loops for 3 endpoints", n)
	}

	up.Set(eps(a.addr)...)
	eventually(t, "two probe loops to stop", func() bool { return c.loops.Load() == 1 })
	eventually(t, "goroutines of the departed loops to end", func() bool { return runtime.NumGoroutine() <= base-2 })
	hits, aHits := b.hits.Load(), a.hits.Load()
	eventually(t, "five more probes of the remaining endpoint", func() bool { return a.hits.Load() >= aHits+5 })
	if b.hits.Load() > hits+1 { // at most the probe that was in flight
		t.Fatalf("departed endpoint still probed: %d hits after it left, had %d", b.hits.Load(), hits)
	}
	if _, ok := stateOf(c, b.addr); ok {
		t.Fatal("departed endpoint still in status")
	}
}

func TestMembershipChangeWhileProbeInFlight(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	a.mode.Store(modeHang)
	up := staticOf(a.addr, b.addr)
	cfg := Config{Active: fastActive("http")}
	cfg.Active.Timeout = time.Minute // the probe of a stays in flight unless cancelled
	cfg.Active.UnhealthyThreshold = 1
	c, rec, _ := start(t, up, cfg)
	eventually(t, "probe of the hung backend in flight", func() bool { return a.hits.Load() > 0 })

	up.Set(eps(b.addr)...)
	eventually(t, "in-flight probe cancelled and its loop stopped", func() bool { return c.loops.Load() == 1 })

	// Back with a fresh state: routed at once, although the old probe of
	// the same address never completed.
	a.mode.Store(modeOK)
	up.Set(eps(a.addr, b.addr)...)
	if got := rec.addrs(); got != join(a.addr, b.addr) {
		t.Fatalf("published %s after the rejoin, want both", got)
	}
	eventually(t, "rejoined endpoint probed ok", func() bool {
		st, _ := stateOf(c, a.addr)
		return st.LastProbeResult == "ok"
	})
}

// Membership churn racing fast probes: run under -race, it must leave one
// loop per member and no stray state.
func TestMembershipChurnDuringProbes(t *testing.T) {
	backends := make([]*backend, 4)
	addrs := make([]string, 4)
	for i := range backends {
		backends[i] = newBackend(t)
		addrs[i] = backends[i].addr
	}
	backends[1].mode.Store(modeError)
	up := staticOf()
	cfg := Config{Active: fastActive("http"), Passive: PassiveConfig{MaxFailures: 2, Ejection: time.Millisecond}}
	cfg.Active.Interval = time.Millisecond
	cfg.Active.HealthyThreshold, cfg.Active.UnhealthyThreshold = 1, 1
	c, _, _ := start(t, up, cfg)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // the proxy reporting meanwhile
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c.Report(addrs[i%4], Outcome(i%4))
			_ = c.Status()
		}
	}()
	for i := range 200 {
		var set []string
		for j, a := range addrs {
			if (i>>j)&1 == 1 {
				set = append(set, a)
			}
		}
		up.Set(eps(set...)...)
		if i%20 == 0 {
			time.Sleep(time.Millisecond) // let probes complete between changes
		}
	}
	close(stop)
	wg.Wait()
	up.Set(eps(addrs[0], addrs[2])...)
	eventually(t, "two probe loops", func() bool { return c.loops.Load() == 2 })
	var got []string
	for _, e := range c.Status().Endpoints {
		got = append(got, e.Addr)
	}
	if strings.Join(got, ",") != join(addrs[0], addrs[2]) {
		t.Fatalf("status after churn lists %q, want %s", got, join(addrs[0], addrs[2]))
	}
}

func TestCloseStopsEverything(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	b.mode.Store(modeHang)
	base := runtime.NumGoroutine()
	up := staticOf(a.addr, b.addr)
	cfg := Config{Active: fastActive("http"), Passive: PassiveConfig{MaxFailures: 1}}
	cfg.Active.Timeout = time.Minute
	c, rec, _ := start(t, up, cfg)
	eventually(t, "probes running", func() bool { return a.hits.Load() > 0 && b.hits.Load() > 0 })
	c.Report(a.addr, ConnectFailure) // an ejection timer pending

	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Close did not return: an in-flight probe was not cancelled")
	}
	if n := c.loops.Load(); n != 0 {
		t.Fatalf("%d probe loops after Close", n)
	}
	deadline := time.Now().Add(waitLimit)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines %d > %d:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(2 * time.Millisecond)
	}

	n := rec.count()
	up.Set(eps(a.addr)...)
	if rec.count() != n {
		t.Fatal("a closed checker still republished upstream changes")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestPanicWhenNoMemberHealthy(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	up := staticOf(a.addr, b.addr)
	cfg := Config{Active: fastActive("tcp")}
	cfg.Active.HealthyThreshold, cfg.Active.UnhealthyThreshold = 1, 1
	c, rec, hook := start(t, up, cfg)

	a.stop()
	eventually(t, "first backend removed", func() bool { return rec.addrs() == b.addr })
	if c.Panicking() {
		t.Fatal("panicking with one healthy member")
	}
	b.stop()
	eventually(t, "panic mode", func() bool { return c.Panicking() })
	if got := rec.addrs(); got != join(a.addr, b.addr) {
		t.Fatalf("published %s in panic mode, want every member", got)
	}
	// Another change while panicking: no second warning.
	up.Set(balancer.Endpoint{Addr: a.addr, Weight: 2}, balancer.Endpoint{Addr: b.addr})
	if got := c.Endpoints(); len(got) != 2 || weightOf(got, a.addr) != 2 {
		t.Fatalf("published %+v, want both, %s with the new weight", got, a.addr)
	}
	st := c.Status()
	if !st.Panicking || st.PanicActivations != 1 {
		t.Fatalf("status panicking=%v activations=%d, want true and 1", st.Panicking, st.PanicActivations)
	}

	b.start()
	eventually(t, "panic mode left", func() bool { return !c.Panicking() })
	if got := rec.addrs(); got != b.addr {
		t.Fatalf("published %s after recovery, want only the healthy member", got)
	}
	warns := logged(hook, logrus.WarnLevel)
	if n := countMsg(warns, "panic threshold crossed"); n != 1 {
		t.Fatalf("%d panic warnings, want 1: %q", n, warns)
	}
	if n := countMsg(logged(hook, logrus.InfoLevel), "panic mode left"); n != 1 {
		t.Fatalf("%d panic-left logs, want 1", n)
	}
}

func TestPanicThresholdHalf(t *testing.T) {
	bs := []*backend{newBackend(t), newBackend(t), newBackend(t), newBackend(t)}
	addrs := []string{bs[0].addr, bs[1].addr, bs[2].addr, bs[3].addr}
	cfg := Config{Active: fastActive("tcp"), PanicThreshold: 50}
	cfg.Active.HealthyThreshold, cfg.Active.UnhealthyThreshold = 1, 1
	c, rec, _ := start(t, staticOf(addrs...), cfg)

	bs[0].stop()
	bs[1].stop()
	eventually(t, "two of four removed", func() bool { return rec.addrs() == join(addrs[2], addrs[3]) })
	if c.Panicking() {
		t.Fatal("panicking with 2 of 4 healthy and a threshold of 0.5")
	}
	bs[2].stop()
	eventually(t, "panic mode with 1 of 4 healthy", func() bool { return c.Panicking() })
	if got := rec.addrs(); got != join(addrs...) {
		t.Fatalf("published %s in panic mode, want all four", got)
	}
	bs[0].start()
	eventually(t, "panic left with 2 of 4 healthy", func() bool { return !c.Panicking() })
	if got := rec.addrs(); got != join(addrs[0], addrs[3]) {
		t.Fatalf("published %s, want the two healthy members", got)
	}
}

func TestDrain(t *testing.T) {
	up := staticOf("127.0.0.1:1", "127.0.0.1:2")
	c, rec, _ := start(t, up, Config{})
	if err := c.Drain("127.0.0.1:1"); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if got := rec.addrs(); got != "127.0.0.1:2" {
		t.Fatalf("published %s, want the drained member out", got)
	}
	if st, _ := stateOf(c, "127.0.0.1:1"); st.State != StateDraining {
		t.Fatalf("state = %q, want draining", st.State)
	}
	// Survives membership updates while the address stays.
	up.Set(balancer.Endpoint{Addr: "127.0.0.1:1", Weight: 5}, balancer.Endpoint{Addr: "127.0.0.1:2"}, balancer.Endpoint{Addr: "127.0.0.1:3"})
	if got := rec.addrs(); got != "127.0.0.1:2,127.0.0.1:3" {
		t.Fatalf("published %s after an update, want the member still drained", got)
	}
	// Drained members stay out even in panic mode, and are not counted.
	if err := c.Drain("127.0.0.1:2"); err != nil {
		t.Fatal(err)
	}
	if err := c.Drain("127.0.0.1:3"); err != nil {
		t.Fatal(err)
	}
	if got := rec.addrs(); got != "" || c.Panicking() {
		t.Fatalf("published %q, panicking=%v with everything drained; want nothing and no panic", got, c.Panicking())
	}
	if err := c.Undrain("127.0.0.1:1"); err != nil {
		t.Fatalf("Undrain: %v", err)
	}
	if got := rec.addrs(); got != "127.0.0.1:1" {
		t.Fatalf("published %s after Undrain", got)
	}
	// Forgotten when the address leaves.
	up.Set(eps("127.0.0.1:1")...)
	up.Set(eps("127.0.0.1:1", "127.0.0.1:2")...)
	if got := rec.addrs(); got != "127.0.0.1:1,127.0.0.1:2" {
		t.Fatalf("published %s, want the rejoined member no longer drained", got)
	}
	for _, err := range []error{c.Drain("127.0.0.1:9"), c.Undrain("127.0.0.1:9")} {
		if !errors.Is(err, ErrUnknownEndpoint) || !strings.Contains(err.Error(), `"127.0.0.1:9"`) {
			t.Errorf("error for an unknown address = %v, want ErrUnknownEndpoint naming it", err)
		}
	}
}

func TestLogsStateChangesOnly(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	c, rec, hook := start(t, staticOf(a.addr, b.addr), Config{Active: fastActive("http")})
	eventually(t, "ten probes", func() bool { return c.Status().Probes >= 10 })
	if got := logged(hook, logrus.InfoLevel); len(got) != 0 {
		t.Fatalf("successful probes logged %q", got)
	}
	a.mode.Store(modeError)
	eventually(t, "down", func() bool { return rec.addrs() == b.addr })
	a.mode.Store(modeOK)
	eventually(t, "up", func() bool { return rec.addrs() == join(a.addr, b.addr) })
	got := logged(hook, logrus.InfoLevel)
	if len(got) != 2 || got[0] != "endpoint down" || got[1] != "endpoint up" {
		t.Fatalf("logged %q, want exactly [endpoint down, endpoint up]", got)
	}
	e := hook.AllEntries()
	for _, entry := range e {
		if entry.Message == "endpoint down" && (entry.Data["addr"] != a.addr || entry.Data["component"] != "healthcheck") {
			t.Fatalf("down entry fields = %v", entry.Data)
		}
	}
}

func weightOf(eps []balancer.Endpoint, addr string) int {
	for _, e := range eps {
		if e.Addr == addr {
			return e.Weight
		}
	}
	return 0
}

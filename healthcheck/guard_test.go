package healthcheck

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// guarded returns a config with only the removal guard on: 50%, 30s.
func guarded() Config {
	return Config{RemovalGuard: RemovalGuardConfig{MaxPercent: 50, Hold: 30 * time.Second}}
}

// tenAddrs returns ten distinct fake addresses (no probes reach them).
func tenAddrs() []string {
	out := make([]string, 10)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.0.%d:80", i+10)
	}
	return out
}

// everWith reports whether any list rec received contains addr.
func (r *recorder) everWith(addr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lists {
		if strings.Contains(","+addrsOf(l)+",", ","+addr+",") {
			return true
		}
	}
	return false
}

func TestRemovalGuardHoldsMassRemovalUntilHoldEnds(t *testing.T) {
	clock := newFakeClock()
	addrs := tenAddrs()
	up := staticOf(addrs...)
	c, rec, hook := start(t, up, guarded(), WithClock(clock))
	t0 := clock.Now()

	up.Set(eps(addrs[0])...) // 9 of 10 removed
	if got := rec.addrs(); got != join(addrs...) {
		t.Fatalf("published %s after a mass removal, want all ten held", got)
	}
	st := c.Status()
	if st.RemovalGuardHeld != 9 || !st.RemovalGuardUntil.Equal(t0.Add(30*time.Second)) || st.RemovalGuardEngagements != 1 {
		t.Fatalf("status held=%d until=%v engagements=%d, want 9, t0+30s, 1", st.RemovalGuardHeld, st.RemovalGuardUntil, st.RemovalGuardEngagements)
	}
	if n := countMsg(logged(hook, logrus.WarnLevel), "removal guard engaged: 9 of 10 members removed at once, holding them for 30s"); n != 1 {
		t.Fatalf("%d engagement warnings, want 1: %q", n, logged(hook, logrus.WarnLevel))
	}
	clock.Advance(29 * time.Second)
	if got := c.Endpoints(); len(got) != 10 {
		t.Fatalf("%d published before the hold ends, want 10", len(got))
	}
	clock.Advance(time.Second)
	eventually(t, "hold end publishes upstream's list", func() bool { return rec.addrs() == addrs[0] })
	if st := c.Status(); !st.RemovalGuardUntil.IsZero() || st.RemovalGuardHeld != 0 || len(st.Endpoints) != 1 {
		t.Fatalf("status after the hold: until=%v held=%d members=%d", st.RemovalGuardUntil, st.RemovalGuardHeld, len(st.Endpoints))
	}
	if n := countMsg(logged(hook, logrus.InfoLevel), "removal guard ended: hold expired, 9 held members removed"); n != 1 {
		t.Fatalf("%d end logs, want 1", n)
	}
}

func TestRemovalGuardLetsSmallRemovalsThrough(t *testing.T) {
	addrs := tenAddrs()
	up := staticOf(addrs...)
	c, rec, _ := start(t, up, guarded(), WithClock(newFakeClock()))
	up.Set(eps(addrs[5:]...)...) // exactly 50%: not more than max_percent
	if got := rec.addrs(); got != join(addrs[5:]...) {
		t.Fatalf("published %s, want the five listed", got)
	}
	if st := c.Status(); st.RemovalGuardEngagements != 0 || !st.RemovalGuardUntil.IsZero() {
		t.Fatalf("guard engaged on a 50%% removal: %+v", st)
	}
}

func TestRemovalGuardOffWithZeroPercent(t *testing.T) {
	addrs := tenAddrs()
	up := staticOf(addrs...)
	_, rec, _ := start(t, up, Config{RemovalGuard: RemovalGuardConfig{MaxPercent: 0}}, WithClock(newFakeClock()))
	up.Set(eps(addrs[0])...)
	if got := rec.addrs(); got != addrs[0] {
		t.Fatalf("published %s with the guard off, want only the listed member", got)
	}
}

func TestRemovalGuardReaddedMembersEndTheirHold(t *testing.T) {
	clock := newFakeClock()
	addrs := tenAddrs()
	up := staticOf(addrs...)
	c, rec, hook := start(t, up, guarded(), WithClock(clock))

	up.Set(eps(addrs[0])...)
	up.Set(eps(addrs[:4]...)...) // three come back
	st := c.Status()
	if st.RemovalGuardHeld != 6 {
		t.Fatalf("%d held after three came back, want 6", st.RemovalGuardHeld)
	}
	for _, e := range st.Endpoints {
		if want := e.Addr >= addrs[4]; e.Held != want {
			t.Fatalf("%s held=%v, want %v", e.Addr, e.Held, want)
		}
	}
	up.Set(eps(addrs...)...) // all back: the hold ends early
	if st := c.Status(); !st.RemovalGuardUntil.IsZero() || st.RemovalGuardHeld != 0 {
		t.Fatalf("hold still on after every member came back: %+v", st)
	}
	if n := countMsg(logged(hook, logrus.InfoLevel), "removal guard ended: no member held any more"); n != 1 {
		t.Fatalf("%d early-end logs, want 1", n)
	}
	// A small removal afterwards is not held: the guard is idle again.
	up.Set(eps(addrs[1:]...)...)
	if got := rec.addrs(); got != join(addrs[1:]...) {
		t.Fatalf("published %s, want nine", got)
	}
	clock.Advance(time.Minute) // the old hold's timer must not remove anything
	if got := c.Endpoints(); len(got) != 9 {
		t.Fatalf("%d published after the old hold's end, want 9", len(got))
	}
}

func TestRemovalGuardFurtherRemovalsJoinTheHold(t *testing.T) {
	clock := newFakeClock()
	addrs := tenAddrs()
	up := staticOf(addrs...)
	c, rec, _ := start(t, up, guarded(), WithClock(clock))
	t0 := clock.Now()

	up.Set(eps(addrs[:4]...)...) // 6 of 10: engaged
	clock.Advance(10 * time.Second)
	up.Set(eps(addrs[:2]...)...) // 2 of the 4 left: a small removal, held too
	st := c.Status()
	if st.RemovalGuardHeld != 8 || !st.RemovalGuardUntil.Equal(t0.Add(30*time.Second)) || st.RemovalGuardEngagements != 1 {
		t.Fatalf("held=%d until=%v engagements=%d, want 8, the first hold's end, 1", st.RemovalGuardHeld, st.RemovalGuardUntil, st.RemovalGuardEngagements)
	}
	if got := len(c.Endpoints()); got != 10 {
		t.Fatalf("%d published during the hold, want 10", got)
	}
	clock.Advance(20 * time.Second)
	eventually(t, "hold end", func() bool { return rec.addrs() == join(addrs[:2]...) })
}

func TestRemovalGuardEmptyListIsNoBackendsAfterTheHold(t *testing.T) {
	clock := newFakeClock()
	addrs := tenAddrs()
	up := staticOf(addrs...)
	c, rec, _ := start(t, up, guarded(), WithClock(clock))
	up.Set()
	if got := len(c.Endpoints()); got != 10 {
		t.Fatalf("%d published after an empty list, want 10 held", got)
	}
	clock.Advance(30 * time.Second)
	eventually(t, "empty list published", func() bool { return rec.count() > 0 && rec.addrs() == "" })
}

func TestRemovalGuardDropsHeldMembersThatFailAProbe(t *testing.T) {
	clock := newFakeClock() // probes run once at start, then only when kicked
	bs := make([]*backend, 10)
	addrs := make([]string, 10)
	for i := range bs {
		bs[i] = newBackend(t)
		addrs[i] = bs[i].addr
	}
	up := staticOf(addrs...)
	cfg := guarded()
	cfg.Active = fastActive("http")
	c, rec, hook := start(t, up, cfg, WithClock(clock))
	eventually(t, "first probes", func() bool { return c.Status().Probes == 10 })
	if got := rec.addrs(); got != join(addrs...) {
		t.Fatalf("published %s, want all ten", got)
	}

	for _, b := range bs[1:4] {
		b.stop() // three of the removed are really down
	}
	up.Set(eps(addrs[0])...)
	eventually(t, "down members removed at once", func() bool { return rec.addrs() == join(append(addrs[:1:1], addrs[4:]...)...) })
	if n := countMsg(logged(hook, logrus.WarnLevel), "held endpoint failed a probe"); n != 3 {
		t.Fatalf("%d held-failure warnings, want 3", n)
	}
	st := c.Status()
	if st.RemovalGuardHeld != 6 || st.ProbeLoops != 7 {
		t.Fatalf("held=%d loops=%d, want 6 held members and 7 probe loops", st.RemovalGuardHeld, st.ProbeLoops)
	}
	clock.Advance(30 * time.Second)
	eventually(t, "hold end", func() bool { return rec.addrs() == addrs[0] })
	eventually(t, "probe loops of the held stopped", func() bool { return c.Status().ProbeLoops == 1 })
}

func TestRemovalGuardAndPanicMode(t *testing.T) {
	// Held members are members: the panic threshold counts them. With 9 of
	// 10 held and the only listed member down, the healthy held ones are
	// published and no panic starts.
	clock := newFakeClock()
	addrs := tenAddrs()
	up := staticOf(addrs...)
	cfg := guarded()
	cfg.PanicThreshold = 50
	c, rec, _ := start(t, up, cfg, WithClock(clock))
	up.Set(eps(addrs[0])...)
	if c.Panicking() || len(c.Endpoints()) != 10 {
		t.Fatalf("panicking=%v published=%d, want false and 10", c.Panicking(), len(c.Endpoints()))
	}
	clock.Advance(30 * time.Second)
	eventually(t, "hold end", func() bool { return rec.addrs() == addrs[0] })
}

func TestRequireFirstPassGatesNewMembers(t *testing.T) {
	clock := newFakeClock() // one probe per member: the first
	good, bad, late := newBackend(t), newBackend(t), newBackend(t)
	bad.mode.Store(modeError)
	up := staticOf(good.addr)
	cfg := Config{Active: fastActive("http")}
	cfg.Active.RequireFirstPass = true
	c, rec, _ := start(t, up, cfg, WithClock(clock))
	// The first membership is gated too, and probed at once.
	eventually(t, "first member routed after its probe", func() bool { return rec.addrs() == good.addr })
	if rec.addrsAt(0) != "" {
		t.Fatalf("first publication %q, want nothing before the first probe", rec.addrsAt(0))
	}

	up.Set(eps(good.addr, bad.addr)...)
	if e, _ := stateOf(c, bad.addr); e.State != StatePending && e.LastProbe.IsZero() {
		t.Fatalf("new member state %q before its probe, want pending", e.State)
	}
	eventually(t, "failing member probed", func() bool { e, _ := stateOf(c, bad.addr); return !e.LastProbe.IsZero() })
	if e, _ := stateOf(c, bad.addr); e.State != StateUnhealthy {
		t.Fatalf("member failing its first probe is %q, want unhealthy", e.State)
	}
	if rec.everWith(bad.addr) {
		t.Fatal("member failing its first probe was published")
	}

	up.Set(eps(good.addr, bad.addr, late.addr)...)
	eventually(t, "passing member routed after one probe", func() bool { return rec.addrs() == join(good.addr, late.addr) })
	if rec.everWith(bad.addr) {
		t.Fatal("member failing its first probe was published")
	}
}

func TestRequireFirstPassOffRoutesAtOnce(t *testing.T) {
	bad := newBackend(t)
	bad.mode.Store(modeError)
	cfg := Config{Active: fastActive("http")}
	_, rec, _ := start(t, staticOf(bad.addr), cfg, WithClock(newFakeClock()))
	if rec.addrsAt(0) != bad.addr {
		t.Fatalf("first publication %q, want the member at once without require_first_pass", rec.addrsAt(0))
	}
}

func TestRemovalGuardConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		g    RemovalGuardConfig
		path string
	}{
		{RemovalGuardConfig{MaxPercent: -1}, "removal_guard.max_percent"},
		{RemovalGuardConfig{MaxPercent: 101}, "removal_guard.max_percent"},
		{RemovalGuardConfig{MaxPercent: 50, Hold: -time.Second}, "removal_guard.hold"},
	} {
		err := Config{RemovalGuard: tc.g}.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.path+": ") {
			t.Errorf("Validate(%+v) = %v, want an error at %s", tc.g, err, tc.path)
		}
	}
	if d := Defaults(); d.RemovalGuard != (RemovalGuardConfig{MaxPercent: 50, Hold: 30 * time.Second}) || !d.Active.RequireFirstPass {
		t.Fatalf("Defaults: guard %+v, require_first_pass %v", d.RemovalGuard, d.Active.RequireFirstPass)
	}
}

func TestRemovalGuardDropsHeldMemberAtItsFirstFailedRequest(t *testing.T) {
	// Passive checks off: only the guard reads the report.
	addrs := tenAddrs()
	up := staticOf(addrs...)
	c, rec, hook := start(t, up, guarded(), WithClock(newFakeClock()))
	up.Set(eps(addrs[0])...)
	c.Report(addrs[1], ServerError) // an answer: the backend is there
	c.Report(addrs[2], Success)
	c.Report(addrs[0], ConnectFailure) // not held: not the guard's business
	if got := len(c.Endpoints()); got != 10 {
		t.Fatalf("%d published, want 10", got)
	}
	c.Report(addrs[1], ConnectFailure)
	c.Report(addrs[2], Timeout)
	want := join(append(addrs[:1:1], addrs[3:]...)...)
	if got := rec.addrs(); got != want {
		t.Fatalf("published %s, want %s: held members whose requests failed leave at once", got, want)
	}
	if n := countMsg(logged(hook, logrus.WarnLevel), "held endpoint failed a request"); n != 2 {
		t.Fatalf("%d held-failure warnings, want 2", n)
	}
	if n := testing.AllocsPerRun(1000, func() { c.Report(addrs[5], Success) }); n != 0 {
		t.Errorf("Report(held, Success) allocates %.1f times", n)
	}
}

func TestRemovalGuardRechecksHeldMembersWhenOneFails(t *testing.T) {
	clock := newFakeClock() // probes run at start and when kicked only
	bs := make([]*backend, 4)
	addrs := make([]string, 4)
	for i := range bs {
		bs[i] = newBackend(t)
		addrs[i] = bs[i].addr
	}
	up := staticOf(addrs...)
	cfg := guarded()
	cfg.Active = fastActive("tcp")
	c, rec, _ := start(t, up, cfg, WithClock(clock))
	eventually(t, "first probes", func() bool { return c.Status().Probes == 4 })
	up.Set(eps(addrs[0])...) // 3 of 4 held, each probed at once: all pass
	eventually(t, "hold probes", func() bool { return c.Status().Probes == 7 })

	bs[1].stop()
	bs[2].stop() // two held backends die together; bs[3] lives
	n0 := rec.count()
	c.Report(addrs[1], ConnectFailure)
	// addrs[2] and addrs[3] are out at once, until each is probed again.
	if got := rec.addrsAt(n0); got != addrs[0] {
		t.Fatalf("published %s after a held member failed, want only %s until the others pass a probe", got, addrs[0])
	}
	eventually(t, "dead held member gone, live one back", func() bool { return rec.addrs() == join(addrs[0], addrs[3]) })
	for i := n0; i < rec.count(); i++ {
		if strings.Contains(rec.addrsAt(i), addrs[2]) {
			t.Fatalf("dead held member republished: %s", rec.addrsAt(i))
		}
	}
}

// OnMembers hears of each change of the members' addresses — not of a
// weight's — and a member the removal guard holds stays in them until the
// hold ends and drops it.
func TestOnMembersFollowsDropsNotHolds(t *testing.T) {
	clock := newFakeClock()
	addrs := tenAddrs()
	up := staticOf(addrs...)
	var mu sync.Mutex
	var heard []string
	onMembers := OnMembers(func(a []string) {
		mu.Lock()
		defer mu.Unlock()
		heard = append(heard, strings.Join(a, ","))
	})
	last := func() (string, int) {
		mu.Lock()
		defer mu.Unlock()
		if len(heard) == 0 {
			return "", 0
		}
		return heard[len(heard)-1], len(heard)
	}
	c, _, _ := start(t, up, guarded(), WithClock(clock), onMembers)
	if got, n := last(); got != join(addrs...) || n != 1 {
		t.Fatalf("at the start: heard %d times, last %q; want once, the ten", n, got)
	}

	w := eps(addrs...)
	w[0].Weight = 5
	up.Set(w...)
	if _, n := last(); n != 1 {
		t.Fatalf("a weight change was heard (%d calls)", n)
	}

	up.Set(eps(addrs[1:]...)...) // one of ten: through the guard
	if got, n := last(); got != join(addrs[1:]...) || n != 2 {
		t.Fatalf("after one removal: heard %d times, last %q; want the nine", n, got)
	}

	up.Set(eps(addrs[9])...) // eight of nine: held
	if got, n := last(); got != join(addrs[1:]...) || n != 2 {
		t.Fatalf("while the guard holds: heard %d times, last %q; want the nine still", n, got)
	}
	c.Report(addrs[1], ConnectFailure) // a held member failing a request leaves at once
	if got, n := last(); got != join(addrs[2:]...) || n != 3 {
		t.Fatalf("after a held member failed a request: heard %d times, last %q; want the other eight", n, got)
	}
	clock.Advance(30 * time.Second)
	eventually(t, "the hold's end to drop the held members", func() bool {
		got, n := last()
		return got == addrs[9] && n == 4
	})
}

package healthcheck

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRiseFall(t *testing.T) {
	tests := []struct {
		name       string
		rise, fall int
		results    string // o = success, x = failure
		want       string // state after each result: U = up, D = down
	}{
		{"one failure does not fall", 2, 2, "oxoxox", "UUUUUU"},
		{"fall after two", 2, 2, "oxx", "UUD"},
		{"rise after two", 2, 2, "xxoo", "UDDU"},
		{"success resets the fall run", 2, 3, "xxoxxox", "UUUUUUU"},
		{"failure resets the rise run", 2, 2, "xxoxoo", "UDDDDU"},
		{"flapping stays down", 2, 2, "xxoxoxoxo", "UDDDDDDDD"},
		{"thresholds of one follow every result", 1, 1, "xoxo", "DUDU"},
		{"rise three", 3, 1, "xooo", "DDDU"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r riseFall
			var got strings.Builder
			for _, c := range tt.results {
				wasDown := r.down
				changed := r.observe(c == 'o', tt.rise, tt.fall)
				if changed != (wasDown != r.down) {
					t.Fatalf("observe reported changed=%v but down went %v→%v", changed, wasDown, r.down)
				}
				if r.down {
					got.WriteByte('D')
				} else {
					got.WriteByte('U')
				}
			}
			if got.String() != tt.want {
				t.Fatalf("states for %s = %s, want %s", tt.results, got.String(), tt.want)
			}
		})
	}
}

func TestTCPProbeDownAndBack(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	up := staticOf(a.addr, b.addr)
	c, rec, _ := start(t, up, Config{Active: fastActive("tcp")})
	if got := rec.addrs(); got != join(a.addr, b.addr) {
		t.Fatalf("published %s at start, want both", got)
	}

	a.stop()
	eventually(t, "stopped backend removed", func() bool { return rec.addrs() == b.addr })
	st, _ := stateOf(c, a.addr)
	if st.State != StateUnhealthy || st.ConsecutiveFailures < 2 || !strings.Contains(st.LastProbeResult, "refused") {
		t.Fatalf("status of stopped backend = %+v, want unhealthy after >= 2 refused probes", st)
	}

	a.start()
	eventually(t, "restarted backend back", func() bool { return rec.addrs() == join(a.addr, b.addr) })
	st, _ = stateOf(c, a.addr)
	if st.State != StateHealthy || st.LastProbeResult != "ok" || st.LastProbe.IsZero() {
		t.Fatalf("status of restarted backend = %+v, want healthy with an ok probe", st)
	}
}

func TestHTTPProbeServerErrorAndBack(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	up := staticOf(a.addr, b.addr)
	c, rec, _ := start(t, up, Config{Active: fastActive("http")})

	a.mode.Store(modeError)
	eventually(t, "backend answering 500 removed", func() bool { return rec.addrs() == b.addr })
	if st, _ := stateOf(c, a.addr); !strings.Contains(st.LastProbeResult, "status 500, want 200-399") {
		t.Fatalf("last probe result = %q, want the status named", st.LastProbeResult)
	}
	a.mode.Store(modeOK)
	eventually(t, "backend answering 200 back", func() bool { return rec.addrs() == join(a.addr, b.addr) })
}

func TestHTTPProbeHungBackend(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	up := staticOf(a.addr, b.addr)
	cfg := Config{Active: fastActive("http")}
	cfg.Active.Timeout = 150 * time.Millisecond
	c, rec, _ := start(t, up, cfg)

	a.mode.Store(modeHang)
	eventually(t, "hung backend removed", func() bool { return rec.addrs() == b.addr })
	if st, _ := stateOf(c, a.addr); !strings.Contains(st.LastProbeResult, "timeout after 150ms") {
		t.Fatalf("last probe result = %q, want a timeout", st.LastProbeResult)
	}
	a.mode.Store(modeOK)
	eventually(t, "recovered backend back", func() bool { return rec.addrs() == join(a.addr, b.addr) })
}

// A TCP probe proves only that connections are accepted: a hung process
// whose kernel still accepts looks healthy. This is why http probes and
// passive checks exist.
func TestTCPProbeCannotSeeHungBackend(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	a.mode.Store(modeHang)
	c, rec, _ := start(t, staticOf(a.addr, b.addr), Config{Active: fastActive("tcp")})
	eventually(t, "ten probes", func() bool { return c.Status().Probes >= 10 })
	if rec.everWithout(a.addr) {
		t.Fatal("tcp probe took out a backend that accepts connections")
	}
}

func TestFlappingDampedByThresholds(t *testing.T) {
	for _, tt := range []struct {
		threshold   int
		wantRemoved bool
	}{{2, false}, {1, true}} {
		a, b := newBackend(t), newBackend(t)
		a.mode.Store(modeFlap) // 200, 500, 200, 500, ...
		cfg := Config{Active: fastActive("http")}
		cfg.Active.HealthyThreshold, cfg.Active.UnhealthyThreshold = tt.threshold, tt.threshold
		c, rec, _ := start(t, staticOf(a.addr, b.addr), cfg)
		eventually(t, "twelve probes of the flapping backend", func() bool { return a.hits.Load() >= 12 })
		_ = c.Close()
		if got := rec.everWithout(a.addr); got != tt.wantRemoved {
			t.Errorf("threshold %d: flapping backend removed = %v, want %v", tt.threshold, got, tt.wantRemoved)
		}
	}
}

func TestNewEndpointRoutedAndProbedAtOnce(t *testing.T) {
	a := newBackend(t)
	up := staticOf(a.addr)
	cfg := Config{Active: fastActive("tcp")}
	cfg.Active.Interval = time.Hour // only the first probe can run in this test
	cfg.Active.UnhealthyThreshold = 1
	_, rec, _ := start(t, up, cfg)

	dead := deadAddr(t)
	n := rec.count()
	up.Set(eps(a.addr, dead)...)
	// The probe may already have removed it: look at the first publication
	// after the join.
	if got := rec.addrsAt(n); got != join(a.addr, dead) {
		t.Fatalf("published %s on the join, want the new endpoint routed at once", got)
	}
	eventually(t, "dead endpoint removed by its first probe", func() bool { return rec.addrs() == a.addr })
}

func TestHTTPProbeSendsPathAndHost(t *testing.T) {
	var seen atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Method + " " + r.Host + " " + r.URL.RequestURI() + " " + r.UserAgent())
		if r.Host != "svc.internal" {
			w.WriteHeader(http.StatusMisdirectedRequest)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	cfg := Config{Active: fastActive("http")}
	cfg.Active.Path, cfg.Active.Host = "/healthz?deep=1", "svc.internal"
	c, _, _ := start(t, staticOf(addr), cfg)
	eventually(t, "a probe", func() bool { st, _ := stateOf(c, addr); return st.LastProbeResult != "" })
	if st, _ := stateOf(c, addr); st.LastProbeResult != "ok" {
		t.Fatalf("probe result = %q, want ok", st.LastProbeResult)
	}
	if got, want := seen.Load(), "GET svc.internal /healthz?deep=1 zkgate-healthcheck"; got != want {
		t.Fatalf("backend saw %q, want %q", got, want)
	}
}

func TestHTTPProbeDoesNotFollowRedirects(t *testing.T) {
	var followed atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed.Store(true)
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, tt := range []struct {
		expect StatusRanges
		want   string
	}{
		{StatusRanges{{200, 399}}, "ok"},
		{StatusRanges{{200, 299}}, "status 302, want 200-299"},
		{StatusRanges{{200, 299}, {302, 302}}, "ok"},
		{StatusRanges{{200, 299}, {303, 399}}, "status 302, want 200-299,303-399"},
	} {
		cfg := Config{Active: fastActive("http")}
		cfg.Active.ExpectStatus = tt.expect
		c, _, _ := start(t, staticOf(addr), cfg)
		eventually(t, "a probe", func() bool { st, _ := stateOf(c, addr); return st.LastProbeResult != "" })
		if st, _ := stateOf(c, addr); st.LastProbeResult != tt.want {
			t.Errorf("expect %s: probe result = %q, want %q", tt.expect, st.LastProbeResult, tt.want)
		}
		_ = c.Close()
	}
	if followed.Load() {
		t.Error("the probe followed a redirect")
	}
}

func TestMaxConcurrentBoundsProbes(t *testing.T) {
	up := staticOf()
	cfg := Config{Active: fastActive("tcp")}
	cfg.Active.MaxConcurrent = 2
	c, _, _ := start(t, up, cfg)
	var inFlight, peak, total atomic.Int64
	c.mu.Lock()
	c.probe = func(ctx context.Context, addr string) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		total.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
		return nil
	}
	c.mu.Unlock()
	up.Set(eps("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4", "127.0.0.1:5", "127.0.0.1:6")...)
	eventually(t, "30 probes", func() bool { return total.Load() >= 30 })
	if p := peak.Load(); p != 2 {
		t.Fatalf("peak concurrent probes = %d, want 2 (max_concurrent)", p)
	}
}

func TestProbePanicBecomesFailure(t *testing.T) {
	up := staticOf()
	cfg := Config{Active: fastActive("tcp")}
	c, _, _ := start(t, up, cfg)
	c.mu.Lock()
	c.probe = func(context.Context, string) error { panic("boom") }
	c.mu.Unlock()
	up.Set(eps("127.0.0.1:1", "127.0.0.1:2")...)
	eventually(t, "probes to fail", func() bool {
		st, _ := stateOf(c, "127.0.0.1:1")
		return st.State == StateUnhealthy && st.LastProbeResult == "probe panicked: boom"
	})
	if n := c.Status().ProbeLoops; n != 2 {
		t.Fatalf("probe loops = %d after panics, want 2 still running", n)
	}
}

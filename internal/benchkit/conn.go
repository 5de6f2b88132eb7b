package benchkit

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// Settling of the resident size (SettleRSS) before and after the
// connections are opened.
const (
	settleEvery = 200 * time.Millisecond
	settleBound = 5 * time.Second
)

// connections runs the connection benchmark on the selected ConnTargets:
// for each, on a freshly restarted process, the memory of HeldConns idle
// connections; the steady load without them and then with them held; and,
// on a process restarted again, the memory of HeldConns upgraded
// connections. Every holder is stopped, and the target seen to let its
// connections go, before the next step.
func (h *harness) connections(ctx context.Context, targets []*target) (*ConnResults, error) {
	res := &ConnResults{Conns: h.o.HeldConns}
	for _, name := range ConnTargets {
		i := slices.IndexFunc(targets, func(t *target) bool { return t.Name == name })
		if i < 0 {
			continue
		}
		t := targets[i]
		h.say("connections: %s, %d idle, then wrk beside them, then %d upgraded", t.Label, h.o.HeldConns, h.o.HeldConns)
		if err := h.restart(ctx, t); err != nil {
			return nil, err
		}
		idle, err := h.connMemory(ctx, t, HoldIdle, res)
		if err != nil {
			return nil, err
		}
		res.Memory = append(res.Memory, idle)
		load, err := h.idleLoad(ctx, t, res)
		if err != nil {
			return nil, err
		}
		res.IdleLoad = append(res.IdleLoad, load)
		if err := h.restart(ctx, t); err != nil {
			return nil, err
		}
		up, err := h.connMemory(ctx, t, HoldUpgrade, res)
		if err != nil {
			return nil, err
		}
		res.Memory = append(res.Memory, up)
	}
	return res, nil
}

// connMemory measures what holding HeldConns connections of kind costs t.
func (h *harness) connMemory(ctx context.Context, t *target, kind string, res *ConnResults) (ConnMemory, error) {
	m := ConnMemory{TargetInfo: t.TargetInfo, Kind: kind}
	rss := func() (int64, error) {
		u, err := GroupUsage(t.pids())
		return u.RSS, err
	}
	var err error
	if m.RSSBefore, _, err = SettleRSS(ctx, rss, settleEvery, settleBound); err != nil {
		return m, err
	}
	if m.FDsBefore, err = GroupFDs(t.pids()); err != nil {
		return m, err
	}
	backend := []int{h.backend[0].PID()}
	if m.BackendFDsBefore, err = GroupFDs(backend); err != nil {
		return m, err
	}
	if t.admin != "" {
		m.RuntimeBefore = h.goRuntime(t, res)
	}
	hp, opened, err := h.startHolder(ctx, t, kind)
	if err != nil {
		return m, err
	}
	m.Opened = opened
	m.RSSAfter, m.Settled, err = SettleRSS(ctx, rss, settleEvery, settleBound)
	if err == nil {
		m.FDsAfter, err = GroupFDs(t.pids())
	}
	if err == nil {
		m.BackendFDsAfter, err = GroupFDs(backend)
	}
	if err == nil && t.admin != "" {
		m.RuntimeAfter = h.goRuntime(t, res)
	}
	closed, serr := h.stopHolder(hp)
	m.Closed = closed
	if err = errors.Join(err, serr); err != nil {
		return m, err
	}
	h.released(ctx, t, m.FDsBefore, m.BackendFDsBefore, res)
	fmt.Fprintf(h.o.Progress, "    %-22s %-7s held %d/%d (%d still at the close)  RSS %s → %s MiB  %s per connection  fds %d → %d\n",
		t.Label, kind, opened.Established, opened.Wanted, closed.Alive, mib(float64(m.RSSBefore)), mib(float64(m.RSSAfter)),
		kib(m.PerConn()), m.FDsBefore, m.FDsAfter)
	return m, nil
}

// idleLoad runs the steady load alone, twice beside HeldConns idle
// connections, then alone again (ABBA: a drift of the machine over the
// four runs weighs on both sides alike).
func (h *harness) idleLoad(ctx context.Context, t *target, res *ConnResults) (IdleLoad, error) {
	l := IdleLoad{TargetInfo: t.TargetInfo}
	fds, err := GroupFDs(t.pids())
	if err != nil {
		return l, err
	}
	run := func(into *[]Sample) error {
		s, err := h.measure(ctx, t, BodySmall, h.o.Conns, h.o.Duration, 0)
		*into = append(*into, s)
		return err
	}
	if err := run(&l.Alone); err != nil {
		return l, err
	}
	hp, opened, err := h.startHolder(ctx, t, HoldIdle)
	if err != nil {
		return l, err
	}
	l.Opened = opened
	err = run(&l.WithIdle)
	if err == nil {
		err = run(&l.WithIdle)
	}
	closed, serr := h.stopHolder(hp)
	l.Closed = closed
	if err = errors.Join(err, serr); err != nil {
		return l, err
	}
	h.released(ctx, t, fds, -1, res)
	if err := run(&l.Alone); err != nil {
		return l, err
	}
	alone, with := MergeRuns(l.Alone), MergeRuns(l.WithIdle)
	fmt.Fprintf(h.o.Progress, "    %-22s wrk -c%d alone %8.0f req/s p99 %6.2fms cpu %5.1f µs/req; beside %d idle %8.0f req/s p99 %6.2fms cpu %5.1f µs/req\n",
		t.Label, h.o.Conns, alone.Wrk.RPS(), float64(alone.Wrk.P99)/1e6, alone.CPUPerReq(), opened.Established,
		with.Wrk.RPS(), float64(with.Wrk.P99)/1e6, with.CPUPerReq())
	return l, nil
}

// goRuntime reads zkgate's runtime accounting; a failure becomes a note.
func (h *harness) goRuntime(t *target, res *ConnResults) *GoRuntime {
	g, err := ReadGoRuntime(t.admin + "/metrics")
	if err != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("%s: Go runtime figures unavailable (%v).", t.Label, err))
		return nil
	}
	return &g
}

// holdPath is the request target a holder of kind uses through t.
func holdPath(t *target, kind string) string {
	if kind == HoldUpgrade {
		return t.prefix + "/ws"
	}
	return t.prefix + "/"
}

// startHolder starts "zkbench hold" against t and returns once it reports
// every connection tried. A holder that failed some is not an error: the
// tables count what was held.
func (h *harness) startHolder(ctx context.Context, t *target, kind string) (*Proc, HoldReport, error) {
	u, err := url.Parse(t.url)
	if err != nil {
		return nil, HoldReport{}, fmt.Errorf("benchkit: %s: %w", t.Name, err)
	}
	h.holders++
	log := filepath.Join(h.run, fmt.Sprintf("hold-%d-%s-%s.log", h.holders, t.Name, kind))
	// Held connections must outlive a wrk run beside them and stay below
	// every proxy's idle timeout (nginx's 60s proxy_read_timeout first).
	maxHold := h.o.Duration + 45*time.Second
	p, err := h.procs.Start(ProcSpec{
		Name: "hold-" + t.Name,
		Argv: []string{h.o.Self, "hold", "--addr", u.Host, "--path", holdPath(t, kind), "--kind", kind,
			"--conns", strconv.Itoa(h.o.HeldConns), "--max-hold", maxHold.String()},
		Log: log,
	})
	if err != nil {
		return nil, HoldReport{}, err
	}
	var opened HoldReport
	err = WaitFor(ctx, 90*time.Second, fmt.Sprintf("%d %s connections to %s (%s)", h.o.HeldConns, kind, t.Label, log), func() (bool, error) {
		reps, err := holderReports(log)
		if err != nil {
			return false, err
		}
		if r, ok := reps["established"]; ok {
			opened = r
			return true, nil
		}
		return false, p.Err()
	})
	if err != nil {
		_ = h.procs.Stop(p, 10*time.Second)
		return nil, opened, err
	}
	return p, opened, nil
}

// stopHolder stops a holder (SIGTERM: it closes its connections) and
// returns its closing report.
func (h *harness) stopHolder(p *Proc) (HoldReport, error) {
	if err := h.procs.Stop(p, 15*time.Second); err != nil {
		return HoldReport{}, err
	}
	reps, err := holderReports(p.LogPath)
	if err != nil {
		return HoldReport{}, err
	}
	r, ok := reps["closed"]
	if !ok {
		return HoldReport{}, fmt.Errorf("benchkit: %s ended without its closing report; see %s", p.Name, p.LogPath)
	}
	return r, nil
}

func holderReports(log string) (map[string]HoldReport, error) {
	b, err := os.ReadFile(log)
	if err != nil {
		return nil, fmt.Errorf("benchkit: holder: %w", err)
	}
	return ParseHoldReports(string(b))
}

// released waits (bounded) until t, and the backend unless backendFDs is
// negative, are back to about their descriptors before the holder came,
// so that the next step starts clean; a target that keeps them is noted.
func (h *harness) released(ctx context.Context, t *target, fds, backendFDs int, res *ConnResults) {
	slack := h.o.Conns + 16 // wrk's upstream connections may stay pooled
	var now, backendNow int
	err := WaitFor(ctx, 20*time.Second, t.Label+" to close the held connections", func() (bool, error) {
		var err error
		if now, err = GroupFDs(t.pids()); err != nil {
			return false, err
		}
		if backendFDs >= 0 {
			if backendNow, err = GroupFDs([]int{h.backend[0].PID()}); err != nil {
				return false, err
			}
		}
		return now <= fds+slack && (backendFDs < 0 || backendNow <= backendFDs+slack), nil
	})
	if err != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("%s kept %d descriptors (%d before the holder; backend %d, %d before) 20s after the holder closed its connections.",
			t.Label, now, fds, backendNow, backendFDs))
	}
}

// restart stops t's processes and starts them again on the same ports,
// for a measurement from a fresh process.
func (h *harness) restart(ctx context.Context, t *target) error {
	if err := h.procs.Stop(t.proc, 10*time.Second); err != nil {
		return err
	}
	u, err := url.Parse(t.url)
	if err != nil {
		return fmt.Errorf("benchkit: %s: %w", t.Name, err)
	}
	port, _ := strconv.Atoi(u.Port())
	if err := WaitFor(ctx, 10*time.Second, fmt.Sprintf("port %d to be free after stopping %s", port, t.Label),
		func() (bool, error) { return PortFree(port), nil }); err != nil {
		return err
	}
	t.pids = nil
	if err := h.launch(ctx, t); err != nil {
		return err
	}
	return h.ready(ctx, t)
}

package benchkit

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"time"
)

// beginRun starts one measured run of t: it checks that t still runs,
// empties its access log, and samples its processes' CPU time; the
// function it returns gives the CPU time they used since.
func beginRun(t *target) (cpuSince func() (time.Duration, error), err error) {
	if err := t.proc.Err(); err != nil {
		return nil, err
	}
	if t.accessLog != "" {
		if err := os.Truncate(t.accessLog, 0); err != nil {
			return nil, fmt.Errorf("benchkit: truncate %s: %w", t.accessLog, err)
		}
	}
	pids := t.pids()
	before, err := GroupUsage(pids)
	if err != nil {
		return nil, fmt.Errorf("benchkit: %s: %w", t.Name, err)
	}
	return func() (time.Duration, error) {
		after, err := GroupUsage(pids)
		if err != nil {
			return 0, fmt.Errorf("benchkit: %s after the run: %w (%v)", t.Name, err, t.proc.Err())
		}
		return after.CPU - before.CPU, nil
	}, nil
}

// startSection starts the targets of a section measured beside direct,
// the reference: each of infos the run names (Options.Only), made with
// prefix and started by start, which sets its process, URL and what else
// it needs. It returns direct and the started targets, and stop, which
// stops them (not direct) and must be called even after an error: a
// target that started but failed to come up is among them. A target whose
// start set no pids counts its main process.
func (h *harness) startSection(direct *target, infos []TargetInfo, prefix string, start func(t *target) error) (targets []*target, stop func(), err error) {
	if direct.pids == nil {
		direct.pids = onePID(direct.proc)
	}
	targets = []*target{direct}
	stop = func() {
		for _, t := range targets[1:] {
			_ = h.procs.Stop(t.proc, 10*time.Second)
		}
	}
	for _, info := range infos {
		if !h.named(info.Name) {
			continue
		}
		t := &target{TargetInfo: info, prefix: prefix}
		err := start(t)
		if t.proc == nil {
			if err == nil {
				err = fmt.Errorf("benchkit: %s: started no process", info.Name)
			}
			return targets, stop, err
		}
		targets = append(targets, t)
		if err != nil {
			return targets, stop, err
		}
		if t.pids == nil {
			t.pids = onePID(t.proc)
		}
	}
	return targets, stop, nil
}

// onePID is a target's pids when its process alone counts.
func onePID(p *Proc) func() []int {
	pid := p.PID()
	return func() []int { return []int{pid} }
}

// rounds describes how a section measures its targets: the measurements
// of each, one run of one, and the progress line of a run.
type rounds[S any] struct {
	// warmup and announce are said before the warm-up and before the
	// rounds.
	warmup, announce string
	measures         func(t *target) []string
	once             func(ctx context.Context, t *target, m string, d time.Duration, round int) (S, error)
	progress         func(round int, t *target, m string, s S)
}

// measureRounds runs the warm-up (each target's every measurement for
// Options.Warmup), then Options.Rounds rounds; each round visits every
// target (starting one further each round) and runs each of its
// measurements (starting one further each round) for Options.Duration.
func measureRounds[S any](ctx context.Context, h *harness, targets []*target, r rounds[S]) ([]S, error) {
	o := h.o
	if o.Warmup > 0 {
		h.say("%s", r.warmup)
		for _, t := range targets {
			for _, m := range r.measures(t) {
				if _, err := r.once(ctx, t, m, o.Warmup, 0); err != nil {
					return nil, err
				}
			}
		}
	}
	h.say("%s", r.announce)
	var samples []S
	for round := range o.Rounds {
		for i := range targets {
			t := targets[(i+round)%len(targets)]
			ms := r.measures(t)
			for j := range ms {
				m := ms[(j+round)%len(ms)]
				s, err := r.once(ctx, t, m, o.Duration, round)
				if err != nil {
					return nil, err
				}
				samples = append(samples, s)
				r.progress(round, t, m, s)
			}
		}
	}
	return samples, nil
}

// writeSamplesCSV writes samples to path as CSV: the header line, then a
// line per sample; what names them in an error.
func writeSamplesCSV[S any](path, what, header string, samples []S, line func(S) string) error {
	var b strings.Builder
	b.WriteString(header + "\n")
	for _, s := range samples {
		b.WriteString(line(s) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("benchkit: write %s samples: %w", what, err)
	}
	return nil
}

// targetInfos lists what the report says of each target, in order.
func targetInfos(targets []*target) []TargetInfo {
	var infos []TargetInfo
	for _, t := range targets {
		infos = append(infos, t.TargetInfo)
	}
	return infos
}

// roundSample is what summarizing reads of one sample of a section measured
// in rounds (GzipSample, TLSSample): which target, measurement and round
// it is, its rate, CPU µs per request, wrk's latencies and its errors.
type roundSample interface {
	runKey() runKey
	rate() float64
	CPUPerReq() float64
	latencies() (p50, p99 time.Duration)
	errorCount() int64
}

// runKey names one run: a target's measurement in a round.
type runKey struct {
	target, measure string
	round           int
}

// runSummary summarizes one target's samples of one measurement: the
// median rate over rounds and its extremes; the medians over rounds of the
// rate divided by the reference's of the same round, and of the rate and
// CPU per request divided by the compared target's of the same round and
// measurement (NaN where there is none); the median CPU µs per request
// (NaN where no run answered), of wrk's latencies, and the errors summed.
type runSummary struct {
	rounds                     int
	rate, rateMin, rateMax     float64
	vsDirect, vsNginx, cpuVsNx float64
	cpuPerReq                  float64
	p50, p99                   time.Duration
	errors                     int64
}

// roundRuns indexes a section's samples by run.
type roundRuns[S roundSample] struct {
	samples []S
	byKey   map[runKey]S
}

func indexRuns[S roundSample](samples []S) roundRuns[S] {
	x := roundRuns[S]{samples: samples, byKey: make(map[runKey]S)}
	for _, s := range samples {
		x.byKey[s.runKey()] = s
	}
	return x
}

// summarize summarizes target's samples of measure, compared round by
// round with reference's samples of refMeasure (for vsDirect) and with
// nginx's of measure (for vsNginx and cpuVsNx; neither reference nor nginx
// is compared with nginx). ok is false without a sample.
func (x roundRuns[S]) summarize(target, measure, reference, refMeasure, nginx string) (sum runSummary, ok bool) {
	sum = runSummary{vsDirect: math.NaN(), vsNginx: math.NaN(), cpuVsNx: math.NaN(), cpuPerReq: math.NaN()}
	var rates, cpu, vsDirect, vsNginx, cpuVs, p50, p99 []float64
	for _, s := range x.samples {
		k := s.runKey()
		if k.target != target || k.measure != measure {
			continue
		}
		sum.errors += s.errorCount()
		rates = append(rates, s.rate())
		if c := s.CPUPerReq(); !math.IsNaN(c) {
			cpu = append(cpu, c)
		}
		l50, l99 := s.latencies()
		p50, p99 = append(p50, float64(l50)), append(p99, float64(l99))
		if d, ok := x.byKey[runKey{reference, refMeasure, k.round}]; ok && target != reference && d.rate() > 0 {
			vsDirect = append(vsDirect, s.rate()/d.rate())
		}
		if n, ok := x.byKey[runKey{nginx, measure, k.round}]; ok && target != nginx && target != reference {
			if n.rate() > 0 {
				vsNginx = append(vsNginx, s.rate()/n.rate())
			}
			if nc := n.CPUPerReq(); nc > 0 && !math.IsNaN(s.CPUPerReq()) {
				cpuVs = append(cpuVs, s.CPUPerReq()/nc)
			}
		}
	}
	if len(rates) == 0 {
		return sum, false
	}
	sum.rounds = len(rates)
	sum.rate = Median(rates)
	sum.rateMin, sum.rateMax = MinMax(rates)
	for _, m := range []struct {
		xs  []float64
		dst *float64
	}{{cpu, &sum.cpuPerReq}, {vsDirect, &sum.vsDirect}, {vsNginx, &sum.vsNginx}, {cpuVs, &sum.cpuVsNx}} {
		if len(m.xs) > 0 {
			*m.dst = Median(m.xs)
		}
	}
	sum.p50, sum.p99 = time.Duration(Median(p50)), time.Duration(Median(p99))
	return sum, true
}

// measuredRow is a report row of a section measured in rounds (GzipRow,
// TLSRow): its target and measurement.
type measuredRow interface {
	rowKey() (target, measure string)
}

// findRow returns the row of target's measure.
func findRow[R measuredRow](rows []R, target, measure string) (R, bool) {
	for _, r := range rows {
		if t, m := r.rowKey(); t == target && m == measure {
			return r, true
		}
	}
	var zero R
	return zero, false
}

// rateCell formats a rate for a table comparing targets: grouped digits,
// then unit when not empty, then the ratio to direct when known; "–"
// without a row.
func rateCell(ok bool, rate float64, unit string, vsDirect float64) string {
	if !ok {
		return "–"
	}
	s := groupDigits(rate)
	if unit != "" {
		s += " " + unit
	}
	if !math.IsNaN(vsDirect) {
		s += fmt.Sprintf(" (%.2f× direct)", vsDirect)
	}
	return s
}

// sectionHeading writes the heading of a section of results.md measured
// when BENCH_TARGETS names one of its targets (what names them), and
// when it was not measured, says so; it reports whether it was.
func sectionHeading(b *strings.Builder, title string, measured bool, what string) bool {
	b.WriteString("## " + title + "\n\n")
	if !measured {
		b.WriteString("Skipped in this run (BENCH_TARGETS named no " + what + " target).\n\n")
	}
	return measured
}

// coresBusy formats the cores a target kept busy, CPU µs per request ×
// requests per second, with two decimals; "–" when the CPU per request is
// NaN.
func coresBusy(cpuPerReq, rate float64) string {
	if math.IsNaN(cpuPerReq) {
		return "–"
	}
	return fmt.Sprintf("%.2f", cpuPerReq*rate/1e6)
}

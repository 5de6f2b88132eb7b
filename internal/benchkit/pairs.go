package benchkit

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// A Pairing is zkgate and another proxy measured back to back: the rounds
// visit a dozen targets between zkgate's run and nginx's, and the host's
// speed drifts by more than the difference in between, so the same-round
// figures cannot settle which of two close proxies keeps more of the
// machine's throughput, or costs less CPU per request. Runs one right
// after the other, their order alternating, can.
type Pairing struct {
	Zkgate, Other string
	// What says what the two have in common.
	What string
	// CPU compares CPU per request (zkgate's ÷ the other's, goal ≤
	// PairsGoal) rather than throughput (goal ≥ PairsGoal).
	CPU bool
}

// Pairings are the back-to-back comparisons of issue 18's goals, like for
// like (zkgate logging each request against nginx logging each request,
// zkgate without its log against nginx and HAProxy without theirs): on
// both cores, zkgate's throughput at least nginx's with 2 workers and
// HAProxy's with 2 threads; against one nginx worker, zkgate's CPU per
// request at most nginx's.
var Pairings = []Pairing{
	{Zkgate: "zkgate", Other: Nginx2LogTarget, What: "both with an access log"},
	{Zkgate: "zkgate-nolog", Other: "nginx-2", What: "neither logging"},
	{Zkgate: "zkgate-nolog", Other: "haproxy-2", What: "neither logging"},
	{Zkgate: "zkgate", Other: NginxLogTarget, What: "both with an access log", CPU: true},
	{Zkgate: "zkgate-nolog", Other: "nginx", What: "neither logging", CPU: true},
}

// PairsGoal is the bound on zkgate's figure divided by the other's: at
// least this for throughput, at most this for CPU per request.
const PairsGoal = 1.0

// PairSample is one pair of runs of a Pairing.
type PairSample struct {
	Pairing
	Body            string // BodySmall or BodyLarge
	Pair            int    // from 0; even pairs ran zkgate first
	ZkRun, OtherRun Sample
}

// Valid reports whether both runs served requests without an error (a run
// with errors, which wrk counts as requests when they are quick 502s, or
// without a request says nothing about throughput) and, for a CPU
// Pairing, both read some CPU time (a zero would pass for zkgate's win).
func (p PairSample) Valid() bool {
	for _, r := range []Sample{p.ZkRun, p.OtherRun} {
		if r.Wrk.Requests <= 0 || r.Wrk.RPS() <= 0 || r.Wrk.Errors() > 0 {
			return false
		}
		if p.CPU && r.CPUPerReq() <= 0 {
			return false
		}
	}
	return true
}

// Ratio is zkgate's rate divided by the other's, or for a CPU Pairing
// its CPU per request divided by the other's; 0 unless the pair is Valid.
func (p PairSample) Ratio() float64 {
	if !p.Valid() {
		return 0
	}
	if p.CPU {
		return p.ZkRun.CPUPerReq() / p.OtherRun.CPUPerReq()
	}
	return p.ZkRun.Wrk.RPS() / p.OtherRun.Wrk.RPS()
}

// better reports whether ratio r favours zkgate.
func (p Pairing) better(r float64) bool {
	if p.CPU {
		return r < 1
	}
	return r > 1
}

// met reports whether a median ratio meets PairsGoal.
func (p Pairing) met(median float64) bool {
	if p.CPU {
		return median <= PairsGoal
	}
	return median >= PairsGoal
}

// PairSummary sums up the pairs of one Pairing and body. Only valid
// pairs count towards the ratios and CPU medians.
type PairSummary struct {
	Pairing
	Body               string
	OtherLabel         string
	Pairs              int     // valid pairs
	Invalid            int     // pairs left out: a run with errors, without a request or (CPU) without CPU time
	Median, Min, Max   float64 // of the valid pairs' ratios
	Ahead              int     // valid pairs in which zkgate served more (for CPU: used less)
	ZkCPU, OtherCPU    float64 // median CPU µs per request over the valid pairs
	ZkErrors, OtherErr int64   // over every pair
}

// measurePairs runs o.Pairs pairs of each Pairing whose two targets run,
// with each body: at the main concurrency for o.Duration each, zkgate
// first in even pairs, the other first in odd ones.
func (h *harness) measurePairs(ctx context.Context, targets []*target) ([]PairSample, error) {
	o := h.o
	if o.Pairs <= 0 {
		return nil, nil
	}
	byName := map[string]*target{}
	for _, t := range targets {
		byName[t.Name] = t
	}
	var ps []Pairing
	for _, p := range Pairings {
		if byName[p.Zkgate] != nil && byName[p.Other] != nil {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return nil, nil
	}
	bodies := []string{BodySmall, BodyLarge}
	h.say("back to back: %d pairs of %d comparisons × %d bodies × 2 × wrk -c%d -d%v, alternating which runs first: about %v",
		o.Pairs, len(ps), len(bodies), o.Conns, o.Duration, o.Duration.Truncate(time.Second)*time.Duration(2*o.Pairs*len(ps)*len(bodies)))
	var out []PairSample
	for i := range o.Pairs {
		for _, body := range bodies {
			for _, p := range ps {
				order := []*target{byName[p.Zkgate], byName[p.Other]}
				if otherFirst(i) {
					order[0], order[1] = order[1], order[0]
				}
				s := PairSample{Pairing: p, Body: body, Pair: i}
				for _, t := range order {
					sm, err := h.measure(ctx, t, body, o.Conns, o.Duration, i)
					if err != nil {
						return nil, err
					}
					if t.Name == p.Zkgate {
						s.ZkRun = sm
					} else {
						s.OtherRun = sm
					}
				}
				out = append(out, s)
				what := "rate"
				if p.CPU {
					what = "CPU"
				}
				fmt.Fprintf(o.Progress, "    pair %d/%d  %-5s %-14s %8.0f req/s %5.1f µs/req  %-14s %8.0f req/s %5.1f µs/req  %s ratio %.3f\n",
					i+1, o.Pairs, body, p.Zkgate, s.ZkRun.Wrk.RPS(), s.ZkRun.CPUPerReq(), p.Other, s.OtherRun.Wrk.RPS(), s.OtherRun.CPUPerReq(), what, s.Ratio())
			}
		}
	}
	return out, nil
}

// SummarizePairs sums up samples per body (small first) and Pairing, in
// Pairings' order; infos label the targets.
func SummarizePairs(samples []PairSample, infos []TargetInfo) []PairSummary {
	labels := map[string]string{}
	for _, t := range infos {
		labels[t.Name] = t.Label
	}
	var out []PairSummary
	for _, body := range []string{BodySmall, BodyLarge} {
		out = append(out, summarizePairs(samples, body, labels)...)
	}
	return out
}

// summarizePairs is SummarizePairs for one body.
func summarizePairs(samples []PairSample, body string, labels map[string]string) []PairSummary {
	var out []PairSummary
	for _, p := range Pairings {
		var ratios, zc, oc []float64
		sum := PairSummary{Pairing: p, Body: body, OtherLabel: labels[p.Other]}
		for _, s := range samples {
			if s.Pairing != p || s.Body != body {
				continue
			}
			sum.ZkErrors += s.ZkRun.Wrk.Errors()
			sum.OtherErr += s.OtherRun.Wrk.Errors()
			if !s.Valid() {
				sum.Invalid++
				continue
			}
			r := s.Ratio()
			ratios = append(ratios, r)
			if p.better(r) {
				sum.Ahead++
			}
			zc = append(zc, s.ZkRun.CPUPerReq())
			oc = append(oc, s.OtherRun.CPUPerReq())
		}
		if len(ratios) == 0 && sum.Invalid == 0 {
			continue
		}
		sum.Pairs = len(ratios)
		if len(ratios) > 0 {
			sum.Median = Median(ratios)
			sum.Min, sum.Max = MinMax(ratios)
			sum.ZkCPU, sum.OtherCPU = Median(zc), Median(oc)
		}
		if sum.OtherLabel == "" {
			sum.OtherLabel = p.Other
		}
		out = append(out, sum)
	}
	return out
}

// PairsLine renders the throughput summaries of body as the line under
// the both-cores table of that body; "" without one.
func PairsLine(sums []PairSummary, conns int, body string) string {
	parts := pairParts(sums, body, false)
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("Rate ÷ nginx and HAProxy on both cores, back to back (pairs of `wrk -t1 -c%d` runs one right after the other, alternating which runs first, %s; median ratio, goal ≥ %.1f×): %s",
		conns, BodyTitle(body), PairsGoal, strings.Join(parts, "; "))
}

// CPUPairsLine renders the CPU summaries of body as the line under the
// table of that body, beside NginxCPULine; "" without one.
func CPUPairsLine(sums []PairSummary, conns int, body string) string {
	parts := pairParts(sums, body, true)
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("CPU ÷ nginx, 1 worker, back to back (pairs of `wrk -t1 -c%d` runs one right after the other, alternating which runs first; median ratio of CPU µs/req, goal ≤ %.1f×): %s",
		conns, PairsGoal, strings.Join(parts, "; "))
}

// pairParts renders each summary of body whose Pairing compares CPU (cpu)
// or throughput.
func pairParts(sums []PairSummary, body string, cpu bool) []string {
	var parts []string
	for _, s := range sums {
		if s.Body != body || s.CPU != cpu {
			continue
		}
		if s.Pairs == 0 {
			parts = append(parts, fmt.Sprintf("%s ÷ %s, %s: no valid pair (%d with errors, without a request or CPU time; errors %d / %d; suspect)",
				s.Zkgate, s.OtherLabel, s.What, s.Invalid, s.ZkErrors, s.OtherErr))
			continue
		}
		verdict := "met"
		if !s.met(s.Median) {
			verdict = "missed"
		}
		left := ""
		if s.Invalid > 0 {
			left = fmt.Sprintf("; %d more left out, with errors, without a request or CPU time (errors %d / %d)", s.Invalid, s.ZkErrors, s.OtherErr)
		}
		ahead := "zkgate ahead"
		if cpu {
			ahead = "zkgate cheaper"
		}
		parts = append(parts, fmt.Sprintf("%s ÷ %s, %s: **%.2f×** (%.2f–%.2f, %s in %d of %d; CPU %.1f / %.1f µs/req%s; %s)",
			s.Zkgate, s.OtherLabel, s.What, s.Median, s.Min, s.Max, ahead, s.Ahead, s.Pairs, s.ZkCPU, s.OtherCPU, left, verdict))
	}
	return parts
}

// otherFirst reports whether pair (from 0) runs the other target first:
// the odd ones do.
func otherFirst(pair int) bool { return pair%2 == 1 }

// pairLine is one run of a pair, for pairs.csv.
type pairLine struct {
	PairSample
	first string // the target that ran first in the pair
	run   Sample
}

// writePairSamples writes the pairs' runs in the order they ran, one
// line per run: the pair (from 1), the body, the comparison (zkgate's
// target and the other's), which of the two ran first, then the run's
// figures.
func writePairSamples(path string, samples []PairSample) error {
	runs := make([]pairLine, 0, 2*len(samples))
	for _, s := range samples {
		if otherFirst(s.Pair) {
			runs = append(runs, pairLine{s, s.Other, s.OtherRun}, pairLine{s, s.Other, s.ZkRun})
		} else {
			runs = append(runs, pairLine{s, s.Zkgate, s.ZkRun}, pairLine{s, s.Zkgate, s.OtherRun})
		}
	}
	return writeSamplesCSV(path, "pair", "pair,body,comparison,first,target,requests,seconds,rps,p50_us,p99_us,errors,cpu_us", runs,
		func(p pairLine) string {
			r := p.run
			return fmt.Sprintf("%d,%s,%s vs %s,%s,%s,%d,%.3f,%.1f,%d,%d,%d,%d", p.Pair+1, p.Body, p.Zkgate, p.Other, p.first, r.Target,
				r.Wrk.Requests, r.Wrk.Duration.Seconds(), r.Wrk.RPS(), r.Wrk.P50.Microseconds(), r.Wrk.P99.Microseconds(),
				r.Wrk.Errors(), r.CPU.Microseconds())
		})
}

package benchkit

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// A Pairing is zkgate and a proxy allowed both cores, measured back to
// back: the rounds visit a dozen targets between zkgate's run and nginx's,
// and the host's speed drifts by more than the difference in between, so
// the same-round ratios to direct of the both-cores table cannot settle
// which of two close proxies keeps more of the machine's throughput. Runs
// one right after the other, their order alternating, can.
type Pairing struct {
	Zkgate, Other string
	// What says what the two have in common.
	What string
}

// Pairings are the back-to-back comparisons of the both-cores goal (issue
// 18: zkgate's throughput at least nginx's with 2 workers and HAProxy's
// with 2 threads), like for like: zkgate logging each request against
// nginx logging each request, zkgate without its log against nginx and
// HAProxy without theirs.
var Pairings = []Pairing{
	{Zkgate: "zkgate", Other: Nginx2LogTarget, What: "both with an access log"},
	{Zkgate: "zkgate-nolog", Other: "nginx-2", What: "neither logging"},
	{Zkgate: "zkgate-nolog", Other: "haproxy-2", What: "neither logging"},
}

// PairsGoal is the bound on zkgate's rate divided by the other's.
const PairsGoal = 1.0

// PairSample is one pair of runs of a Pairing.
type PairSample struct {
	Pairing
	Pair            int // from 0; even pairs ran zkgate first
	ZkRun, OtherRun Sample
}

// Ratio is zkgate's rate divided by the other's; 0 when the other served
// nothing.
func (p PairSample) Ratio() float64 {
	if o := p.OtherRun.Wrk.RPS(); o > 0 {
		return p.ZkRun.Wrk.RPS() / o
	}
	return 0
}

// PairSummary sums up the pairs of one Pairing.
type PairSummary struct {
	Pairing
	OtherLabel         string
	Pairs              int
	Median, Min, Max   float64 // of the pairs' ratios
	Ahead              int     // pairs in which zkgate served more
	ZkCPU, OtherCPU    float64 // median CPU µs per request
	ZkErrors, OtherErr int64
}

// measurePairs runs o.Pairs pairs of each Pairing whose two targets run:
// the small body at the main concurrency for o.Duration each, zkgate
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
	h.say("back to back: %d pairs of %d comparisons × 2 × wrk -c%d -d%v, alternating which runs first: about %v",
		o.Pairs, len(ps), o.Conns, o.Duration, o.Duration.Truncate(time.Second)*time.Duration(2*o.Pairs*len(ps)))
	var out []PairSample
	for i := range o.Pairs {
		for _, p := range ps {
			order := []*target{byName[p.Zkgate], byName[p.Other]}
			if i%2 == 1 {
				order[0], order[1] = order[1], order[0]
			}
			s := PairSample{Pairing: p, Pair: i}
			for _, t := range order {
				sm, err := h.measure(ctx, t, BodySmall, o.Conns, o.Duration, i)
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
			fmt.Fprintf(o.Progress, "    pair %d/%d  %-14s %8.0f req/s %5.1f µs/req  %-14s %8.0f req/s %5.1f µs/req  ratio %.3f\n",
				i+1, o.Pairs, p.Zkgate, s.ZkRun.Wrk.RPS(), s.ZkRun.CPUPerReq(), p.Other, s.OtherRun.Wrk.RPS(), s.OtherRun.CPUPerReq(), s.Ratio())
		}
	}
	return out, nil
}

// SummarizePairs sums up samples per Pairing, in Pairings' order; infos
// label the targets.
func SummarizePairs(samples []PairSample, infos []TargetInfo) []PairSummary {
	labels := map[string]string{}
	for _, t := range infos {
		labels[t.Name] = t.Label
	}
	var out []PairSummary
	for _, p := range Pairings {
		var ratios, zc, oc []float64
		sum := PairSummary{Pairing: p, OtherLabel: labels[p.Other]}
		for _, s := range samples {
			if s.Pairing != p {
				continue
			}
			r := s.Ratio()
			ratios = append(ratios, r)
			if r > 1 {
				sum.Ahead++
			}
			zc = append(zc, s.ZkRun.CPUPerReq())
			oc = append(oc, s.OtherRun.CPUPerReq())
			sum.ZkErrors += s.ZkRun.Wrk.Errors()
			sum.OtherErr += s.OtherRun.Wrk.Errors()
		}
		if len(ratios) == 0 {
			continue
		}
		sum.Pairs = len(ratios)
		sum.Median = Median(ratios)
		sum.Min, sum.Max = MinMax(ratios)
		sum.ZkCPU, sum.OtherCPU = Median(zc), Median(oc)
		if sum.OtherLabel == "" {
			sum.OtherLabel = p.Other
		}
		out = append(out, sum)
	}
	return out
}

// PairsLine renders the summaries as the line under the both-cores
// table; "" without one.
func PairsLine(sums []PairSummary, conns int) string {
	if len(sums) == 0 {
		return ""
	}
	parts := make([]string, 0, len(sums))
	for _, s := range sums {
		verdict := "met"
		if s.Median < PairsGoal {
			verdict = "missed"
		}
		errs := ""
		if s.ZkErrors+s.OtherErr > 0 {
			errs = fmt.Sprintf("; errors %d / %d", s.ZkErrors, s.OtherErr)
		}
		parts = append(parts, fmt.Sprintf("%s ÷ %s, %s: **%.2f×** (%.2f–%.2f, zkgate ahead in %d of %d; CPU %.1f / %.1f µs/req%s; %s)",
			s.Zkgate, s.OtherLabel, s.What, s.Median, s.Min, s.Max, s.Ahead, s.Pairs, s.ZkCPU, s.OtherCPU, errs, verdict))
	}
	return fmt.Sprintf("Rate ÷ nginx and HAProxy on both cores, back to back (pairs of `wrk -t1 -c%d` runs one right after the other, alternating which runs first, 13-byte body; median ratio, goal ≥ %.1f×): %s",
		conns, PairsGoal, strings.Join(parts, "; "))
}

// writePairSamples writes the pairs' runs as samples.csv does, the pair
// number in the round column.
func writePairSamples(path string, samples []PairSample) error {
	flat := make([]Sample, 0, 2*len(samples))
	for _, s := range samples {
		flat = append(flat, s.ZkRun, s.OtherRun)
	}
	return writeSamples(path, flat)
}

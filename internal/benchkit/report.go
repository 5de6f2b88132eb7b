package benchkit

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Body sizes a target is measured with.
const (
	BodySmall = "small" // SmallBody, 13 bytes
	BodyLarge = "16k"   // LargeSize bytes
)

// TargetInfo names a measured target in reports.
type TargetInfo struct {
	// Name is the short identifier ("nginx").
	Name string
	// Label is the report's description ("nginx, 1 worker").
	Label string
	// BothCores marks a target measured for the both-cores table only
	// (nginx with 2 workers, HAProxy with 2 threads): it is left out of
	// the main table and the chart, and has no run at concurrency 1.
	BothCores bool
}

// Sample is one wrk run against one target.
type Sample struct {
	Round  int
	Target string
	Body   string // BodySmall or BodyLarge
	Conns  int
	Wrk    WrkResult
	// CPU is the CPU time the target's processes used during the run.
	CPU time.Duration
	// RSS is their resident memory after the run, bytes.
	RSS int64
}

// CPUPerReq returns the CPU time per request of the run, microseconds; 0
// without a request.
func (s Sample) CPUPerReq() float64 {
	if s.Wrk.Requests <= 0 {
		return 0
	}
	return float64(s.CPU.Microseconds()) / float64(s.Wrk.Requests)
}

// Row summarizes one target's samples for one body size.
type Row struct {
	TargetInfo
	Body   string
	Rounds int // rounds with a sample at the main concurrency
	// RPS is the median requests per second at the main concurrency over
	// rounds; RPSMin and RPSMax the extremes.
	RPS, RPSMin, RPSMax float64
	// Ratio is the median over rounds of RPS divided by the reference
	// target's RPS in the same round; NaN for the reference itself or
	// without a reference sample.
	Ratio float64
	// P50 and P99 are the medians over rounds of the latency percentiles at
	// the main concurrency; P50One and P99One at concurrency 1.
	P50, P99, P50One, P99One time.Duration
	// CPUPerReq is the median over rounds of the target's CPU time per
	// request at the main concurrency, microseconds.
	CPUPerReq float64
	// RSS is the largest resident memory seen after a run, bytes.
	RSS int64
	// Errors totals wrk's errors (socket errors and non-2xx/3xx answers)
	// over every run of the row.
	Errors int64
}

// Summarize turns samples into one row per body size and target, bodies
// in order (BodySmall, BodyLarge), targets in the order given. conns is the
// main concurrency; samples at concurrency 1 give the *One latencies;
// reference names the target ratios are computed against.
func Summarize(samples []Sample, targets []TargetInfo, reference string, conns int) []Row {
	type key struct {
		target, body string
		round        int
	}
	main := make(map[key]Sample)
	for _, s := range samples {
		if s.Conns == conns {
			main[key{s.Target, s.Body, s.Round}] = s
		}
	}
	var rows []Row
	for _, body := range []string{BodySmall, BodyLarge} {
		for _, t := range targets {
			r := Row{TargetInfo: t, Body: body, Ratio: math.NaN()}
			var rps, ratios, cpu, p50, p99, p50One, p99One []float64
			for _, s := range samples {
				if s.Target != t.Name || s.Body != body {
					continue
				}
				r.Errors += s.Wrk.Errors()
				if s.Conns == 1 && conns != 1 {
					p50One = append(p50One, float64(s.Wrk.P50))
					p99One = append(p99One, float64(s.Wrk.P99))
					continue
				}
				if s.Conns != conns {
					continue
				}
				rps = append(rps, s.Wrk.RPS())
				p50 = append(p50, float64(s.Wrk.P50))
				p99 = append(p99, float64(s.Wrk.P99))
				if s.Wrk.Requests > 0 {
					cpu = append(cpu, float64(s.CPU.Microseconds())/float64(s.Wrk.Requests))
				}
				r.RSS = max(r.RSS, s.RSS)
				if t.Name != reference {
					if ref, ok := main[key{reference, body, s.Round}]; ok && ref.Wrk.RPS() > 0 {
						ratios = append(ratios, s.Wrk.RPS()/ref.Wrk.RPS())
					}
				}
			}
			if len(rps) == 0 {
				continue
			}
			r.Rounds = len(rps)
			r.RPS = Median(rps)
			r.RPSMin, r.RPSMax = MinMax(rps)
			if len(ratios) > 0 {
				r.Ratio = Median(ratios)
			}
			r.P50, r.P99 = time.Duration(Median(p50)), time.Duration(Median(p99))
			if len(p50One) > 0 {
				r.P50One, r.P99One = time.Duration(Median(p50One)), time.Duration(Median(p99One))
			}
			r.CPUPerReq = Median(cpu)
			rows = append(rows, r)
		}
	}
	return rows
}

// BodyTitle describes a body size for headings.
func BodyTitle(body string) string {
	switch body {
	case BodySmall:
		return fmt.Sprintf("%d-byte body", len(SmallBody))
	case BodyLarge:
		return fmt.Sprintf("%d KiB body", LargeSize>>10)
	}
	return body
}

// Table renders the rows of one body size as a Markdown table, leaving
// out the both-cores targets. conns is the main concurrency (column
// headings); reference names the ratio's denominator.
func Table(rows []Row, body string, conns int, reference string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| target | req/s median (min–max) | × %s (same round) | p50 / p99 at c=%d (ms) | p50 / p99 at c=1 (µs) | CPU µs/req | RSS MiB | errors |\n", reference, conns)
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		if r.Body != body || r.BothCores {
			continue
		}
		ratio := "1 (reference)"
		if r.Name != reference {
			ratio = "–"
			if !math.IsNaN(r.Ratio) {
				ratio = fmt.Sprintf("%.2f×", r.Ratio)
			}
		}
		lat1 := "–"
		if r.P50One > 0 || r.P99One > 0 {
			lat1 = fmt.Sprintf("%d / %d", r.P50One.Microseconds(), r.P99One.Microseconds())
		}
		fmt.Fprintf(&b, "| %s | %s (%s–%s) | %s | %s / %s | %s | %.1f | %.1f | %d |\n",
			r.Label, groupDigits(r.RPS), groupDigits(r.RPSMin), groupDigits(r.RPSMax), ratio,
			ms(r.P50), ms(r.P99), lat1, r.CPUPerReq, float64(r.RSS)/(1<<20), r.Errors)
	}
	if line := PoliciesCPULine(rows, body); line != "" {
		fmt.Fprintf(&b, "\n%s\n", line)
	}
	if line := NginxCPULine(rows, body); line != "" {
		fmt.Fprintf(&b, "\n%s\n", line)
	}
	return b.String()
}

// NginxGoal is issue 18's bound on zkgate's CPU per request divided by
// nginx's (one worker).
const NginxGoal = 1.0

// NginxCPULine returns, for one body size, zkgate's CPU per request
// divided by nginx's, like for like: the plain zkgate target (access log
// on) against NginxLogTarget, and zkgate-nolog against nginx without a
// log; "" unless a pair was measured.
func NginxCPULine(rows []Row, body string) string {
	cpu := map[string]float64{}
	for _, r := range rows {
		if r.Body == body && r.CPUPerReq > 0 {
			cpu[r.Name] = r.CPUPerReq
		}
	}
	var parts []string
	for _, p := range []struct{ zk, ng, what string }{
		{"zkgate", NginxLogTarget, "both with an access log"},
		{"zkgate-nolog", "nginx", "neither"},
	} {
		z, n := cpu[p.zk], cpu[p.ng]
		if z == 0 || n == 0 {
			continue
		}
		verdict := "met"
		if z/n > NginxGoal {
			verdict = "missed"
		}
		parts = append(parts, fmt.Sprintf("%s: %.1f / %.1f µs/req = **%.2f×** (%s)", p.what, z, n, z/n, verdict))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("CPU ÷ nginx, 1 worker (goal ≤ %.1f×), %s", NginxGoal, strings.Join(parts, "; "))
}

// PoliciesGoal is the bound on PoliciesTarget's CPU per request
// divided by PoliciesBase's.
const PoliciesGoal = 1.3

// PoliciesCPULine returns, for one body size, the line giving
// PoliciesTarget's CPU per request divided by PoliciesBase's (the same
// zkgate without policies, measured in the same rounds) against
// PoliciesGoal; "" unless both rows were measured.
func PoliciesCPULine(rows []Row, body string) string {
	var pol, base *Row
	for i := range rows {
		switch r := &rows[i]; {
		case r.Body != body:
		case r.Name == PoliciesTarget:
			pol = r
		case r.Name == PoliciesBase:
			base = r
		}
	}
	if pol == nil || base == nil || base.CPUPerReq <= 0 {
		return ""
	}
	ratio := pol.CPUPerReq / base.CPUPerReq
	verdict := "met"
	if ratio > PoliciesGoal {
		verdict = "missed"
	}
	return fmt.Sprintf("CPU ÷ plain zkgate, %s: %.1f / %.1f µs/req = **%.2f×** (goal ≤ %.1f×: %s)",
		pol.Label, pol.CPUPerReq, base.CPUPerReq, ratio, PoliciesGoal, verdict)
}

// BothCoresTable renders, for one body size, the rows named in names (in
// that order) as the both-cores table: throughput, its ratio to the
// reference of the same round, latency and CPU at the main concurrency,
// and the cores the target kept busy (CPU per request × requests per
// second).
func BothCoresTable(rows []Row, names []string, body string, conns int, reference string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| target | req/s median (min–max) | × %s (same round) | p50 / p99 at c=%d (ms) | CPU µs/req | cores busy | errors |\n", reference, conns)
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|\n")
	for _, name := range names {
		for _, r := range rows {
			if r.Body != body || r.Name != name {
				continue
			}
			ratio := "1 (reference)"
			if r.Name != reference {
				ratio = "–"
				if !math.IsNaN(r.Ratio) {
					ratio = fmt.Sprintf("%.2f×", r.Ratio)
				}
			}
			fmt.Fprintf(&b, "| %s | %s (%s–%s) | %s | %s / %s | %.1f | %.2f | %d |\n",
				r.Label, groupDigits(r.RPS), groupDigits(r.RPSMin), groupDigits(r.RPSMax), ratio,
				ms(r.P50), ms(r.P99), r.CPUPerReq, r.CPUPerReq*r.RPS/1e6, r.Errors)
		}
	}
	return b.String()
}

// ms formats d in milliseconds with two decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

// groupDigits formats x rounded to an integer with thin spaces between
// groups of three digits (12,345).
func groupDigits(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	s := fmt.Sprintf("%d", int64(math.Round(x)))
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

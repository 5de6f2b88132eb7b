package benchkit

import (
	"math"
	"strings"
	"testing"
	"time"
)

var testTargets = []TargetInfo{{Name: Reference, Label: "direct"}, {Name: "px", Label: "proxy X"}, {Name: "idle", Label: "never ran"}}

// run builds a sample of n requests over one second.
func run(round int, target, body string, conns int, n int64, cpu time.Duration, rss int64) Sample {
	return Sample{Round: round, Target: target, Body: body, Conns: conns, CPU: cpu, RSS: rss,
		Wrk: WrkResult{Requests: n, Duration: time.Second, P50: time.Duration(n) * time.Microsecond, P99: 2 * time.Duration(n) * time.Microsecond}}
}

func TestSummarizeRatiosWithinRounds(t *testing.T) {
	// The machine slows down each round; the proxy always does half of the
	// direct rate of its own round. The median of the per-round ratios is
	// exactly 0.5, while the ratio of the medians would not be.
	samples := []Sample{
		run(0, Reference, BodySmall, 64, 10000, time.Second, 100),
		run(0, "px", BodySmall, 64, 5000, 500*time.Millisecond, 300),
		run(1, Reference, BodySmall, 64, 6000, time.Second, 100),
		run(1, "px", BodySmall, 64, 3000, 600*time.Millisecond, 500),
		run(2, Reference, BodySmall, 64, 2000, time.Second, 100),
		run(2, "px", BodySmall, 64, 1000, 100*time.Millisecond, 400),
		run(0, "px", BodySmall, 1, 900, 0, 0),
		run(1, "px", BodySmall, 1, 700, 0, 0),
		run(0, "px", BodyLarge, 64, 800, 80*time.Millisecond, 200),
	}
	samples[1].Wrk.Status = 3
	samples[6].Wrk.Read = 1
	rows := Summarize(samples, testTargets, Reference, 64)
	if len(rows) != 3 {
		t.Fatalf("got %d rows, want direct and px for the small body and px for the large one: %+v", len(rows), rows)
	}
	direct, px, large := rows[0], rows[1], rows[2]
	if direct.Name != Reference || px.Name != "px" || large.Name != "px" || large.Body != BodyLarge {
		t.Fatalf("rows in the wrong order: %s/%s, %s/%s, %s/%s", direct.Name, direct.Body, px.Name, px.Body, large.Name, large.Body)
	}
	if !math.IsNaN(direct.Ratio) {
		t.Errorf("direct's ratio = %v, want NaN (it is the reference)", direct.Ratio)
	}
	if px.Ratio != 0.5 {
		t.Errorf("px ratio = %v, want 0.5 (same-round ratios)", px.Ratio)
	}
	if px.RPS != 3000 || px.RPSMin != 1000 || px.RPSMax != 5000 || px.Rounds != 3 {
		t.Errorf("px req/s = %v (%v–%v) over %d rounds, want 3000 (1000–5000) over 3", px.RPS, px.RPSMin, px.RPSMax, px.Rounds)
	}
	// CPU per request: 100, 200 and 100 µs → median 100.
	if px.CPUPerReq != 100 {
		t.Errorf("px CPU µs/req = %v, want 100", px.CPUPerReq)
	}
	if px.RSS != 500 {
		t.Errorf("px RSS = %d, want the largest, 500", px.RSS)
	}
	if px.P50 != 3000*time.Microsecond || px.P99 != 6000*time.Microsecond {
		t.Errorf("px c=64 latency = %v / %v, want the medians 3ms / 6ms", px.P50, px.P99)
	}
	if px.P50One != 800*time.Microsecond || px.P99One != 1600*time.Microsecond {
		t.Errorf("px c=1 latency = %v / %v, want the medians 800µs / 1.6ms", px.P50One, px.P99One)
	}
	if px.Errors != 4 {
		t.Errorf("px errors = %d, want 4 (both concurrencies)", px.Errors)
	}
	if !math.IsNaN(large.Ratio) {
		t.Errorf("large-body ratio without a direct sample = %v, want NaN", large.Ratio)
	}
}

func TestTable(t *testing.T) {
	rows := []Row{
		{TargetInfo: TargetInfo{Name: Reference, Label: "direct"}, Body: BodySmall, RPS: 29854.4, RPSMin: 29000, RPSMax: 31000.6,
			Ratio: math.NaN(), P50: 1550 * time.Microsecond, P99: 7020 * time.Microsecond, P50One: 75 * time.Microsecond, P99One: 2441 * time.Microsecond,
			CPUPerReq: 24.14, RSS: 15 << 20},
		{TargetInfo: TargetInfo{Name: "px", Label: "proxy X"}, Body: BodySmall, RPS: 1234567, RPSMin: 999, RPSMax: 1234567, Ratio: 0.4049,
			P50: 4280 * time.Microsecond, P99: 47070 * time.Microsecond, CPUPerReq: 32.96, RSS: 13 << 20, Errors: 2},
		{TargetInfo: TargetInfo{Name: "px", Label: "proxy X"}, Body: BodyLarge, RPS: 1},
	}
	got := Table(rows, BodySmall, 64, Reference)
	want := "| target | req/s median (min–max) | × direct (same round) | p50 / p99 at c=64 (ms) | p50 / p99 at c=1 (µs) | CPU µs/req | RSS MiB | errors |\n" +
		"|---|---:|---:|---:|---:|---:|---:|---:|\n" +
		"| direct | 29,854 (29,000–31,001) | 1 (reference) | 1.55 / 7.02 | 75 / 2441 | 24.1 | 15.0 | 0 |\n" +
		"| proxy X | 1,234,567 (999–1,234,567) | 0.40× | 4.28 / 47.07 | – | 33.0 | 13.0 | 2 |\n"
	if got != want {
		t.Errorf("Table =\n%s\nwant\n%s", got, want)
	}
}

func TestGroupDigits(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{{0, "0"}, {999.4, "999"}, {999.5, "1,000"}, {-1234567, "-1,234,567"}, {math.NaN(), "–"}} {
		if got := groupDigits(tc.in); got != tc.want {
			t.Errorf("groupDigits(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if !strings.Contains(BodyTitle(BodySmall), "13-byte") || BodyTitle(BodyLarge) != "16 KiB body" {
		t.Errorf("body titles %q, %q", BodyTitle(BodySmall), BodyTitle(BodyLarge))
	}
}

func TestBothCoresTable(t *testing.T) {
	rows := []Row{
		{TargetInfo: TargetInfo{Name: Reference, Label: "direct"}, Body: BodySmall, RPS: 40000, RPSMin: 39000, RPSMax: 41000,
			Ratio: math.NaN(), P50: 1100 * time.Microsecond, P99: 7000 * time.Microsecond, CPUPerReq: 25},
		{TargetInfo: TargetInfo{Name: "nginx", Label: "nginx, 1 worker"}, Body: BodySmall, RPS: 24000, Ratio: 0.6, CPUPerReq: 26},
		{TargetInfo: TargetInfo{Name: "nginx-2", Label: "nginx, 2 workers", BothCores: true}, Body: BodySmall, RPS: 30000, RPSMin: 29000,
			RPSMax: 31000, Ratio: 0.75, P50: 2000 * time.Microsecond, P99: 5000 * time.Microsecond, CPUPerReq: 30, Errors: 1},
		{TargetInfo: TargetInfo{Name: "zkgate", Label: "zkgate"}, Body: BodySmall, RPS: 20000, RPSMin: 19000, RPSMax: 21000, Ratio: 0.5,
			P50: 3000 * time.Microsecond, P99: 8000 * time.Microsecond, CPUPerReq: 40},
		{TargetInfo: TargetInfo{Name: "zkgate", Label: "zkgate"}, Body: BodyLarge, RPS: 1},
	}
	got := BothCoresTable(rows, []string{Reference, "zkgate", "nginx-2", "haproxy-2"}, BodySmall, 64, Reference)
	want := "| target | req/s median (min–max) | × direct (same round) | p50 / p99 at c=64 (ms) | CPU µs/req | cores busy | errors |\n" +
		"|---|---:|---:|---:|---:|---:|---:|\n" +
		"| direct | 40,000 (39,000–41,000) | 1 (reference) | 1.10 / 7.00 | 25.0 | 1.00 | 0 |\n" +
		"| zkgate | 20,000 (19,000–21,000) | 0.50× | 3.00 / 8.00 | 40.0 | 0.80 | 0 |\n" +
		"| nginx, 2 workers | 30,000 (29,000–31,000) | 0.75× | 2.00 / 5.00 | 30.0 | 0.90 | 1 |\n"
	if got != want {
		t.Errorf("BothCoresTable =\n%s\nwant (the names' order, no 1-worker nginx, no missing target)\n%s", got, want)
	}
	if main := Table(rows, BodySmall, 64, Reference); strings.Contains(main, "2 workers") || !strings.Contains(main, "nginx, 1 worker") {
		t.Errorf("the main table shows a both-cores target or lacks nginx with 1 worker:\n%s", main)
	}
}

func TestPoliciesCPULine(t *testing.T) {
	row := func(name, body string, cpu float64) Row {
		return Row{TargetInfo: TargetInfo{Name: name, Label: name + " label"}, Body: body, CPUPerReq: cpu, Ratio: math.NaN()}
	}
	rows := []Row{row(Reference, BodySmall, 20), row(PoliciesBase, BodySmall, 40), row(PoliciesTarget, BodySmall, 48),
		row(PoliciesBase, BodyLarge, 50), row(PoliciesTarget, BodyLarge, 70)}
	want := "CPU ÷ plain zkgate, zkgate-policies label: 48.0 / 40.0 µs/req = **1.20×** (goal ≤ 1.3×: met)"
	if got := PoliciesCPULine(rows, BodySmall); got != want {
		t.Errorf("small: %q, want %q", got, want)
	}
	if got := PoliciesCPULine(rows, BodyLarge); !strings.Contains(got, "= **1.40×** (goal ≤ 1.3×: missed)") {
		t.Errorf("large: %q, want 1.40× missed", got)
	}
	if got := Table(rows, BodySmall, 64, Reference); !strings.HasSuffix(got, "| 0 |\n\n"+want+"\n") {
		t.Errorf("Table does not end with the line:\n%s", got)
	}
	if got := PoliciesCPULine(rows[:2], BodySmall); got != "" {
		t.Errorf("without the policies row: %q, want no line", got)
	}
	if got := PoliciesCPULine(rows[2:3], BodySmall); got != "" {
		t.Errorf("without the plain row: %q, want no line", got)
	}
}

func TestNginxCPULine(t *testing.T) {
	row := func(name, body string, cpu float64) Row {
		return Row{TargetInfo: TargetInfo{Name: name, Label: name + " label"}, Body: body, CPUPerReq: cpu, Ratio: math.NaN()}
	}
	rows := []Row{row(Reference, BodySmall, 20), row("zkgate", BodySmall, 33), row(NginxLogTarget, BodySmall, 30),
		row("zkgate-nolog", BodySmall, 29), row("nginx", BodySmall, 29.5),
		row("zkgate", BodyLarge, 40), row(NginxLogTarget, BodyLarge, 44)}
	want := "CPU ÷ nginx, 1 worker (goal ≤ 1.0×), both with an access log: 33.0 / 30.0 µs/req = **1.10×** (missed); " +
		"neither: 29.0 / 29.5 µs/req = **0.98×** (met)"
	if got := NginxCPULine(rows, BodySmall); got != want {
		t.Errorf("small: %q, want %q", got, want)
	}
	if got := NginxCPULine(rows, BodyLarge); got != "CPU ÷ nginx, 1 worker (goal ≤ 1.0×), both with an access log: 40.0 / 44.0 µs/req = **0.91×** (met)" {
		t.Errorf("large, one pair: %q", got)
	}
	if got := Table(rows, BodySmall, 64, Reference); !strings.HasSuffix(got, "\n\n"+want+"\n") {
		t.Errorf("Table does not end with the line:\n%s", got)
	}
	if got := NginxCPULine(rows[:2], BodySmall); got != "" {
		t.Errorf("without an nginx row: %q, want no line", got)
	}
}

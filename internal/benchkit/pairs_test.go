package benchkit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pairRun is a run of requests over one second with cpu µs of CPU.
func pairRun(target string, requests int64, cpuMicros int64, errs int) Sample {
	w := WrkResult{Requests: requests, Duration: time.Second}
	w.Status = int64(errs)
	return Sample{Target: target, Body: BodySmall, Conns: 64, Wrk: w, CPU: time.Duration(cpuMicros) * time.Microsecond}
}

func TestSummarizePairs(t *testing.T) {
	nolog := Pairings[1]
	logged := Pairings[0]
	ha := Pairings[2]
	samples := []PairSample{
		{Pairing: nolog, Body: BodySmall, Pair: 0, ZkRun: pairRun("zkgate-nolog", 30000, 30000*22, 0), OtherRun: pairRun("nginx-2", 27000, 27000*27, 0)},
		{Pairing: nolog, Body: BodySmall, Pair: 1, ZkRun: pairRun("zkgate-nolog", 26000, 26000*24, 0), OtherRun: pairRun("nginx-2", 26500, 26500*28, 0)},
		// A quick run of errors (wrk counts them as requests): left out.
		{Pairing: nolog, Body: BodySmall, Pair: 2, ZkRun: pairRun("zkgate-nolog", 90000, 90000*5, 0), OtherRun: pairRun("nginx-2", 1000, 1000*50, 2)},
		{Pairing: nolog, Body: BodySmall, Pair: 3, ZkRun: pairRun("zkgate-nolog", 28000, 28000*23, 0), OtherRun: pairRun("nginx-2", 25000, 25000*26, 0)},
		{Pairing: logged, Body: BodySmall, Pair: 0, ZkRun: pairRun("zkgate", 20000, 20000*35, 0), OtherRun: pairRun(Nginx2LogTarget, 22000, 22000*33, 0)},
		// No valid pair at all: reported as such, not as a ratio.
		{Pairing: ha, Body: BodySmall, Pair: 0, ZkRun: pairRun("zkgate-nolog", 0, 0, 0), OtherRun: pairRun("haproxy-2", 25000, 25000*30, 0)},
		// The 16 KiB body's pairs are summed up apart, after the small body's.
		{Pairing: nolog, Body: BodyLarge, Pair: 0, ZkRun: pairRun("zkgate-nolog", 21000, 21000*32, 0), OtherRun: pairRun("nginx-2", 20000, 20000*39, 0)},
	}
	infos := []TargetInfo{{Name: "nginx-2", Label: "nginx, 2 workers"}, {Name: Nginx2LogTarget, Label: "nginx, 2 workers, access log"},
		{Name: "haproxy-2", Label: "HAProxy, nbthread 2"}}
	sums := SummarizePairs(samples, infos)
	if len(sums) != 4 {
		t.Fatalf("got %d summaries, want 4: %+v", len(sums), sums)
	}
	if l := sums[3]; l.Body != BodyLarge || l.Pairing != nolog || l.Pairs != 1 || l.Median != 21000.0/20000 {
		t.Errorf("the 16 KiB summary: %+v", l)
	}
	// Pairings' order: the logged comparison first.
	lg, nl, hs := sums[0], sums[1], sums[2]
	if lg.Pairing != logged || nl.Pairing != nolog || hs.Pairing != ha {
		t.Fatalf("summaries out of Pairings' order: %+v", sums)
	}
	if nl.Pairs != 3 || nl.Invalid != 1 || nl.Ahead != 2 {
		t.Errorf("pairs %d invalid %d ahead %d, want 3, 1 and 2", nl.Pairs, nl.Invalid, nl.Ahead)
	}
	if hs.Pairs != 0 || hs.Invalid != 1 || hs.Median != 0 {
		t.Errorf("HAProxy: %+v, want no valid pair and one left out", hs)
	}
	if want := 28000.0 / 25000; nl.Max != want {
		t.Errorf("max %v, want %v", nl.Max, want)
	}
	if want := 26000.0 / 26500; nl.Min != want {
		t.Errorf("min %v, want %v", nl.Min, want)
	}
	if want := 30000.0 / 27000; nl.Median != want {
		t.Errorf("median %v, want %v", nl.Median, want)
	}
	if nl.ZkCPU != 23 || nl.OtherCPU != 27 {
		t.Errorf("CPU medians %v / %v, want 23 / 27", nl.ZkCPU, nl.OtherCPU)
	}
	if nl.OtherErr != 2 || nl.ZkErrors != 0 {
		t.Errorf("errors %d / %d, want 0 / 2", nl.ZkErrors, nl.OtherErr)
	}
	if nl.OtherLabel != "nginx, 2 workers" {
		t.Errorf("label %q", nl.OtherLabel)
	}

	line := PairsLine(sums, 64, BodySmall)
	for _, want := range []string{
		"zkgate ÷ nginx, 2 workers, access log, both with an access log: **0.91×**",
		"zkgate ahead in 0 of 1",
		"CPU 35.0 / 33.0 µs/req; missed)",
		"zkgate-nolog ÷ nginx, 2 workers, neither logging: **1.11×** (0.98–1.12, zkgate ahead in 2 of 3; CPU 23.0 / 27.0 µs/req; " +
			"1 more left out, with errors, without a request or CPU time (errors 0 / 2); met)",
		"zkgate-nolog ÷ HAProxy, nbthread 2, neither logging: no valid pair (1 with errors, without a request or CPU time; errors 0 / 0; suspect)",
		"13-byte body;",
		"`wrk -t1 -c64`", "goal ≥ 1.0×",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("line lacks %q:\n%s", want, line)
		}
	}
	if PairsLine(nil, 64, BodySmall) != "" {
		t.Error("a line without pairs")
	}
	large := PairsLine(sums, 64, BodyLarge)
	if !strings.Contains(large, "16 KiB body;") || !strings.Contains(large, "**1.05×**") || strings.Contains(large, "HAProxy, nbthread 2") || strings.Contains(line, "1.05×") {
		t.Errorf("the 16 KiB line mixes bodies: %s", large)
	}
}

// TestPairValid: a pair whose runs did not both serve requests without
// an error is not valid and has no ratio (nor a division by zero).
func TestPairValid(t *testing.T) {
	ok := pairRun("zkgate", 10, 10, 0)
	for name, p := range map[string]PairSample{
		"other served nothing": {ZkRun: ok, OtherRun: pairRun("nginx-2", 0, 0, 0)},
		"zkgate had errors":    {ZkRun: pairRun("zkgate", 10, 10, 1), OtherRun: ok},
		"other had errors":     {ZkRun: ok, OtherRun: pairRun("nginx-2", 10, 10, 3)},
	} {
		if p.Valid() || p.Ratio() != 0 {
			t.Errorf("%s: valid %v, ratio %v; want invalid, 0", name, p.Valid(), p.Ratio())
		}
	}
	if p := (PairSample{ZkRun: ok, OtherRun: pairRun("nginx-2", 20, 10, 0)}); !p.Valid() || p.Ratio() != 0.5 {
		t.Errorf("a clean pair: valid %v, ratio %v; want valid, 0.5", p.Valid(), p.Ratio())
	}
}

// TestWritePairSamples: the runs are written in the order they ran (an
// odd pair ran the other first), each with its comparison.
func TestWritePairSamples(t *testing.T) {
	p := Pairings[1]
	samples := []PairSample{
		{Pairing: p, Body: BodyLarge, Pair: 0, ZkRun: pairRun("zkgate-nolog", 300, 600, 0), OtherRun: pairRun("nginx-2", 200, 400, 0)},
		{Pairing: p, Body: BodyLarge, Pair: 1, ZkRun: pairRun("zkgate-nolog", 310, 620, 0), OtherRun: pairRun("nginx-2", 210, 420, 1)},
	}
	path := filepath.Join(t.TempDir(), "pairs.csv")
	if err := writePairSamples(path, samples); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := []string{
		"pair,body,comparison,first,target,requests,seconds,rps,p50_us,p99_us,errors,cpu_us",
		"1,16k,zkgate-nolog vs nginx-2,zkgate-nolog,zkgate-nolog,300,1.000,300.0,0,0,0,600",
		"1,16k,zkgate-nolog vs nginx-2,zkgate-nolog,nginx-2,200,1.000,200.0,0,0,0,400",
		"2,16k,zkgate-nolog vs nginx-2,nginx-2,nginx-2,210,1.000,210.0,0,0,1,420",
		"2,16k,zkgate-nolog vs nginx-2,nginx-2,zkgate-nolog,310,1.000,310.0,0,0,0,620",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("pairs.csv:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// TestCPUPairs: a CPU Pairing's ratio is zkgate's CPU per request over
// the other's, lower is better, the goal a bound from above; its line is
// CPUPairsLine's, apart from the throughput line.
func TestCPUPairs(t *testing.T) {
	var cpuP Pairing
	for _, p := range Pairings {
		if p.CPU && p.Zkgate == "zkgate-nolog" && p.Other == "nginx" {
			cpuP = p
		}
	}
	if cpuP.Other == "" {
		t.Fatal("no CPU pairing of zkgate-nolog against nginx, 1 worker")
	}
	samples := []PairSample{
		// zkgate serves more but costs more per request: the CPU ratio
		// is what counts.
		{Pairing: cpuP, Body: BodySmall, Pair: 0, ZkRun: pairRun("zkgate-nolog", 30000, 30000*26, 0), OtherRun: pairRun("nginx", 25000, 25000*25, 0)},
		{Pairing: cpuP, Body: BodySmall, Pair: 1, ZkRun: pairRun("zkgate-nolog", 30000, 30000*24, 0), OtherRun: pairRun("nginx", 25000, 25000*25, 0)},
		{Pairing: cpuP, Body: BodySmall, Pair: 2, ZkRun: pairRun("zkgate-nolog", 30000, 30000*27, 0), OtherRun: pairRun("nginx", 25000, 25000*25, 0)},
		// No CPU time read for nginx: left out, not a win for zkgate.
		{Pairing: cpuP, Body: BodySmall, Pair: 3, ZkRun: pairRun("zkgate-nolog", 30000, 30000*26, 0), OtherRun: pairRun("nginx", 25000, 0, 0)},
		{Pairing: Pairings[1], Body: BodySmall, Pair: 0, ZkRun: pairRun("zkgate-nolog", 30000, 30000*22, 0), OtherRun: pairRun("nginx-2", 27000, 27000*27, 0)},
	}
	if r := samples[0].Ratio(); r != 26.0/25 {
		t.Errorf("CPU ratio %v, want %v", r, 26.0/25)
	}
	sums := SummarizePairs(samples, []TargetInfo{{Name: "nginx", Label: "nginx, 1 worker"}, {Name: "nginx-2", Label: "nginx, 2 workers"}})
	var cs PairSummary
	for _, s := range sums {
		if s.CPU {
			cs = s
		}
	}
	if cs.Pairs != 3 || cs.Invalid != 1 || cs.Ahead != 1 || cs.Median != 26.0/25 {
		t.Errorf("CPU summary %+v: want 3 pairs and 1 left out, zkgate cheaper in 1, median %v", cs, 26.0/25)
	}
	if r := samples[3].Ratio(); r != 0 || samples[3].Valid() {
		t.Errorf("a pair without the other's CPU time: valid %v, ratio %v", samples[3].Valid(), r)
	}
	line := CPUPairsLine(sums, 64, BodySmall)
	for _, want := range []string{"CPU ÷ nginx, 1 worker, back to back", "goal ≤ 1.0×",
		"zkgate-nolog ÷ nginx, 1 worker, neither logging: **1.04×** (0.96–1.08, zkgate cheaper in 1 of 3; CPU 26.0 / 25.0 µs/req; " +
			"1 more left out, with errors, without a request or CPU time (errors 0 / 0); missed)"} {
		if !strings.Contains(line, want) {
			t.Errorf("CPU line lacks %q:\n%s", want, line)
		}
	}
	if strings.Contains(line, "nginx, 2 workers") {
		t.Errorf("the CPU line carries a throughput pairing:\n%s", line)
	}
	if rate := PairsLine(sums, 64, BodySmall); strings.Contains(rate, "1 worker") || !strings.Contains(rate, "nginx, 2 workers") {
		t.Errorf("the rate line mixes in the CPU pairing, or lacks its own:\n%s", rate)
	}
	// Below the bound is met.
	met := CPUPairsLine([]PairSummary{{Pairing: cpuP, Body: BodySmall, OtherLabel: "nginx, 1 worker", Pairs: 1, Median: 0.97, Min: 0.97, Max: 0.97, Ahead: 1}}, 64, BodySmall)
	if !strings.Contains(met, "**0.97×**") || !strings.HasSuffix(met, "met)") {
		t.Errorf("a median below 1 is not met:\n%s", met)
	}
}

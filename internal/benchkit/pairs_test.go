package benchkit

import (
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
	samples := []PairSample{
		{Pairing: nolog, Pair: 0, ZkRun: pairRun("zkgate-nolog", 30000, 30000*22, 0), OtherRun: pairRun("nginx-2", 27000, 27000*27, 0)},
		{Pairing: nolog, Pair: 1, ZkRun: pairRun("zkgate-nolog", 26000, 26000*24, 0), OtherRun: pairRun("nginx-2", 26500, 26500*28, 2)},
		{Pairing: nolog, Pair: 2, ZkRun: pairRun("zkgate-nolog", 28000, 28000*23, 0), OtherRun: pairRun("nginx-2", 25000, 25000*26, 0)},
		{Pairing: logged, Pair: 0, ZkRun: pairRun("zkgate", 20000, 20000*35, 0), OtherRun: pairRun(Nginx2LogTarget, 22000, 22000*33, 0)},
	}
	infos := []TargetInfo{{Name: "nginx-2", Label: "nginx, 2 workers"}, {Name: Nginx2LogTarget, Label: "nginx, 2 workers, access log"}}
	sums := SummarizePairs(samples, infos)
	if len(sums) != 2 {
		t.Fatalf("got %d summaries, want 2 (the HAProxy pairing has no sample): %+v", len(sums), sums)
	}
	// Pairings' order: the logged comparison first.
	lg, nl := sums[0], sums[1]
	if lg.Pairing != logged || nl.Pairing != nolog {
		t.Fatalf("summaries out of Pairings' order: %+v", sums)
	}
	if nl.Pairs != 3 || nl.Ahead != 2 {
		t.Errorf("pairs %d ahead %d, want 3 and 2", nl.Pairs, nl.Ahead)
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

	line := PairsLine(sums, 64)
	for _, want := range []string{
		"zkgate ÷ nginx, 2 workers, access log, both with an access log: **0.91×**",
		"zkgate ahead in 0 of 1",
		"CPU 35.0 / 33.0 µs/req; missed)",
		"zkgate-nolog ÷ nginx, 2 workers, neither logging: **1.11×** (0.98–1.12, zkgate ahead in 2 of 3; CPU 23.0 / 27.0 µs/req; errors 0 / 2; met)",
		"`wrk -t1 -c64`", "goal ≥ 1.0×",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("line lacks %q:\n%s", want, line)
		}
	}
	if PairsLine(nil, 64) != "" {
		t.Error("a line without pairs")
	}
}

// TestPairRatioWithoutOther: a pair whose other run served nothing has
// ratio 0, not a division by zero.
func TestPairRatioWithoutOther(t *testing.T) {
	p := PairSample{ZkRun: pairRun("zkgate", 10, 10, 0), OtherRun: pairRun("nginx-2", 0, 0, 0)}
	if r := p.Ratio(); r != 0 {
		t.Fatalf("ratio %v, want 0", r)
	}
}

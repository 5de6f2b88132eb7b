package benchkit

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPropagationTable(t *testing.T) {
	var p Propagation
	for i := 1; i <= 100; i++ {
		p.Join = append(p.Join, time.Duration(i)*time.Millisecond)
		p.Leave = append(p.Leave, time.Duration(200-i)*100*time.Microsecond)
		p.JoinWrite = append(p.JoinWrite, time.Millisecond)
		p.LeaveWrite = append(p.LeaveWrite, 2*time.Millisecond)
	}
	got := PropagationTable(p)
	for _, want := range []string{
		"| registration → first request routed to the new member | 100 | 50.00 | 99.00 | 1.00 | 100.00 | 1.00 |",
		"| deregistration → last request routed to the departed member | 100 | 14.90 | 19.80 | 10.00 | 19.90 | 2.00 |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if empty := PropagationTable(Propagation{}); !strings.Contains(empty, "| 0 | – | – | – | – | – |") {
		t.Errorf("empty table: %s", empty)
	}
}

func TestResultsWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	r := Results{
		Rows: []Row{
			{TargetInfo: TargetInfo{Name: Reference, Label: "direct (no proxy)"}, Body: BodySmall, RPS: 30000, Ratio: math.NaN(), CPUPerReq: 24},
			{TargetInfo: TargetInfo{Name: "zkgate", Label: "zkgate, 1 backend"}, Body: BodySmall, RPS: 6000, Ratio: 0.2, CPUPerReq: 150},
			{TargetInfo: TargetInfo{Name: "zkgate", Label: "zkgate, 1 backend"}, Body: BodyLarge, RPS: 5000, Ratio: 0.5, CPUPerReq: 140},
		},
		Propagation: &Propagation{Join: []time.Duration{time.Millisecond}, Leave: []time.Duration{2 * time.Millisecond},
			JoinWrite: []time.Duration{time.Millisecond}, LeaveWrite: []time.Duration{time.Millisecond}},
		Machine: Machine{CPUs: 2, CPUModel: "Test CPU", Kernel: "6.1.0-test",
			Versions: []ToolVersion{{"nginx", "nginx/1.22.1"}, {"Go", "go1.26"}}},
		LoadStart: "1.00 2.00 3.00", LoadEnd: "4.00 5.00 6.00",
		Started: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Elapsed: 95 * time.Second,
		Options: Options{Command: "make bench", Conns: 64, Rounds: 3, Duration: 5 * time.Second, LatencyDuration: 3 * time.Second,
			Warmup: time.Second, PropQuiet: 150 * time.Millisecond},
	}
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Produced by `make bench`", "2026-01-02 03:04 UTC", "took 1m35s", "![", "results.svg",
		"| CPU | 2 × Test CPU |", "| kernel | 6.1.0-test |", "| nginx | nginx/1.22.1 |", "1.00 2.00 3.00 / 4.00 5.00 6.00",
		"`wrk -t1 -c64 -d5s --latency`", "`wrk -t1 -c1 -d3s --latency`", "3 rounds", "1s warm-up",
		"### 13-byte body", "### 16 KiB body", "| zkgate, 1 backend | 6,000 (", "0.20×", "0.50×",
		"## Discovery propagation", "registration → first request", "150ms",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q", want)
		}
	}
	svg, err := os.ReadFile(filepath.Join(dir, "results.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(svg), "<svg ") || !strings.Contains(string(svg), "2026-01-02, 2 cores") {
		t.Errorf("results.svg does not start as an SVG with the date and cores: %.200s", svg)
	}
	if strings.Contains(string(md), "Both cores") {
		t.Error("results.md has a both-cores section without both-cores targets")
	}
	r.Rows = append(r.Rows, Row{TargetInfo: TargetInfo{Name: "nginx-2", Label: "nginx, 2 workers", BothCores: true}, Body: BodySmall, RPS: 7000, Ratio: 0.23, CPUPerReq: 30})
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	md, _ = os.ReadFile(filepath.Join(dir, "results.md"))
	svg, _ = os.ReadFile(filepath.Join(dir, "results.svg"))
	if !strings.Contains(string(md), "#### Both cores, 13-byte body") || !strings.Contains(string(md), "| nginx, 2 workers | 7,000 (") ||
		!strings.Contains(string(md), "`worker_processes 2`") {
		t.Errorf("results.md lacks the both-cores table:\n%s", md)
	}
	if strings.Contains(string(svg), "2 workers") {
		t.Error("the chart shows a both-cores target")
	}
	if n := strings.Count(string(md), "| nginx, 2 workers |"); n != 1 {
		t.Errorf("nginx with 2 workers appears in %d tables, want only the both-cores one", n)
	}
	if tables := r.Tables(); !strings.Contains(tables, "Both cores, 16 KiB body") {
		t.Errorf("Tables lacks the both-cores tables:\n%s", tables)
	}
	if md := r.Markdown(); !strings.Contains(md, "## Held connections\n\nSkipped in this run (BENCH_HELD_CONNS=0)") {
		t.Error("without connection results, the page does not say they were skipped")
	}
	conns := sampleConnResults()
	conns.Notes = []string{"A connection note."}
	r.Conns = &conns
	md = []byte(r.Markdown())
	for _, want := range []string{"## Held connections", "`zkbench hold`", "opens 8000 connections", "(zkgate, 1 backend; nginx, 1 worker)",
		"### Memory per held connection", "| keep-alive, served one GET, now idle | 17.0 KiB | 1.0 KiB |",
		"### What a held connection costs zkgate", "25 → 8025 (1.00)", "### Steady load beside 8000 idle connections",
		"`wrk -t1 -c64 -d5s --latency` on the 13-byte body through `/echo/`", "- A connection note.", "## Discovery propagation"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md with connection results lacks %q", want)
		}
	}
	if tables := r.Tables(); !strings.Contains(tables, "Memory per held connection (8000 connections)") ||
		!strings.Contains(tables, "Steady load beside 8000 idle connections") || !strings.Contains(tables, "- A connection note.") {
		t.Errorf("Tables lacks the connection tables or notes:\n%s", tables)
	}
	r.Propagation = nil
	if md := r.Markdown(); !strings.Contains(md, "Skipped in this run") {
		t.Error("without propagation results, the page does not say it was skipped")
	}
	if tables := r.Tables(); !strings.Contains(tables, "16 KiB body") || strings.Contains(tables, "propagation") {
		t.Errorf("Tables without propagation:\n%s", tables)
	}
}

func TestReadMachine(t *testing.T) {
	m := ReadMachine([]ToolCommand{
		{Name: "tool", Argv: []string{"sh", "-c", "echo 'Tool version 1.2.3 - https://example.invalid/'; echo second line"}, Trim: "Tool version", Cut: " - "},
		{Name: "silent", Argv: []string{"false"}},
	})
	if m.CPUs < 1 || m.CPUModel == "" || m.Kernel == "" || len(strings.Fields(m.Load)) != 3 {
		t.Errorf("machine = %+v, want CPUs, a model, a kernel and three load averages", m)
	}
	if len(m.Versions) != 2 || m.Versions[0] != (ToolVersion{"tool", "1.2.3"}) {
		t.Fatalf("versions = %+v, want tool 1.2.3 first", m.Versions)
	}
	if !strings.HasPrefix(m.Versions[1].Version, "unknown (") {
		t.Errorf("a failing version command gave %q, want unknown (error)", m.Versions[1].Version)
	}
}

func TestOptionsDefaultsAndErrors(t *testing.T) {
	o, err := Options{Root: "/repo", Self: "/bin/true"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.State != "/repo/.bench" || o.Out != "/repo/docs/bench" || o.Rounds != 3 || o.Duration != 5*time.Second || o.HeldConns != 8000 ||
		o.LatencyDuration != 3*time.Second || o.Conns != 64 || o.BasePort != 19100 || o.PropQuiet != 150*time.Millisecond {
		t.Errorf("defaults = %+v", o)
	}
	_, err = Options{}.withDefaults()
	if err == nil || !strings.Contains(err.Error(), "Root") {
		t.Errorf("no root: %v, want an error naming Root", err)
	}
	_, err = Options{Root: "/r", Self: "x", Rounds: -1, Duration: 500 * time.Millisecond, Conns: -2, BasePort: 70000,
		Warmup: -time.Second, Only: []string{"nginx", "envoy"}, HeldConns: 9000}.withDefaults()
	for _, want := range []string{"held connections 9000: want 1 to 8900", "rounds -1", "500ms", "connections -2", "base port 70000", "must not be negative", `target "envoy": unknown (valid: direct, zkgate`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad options: error %v, want it to contain %q", err, want)
		}
	}
}

func TestOptionsSkipConns(t *testing.T) {
	if _, err := (Options{Root: "/r", Self: "x", SkipConns: true, HeldConns: -1}).withDefaults(); err != nil {
		t.Errorf("connections skipped: %v, want their count unchecked", err)
	}
	if _, err := (Options{Root: "/r", Self: "x", HeldConns: -1}).withDefaults(); err == nil {
		t.Error("held connections -1 accepted")
	}
}

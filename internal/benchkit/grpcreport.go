package benchkit

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/zkgate/zkgate/internal/loadgen"
)

// GRPCSample is one run of the gRPC section.
type GRPCSample struct {
	Round  int
	Target string
	// Load is what the load generator saw.
	Load loadgen.GRPCResult
	// CPU is the CPU time the target's processes used during the run.
	CPU time.Duration
}

// CPUPerReq returns CPU µs per successful call; NaN without one.
func (s GRPCSample) CPUPerReq() float64 {
	if s.Load.OK <= 0 {
		return math.NaN()
	}
	return float64(s.CPU.Microseconds()) / float64(s.Load.OK)
}

func (s GRPCSample) runKey() runKey                      { return runKey{s.Target, GRPCMeasure, s.Round} }
func (s GRPCSample) rate() float64                       { return s.Load.CallsPerSecond }
func (s GRPCSample) latencies() (p50, p99 time.Duration) { return s.Load.P50, s.Load.P99 }
func (s GRPCSample) errorCount() int64                   { return int64(s.Load.Failed) }

// GRPCRow summarizes one target's gRPC samples.
type GRPCRow struct {
	TargetInfo
	Rounds int
	// Rate is the median calls per second over rounds, RateMin and RateMax
	// the extremes.
	Rate, RateMin, RateMax float64
	// VsDirect is the median over rounds of Rate divided by the direct
	// run's of the same round; NaN for the reference.
	VsDirect float64
	// VsNginx and CPUVsNginx are the medians over rounds of Rate and CPU per
	// call divided by NginxGRPC's of the same round; NaN for the reference
	// and NginxGRPC itself.
	VsNginx, CPUVsNginx float64
	// CPUPerCall is the median CPU µs per call over rounds.
	CPUPerCall float64
	// P50 and P99 are the medians of the load generator's latencies.
	P50, P99 time.Duration
	// Failed counts the calls that failed, over every run.
	Failed int64
}

func (r GRPCRow) rowKey() (target, measure string) { return r.Name, GRPCMeasure }

// GRPCResults is the gRPC section's outcome.
type GRPCResults struct {
	Rows []GRPCRow
	// Rounds and Duration are the run's shape.
	Rounds   int
	Duration time.Duration
}

// SummarizeGRPC turns samples into one row per target, in the order given;
// reference names the backend reached directly.
func SummarizeGRPC(samples []GRPCSample, targets []TargetInfo, reference string) []GRPCRow {
	runs := indexRuns(samples)
	var rows []GRPCRow
	for _, t := range targets {
		sum, ok := runs.summarize(t.Name, GRPCMeasure, reference, GRPCMeasure, NginxGRPC)
		if !ok {
			continue
		}
		rows = append(rows, GRPCRow{TargetInfo: t, Rounds: sum.rounds, Rate: sum.rate, RateMin: sum.rateMin, RateMax: sum.rateMax,
			VsDirect: sum.vsDirect, VsNginx: sum.vsNginx, CPUVsNginx: sum.cpuVsNx, CPUPerCall: sum.cpuPerReq,
			P50: sum.p50, P99: sum.p99, Failed: sum.errors})
	}
	return rows
}

// GRPCTable renders every row: calls per second and its ratios, latency,
// CPU per call, the cores the target kept busy, failed calls.
func GRPCTable(res GRPCResults) string {
	var b strings.Builder
	b.WriteString("| target | calls/s median (min–max) | × direct (same round) | × nginx, 1 worker (same round) | p50 / p99 (ms) | CPU µs per call | zkgate ÷ nginx, CPU | cores busy | failed calls |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range res.Rows {
		fmt.Fprintf(&b, "| %s | %s (%s–%s) | %s | %s | %s / %s | %s | %s | %s | %d |\n", r.Label,
			groupDigits(r.Rate), groupDigits(r.RateMin), groupDigits(r.RateMax), ratio(r.VsDirect), ratio(r.VsNginx),
			ms(r.P50), ms(r.P99), oneDecimal(r.CPUPerCall), ratio(r.CPUVsNginx), coresBusy(r.CPUPerCall, r.Rate), r.Failed)
	}
	return b.String()
}

// grpcMarkdown writes the gRPC section of results.md.
func (r Results) grpcMarkdown(b *strings.Builder) {
	g := r.GRPC
	if !sectionHeading(b, "gRPC", g != nil, "gRPC") {
		return
	}
	fmt.Fprintf(b, "Unary calls of gRPC's interop `grpc.testing.TestService/UnaryCall` (an empty payload; grpc-go's server, `zkbench backend --grpc`, "+
		"registered in ZooKeeper under `%s`) through zkgate — an entry point with `http2: h2c`, one route to a service with `upstream: { protocol: h2c }`, "+
		"round robin, TCP probes, no access log (as nginx here), default GOMAXPROCS (`ZkgateGRPCConfig`) — and through nginx with one worker "+
		"(`listen ... http2` without TLS, `grpc_pass grpc://…` to an upstream with `keepalive 64`, `keepalive_requests 1000000` on both sides), "+
		"against the same backend reached directly.\n\n", GRPCPath)
	fmt.Fprintf(b, "- **Load**: `zkbench grpcload`, a process of its own: %d grpc-go callers sharing %d HTTP/2 connections (h2c, prior knowledge), "+
		"each making one call after another as fast as answers come, for %v; a call counts when it returned OK with its payload. "+
		"p50 / p99 are the callers' latencies.\n", GRPCCallers, GRPCConns, g.Duration)
	fmt.Fprintf(b, "- %d rounds, each visiting every target in turn, starting one further each round, after the warm-up; CPU µs per call is "+
		"user + system time of the target's processes over the run divided by the calls answered (for *direct*, the backend's own); "+
		"medians over rounds, and every ratio is the median of the same round's ratios. **cores busy** is CPU µs per call × calls/s; "+
		"the load generator and the backend share the same two cores.\n", g.Rounds)
	b.WriteString("- zkgate passes a gRPC call (a POST with a body) through `forward.lean` (ReverseProxy's steps without its copies) and net/http's HTTP/2 transport to the endpoint, " +
		"which multiplexes the calls on few connections; nginx opens an upstream connection per call in flight and reuses it for the next.\n")
	fmt.Fprintf(b, "- Raw per-run samples: `%s`.\n\n", filepath.Join(".bench", "run", "grpc-samples.csv"))
	b.WriteString("### gRPC unary calls\n\n")
	b.WriteString(GRPCTable(*g) + "\n")
}

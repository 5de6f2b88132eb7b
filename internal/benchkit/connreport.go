package benchkit

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// ConnTargets are the targets the connection benchmark measures, in
// report order.
var ConnTargets = []string{"zkgate", "nginx", "haproxy"}

// ConnMemory is what holding connections of one kind cost one target.
type ConnMemory struct {
	TargetInfo
	// Kind is HoldIdle or HoldUpgrade.
	Kind string
	// Opened is the holder's report once every connection was tried;
	// Closed its report when it closed them (Closed.Alive: still held).
	Opened, Closed HoldReport
	// RSSBefore and RSSAfter are the resident sizes of the target's
	// processes before the connections were opened and once they were
	// all held, each settled (SettleRSS); Settled is false when the
	// after value was still moving at the bound.
	RSSBefore, RSSAfter int64
	Settled             bool
	// FDsBefore and FDsAfter count the target's descriptors; for upgraded
	// connections BackendFDsBefore and BackendFDsAfter count the
	// backend's.
	FDsBefore, FDsAfter               int
	BackendFDsBefore, BackendFDsAfter int
	// RuntimeBefore and RuntimeAfter are zkgate's Go runtime accounting;
	// nil for the other targets or when it could not be read.
	RuntimeBefore, RuntimeAfter *GoRuntime
}

// PerConn returns the resident memory growth per held connection, KiB;
// NaN without a held connection.
func (m ConnMemory) PerConn() float64 {
	return perConnKiB(float64(m.RSSAfter-m.RSSBefore), m.Opened.Established)
}

// perConnKiB divides a growth in bytes over n connections, in KiB; NaN
// for no connection.
func perConnKiB(bytes float64, n int) float64 {
	if n <= 0 {
		return math.NaN()
	}
	return bytes / float64(n) / 1024
}

// IdleLoad is one target's steady load with and without idle connections
// held beside it.
type IdleLoad struct {
	TargetInfo
	// Alone are the wrk runs without idle connections; WithIdle the same
	// runs while the holder held Opened.Established idle connections. They
	// ran in the order alone, with, with, alone, so that a drift of the
	// machine over the four runs weighs on both sides alike.
	Alone, WithIdle []Sample
	// Opened and Closed are the holder's reports around the WithIdle runs.
	Opened, Closed HoldReport
}

// ConnResults is the connection benchmark's outcome.
type ConnResults struct {
	// Conns is the number of connections asked for (BENCH_HELD_CONNS).
	Conns    int
	Memory   []ConnMemory
	IdleLoad []IdleLoad
	// Notes are caveats of the run, one sentence each.
	Notes []string
}

// kindTitle describes a kind of held connection for the tables.
func kindTitle(kind string) string {
	switch kind {
	case HoldIdle:
		return "keep-alive, served one GET, now idle"
	case HoldUpgrade:
		return "upgraded (WebSocket handshake, 101 from the backend, held open; both sockets)"
	}
	return kind
}

// kib formats KiB with one decimal, "–" for NaN.
func kib(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%.1f KiB", x)
}

// mib formats bytes as MiB with one decimal.
func mib(b float64) string { return fmt.Sprintf("%.1f", b/(1<<20)) }

// ConnSummaryTable renders the resident memory per held connection as the
// issue's table: a row per kind, a column per target.
func ConnSummaryTable(c ConnResults) string {
	var targets []TargetInfo
	for _, m := range c.Memory {
		if !containsTarget(targets, m.Name) {
			targets = append(targets, m.TargetInfo)
		}
	}
	var b strings.Builder
	b.WriteString("| held connection |")
	for _, t := range targets {
		fmt.Fprintf(&b, " %s |", t.Label)
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(targets)) + "\n")
	for _, kind := range []string{HoldIdle, HoldUpgrade} {
		fmt.Fprintf(&b, "| %s |", kindTitle(kind))
		for _, t := range targets {
			cell := "–"
			for _, m := range c.Memory {
				if m.Name == t.Name && m.Kind == kind {
					cell = kib(m.PerConn())
				}
			}
			fmt.Fprintf(&b, " %s |", cell)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func containsTarget(ts []TargetInfo, name string) bool {
	for _, t := range ts {
		if t.Name == name {
			return true
		}
	}
	return false
}

// ConnMemoryTable renders every memory measurement with its evidence:
// connections held, RSS before and after, descriptors.
func ConnMemoryTable(c ConnResults) string {
	var b strings.Builder
	b.WriteString("| target | held connection | held / asked | still held at the close | RSS before → after (MiB) | per connection | proxy descriptors before → after | backend descriptors before → after |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range c.Memory {
		settled := ""
		if !m.Settled {
			settled = " (still moving)"
		}
		backend := "–"
		if m.Kind == HoldUpgrade {
			backend = fmt.Sprintf("%d → %d", m.BackendFDsBefore, m.BackendFDsAfter)
		}
		fmt.Fprintf(&b, "| %s | %s | %d / %d | %d | %s → %s%s | %s | %d → %d | %s |\n", m.Label, m.Kind,
			m.Opened.Established, m.Opened.Wanted, m.Closed.Alive, mib(float64(m.RSSBefore)), mib(float64(m.RSSAfter)), settled,
			kib(m.PerConn()), m.FDsBefore, m.FDsAfter, backend)
	}
	return b.String()
}

// ConnRuntimeTable renders zkgate's Go runtime accounting of its held
// connections: goroutines, stacks and heap in use before and after, per
// connection, and the RSS growth minus both (negative when heap spans
// were reserved but never touched, so not resident). Empty when no
// measurement has it.
func ConnRuntimeTable(c ConnResults) string {
	var b strings.Builder
	for _, m := range c.Memory {
		if m.RuntimeBefore == nil || m.RuntimeAfter == nil {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("| target | held connection | goroutines before → after (per connection) | stacks in use, MiB (per connection) | heap in use, MiB (per connection) | RSS growth per connection | RSS growth − stacks − heap, per connection |\n")
			b.WriteString("|---|---|---:|---:|---:|---:|---:|\n")
		}
		n := m.Opened.Established
		rb, ra := m.RuntimeBefore, m.RuntimeAfter
		stack := perConnKiB(ra.StackInuse-rb.StackInuse, n)
		heap := perConnKiB(ra.HeapInuse-rb.HeapInuse, n)
		goroutines := "–"
		if n > 0 {
			goroutines = fmt.Sprintf("%.2f", (ra.Goroutines-rb.Goroutines)/float64(n))
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f → %.0f (%s) | %s → %s (%s) | %s → %s (%s) | %s | %s |\n", m.Label, m.Kind,
			rb.Goroutines, ra.Goroutines, goroutines, mib(rb.StackInuse), mib(ra.StackInuse), kib(stack),
			mib(rb.HeapInuse), mib(ra.HeapInuse), kib(heap), kib(m.PerConn()), kib(m.PerConn()-stack-heap))
	}
	return b.String()
}

// MergeRuns combines runs of the same load into one sample: requests,
// durations, CPU time and errors add up (so req/s and CPU per request are
// over every run), latencies are the mean of the runs'.
func MergeRuns(runs []Sample) Sample {
	var m Sample
	if len(runs) == 0 {
		return m
	}
	m.Round, m.Target, m.Body, m.Conns = runs[0].Round, runs[0].Target, runs[0].Body, runs[0].Conns
	n := time.Duration(len(runs))
	for _, s := range runs {
		w := &m.Wrk
		w.Requests += s.Wrk.Requests
		w.Duration += s.Wrk.Duration
		w.Bytes += s.Wrk.Bytes
		w.Connect += s.Wrk.Connect
		w.Read += s.Wrk.Read
		w.Write += s.Wrk.Write
		w.Status += s.Wrk.Status
		w.Timeout += s.Wrk.Timeout
		w.P50 += s.Wrk.P50 / n
		w.P90 += s.Wrk.P90 / n
		w.P99 += s.Wrk.P99 / n
		w.Max = max(w.Max, s.Wrk.Max)
		m.CPU += s.CPU
		m.RSS = max(m.RSS, s.RSS)
	}
	return m
}

// IdleLoadTable renders the steady load with and without the idle
// connections: throughput, p99 and CPU per request, each with the ratio
// with / without.
func IdleLoadTable(c ConnResults) string {
	var b strings.Builder
	b.WriteString("| target | idle held (still held at the end) | req/s alone → with idle (×) | p99 alone → with idle, ms (×) | CPU µs/req alone → with idle (×) | errors |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|\n")
	ratio := func(alone, with float64) string {
		if alone <= 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f×", with/alone)
	}
	for _, l := range c.IdleLoad {
		a, w := MergeRuns(l.Alone), MergeRuns(l.WithIdle)
		fmt.Fprintf(&b, "| %s | %d (%d) | %s → %s (%s) | %s → %s (%s) | %.1f → %.1f (%s) | %d |\n", l.Label,
			l.Opened.Established, l.Closed.Alive,
			groupDigits(a.Wrk.RPS()), groupDigits(w.Wrk.RPS()), ratio(a.Wrk.RPS(), w.Wrk.RPS()),
			ms(a.Wrk.P99), ms(w.Wrk.P99), ratio(float64(a.Wrk.P99), float64(w.Wrk.P99)),
			a.CPUPerReq(), w.CPUPerReq(), ratio(a.CPUPerReq(), w.CPUPerReq()),
			a.Wrk.Errors()+w.Wrk.Errors())
	}
	return b.String()
}

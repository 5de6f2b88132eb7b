package benchkit

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Results is everything a run reports.
type Results struct {
	Rows []Row
	// Propagation is nil when it was skipped.
	Propagation *Propagation
	Machine     Machine
	// LoadStart and LoadEnd are the load averages before and after.
	LoadStart, LoadEnd string
	Started            time.Time
	Elapsed            time.Duration
	Options            Options
	// Notes are caveats of this run, one sentence each.
	Notes []string
}

// Write writes results.md and results.svg into dir.
func (r Results) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("benchkit: results: %w", err)
	}
	md := filepath.Join(dir, "results.md")
	if err := os.WriteFile(md, []byte(r.Markdown()), 0o644); err != nil {
		return fmt.Errorf("benchkit: results: %w", err)
	}
	svg := filepath.Join(dir, "results.svg")
	title := fmt.Sprintf("zkgate vs direct, nginx, HAProxy, Caddy — %s, %d cores", r.Started.UTC().Format("2006-01-02"), r.Machine.CPUs)
	var charted []Row // the main table's rows
	for _, row := range r.Rows {
		if !row.BothCores {
			charted = append(charted, row)
		}
	}
	if err := os.WriteFile(svg, Chart(charted, title, r.Options.Conns), 0o644); err != nil {
		return fmt.Errorf("benchkit: results: %w", err)
	}
	return nil
}

// Tables renders the throughput tables and the propagation table.
func (r Results) Tables() string {
	var b strings.Builder
	for _, body := range []string{BodySmall, BodyLarge} {
		fmt.Fprintf(&b, "%s\n\n%s\n", BodyTitle(body), Table(r.Rows, body, r.Options.Conns, Reference))
	}
	if r.hasBothCores() {
		for _, body := range []string{BodySmall, BodyLarge} {
			fmt.Fprintf(&b, "Both cores, %s\n\n%s\n", BodyTitle(body), BothCoresTable(r.Rows, BothCoresTargets, body, r.Options.Conns, Reference))
		}
	}
	if r.Propagation != nil {
		fmt.Fprintf(&b, "Discovery propagation\n\n%s", PropagationTable(*r.Propagation))
	}
	for i, n := range r.Notes {
		if i == 0 {
			b.WriteString("\nNotes\n\n")
		}
		fmt.Fprintf(&b, "- %s\n", n)
	}
	return b.String()
}

// hasBothCores reports whether a both-cores target was measured.
func (r Results) hasBothCores() bool {
	for _, row := range r.Rows {
		if row.BothCores {
			return true
		}
	}
	return false
}

// PropagationTable renders p as a Markdown table of milliseconds.
func PropagationTable(p Propagation) string {
	var b strings.Builder
	b.WriteString("| event | n | p50 (ms) | p99 (ms) | min (ms) | max (ms) | of which ZooKeeper write, p50 (ms) |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range []struct {
		name      string
		ds, write []time.Duration
	}{
		{"registration → first request routed to the new member", p.Join, p.JoinWrite},
		{"deregistration → last request routed to the departed member", p.Leave, p.LeaveWrite},
	} {
		xs, ws := nanos(row.ds), nanos(row.write)
		lo, hi := MinMax(xs)
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s |\n", row.name, len(xs),
			msf(Percentile(xs, 50)), msf(Percentile(xs, 99)), msf(lo), msf(hi), msf(Percentile(ws, 50)))
	}
	return b.String()
}

// nanos converts durations to float64 nanoseconds for the statistics.
func nanos(ds []time.Duration) []float64 {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	return xs
}

// msf formats nanoseconds as milliseconds, "–" for NaN.
func msf(ns float64) string {
	if math.IsNaN(ns) {
		return "–"
	}
	return ms(time.Duration(ns))
}

// Markdown renders the whole results page.
func (r Results) Markdown() string {
	o := r.Options
	var b strings.Builder
	b.WriteString("# zkgate benchmark results\n\n")
	fmt.Fprintf(&b, "Produced by `%s` (scripts/bench.sh, harness in internal/benchkit) on %s UTC; the run took %v.\n",
		o.Command, r.Started.UTC().Format("2006-01-02 15:04"), r.Elapsed.Round(time.Second))
	b.WriteString("Numbers from one machine at one time: compare the rows with each other, not with other machines.\n\n")
	b.WriteString("![requests per second and CPU per request of each target](results.svg)\n\n")

	b.WriteString("## Machine\n\n| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| CPU | %d × %s |\n", r.Machine.CPUs, r.Machine.CPUModel)
	fmt.Fprintf(&b, "| kernel | %s |\n", r.Machine.Kernel)
	fmt.Fprintf(&b, "| load average (1, 5, 15 min) before / after | %s / %s |\n", r.LoadStart, r.LoadEnd)
	for _, v := range r.Machine.Versions {
		fmt.Fprintf(&b, "| %s | %s |\n", v.Name, v.Version)
	}

	b.WriteString("\n## Throughput, latency, CPU and memory\n\n")
	fmt.Fprintf(&b, "Each target is measured with the same commands: `wrk -t1 -c%d -d%v --latency` for throughput, "+
		"latency under load, CPU and memory, and `wrk -t1 -c1 -d%v --latency` for latency without queueing; "+
		"%d rounds, each visiting every target and both bodies in turn, starting one target further each round",
		o.Conns, o.Duration, o.LatencyDuration, o.Rounds)
	if o.Warmup > 0 {
		fmt.Fprintf(&b, ", after a %v warm-up run per target and body", o.Warmup)
	}
	b.WriteString(".\n\n")
	b.WriteString("- **req/s**: median over rounds, with the lowest and highest round.\n")
	fmt.Fprintf(&b, "- **× %s**: each round's req/s divided by the direct run's of the same round and body, then the median over rounds, so drift of the machine between rounds cancels.\n", Reference)
	b.WriteString("- **p50 / p99**: wrk's latency percentiles, median over rounds.\n")
	b.WriteString("- **CPU µs/req**: user + system CPU time of the proxy's processes (from /proc/PID/stat, nginx's master and worker summed) during the c=" +
		fmt.Sprint(o.Conns) + " run, divided by the requests it served; median over rounds. For *direct* it is the backend's own cost.\n")
	b.WriteString("- **RSS**: resident memory (VmRSS) of the same processes after a run, the largest seen.\n")
	b.WriteString("- **errors**: wrk's socket errors and non-2xx answers over every run; anything but 0 makes the row suspect.\n\n")
	for _, body := range []string{BodySmall, BodyLarge} {
		fmt.Fprintf(&b, "### %s\n\n%s\n", BodyTitle(body), Table(r.Rows, body, o.Conns, Reference))
	}

	if r.hasBothCores() {
		b.WriteString("### Both cores\n\n")
		b.WriteString("The tables above put one nginx worker and one HAProxy thread against Go processes that may use both cores. " +
			"Here zkgate (default GOMAXPROCS, the same process and runs as above) stands against nginx with `worker_processes 2` and HAProxy with `nbthread 2`, " +
			"measured in the same rounds with the same `wrk -t1 -c" + fmt.Sprint(o.Conns) + "` runs, so the ratios to *direct* are of the same round. " +
			"**cores busy** is CPU µs/req × req/s: how much of the machine's two cores the proxy kept busy; wrk and the backend share the same two cores.\n\n")
		for _, body := range []string{BodySmall, BodyLarge} {
			fmt.Fprintf(&b, "#### Both cores, %s\n\n%s\n", BodyTitle(body), BothCoresTable(r.Rows, BothCoresTargets, body, o.Conns, Reference))
		}
	}

	b.WriteString("### The setup\n\n")
	b.WriteString("- **Backends**: `zkbench backend`, a Go `net/http` server answering a fixed body with precomputed headers, " +
		"registered in ZooKeeper as ephemeral nodes through `discovery.Registrar`. Three run throughout; *direct* and the one-backend targets use the first.\n")
	fmt.Fprintf(&b, "- **Routing, as a user runs it**: every proxy but the bare `ReverseProxy` has a route on `%s` whose prefix is stripped "+
		"(`/echo/16k` reaches the backend as `/16k`) and a route on everything else; wrk asks `%s/` and `%s%s`, *direct* `/` and `%s`.\n",
		RoutePrefix, RoutePrefix, RoutePrefix, LargePath, LargePath)
	b.WriteString("- **zkgate**: `bin/zkgate serve`, routes from ZooKeeper discovery (a real ZooKeeper from Debian's package): `" + RoutePrefix + "` with `strip_prefix: true` " +
		"and a route on `\"\"`, both `round_robin`, the service settings of `configs/gateway.yaml` (active HTTP health checks every 2s, passive ejection, retries on connect failures), " +
		"metrics on, the JSON access log on standard output written to a file, every other key at its default, as in the issue's reference run; one variant with the access log off. Default GOMAXPROCS (every core).\n")
	b.WriteString("- **bare Go httputil.ReverseProxy**: `zkbench reverseproxy`, a `ReverseProxy` with only `SetURL` and a 256-connection keep-alive pool, no routes: " +
		"what any Go proxy pays before routing, balancing, health checks, metrics and logging; zkgate's distance to it is zkgate's own cost.\n")
	b.WriteString("- **nginx**: one worker, `upstream` with `keepalive 64`, `proxy_http_version 1.1`, `location " + RoutePrefix + "/ { proxy_pass http://bench/; }` beside `location /`, " +
		"`Connection` from the WebSocket `map` (`\"\"` for plain requests, so upstream connections are kept alive), access log off.\n")
	b.WriteString("- **HAProxy**: `nbthread 1`, `http-reuse always`, `http-request replace-path ^" + RoutePrefix + "(/.*)$ \\1 if { path_beg " + RoutePrefix + "/ }`, no logging.\n")
	b.WriteString("- **Caddy**: `uri strip_prefix " + RoutePrefix + "` for `" + RoutePrefix + "/*`, then `reverse_proxy` with 64 idle keep-alive connections per upstream, no access log, default GOMAXPROCS.\n")
	b.WriteString("- wrk, the backends and the proxy share the machine's cores, as do other processes of the machine: " +
		"a proxy that uses fewer CPU µs per request leaves more of them to the backend and the client, which is why the CPU column is the fairer comparison " +
		"between a one-worker proxy and a multi-threaded one.\n")
	fmt.Fprintf(&b, "- Raw per-run samples: `%s`.\n\n", filepath.Join(".bench", "run", "samples.csv"))
	if len(r.Notes) > 0 {
		b.WriteString("### Notes on this run\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}

	b.WriteString("## Discovery propagation\n\n")
	if r.Propagation == nil {
		b.WriteString("Skipped in this run (BENCH_PROP_EVENTS=0).\n")
	} else {
		fmt.Fprintf(&b, "A gateway routes `/services/prop` round robin over a permanent member and, one event at a time, a new backend "+
			"(its own port, answering its id). A client polls the gateway in a tight loop over one keep-alive connection. "+
			"*Registration* is timed from the start of the registrar's create to the arrival of the first answer from the new member; "+
			"*deregistration* from the start of the registrar's delete to the arrival of the last answer from the departed member "+
			"(it ends once none came for %v). Both include the ZooKeeper round trips, the watch, zkgate's re-read of the children "+
			"and the balancer update; they are exact to a poll's round trip or two.\n\n", o.PropQuiet)
		b.WriteString(PropagationTable(*r.Propagation))
	}
	return b.String()
}

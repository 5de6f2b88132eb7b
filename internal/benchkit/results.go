package benchkit

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Results is everything a run reports.
type Results struct {
	Rows []Row
	// Pairs are the back-to-back comparisons on both cores; empty when
	// skipped.
	Pairs []PairSummary
	// Propagation is nil when it was skipped.
	Propagation *Propagation
	// Conns is the connection benchmark's outcome, nil when skipped.
	Conns *ConnResults
	// TLS is the TLS section's outcome, nil when skipped.
	TLS *TLSResults
	// Gzip is the compression section's outcome, nil when skipped.
	Gzip *GzipResults
	// GRPC is the gRPC section's outcome, nil when skipped.
	GRPC    *GRPCResults
	Machine Machine
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
		if line := CPUPairsLine(r.Pairs, r.Options.Conns, body); line != "" {
			fmt.Fprintf(&b, "%s\n\n", line)
		}
	}
	if r.hasBothCores() {
		for _, body := range []string{BodySmall, BodyLarge} {
			fmt.Fprintf(&b, "Both cores, %s\n\n%s\n", BodyTitle(body), BothCoresTable(r.Rows, BothCoresTargets, body, r.Options.Conns, Reference))
			if line := PairsLine(r.Pairs, r.Options.Conns, body); line != "" {
				fmt.Fprintf(&b, "%s\n\n", line)
			}
		}
	}
	if c := r.Conns; c != nil {
		fmt.Fprintf(&b, "Memory per held connection (%d connections)\n\n%s\n%s\n", c.Conns, ConnSummaryTable(*c), ConnMemoryTable(*c))
		if rt := ConnRuntimeTable(*c); rt != "" {
			fmt.Fprintf(&b, "zkgate's Go runtime\n\n%s\n", rt)
		}
		fmt.Fprintf(&b, "Steady load beside %d idle connections\n\n%s\n", c.Conns, IdleLoadTable(*c))
	}
	if t := r.TLS; t != nil {
		fmt.Fprintf(&b, "TLS against nginx\n\n%s\n", TLSGoalsTable(*t))
		for _, kind := range TLSKinds {
			fmt.Fprintf(&b, "TLS, %s\n\n%s\n", KindTitle(kind, t.Conns), TLSTable(*t, kind))
		}
	}
	if g := r.Gzip; g != nil {
		fmt.Fprintf(&b, "Compression against nginx\n\n%s\nCompression, every target\n\n%s\n", GzipVsNginxTable(*g), GzipTable(*g))
	}
	if g := r.GRPC; g != nil {
		fmt.Fprintf(&b, "gRPC unary calls\n\n%s\n", GRPCTable(*g))
	}
	if r.Propagation != nil {
		fmt.Fprintf(&b, "Discovery propagation\n\n%s", PropagationTable(*r.Propagation))
	}
	for i, n := range r.allNotes() {
		if i == 0 {
			b.WriteString("\nNotes\n\n")
		}
		fmt.Fprintf(&b, "- %s\n", n)
	}
	return b.String()
}

// allNotes returns the run's notes and the connection benchmark's.
func (r Results) allNotes() []string {
	notes := r.Notes
	if r.Conns != nil {
		notes = append(slices.Clip(notes), r.Conns.Notes...)
	}
	return notes
}

// hasRatePairs reports whether a throughput Pairing was measured back to
// back.
func (r Results) hasRatePairs() bool {
	for _, p := range r.Pairs {
		if !p.CPU {
			return true
		}
	}
	return false
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
		if line := CPUPairsLine(r.Pairs, o.Conns, body); line != "" {
			fmt.Fprintf(&b, "%s\n\n", line)
		}
	}

	if r.hasBothCores() {
		b.WriteString("### Both cores\n\n")
		b.WriteString("The tables above put one nginx worker and one HAProxy thread against Go processes that may use both cores. " +
			"Here zkgate (default GOMAXPROCS, the same processes and runs as above, with its access log and without) stands against nginx with `worker_processes 2` (without an access log and with its default one) and HAProxy with `nbthread 2` (no log), " +
			"measured in the same rounds with the same `wrk -t1 -c" + fmt.Sprint(o.Conns) + "` runs, so the ratios to *direct* are of the same round. " +
			"**cores busy** is CPU µs/req × req/s: how much of the machine's two cores the proxy kept busy; wrk and the backend share the same two cores. " +
			"The last row, **bare Go epoll loop per core** (`zkbench epollproxy`), is the floor of Go built as nginx is: one epoll loop per processor on a locked thread, " +
			"each with its own `SO_REUSEPORT` listener, connections and upstream keep-alive pool, non-blocking reads and writes without the scheduler's system-call bookkeeping and no read past a short one (as nginx reads), " +
			"relaying GETs with `X-Forwarded-For` added and doing nothing else (no routing, balancing, health checks, metrics or logging): what a per-core rewrite of zkgate's fast path could at best approach.")
		if r.hasRatePairs() {
			b.WriteString(" A round visits every target between zkgate's run and nginx's, and the host's speed drifts by more than the difference between close proxies in that time; " +
				"so after the rounds, zkgate and each of them run back to back, one right after the other, in pairs whose order alternates, like for like (logging against logging): " +
				"the **Rate ÷** line under each table gives the median of the pairs' ratios of req/s, pairs with an error or without a request left out " +
				"(raw runs in the order they ran: `.bench/run/pairs.csv`).")
		}
		b.WriteString("\n\n")
		for _, body := range []string{BodySmall, BodyLarge} {
			fmt.Fprintf(&b, "#### Both cores, %s\n\n%s\n", BodyTitle(body), BothCoresTable(r.Rows, BothCoresTargets, body, o.Conns, Reference))
			if line := PairsLine(r.Pairs, o.Conns, body); line != "" {
				fmt.Fprintf(&b, "%s\n\n", line)
			}
		}
	}

	b.WriteString("### The setup\n\n")
	b.WriteString("- **Backends**: `zkbench backend`, a Go `net/http` server answering a fixed body with precomputed headers, " +
		"registered in ZooKeeper as ephemeral nodes through `discovery.Registrar`. Three run throughout; *direct* and the one-backend targets use the first.\n")
	fmt.Fprintf(&b, "- **Routing, as a user runs it**: every proxy but the bare `ReverseProxy` has a route on `%s` whose prefix is stripped "+
		"(`/echo/16k` reaches the backend as `/16k`) and a route on everything else; wrk asks `%s/` and `%s%s`, *direct* `/` and `%s`.\n",
		RoutePrefix, RoutePrefix, RoutePrefix, LargePath, LargePath)
	b.WriteString("- **The same request to the backend**: zkgate adds `X-Forwarded-For`, `X-Forwarded-Host`, `X-Forwarded-Proto` and `X-Real-Ip` to each request it forwards, " +
		"and `X-Forwarded-Prefix` on a route that strips its prefix; nginx, HAProxy and Caddy are set to send the same (`proxy_set_header`, `option forwardfor` and `http-request set-header`, `header_up`), " +
		"as a gateway in front of backends is configured. The five lines cost a Go `net/http` backend about 3 µs of CPU per request, which on two shared cores is throughput; " +
		"runs before 2026-12-07 let nginx and HAProxy send none.\n")
	b.WriteString("- **zkgate**: `bin/zkgate serve`, routes from ZooKeeper discovery (a real ZooKeeper from Debian's package): `" + RoutePrefix + "` with `strip_prefix: true` " +
		"and a route on `\"\"`, both `round_robin`, the service settings of `configs/gateway.yaml` (active HTTP health checks every 2s, passive ejection, retries on connect failures), " +
		"metrics on, the JSON access log on standard output written to a file, every other key at its default, as in the issue's reference run; one variant with the access log off. Default GOMAXPROCS (every core).\n")
	b.WriteString("- **zkgate with policies** (`" + PoliciesTarget + "`): the same zkgate and routes, the `" + RoutePrefix + "` route with `auth: { jwt: { jwks_file, forward_claims: { sub: X-User-ID } } }` " +
		"(an ES256 key and JWKS made at bench time, one token valid for a day), `rate_limit: { average: 1000000, burst: 1000000, key: client_ip }` (never refuses) and " +
		"`cors: { allowed_origins: [\"" + PolicyOrigin + "\"] }`; only its wrk runs send `Authorization: Bearer <token>` and `Origin: " + PolicyOrigin + "`. " +
		"**CPU ÷ plain zkgate** under its table is its CPU µs/req divided by the plain zkgate row's (issue's goal ≤ 1.3×).\n")
	b.WriteString("- **bare Go httputil.ReverseProxy**: `zkbench reverseproxy`, a `ReverseProxy` with only `SetURL` and a 256-connection keep-alive pool, no routes: " +
		"what any Go proxy pays before routing, balancing, health checks, metrics and logging; zkgate's distance to it is zkgate's own cost.\n")
	b.WriteString("- **nginx**: one worker (two for the both-cores table), `upstream` with `keepalive 64`, `proxy_http_version 1.1`, `location " + RoutePrefix + "/ { proxy_pass http://bench/; }` beside `location /`, " +
		"`Connection` from the WebSocket `map` (`\"\"` for plain requests, so upstream connections are kept alive), access log off; " +
		"one variant (`" + NginxLogTarget + "`, and `" + Nginx2LogTarget + "` with two workers) with nginx's default access log (`access_log <file> combined`, a write per request) as zkgate logs each request. " +
		"**CPU ÷ nginx** under the table divides zkgate's CPU µs/req by nginx's like for like: zkgate (access log) by nginx with its access log, zkgate-nolog by nginx without (issue 18's goal ≤ 1.0×); " +
		"the rounds' medians come from runs minutes apart, so the **CPU ÷ nginx, 1 worker, back to back** line below it gives the median over pairs of runs one right after the other, their order alternating.\n")
	b.WriteString("- **HAProxy**: `nbthread 1` (2 for the both-cores table), `http-reuse always`, `http-request replace-path ^" + RoutePrefix + "(/.*)$ \\1 if { path_beg " + RoutePrefix + "/ }`, no logging; " +
		"`maxconn 9000` and the idle server pool's descriptor thresholds raised (`tune.pool-low-fd-ratio 80`, `tune.pool-high-fd-ratio 90`): at their defaults (20%, 25%), " +
		"8,000 held clients make HAProxy stop pooling server connections and connect once per request, which tripled its CPU per request in the steady load beside idle connections.\n")
	b.WriteString("- **Caddy**: `uri strip_prefix " + RoutePrefix + "` for `" + RoutePrefix + "/*`, then `reverse_proxy` with 64 idle keep-alive connections per upstream, no access log, default GOMAXPROCS.\n")
	b.WriteString("- **Against the issue's reference run** (zkgate as a user runs it, measured apart from `make bench`): the bench's zkgate had one route on `\"\"`, " +
		"so its requests needed no route choice and no prefix stripping; it now has the user's `" + RoutePrefix + "` route with `strip_prefix` beside the route on `\"\"`, and every other key at its default " +
		"(`log.format` was pinned to `json`, the default `auto` writes the same JSON to a file). What did not differ: GOMAXPROCS (the default, every core, in both), " +
		"the access log's destination (standard output to a regular file in both; here opened O_APPEND and truncated before each run) and the log writer. " +
		"The configuration file is in a directory of its own, apart from the logs, as a user keeps it: zkgate watches that directory for edits, and a log written into it would wake the watch with every write. " +
		"An A/B run of the two route layouts side by side (static discovery, 3 × `wrk -c64 -d5s` each, on a busy machine) showed no difference beyond the noise between runs.\n")
	b.WriteString("- wrk, the backends and the proxy share the machine's cores, as do other processes of the machine: " +
		"a proxy that uses fewer CPU µs per request leaves more of them to the backend and the client, which is why the CPU column is the fairer comparison " +
		"between a one-worker proxy and a multi-threaded one.\n")
	fmt.Fprintf(&b, "- Raw per-run samples: `%s`.\n\n", filepath.Join(".bench", "run", "samples.csv"))
	if notes := r.allNotes(); len(notes) > 0 {
		b.WriteString("### Notes on this run\n\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}

	r.connMarkdown(&b)
	r.tlsMarkdown(&b)
	r.gzipMarkdown(&b)
	r.grpcMarkdown(&b)

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

// connMarkdown writes the connection benchmark's section.
func (r Results) connMarkdown(b *strings.Builder) {
	o := r.Options
	b.WriteString("## Held connections\n\n")
	c := r.Conns
	if c == nil {
		b.WriteString("Skipped in this run (BENCH_HELD_CONNS=0).\n\n")
		return
	}
	var labels []string
	for _, m := range c.Memory {
		if !slices.Contains(labels, m.Label) {
			labels = append(labels, m.Label)
		}
	}
	fmt.Fprintf(b, "A client process of its own (`zkbench hold`, so that its %d descriptors are not the harness's) opens %d connections to the proxy, "+
		"32 at a time, and holds them; the same Go backend as above answers behind each proxy (%s), through the `%s` route. "+
		"Each proxy is restarted before each kind, so both start from a fresh process.\n\n", c.Conns, c.Conns, strings.Join(labels, "; "), RoutePrefix)
	fmt.Fprintf(b, "- **idle**: each connection sends `GET %s/`, reads the whole answer (a 200 that keeps the connection alive), then stays open and silent.\n", RoutePrefix)
	fmt.Fprintf(b, "- **upgraded**: each sends a WebSocket handshake (`GET %s/ws`, `Upgrade: websocket`, `Connection: Upgrade`, `Sec-WebSocket-Key`, version 13) "+
		"and checks the backend's `101` and its `Sec-WebSocket-Accept` through the proxy; every 100th sends one masked frame and reads it back (the backend echoes), "+
		"proving the tunnel. The proxy then holds two sockets per connection, the client's and the backend's: the figure counts both.\n", RoutePrefix)
	fmt.Fprintf(b, "- **RSS**: VmRSS summed over the proxy's processes (nginx's master and worker), read every %v until two reads differ by less than 1%% "+
		"(at most %v; *still moving* marks a value that had not settled), before the connections are opened and once all are held. "+
		"**per connection** is (after − before) / connections held. **descriptors** count `/proc/PID/fd` entries: about N more for idle connections, 2N for upgraded ones, "+
		"and N more in the backend, show that the connections are really held; **still held at the close** is the holder's non-blocking check, "+
		"just before closing, that the proxy had not closed them.\n\n", settleEvery, settleBound)
	fmt.Fprintf(b, "### Memory per held connection\n\n%s\n%s\n", ConnSummaryTable(*c), ConnMemoryTable(*c))
	if rt := ConnRuntimeTable(*c); rt != "" {
		b.WriteString("### What a held connection costs zkgate, by the Go runtime's accounting\n\n")
		b.WriteString("From zkgate's own `/metrics` (the Go collector), read with the RSS before and after: goroutines, " +
			"`go_memstats_stack_inuse_bytes` (goroutine stacks) and `go_memstats_heap_inuse_bytes` (heap spans in use: buffers, connection state, " +
			"net/http's and the runtime's objects, and garbage not yet collected). The last column is the RSS growth minus both: " +
			"positive, runtime metadata and memory freed but not yet returned to the system; negative, heap spans in use whose pages were never written " +
			"(a fresh span comes zeroed from the system, so a large buffer allocated but only partly filled, such as a 32 KiB copy buffer, is mostly not resident). " +
			"The kernel's socket memory is in no process's RSS.\n\n")
		b.WriteString(rt + "\n")
	}
	fmt.Fprintf(b, "### Steady load beside %d idle connections\n\n", c.Conns)
	fmt.Fprintf(b, "On the process of the idle measurement: `wrk -t1 -c%d -d%v --latency` on the 13-byte body through `%s/`, four runs in the order "+
		"alone, with idle, with idle, alone, so that a drift of the machine weighs on both sides alike; *with idle* runs while the holder holds %d idle connections "+
		"opened as above (the holder is started and all its connections established before the first, and closes them after the second). "+
		"req/s and CPU µs/req are over both runs of a side (CPU as in the throughput tables), p99 the mean of both runs'; × is with idle / alone "+
		"(the issue's target: p99 and CPU within 1.10×).\n\n",
		o.Conns, o.Duration, RoutePrefix, c.Conns)
	b.WriteString(IdleLoadTable(*c) + "\n")
}

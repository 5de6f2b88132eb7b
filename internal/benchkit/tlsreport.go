package benchkit

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"
)

// The TLS section's measurements.
const (
	// KindHTTPS is HTTPS keep-alive: wrk over TLS, Conns connections.
	KindHTTPS = "https"
	// KindHandshake is a new TLS connection per request: h2load --h1 with
	// as many clients as requests (HandshakeBurst), repeated.
	KindHandshake = "handshake"
	// KindH2 is HTTP/2 by ALPN: h2load, H2Clients connections of
	// H2Streams concurrent streams.
	KindH2 = "h2"
)

// TLSKinds lists the measurements in report order.
var TLSKinds = []string{KindHTTPS, KindHandshake, KindH2}

// The shape of the TLS measurements.
const (
	// HandshakeBurst is the number of connections of one h2load run of
	// KindHandshake, each sending one request: below the listen backlog of
	// every target (4096).
	HandshakeBurst = 1000
	// H2Clients and H2Streams are KindH2's h2load -c and -m: 64 streams on
	// 4 connections.
	H2Clients, H2Streams = 4, 16
)

// NginxTLS is the TLS target the others are compared with.
const NginxTLS = "nginx-tls"

// TLSTargets lists the TLS section's targets in report order; the
// reference of KindHTTPS, direct plain HTTP, is measured beside them.
var TLSTargets = []TargetInfo{
	{Name: "zkgate-tls", Label: "zkgate, TLS entry point"},
	{Name: NginxTLS, Label: "nginx, 1 worker, listen ssl http2"},
	{Name: "nginx-tls-2", Label: "nginx, 2 workers, listen ssl http2", BothCores: true},
	{Name: "zkgate-tls-go", Label: "zkgate, TLS entry point, http2_server: go (net/http's HTTP/2 server)"},
}

// TLSSample is one run of the TLS section.
type TLSSample struct {
	Round        int
	Target, Kind string
	// Requests are the requests answered 2xx (for KindHandshake, each on
	// a connection of its own: handshakes); Errors every other outcome.
	Requests, Errors int64
	// Duration is the load generator's measured time.
	Duration time.Duration
	// CPU is the CPU time the target's processes used during the run.
	CPU time.Duration
	// P50 and P99 are wrk's latencies (KindHTTPS only).
	P50, P99 time.Duration
	// Protocol is what h2load reports of the TLS connection.
	Protocol string
}

// Rate returns requests (handshakes) per second.
func (s TLSSample) Rate() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Requests) / s.Duration.Seconds()
}

// CPUPerReq returns CPU µs per request; NaN without a request.
func (s TLSSample) CPUPerReq() float64 {
	if s.Requests <= 0 {
		return math.NaN()
	}
	return float64(s.CPU.Microseconds()) / float64(s.Requests)
}

// TLSRow summarizes one target's samples of one kind.
type TLSRow struct {
	TargetInfo
	Kind   string
	Rounds int
	// Rate is the median requests (handshakes) per second over rounds,
	// RateMin and RateMax the extremes.
	Rate, RateMin, RateMax float64
	// VsDirect is the median over rounds of Rate divided by the plain
	// direct run's of the same round (KindHTTPS); NaN otherwise.
	VsDirect float64
	// VsNginx and CPUVsNginx are the medians over rounds of Rate and
	// CPUPerReq divided by NginxTLS's of the same round and kind; NaN for
	// the reference and NginxTLS itself.
	VsNginx, CPUVsNginx float64
	// CPUPerReq is the median CPU µs per request over rounds.
	CPUPerReq float64
	// P50 and P99 are the medians of wrk's latencies (KindHTTPS).
	P50, P99 time.Duration
	Errors   int64
}

// TLSResults is the TLS section's outcome.
type TLSResults struct {
	Rows []TLSRow
	// Protocols maps a kind to what h2load reported of its connections to
	// zkgate and nginx ("TLSv1.3 TLS_AES_128_GCM_SHA256 X25519 h2"),
	// every distinct value joined.
	Protocols map[string]string
	// Rounds, Conns and Duration are the run's shape.
	Rounds, Conns int
	Duration      time.Duration
}

// SummarizeTLS turns samples into one row per kind and target, kinds in
// TLSKinds order, targets in the order given; reference names the plain
// direct target, measured for KindHTTPS only.
func SummarizeTLS(samples []TLSSample, targets []TargetInfo, reference string) []TLSRow {
	runs := indexRuns(samples)
	var rows []TLSRow
	for _, kind := range TLSKinds {
		for _, t := range targets {
			sum, ok := runs.summarize(t.Name, kind, reference, kind, NginxTLS)
			if !ok {
				continue
			}
			rows = append(rows, TLSRow{TargetInfo: t, Kind: kind, Rounds: sum.rounds, Rate: sum.rate, RateMin: sum.rateMin, RateMax: sum.rateMax,
				VsDirect: sum.vsDirect, VsNginx: sum.vsNginx, CPUVsNginx: sum.cpuVsNx, CPUPerReq: sum.cpuPerReq,
				P50: sum.p50, P99: sum.p99, Errors: sum.errors})
		}
	}
	return rows
}

func (s TLSSample) runKey() runKey                      { return runKey{s.Target, s.Kind, s.Round} }
func (s TLSSample) rate() float64                       { return s.Rate() }
func (s TLSSample) latencies() (p50, p99 time.Duration) { return s.P50, s.P99 }
func (s TLSSample) errorCount() int64                   { return s.Errors }
func (r TLSRow) rowKey() (target, measure string)       { return r.Name, r.Kind }

// KindTitle describes a kind in tables.
func KindTitle(kind string, conns int) string {
	switch kind {
	case KindHTTPS:
		return fmt.Sprintf("HTTPS keep-alive (wrk -c%d)", conns)
	case KindHandshake:
		return "new TLS connection per request (full handshake)"
	case KindH2:
		return fmt.Sprintf("HTTP/2 (h2load -c%d -m%d)", H2Clients, H2Streams)
	}
	return kind
}

// rateUnit names what a kind's rate counts.
func rateUnit(kind string) string {
	if kind == KindHandshake {
		return "handshakes/s"
	}
	return "req/s"
}

// tlsGoals are the goals for zkgate against nginx with one worker.
var tlsGoals = map[string]struct {
	cpu  bool    // the goal is on CPU per request (at most), else on the rate (at least)
	goal float64 // the ratio
}{
	KindHTTPS:     {cpu: true, goal: 1.2},
	KindHandshake: {goal: 0.8},
	KindH2:        {goal: 0.8},
}

// TLSGoalsTable renders zkgate against nginx, one line per kind: rate and
// CPU per request of each, the same-round ratios, and the goal
// with whether this run met it.
func TLSGoalsTable(res TLSResults) string {
	var b strings.Builder
	b.WriteString("| measurement | zkgate rate | nginx, 1 worker | nginx, 2 workers | zkgate ÷ nginx (1 worker), rate | zkgate CPU µs/req | nginx CPU µs/req (1 worker) | zkgate ÷ nginx, CPU | goal | met |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, kind := range TLSKinds {
		z, ok := findRow(res.Rows, "zkgate-tls", kind)
		if !ok {
			continue
		}
		rate := func(name string) string {
			r, ok := findRow(res.Rows, name, kind)
			return rateCell(ok, r.Rate, rateUnit(kind), r.VsDirect)
		}
		n, _ := findRow(res.Rows, NginxTLS, kind)
		g := tlsGoals[kind]
		goal, got := fmt.Sprintf("rate ≥ %.1f× nginx's", g.goal), z.VsNginx
		met := !math.IsNaN(got) && got >= g.goal
		if g.cpu {
			goal, got = fmt.Sprintf("CPU ≤ %.1f× nginx's", g.goal), z.CPUVsNginx
			met = !math.IsNaN(got) && got <= g.goal
		}
		verdict := "no"
		switch {
		case math.IsNaN(got):
			verdict = "–"
		case met:
			verdict = "yes"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", KindTitle(kind, res.Conns),
			rate("zkgate-tls"), rate(NginxTLS), rate("nginx-tls-2"), ratio(z.VsNginx),
			oneDecimal(z.CPUPerReq), oneDecimal(n.CPUPerReq), ratio(z.CPUVsNginx), goal, verdict)
	}
	return b.String()
}

// TLSTable renders every row of one kind: rate, its ratios, latency
// (KindHTTPS), CPU per request, the cores the target kept busy, errors.
func TLSTable(res TLSResults, kind string) string {
	var b strings.Builder
	unit := rateUnit(kind)
	fmt.Fprintf(&b, "| target | %s median (min–max) | × direct plain HTTP (same round) | × nginx, 1 worker (same round) | p50 / p99 (ms) | CPU µs per %s | cores busy | errors |\n",
		unit, strings.TrimSuffix(strings.TrimSuffix(unit, "/s"), "s"))
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range res.Rows {
		if r.Kind != kind {
			continue
		}
		lat := "–"
		if kind == KindHTTPS {
			lat = ms(r.P50) + " / " + ms(r.P99)
		}
		fmt.Fprintf(&b, "| %s | %s (%s–%s) | %s | %s | %s | %s | %s | %d |\n", r.Label, groupDigits(r.Rate), groupDigits(r.RateMin),
			groupDigits(r.RateMax), ratio(r.VsDirect), ratio(r.VsNginx), lat, oneDecimal(r.CPUPerReq), coresBusy(r.CPUPerReq, r.Rate), r.Errors)
	}
	return b.String()
}

// ratio formats a ratio as "0.93×", "–" for NaN.
func ratio(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", x)
}

// oneDecimal formats x with one decimal, "–" for NaN.
func oneDecimal(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%.1f", x)
}

// tlsMarkdown writes the TLS section of results.md.
func (r Results) tlsMarkdown(b *strings.Builder) {
	t := r.TLS
	if !sectionHeading(b, "TLS", t != nil, "TLS") {
		return
	}
	b.WriteString("zkgate's TLS entry point (`entry_points.websecure.tls` with one certificate, every other key at its default: TLS 1.2 and 1.3, " +
		"HTTP/2 by ALPN beside HTTP/1.1; HTTP/1.1 served by the fast path, HTTP/2 by zkgate's own server, and by net/http's in the row `http2_server: go`) and nginx " +
		"(`listen ... ssl http2 backlog=4096`, `ssl_protocols TLSv1.2 TLSv1.3`, `keepalive_requests 1000000` as Go sets no such limit, with one worker and with two), " +
		"both serving the same certificate, an ECDSA P-256 key and a self-signed certificate for 127.0.0.1 made by the harness at the start of the run " +
		"(Go's crypto/x509, in `.bench/run/tls`, never committed), both in front of the first backend over plain HTTP/1.1 keep-alive, " +
		"through the same `" + RoutePrefix + "` route as above (neither with an access log: the main table measures that). " +
		"Session caches and tickets keep each server's defaults.\n\n")
	fmt.Fprintf(b, "%d rounds, each visiting every target and measurement in turn, starting one further each round, after the warm-up; CPU µs per request "+
		"as in the tables above (user + system time of the target's processes over the run, divided by the requests it answered); medians over rounds, "+
		"and every ratio is the median of the same round's ratios.\n\n", t.Rounds)
	fmt.Fprintf(b, "- **%s**: `wrk -t1 -c%d -d%v --latency` on `https://…%s/` (wrk offers no ALPN: HTTP/1.1), against the backend reached directly over plain HTTP "+
		"(`http://…/`, *direct*, the ratio's reference) in the same round.\n", KindTitle(KindHTTPS, t.Conns), t.Conns, t.Duration, RoutePrefix)
	fmt.Fprintf(b, "- **%s**: `h2load -t1 -n%d -c%d --h1 https://…%s/` again and again for %v: %d connections opened at once, each with a TLS session of its own "+
		"(a full TLS 1.3 handshake with ECDHE and an ECDSA P-256 signature), one HTTP/1.1 request, then closed; handshakes/s is the answered requests over the "+
		"sum of h2load's measured times. Neither wrk with `Connection: close` nor h2load's reconnecting clients will do: they resume their TLS session on "+
		"every new connection (a Go server counted 99%% of them resumed), which skips the signature. A test (`TestHandshakesAreFullHandshakes`) "+
		"checks that every request of this measurement came on a new connection that did not resume a session. "+
		"h2load does the client's half of every handshake on one thread: when neither server keeps a core busy, the client is the limit, "+
		"and CPU µs per handshake is the sharper comparison.\n",
		KindTitle(KindHandshake, t.Conns), HandshakeBurst, HandshakeBurst, RoutePrefix, t.Duration, HandshakeBurst)
	fmt.Fprintf(b, "- **%s**: `h2load -t1 -c%d -m%d -D %d https://…%s/`: %d streams at a time on %d connections, HTTP/2 chosen by ALPN.\n",
		KindTitle(KindH2, t.Conns), H2Clients, H2Streams, int(t.Duration/time.Second), RoutePrefix, H2Clients*H2Streams, H2Clients)
	for _, kind := range []string{KindHandshake, KindH2} {
		if p := t.Protocols[kind]; p != "" {
			fmt.Fprintf(b, "- Negotiated (h2load's report), %s: %s.\n", KindTitle(kind, t.Conns), p)
		}
	}
	b.WriteString("- **cores busy** is CPU µs per request × rate: how much of the two cores the target kept busy; wrk or h2load and the backend share them.\n")
	fmt.Fprintf(b, "- Raw per-run samples: `%s`.\n\n", filepath.Join(".bench", "run", "tls-samples.csv"))
	b.WriteString("### TLS against nginx\n\n")
	b.WriteString(TLSGoalsTable(*t) + "\n")
	for _, kind := range TLSKinds {
		fmt.Fprintf(b, "### TLS, %s\n\n%s\n", KindTitle(kind, t.Conns), TLSTable(*t, kind))
	}
}

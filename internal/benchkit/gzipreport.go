package benchkit

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"
)

// The compression section's encodings: what the wrk runs ask for.
const (
	// EncodingGzip sends Accept-Encoding: gzip; the proxies compress.
	EncodingGzip = "gzip"
	// EncodingIdentity sends no Accept-Encoding; the answer passes as the
	// backend sent it, through the same processes and route.
	EncodingIdentity = "identity"
)

// GzipEncodings lists the encodings in report order.
var GzipEncodings = []string{EncodingGzip, EncodingIdentity}

// The compression section's targets compared.
const (
	// ZkgateGzip is zkgate with compress on its route (ZkgateGzipConfig).
	ZkgateGzip = "zkgate-gzip"
	// NginxGzip is nginx with one worker and gzip on (NginxGzipConfig),
	// the target the others are compared with.
	NginxGzip = "nginx-gzip"
)

// DefaultGzipLevel is the compression level of both proxies unless
// Options.GzipLevel says otherwise: zkgate's default level, and nginx's
// gzip_comp_level set to it.
const DefaultGzipLevel = 5

// GzipTargets lists the compression section's targets in report order; the
// backend reached directly, uncompressed, is measured beside them. Their
// labels get the level at run time.
var GzipTargets = []TargetInfo{
	{Name: ZkgateGzip, Label: "zkgate, route with compress"},
	{Name: NginxGzip, Label: "nginx, 1 worker, gzip on"},
	{Name: "nginx-gzip-2", Label: "nginx, 2 workers, gzip on", BothCores: true},
}

// GzipKey names a target's measurement at one encoding.
type GzipKey struct{ Target, Encoding string }

// GzipSample is one wrk run of the compression section.
type GzipSample struct {
	Round            int
	Target, Encoding string
	Wrk              WrkResult
	// CPU is the CPU time the target's processes used during the run.
	CPU time.Duration
}

// CPUPerReq returns CPU µs per request; NaN without a request.
func (s GzipSample) CPUPerReq() float64 {
	if s.Wrk.Requests <= 0 {
		return math.NaN()
	}
	return float64(s.CPU.Microseconds()) / float64(s.Wrk.Requests)
}

// WireBytes returns the bytes wrk read per answer (status line, headers,
// chunk framing and body); NaN without a request.
func (s GzipSample) WireBytes() float64 {
	if s.Wrk.Requests <= 0 {
		return math.NaN()
	}
	return float64(s.Wrk.Bytes) / float64(s.Wrk.Requests)
}

// GzipRow summarizes one target's samples at one encoding.
type GzipRow struct {
	TargetInfo
	Encoding string
	Rounds   int
	// RPS is the median requests per second over rounds, RPSMin and
	// RPSMax the extremes.
	RPS, RPSMin, RPSMax float64
	// VsDirect is the median over rounds of RPS divided by the reference's
	// (uncompressed) of the same round; NaN for the reference.
	VsDirect float64
	// VsNginx and CPUVsNginx are the medians over rounds of RPS and
	// CPUPerReq divided by NginxGzip's of the same round and encoding; NaN
	// for the reference and NginxGzip itself.
	VsNginx, CPUVsNginx float64
	// CPUPerReq is the median CPU µs per request over rounds.
	CPUPerReq float64
	// P50 and P99 are the medians of wrk's latencies.
	P50, P99 time.Duration
	// Bytes is the body of one answer as the client received it (before
	// decompression), measured before the rounds; WireBytes the median over
	// rounds of wrk's bytes read per answer.
	Bytes     int64
	WireBytes float64
	Errors    int64
}

// GzipResults is the compression section's outcome.
type GzipResults struct {
	Rows []GzipRow
	// Level is both proxies' compression level.
	Level int
	// Rounds, Conns and Duration are the run's shape.
	Rounds, Conns int
	Duration      time.Duration
}

// SummarizeGzip turns samples into one row per encoding and target,
// encodings in GzipEncodings order, targets in the order given; reference
// names the direct target, measured uncompressed only; bodies gives each
// row's answer size.
func SummarizeGzip(samples []GzipSample, targets []TargetInfo, reference string, bodies map[GzipKey]int64) []GzipRow {
	runs := indexRuns(samples)
	var rows []GzipRow
	for _, enc := range GzipEncodings {
		for _, t := range targets {
			sum, ok := runs.summarize(t.Name, enc, reference, EncodingIdentity, NginxGzip)
			if !ok {
				continue
			}
			r := GzipRow{TargetInfo: t, Encoding: enc, Rounds: sum.rounds, RPS: sum.rate, RPSMin: sum.rateMin, RPSMax: sum.rateMax,
				VsDirect: sum.vsDirect, VsNginx: sum.vsNginx, CPUVsNginx: sum.cpuVsNx, CPUPerReq: sum.cpuPerReq,
				P50: sum.p50, P99: sum.p99, Bytes: bodies[GzipKey{t.Name, enc}], WireBytes: math.NaN(), Errors: sum.errors}
			var wire []float64
			for _, s := range samples {
				if w := s.WireBytes(); s.Target == t.Name && s.Encoding == enc && !math.IsNaN(w) {
					wire = append(wire, w)
				}
			}
			if len(wire) > 0 {
				r.WireBytes = Median(wire)
			}
			rows = append(rows, r)
		}
	}
	return rows
}

func (s GzipSample) runKey() runKey                      { return runKey{s.Target, s.Encoding, s.Round} }
func (s GzipSample) rate() float64                       { return s.Wrk.RPS() }
func (s GzipSample) latencies() (p50, p99 time.Duration) { return s.Wrk.P50, s.Wrk.P99 }
func (s GzipSample) errorCount() int64                   { return s.Wrk.Errors() }
func (r GzipRow) rowKey() (target, measure string)       { return r.Name, r.Encoding }

// EncodingTitle describes an encoding's measurement in tables.
func EncodingTitle(enc string, level int) string {
	if enc == EncodingGzip {
		return fmt.Sprintf("gzip, level %d (Accept-Encoding: gzip)", level)
	}
	return "uncompressed (no Accept-Encoding)"
}

// GzipVsNginxTable renders zkgate against nginx, one line per encoding:
// requests/s and CPU per request of each, the same-round ratios zkgate ÷
// nginx (one worker), and the bytes of one answer's body each sent.
func GzipVsNginxTable(res GzipResults) string {
	var b strings.Builder
	b.WriteString("| 64 KiB JSON answer | zkgate req/s | nginx, 1 worker | nginx, 2 workers | zkgate ÷ nginx (1 worker), req/s | zkgate CPU µs/req | nginx CPU µs/req (1 worker) | zkgate ÷ nginx, CPU | body bytes per answer, zkgate / nginx |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, enc := range GzipEncodings {
		z, ok := findRow(res.Rows, ZkgateGzip, enc)
		if !ok {
			continue
		}
		rate := func(name string) string {
			r, ok := findRow(res.Rows, name, enc)
			return rateCell(ok, r.RPS, "", r.VsDirect)
		}
		n, nok := findRow(res.Rows, NginxGzip, enc)
		nginxBytes, nginxCPU := "–", math.NaN()
		if nok {
			nginxBytes, nginxCPU = groupDigits(float64(n.Bytes)), n.CPUPerReq
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n", EncodingTitle(enc, res.Level),
			rate(ZkgateGzip), rate(NginxGzip), rate("nginx-gzip-2"), ratio(z.VsNginx),
			oneDecimal(z.CPUPerReq), oneDecimal(nginxCPU), ratio(z.CPUVsNginx), groupDigits(float64(z.Bytes)), nginxBytes)
	}
	return b.String()
}

// GzipTable renders every row: requests/s, its ratios, latency, CPU per
// request, the cores the target kept busy, bytes per answer, errors.
func GzipTable(res GzipResults) string {
	var b strings.Builder
	b.WriteString("| target | measurement | req/s median (min–max) | × direct uncompressed (same round) | × nginx, 1 worker (same round) | p50 / p99 (ms) | CPU µs/req | cores busy | body bytes per answer | bytes read per answer (wrk) | errors |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range res.Rows {
		wire := "–"
		if !math.IsNaN(r.WireBytes) {
			wire = groupDigits(r.WireBytes)
		}
		fmt.Fprintf(&b, "| %s | %s | %s (%s–%s) | %s | %s | %s / %s | %s | %s | %s | %s | %d |\n", r.Label, EncodingTitle(r.Encoding, res.Level),
			groupDigits(r.RPS), groupDigits(r.RPSMin), groupDigits(r.RPSMax), ratio(r.VsDirect), ratio(r.VsNginx), ms(r.P50), ms(r.P99),
			oneDecimal(r.CPUPerReq), coresBusy(r.CPUPerReq, r.RPS), groupDigits(float64(r.Bytes)), wire, r.Errors)
	}
	return b.String()
}

// gzipMarkdown writes the compression section of results.md.
func (r Results) gzipMarkdown(b *strings.Builder) {
	g := r.Gzip
	if !sectionHeading(b, "Compression", g != nil, "compression") {
		return
	}
	fmt.Fprintf(b, "The backend's 64 KiB JSON answer (`GET %s%s`: a paginated list of user records, `application/json` with a `Content-Length`) "+
		"through zkgate with `compress: { enabled: true, min_bytes: 1024, level: %d }` on the `%s` route "+
		"(klauspost/compress's gzip; default GOMAXPROCS, every core, as the main zkgate target; no access log on either proxy, as the main table measures that) and through nginx with `gzip on; gzip_comp_level %d; "+
		"gzip_types application/json; gzip_min_length 1024; gzip_proxied any; gzip_vary on;` (zlib; one worker and two, `keepalive 64` upstream, as the nginx target above), "+
		"both in front of the first backend over plain HTTP/1.1 keep-alive. The same level is not the same work: klauspost/compress and zlib "+
		"trade speed for size differently at each level, which the body bytes show.\n\n", RoutePrefix, JSONPath, g.Level, RoutePrefix, g.Level)
	fmt.Fprintf(b, "- **%s**: `wrk -t1 -c%d -d%v --latency -H 'Accept-Encoding: gzip'`: both proxies compress every answer "+
		"(chunked, without `Content-Length`); wrk reads the compressed bytes and does not decompress them.\n", EncodingTitle(EncodingGzip, g.Level), g.Conns, g.Duration)
	fmt.Fprintf(b, "- **%s**: the same wrk command without the header, through the same processes and route: the answer passes as the backend sent it, "+
		"so the difference between the two lines of a proxy is what compressing costs it. *direct* is the backend reached without a proxy, "+
		"the reference of **× direct** for both measurements.\n", EncodingTitle(EncodingIdentity, g.Level))
	b.WriteString("- Before the rounds, each target's answer is checked with one request of each kind: with `Accept-Encoding: gzip`, " +
		"`Content-Encoding: gzip` and a gzip stream that decompresses to the backend's body byte for byte; without, the body itself. " +
		"**body bytes per answer** is that answer's body as received; **bytes read per answer** is wrk's count over the run divided by its answers " +
		"(status line, headers and chunk framing included): a run whose gzip answers were not smaller than the body fails the benchmark.\n")
	fmt.Fprintf(b, "- %d rounds, each visiting every target and measurement in turn, starting one further each round, after the warm-up; "+
		"CPU µs per request as in the tables above (user + system time of the target's processes over the run, divided by the requests it answered; "+
		"nginx's master and workers summed); medians over rounds, and every ratio is the median of the same round's ratios. "+
		"**cores busy** is CPU µs per request × req/s; wrk and the backend share the same two cores.\n", g.Rounds)
	fmt.Fprintf(b, "- Raw per-run samples: `%s`.\n\n", filepath.Join(".bench", "run", "gzip-samples.csv"))
	b.WriteString("### Compression against nginx\n\n")
	b.WriteString(GzipVsNginxTable(*g) + "\n")
	b.WriteString("### Compression, every target\n\n")
	b.WriteString(GzipTable(*g) + "\n")
}

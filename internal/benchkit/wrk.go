package benchkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// wrkScript makes wrk print one machine-readable line at the end of a run,
// with exact counts and latencies in microseconds, instead of the rounded
// text report. Defining only done() keeps wrk on its fast path (no Lua per
// request or response).
const wrkScript = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("ZKBENCH requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
`

// WriteWrkScript writes the reporting script wrk runs with to path.
func WriteWrkScript(path string) error {
	if err := os.WriteFile(path, []byte(wrkScript), 0o644); err != nil {
		return fmt.Errorf("benchkit: write wrk script: %w", err)
	}
	return nil
}

// WrkOptions describe one wrk run.
type WrkOptions struct {
	// Bin is the wrk executable. Default "wrk".
	Bin string
	// Script is the path of the file WriteWrkScript wrote. Required.
	Script string
	// URL is the target. Required.
	URL string
	// Threads and Conns are wrk's -t and -c. Defaults 1 and 64.
	Threads, Conns int
	// Duration is wrk's -d, rounded down to whole seconds (at least 1).
	Duration time.Duration
	// Headers are added to every request ("Name: value", wrk's -H).
	Headers []string
}

// Args returns wrk's command line for o, without the executable.
func (o WrkOptions) Args() []string {
	threads, conns := max(o.Threads, 1), o.Conns
	if conns <= 0 {
		conns = 64
	}
	conns = max(conns, threads) // wrk wants at least one connection per thread
	secs := max(int(o.Duration/time.Second), 1)
	args := []string{
		"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(secs) + "s",
		"--latency", "-s", o.Script,
	}
	for _, h := range o.Headers {
		args = append(args, "-H", h)
	}
	return append(args, o.URL)
}

// WrkResult is what one wrk run measured.
type WrkResult struct {
	Requests int64
	Duration time.Duration
	Bytes    int64
	// Errors counts socket errors (connect, read, write, timeout) and
	// non-2xx/3xx answers (Status).
	Connect, Read, Write, Status, Timeout int64
	P50, P90, P99, Max                    time.Duration
}

// RPS returns requests per second.
func (r WrkResult) RPS() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Duration.Seconds()
}

// Errors returns the total of every kind of error.
func (r WrkResult) Errors() int64 {
	return r.Connect + r.Read + r.Write + r.Status + r.Timeout
}

// RunWrk runs wrk and returns its measurements. The run is bounded by its
// duration plus a margin, and by ctx.
func RunWrk(ctx context.Context, o WrkOptions) (WrkResult, error) {
	if o.Script == "" || o.URL == "" {
		return WrkResult{}, errors.New("benchkit: wrk: script and URL are required")
	}
	bin := o.Bin
	if bin == "" {
		bin = "wrk"
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, o.Args()...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return WrkResult{}, fmt.Errorf("benchkit: wrk %s: %w (stderr: %s)", strings.Join(o.Args(), " "), err, strings.TrimSpace(stderr.String()))
	}
	r, err := ParseWrk(stdout.String())
	if err != nil {
		return WrkResult{}, fmt.Errorf("benchkit: wrk %s: %w", o.URL, err)
	}
	return r, nil
}

// ParseWrk extracts the ZKBENCH line that wrkScript prints from wrk's output.
func ParseWrk(out string) (WrkResult, error) {
	var line string
	for l := range strings.SplitSeq(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "ZKBENCH "); ok {
			line = rest
		}
	}
	if line == "" {
		return WrkResult{}, fmt.Errorf("no ZKBENCH line in wrk output (was it run with the script?): %q", truncate(out, 300))
	}
	var r WrkResult
	ints := map[string]*int64{
		"requests": &r.Requests, "bytes": &r.Bytes, "connect": &r.Connect, "read": &r.Read,
		"write": &r.Write, "status": &r.Status, "timeout": &r.Timeout,
	}
	durs := map[string]*time.Duration{
		"duration_us": &r.Duration, "p50_us": &r.P50, "p90_us": &r.P90, "p99_us": &r.P99, "max_us": &r.Max,
	}
	seen := 0
	for _, kv := range strings.Fields(line) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return WrkResult{}, fmt.Errorf("wrk result field %q: want key=value", kv)
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return WrkResult{}, fmt.Errorf("wrk result field %s: %q is not a non-negative integer", k, v)
		}
		switch {
		case ints[k] != nil:
			*ints[k] = n
		case durs[k] != nil:
			*durs[k] = time.Duration(n) * time.Microsecond
		default:
			return WrkResult{}, fmt.Errorf("wrk result field %q: unknown", k)
		}
		seen++
	}
	if want := len(ints) + len(durs); seen != want {
		return WrkResult{}, fmt.Errorf("wrk result line has %d fields, want %d: %q", seen, want, line)
	}
	if r.Duration <= 0 {
		return WrkResult{}, fmt.Errorf("wrk result: duration is 0: %q", line)
	}
	return r, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

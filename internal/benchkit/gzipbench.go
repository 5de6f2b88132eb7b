package benchkit

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Port offsets of the compression section from Options.BasePort.
const (
	offZkgateGzip = 30 // web, then admin
	offNginxGzip  = 32
	offNginxGzip2 = 33 // offZkgateTLSGo (tlsbench.go) follows
)

// gzipSelected reports whether the compression section runs: every target
// when Options.Only is empty, else when it names a compression target.
func (h *harness) gzipSelected() bool {
	return slices.ContainsFunc(GzipTargets, func(t TargetInfo) bool { return h.named(t.Name) })
}

// gzipSection starts zkgate with compression on its route and nginx with
// gzip on, in front of the first backend, checks that each compresses the
// JSON body (and passes it through to a client that does not accept gzip),
// measures them in interleaved rounds beside the backend reached directly,
// and stops them.
func (h *harness) gzipSection(ctx context.Context) (*GzipResults, error) {
	o := h.o
	one := []string{h.addr(offBackends)}
	direct := &target{TargetInfo: TargetInfo{Name: Reference, Label: "direct (no proxy)"}, url: "http://" + one[0], proc: h.backend[0]}
	targets, stop, err := h.startSection(direct, GzipTargets, RoutePrefix, func(t *target) error {
		switch t.Name {
		case ZkgateGzip:
			t.Label = fmt.Sprintf("zkgate, compress level %d", o.GzipLevel)
			text := ZkgateGzipConfig(h.port(offZkgateGzip), h.port(offZkgateGzip+1), h.port(offZooKeeper), "/services/bench1", o.GzipLevel, false)
			return h.startZkgateWith(ctx, t, offZkgateGzip, text, false)
		case NginxGzip:
			t.Label = fmt.Sprintf("nginx, 1 worker, gzip_comp_level %d", o.GzipLevel)
			return h.startNginxGzip(t, offNginxGzip, 1, one)
		case "nginx-gzip-2":
			t.Label = fmt.Sprintf("nginx, 2 workers, gzip_comp_level %d", o.GzipLevel)
			return h.startNginxGzip(t, offNginxGzip2, 2, one)
		}
		return fmt.Errorf("benchkit: no way to start compression target %q", t.Name)
	})
	defer stop()
	if err != nil {
		return nil, err
	}
	bodies := make(map[GzipKey]int64)
	for _, t := range targets {
		url := t.url + t.prefix + JSONPath
		if err := WaitFor(ctx, 30*time.Second, t.Label+" at "+url+" to answer the JSON body", func() (bool, error) {
			if err := t.proc.Err(); err != nil {
				return false, err
			}
			_, err := GzipGet(url, false)
			return err == nil, nil
		}); err != nil {
			return nil, err
		}
		for _, enc := range gzipEncodings(t) {
			a, err := GzipGet(url, enc == EncodingGzip)
			if err != nil {
				return nil, fmt.Errorf("benchkit: %s: %w", t.Label, err)
			}
			bodies[GzipKey{t.Name, enc}] = a.Bytes
		}
		h.say("%-38s %s  pids %v  JSON body %s", t.Label, url, t.pids(), describeBodies(bodies, t.Name))
	}
	samples, err := h.measureGzip(ctx, targets)
	if err != nil {
		return nil, err
	}
	if err := writeGzipSamples(filepath.Join(h.run, "gzip-samples.csv"), samples); err != nil {
		return nil, err
	}
	return &GzipResults{Rows: SummarizeGzip(samples, targetInfos(targets), Reference, bodies), Level: o.GzipLevel,
		Rounds: o.Rounds, Conns: o.Conns, Duration: o.Duration}, nil
}

// describeBodies says what the JSON body measured for target at each
// encoding: "65,536 bytes as is, 12,071 gzipped".
func describeBodies(bodies map[GzipKey]int64, target string) string {
	var parts []string
	for _, enc := range GzipEncodings {
		if n, ok := bodies[GzipKey{target, enc}]; ok {
			parts = append(parts, fmt.Sprintf("%s bytes %s", groupDigits(float64(n)), map[string]string{EncodingGzip: "gzipped", EncodingIdentity: "as is"}[enc]))
		}
	}
	return strings.Join(parts, ", ")
}

// gzipEncodings lists the encodings t is measured with: the reference,
// which never compresses, only EncodingIdentity.
func gzipEncodings(t *target) []string {
	if t.Name == Reference {
		return []string{EncodingIdentity}
	}
	return GzipEncodings
}

// startNginxGzip runs nginx with NginxGzipConfig, workers worker
// processes, on port offset off.
func (h *harness) startNginxGzip(t *target, off, workers int, upstreams []string) error {
	return h.startNginxWith(t, off, "http", func(dir string) string {
		return NginxGzipConfig(dir, h.port(off), workers, upstreams, h.o.GzipLevel)
	})
}

// GzipAnswer is what GzipGet received.
type GzipAnswer struct {
	// Encoding is the answer's Content-Encoding, Vary its Vary.
	Encoding, Vary string
	// Bytes is the length of the body as it came, before decompression.
	Bytes int64
}

// GzipGet sends one GET of url on a new connection, with Accept-Encoding:
// gzip when gzipped (else without Accept-Encoding), and checks the answer:
// 200; when gzipped, Content-Encoding gzip and a gzip stream smaller than
// the JSON body that decompresses to it; else no Content-Encoding and the
// JSON body itself.
func GzipGet(url string, gzipped bool) (GzipAnswer, error) {
	tr := &http.Transport{DisableCompression: true, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return GzipAnswer{}, err
	}
	what := "GET " + url + " without Accept-Encoding"
	if gzipped {
		req.Header.Set("Accept-Encoding", "gzip")
		what = "GET " + url + " with Accept-Encoding: gzip"
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return GzipAnswer{}, fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return GzipAnswer{}, fmt.Errorf("%s: read the body: %w", what, err)
	}
	a := GzipAnswer{Encoding: resp.Header.Get("Content-Encoding"), Vary: resp.Header.Get("Vary"), Bytes: int64(len(raw))}
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("%s: status %d, want 200", what, resp.StatusCode)
	}
	body := raw
	switch {
	case gzipped && a.Encoding != EncodingGzip:
		return a, fmt.Errorf("%s: Content-Encoding %q (%d bytes), want gzip", what, a.Encoding, len(raw))
	case gzipped:
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err == nil {
			body, err = io.ReadAll(zr)
		}
		if err != nil {
			return a, fmt.Errorf("%s: the %d bytes do not decompress: %w", what, len(raw), err)
		}
		if len(raw) >= JSONSize {
			return a, fmt.Errorf("%s: %d gzipped bytes, not fewer than the %d of the body", what, len(raw), JSONSize)
		}
	case a.Encoding != "":
		return a, fmt.Errorf("%s: Content-Encoding %q, want none", what, a.Encoding)
	}
	if !bytes.Equal(body, jsonBody) {
		return a, fmt.Errorf("%s: %d bytes (decoded) differ from the backend's %d-byte JSON body", what, len(body), JSONSize)
	}
	return a, nil
}

// measureGzip runs the warm-up, then Rounds rounds; each round visits every
// target (starting one further each round) and runs each of its encodings
// (starting one further each round) with wrk at Conns connections.
func (h *harness) measureGzip(ctx context.Context, targets []*target) ([]GzipSample, error) {
	o := h.o
	runs := 0
	for _, t := range targets {
		runs += len(gzipEncodings(t))
	}
	return measureRounds(ctx, h, targets, rounds[GzipSample]{
		warmup: fmt.Sprintf("compression warm-up: %v per target and encoding", o.Warmup),
		announce: fmt.Sprintf("compression: %d rounds of %d runs (wrk -t1 -c%d -d%v on …%s, with and without Accept-Encoding: gzip): about %v",
			o.Rounds, runs, o.Conns, o.Duration, JSONPath, time.Duration(o.Rounds*runs)*o.Duration.Truncate(time.Second)),
		measures: gzipEncodings,
		once:     h.measureGzipOnce,
		progress: func(round int, t *target, enc string, s GzipSample) {
			fmt.Fprintf(o.Progress, "    round %d/%d  %-38s %-8s %8.0f req/s  cpu %6s µs/req  %7.0f bytes/answer  errors %d\n",
				round+1, o.Rounds, t.Label, enc, s.Wrk.RPS(), oneDecimal(s.CPUPerReq()), s.WireBytes(), s.Wrk.Errors())
		},
	})
}

// measureGzipOnce runs wrk once against t's JSON path for d, with
// Accept-Encoding: gzip for EncodingGzip, and samples its processes' CPU
// time before and after. A gzip run whose answers averaged the JSON body's
// size or more on the wire was not compressed: an error.
func (h *harness) measureGzipOnce(ctx context.Context, t *target, enc string, d time.Duration, round int) (GzipSample, error) {
	var headers []string
	if enc == EncodingGzip {
		headers = []string{"Accept-Encoding: gzip"}
	}
	cpu, err := beginRun(t)
	if err != nil {
		return GzipSample{}, err
	}
	res, err := RunWrk(ctx, WrkOptions{Bin: h.tools["wrk"], Script: h.script, URL: t.url + t.prefix + JSONPath,
		Threads: 1, Conns: h.o.Conns, Duration: d, Headers: headers})
	if err != nil {
		return GzipSample{}, err
	}
	used, err := cpu()
	if err != nil {
		return GzipSample{}, err
	}
	s := GzipSample{Round: round, Target: t.Name, Encoding: enc, Wrk: res, CPU: used}
	if enc == EncodingGzip && res.Requests > 0 && s.WireBytes() >= JSONSize {
		return s, fmt.Errorf("benchkit: %s with Accept-Encoding: gzip: %.0f bytes per answer on the wire, not fewer than the %d-byte body: not compressed under load",
			t.Label, s.WireBytes(), JSONSize)
	}
	return s, nil
}

// writeGzipSamples writes every compression sample as CSV.
func writeGzipSamples(path string, samples []GzipSample) error {
	return writeSamplesCSV(path, "compression", "round,target,encoding,requests,seconds,rps,errors,cpu_us,p50_us,p99_us,bytes", samples, func(s GzipSample) string {
		return fmt.Sprintf("%d,%s,%s,%d,%.3f,%.1f,%d,%d,%d,%d,%d", s.Round+1, s.Target, s.Encoding, s.Wrk.Requests, s.Wrk.Duration.Seconds(),
			s.Wrk.RPS(), s.Wrk.Errors(), s.CPU.Microseconds(), s.Wrk.P50.Microseconds(), s.Wrk.P99.Microseconds(), s.Wrk.Bytes)
	})
}

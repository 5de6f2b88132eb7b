package benchkit

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/app"
	"github.com/zkgate/zkgate/internal/config"
	"github.com/zkgate/zkgate/internal/zktest"
)

func TestNginxGzipConfig(t *testing.T) {
	dir := t.TempDir()
	text := NginxGzipConfig(dir, 19132, 1, upstreams, 7)
	mustContain(t, "nginx.conf", text, "worker_processes 1;", "listen 127.0.0.1:19132;", "gzip on;", "gzip_comp_level 7;",
		"gzip_types application/json;", "gzip_min_length 1024;", "gzip_proxied any;", "gzip_vary on;",
		"keepalive 64;", "proxy_http_version 1.1;", "location /echo/ {\n"+nginxProxyHeaders+"            proxy_set_header X-Forwarded-Prefix /echo;\n            proxy_pass http://bench/;", "access_log off;")
	if strings.Contains(NginxConfig(dir, 19120, 1, upstreams), "gzip") {
		t.Error("the plain configuration mentions gzip")
	}
	nginxAccepts(t, dir, text)
}

// The compression target's configuration loads and builds as `zkgate
// validate` builds it, with compress on the RoutePrefix route only and
// everything else as the plain zkgate target's.
func TestZkgateGzipConfigLoads(t *testing.T) {
	text := ZkgateGzipConfig(19130, 19131, 19100, "/services/bench1", 7, false) // as the section runs it
	cfg, err := config.Parse([]byte(text), "zkgate compression bench config")
	if err != nil {
		t.Fatalf("the generated configuration does not load: %v\n%s", err, text)
	}
	plain, err := config.Parse([]byte(ZkgateConfig(19130, 19131, 19100, "/services/bench1", false, true)), "plain")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Routes) != 2 {
		t.Fatalf("routes = %+v, want /echo and the rest", cfg.Routes)
	}
	echo, rest := cfg.Routes[0], cfg.Routes[1]
	if c := echo.Compress; c == nil || *c != (config.Compress{Enabled: true, MinBytes: 1024, Level: 7}) {
		t.Errorf("echo compress = %+v, want enabled, min_bytes 1024, level 7", c)
	}
	if rest.Compress != nil {
		t.Errorf("the route on \"\" compresses: %+v", rest.Compress)
	}
	echo.Compress = nil
	if !reflect.DeepEqual(echo, plain.Routes[0]) || !reflect.DeepEqual(rest, plain.Routes[1]) || !reflect.DeepEqual(cfg.EntryPoints, plain.EntryPoints) ||
		!reflect.DeepEqual(cfg.Services, plain.Services) || cfg.Log != plain.Log {
		t.Errorf("without compress the configuration differs from the plain zkgate target's:\n%+v\n%+v", cfg, plain)
	}
	file := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := app.Main([]string{"validate", "--config", file}, &stdout, &stderr); code != 0 {
		t.Fatalf("zkgate validate: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}

// GzipGet refuses every answer the harness must not measure: not
// compressed when asked, compressed when not asked, a broken gzip stream,
// a stream of another body, a failed status.
func TestGzipGetRejects(t *testing.T) {
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(b)
		_ = zw.Close()
		return buf.Bytes()
	}
	good := gz(jsonBody)
	other := gz(append(JSONBody()[:JSONSize-2], ' ', ' '))
	for _, tc := range []struct {
		name    string
		gzipped bool
		handler http.HandlerFunc
		want    string
	}{
		{"plain when gzip asked", true, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(jsonBody) }, `Content-Encoding "" (65536 bytes), want gzip`},
		{"gzip when not asked", false, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(good)
		}, `Content-Encoding "gzip", want none`},
		{"broken stream", true, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(good[:len(good)/2])
		}, "do not decompress"},
		{"another body", true, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(other)
		}, "differ from the backend's 65536-byte JSON body"},
		{"status", false, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }, "status 502"},
	} {
		srv := httptest.NewServer(tc.handler)
		_, err := GzipGet(srv.URL+JSONPath, tc.gzipped)
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") == "gzip" {
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(good)
			return
		}
		_, _ = w.Write(jsonBody)
	}))
	defer srv.Close()
	for _, gzipped := range []bool{true, false} {
		a, err := GzipGet(srv.URL, gzipped)
		if want := map[bool]int{true: len(good), false: JSONSize}[gzipped]; err != nil || a.Bytes != int64(want) {
			t.Errorf("GzipGet(gzipped %v) of a correct server: %+v, %v; want %d bytes", gzipped, a, err, want)
		}
	}
}

// Both proxies, as the harness configures them, compress the JSON body
// (Content-Encoding: gzip, Vary: Accept-Encoding, a stream that
// decompresses to the body) to sizes of the same order, pass it through
// as it is without Accept-Encoding, and keep doing so under a wrk load:
// nginx as a process, zkgate in process with the backend registered in a
// real ZooKeeper.
func TestGzipTargetsCompress(t *testing.T) {
	nginx := tool(t, "nginx")
	wrk := tool(t, "wrk")
	level := DefaultGzipLevel
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	nginxPort := zktest.FreePort(t)
	cfg := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cfg, []byte(NginxGzipConfig(dir, nginxPort, 1, freeBackend(t), level)), 0o644); err != nil {
		t.Fatal(err)
	}
	startProxy(t, "nginx", nginxPort, nil, nginx, "-p", dir, "-c", cfg, "-e", "stderr", "-g", "daemon off;")

	zkgatePort := zktest.FreePort(t)
	ctx, gatewayDone := serveZkgate(t, func(admin, zkPort int) string {
		return ZkgateGzipConfig(zkgatePort, admin, zkPort, "/services/bench1", level, false) // no access log in the test's output
	})
	urls := map[string]string{
		"nginx":  fmt.Sprintf("http://127.0.0.1:%d%s%s", nginxPort, RoutePrefix, JSONPath),
		"zkgate": fmt.Sprintf("http://127.0.0.1:%d%s%s", zkgatePort, RoutePrefix, JSONPath),
	}
	err := WaitFor(ctx, 30*time.Second, "zkgate to answer the JSON body", func() (bool, error) {
		if err := exited(gatewayDone); err != nil {
			return false, err
		}
		_, err := GzipGet(urls["zkgate"], false)
		return err == nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{}
	for _, name := range []string{"nginx", "zkgate"} {
		a, err := GzipGet(urls[name], true)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.Contains(a.Vary, "Accept-Encoding") {
			t.Errorf("%s: gzipped answer with Vary %q, want Accept-Encoding", name, a.Vary)
		}
		sizes[name] = a.Bytes
		if a, err := GzipGet(urls[name], false); err != nil || a.Bytes != JSONSize {
			t.Errorf("%s without Accept-Encoding: %+v, %v; want the %d-byte body as it is", name, a, err, JSONSize)
		}
		lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		res, err := RunWrk(lctx, WrkOptions{Bin: wrk, Script: writeScript(t), URL: urls[name], Conns: 8, Duration: time.Second,
			Headers: []string{"Accept-Encoding: gzip"}})
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		s := GzipSample{Wrk: res}
		if res.Requests < 10 || res.Errors() != 0 || s.WireBytes() > float64(a.Bytes+1024) {
			t.Errorf("%s under wrk -c8 with Accept-Encoding: gzip: %d requests, %d errors, %.0f bytes read per answer; want no error and about %d bytes",
				name, res.Requests, res.Errors(), s.WireBytes(), a.Bytes)
		}
		if _, err := GzipGet(urls[name], true); err != nil {
			t.Errorf("%s after the load: %v", name, err)
		}
	}
	t.Logf("the %d-byte JSON body gzipped at level %d: nginx %d bytes, zkgate %d bytes", JSONSize, level, sizes["nginx"], sizes["zkgate"])
	if r := float64(sizes["zkgate"]) / float64(sizes["nginx"]); r < 0.5 || r > 2 {
		t.Errorf("zkgate's gzipped body is %.2f× nginx's (%d and %d bytes); want the same order (0.5× to 2×)", r, sizes["zkgate"], sizes["nginx"])
	}
}

// writeScript writes wrk's reporting script into the test's directory.
func writeScript(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.lua")
	if err := WriteWrkScript(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSummarizeGzip(t *testing.T) {
	targets := []TargetInfo{{Name: Reference, Label: "direct"}, GzipTargets[0], GzipTargets[1], GzipTargets[2]}
	var samples []GzipSample
	add := func(round int, target, enc string, requests int64, cpuMs int64, bytesPer int64) {
		samples = append(samples, GzipSample{Round: round, Target: target, Encoding: enc, CPU: time.Duration(cpuMs) * time.Millisecond,
			Wrk: WrkResult{Requests: requests, Duration: time.Second, Bytes: requests * bytesPer, P50: time.Duration(round+1) * time.Millisecond}})
	}
	for round, scale := range []int64{1, 2, 4} { // the machine doubles its speed each round: ratios stay
		add(round, Reference, EncodingIdentity, 20000*scale, 200*scale, 65700)
		add(round, ZkgateGzip, EncodingGzip, 2000*scale, 800*scale, 12300)      // 400 µs/req, 0.1× direct
		add(round, NginxGzip, EncodingGzip, 2500*scale, 750*scale, 12200)       // 300 µs/req
		add(round, "nginx-gzip-2", EncodingGzip, 4000*scale, 1400*scale, 12200) // 350 µs/req
		add(round, ZkgateGzip, EncodingIdentity, 10000*scale, 500*scale, 65800) // 50 µs/req
		add(round, NginxGzip, EncodingIdentity, 12500*scale, 500*scale, 65750)  // 40 µs/req
		add(round, "nginx-gzip-2", EncodingIdentity, 15000*scale, 600*scale, 65750)
	}
	samples[1].Wrk.Status = 2
	bodies := map[GzipKey]int64{{Reference, EncodingIdentity}: JSONSize, {ZkgateGzip, EncodingGzip}: 12071, {NginxGzip, EncodingGzip}: 11900,
		{"nginx-gzip-2", EncodingGzip}: 11900, {ZkgateGzip, EncodingIdentity}: JSONSize, {NginxGzip, EncodingIdentity}: JSONSize, {"nginx-gzip-2", EncodingIdentity}: JSONSize}
	rows := SummarizeGzip(samples, targets, Reference, bodies)
	if len(rows) != 3+4 {
		t.Fatalf("%d rows, want 7 (3 gzip, 4 uncompressed with direct): %+v", len(rows), rows)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	z := rows[0]
	if z.Name != ZkgateGzip || z.Encoding != EncodingGzip || z.RPS != 4000 || z.RPSMin != 2000 || z.RPSMax != 8000 || z.Rounds != 3 || z.Errors != 2 ||
		z.Bytes != 12071 || !near(z.WireBytes, 12300) || z.P50 != 2*time.Millisecond {
		t.Errorf("zkgate gzip row %+v", z)
	}
	if !near(z.VsDirect, 0.1) || !near(z.VsNginx, 0.8) || !near(z.CPUPerReq, 400) || !near(z.CPUVsNginx, 400.0/300) {
		t.Errorf("zkgate gzip ratios: direct %v, nginx %v, CPU %v µs (%v× nginx); want 0.1, 0.8, 400, 1.33", z.VsDirect, z.VsNginx, z.CPUPerReq, z.CPUVsNginx)
	}
	if n := rows[1]; n.Name != NginxGzip || !math.IsNaN(n.VsNginx) || !math.IsNaN(n.CPUVsNginx) || !near(n.VsDirect, 0.125) {
		t.Errorf("nginx gzip row %+v: want no ratio to itself, 0.125× direct", n)
	}
	if d := rows[3]; d.Name != Reference || d.Encoding != EncodingIdentity || !math.IsNaN(d.VsDirect) || !math.IsNaN(d.VsNginx) || d.Bytes != JSONSize {
		t.Errorf("direct row %+v: want uncompressed, no ratios", d)
	}
	if zi := rows[4]; zi.Name != ZkgateGzip || zi.Encoding != EncodingIdentity || !near(zi.VsNginx, 0.8) || !near(zi.CPUVsNginx, 1.25) || !near(zi.VsDirect, 0.5) {
		t.Errorf("zkgate uncompressed row %+v: want 0.8× nginx's rate, 1.25× its CPU, 0.5× direct", zi)
	}

	res := GzipResults{Rows: rows, Level: 5, Conns: 64, Rounds: 3, Duration: 5 * time.Second}
	vs := GzipVsNginxTable(res)
	for _, want := range []string{
		"| gzip, level 5 (Accept-Encoding: gzip) | 4,000 (0.10× direct) | 5,000 (0.12× direct) | 8,000 (0.20× direct) | 0.80× | 400.0 | 300.0 | 1.33× | 12,071 / 11,900 |",
		"| uncompressed (no Accept-Encoding) | 20,000 (0.50× direct) | 25,000 (0.62× direct) | 30,000 (0.75× direct) | 0.80× | 50.0 | 40.0 | 1.25× | 65,536 / 65,536 |",
	} {
		if !strings.Contains(vs, want) {
			t.Errorf("zkgate against nginx lacks\n%s\nin\n%s", want, vs)
		}
	}
	mustContain(t, "every target", GzipTable(res), "| target | measurement | req/s median (min–max) |",
		"| zkgate, route with compress | gzip, level 5 (Accept-Encoding: gzip) | 4,000 (2,000–8,000) | 0.10× | 0.80× | 2.00 / 0.00 | 400.0 | 1.60 | 12,071 | 12,300 | 2 |",
		"| direct | uncompressed (no Accept-Encoding) | 40,000 (20,000–80,000) | – | – |")
}

// results.md carries the compression section, its zkgate-against-nginx
// table first under the heading scripts/readme-bench.sh copies
// (BENCH-GZIP), and says when the section was skipped.
func TestResultsGzipSection(t *testing.T) {
	rows := SummarizeGzip([]GzipSample{
		{Target: Reference, Encoding: EncodingIdentity, Wrk: WrkResult{Requests: 300, Duration: time.Second}, CPU: 3 * time.Millisecond},
		{Target: ZkgateGzip, Encoding: EncodingGzip, Wrk: WrkResult{Requests: 100, Duration: time.Second}, CPU: 40 * time.Millisecond},
		{Target: NginxGzip, Encoding: EncodingGzip, Wrk: WrkResult{Requests: 100, Duration: time.Second}, CPU: 30 * time.Millisecond},
	}, []TargetInfo{{Name: Reference, Label: "direct"}, GzipTargets[0], GzipTargets[1]}, Reference,
		map[GzipKey]int64{{ZkgateGzip, EncodingGzip}: 12000, {NginxGzip, EncodingGzip}: 11000})
	r := Results{Options: Options{Command: "make bench", Conns: 64, Rounds: 3, Duration: 5 * time.Second, LatencyDuration: 3 * time.Second},
		Gzip: &GzipResults{Rows: rows, Level: 5, Conns: 64, Rounds: 3, Duration: 5 * time.Second}}
	md := r.Markdown()
	mustContain(t, "results.md", md, "## Compression\n", "### Compression against nginx\n\n| 64 KiB JSON answer |",
		"| gzip, level 5 (Accept-Encoding: gzip) | 100 (0.33× direct) | 100 (0.33× direct) | – | 1.00× | 400.0 | 300.0 | 1.33× | 12,000 / 11,000 |",
		"`compress: { enabled: true, min_bytes: 1024, level: 5 }`", "`gzip on; gzip_comp_level 5; gzip_types application/json; gzip_min_length 1024; gzip_proxied any; gzip_vary on;`",
		"`wrk -t1 -c64 -d5s --latency -H 'Accept-Encoding: gzip'`", "`GET /echo/64k.json`",
		"### Compression, every target\n\n| target |")
	if i, j := strings.Index(md, "## Compression\n"), strings.Index(md, "## Discovery propagation"); i < 0 || j < i || i < strings.Index(md, "## TLS\n") {
		t.Errorf("the compression section is not between TLS and discovery propagation")
	}
	readme, err := os.ReadFile("../../scripts/readme-bench.sh")
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, "readme-bench.sh", string(readme), `("BENCH-GZIP", "### Compression against nginx")`)
	mustContain(t, "tables", r.Tables(), "Compression against nginx\n\n| 64 KiB JSON answer |")
	r.Gzip = nil
	mustContain(t, "results.md without compression", r.Markdown(), "## Compression\n\nSkipped in this run (BENCH_TARGETS named no compression target).")
}

// BENCH_TARGETS selects sections by their targets: compression targets
// alone run that section alone, and a plain target alone skips it.
func TestGzipSectionSelection(t *testing.T) {
	for _, tc := range []struct {
		only            []string
		main, tls, gzip bool
	}{
		{nil, true, true, true},
		{[]string{ZkgateGzip, NginxGzip}, false, false, true},
		{[]string{"nginx-gzip-2"}, false, false, true},
		{[]string{"zkgate"}, true, false, false},
		{[]string{"zkgate-tls", ZkgateGzip}, false, true, true},
	} {
		h := &harness{o: Options{Only: tc.only}}
		if h.mainSelected() != tc.main || h.tlsSelected() != tc.tls || h.gzipSelected() != tc.gzip {
			t.Errorf("only %v: main %v, TLS %v, compression %v; want %v, %v, %v", tc.only, h.mainSelected(), h.tlsSelected(), h.gzipSelected(),
				tc.main, tc.tls, tc.gzip)
		}
	}
	if _, err := (Options{Root: "/r", Self: "x", Only: []string{ZkgateGzip, NginxGzip, "nginx-gzip-2"}}).withDefaults(); err != nil {
		t.Errorf("the compression targets are refused: %v", err)
	}
	for _, level := range []int{-1, 10} {
		_, err := (Options{Root: "/r", Self: "x", GzipLevel: level}).withDefaults()
		if want := fmt.Sprintf("compression level %d: want 1 (fastest) to 9", level); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("level %d: %v, want an error containing %q", level, err, want)
		}
	}
	if o, err := (Options{Root: "/r", Self: "x"}).withDefaults(); err != nil || o.GzipLevel != DefaultGzipLevel || DefaultGzipLevel != 5 {
		t.Errorf("default level: %d, %v; want 5, zkgate's default", o.GzipLevel, err)
	}
}

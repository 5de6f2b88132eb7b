package benchkit

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/zkgate/zkgate/internal/config"
	echobackend "github.com/zkgate/zkgate/internal/echo"
	"github.com/zkgate/zkgate/internal/loadgen"
	"github.com/zkgate/zkgate/internal/zktest"
)

// The test binary stands in for zkbench when RunGRPCLoad runs it as
// "SELF grpcload ...": the same GRPCLoad zkbench's main calls.
func TestMain(m *testing.M) {
	if os.Getenv("BENCHKIT_TEST_AS_ZKBENCH") == "1" && len(os.Args) > 1 && os.Args[1] == "grpcload" {
		if err := GRPCLoad(context.Background(), os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// grpcServer serves echo's gRPC TestService as instance id on a loopback
// port until the test ends, and returns its address.
func grpcServer(t *testing.T, id string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := echobackend.NewGRPCServer(id)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

func TestNginxGRPCConfig(t *testing.T) {
	dir := t.TempDir()
	text := NginxGRPCConfig(dir, 19139, 1, []string{"127.0.0.1:19136"})
	mustContain(t, "nginx.conf", text, "worker_processes 1;", "listen 127.0.0.1:19139 http2;", "grpc_pass grpc://grpcbench;",
		"server 127.0.0.1:19136;", "keepalive 64;", "access_log off;",
		"grpc_set_header X-Forwarded-For $remote_addr;", "grpc_set_header X-Real-IP $remote_addr;")
	if n := strings.Count(text, "keepalive_requests 1000000;"); n != 2 {
		t.Errorf("keepalive_requests 1000000 set %d times, want on the server and the upstream", n)
	}
	nginxAccepts(t, dir, text)
}

// nginx with NginxGRPCConfig passes gRPC calls to a real gRPC server, more
// than nginx's default 1000 on one client connection: at the default nginx
// ends the connection with a GOAWAY, which grpc-go answers by dialling
// again without failing a call, so the test counts the client's dials.
func TestNginxGRPCConfigProxies(t *testing.T) {
	nginx := tool(t, "nginx")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	port := zktest.FreePort(t)
	cfg := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cfg, []byte(NginxGRPCConfig(dir, port, 1, []string{grpcServer(t, "g-1")})), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := StartProc(ProcSpec{Name: "nginx", Argv: []string{nginx, "-p", dir, "-c", cfg, "-e", "stderr", "-g", "daemon off;"},
		Log: filepath.Join(dir, "nginx.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(10 * time.Second) })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := WaitFor(ctx, 20*time.Second, "nginx to pass a gRPC call", func() (bool, error) {
		id, err := GRPCCall(ctx, addr)
		return err == nil && id == "g-1", p.Err()
	}); err != nil {
		log, _ := os.ReadFile(p.LogPath)
		t.Fatalf("%v\n%s", err, log)
	}
	var dials atomic.Int32
	dialer := func(ctx context.Context, a string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, "tcp", a)
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(dialer))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := testpb.NewTestServiceClient(cc)
	for i := range 1100 {
		if _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
			t.Fatalf("call %d on one connection: %v", i+1, err)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("1100 calls took %d client connections, want one (nginx ended the first)", n)
	}
}

func TestZkgateGRPCConfigLoads(t *testing.T) {
	text := ZkgateGRPCConfig(19137, 19138, 19100, GRPCPath, false)
	cfg, err := config.Parse([]byte(text), "zkgate gRPC bench config")
	if err != nil {
		t.Fatalf("the generated configuration does not load: %v\n%s", err, text)
	}
	ep, ok := cfg.EntryPoints["grpc"]
	if len(cfg.EntryPoints) != 1 || !ok || ep.Address != "127.0.0.1:19137" || ep.HTTP2 != "h2c" {
		t.Fatalf("entry points %+v, want grpc alone on 127.0.0.1:19137 with http2 h2c", cfg.EntryPoints)
	}
	svc, ok := cfg.Services["grpc"]
	if !ok || svc.Upstream.Protocol != "h2c" || svc.HealthCheck.Active.Type != "tcp" {
		t.Fatalf("service grpc %+v, want an h2c upstream probed by TCP", svc)
	}
	if len(cfg.Routes) != 1 || cfg.Routes[0].Service != "grpc" || cfg.Routes[0].Match.PathPrefix != "" ||
		cfg.Admin.Address != "127.0.0.1:19138" || cfg.Log.AccessLog.Enabled {
		t.Errorf("routes %+v, admin %q, access log %v (want off, as the section runs it)", cfg.Routes, cfg.Admin.Address, cfg.Log.AccessLog.Enabled)
	}
}

// zkgate with ZkgateGRPCConfig, in process, routes gRPC calls to a gRPC
// backend (`zkbench backend --grpc`'s RunBackend) registered in a real
// ZooKeeper, and RunGRPCLoad measures them through a process of its own.
func TestZkgateGRPCConfigRoutes(t *testing.T) {
	port := zktest.FreePort(t)
	ctx, gatewayDone := serveZkgateOver(t, BackendOptions{ID: GRPCBackendID, Paths: []string{GRPCPath}, GRPC: true},
		func(admin, zkPort int) string { return ZkgateGRPCConfig(port, admin, zkPort, GRPCPath, false) })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := WaitFor(ctx, 30*time.Second, "zkgate to pass a gRPC call", func() (bool, error) {
		if err := exited(gatewayDone); err != nil {
			return false, err
		}
		id, err := GRPCCall(ctx, addr)
		return err == nil && id == GRPCBackendID, nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BENCHKIT_TEST_AS_ZKBENCH", "1")
	res, err := RunGRPCLoad(ctx, os.Args[0], addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK == 0 || res.Failed != 0 || res.ByInstance[GRPCBackendID] != res.OK || res.Callers != GRPCCallers || res.Conns != GRPCConns ||
		res.P50 <= 0 || res.P99 < res.P50 || res.CallsPerSecond <= 0 {
		t.Errorf("grpcload through zkgate: %+v; want only calls answered by %s, with latencies", res, GRPCBackendID)
	}
}

// RunGRPCLoad reports a load generator that could not run as an error
// naming what it said.
func TestRunGRPCLoadFails(t *testing.T) {
	t.Setenv("BENCHKIT_TEST_AS_ZKBENCH", "1")
	_, err := RunGRPCLoad(context.Background(), os.Args[0], "192.0.2.1:1", time.Second)
	if err == nil || !strings.Contains(err.Error(), "only loopback targets are allowed") {
		t.Fatalf("grpcload to a non-loopback address: %v, want loadgen's refusal", err)
	}
}

func TestSummarizeGRPC(t *testing.T) {
	targets := []TargetInfo{{Name: Reference, Label: "direct"}, GRPCTargets[0], GRPCTargets[1]}
	var samples []GRPCSample
	add := func(round int, target string, ok, failed int, cpuMs int64) {
		samples = append(samples, GRPCSample{Round: round, Target: target, CPU: time.Duration(cpuMs) * time.Millisecond,
			Load: loadgen.GRPCResult{OK: ok, Failed: failed, CallsPerSecond: float64(ok), P50: time.Duration(ok) * time.Nanosecond, P99: 2 * time.Millisecond}})
	}
	for round, scale := range []int{1, 2, 4} { // the machine doubles its speed each round: ratios stay
		add(round, Reference, 20000*scale, 0, 800)
		add(round, ZkgateGRPC, 8000*scale, round, 960*int64(scale)) // 120 µs per call, 0.4× direct
		add(round, NginxGRPC, 10000*scale, 0, 500*int64(scale))     // 50 µs per call
	}
	rows := SummarizeGRPC(samples, targets, Reference)
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3: %+v", len(rows), rows)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	z := rows[1]
	if z.Name != ZkgateGRPC || z.Rate != 16000 || z.RateMin != 8000 || z.RateMax != 32000 || z.Rounds != 3 || z.Failed != 0+1+2 ||
		!near(z.VsDirect, 0.4) || !near(z.VsNginx, 0.8) || !near(z.CPUPerCall, 120) || !near(z.CPUVsNginx, 2.4) || z.P50 != 16000 {
		t.Errorf("zkgate row %+v: want 16,000 calls/s (8,000–32,000), 0.4× direct, 0.8× nginx, 120 µs per call (2.4× nginx), 3 failed", z)
	}
	if d, n := rows[0], rows[2]; !math.IsNaN(d.VsDirect) || !math.IsNaN(d.VsNginx) || !math.IsNaN(n.VsNginx) || !near(n.VsDirect, 0.5) {
		t.Errorf("direct row %+v, nginx row %+v: want no ratio to themselves, nginx 0.5× direct", d, n)
	}
	table := GRPCTable(GRPCResults{Rows: rows, Rounds: 3, Duration: 5 * time.Second})
	mustContain(t, "gRPC table", table, "| target | calls/s median (min–max) |",
		"| zkgate, h2c entry point, h2c service | 16,000 (8,000–32,000) | 0.40× | 0.80× | 0.02 / 2.00 | 120.0 | 2.40× | 1.92 | 3 |")
}

// results.md carries the gRPC section under the heading
// scripts/readme-bench.sh copies (BENCH-GRPC), and says when it was
// skipped.
func TestResultsGRPCSection(t *testing.T) {
	rows := SummarizeGRPC([]GRPCSample{
		{Target: Reference, Load: loadgen.GRPCResult{OK: 300, CallsPerSecond: 300}, CPU: 3 * time.Millisecond},
		{Target: ZkgateGRPC, Load: loadgen.GRPCResult{OK: 100, CallsPerSecond: 100}, CPU: 4 * time.Millisecond},
	}, []TargetInfo{{Name: Reference, Label: "direct (no proxy)"}, GRPCTargets[0]}, Reference)
	r := Results{GRPC: &GRPCResults{Rows: rows, Rounds: 1, Duration: 5 * time.Second}}
	md := r.Markdown()
	mustContain(t, "results.md", md, "## gRPC\n", "### gRPC unary calls\n\n| target | calls/s", "`zkbench grpcload`",
		fmt.Sprintf("%d grpc-go callers sharing %d HTTP/2 connections", GRPCCallers, GRPCConns), "| zkgate, h2c entry point, h2c service | 100 (100–100) | 0.33× |")
	mustContain(t, "tables", r.Tables(), "gRPC unary calls\n\n| target")
	if md := (Results{}).Markdown(); !strings.Contains(md, "## gRPC\n\nSkipped in this run (BENCH_TARGETS named no gRPC target).") {
		t.Errorf("results.md without the section does not say it was skipped:\n%s", md)
	}
}

package loadgen

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/echo"
	"github.com/zkgate/zkgate/internal/zktest"
)

func TestRunGRPCCountsCallsOverConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := echo.NewGRPCServer("g-1")
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	res, err := RunGRPC(context.Background(), GRPCConfig{Target: ln.Addr().String(), Callers: 6, Conns: 2, Duration: 300 * time.Millisecond, PayloadBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 0 || res.OK == 0 || res.ByInstance["g-1"] != res.OK || len(res.Latencies) != res.OK || res.Check() != nil {
		t.Fatalf("result %+v, want only successful calls answered by g-1", res)
	}
	if res.Elapsed < 300*time.Millisecond || res.Elapsed > 10*time.Second || res.CallsPerSecond <= 0 {
		t.Fatalf("elapsed %v, %v calls/s", res.Elapsed, res.CallsPerSecond)
	}
	if res.P50 <= 0 || res.P99 < res.P50 || res.P50 != Percentile(res.Latencies, 50) || res.P99 != Percentile(res.Latencies, 99) {
		t.Fatalf("p50 %v, p99 %v: want the percentiles of the %d latencies", res.P50, res.P99, len(res.Latencies))
	}
	if s := res.Summary(); !strings.Contains(s, "callers=6 conns=2") || !strings.Contains(s, "g-1=") {
		t.Fatalf("summary %q", s)
	}
}

func TestRunGRPCFailsCallsToNoServer(t *testing.T) {
	addr := zktest.RefusedAddr(t) // nothing listens there
	res, err := RunGRPC(context.Background(), GRPCConfig{Target: addr, Callers: 2, Conns: 1, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 0 || res.Failed == 0 || len(res.Failures) == 0 || !errors.Is(res.Check(), ErrFailed) {
		t.Fatalf("result %+v, want failed calls", res)
	}
}

func TestRunGRPCRefusesBadConfigs(t *testing.T) {
	for _, cfg := range []GRPCConfig{
		{Target: "10.1.2.3:80"},
		{Target: "example.com:443"},
		{Target: "127.0.0.1"},
		{Target: "127.0.0.1:80", Duration: time.Hour},
		{Target: "127.0.0.1:80", PayloadBytes: -1},
	} {
		if _, err := RunGRPC(context.Background(), cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

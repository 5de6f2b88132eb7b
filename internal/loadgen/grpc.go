package loadgen

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// GRPCConfig says how to load a gRPC TestService (internal/echo's gRPC
// mode, or zkgate in front of it) with unary calls: Callers goroutines
// share Conns connections and each makes one call after another, as fast
// as answers come, for Duration (a closed loop: it measures throughput,
// where Start holds a rate).
type GRPCConfig struct {
	// Target is "host:port"; the host must be a loopback address. The
	// connection is h2c (gRPC without TLS).
	Target string
	// Callers is the number of concurrent callers (default 64).
	Callers int
	// Conns is the number of HTTP/2 connections the callers share, caller
	// i using connection i mod Conns (default 4).
	Conns int
	// Duration bounds the run (default 5s, at most 10m).
	Duration time.Duration
	// PayloadBytes is the size of each request's payload, echoed back.
	PayloadBytes int
	// Timeout bounds each call (default 5s).
	Timeout time.Duration
}

// GRPCResult is what a gRPC run saw.
type GRPCResult struct {
	Callers, Conns int
	OK, Failed     int
	Elapsed        time.Duration
	// ByInstance counts the answers by the instance that sent them
	// (SimpleResponse.Hostname).
	ByInstance map[string]int
	Latencies  []time.Duration `json:",omitempty"`
	// Failures holds up to 20 examples of failed calls.
	Failures []string `json:",omitempty"`
	// CallsPerSecond is OK per second of Elapsed.
	CallsPerSecond float64
	// P50 and P99 are percentiles of the successful calls' latencies
	// (kept when Latencies is dropped, as -json drops it).
	P50, P99 time.Duration
}

// RunGRPC loads cfg.Target until cfg.Duration has passed or ctx ends and
// returns what it saw; an error means the run could not start.
func RunGRPC(ctx context.Context, cfg GRPCConfig) (GRPCResult, error) {
	if cfg.Callers <= 0 {
		cfg.Callers = 64
	}
	if cfg.Conns <= 0 {
		cfg.Conns = 4
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 5 * time.Second
	}
	if cfg.Duration > 10*time.Minute {
		return GRPCResult{}, fmt.Errorf("loadgen: duration %s is over the 10m bound", cfg.Duration)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.PayloadBytes < 0 || cfg.PayloadBytes > 1<<20 {
		return GRPCResult{}, fmt.Errorf("loadgen: payload of %d bytes: want 0 to 1 MiB", cfg.PayloadBytes)
	}
	host, _, err := net.SplitHostPort(cfg.Target)
	if err != nil {
		return GRPCResult{}, fmt.Errorf("loadgen: grpc target %q: want host:port: %w", cfg.Target, err)
	}
	if host != "localhost" && !strings.HasPrefix(host, "127.") && host != "::1" {
		return GRPCResult{}, fmt.Errorf("loadgen: grpc target %q: only loopback targets are allowed", cfg.Target)
	}
	clients := make([]testpb.TestServiceClient, cfg.Conns)
	for i := range clients {
		cc, err := grpc.NewClient(cfg.Target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return GRPCResult{}, fmt.Errorf("loadgen: grpc target %q: %w", cfg.Target, err)
		}
		defer cc.Close()
		cc.Connect()
		clients[i] = testpb.NewTestServiceClient(cc)
	}

	// The run ends by cancellation, not by a deadline, so that the calls
	// carry their own timeout only: a deadline would reach the server in
	// grpc-timeout, which could then fail a call before ctx says the run is
	// over.
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(cfg.Duration, cancel)
	defer timer.Stop()
	type tally struct {
		ok, failed int
		byInstance map[string]int
		lat        []time.Duration
		failures   []string
	}
	tallies := make([]tally, cfg.Callers)
	req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, cfg.PayloadBytes)}}
	var wg sync.WaitGroup
	for i := range cfg.Callers {
		wg.Go(func() {
			c, t := clients[i%cfg.Conns], &tallies[i]
			t.byInstance = map[string]int{}
			for ctx.Err() == nil {
				cctx, ccancel := context.WithTimeout(ctx, cfg.Timeout)
				t0 := time.Now()
				resp, err := c.UnaryCall(cctx, req)
				d := time.Since(t0)
				ccancel()
				switch {
				case err == nil && len(resp.GetPayload().GetBody()) == cfg.PayloadBytes:
					t.ok++
					t.byInstance[resp.GetHostname()]++
					t.lat = append(t.lat, d)
				case ctx.Err() != nil:
					// The run ended during the call: not the target's failure.
				default:
					t.failed++
					if err == nil {
						err = fmt.Errorf("payload of %d bytes, want %d", len(resp.GetPayload().GetBody()), cfg.PayloadBytes)
					}
					if len(t.failures) < 20 {
						t.failures = append(t.failures, err.Error())
					}
				}
			}
		})
	}
	wg.Wait()
	res := GRPCResult{Callers: cfg.Callers, Conns: cfg.Conns, Elapsed: time.Since(start), ByInstance: map[string]int{}}
	for _, t := range tallies {
		res.OK += t.ok
		res.Failed += t.failed
		for k, v := range t.byInstance {
			res.ByInstance[k] += v
		}
		res.Latencies = append(res.Latencies, t.lat...)
		for _, f := range t.failures {
			if len(res.Failures) < 20 {
				res.Failures = append(res.Failures, f)
			}
		}
	}
	res.CallsPerSecond = float64(res.OK) / res.Elapsed.Seconds()
	res.P50, res.P99 = Percentile(res.Latencies, 50), Percentile(res.Latencies, 99)
	return res, nil
}

// Summary renders a one-paragraph report of r.
func (r GRPCResult) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "grpc unary: callers=%d conns=%d elapsed=%s ok=%d failed=%d calls/s=%.0f p50=%s p99=%s",
		r.Callers, r.Conns, r.Elapsed.Round(time.Millisecond), r.OK, r.Failed, r.CallsPerSecond,
		r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond))
	names := make([]string, 0, len(r.ByInstance))
	for n := range r.ByInstance {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, " %s=%d", n, r.ByInstance[n])
	}
	for _, f := range r.Failures {
		b.WriteString("\n  failure: " + f)
	}
	return b.String()
}

// Check returns ErrFailed (wrapped with the counts) when any call failed
// or none succeeded.
func (r GRPCResult) Check() error {
	if r.Failed > 0 || r.OK == 0 {
		return fmt.Errorf("%w: %d of %d calls", ErrFailed, r.Failed, r.OK+r.Failed)
	}
	return nil
}

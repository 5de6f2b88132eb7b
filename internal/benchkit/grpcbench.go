package benchkit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/zkgate/zkgate/internal/loadgen"
)

// Port offsets of the gRPC section from Options.BasePort.
const (
	offGRPCBackend = 36
	offZkgateGRPC  = 37 // h2c entry point, then admin
	offNginxGRPC   = 39
)

// GRPCPath is the service path the gRPC backend registers under.
const GRPCPath = "/services/grpc1"

// GRPCBackendID is the gRPC backend's instance name, which every answer
// carries (SimpleResponse.Hostname).
const GRPCBackendID = "grpc-1"

// gRPC load of the section: GRPCCallers callers, each making one unary
// call after another, sharing GRPCConns HTTP/2 connections (as h2load's
// -c4 -m16 in the TLS section).
const (
	GRPCCallers = 64
	GRPCConns   = 4
)

// The gRPC section's targets compared.
const (
	// ZkgateGRPC is zkgate with an h2c entry point and an h2c service
	// (ZkgateGRPCConfig).
	ZkgateGRPC = "zkgate-grpc"
	// NginxGRPC is nginx with one worker and grpc_pass (NginxGRPCConfig).
	NginxGRPC = "nginx-grpc"
)

// GRPCMeasure names the section's one measurement in its samples.
const GRPCMeasure = "unary"

// GRPCTargets lists the gRPC section's targets in report order; the gRPC
// backend reached directly is measured beside them.
var GRPCTargets = []TargetInfo{
	{Name: ZkgateGRPC, Label: "zkgate, h2c entry point, h2c service"},
	{Name: NginxGRPC, Label: "nginx, 1 worker, grpc_pass"},
}

// grpcSelected reports whether the gRPC section runs: every target when
// Options.Only is empty, else when it names a gRPC target.
func (h *harness) grpcSelected() bool {
	return slices.ContainsFunc(GRPCTargets, func(t TargetInfo) bool { return h.named(t.Name) })
}

// grpcSection starts a gRPC backend registered in ZooKeeper, zkgate and
// nginx in front of it, checks that each answers a call, measures them in
// interleaved rounds beside the backend reached directly, and stops them.
func (h *harness) grpcSection(ctx context.Context) (*GRPCResults, error) {
	o := h.o
	addr := h.addr(offGRPCBackend)
	backend, err := h.procs.Start(ProcSpec{
		Name: "grpc-backend",
		Argv: []string{o.Self, "backend", "--grpc", "--listen", addr, "--id", GRPCBackendID,
			"--zookeeper", h.addr(offZooKeeper), "--path", GRPCPath},
		Log: filepath.Join(h.run, "grpc-backend.log"),
	})
	if err != nil {
		return nil, err
	}
	defer func() { _ = h.procs.Stop(backend, 10*time.Second) }()
	direct := &target{TargetInfo: TargetInfo{Name: Reference, Label: "direct (no proxy)"}, url: "http://" + addr, proc: backend}
	targets, stop, err := h.startSection(direct, GRPCTargets, "", func(t *target) error {
		switch t.Name {
		case ZkgateGRPC:
			text := ZkgateGRPCConfig(h.port(offZkgateGRPC), h.port(offZkgateGRPC+1), h.port(offZooKeeper), GRPCPath, false)
			return h.startZkgateWith(ctx, t, offZkgateGRPC, text, false)
		case NginxGRPC:
			return h.startNginxWith(t, offNginxGRPC, "http", func(dir string) string {
				return NginxGRPCConfig(dir, h.port(offNginxGRPC), 1, []string{addr})
			})
		}
		return fmt.Errorf("benchkit: no way to start gRPC target %q", t.Name)
	})
	defer stop()
	if err != nil {
		return nil, err
	}
	for _, t := range targets {
		a := grpcAddr(t)
		if err := WaitFor(ctx, 30*time.Second, t.Label+" at "+a+" to answer a gRPC call", func() (bool, error) {
			if err := t.proc.Err(); err != nil {
				return false, err
			}
			id, err := GRPCCall(ctx, a)
			return err == nil && id == GRPCBackendID, nil
		}); err != nil {
			return nil, err
		}
		h.say("%-38s %s  pids %v", t.Label, a, t.pids())
	}
	samples, err := measureRounds(ctx, h, targets, rounds[GRPCSample]{
		warmup: fmt.Sprintf("gRPC warm-up: %v per target", o.Warmup),
		announce: fmt.Sprintf("gRPC: %d rounds of %d runs (%d callers on %d connections, unary calls, %v each): about %v",
			o.Rounds, len(targets), GRPCCallers, GRPCConns, o.Duration, time.Duration(o.Rounds*len(targets))*o.Duration.Truncate(time.Second)),
		measures: func(*target) []string { return []string{GRPCMeasure} },
		once:     h.measureGRPCOnce,
		progress: func(round int, t *target, _ string, s GRPCSample) {
			fmt.Fprintf(o.Progress, "    round %d/%d  %-38s %8.0f calls/s  cpu %6s µs/call  failed %d\n",
				round+1, o.Rounds, t.Label, s.rate(), oneDecimal(s.CPUPerReq()), s.Load.Failed)
		},
	})
	if err != nil {
		return nil, err
	}
	if err := writeGRPCSamples(filepath.Join(h.run, "grpc-samples.csv"), samples); err != nil {
		return nil, err
	}
	return &GRPCResults{Rows: SummarizeGRPC(samples, targetInfos(targets), Reference), Rounds: o.Rounds, Duration: o.Duration}, nil
}

// grpcAddr is the host:port of a gRPC section's target.
func grpcAddr(t *target) string { return strings.TrimPrefix(t.url, "http://") }

// GRPCCall makes one unary call of gRPC's TestService at addr over h2c
// (a new connection, closed after it) and returns the instance that
// answered; a payload not echoed whole is an error.
func GRPCCall(ctx context.Context, addr string) (string, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	body := []byte("zkbench")
	resp, err := testpb.NewTestServiceClient(cc).UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: body}})
	if err != nil {
		return "", err
	}
	if got := resp.GetPayload().GetBody(); !bytes.Equal(got, body) {
		return "", fmt.Errorf("benchkit: gRPC call to %s: payload %q, want %q echoed", addr, got, body)
	}
	return resp.GetHostname(), nil
}

// measureGRPCOnce runs `zkbench grpcload` (a process of its own, as wrk is)
// against t for d and samples t's processes' CPU time before and after.
func (h *harness) measureGRPCOnce(ctx context.Context, t *target, _ string, d time.Duration, round int) (GRPCSample, error) {
	cpu, err := beginRun(t)
	if err != nil {
		return GRPCSample{}, err
	}
	res, err := RunGRPCLoad(ctx, h.o.Self, grpcAddr(t), d)
	if err != nil {
		return GRPCSample{}, fmt.Errorf("benchkit: %s: %w", t.Label, err)
	}
	used, err := cpu()
	if err != nil {
		return GRPCSample{}, err
	}
	return GRPCSample{Round: round, Target: t.Name, Load: res, CPU: used}, nil
}

// RunGRPCLoad runs `self grpcload` against addr for d with GRPCCallers
// callers on GRPCConns connections and returns what it printed. Failed
// calls are in the result, not an error; the run is bounded by d plus a
// minute, and by ctx.
func RunGRPCLoad(ctx context.Context, self, addr string, d time.Duration) (loadgen.GRPCResult, error) {
	ctx, cancel := context.WithTimeout(ctx, d+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "grpcload", "--addr", addr, "--callers", strconv.Itoa(GRPCCallers),
		"--conns", strconv.Itoa(GRPCConns), "--duration", d.String())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return loadgen.GRPCResult{}, fmt.Errorf("grpcload: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var res loadgen.GRPCResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return res, fmt.Errorf("grpcload: its output %q: %w", stdout.String(), err)
	}
	if res.OK+res.Failed == 0 {
		return res, errors.New("grpcload: no call ended in the run")
	}
	return res, nil
}

// GRPCLoad is `zkbench grpcload ARGS`, the client of the gRPC section, in
// a process of its own as wrk and h2load are: loadgen's closed loop of
// unary calls (--addr, --callers, --conns, --duration), its result written
// to out as one line of JSON (loadgen.GRPCResult without the latencies).
func GRPCLoad(ctx context.Context, args []string, out io.Writer) error {
	var cfg loadgen.GRPCConfig
	fs := flag.NewFlagSet("zkbench grpcload", flag.ContinueOnError)
	fs.StringVar(&cfg.Target, "addr", "", "loopback host:port of the gRPC TestService (h2c)")
	fs.IntVar(&cfg.Callers, "callers", GRPCCallers, "concurrent callers")
	fs.IntVar(&cfg.Conns, "conns", GRPCConns, "HTTP/2 connections the callers share")
	fs.DurationVar(&cfg.Duration, "duration", 5*time.Second, "length of the run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || cfg.Target == "" {
		return fmt.Errorf("grpcload: want --addr and no arguments, got %q", args)
	}
	res, err := loadgen.RunGRPC(ctx, cfg)
	if err != nil {
		return err
	}
	res.Latencies = nil
	return json.NewEncoder(out).Encode(res)
}

// writeGRPCSamples writes every gRPC sample as CSV.
func writeGRPCSamples(path string, samples []GRPCSample) error {
	return writeSamplesCSV(path, "gRPC", "round,target,ok,failed,seconds,calls_per_s,cpu_us,p50_us,p99_us", samples, func(s GRPCSample) string {
		return fmt.Sprintf("%d,%s,%d,%d,%.3f,%.1f,%d,%d,%d", s.Round+1, s.Target, s.Load.OK, s.Load.Failed, s.Load.Elapsed.Seconds(),
			s.Load.CallsPerSecond, s.CPU.Microseconds(), s.Load.P50.Microseconds(), s.Load.P99.Microseconds())
	})
}

// Command loadgen sends a bounded, steady stream of requests to a loopback URL
// and prints what answered: the demo's smoke run uses it to prove that no
// request is lost while backends come and go.
//
//	loadgen -url http://127.0.0.1:8080/echo/ -rate 200 -duration 10s [-json]
//
// With -grpc it measures instead how many gRPC unary calls per second a
// gRPC TestService (echo-backend --grpc, or zkgate in front of it over h2c)
// answers: -concurrency callers over -conns connections, each calling as
// soon as its previous call is answered, for -duration (default 5s):
//
//	loadgen -grpc 127.0.0.1:8080 -concurrency 64 -conns 4 -duration 5s [-json]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/zkgate/zkgate/internal/loadgen"
)

func main() {
	var cfg loadgen.Config
	flag.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080/echo/", "target URL (loopback only)")
	flag.IntVar(&cfg.Rate, "rate", 200, "requests per second")
	flag.DurationVar(&cfg.Duration, "duration", 0, "how long to run (default 10s)")
	flag.IntVar(&cfg.MaxRequests, "n", 0, "stop after this many requests (default rate × duration)")
	flag.IntVar(&cfg.PostEvery, "post-every", 3, "every n-th request is a POST (0: GET only)")
	flag.IntVar(&cfg.PostBytes, "post-bytes", 0, "POST bodies of this size, whose echo must count them (0: small bodies, unchecked)")
	asJSON := flag.Bool("json", false, "print the result as JSON")
	var gcfg loadgen.GRPCConfig
	flag.StringVar(&gcfg.Target, "grpc", "", "measure gRPC unary calls per second to this host:port (loopback only) instead")
	flag.IntVar(&gcfg.Callers, "concurrency", 64, "-grpc: concurrent callers")
	flag.IntVar(&gcfg.Conns, "conns", 4, "-grpc: connections the callers share")
	flag.IntVar(&gcfg.PayloadBytes, "payload-bytes", 0, "-grpc: request payload size, echoed back")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if gcfg.Target != "" {
		gcfg.Duration = cfg.Duration
		code := runGRPC(ctx, gcfg, *asJSON)
		stop()
		os.Exit(code)
	}
	g, err := loadgen.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	res := g.Wait()
	if *asJSON {
		res.Latencies = nil
		_ = json.NewEncoder(os.Stdout).Encode(res)
	} else {
		fmt.Println(res.Summary())
	}
	if res.Check() != nil {
		os.Exit(1)
	}
}

// runGRPC is the -grpc mode; it returns the exit status.
func runGRPC(ctx context.Context, cfg loadgen.GRPCConfig, asJSON bool) int {
	res, err := loadgen.RunGRPC(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if asJSON {
		res.Latencies = nil
		_ = json.NewEncoder(os.Stdout).Encode(res)
	} else {
		fmt.Println(res.Summary())
	}
	if res.Check() != nil {
		return 1
	}
	return 0
}

// Command loadgen sends a bounded, steady stream of requests to a loopback URL
// and prints what answered: the demo's smoke run uses it to prove that no
// request is lost while backends come and go.
//
//	loadgen -url http://127.0.0.1:8080/echo/ -rate 200 -duration 10s [-json]
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
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
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

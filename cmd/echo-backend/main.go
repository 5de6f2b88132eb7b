// Command echo-backend is zkgate's demo backend: it answers with its identity
// and the request it saw, registers itself in ZooKeeper when listening, and on
// SIGTERM deregisters, drains and exits.
//
// Every flag has an environment variable, for containers:
//
//	--listen LISTEN_ADDR   --advertise ADVERTISE_ADDR   --id INSTANCE_ID
//	--zookeeper ZOOKEEPER  --path SERVICE_PATH          --weight WEIGHT
//	--format FORMAT        --drain DRAIN                --session-timeout SESSION_TIMEOUT
//	--grpc GRPC
//
// With --grpc the listener serves gRPC over h2c instead of the HTTP API:
// gRPC's interop TestService (see echo.GRPCService) and the health service.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zkgate/zkgate/internal/echo"
)

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func main() {
	log := logrus.New()
	weight, err := strconv.Atoi(env("WEIGHT", "1"))
	if err != nil {
		log.Fatalf("WEIGHT=%q: not a number", os.Getenv("WEIGHT"))
	}
	drain, err := time.ParseDuration(env("DRAIN", "1s"))
	if err != nil {
		log.Fatalf("DRAIN=%q: %v", os.Getenv("DRAIN"), err)
	}
	session, err := time.ParseDuration(env("SESSION_TIMEOUT", "10s"))
	if err != nil {
		log.Fatalf("SESSION_TIMEOUT=%q: %v", os.Getenv("SESSION_TIMEOUT"), err)
	}
	grpcMode, err := strconv.ParseBool(env("GRPC", "false"))
	if err != nil {
		log.Fatalf("GRPC=%q: not a boolean (true or false)", os.Getenv("GRPC"))
	}
	var o echo.Options
	var zks string
	flag.StringVar(&o.Listen, "listen", env("LISTEN_ADDR", ":9000"), "listen address")
	flag.StringVar(&o.Advertise, "advertise", env("ADVERTISE_ADDR", ""), "address to register (default: local address towards ZooKeeper + listen port)")
	flag.StringVar(&o.ID, "id", env("INSTANCE_ID", ""), "instance id (default: the advertised address)")
	flag.StringVar(&zks, "zookeeper", env("ZOOKEEPER", "127.0.0.1:2181"), "ZooKeeper servers, comma-separated (empty: do not register)")
	flag.StringVar(&o.Path, "path", env("SERVICE_PATH", "/services/echo"), "service path in ZooKeeper")
	flag.IntVar(&o.Weight, "weight", weight, "registered weight")
	flag.StringVar(&o.Format, "format", env("FORMAT", "plain"), "node format: plain or curator")
	flag.DurationVar(&o.Drain, "drain", drain, "keep serving this long after deregistering")
	flag.DurationVar(&o.SessionTimeout, "session-timeout", session, "ZooKeeper session timeout")
	flag.BoolVar(&o.GRPC, "grpc", grpcMode, "serve gRPC over h2c (grpc.testing.TestService and health) instead of HTTP")
	flag.Parse()
	if zks != "" {
		o.ZooKeeper = strings.Split(zks, ",")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := echo.Run(ctx, o, log); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

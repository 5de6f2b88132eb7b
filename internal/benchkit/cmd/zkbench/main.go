// Command zkbench is the harness of `make bench` (scripts/bench.sh runs it).
//
//	zkbench run [flags]       measure every target (plain, then TLS, compression, gRPC) and write docs/bench/results.{md,svg}
//	zkbench backend [flags]   one fast backend (HTTP, or gRPC with --grpc), registered in ZooKeeper (the harness starts these)
//	zkbench reverseproxy --listen ADDR --upstream ADDR   a bare httputil.ReverseProxy (a baseline target)
//	zkbench epollproxy --listen ADDR --upstream ADDR [--loops N]   an epoll loop per core in Go (a floor, Linux)
//	zkbench hold --addr ADDR --kind idle|upgrade --conns N [flags]   open N connections to a proxy and hold them
//	zkbench grpcload --addr ADDR [flags]   gRPC unary calls as fast as answers come; prints the result as JSON
//
// hold is the client side of the connection benchmark, in a process of its
// own so that its descriptors are not the harness's: it prints a ZKHOLD
// line once every connection was tried, holds them until SIGTERM or
// --max-hold, then prints a second line, closes them and exits.
//
// Every flag of run defaults to an environment variable: BENCH_ROUNDS,
// BENCH_DURATION, BENCH_LAT_DURATION, BENCH_WARMUP, BENCH_CONNS,
// BENCH_BASE_PORT, BENCH_HELD_CONNS, BENCH_PAIRS, BENCH_PROP_EVENTS, BENCH_PROP_QUIET, BENCH_TARGETS,
// BENCH_GZIP_LEVEL, BENCH_STATE, BENCH_OUT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zkgate/zkgate/internal/benchkit"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	var err error
	switch os.Args[1] {
	case "run":
		err = run(ctx, os.Args[2:], log)
	case "backend":
		err = backend(ctx, os.Args[2:], log)
	case "reverseproxy":
		err = reverseProxy(ctx, os.Args[2:])
	case "epollproxy":
		err = epollProxy(ctx, os.Args[2:])
	case "hold":
		err = hold(ctx, os.Args[2:])
	case "nginxconf":
		err = nginxConf(os.Args[2:])
	case "zkgateconf":
		err = zkgateConf(os.Args[2:])
	case "grpcload":
		err = benchkit.GRPCLoad(ctx, os.Args[2:], os.Stdout)
	default:
		usage()
	}
	if err != nil {
		if ctx.Err() != nil { // a signal: what failed is only its consequence
			fmt.Fprintln(os.Stderr, "zkbench: interrupted; every process it started was stopped")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "zkbench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: zkbench run [flags] | zkbench backend --listen ADDR [--id ID] [--zookeeper SERVERS --path PATHS] | zkbench reverseproxy --listen ADDR --upstream ADDR | zkbench epollproxy --listen ADDR --upstream ADDR [--loops N] | zkbench hold --addr ADDR --kind idle|upgrade --conns N | zkbench grpcload --addr ADDR | zkbench nginxconf --dir DIR --port PORT --workers N --upstream ADDR [--access-log] | zkbench zkgateconf --port PORT --admin-port PORT --upstream ADDR [--access-log]")
	os.Exit(2)
}

// envFlags reads the environment variables behind the flags, reporting
// malformed values by name.
type envFlags struct{ errs []error }

func (e *envFlags) str(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (e *envFlags) int(name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: not an integer", name, v))
		return def
	}
	return n
}

func (e *envFlags) dur(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: not a duration like 5s", name, v))
		return def
	}
	return d
}

func run(ctx context.Context, args []string, log logrus.FieldLogger) error {
	var env envFlags
	var o benchkit.Options
	var only string
	fs := flag.NewFlagSet("zkbench run", flag.ExitOnError)
	fs.StringVar(&o.Root, "root", ".", "repository root (bin/zkgate is run from it)")
	fs.StringVar(&o.State, "state", env.str("BENCH_STATE", ""), "state directory (default ROOT/.bench)")
	fs.StringVar(&o.Out, "out", env.str("BENCH_OUT", ""), "results directory (default ROOT/docs/bench)")
	fs.IntVar(&o.Rounds, "rounds", env.int("BENCH_ROUNDS", 3), "interleaved rounds")
	fs.DurationVar(&o.Duration, "duration", env.dur("BENCH_DURATION", 5*time.Second), "each wrk run at -c CONNS")
	fs.DurationVar(&o.LatencyDuration, "latency-duration", env.dur("BENCH_LAT_DURATION", 3*time.Second), "each wrk run at -c1")
	fs.DurationVar(&o.Warmup, "warmup", env.dur("BENCH_WARMUP", time.Second), "unrecorded run per target and body first (0: none)")
	fs.IntVar(&o.Conns, "conns", env.int("BENCH_CONNS", 64), "wrk connections of the main runs")
	fs.IntVar(&o.BasePort, "base-port", env.int("BENCH_BASE_PORT", 19100), "first loopback port (uses BASE to BASE+39)")
	fs.IntVar(&o.HeldConns, "held-conns", env.int("BENCH_HELD_CONNS", 8000), "connections held open through zkgate, nginx and HAProxy (0: skip that part)")
	fs.IntVar(&o.Pairs, "pairs", env.int("BENCH_PAIRS", 6), "back-to-back pairs of zkgate against nginx and HAProxy on both cores, each comparison (0: skip)")
	fs.IntVar(&o.PropEvents, "prop-events", env.int("BENCH_PROP_EVENTS", 100), "discovery propagation events (0: skip)")
	fs.DurationVar(&o.PropQuiet, "prop-quiet", env.dur("BENCH_PROP_QUIET", 150*time.Millisecond), "silence that ends a deregistration event")
	fs.StringVar(&only, "targets", env.str("BENCH_TARGETS", ""), "comma-separated targets to measure besides direct (default all; a section runs when one of its targets is named: naming only TLS targets runs the TLS section alone)")
	fs.IntVar(&o.GzipLevel, "gzip-level", env.int("BENCH_GZIP_LEVEL", benchkit.DefaultGzipLevel), "compression level of zkgate and nginx in the compression section (1-9)")
	if len(env.errs) > 0 {
		return errors.Join(env.errs...)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("run: unexpected arguments %q", fs.Args())
	}
	if only != "" {
		o.Only = strings.Split(only, ",")
	}
	if o.HeldConns == 0 {
		o.SkipConns = true
	}
	pairs := o.Pairs
	if o.Pairs == 0 {
		o.Pairs = -1 // benchkit's 0 is its default
	}
	o.Command = commandLine(o, pairs)
	o.Log = log
	return benchkit.Run(ctx, o)
}

// commandLine is the command that reproduces the run, for the results.
func commandLine(o benchkit.Options, pairs int) string {
	parts := []string{}
	if o.Rounds != 3 {
		parts = append(parts, fmt.Sprintf("BENCH_ROUNDS=%d", o.Rounds))
	}
	if o.Duration != 5*time.Second {
		parts = append(parts, "BENCH_DURATION="+o.Duration.String())
	}
	if o.LatencyDuration != 3*time.Second {
		parts = append(parts, "BENCH_LAT_DURATION="+o.LatencyDuration.String())
	}
	if o.Warmup != time.Second {
		parts = append(parts, "BENCH_WARMUP="+o.Warmup.String())
	}
	if o.Conns != 64 {
		parts = append(parts, fmt.Sprintf("BENCH_CONNS=%d", o.Conns))
	}
	if o.SkipConns {
		parts = append(parts, "BENCH_HELD_CONNS=0")
	} else if o.HeldConns != 8000 {
		parts = append(parts, fmt.Sprintf("BENCH_HELD_CONNS=%d", o.HeldConns))
	}
	if pairs != 6 {
		parts = append(parts, fmt.Sprintf("BENCH_PAIRS=%d", pairs))
	}
	if o.PropEvents != 100 {
		parts = append(parts, fmt.Sprintf("BENCH_PROP_EVENTS=%d", o.PropEvents))
	}
	if len(o.Only) > 0 {
		parts = append(parts, "BENCH_TARGETS="+strings.Join(o.Only, ","))
	}
	if o.GzipLevel != benchkit.DefaultGzipLevel {
		parts = append(parts, fmt.Sprintf("BENCH_GZIP_LEVEL=%d", o.GzipLevel))
	}
	return strings.Join(append(parts, "make bench"), " ")
}

func backend(ctx context.Context, args []string, log logrus.FieldLogger) error {
	var o benchkit.BackendOptions
	var zks, paths string
	fs := flag.NewFlagSet("zkbench backend", flag.ExitOnError)
	fs.StringVar(&o.Listen, "listen", "", "loopback host:port to serve on")
	fs.StringVar(&o.ID, "id", "", "name answered at "+benchkit.IDPath+" (default the listen address)")
	fs.StringVar(&zks, "zookeeper", "", "ZooKeeper servers, comma-separated (empty: do not register)")
	fs.StringVar(&paths, "path", "", "service paths to register under, comma-separated")
	fs.DurationVar(&o.SessionTimeout, "session-timeout", 10*time.Second, "ZooKeeper session timeout")
	fs.BoolVar(&o.GRPC, "grpc", false, "serve gRPC's interop TestService over h2c instead of HTTP")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if zks != "" {
		o.ZooKeeper = strings.Split(zks, ",")
	}
	if paths != "" {
		o.Paths = strings.Split(paths, ",")
	}
	return benchkit.RunBackend(ctx, o, log)
}

func reverseProxy(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("zkbench reverseproxy", flag.ExitOnError)
	listen := fs.String("listen", "", "loopback host:port to serve on")
	upstream := fs.String("upstream", "", "host:port to proxy to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *listen == "" || *upstream == "" {
		return errors.New("reverseproxy: --listen and --upstream are required")
	}
	return benchkit.RunReverseProxy(ctx, *listen, *upstream)
}

func epollProxy(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("zkbench epollproxy", flag.ExitOnError)
	listen := fs.String("listen", "", "loopback IPv4 address:port to serve on")
	upstream := fs.String("upstream", "", "IPv4 address:port to proxy to")
	loops := fs.Int("loops", 0, "epoll loops (0: one per processor, GOMAXPROCS)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *listen == "" || *upstream == "" {
		return errors.New("epollproxy: --listen and --upstream are required")
	}
	return benchkit.RunEpollProxy(ctx, *listen, *upstream, *loops)
}

func hold(ctx context.Context, args []string) error {
	o := benchkit.HoldOptions{Out: os.Stdout}
	fs := flag.NewFlagSet("zkbench hold", flag.ExitOnError)
	fs.StringVar(&o.Addr, "addr", "", "the proxy's host:port")
	fs.StringVar(&o.Path, "path", "/", "request target")
	fs.StringVar(&o.Kind, "kind", "", benchkit.HoldIdle+" (one GET, then silent) or "+benchkit.HoldUpgrade+" (WebSocket handshake, 101, then held)")
	fs.IntVar(&o.Conns, "conns", 0, "connections to open and hold")
	fs.IntVar(&o.Concurrency, "concurrency", 32, "connections being opened at once")
	fs.IntVar(&o.EchoEvery, "echo-every", 100, "upgrade: echo one frame on every Nth connection (negative: none)")
	fs.DurationVar(&o.Exchange, "exchange-timeout", 5*time.Second, "bound on one connection's dial, request and answer")
	fs.DurationVar(&o.Establish, "establish-timeout", 60*time.Second, "bound on opening every connection")
	fs.DurationVar(&o.MaxHold, "max-hold", 2*time.Minute, "close everything after this even without SIGTERM")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("hold: unexpected arguments %q", fs.Args())
	}
	_, err := benchkit.Hold(ctx, o)
	return err
}

// nginxConf writes DIR/nginx.conf, the configuration make bench runs nginx
// with (benchkit.NginxConfig), and the directory for its temporary files,
// for measurements made by hand (scripts/ab.sh).
func nginxConf(args []string) error {
	fs := flag.NewFlagSet("zkbench nginxconf", flag.ExitOnError)
	dir := fs.String("dir", "", "directory for nginx.conf, the pid file, logs and temporary files")
	port := fs.Int("port", 0, "port nginx listens on, on 127.0.0.1")
	workers := fs.Int("workers", 1, "worker processes")
	upstream := fs.String("upstream", "", "the backend's host:port")
	accessLog := fs.Bool("access-log", false, "log each request to DIR/access.log (benchkit.NginxLogConfig)")
	_ = fs.Parse(args)
	if *dir == "" || *port <= 0 || *upstream == "" {
		return errors.New("nginxconf: --dir, --port and --upstream are required")
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(abs, "tmp"), 0o755); err != nil {
		return err
	}
	conf := benchkit.NginxConfig
	if *accessLog {
		conf = benchkit.NginxLogConfig
	}
	return os.WriteFile(filepath.Join(abs, "nginx.conf"), []byte(conf(abs, *port, *workers, []string{*upstream})), 0o644)
}

// zkgateConf prints the configuration make bench runs zkgate with, the
// backend given statically instead of through ZooKeeper
// (benchkit.ZkgateStaticConfig), for measurements made by hand
// (scripts/ab.sh).
func zkgateConf(args []string) error {
	fs := flag.NewFlagSet("zkbench zkgateconf", flag.ExitOnError)
	port := fs.Int("port", 0, "port the web entry point listens on, on 127.0.0.1")
	admin := fs.Int("admin-port", 0, "port the admin API listens on, on 127.0.0.1")
	upstream := fs.String("upstream", "", "the backend's host:port")
	accessLog := fs.Bool("access-log", false, "log each request (to standard output)")
	_ = fs.Parse(args)
	if *port <= 0 || *admin <= 0 || *upstream == "" {
		return errors.New("zkgateconf: --port, --admin-port and --upstream are required")
	}
	_, err := fmt.Print(benchkit.ZkgateStaticConfig(*port, *admin, *upstream, *accessLog))
	return err
}

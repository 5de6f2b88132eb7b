package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/zkgate/zkgate/internal/config"
	"github.com/zkgate/zkgate/internal/version"
)

// Exit codes of the zkgate command.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2 // bad flags or an invalid configuration
)

const usage = `usage: zkgate <command> [flags]   (zkgate <command> --help: its flags)

commands:
  serve        run the gateway                      (--config FILE)
  validate     check a configuration file, print ok (--config FILE)
  healthcheck  exit 0 when the gateway is ready     (--url URL)
  config push  write a file's routes and services to the fleet in ZooKeeper  (--config FILE) ROUTES_FILE
  config pull  print the fleet's routes and services as a file               (--config FILE) [-o FILE]
  version      print the version

The configuration file is --config, else $ZKGATE_CONFIG, else ./configs/gateway.yaml.
`

// Main runs the zkgate command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(rest, stdout, stderr)
	case "validate":
		return cmdValidate(rest, stdout, stderr)
	case "healthcheck":
		return cmdHealthcheck(rest, stdout, stderr)
	case "config":
		return cmdConfig(rest, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, version.String())
		return exitOK
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "zkgate: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}

// parseFlags parses args into fs. Help (-h, --help) is printed to stdout
// and ends the command with status 0; a flag error is printed to stderr with
// the usage and ends it with status 2.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return exitOK, false
	case err != nil:
		fs.SetOutput(stderr)
		fmt.Fprintln(stderr, err)
		fs.Usage()
		return exitUsage, false
	}
	return exitOK, true
}

// configFlag parses the --config flag of command name.
func configFlag(name string, args []string, stdout, stderr io.Writer) (path string, code int, ok bool) {
	fs := flag.NewFlagSet("zkgate "+name, flag.ContinueOnError)
	p := fs.String("config", "", "configuration file (default $ZKGATE_CONFIG, else ./configs/gateway.yaml)")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return "", code, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "zkgate %s: unexpected argument %q\n", name, fs.Arg(0))
		return "", exitUsage, false
	}
	return *p, exitOK, true
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	path, code, ok := configFlag("validate", args, stdout, stderr)
	if !ok {
		return code
	}
	cfg, err := config.Load(path)
	if err == nil {
		// Build the routes and services as serve would, starting
		// nothing: a file that validates also starts and reloads.
		_, err = build(cfg, nil, nil, nil)
		_, tlsErr := buildTLSStores(cfg, nil)
		err = errors.Join(err, tlsErr)
	}
	if err != nil {
		printErrors(stderr, err)
		return exitUsage
	}
	for _, w := range config.Warnings(cfg, os.Environ()) {
		fmt.Fprintln(stderr, "warning:", w)
	}
	fmt.Fprintln(stdout, "ok")
	return exitOK
}

// printErrors prints each joined error on a line of its own.
func printErrors(w io.Writer, err error) {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			printErrors(w, e)
		}
		return
	}
	fmt.Fprintln(w, err)
}

// cmdServe runs the gateway until SIGTERM or SIGINT, which start a graceful
// shutdown; a second one during the shutdown ends the process at once.
func cmdServe(args []string, stdout, stderr io.Writer) int {
	path, code, ok := configFlag("serve", args, stdout, stderr)
	if !ok {
		return code
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := serve(ctx, path, stderr, sigs)
	var cfgErr *ConfigError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &cfgErr):
		printErrors(stderr, cfgErr.Err)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "zkgate:", err)
		return exitFailure
	}
}

func cmdHealthcheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("zkgate healthcheck", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:9901/readyz", "readiness URL of the admin listener")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for an answer")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get(*url)
	if err != nil {
		fmt.Fprintln(stderr, "zkgate healthcheck:", err)
		return exitFailure
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "zkgate healthcheck: %s answered %s\n", *url, resp.Status)
		return exitFailure
	}
	return exitOK
}

// ConfigError marks an error in the configuration given at start-up.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return "configuration: " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

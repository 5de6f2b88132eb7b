package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zkgate/zkgate/discovery"
	"github.com/zkgate/zkgate/internal/config"
	"github.com/zkgate/zkgate/internal/fleet"
)

// fleetDialTimeout bounds the wait for a ZooKeeper session of zkgate config.
const fleetDialTimeout = 15 * time.Second

// cmdConfig runs zkgate config push and pull: the fleet's routes and
// services (fleet.config_path in ZooKeeper) written from, or printed as, a
// file. The gateway's file (--config) says where ZooKeeper and the fleet
// are, and with which credentials.
func cmdConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "push" && args[0] != "pull") {
		fmt.Fprint(stderr, "usage: zkgate config push [--config FILE] ROUTES_FILE\n       zkgate config pull [--config FILE] [-o FILE]\n")
		return exitUsage
	}
	sub := args[0]
	fs := flag.NewFlagSet("zkgate config "+sub, flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the gateway's configuration file: ZooKeeper, fleet paths and credentials (default $ZKGATE_CONFIG, else ./configs/gateway.yaml)")
	var outPath *string
	if sub == "pull" {
		outPath = fs.String("o", "", "write to this file instead of standard output")
	}
	if code, ok := parseFlags(fs, args[1:], stdout, stderr); !ok {
		return code
	}
	want := 0
	if sub == "push" {
		want = 1
	}
	if fs.NArg() != want {
		fmt.Fprintf(stderr, "zkgate config %s: want %d argument(s), got %d\n", sub, want, fs.NArg())
		fs.SetOutput(stderr)
		fs.Usage()
		return exitUsage
	}
	path, _ := config.ResolvePath(*cfgPath)
	cfg, err := config.Load(path)
	if err != nil {
		printErrors(stderr, err)
		return exitUsage
	}
	log := logrus.New()
	log.SetOutput(stderr)
	log.SetLevel(logrus.WarnLevel)
	ctx, cancel := context.WithTimeout(context.Background(), fleetDialTimeout)
	defer cancel()
	zk, err := discovery.Dial(ctx, discovery.ClientConfig{
		Servers:        cfg.ZooKeeper.Servers,
		SessionTimeout: cfg.ZooKeeper.SessionTimeout,
		Auth:           discovery.Auth{Scheme: cfg.ZooKeeper.Auth.Scheme, Credentials: cfg.ZooKeeper.Auth.Credentials},
	}, log)
	if err != nil {
		fmt.Fprintln(stderr, "zkgate config:", err)
		return exitFailure
	}
	defer zk.Close()
	dirs := []string{fleet.RoutesDir(cfg.Fleet.ConfigPath), fleet.ServicesDir(cfg.Fleet.ConfigPath)}
	st, err := zk.ReadDirs(dirs)
	if err != nil {
		fmt.Fprintln(stderr, "zkgate config:", err)
		return exitFailure
	}
	if sub == "pull" {
		return configPull(st, cfg, *outPath, stdout, stderr)
	}
	return configPush(zk, st, cfg, path, fs.Arg(0), stdout, stderr)
}

func configPull(st discovery.TreeState, cfg *config.Config, out string, stdout, stderr io.Writer) int {
	data, err := fleet.Pull(st, cfg.Fleet.ConfigPath)
	if err != nil {
		fmt.Fprintln(stderr, "zkgate config pull:", err)
		return exitFailure
	}
	if out == "" {
		_, _ = stdout.Write(data)
		return exitOK
	}
	if err := os.WriteFile(out, data, 0o644); err != nil {
		fmt.Fprintln(stderr, "zkgate config pull:", err)
		return exitFailure
	}
	return exitOK
}

func configPush(zk *discovery.Client, st discovery.TreeState, cfg *config.Config, cfgPath, file string, stdout, stderr io.Writer) int {
	data, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintln(stderr, "zkgate config push:", err)
		return exitUsage
	}
	changes, err := fleet.PushChanges(data, file, st, cfg.Fleet.ConfigPath)
	if err != nil {
		printErrors(stderr, err)
		return exitUsage
	}
	w := &fleet.Writer{Client: zk, ConfigPath: cfg.Fleet.ConfigPath, ACL: fleetACL(cfg), Check: fleetChecker(cfgPath, nil, nil),
		Current: func() (discovery.TreeState, bool) { return st, true }}
	if len(changes) == 0 {
		fmt.Fprintln(stdout, "zkgate config push: nothing to change")
		return exitOK
	}
	res, err := w.Apply(changes)
	var inv *fleet.InvalidError
	switch {
	case errors.As(err, &inv):
		printErrors(stderr, inv.Err)
		fmt.Fprintln(stderr, "zkgate config push: refused; nothing written")
		return exitUsage
	case err != nil:
		fmt.Fprintln(stderr, "zkgate config push:", err, "(nothing written)")
		return exitFailure
	}
	written, deleted := 0, 0
	for _, r := range res {
		if r.Version < 0 {
			deleted++
		} else {
			written++
		}
	}
	fmt.Fprintf(stdout, "zkgate config push: %d written, %d deleted, in one transaction\n", written, deleted)
	return exitOK
}

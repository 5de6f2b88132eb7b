package app

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zkgate/zkgate/internal/config"
	"github.com/zkgate/zkgate/internal/logging"
	"github.com/zkgate/zkgate/internal/zktest"
)

// When the config file's directory cannot be watched, watchReloads says so
// and SIGHUP still reloads (the log tells the operator to use it).
func TestSIGHUPReloadsWithoutFileWatch(t *testing.T) {
	// Were SIGHUP not handled, it would end the test binary: this
	// channel keeps the process alive so that the test fails instead.
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)
	path := filepath.Join(t.TempDir(), "missing", "gateway.yaml")
	reloads := make(chan string, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done, err := watchReloads(ctx, path, logrus.New(), func(reason string) { reloads <- reason })
	if err == nil {
		cancel()
		<-done
		t.Fatal("watching a missing directory returned no error")
	}
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the watcher did not stop within 10s of its context's end")
		}
	}()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case reason := <-reloads:
		if reason != "SIGHUP" {
			t.Fatalf("reload reason %q, want SIGHUP", reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SIGHUP did not reload within 10s when the file was not watched")
	}
}

// A start that fails (here the admin address is taken) leaves no access log
// writer behind: run closes what it opened on every failure path.
func TestFailedStartLeavesNoAccessLogWriter(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ap := taken.Addr().(*net.TCPAddr).Port
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	writeConfig(t, path, "127.0.0.1:1", zktest.FreePort(t), ap, echoRoute, echoService)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Log.AccessLog.Enabled = true
	log, err := logging.New("debug", "json", &syncBuffer{})
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{path: path, log: log, services: map[string]*service{}}
	g.cfg.Store(cfg)
	if err := g.run(context.Background(), cfg); err == nil {
		t.Fatal("run returned nil with the admin address taken")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var stacks bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&stacks, 2)
		if !strings.Contains(stacks.String(), "proxy.(*AccessLog).run") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the access log's writer outlived a failed start by 10s:\n%s", stacks.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

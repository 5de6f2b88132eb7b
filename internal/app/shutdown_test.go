package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/config"
	"github.com/zkgate/zkgate/internal/logging"
	"github.com/zkgate/zkgate/internal/zktest"
)

// Reloads fired while the gateway shuts down — through the admin API over
// HTTP, through config file changes, and by calling Reload directly (the
// function SIGHUP's handler runs) — never start a service after closeAll:
// once run has returned, every reload is refused, no service or route is
// left, and the file watcher's goroutine has ended. (SIGHUP itself is not
// sent: with the watcher gone it would end the test process.)
func TestReloadsDuringShutdownLeaveNothingRunning(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	pp, ap := zktest.FreePort(t), zktest.FreePort(t)
	writeConfig(t, path, srv.Addr(), pp, ap, echoRoute, echoService)
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	log, err := logging.New("debug", "json", out)
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{path: path, log: log, services: map[string]*service{}}
	g.cfg.Store(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.run(ctx, cfg) }()
	admin := fmt.Sprintf("http://127.0.0.1:%d", ap)
	zktest.WaitFor(t, 30*time.Second, func() bool { return statusOf(admin+"/readyz") == http.StatusOK }, "gateway ready")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	fire := func(f func()) {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					f()
				}
			}
		})
	}
	fire(func() { _ = g.Reload() })
	fire(func() {
		if res, err := http.Post(admin+"/api/reload", "application/json", nil); err == nil {
			res.Body.Close()
		}
	})
	// A rewrite every 300 ms: the watcher reloads after 250 ms of quiet.
	wg.Go(func() {
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = os.WriteFile(path, text, 0o600)
			}
		}
	})
	zktest.WaitFor(t, 20*time.Second, func() bool {
		s := out.String()
		return strings.Contains(s, `"reason":"file changed"`) && strings.Contains(s, `"reason":"admin API"`)
	}, "reloads through the file and the admin API while running")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway did not stop within 30s")
	}
	for range 20 {
		if err := g.Reload(); !errors.Is(err, errShuttingDown) {
			t.Fatalf("a reload after shutdown returned %v, want errShuttingDown", err)
		}
	}
	close(stop)
	wg.Wait()

	g.mu.Lock()
	services, routes := len(g.services), len(g.routes)
	g.mu.Unlock()
	if services != 0 || routes != 0 {
		t.Errorf("%d services and %d routes left after shutdown: started by a reload after closeAll, never stopped", services, routes)
	}
	var stacks bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&stacks, 2)
	if strings.Contains(stacks.String(), "app.watchReloads") {
		t.Errorf("the config file watcher outlived run:\n%s", stacks.String())
	}
	if t.Failed() {
		t.Logf("gateway log:\n%s", out.String())
	}
}

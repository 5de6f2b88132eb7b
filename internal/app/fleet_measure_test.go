package app

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/zktest"
)

// TestFleetMeasure measures fleet mode (issue 21's Measure section); it
// runs only when ZKGATE_FLEET_MEASURE is set, since it takes a minute and
// its figures are read, not checked:
//
//	ZKGATE_FLEET_MEASURE=1 go test -count=1 -run TestFleetMeasure -v ./internal/app
//
// Propagation: 100 route writes through one gateway's admin API, each timed
// from the write's acknowledgement to the moment all three gateways serve
// the new route (each polled on loopback). Scale: 1,000 routes and 1,000
// services pushed in ZooKeeper, then one gateway's start-up time (Serve to
// every route served), its heap (live bytes after a GC, the process's
// growth) and the time one more write takes to be served.
func TestFleetMeasure(t *testing.T) {
	if os.Getenv("ZKGATE_FLEET_MEASURE") == "" {
		t.Skip("set ZKGATE_FLEET_MEASURE=1 to measure fleet propagation and scale")
	}
	zktest.Require(t)
	srv := zktest.Start(t)
	conn := zktest.Connect(t, srv.Addr())
	register(t, conn, "echo", hostPort(backend(t, "a")))

	t.Run("propagation", func(t *testing.T) {
		e := newFleetEnv(srv)
		gws := []*gateway{e.start(t, "gw-1"), e.start(t, "gw-2"), e.start(t, "gw-3")}
		if code, body, _ := adminDo(t, http.MethodPut, gws[0].admin+"/api/services/echo", fleetToken, "",
			`{"discovery": {"zookeeper": {"path": "/services/echo"}}}`); code != http.StatusOK {
			t.Fatalf("PUT service = %d %s", code, body)
		}
		var lags []time.Duration
		for i := range 100 {
			body := fmt.Sprintf(`{"service": "echo", "match": {"path_prefix": "/p%d"}}`, i)
			if code, b, _ := adminDo(t, http.MethodPut, gws[0].admin+fmt.Sprintf("/api/routes/p%d", i), fleetToken, "", body); code != http.StatusOK {
				t.Fatalf("PUT = %d %s", code, b)
			}
			lags = append(lags, servedByAll(t, gws, fmt.Sprintf("/p%d/x", i)))
		}
		report(t, "propagation (ack to served by 3 gateways), 100 changes", lags)
	})

	t.Run("1000 routes and 1000 services", func(t *testing.T) {
		e := newFleetEnv(srv)
		dir := t.TempDir()
		var b strings.Builder
		b.WriteString("routes:\n")
		for i := range 1000 {
			fmt.Fprintf(&b, "  - {name: r%d, service: s%d, match: {path_prefix: /r%d}}\n", i, i, i)
		}
		b.WriteString("  - {name: probe, service: echo, match: {path_prefix: /probe}}\nservices:\n  echo: {discovery: {zookeeper: {path: /services/echo}}}\n")
		for i := range 1000 {
			fmt.Fprintf(&b, "  s%d: {discovery: {zookeeper: {path: /services/s%d}}}\n", i, i)
		}
		file := dir + "/big.yaml"
		if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		// A first gateway gives the file zkgate config push uses.
		seed := e.start(t, "seed")
		var out, errOut strings.Builder
		start := time.Now()
		if code := Main([]string{"config", "push", "--config", seed.cfgPath, file}, &out, &errOut); code != exitOK {
			t.Fatalf("push = %d: %s", code, errOut.String())
		}
		t.Logf("push of 1,001 routes and 1,001 services (one transaction): %v", time.Since(start).Round(time.Millisecond))
		servedByAll(t, []*gateway{seed}, "/probe/x")
		seed.stop(t)

		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		start = time.Now()
		g := e.start(t, "big")
		servedByAll(t, []*gateway{g}, "/probe/x")
		startup := time.Since(start)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		t.Logf("start-up with 1,001 routes and 1,001 services (Serve to ready and serving): %v", startup.Round(time.Millisecond))
		t.Logf("heap of the gateway (live heap after GC, growth): %.1f MiB; process heap in use after: %.1f MiB",
			float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), float64(after.HeapInuse)/(1<<20))

		var lags []time.Duration
		for i := range 20 {
			body := fmt.Sprintf(`{"service": "echo", "match": {"path_prefix": "/q%d"}}`, i)
			if code, b, _ := adminDo(t, http.MethodPut, g.admin+fmt.Sprintf("/api/routes/q%d", i), fleetToken, "", body); code != http.StatusOK {
				t.Fatalf("PUT = %d %s", code, b)
			}
			lags = append(lags, servedByAll(t, []*gateway{g}, fmt.Sprintf("/q%d/x", i)))
		}
		report(t, "one change at 1,000 routes and services (ack to served), 20 changes", lags)
		applied := grepLines(g.log.String(), `fleet configuration applied`)
		t.Logf("last apply lines:\n%s", lastLines(applied, 3))
	})
}

// servedByAll polls each gateway for path until it answers 200 and returns
// how long the slowest took from the call.
func servedByAll(t *testing.T, gws []*gateway, path string) time.Duration {
	t.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	lags := make([]time.Duration, len(gws))
	client := &http.Client{Timeout: 2 * time.Second}
	for i, g := range gws {
		wg.Go(func() {
			// Polled every millisecond (the figures' resolution): a
			// tight loop per gateway would take the CPU the gateways
			// need (two cores here, shared with ZooKeeper).
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			deadline := time.After(30 * time.Second)
			for {
				resp, err := client.Get(g.proxy + path)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						lags[i] = time.Since(start)
						return
					}
				}
				select {
				case <-tick.C:
				case <-deadline:
					lags[i] = -1
					return
				}
			}
		})
	}
	wg.Wait()
	if slices.Contains(lags, -1) {
		t.Fatalf("%s not served by every gateway within 30s: %v", path, lags)
	}
	return slices.Max(lags)
}

func report(t *testing.T, what string, lags []time.Duration) {
	s := slices.Clone(lags)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	t.Logf("%s: p50 %v, p99 %v, max %v", what, q(0.50).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), s[len(s)-1].Round(10*time.Microsecond))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

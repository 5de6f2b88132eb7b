package app

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkgate/zkgate/internal/admin"
	"github.com/zkgate/zkgate/internal/zktest"
)

// capacityBackend is a backend that serves at most capacity requests at once
// and sheds the others with 503, as an overloaded server does; /healthz
// always answers 200 and costs no capacity.
type capacityBackend struct {
	*httptest.Server
	slots chan struct{}
	hits  atomic.Int64
}

func newCapacityBackend(t *testing.T, capacity int) *capacityBackend {
	t.Helper()
	b := &capacityBackend{slots: make(chan struct{}, capacity)}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		b.hits.Add(1)
		select {
		case b.slots <- struct{}{}:
		default:
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
		time.Sleep(2 * time.Millisecond) // the work a request costs
		<-b.slots
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(b.Close)
	return b
}

// serviceInfo returns the admin API's view of the echo service.
func serviceInfo(t *testing.T, g *gateway) admin.ServiceInfo {
	t.Helper()
	return serviceInfoOf(t, g, "echo")
}

// serviceInfoOf returns the admin API's view of the named service.
func serviceInfoOf(t *testing.T, g *gateway, name string) admin.ServiceInfo {
	t.Helper()
	_, body := get(t, g.admin+"/api/services/"+name)
	var svc admin.ServiceInfo
	if err := json.Unmarshal([]byte(body), &svc); err != nil {
		t.Fatalf("admin /api/services/%s: %v in %s", name, err, body)
	}
	return svc
}

// load sends requests to url from workers goroutines until stop is closed
// and counts the failed ones (transport errors and statuses other than
// 200).
type load struct {
	sent, failed atomic.Int64
	stop         chan struct{}
	once         sync.Once
	wg           sync.WaitGroup
}

func startLoad(url string, workers int) *load {
	l := &load{stop: make(chan struct{})}
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: workers, Proxy: nil},
	}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.sent.Add(1)
				resp, err := client.Get(url)
				if err != nil {
					l.failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					l.failed.Add(1)
				}
			}
		}()
	}
	return l
}

// finish stops the load and returns the requests sent and failed. It may be
// called more than once.
func (l *load) finish() (sent, failed int64) {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
	return l.sent.Load(), l.failed.Load()
}

// TestRemovalGuardUnderLoad deletes 9 of 10 members' znodes in one
// ZooKeeper transaction while load flows; 3 of those 9 backends are really
// down. With the guard, the 6 live ones keep serving for the hold while the
// 3 dead ones leave at once; without it, the one member left takes all the
// load and sheds most of it. The requests lost in the 2s after the deletion
// are logged for both.
func TestRemovalGuardUnderLoad(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	conn := zktest.Connect(t, srv.Addr())
	const window = 2 * time.Second
	run := func(t *testing.T, guard string) (sent, failed int64, g *gateway, dead []string) {
		service := `  echo:
    discovery: { zookeeper: { path: /services/echo } }
    health_check:
      active: { type: http, path: /healthz, interval: 1s, timeout: 500ms, healthy_threshold: 1 }
      passive: { max_failures: 0 }
    removal_guard: ` + guard
		g = startGateway(t, srv.Addr(), echoRoute, service)
		bs := make([]*capacityBackend, 10)
		nodes := make([]string, 10)
		for i := range bs {
			bs[i] = newCapacityBackend(t, 2)
			nodes[i] = register(t, conn, "echo", hostPort(bs[i].Server))
		}
		t.Cleanup(func() {
			for _, n := range nodes[:1] {
				_ = conn.Delete(n, -1)
			}
		})
		zktest.WaitFor(t, 10*time.Second, func() bool {
			svc := serviceInfo(t, g)
			return svc.Counts.Healthy == 10
		}, "ten healthy members")

		l := startLoad(g.proxy+"/echo/", 8)
		zktest.WaitFor(t, 5*time.Second, func() bool { return l.sent.Load() > 200 }, "load flowing")
		before, failedBefore := l.sent.Load(), l.failed.Load()
		for _, b := range bs[1:4] {
			b.Close() // really down
			dead = append(dead, hostPort(b.Server))
		}
		ops := make([]any, 0, 9)
		for _, n := range nodes[1:] {
			ops = append(ops, &zk.DeleteRequest{Path: n, Version: -1})
		}
		if _, err := conn.Multi(ops...); err != nil {
			t.Fatalf("delete 9 of 10 znodes: %v", err)
		}
		deadline := time.Now().Add(window)
		zktest.WaitFor(t, window+time.Second, func() bool { return !time.Now().Before(deadline) }, "load window")
		sent, failed = l.finish()
		return sent - before, failed - failedBefore, g, dead
	}

	var onSent, onFailed, offSent, offFailed int64
	t.Run("guard", func(t *testing.T) {
		var g *gateway
		var dead []string
		onSent, onFailed, g, dead = run(t, "{ max_percent: 50, hold: 30s }")
		svc := serviceInfo(t, g)
		if !svc.RemovalGuard.Active || svc.RemovalGuard.Held != 6 || svc.RemovalGuard.Engagements != 1 || len(svc.Endpoints) != 7 {
			t.Fatalf("during the hold: guard %+v, %d endpoints; want active, 6 held, 1 engagement, 7 endpoints", svc.RemovalGuard, len(svc.Endpoints))
		}
		if time.Until(svc.RemovalGuard.Until) < 20*time.Second {
			t.Fatalf("hold ends at %v, want about 30s after the deletion", svc.RemovalGuard.Until)
		}
		for _, e := range svc.Endpoints {
			for _, d := range dead {
				if e.Addr == d {
					t.Fatalf("dead backend %s still a member during the hold", d)
				}
			}
		}
		waitMetric(t, g, `zkgate_removal_guard_active{service="echo"} 1`)
		waitMetric(t, g, `zkgate_removal_guard_engagements_total{service="echo"} 1`)
		if got := grepLines(g.log.String(), "removal guard engaged"); !strings.Contains(got, "9 of 10 members removed at once, holding them for 30s") || !strings.Contains(got, `"service":"echo"`) {
			t.Fatalf("engagement log: %q", got)
		}
	})
	t.Run("no_guard", func(t *testing.T) {
		var g *gateway
		offSent, offFailed, g, _ = run(t, "{ max_percent: 0 }")
		if n := len(serviceInfo(t, g).Endpoints); n != 1 {
			t.Fatalf("%d endpoints without the guard, want 1", n)
		}
	})
	t.Logf("requests lost in the %s after deleting 9 of 10 znodes (3 backends down): with guard %d of %d, without guard %d of %d",
		window, onFailed, onSent, offFailed, offSent)
	if !(onFailed*10 < offFailed) {
		t.Errorf("the guard lost %d requests, not an order of magnitude fewer than the %d lost without it", onFailed, offFailed)
	}
}

// probedBackend records when its first health probe and its first proxied
// request arrived; status is what it answers to both.
type probedBackend struct {
	*httptest.Server
	status     int
	mu         sync.Mutex
	firstProbe time.Time
	firstReq   time.Time
	requests   int
}

func newProbedBackend(t *testing.T, status int) *probedBackend {
	t.Helper()
	b := &probedBackend{status: status}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		b.mu.Lock()
		if r.URL.Path == "/healthz" {
			if b.firstProbe.IsZero() {
				b.firstProbe = now
			}
		} else {
			b.requests++
			if b.firstReq.IsZero() {
				b.firstReq = now
			}
		}
		b.mu.Unlock()
		w.WriteHeader(b.status)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *probedBackend) seen() (firstProbe, firstReq time.Time, requests int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.firstProbe, b.firstReq, b.requests
}

// TestNewMemberRoutedOnlyAfterFirstPassingProbe registers, while load flows,
// a backend that answers 500 to everything: no request may reach it. Then a
// backend that passes registers: it gets traffic within a second, and none
// before its first probe.
func TestNewMemberRoutedOnlyAfterFirstPassingProbe(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	conn := zktest.Connect(t, srv.Addr())
	service := `  echo:
    discovery: { zookeeper: { path: /services/echo } }
    health_check:
      active: { type: http, path: /healthz, interval: 1s, timeout: 500ms, require_first_pass: true }
      passive: { max_failures: 0 }`
	g := startGateway(t, srv.Addr(), echoRoute, service)
	for range 3 {
		register(t, conn, "echo", hostPort(newProbedBackend(t, http.StatusOK).Server))
	}
	zktest.WaitFor(t, 10*time.Second, func() bool { return serviceInfo(t, g).Counts.Healthy == 3 }, "three healthy members")
	l := startLoad(g.proxy+"/echo/", 4)
	defer l.finish()

	bad := newProbedBackend(t, http.StatusInternalServerError)
	register(t, conn, "echo", hostPort(bad.Server))
	zktest.WaitFor(t, 5*time.Second, func() bool {
		for _, e := range serviceInfo(t, g).Endpoints {
			if e.Addr == hostPort(bad.Server) {
				return e.State == "unhealthy"
			}
		}
		return false
	}, "the failing member probed and unhealthy")
	sentAfter := l.sent.Load()
	zktest.WaitFor(t, 5*time.Second, func() bool { return l.sent.Load() > sentAfter+100 }, "100 more requests")
	if _, _, n := bad.seen(); n != 0 {
		t.Fatalf("the member answering 500 received %d requests; want none before a passing probe", n)
	}

	good := newProbedBackend(t, http.StatusOK)
	registered := time.Now()
	register(t, conn, "echo", hostPort(good.Server))
	zktest.WaitFor(t, 5*time.Second, func() bool { _, first, _ := good.seen(); return !first.IsZero() }, "the passing member gets traffic")
	probe, first, _ := good.seen()
	if probe.IsZero() || first.Before(probe) {
		t.Fatalf("first request at %v, first probe at %v: traffic before the first probe", first, probe)
	}
	if d := first.Sub(registered); d > time.Second {
		t.Fatalf("first request %s after registration, want within 1s (one probe, sent at once)", d)
	} else {
		t.Logf("passing member: first probe %s and first request %s after registration",
			probe.Sub(registered).Round(time.Millisecond), d.Round(time.Millisecond))
	}
	sent, failed := l.finish()
	if failed != 0 {
		t.Fatalf("%d of %d requests failed", failed, sent)
	}
}

package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/zktest"
)

// startAnswer is one request's outcome while the gateway has no membership.
type startAnswer struct {
	status     int
	retryAfter string
	body       map[string]string
	took       time.Duration
}

func askEcho(t *testing.T, gw *gateway) startAnswer {
	t.Helper()
	start := time.Now()
	resp, err := gw.client.Get(gw.url)
	if err != nil {
		t.Fatalf("GET %s: %v (after %v)", gw.url, err, time.Since(start))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := startAnswer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), took: time.Since(start)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// TestStartWithoutZooKeeper starts a gateway whose only ZooKeeper server
// refuses it. Requests are answered at once with 503, a JSON error body and
// Retry-After; /readyz says why; the log says which server it keeps trying
// and what failed. When ZooKeeper lets it in, the gateway routes.
func TestStartWithoutZooKeeper(t *testing.T) {
	row := scenario(t, "9 start without ZooKeeper")
	zks := zktest.Start(t)
	cut := zktest.NewProxy(t, zks.Addr())
	cut.Cut()
	e := &env{servers: []string{zks.Addr()}, conn: zktest.Connect(t, zks.Addr())}
	ensurePath(t, e.conn, servicePath)
	e.members = trackChildren(t, e.conn, servicePath)
	e.procs = newProcs(t)
	e.gw = launchGateway(t, e.procs, gatewayConfig{ZooKeeper: []string{cut.Addr()}})
	await(t, startWait, func() bool {
		if e.gw.proc.exited() {
			t.Fatalf("gateway exited without ZooKeeper (%s):\n%s", e.gw.proc.state(), tail(e.gw.proc.stderr, tailLines))
		}
		resp, err := e.gw.client.Get(e.gw.url)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, "the gateway to answer on %s", e.gw.url)

	var slowest time.Duration
	for range 20 {
		a := askEcho(t, e.gw)
		slowest = max(slowest, a.took)
		if a.status != http.StatusServiceUnavailable || a.retryAfter == "" || a.body["error"] != "no healthy endpoint" || a.body["service"] != "echo" {
			t.Fatalf("without ZooKeeper: %d, Retry-After %q, body %v; want 503 with Retry-After and the JSON error", a.status, a.retryAfter, a.body)
		}
	}
	// A bound that tells an answer from a hang, not a speed figure.
	if slowest > time.Second {
		t.Errorf("slowest 503 took %v; want an answer at once", slowest)
	}
	code, body := e.gw.get("/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "no zookeeper session") {
		t.Errorf("/readyz: %d %s; want 503 naming the missing session", code, body)
	}
	await(t, 15*time.Second, func() bool {
		log, _ := os.ReadFile(e.gw.proc.stderr)
		return strings.Contains(string(log), "no zookeeper session for") && strings.Contains(string(log), cut.Addr()) &&
			strings.Contains(string(log), "last_error")
	}, "the log to say it is still trying %s, with the last error", cut.Addr())
	if z := e.gw.zooKeeper(t); z.State != "connecting" || z.Connected || z.LastError == "" {
		t.Errorf("/api/zookeeper without a session: %+v; want connecting, with the last error", z)
	}

	b := e.backend(t, "s1")
	e.registeredAt(t, b)
	cut.Restore()
	restored := time.Now()
	await(t, 30*time.Second, func() bool { return askEcho(t, e.gw).status == http.StatusOK }, "a 200 once ZooKeeper answers")
	routed := time.Since(restored)
	if z := e.gw.zooKeeper(t); z.State != "connected" || !z.Connected {
		t.Errorf("/api/zookeeper after the session: %+v; want connected", z)
	}
	row.note("503s answered in at most %v; routed %v after ZooKeeper let it in", slowest.Round(time.Millisecond), routed.Round(time.Millisecond))
}

// TestStopWithoutZooKeeper sends SIGTERM to a gateway that never reached
// ZooKeeper: it exits promptly, with status 0, and says so.
func TestStopWithoutZooKeeper(t *testing.T) {
	row := scenario(t, "9b SIGTERM without ZooKeeper")
	closed := zktest.RefusedAddr(t)
	g := newProcs(t)
	gw := launchGateway(t, g, gatewayConfig{ZooKeeper: []string{closed}})
	await(t, startWait, func() bool {
		code, _ := gw.get("/livez")
		return code == http.StatusOK
	}, "the gateway's /livez")
	start := time.Now()
	if err := gw.proc.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !gw.proc.wait(stopGrace) {
		t.Fatalf("gateway still running %v after SIGTERM without ZooKeeper", stopGrace)
	}
	took := time.Since(start)
	if gw.proc.state() != "exit status 0" {
		t.Errorf("gateway ended with %s; want exit status 0", gw.proc.state())
	}
	log, _ := os.ReadFile(gw.proc.stderr)
	if !strings.Contains(string(log), "zkgate stopped") {
		t.Errorf("the log does not say the gateway stopped:\n%s", tail(gw.proc.stderr, tailLines))
	}
	row.note("exited %v after SIGTERM", took.Round(time.Millisecond))
}

// TestSecondSignalExitsAtOnce: a second SIGTERM during a long drain ends the
// gateway at once, with status 1 and a log line saying why.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	row := scenario(t, "9c second SIGTERM during the drain")
	closed := zktest.RefusedAddr(t)
	g := newProcs(t)
	gw := launchGateway(t, g, gatewayConfig{ZooKeeper: []string{closed}, DrainDelay: time.Minute})
	await(t, startWait, func() bool {
		code, _ := gw.get("/livez")
		return code == http.StatusOK
	}, "the gateway's /livez")
	if err := gw.proc.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	await(t, 10*time.Second, func() bool {
		log, _ := os.ReadFile(gw.proc.stderr)
		return strings.Contains(string(log), "shutting down: draining")
	}, "the drain to start")
	start := time.Now()
	if err := gw.proc.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The drain alone would take a minute.
	if !gw.proc.wait(stopGrace) {
		t.Fatalf("gateway still running %v after a second SIGTERM", stopGrace)
	}
	took := time.Since(start)
	if gw.proc.state() != "exit status 1" {
		t.Errorf("gateway ended with %s; want exit status 1", gw.proc.state())
	}
	log, _ := os.ReadFile(gw.proc.stderr)
	if !strings.Contains(string(log), "second signal during shutdown") {
		t.Errorf("the log does not say why it exited:\n%s", tail(gw.proc.stderr, tailLines))
	}
	row.note("exited %v after the second SIGTERM", took.Round(time.Millisecond))
}

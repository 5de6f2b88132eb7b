package e2e

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkgate/zkgate/internal/admin"
	"github.com/zkgate/zkgate/internal/zktest"
)

// TestKillBackend kills one of three backends with SIGKILL under load: no
// request fails (connect failures are retried on another endpoint), the
// gateway takes the endpoint out before the backend's ZooKeeper session
// expires, and the znode goes when the session does.
func TestKillBackend(t *testing.T) {
	row := scenario(t, "3 kill -9 backend")
	zks := zktest.Start(t)
	e := newEnv(t, []string{zks.Addr()}, gatewayConfig{ActiveCheck: true})
	bs := []*backend{e.backend(t, "k1"), e.backend(t, "k2"), e.backend(t, "k3")}
	e.awaitEndpoints(t, 3)
	load := startLoad(t, e.gw)
	for _, b := range bs {
		firstSeen(t, load, b.id, 10*time.Second)
	}
	time.Sleep(time.Second) // the scenario: steady load on three backends first

	victim := bs[2]
	killAt := time.Now()
	if err := victim.proc.kill(); err != nil {
		t.Fatal(err)
	}
	var state string
	await(t, backendSession, func() bool {
		state = e.gw.endpointState(t, victim.addr)
		return state != admin.StateHealthy
	}, "the gateway to take %s (killed) out, before its %v session expires", victim.addr, backendSession)
	ejected := time.Since(killAt)
	if state == "" {
		state = "absent"
	}
	if !e.members.has(victim.addr) {
		t.Errorf("the znode of %s was gone when the gateway took it out (%v after the kill): the ejection did not precede the session expiry",
			victim.id, ejected)
	}

	var goneAt time.Time
	await(t, backendSession+20*time.Second, func() bool {
		var ok bool
		goneAt, ok = e.members.goneAt(victim.addr)
		return ok
	}, "the znode %s to go with its session", victim.node())
	gone := goneAt.Sub(killAt)
	// The server expires a session at most one timeout after it last
	// heard from the client, which pings every third of it.
	if gone < backendSession/2 {
		t.Errorf("znode gone %v after the kill, well before the %v session timeout: not a session expiry", gone, backendSession)
	}
	e.awaitEndpoints(t, 2)
	time.Sleep(time.Second) // the scenario: load on the two survivors
	res := load.Stop()
	row.load(res)
	checkNoFailures(t, e.gw, res, row)
	row.note("out-of-balancer(%s)=%v znode-gone=%v (session %v)", state,
		ejected.Round(time.Millisecond), gone.Round(time.Millisecond), backendSession)
	t.Logf("load: %s", res.Summary())
}

// hungServer accepts TCP connections and never answers.
type hungServer struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

func startHung(t *testing.T) *hungServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("hung listener: %v", err)
	}
	h := &hungServer{ln: ln}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.accepted.Add(1)
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.conns {
			_ = c.Close()
		}
	})
	return h
}

func (h *hungServer) addr() string { return h.ln.Addr().String() }

// TestHungBackend registers, among two good backends, an endpoint that
// accepts connections and never answers. The requests sent to it get 504
// within the route timeout, every other request succeeds, and passive health
// checking (timeouts count) ejects it; nothing is sent to it after that.
func TestHungBackend(t *testing.T) {
	row := scenario(t, "4 hung backend")
	const routeTimeout = time.Second
	zks := zktest.Start(t)
	// No active probes: the ejection must come from the requests.
	e := newEnv(t, []string{zks.Addr()}, gatewayConfig{RouteTimeout: routeTimeout, Ejection: time.Minute})
	bs := []*backend{e.backend(t, "h1"), e.backend(t, "h2")}
	e.awaitEndpoints(t, 2)
	load := startLoad(t, e.gw)
	for _, b := range bs {
		firstSeen(t, load, b.id, 10*time.Second)
	}

	hung := startHung(t)
	regAt := time.Now()
	if _, err := e.conn.Create(servicePath+"/"+hung.addr(), []byte(hung.addr()+",1"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("register the hung endpoint: %v", err)
	}
	await(t, 20*time.Second, func() bool {
		return e.gw.endpointState(t, hung.addr()) == admin.StateEjected
	}, "passive checks to eject the hung endpoint %s", hung.addr())
	ejectAt := time.Now()
	time.Sleep(3 * time.Second) // the scenario: load goes on with the hung endpoint ejected
	if st := e.gw.endpointState(t, hung.addr()); st != admin.StateEjected {
		t.Errorf("hung endpoint state %q 3s after its ejection, want %q", st, admin.StateEjected)
	}
	res := load.Stop()
	row.load(res)

	entries := accessLog(t, e.gw, res.Sent)
	var affected int
	var slowest time.Duration
	for _, en := range entries {
		if en.ServiceAddr != hung.addr() {
			if en.DownstreamStatus != http.StatusOK {
				t.Errorf("request %s to good endpoint %s: status %d", en.RequestMethod, en.ServiceAddr, en.DownstreamStatus)
			}
			continue
		}
		affected++
		slowest = max(slowest, en.Duration)
		if en.DownstreamStatus != http.StatusGatewayTimeout {
			t.Errorf("request %s to the hung endpoint: status %d, want 504", en.RequestMethod, en.DownstreamStatus)
		}
		// The route timeout plus scheduling slack on a busy machine.
		if en.Duration > routeTimeout+time.Second {
			t.Errorf("request %s to the hung endpoint took %v, route timeout %v", en.RequestMethod, en.Duration, routeTimeout)
		}
		if en.Time.After(ejectAt) {
			t.Errorf("request %s arrived at %v and was sent to the hung endpoint, ejected by %v", en.RequestMethod, en.Time, ejectAt)
		}
	}
	if affected == 0 {
		t.Errorf("no request was sent to the hung endpoint: the scenario tested nothing")
	}
	if res.Failed != affected || res.ByStatus[http.StatusGatewayTimeout] != affected {
		t.Errorf("load saw %d failed requests (by status %v); the access log %d sent to the hung endpoint: %s",
			res.Failed, res.ByStatus, affected, failedRequests(entries))
	}
	row.note("affected=%d (all 504, slowest %v, route timeout %v) ejected %v after registration; connections accepted by the hung endpoint=%d",
		affected, slowest.Round(time.Millisecond), routeTimeout, ejectAt.Sub(regAt).Round(time.Millisecond), hung.accepted.Load())
	t.Logf("load: %s", res.Summary())
	if t.Failed() {
		t.Logf("failed requests: %s", failedRequests(entries))
	}
}

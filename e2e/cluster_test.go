package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkgate/zkgate/internal/admin"
	"github.com/zkgate/zkgate/internal/zktest"
)

const (
	// servicePath is where the echo backends register.
	servicePath = "/services/echo"
	// backendSession is the backends' ZooKeeper session timeout.
	backendSession = 6 * time.Second
	// backendDrain is how long a backend keeps serving after deregistering.
	backendDrain = time.Second
	// startWait bounds a process start (the machine may be busy).
	startWait = 30 * time.Second
	// retryOn is the gateway's retries.on: connect failures, and (since
	// the proxy counts them so) idempotent requests whose connection broke;
	// a POST already sent is never retried.
	retryOn = "[connect_failure]"
)

// gatewayConfig is what varies between the scenarios' gateway
// configurations; yaml writes the rest: short health-check intervals, passive
// ejection after two failures, three attempts on connect failures, and the
// debug log level, at which the proxy logs why a request failed.
type gatewayConfig struct {
	ZooKeeper      []string
	SessionTimeout time.Duration // default 4s
	RouteTimeout   time.Duration // default 2s
	// ActiveCheck turns on HTTP probes of /healthz every 500ms.
	ActiveCheck bool
	// Ejection is how long passive checks eject an endpoint (default 30s).
	Ejection time.Duration
	// DrainDelay is shutdown.drain_delay (default 0).
	DrainDelay time.Duration
	// SnapshotFile is zookeeper.snapshot_file (default "": off).
	SnapshotFile string
}

// yaml renders the configuration file for a gateway listening on web and
// adm.
func (c gatewayConfig) yaml(web, adm string) string {
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 4 * time.Second
	}
	if c.RouteTimeout == 0 {
		c.RouteTimeout = 2 * time.Second
	}
	if c.Ejection == 0 {
		c.Ejection = 30 * time.Second
	}
	active := "{type: none}"
	if c.ActiveCheck {
		active = "{type: http, path: /healthz, interval: 500ms, timeout: 400ms, healthy_threshold: 1, unhealthy_threshold: 2}"
	}
	servers := make([]string, len(c.ZooKeeper))
	for i, s := range c.ZooKeeper {
		servers[i] = strconv.Quote(s)
	}
	return fmt.Sprintf(`# written by zkgate's e2e tests
entry_points:
  web:
    address: %q
admin:
  address: %q
log:
  level: debug
  format: json
  access_log:
    enabled: true
shutdown:
  drain_delay: %s
  grace_timeout: 5s
zookeeper:
  servers: [%s]
  session_timeout: %s
  base_path: /services
  resync_interval: 30s
  snapshot_file: %q
routes:
  - name: echo
    match:
      path_prefix: /echo
    strip_prefix: true
    service: echo
    balancer: round_robin
    timeout: %s
services:
  echo:
    discovery:
      zookeeper:
        path: %s
        format: auto
    health_check:
      active: %s
      passive:
        max_failures: 2
        ejection: %s
        max_ejection_percent: 50
    timeouts:
      dial: 500ms
      response_header: 15s
    retries:
      attempts: 3
      on: %s
`, web, adm, c.DrainDelay, strings.Join(servers, ", "), c.SessionTimeout, c.SnapshotFile, c.RouteTimeout, servicePath, active, c.Ejection, retryOn)
}

// gateway is a running zkgate process.
type gateway struct {
	proc   *process
	config string
	url    string // the echo route, "http://127.0.0.1:port/echo/"
	admin  string // "http://127.0.0.1:port"
	client *http.Client
}

// startGateway writes cfg into t.TempDir(), starts zkgate with it and waits
// until /readyz answers 200.
func startGateway(t *testing.T, g *procs, cfg gatewayConfig) *gateway {
	t.Helper()
	gw := launchGateway(t, g, cfg)
	await(t, startWait, func() bool {
		if gw.proc.exited() {
			t.Fatalf("gateway exited during start (%s):\n%s", gw.proc.state(), tail(gw.proc.stderr, tailLines))
		}
		code, _ := gw.get("/readyz")
		return code == http.StatusOK
	}, "the gateway's /readyz to answer 200 (log %s)", gw.proc.stderr)
	return gw
}

// launchGateway writes cfg into t.TempDir() and starts zkgate with it,
// without waiting for anything.
func launchGateway(t *testing.T, g *procs, cfg gatewayConfig) *gateway {
	t.Helper()
	web := "127.0.0.1:" + strconv.Itoa(zktest.FreePort(t))
	adm := "127.0.0.1:" + strconv.Itoa(zktest.FreePort(t))
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, []byte(cfg.yaml(web, adm)), 0o644); err != nil {
		t.Fatalf("write gateway config: %v", err)
	}
	gw := &gateway{
		config: path,
		url:    "http://" + web + "/echo/",
		admin:  "http://" + adm,
		client: &http.Client{Timeout: 5 * time.Second},
	}
	gw.proc = g.start("gateway", bins.zkgate, "serve", "--config", path)
	return gw
}

// get fetches an admin path and returns the status and body (0 on error).
func (gw *gateway) get(path string) (int, []byte) {
	resp, err := gw.client.Get(gw.admin + path)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil
	}
	return resp.StatusCode, b
}

// getJSON fetches an admin path into v and fails t on any error.
func (gw *gateway) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	code, b := gw.get(path)
	if code != http.StatusOK {
		t.Fatalf("admin GET %s: status %d: %s", path, code, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("admin GET %s: decode: %v", path, err)
	}
}

// service returns what the admin API says about the echo service.
func (gw *gateway) service(t *testing.T) admin.ServiceInfo {
	t.Helper()
	var s admin.ServiceInfo
	gw.getJSON(t, "/api/services/echo", &s)
	return s
}

// zooKeeper returns the admin API's view of the gateway's session.
func (gw *gateway) zooKeeper(t *testing.T) admin.ZooKeeperInfo {
	t.Helper()
	var z admin.ZooKeeperInfo
	gw.getJSON(t, "/api/zookeeper", &z)
	return z
}

// endpointState returns the admin state of the echo endpoint at addr, "" when
// the gateway does not list it.
func (gw *gateway) endpointState(t *testing.T, addr string) string {
	t.Helper()
	for _, ep := range gw.service(t).Endpoints {
		if ep.Addr == addr {
			return ep.State
		}
	}
	return ""
}

// healthyAddrs returns the addresses of the echo endpoints in state healthy.
func (gw *gateway) healthyAddrs(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, ep := range gw.service(t).Endpoints {
		if ep.State == admin.StateHealthy {
			out = append(out, ep.Addr)
		}
	}
	return out
}

// metric returns the value of the sample of /metrics whose name and labels
// start with prefix (e.g. `zkgate_x_total{service="echo"}`), false when
// there is none.
func (gw *gateway) metric(t *testing.T, prefix string) (float64, bool) {
	t.Helper()
	code, b := gw.get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("admin GET /metrics: status %d", code)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("/metrics: %q: %v", line, err)
		}
		return v, true
	}
	return 0, false
}

// backend is a running echo-backend process.
type backend struct {
	id   string
	addr string
	proc *process
}

// startBackend starts an echo backend registering in zkServers under
// servicePath and waits until it answers /healthz. It registers right after
// it listens: the znode (named addr) may appear a little later.
func startBackend(t *testing.T, g *procs, id string, zkServers []string) *backend {
	t.Helper()
	b := &backend{id: id, addr: "127.0.0.1:" + strconv.Itoa(zktest.FreePort(t))}
	b.proc = g.start(id, bins.echo,
		"--listen", b.addr, "--advertise", b.addr, "--id", id,
		"--zookeeper", strings.Join(zkServers, ","), "--path", servicePath, "--weight", "1",
		"--session-timeout", backendSession.String(), "--drain", backendDrain.String())
	client := &http.Client{Timeout: time.Second}
	await(t, startWait, func() bool {
		if b.proc.exited() {
			t.Fatalf("backend %s exited during start (%s):\n%s", id, b.proc.state(), tail(b.proc.stderr, tailLines))
		}
		resp, err := client.Get("http://" + b.addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "backend %s to answer /healthz", id)
	return b
}

// node returns the backend's znode path (plain format: named by address).
func (b *backend) node() string { return servicePath + "/" + b.addr }

// env is one scenario's world: ZooKeeper, a client of it following the
// service's members, the processes, the gateway.
type env struct {
	servers []string // ZooKeeper, as backends reach it
	conn    *zk.Conn
	members *tracker
	procs   *procs
	gw      *gateway
}

// newEnv connects to ZooKeeper at servers, creates the service path, starts
// following its members, and starts a gateway with cfg (whose ZooKeeper
// servers default to servers).
func newEnv(t *testing.T, servers []string, cfg gatewayConfig) *env {
	t.Helper()
	e := &env{servers: servers, conn: zktest.Connect(t, servers...)}
	ensurePath(t, e.conn, servicePath)
	e.members = trackChildren(t, e.conn, servicePath)
	e.procs = newProcs(t)
	if len(cfg.ZooKeeper) == 0 {
		cfg.ZooKeeper = servers
	}
	e.gw = startGateway(t, e.procs, cfg)
	return e
}

// backend starts an echo backend registering with the env's ZooKeeper.
func (e *env) backend(t *testing.T, id string) *backend {
	t.Helper()
	return startBackend(t, e.procs, id, e.servers)
}

// registeredAt waits until b's znode was seen and returns its creation time.
func (e *env) registeredAt(t *testing.T, b *backend) time.Time {
	t.Helper()
	var at time.Time
	await(t, 15*time.Second, func() bool {
		var ok bool
		at, ok = e.members.createdAt(b.addr)
		return ok
	}, "the znode %s of %s", b.node(), b.id)
	return at
}

// awaitEndpoints waits until the gateway lists exactly want echo endpoints,
// every one healthy.
func (e *env) awaitEndpoints(t *testing.T, want int) {
	t.Helper()
	var last admin.ServiceInfo
	ok := zktest.Poll(15*time.Second, func() bool {
		last = e.gw.service(t)
		return last.Counts.Total == want && last.Counts.Healthy == want
	})
	if !ok {
		t.Fatalf("gateway lists %d echo endpoints (%d healthy), want %d healthy: %+v",
			last.Counts.Total, last.Counts.Healthy, want, last.Endpoints)
	}
}

// stopGracefully sends SIGTERM to every backend at once and waits until each
// has exited with status 0.
func stopGracefully(t *testing.T, bs ...*backend) {
	t.Helper()
	for _, b := range bs {
		if err := b.proc.signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range bs {
		if !b.proc.wait(stopGrace) {
			t.Fatalf("backend %s still running %v after SIGTERM", b.id, stopGrace)
		}
		if b.proc.err != nil {
			t.Errorf("backend %s: %s after SIGTERM, want exit status 0:\n%s", b.id, b.proc.state(), tail(b.proc.stderr, tailLines))
		}
	}
}

package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkgate/zkgate/internal/config"
	"github.com/zkgate/zkgate/internal/zktest"
)

// Fleet mode against one real ZooKeeper: several gateways run in this
// process, each a Serve of its own file, sharing the routes and services
// under one fleet.config_path. Each case uses paths of its own.

const fleetToken = "fleet-test-token"

var fleetSeq atomic.Int64

// fleetEnv is one case's fleet: its ZooKeeper paths and gateways.
type fleetEnv struct {
	zkAddr       string
	configPath   string
	gatewaysPath string
}

func newFleetEnv(srv *zktest.Server) *fleetEnv {
	n := fleetSeq.Add(1)
	return &fleetEnv{zkAddr: srv.Addr(), configPath: fmt.Sprintf("/fleet-%d/config", n), gatewaysPath: fmt.Sprintf("/fleet-%d/gateways", n)}
}

// start starts a fleet gateway named name and waits until it is ready
// (its first read of the fleet's configuration done).
func (e *fleetEnv) start(t *testing.T, name string) *gateway {
	t.Helper()
	return e.startWith(t, name, `zookeeper: { servers: ["`+e.zkAddr+`"], session_timeout: 4s }`, "")
}

// adminDo sends an admin request with the token (when token is set) and
// returns the status, the body and the ETag.
func adminDo(t *testing.T, method, url, token, ifMatch, body string) (int, string, string) {
	t.Helper()
	code, b, etag, err := adminTry(method, url, token, ifMatch, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return code, b, etag
}

// adminTry is adminDo without the test: it returns a failed request's
// error, so that goroutines other than the test's can call it.
func adminTry(method, url, token, ifMatch, body string) (int, string, string, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("ETag"), nil
}

// fleetInfo is the part of GET /api/fleet the tests read.
type fleetInfo struct {
	Version  int64 `json:"version"`
	Latest   int64 `json:"latest"`
	Stale    bool  `json:"stale"`
	Routes   int   `json:"routes"`
	Problems []struct {
		Znode, File, Key, Problem string
	} `json:"problems"`
	Znodes   map[string]int32 `json:"znodes"`
	Gateways []struct {
		Name          string `json:"name"`
		ConfigVersion int64  `json:"config_version"`
		Behind        bool   `json:"behind"`
	} `json:"gateways"`
}

func getFleet(t *testing.T, g *gateway) fleetInfo {
	t.Helper()
	code, body, _ := adminDo(t, http.MethodGet, g.admin+"/api/fleet", fleetToken, "", "")
	if code != http.StatusOK {
		t.Fatalf("GET /api/fleet = %d %s", code, body)
	}
	var fi fleetInfo
	if err := json.Unmarshal([]byte(body), &fi); err != nil {
		t.Fatalf("GET /api/fleet: %v in %s", err, body)
	}
	return fi
}

// fleetMetric returns the value of the sample name (no labels) on g's
// /metrics; -1 when absent.
func fleetMetric(t *testing.T, g *gateway, name string) float64 {
	t.Helper()
	code, body, _ := adminDo(t, http.MethodGet, g.admin+"/metrics", fleetToken, "", "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", code)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("/metrics: %s: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// echoRouteAndService is a PUT /api/routes/echo body: the route and its
// service in one transaction.
const echoRouteAndService = `{"route": {"service": "echo", "match": {"path_prefix": "/echo"}, "strip_prefix": true, "balancer": "round_robin"},
 "service": {"discovery": {"zookeeper": {"path": "/services/echo"}}, "health_check": {"passive": {"max_failures": 0}}}}`

func TestFleet(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	conn := zktest.Connect(t, srv.Addr())
	a := backend(t, "a")
	register(t, conn, "echo", hostPort(a))
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, e *fleetEnv, conn *zk.Conn)
	}{
		{"route written through one gateway is served by all", fleetServedByAll},
		{"bad write is refused and nothing written", fleetBadWrite},
		{"malformed znode is reported and the last good kept", fleetMalformedZnode},
		{"racing writers: one gets 412", fleetRacingWriters},
		{"push then pull round-trips", fleetPushPull},
		{"acl refuses an unauthenticated write", fleetACLRefuses},
		{"a reload keeps the fleet's routes", fleetReload},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newFleetEnv(srv), conn) })
	}
	// Last: it stops the server.
	t.Run("zookeeper outage: the last good configuration serves, stale", func(t *testing.T) {
		fleetOutage(t, newFleetEnv(srv), srv)
	})
}

func fleetOutage(t *testing.T, e *fleetEnv, srv *zktest.Server) {
	snap := filepath.Join(t.TempDir(), "membership.json")
	g := e.startWith(t, "gw-1", fmt.Sprintf(`zookeeper: { servers: ["%s"], session_timeout: 4s, snapshot_file: %q }`, e.zkAddr, snap), "")
	if code, body, _ := adminDo(t, http.MethodPut, g.admin+"/api/routes/echo", fleetToken, "", echoRouteAndService); code != http.StatusOK {
		t.Fatalf("PUT = %d %s", code, body)
	}
	zktest.WaitFor(t, 10*time.Second, func() bool { return statusOf(g.proxy+"/echo/x") == http.StatusOK }, "route served")
	if v := fleetMetric(t, g, "zkgate_fleet_stale"); v != 0 {
		t.Errorf("zkgate_fleet_stale = %v with ZooKeeper up, want 0", v)
	}
	srv.Stop(t)
	zktest.WaitFor(t, 10*time.Second, func() bool { return getFleet(t, g).Stale }, "fleet marked stale")
	if v := fleetMetric(t, g, "zkgate_fleet_stale"); v != 1 {
		t.Errorf("zkgate_fleet_stale = %v during the outage, want 1", v)
	}
	if code, body := get(t, g.proxy+"/echo/x"); code != http.StatusOK || body != "a /x" {
		t.Errorf("during the outage GET /echo/x = %d %q, want the last good configuration served", code, body)
	}
	code, body, _ := adminDo(t, http.MethodPut, g.admin+"/api/routes/other", fleetToken, "", `{"service": "echo"}`)
	if code != http.StatusServiceUnavailable {
		t.Errorf("write during the outage = %d %s, want 503", code, body)
	}
	// Restarted while ZooKeeper is down, the gateway serves the
	// configuration of its snapshot (and the members of the membership
	// snapshot), marked stale, until ZooKeeper is back.
	g.stop(t)
	restarted := &gateway{cfgPath: g.cfgPath, proxy: g.proxy, admin: g.admin, log: &syncBuffer{}, done: make(chan error, 1)}
	restarted.serve(t)
	g = restarted
	zktest.WaitFor(t, 20*time.Second, func() bool { return statusOf(g.proxy+"/echo/x") == http.StatusOK },
		"route of the snapshot served after a restart during the outage")
	if code, body := get(t, g.proxy+"/echo/x"); code != http.StatusOK || body != "a /x" {
		t.Errorf("after a restart during the outage GET /echo/x = %d %q", code, body)
	}
	if fi := getFleet(t, g); !fi.Stale || fi.Routes != 1 || fi.Version == 0 {
		t.Errorf("after a restart during the outage: %+v, want the snapshot's version, stale", fi)
	}
	srv.Restart(t)
	zktest.WaitFor(t, 20*time.Second, func() bool { return !getFleet(t, g).Stale }, "fleet fresh again")
	if v := fleetMetric(t, g, "zkgate_fleet_stale"); v != 0 {
		t.Errorf("zkgate_fleet_stale = %v after the outage, want 0", v)
	}
	if code, _ := get(t, g.proxy+"/echo/x"); code != http.StatusOK {
		t.Errorf("after the outage GET /echo/x = %d", code)
	}
}

func fleetServedByAll(t *testing.T, e *fleetEnv, conn *zk.Conn) {
	gws := []*gateway{e.start(t, "gw-1"), e.start(t, "gw-2"), e.start(t, "gw-3")}
	if code, _ := get(t, gws[2].proxy+"/echo/x"); code != http.StatusNotFound {
		t.Fatalf("before any write: GET /echo/x = %d, want 404", code)
	}
	code, body, etag := adminDo(t, http.MethodPut, gws[0].admin+"/api/routes/echo", fleetToken, "", echoRouteAndService)
	if code != http.StatusOK || etag != `"0"` {
		t.Fatalf("PUT /api/routes/echo = %d %s (ETag %s), want 200 with ETag \"0\"", code, body, etag)
	}
	for _, g := range gws {
		zktest.WaitFor(t, 10*time.Second, func() bool {
			code, body := get(t, g.proxy+"/echo/x")
			return code == http.StatusOK && body == "a /x"
		}, "route served by %s", g.admin)
	}
	// Every gateway announces itself, on the same version.
	zktest.WaitFor(t, 10*time.Second, func() bool {
		fi := getFleet(t, gws[1])
		if len(fi.Gateways) != 3 || fi.Routes != 1 {
			return false
		}
		for _, gw := range fi.Gateways {
			if gw.Behind || gw.ConfigVersion != fi.Version {
				return false
			}
		}
		return true
	}, "three gateways announced on one configuration version")

	// A delete through another gateway removes it everywhere.
	if code, body, _ := adminDo(t, http.MethodDelete, gws[2].admin+"/api/routes/echo", fleetToken, "", ""); code != http.StatusOK {
		t.Fatalf("DELETE /api/routes/echo = %d %s", code, body)
	}
	for _, g := range gws {
		zktest.WaitFor(t, 10*time.Second, func() bool { return statusOf(g.proxy+"/echo/x") == http.StatusNotFound },
			"route gone from %s", g.admin)
	}
	// Without the token: 401, as every admin request.
	if code, _, _ := adminDo(t, http.MethodPut, gws[0].admin+"/api/routes/echo", "", "", echoRouteAndService); code != http.StatusUnauthorized {
		t.Errorf("PUT without the token = %d, want 401", code)
	}
}

func fleetReload(t *testing.T, e *fleetEnv, conn *zk.Conn) {
	g := e.start(t, "gw-1")
	if code, body, _ := adminDo(t, http.MethodPut, g.admin+"/api/routes/echo", fleetToken, "", echoRouteAndService); code != http.StatusOK {
		t.Fatalf("PUT = %d %s", code, body)
	}
	zktest.WaitFor(t, 10*time.Second, func() bool { return statusOf(g.proxy+"/echo/x") == http.StatusOK }, "route served")
	version := getFleet(t, g).Version
	// The file holds no routes: a reload applies the fleet's, with it.
	if code, body, _ := adminDo(t, http.MethodPost, g.admin+"/api/reload", fleetToken, "", ""); code != http.StatusOK {
		t.Fatalf("POST /api/reload = %d %s", code, body)
	}
	if code, _ := get(t, g.proxy+"/echo/x"); code != http.StatusOK {
		t.Errorf("after a reload GET /echo/x = %d, want the fleet's route still served", code)
	}
	if fi := getFleet(t, g); fi.Version != version || fi.Routes != 1 {
		t.Errorf("after a reload: %+v, want version %d with its route", fi, version)
	}
}

func fleetBadWrite(t *testing.T, e *fleetEnv, conn *zk.Conn) {
	g := e.start(t, "gw-1")
	for _, tc := range []struct{ path, body, want string }{
		{"/api/routes/bad", `{"service": "echo", "match": {"path_prefix": "echo"}}`,
			`routes/bad: match.path_prefix: \"echo\" must start with \"/\"`},
		{"/api/routes/bad", `{"service": "payments"}`,
			`routes/bad: service: unknown service \"payments\"`},
		{"/api/services/echo", `{"timeouts": {"dial": 30}}`,
			`services/echo: timeouts.dial: invalid duration 30`},
		{"/api/routes/bad", `{"service": "echo", "balancer": "consistent_hash", "hash_on": "client_ip", "match": {"path_regex": "^/(a"}}`,
			`routes/bad: match.path_regex`},
	} {
		code, body, _ := adminDo(t, http.MethodPut, g.admin+tc.path, fleetToken, "", tc.body)
		if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("PUT %s %s = %d %s, want 400 containing %s", tc.path, tc.body, code, body, tc.want)
		}
	}
	for _, p := range []string{e.configPath + "/routes/bad", e.configPath + "/services/echo"} {
		if ok, _, err := conn.Exists(p); err != nil || ok {
			t.Errorf("%s exists (%v, %v) after refused writes", p, ok, err)
		}
	}
	// A route's service must exist: a route alone is refused too.
	code, body, _ := adminDo(t, http.MethodPut, g.admin+"/api/routes/echo", fleetToken, "", `{"service": "echo"}`)
	if code != http.StatusBadRequest || !strings.Contains(body, `unknown service \"echo\"`) {
		t.Errorf("PUT a route without its service = %d %s, want 400", code, body)
	}
}

func fleetMalformedZnode(t *testing.T, e *fleetEnv, conn *zk.Conn) {
	gws := []*gateway{e.start(t, "gw-1"), e.start(t, "gw-2")}
	if code, body, _ := adminDo(t, http.MethodPut, gws[0].admin+"/api/routes/echo", fleetToken, "", echoRouteAndService); code != http.StatusOK {
		t.Fatalf("PUT = %d %s", code, body)
	}
	for _, g := range gws {
		zktest.WaitFor(t, 10*time.Second, func() bool { return statusOf(g.proxy+"/echo/x") == http.StatusOK }, "route served by %s", g.admin)
	}
	good := getFleet(t, gws[0]).Version
	for _, g := range gws {
		if v, n := fleetMetric(t, g, "zkgate_fleet_config_version"), fleetMetric(t, g, "zkgate_fleet_apply_failures_total"); v != float64(good) || n != 0 {
			t.Errorf("%s: zkgate_fleet_config_version %v (want %d), zkgate_fleet_apply_failures_total %v (want 0)", g.admin, v, good, n)
		}
	}
	// Another client writes a znode that is not a valid route, and
	// changes the good route's prefix in the same transaction: neither
	// may apply.
	bad := e.configPath + "/routes/broken"
	if _, err := conn.Multi(
		&zk.CreateRequest{Path: bad, Data: []byte(`{"service": "echo", "timeout": "soon"}`), Acl: zk.WorldACL(zk.PermAll)},
		&zk.SetDataRequest{Path: e.configPath + "/routes/echo", Data: []byte(`{"service": "echo", "match": {"path_prefix": "/moved"}}`), Version: -1},
	); err != nil {
		t.Fatal(err)
	}
	for _, g := range gws {
		zktest.WaitFor(t, 10*time.Second, func() bool {
			fi := getFleet(t, g)
			return fi.Latest > good && len(fi.Problems) == 1
		}, "problem reported by %s", g.admin)
		fi := getFleet(t, g)
		p := fi.Problems[0]
		if fi.Version != good || p.Znode != bad || p.Key != "timeout" || !strings.Contains(p.Problem, `invalid duration "soon"`) {
			t.Errorf("%s: version %d (good %d), problem %+v", g.admin, fi.Version, good, p)
		}
		if code, _ := get(t, g.proxy+"/echo/x"); code != http.StatusOK {
			t.Errorf("%s: the last good configuration is not served (GET /echo/x = %d)", g.admin, code)
		}
		if code, _ := get(t, g.proxy+"/moved/x"); code != http.StatusNotFound {
			t.Errorf("%s: half of a refused version applied (GET /moved/x = %d)", g.admin, code)
		}
		if !strings.Contains(g.log.String(), bad) {
			t.Errorf("%s: the log does not name %s", g.admin, bad)
		}
		// The refusal is counted; the version running stays the good one.
		if v, n := fleetMetric(t, g, "zkgate_fleet_config_version"), fleetMetric(t, g, "zkgate_fleet_apply_failures_total"); v != float64(good) || n < 1 {
			t.Errorf("%s: zkgate_fleet_config_version %v (want %d), zkgate_fleet_apply_failures_total %v (want at least 1)", g.admin, v, good, n)
		}
	}
	// Repaired, the whole version applies.
	if err := conn.Delete(bad, -1); err != nil {
		t.Fatal(err)
	}
	for _, g := range gws {
		zktest.WaitFor(t, 10*time.Second, func() bool { return statusOf(g.proxy+"/moved/x") == http.StatusOK },
			"repaired version applied by %s", g.admin)
		if fi := getFleet(t, g); len(fi.Problems) != 0 {
			t.Errorf("%s: problems after the repair: %+v", g.admin, fi.Problems)
		}
	}
}

func fleetRacingWriters(t *testing.T, e *fleetEnv, conn *zk.Conn) {
	gws := []*gateway{e.start(t, "gw-1"), e.start(t, "gw-2")}
	code, body, etag := adminDo(t, http.MethodPut, gws[0].admin+"/api/routes/echo", fleetToken, "", echoRouteAndService)
	if code != http.StatusOK {
		t.Fatalf("PUT = %d %s", code, body)
	}
	// Both writers read version etag and write, each through its gateway.
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i, g := range gws {
		wg.Go(func() {
			body := fmt.Sprintf(`{"service": "echo", "match": {"path_prefix": "/w%d"}}`, i)
			codes[i], _, _ = adminDo(t, http.MethodPut, g.admin+"/api/routes/echo", fleetToken, etag, body)
		})
	}
	wg.Wait()
	ok, failed := 0, 0
	for _, c := range codes {
		switch c {
		case http.StatusOK:
			ok++
		case http.StatusPreconditionFailed:
			failed++
		}
	}
	if ok != 1 || failed != 1 {
		t.Fatalf("two writers with If-Match %s: statuses %v, want one 200 and one 412", etag, codes)
	}
	// The stale version again: 412, and a delete with it too.
	if code, _, _ := adminDo(t, http.MethodPut, gws[0].admin+"/api/routes/echo", fleetToken, etag, `{"service": "echo"}`); code != http.StatusPreconditionFailed {
		t.Errorf("PUT with a stale If-Match = %d, want 412", code)
	}
	if code, _, _ := adminDo(t, http.MethodDelete, gws[0].admin+"/api/routes/echo", fleetToken, etag, ""); code != http.StatusPreconditionFailed {
		t.Errorf("DELETE with a stale If-Match = %d, want 412", code)
	}
	_, st, err := conn.Get(e.configPath + "/routes/echo")
	if err != nil || st.Version != 1 {
		t.Errorf("route znode version = %v (%v), want 1: exactly one write landed", st, err)
	}
}

func fleetPushPull(t *testing.T, e *fleetEnv, conn *zk.Conn) {
	g := e.start(t, "gw-1")
	dir := t.TempDir()
	file := filepath.Join(dir, "routes.yaml")
	const routes = `routes:
  - name: api
    match: { path_prefix: /api, methods: [GET, POST] }
    service: echo
    timeout: 5s
  - name: echo
    match: { path_prefix: /echo }
    strip_prefix: true
    service: echo
    rate_limit: { average: 100, burst: 200 }
services:
  echo:
    discovery: { zookeeper: { path: /services/echo } }
    timeouts: { dial: 1s }
`
	if err := os.WriteFile(file, []byte(routes), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := Main([]string{"config", "push", "--config", g.cfgPath, file}, &out, &errOut); code != exitOK {
		t.Fatalf("config push = %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
	zktest.WaitFor(t, 10*time.Second, func() bool { return statusOf(g.proxy+"/echo/x") == http.StatusOK }, "pushed route served")

	out.Reset()
	errOut.Reset()
	if code := Main([]string{"config", "pull", "--config", g.cfgPath}, &out, &errOut); code != exitOK {
		t.Fatalf("config pull = %d\nstderr: %s", code, errOut.String())
	}
	pulled := filepath.Join(dir, "pulled.yaml")
	if err := os.WriteFile(pulled, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	want, got := loadDynamic(t, file), loadDynamic(t, pulled)
	if want != got {
		t.Errorf("pull does not give back what was pushed:\npushed: %s\npulled: %s\nfile:\n%s", want, got, out.String())
	}
	// Pushing the same file again writes nothing; pushing a file
	// without the api route deletes it.
	if code := Main([]string{"config", "push", "--config", g.cfgPath, file}, &out, &errOut); code != exitOK {
		t.Fatalf("second push = %d: %s", code, errOut.String())
	}
	if _, st, err := conn.Get(e.configPath + "/routes/api"); err != nil || st.Version != 0 {
		t.Errorf("an unchanged route was written again: %v %v", st, err)
	}
	// An invalid file is refused, nothing written.
	if err := os.WriteFile(file, []byte(strings.Replace(routes, "timeout: 5s", "timeout: 5", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	if code := Main([]string{"config", "push", "--config", g.cfgPath, file}, &out, &errOut); code == exitOK ||
		!strings.Contains(errOut.String(), "routes/api: timeout: invalid duration 5") {
		t.Errorf("push of an invalid file = %d, stderr %s", code, errOut.String())
	}
}

// loadDynamic loads a configuration file and returns its routes and
// services as JSON, for comparison.
func loadDynamic(t *testing.T, path string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := Main([]string{"validate", "--config", path}, &out, &errOut); code != exitOK {
		t.Fatalf("%s does not validate: %s", path, errOut.String())
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cfg.Dynamic())
	return string(b)
}

func fleetACLRefuses(t *testing.T, e *fleetEnv, conn *zk.Conn) {
	g := e.startWith(t, "gw-1", `zookeeper: { servers: ["`+e.zkAddr+`"], session_timeout: 4s, auth: { credentials: "writer:s3cret" } }`,
		"acl: { enabled: true, world_read: true }")
	if code, body, _ := adminDo(t, http.MethodPut, g.admin+"/api/routes/echo", fleetToken, "", echoRouteAndService); code != http.StatusOK {
		t.Fatalf("PUT with the writer's credentials = %d %s", code, body)
	}
	zktest.WaitFor(t, 10*time.Second, func() bool { return statusOf(g.proxy+"/echo/x") == http.StatusOK }, "route served")
	route := e.configPath + "/routes/echo"
	// Another client without the credentials reads, but cannot write.
	if _, _, err := conn.Get(route); err != nil {
		t.Fatalf("world read refused: %v", err)
	}
	if _, err := conn.Set(route, []byte(`{"service": "echo", "match": {"path_prefix": "/hijack"}}`), -1); err != zk.ErrNoAuth {
		t.Errorf("unauthenticated write: %v, want %v", err, zk.ErrNoAuth)
	}
	if _, err := conn.Create(e.configPath+"/routes/other", []byte(`{"service": "echo"}`), 0, zk.WorldACL(zk.PermAll)); err != zk.ErrNoAuth {
		t.Errorf("unauthenticated create: %v, want %v", err, zk.ErrNoAuth)
	}
	// A gateway without the credentials is refused by the ACL: 403.
	other := e.startWith(t, "gw-2", `zookeeper: { servers: ["`+e.zkAddr+`"], session_timeout: 4s }`, "")
	zktest.WaitFor(t, 10*time.Second, func() bool { return statusOf(other.proxy+"/echo/x") == http.StatusOK }, "route served by the reader")
	code, body, _ := adminDo(t, http.MethodPut, other.admin+"/api/routes/echo", fleetToken, "", `{"service": "echo", "match": {"path_prefix": "/hijack"}}`)
	if code != http.StatusForbidden || !strings.Contains(body, "ACL") {
		t.Errorf("PUT without the writer's credentials = %d %s, want 403", code, body)
	}
	if code, _ := get(t, g.proxy+"/hijack/x"); code != http.StatusNotFound {
		t.Errorf("the refused writes changed the route")
	}
	// Both announce themselves, with and without the credentials.
	zktest.WaitFor(t, 10*time.Second, func() bool { return len(getFleet(t, other).Gateways) == 2 }, "two gateways announced")
}

// startWith is start with the zookeeper section replaced and fleet.acl set.
func (e *fleetEnv) startWith(t *testing.T, name, zookeeper, acl string) *gateway {
	t.Helper()
	dir := t.TempDir()
	g := &gateway{cfgPath: filepath.Join(dir, "gateway.yaml"), log: &syncBuffer{}, done: make(chan error, 1)}
	pp, ap := zktest.FreePort(t), zktest.FreePort(t)
	fleetACL := ""
	if acl != "" {
		fleetACL = ", " + acl
	}
	cfg := fmt.Sprintf(`entry_points:
  web: { address: "127.0.0.1:%d" }
admin: { address: "127.0.0.1:%d", token: %q }
log: { level: debug, format: json, access_log: { enabled: false } }
shutdown: { drain_delay: 0s, grace_timeout: 10s }
%s
fleet: { enabled: true, config_path: %s, gateways_path: %s, name: %s%s }
`, pp, ap, fleetToken, zookeeper, e.configPath, e.gatewaysPath, name, fleetACL)
	if err := os.WriteFile(g.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g.proxy = fmt.Sprintf("http://127.0.0.1:%d", pp)
	g.admin = fmt.Sprintf("http://127.0.0.1:%d", ap)
	g.serveReady(t)
	return g
}

package discovery

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/internal/zktest"
)

var registrarCases = []zkCase{
	{"RegistrarRegisterDeregister", testRegistrarRegisterDeregister},
	{"RegistrarCuratorDigestACL", testRegistrarCuratorACL},
	{"RegistrarSessionExpiry", testRegistrarExpiry},
	{"RegistrarReplacesStaleNode", testRegistrarReplacesStale},
	{"RegistrarConcurrentParents", testRegistrarConcurrentParents},
	{"RegistrarRestoresDeletedNode", testRegistrarRestoresDeleted},
	{"RegistrarRestoresChangedData", testRegistrarRestoresData},
	{"RegistrarRestoresAfterNewSession", testRegistrarRestoresAfterExpiry},
	{"RegistrarDeregisterNotUndone", testRegistrarDeregisterNotUndone},
	{"RegistrarLeavesAnotherSessionsNode", testRegistrarLeavesOthersNode},
}

func register(t testing.TB, c *Client, cfg RegistrarConfig) *Registrar {
	t.Helper()
	r, _ := registerLogged(t, c, cfg)
	return r
}

// registerLogged is register with the Registrar's log captured.
func registerLogged(t testing.TB, c *Client, cfg RegistrarConfig) (*Registrar, *logSink) {
	t.Helper()
	log, sink := testLog()
	r, err := NewRegistrar(c, cfg, log)
	if err != nil {
		t.Fatalf("NewRegistrar: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := r.Register(ctx); err != nil {
		t.Fatalf("Register: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = r.Deregister(ctx)
	})
	return r, sink
}

func testRegistrarRegisterDeregister(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	reg := register(t, c, RegistrarConfig{Path: p, Addr: "127.0.0.1:8101", Weight: 3})
	if reg.Node() != p+"/127.0.0.1:8101" || !reg.Registered() {
		t.Fatalf("Node() = %s, Registered() = %v", reg.Node(), reg.Registered())
	}
	data, st, err := raw.Get(reg.Node())
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != "127.0.0.1:8101,3" || st.EphemeralOwner != c.Status().SessionID {
		t.Errorf("node data %q owner 0x%x; want 127.0.0.1:8101,3 owned by 0x%x", data, st.EphemeralOwner, c.Status().SessionID)
	}
	_, r, _ := watch(t, c, p, ZkConfOptions{})
	r.await(t, "127.0.0.1:8101 with weight 3", func(eps []balancer.Endpoint) bool {
		return len(eps) == 1 && eps[0].Addr == "127.0.0.1:8101" && eps[0].Weight == 3
	})

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := reg.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	// Gone at once, not after a session timeout.
	if ok, _, err := raw.Exists(reg.Node()); err != nil || ok {
		t.Errorf("after Deregister: exists %v, %v; want the node gone", ok, err)
	}
	r.awaitAddrs(t)
	if reg.Registered() {
		t.Error("Registered() after Deregister")
	}
	// A second Deregister, and one of a node already gone, succeed.
	if err := reg.Deregister(ctx); err != nil {
		t.Errorf("second Deregister: %v", err)
	}
}

func testRegistrarCuratorACL(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr()) // unauthenticated
	p := testPath(t)
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}, Auth: Auth{Scheme: "digest", Credentials: "svc:s3cret"}})
	reg := register(t, c, RegistrarConfig{
		Path: p, Addr: "127.0.0.1:8102", Weight: 7, Format: FormatCurator,
		Meta: map[string]string{"zone": "z1"}, ACL: DigestACL("svc", "s3cret"),
	})
	id := strings.TrimPrefix(reg.Node(), p+"/")
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
		t.Errorf("instance id %q is not a random UUID", id)
	}
	acl, _, err := raw.GetACL(reg.Node())
	if err != nil {
		t.Fatal(err)
	}
	if len(acl) != 2 || acl[0].Scheme != "digest" || acl[0].Perms != zk.PermAll || acl[1].Scheme != "world" || acl[1].Perms != zk.PermRead {
		t.Errorf("ACL = %+v, want digest all + world read", acl)
	}
	if _, err := raw.Set(reg.Node(), []byte("{}"), -1); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("unauthenticated write: %v, want ErrNoAuth", err)
	}
	// The gateway reads it without credentials.
	plain := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	_, r, _ := watch(t, plain, p, ZkConfOptions{Format: FormatCurator})
	r.await(t, "the Curator instance", func(eps []balancer.Endpoint) bool {
		return len(eps) == 1 && eps[0].Addr == "127.0.0.1:8102" && eps[0].Weight == 7 &&
			eps[0].Meta["curator.id"] == id && eps[0].Meta["curator.name"] == "svc" && eps[0].Meta["payload.zone"] == "z1"
	})
}

func testRegistrarExpiry(t *testing.T, srv *zktest.Server) {
	raw := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	proxy := zktest.NewProxy(t, srv.Addr())
	c := dial(t, ClientConfig{Servers: []string{proxy.Addr()}, SessionTimeout: 4 * time.Second})
	reg := register(t, c, RegistrarConfig{Path: p, Addr: "127.0.0.1:8103"})
	old := c.Status().SessionID
	if n := proxy.ExpireSessions(t); n != 1 {
		t.Fatalf("expired %d sessions, want 1", n)
	}
	waitFor(t, "the node back, owned by a new session, and Registered", func() bool {
		_, st, err := raw.Get(reg.Node())
		return err == nil && st.EphemeralOwner != old && st.EphemeralOwner == c.Status().SessionID && reg.Registered()
	})
	if reg.Recreations() != 1 {
		t.Errorf("Recreations() = %d, want 1", reg.Recreations())
	}
}

func testRegistrarReplacesStale(t *testing.T, srv *zktest.Server) {
	p := testPath(t)
	previous := zktest.Connect(t, srv.Addr()) // the process before a restart
	mkdirs(t, previous, p)
	create(t, previous, p+"/127.0.0.1:8104", "127.0.0.1:8104,1", zk.FlagEphemeral)
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	reg := register(t, c, RegistrarConfig{Path: p, Addr: "127.0.0.1:8104", Weight: 2})
	data, st, err := previous.Get(reg.Node())
	if err != nil {
		t.Fatal(err)
	}
	if st.EphemeralOwner != c.Status().SessionID || string(data) != "127.0.0.1:8104,2" {
		t.Errorf("node owner 0x%x data %q; want it replaced by 0x%x", st.EphemeralOwner, data, c.Status().SessionID)
	}
}

func testRegistrarConcurrentParents(t *testing.T, srv *zktest.Server) {
	p := testPath(t) + "/deep/er"
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	log, _ := testLog()
	for i := range 10 {
		wg.Go(func() {
			reg, err := NewRegistrar(c, RegistrarConfig{Path: p, Addr: fmt.Sprintf("127.0.0.1:%d", 8200+i)}, log)
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				err = reg.Register(ctx)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	children, _, err := c.conn.Children(p)
	if err != nil || len(children) != 10 {
		t.Errorf("children of %s: %v, %v; want 10", p, children, err)
	}
}

func TestNewRegistrarValidates(t *testing.T) {
	log, _ := testLog()
	tests := []struct {
		cfg  RegistrarConfig
		want string
	}{
		{RegistrarConfig{Path: "svc", Addr: "h:1"}, "absolute znode path"},
		{RegistrarConfig{Path: "/s", Addr: "h"}, `addr "h"`},
		{RegistrarConfig{Path: "/s", Addr: ":8080"}, "not a wildcard"},
		{RegistrarConfig{Path: "/s", Addr: "0.0.0.0:8080"}, "not a wildcard"},
		{RegistrarConfig{Path: "/s", Addr: "h:0"}, "port must be 1-65535"},
		{RegistrarConfig{Path: "/s", Addr: "h:1", Weight: -1}, "weight -1"},
		{RegistrarConfig{Path: "/s", Addr: "h:1", Weight: MaxWeight + 1}, "weight 1001"},
		{RegistrarConfig{Path: "/s", Addr: "h:1", Format: FormatServerSet}, "want plain or curator"},
		{RegistrarConfig{Path: "/s", Addr: "h:1", Format: FormatCurator, ID: "a/b"}, "must not contain /"},
		{RegistrarConfig{Path: "/s", Addr: "bad host:1"}, "neither an IP address nor a host name"},
	}
	for _, tt := range tests {
		_, err := NewRegistrar(nil, tt.cfg, log)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewRegistrar(%+v) = %v, want an error with %q", tt.cfg, err, tt.want)
		}
	}
	r, err := NewRegistrar(nil, RegistrarConfig{Path: "/services/echo", Addr: "[::1]:80", Format: FormatCurator, ID: "i1"}, log)
	if err != nil {
		t.Fatal(err)
	}
	if r.Node() != "/services/echo/i1" || !strings.Contains(string(r.data), `"name":"echo"`) || !strings.Contains(string(r.data), `"address":"::1"`) {
		t.Errorf("curator registrar node %s data %s", r.Node(), r.data)
	}
}

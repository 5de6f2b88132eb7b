package discovery

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/zkgate/zkgate/internal/zktest"
)

var clientCases = []zkCase{
	{"ClientStatus", testClientStatus},
	{"ClientCloseWhileCutOff", testClientCloseWhileCut},
	{"ClientHandshakeWatchdog", testClientHandshakeWatchdog},
	{"ClientResolvesAtDial", testClientResolvesAtDial},
}

// testClientResolvesAtDial: a server name that does not resolve fails
// neither Connect nor the client, which gets its session from a server whose
// name does (go-zookeeper's own host provider refused the whole list).
func testClientResolvesAtDial(t *testing.T, srv *zktest.Server) {
	missing := "zkgate-test-missing.invalid:2181"
	c := dial(t, ClientConfig{Servers: []string{missing, "localhost:" + strconv.Itoa(srv.Port())}})
	if st := c.Status(); st.State != SessionConnected || !strings.HasPrefix(st.Server, "localhost:") {
		t.Errorf("status %+v; want a session with localhost", st)
	}
}

func testClientStatus(t *testing.T, srv *zktest.Server) {
	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}})
	st := c.Status()
	if !st.HasSession || st.State != SessionConnected || st.SessionID == 0 || st.Established != 1 || st.Expirations != 0 || st.Since.IsZero() {
		t.Errorf("status after Dial = %+v", st)
	}
	if !c.HasSession() {
		t.Error("HasSession() = false after Dial")
	}
}

func testClientCloseWhileCut(t *testing.T, srv *zktest.Server) {
	proxy := zktest.NewProxy(t, srv.Addr())
	log, _ := testLog()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := Dial(ctx, ClientConfig{Servers: []string{proxy.Addr()}, SessionTimeout: 4 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	proxy.Cut()
	waitFor(t, "the disconnect", func() bool { return !c.HasSession() })
	// Fill go-zookeeper's send queue (16) with calls that cannot complete.
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() { _, _, _ = c.conn.Get("/") })
	}
	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatal("Close did not return")
	}
	returned := make(chan struct{})
	go func() {
		wg.Wait()
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(wait):
		t.Fatal("calls pending on the closed client did not return")
	}
}

func TestDialFailsWhenNoServer(t *testing.T) {
	addr := zktest.RefusedAddr(t) // nothing listens there
	log, _ := testLog()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	c, err := Dial(ctx, ClientConfig{Servers: []string{addr}}, log)
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded without a server")
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), addr) {
		t.Errorf("err = %v, want a deadline error naming %s", err, addr)
	}
}

func TestClientConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  ClientConfig
		want string
	}{
		{ClientConfig{}, "servers: none given"},
		{ClientConfig{Servers: []string{""}}, "servers[0]"},
		{ClientConfig{Servers: []string{"a:1", "b:2,c:3"}}, "servers[1]"},
		{ClientConfig{Servers: []string{"a"}, SessionTimeout: -time.Second}, "session_timeout"},
		{ClientConfig{Servers: []string{"a"}, Auth: Auth{Credentials: "u:p"}}, "without a scheme"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want an error with %q", tt.cfg, err, tt.want)
		}
	}
	if err := (ClientConfig{Servers: []string{"127.0.0.1:2181", "zk2"}}).Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func TestParentPath(t *testing.T) {
	for in, want := range map[string]string{"/a/b": "/a", "/a": "/", "/": "", "a": "", "/a/b/c": "/a/b"} {
		if got := parentPath(in); got != want {
			t.Errorf("parentPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidatePath(t *testing.T) {
	for _, ok := range []string{"/", "/services/echo", "/a.b/c-d"} {
		if err := validatePath("p", ok); err != nil {
			t.Errorf("validatePath(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "services", "/a/", "/a//b", "/a/./b", "/a/.."} {
		if err := validatePath("p", bad); err == nil {
			t.Errorf("validatePath(%q) accepted it", bad)
		}
	}
}

// TestEventRouting checks, without a server, that watch events reach the
// subscribers of the path and of its parent, and nobody else.
func TestEventRouting(t *testing.T) {
	c := &Client{byPath: map[string]map[subscriber]struct{}{}, all: map[subscriber]struct{}{}, evSignal: make(chan struct{}, 1)}
	svc, parent, other := &fakeSub{}, &fakeSub{}, &fakeSub{}
	c.subscribe("/s/echo", svc)
	c.subscribe("/s", parent)
	c.subscribe("/t", other)
	c.onEvent(zk.Event{Type: zk.EventNodeDataChanged, Path: "/s/echo/n1"})
	c.onEvent(zk.Event{Type: zk.EventNodeChildrenChanged, Path: "/s/echo"})
	c.onEvent(zk.Event{Type: zk.EventNotWatching, Path: "/s/echo"})
	if want := []string{"child /s/echo/n1", "self /s/echo"}; strings.Join(svc.got, ",") != strings.Join(want, ",") {
		t.Errorf("service subscriber got %v, want %v", svc.got, want)
	}
	if want := []string{"child /s/echo"}; strings.Join(parent.got, ",") != strings.Join(want, ",") {
		t.Errorf("parent subscriber got %v, want %v", parent.got, want)
	}
	if len(other.got) != 0 {
		t.Errorf("unrelated subscriber got %v", other.got)
	}
	c.unsubscribe("/s/echo", svc)
	c.onEvent(zk.Event{Type: zk.EventNodeChildrenChanged, Path: "/s/echo"})
	if len(svc.got) != 2 {
		t.Errorf("unsubscribed subscriber got %v", svc.got)
	}
	c.onEvent(zk.Event{Type: zk.EventSession, State: zk.StateDisconnected})
	if len(c.evQueue) != 1 {
		t.Errorf("session event queue = %v, want the one event", c.evQueue)
	}
}

type fakeSub struct {
	mu  sync.Mutex
	got []string
}

func (f *fakeSub) nodeEvent(ev zk.Event, child bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	kind := "self "
	if child {
		kind = "child "
	}
	f.got = append(f.got, kind+ev.Path)
}

func (f *fakeSub) sessionEvent() {}

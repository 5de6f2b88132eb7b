package discovery

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/zkgate/zkgate/internal/zktest"
)

func TestSessionStateNames(t *testing.T) {
	want := map[SessionState]string{
		SessionConnecting: "connecting", SessionConnected: "connected",
		SessionExpired: "expired", SessionClosed: "closed", SessionClosed + 1: "unknown",
	}
	for st, name := range want {
		if st.String() != name {
			t.Errorf("SessionState(%d).String() = %q; want %q", st, st.String(), name)
		}
	}
	if got := strings.Join(SessionStateNames(), ","); got != "connecting,connected,expired,closed" {
		t.Errorf("SessionStateNames() = %s", got)
	}
}

// TestConnectWithoutZooKeeper starts a client while its only server refuses
// every connection: Connect returns at once, the state is "connecting" with
// the last error, the log says so again and again, less often as it lasts,
// naming the servers and the error; once the server answers, the session
// comes and the watched service is read.
func TestConnectWithoutZooKeeper(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	setup := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	mkdirs(t, setup, p)
	create(t, setup, p+"/127.0.0.1:8001", "", 0)
	proxy := zktest.NewProxy(t, srv.Addr())
	proxy.Cut()

	log, sink := testLogAt(logrus.InfoLevel)
	start := time.Now()
	c, err := Connect(ClientConfig{Servers: []string{proxy.Addr()}, SessionTimeout: 4 * time.Second, outageReport: 200 * time.Millisecond}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Connect took %v without a server; want it to return at once", took)
	}
	z, r, _ := watch(t, c, p, ZkConfOptions{})
	zktest.WaitFor(t, wait, func() bool { return sink.count("no zookeeper session for") >= 3 }, "three reports of the missing session")
	st := c.Status()
	if st.State != SessionConnecting || st.HasSession || st.LastError == "" || z.Synced() {
		t.Errorf("without a server: status %+v, conf synced %v; want connecting, a last error, not synced", st, z.Synced())
	}
	for _, want := range []string{proxy.Addr(), "last_error=", "state=connecting"} {
		if sink.count(want) == 0 {
			t.Errorf("no log line names %q; log: %v", want, sink.entries)
		}
	}
	// Reports come less and less often: at 0.2s, 0.4s, 0.8s of the
	// outage; at a fixed interval the third would come at 0.6s.
	if d := time.Since(start); d < 800*time.Millisecond {
		t.Errorf("three reports %v after the start; want them spaced out (the third at 0.8s or later)", d)
	}

	proxy.Restore()
	r.awaitAddrs(t, "127.0.0.1:8001")
	if st := c.Status(); st.State != SessionConnected || !st.HasSession || st.OutageError() != "" {
		t.Errorf("after the server came: status %+v, outage error %q; want connected, none", st, st.OutageError())
	}
	if sink.count("zookeeper session established") != 1 || sink.count("without_session=") == 0 {
		t.Errorf("want one \"session established\" line saying how long it took; log: %v", sink.entries)
	}
}

// TestDialGivesUpWithTheLastError: Dial's error says what failed.
func TestDialGivesUpWithTheLastError(t *testing.T) {
	zktest.Require(t)
	log, _ := testLog()
	addr := zktest.RefusedAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err := Dial(ctx, ClientConfig{Servers: []string{addr}}, log)
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Dial to a closed port: %v; want an error naming %s and the refusal", err, addr)
	}
}

// TestSessionStateWhileZooKeeperFrozen freezes the only server (SIGSTOP).
// The library then reconnects at TCP level to a server that never answers
// and calls itself "connected"; the client's own state must say
// "connecting" until a session exists, and the conf must not say that
// reading works again before it does.
func TestSessionStateWhileZooKeeperFrozen(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	setup := zktest.Connect(t, srv.Addr())
	p := testPath(t)
	mkdirs(t, setup, p)
	create(t, setup, p+"/127.0.0.1:8001", "", 0)

	c := dial(t, ClientConfig{Servers: []string{srv.Addr()}, SessionTimeout: 4 * time.Second, ResyncInterval: 200 * time.Millisecond})
	log, sink := testLogAt(logrus.InfoLevel)
	z, err := NewLoadBalanceZkConf(c, p, ZkConfOptions{}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(z.Close)
	r := newRecorder()
	z.Attach(r)
	r.awaitAddrs(t, "127.0.0.1:8001")

	pid := srv.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)

	// The loss takes the library's read timeout to notice; from then on,
	// until the server resumes, no session can exist.
	waitFor(t, "the session lost", func() bool { return !c.HasSession() })
	states := map[SessionState]bool{}
	waitFor(t, "a failed read and two handshake timeouts while frozen", func() bool {
		st := c.Status()
		states[st.State] = true
		return sink.count("reading ZooKeeper failed") > 0 && st.HandshakeTimeouts >= 2
	})
	if states[SessionConnected] {
		t.Error("state was \"connected\" while the server was frozen")
	}
	if !states[SessionConnecting] {
		t.Errorf("states seen while frozen: %v; want connecting", states)
	}
	if n := sink.count("reading ZooKeeper works again"); n != 0 {
		t.Errorf("\"reading ZooKeeper works again\" logged %d times while the server was frozen", n)
	}
	if st := c.Status(); !strings.Contains(st.OutageError(), "did not complete the session handshake") {
		t.Errorf("last error %q; want the handshake that did not complete", st.OutageError())
	}

	resume()
	waitFor(t, "connected again", func() bool { return c.Status().State == SessionConnected })
	waitFor(t, "reading works again", func() bool { return sink.count("reading ZooKeeper works again") == 1 })
	if got := addrsOf(z.Endpoints()); len(got) != 1 {
		t.Errorf("endpoints after the freeze: %v", got)
	}
}

// TestOutageError: the last error is the outage's only when it happened
// during it; one of an earlier outage is not shown as this one's.
func TestOutageError(t *testing.T) {
	t0 := time.Now()
	for _, tt := range []struct {
		name string
		st   Status
		want string
	}{
		{"during the outage", Status{NoSessionSince: t0, LastError: "refused", LastErrorAt: t0.Add(time.Second)}, "refused"},
		{"of an earlier outage", Status{NoSessionSince: t0, LastError: "refused", LastErrorAt: t0.Add(-time.Second)}, ""},
		{"with a session", Status{HasSession: true, LastError: "refused", LastErrorAt: t0}, ""},
	} {
		if got := tt.st.OutageError(); got != tt.want {
			t.Errorf("%s: OutageError() = %q, want %q", tt.name, got, tt.want)
		}
	}
}

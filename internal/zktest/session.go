package zktest

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// SessionTimeout is the session timeout Connect asks for.
const SessionTimeout = 10 * time.Second

// connectWait bounds the wait for a first session.
const connectWait = 30 * time.Second

// Connect opens a go-zookeeper connection to servers, waits until it has a
// session, and closes it when the test ends. The client's log goes to t.Log.
func Connect(t testing.TB, servers ...string) *zk.Conn {
	t.Helper()
	conn, _ := ConnectEvents(t, SessionTimeout, servers...)
	return conn
}

// ConnectEvents is Connect with a chosen session timeout, returning also the
// record of the connection's session states.
func ConnectEvents(t testing.TB, sessionTimeout time.Duration, servers ...string) (*zk.Conn, *Events) {
	t.Helper()
	if len(servers) == 0 {
		t.Fatal("zktest: Connect: no server address given")
	}
	ev := &Events{changed: make(chan struct{})}
	log := &testLogger{t: t}
	conn, _, err := zk.Connect(servers, sessionTimeout,
		zk.WithEventCallback(ev.record),
		zk.WithLogger(log),
		zk.WithDialer(sniffingDial))
	if err != nil {
		t.Fatalf("zktest: connect to %v: %v", servers, err)
	}
	t.Cleanup(func() {
		log.stop()
		conn.Close()
	})
	ev.Await(t, zk.StateHasSession, connectWait)
	return conn, ev
}

// Events records, in order, the session states of one connection. Its
// methods may be called from any goroutine.
type Events struct {
	mu      sync.Mutex
	states  []zk.State
	next    int           // index after the last state Await matched
	changed chan struct{} // closed and replaced on every record
}

func (e *Events) record(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.states = append(e.states, ev.State)
	close(e.changed)
	e.changed = make(chan struct{})
}

// States returns every state recorded so far.
func (e *Events) States() []zk.State {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.states)
}

// Seen reports whether state was ever recorded.
func (e *Events) Seen(state zk.State) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Contains(e.states, state)
}

// Await waits until state is recorded after the state matched by the previous
// Await (from the start for the first), failing t after timeout. Calls in
// sequence thus follow the connection's history: Await(StateExpired) then
// Await(StateHasSession) waits for the new session after the expiry.
func (e *Events) Await(t testing.TB, state zk.State, timeout time.Duration) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		e.mu.Lock()
		i := slices.Index(e.states[e.next:], state)
		if i >= 0 {
			e.next += i + 1
		}
		changed := e.changed
		seen := slices.Clone(e.states)
		e.mu.Unlock()
		if i >= 0 {
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("zktest: no session state %v within %v; states so far: %v", state, timeout, seen)
		}
	}
}

// testLogger sends go-zookeeper's log to t.Log until stop; the library's
// goroutines may outlive the test, which must not log after it ends.
type testLogger struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

func (l *testLogger) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Logf("zk client: "+format, args...)
	}
}

func (l *testLogger) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
}

// sessions maps every session id seen by a Connect client or a Proxy to its
// password, which go-zookeeper does not expose.
var sessions struct {
	sync.Mutex
	password map[int64][]byte
}

func rememberSession(id int64, password []byte) {
	sessions.Lock()
	defer sessions.Unlock()
	if sessions.password == nil {
		sessions.password = make(map[int64][]byte)
	}
	sessions.password[id] = password
}

func sessionPassword(id int64) ([]byte, bool) {
	sessions.Lock()
	defer sessions.Unlock()
	pw, ok := sessions.password[id]
	return pw, ok
}

// handshakeTimeout caps the wait for a connect response; see sniffConn.
const handshakeTimeout = 3 * time.Second

// sniffingDial is a zk.Dialer noting the session of each connection.
func sniffingDial(network, addr string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	return &sniffConn{Conn: c, limit: handshakeTimeout, sn: sniffer{onSession: rememberSession}}, nil
}

// sniffConn notes the session of its connect response, and caps the wait for
// that response at handshakeTimeout. ZooKeeper 3.8.0 leaves a connection that
// arrives in the first milliseconds of its start open and unanswered (see
// Mode), and go-zookeeper waits ten times its receive timeout for the answer:
// more than a minute with a 10s session. A client reconnecting while a server
// restarts would hang that long.
type sniffConn struct {
	net.Conn
	limit time.Duration

	mu sync.Mutex
	sn sniffer
}

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.sn.feed(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *sniffConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	handshake := !c.sn.done
	c.mu.Unlock()
	if limit := time.Now().Add(c.limit); handshake && (t.IsZero() || t.After(limit)) {
		t = limit
	}
	return c.Conn.SetReadDeadline(t)
}

// ExpireConn expires the current session of conn, a connection made by
// Connect or through a Proxy, by way of srv (a server or ensemble member
// address, not a proxy that may be cut). See ExpireSession.
func ExpireConn(t testing.TB, srv string, conn *zk.Conn) {
	t.Helper()
	id := conn.SessionID()
	if id == 0 {
		t.Fatal("zktest: ExpireConn: the connection has no session")
	}
	pw, ok := sessionPassword(id)
	if !ok {
		t.Fatalf("zktest: ExpireConn: session 0x%x was not opened by Connect or through a Proxy", id)
	}
	ExpireSession(t, srv, id, pw)
}

// ExpireSession makes the server at srv expire the session sessionID, and
// returns once the server no longer knows it: its ephemeral nodes are gone,
// and its client is told StateExpired when it next talks to the server. Other
// sessions are untouched.
//
// It takes the session over with a connection of its own (same id and
// password: the server drops the client's connection), closes it there, then
// checks that the session can no longer be resumed. Closing is what the
// server does on expiry; clients cannot tell the two apart. In an ensemble the
// close is committed when ExpireSession returns, and visible through srv; a
// client of another member may need Sync to see it at once.
func ExpireSession(t testing.TB, srv string, sessionID int64, password []byte) {
	t.Helper()
	if err := expireSession(srv, sessionID, password); err != nil {
		t.Fatalf("zktest: expire session 0x%x on %s: %v", sessionID, srv, err)
	}
}

const expireWait = 10 * time.Second

// expireSession implements ExpireSession. It returns errSessionInvalid when
// the server never accepted the session (already gone or wrong password).
func expireSession(srv string, sessionID int64, password []byte) error {
	closed := false
	var last error
	deadline := time.Now().Add(expireWait)
	for time.Now().Before(deadline) {
		// The closeSession request rides in the same write as the connect
		// request, so the client cannot take its session back in between.
		c, _, err := openSession(srv, MaxSessionTimeout, sessionID, password, appendCloseRequest(nil))
		switch {
		case errors.Is(err, errSessionInvalid):
			if closed {
				return nil // verified: the session cannot be resumed
			}
			return err
		case err != nil:
			last = err
		default:
			last = awaitCloseReply(c)
			c.Close()
			closed = closed || last == nil
		}
		if last != nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if last == nil {
		last = errors.New("the server keeps accepting it")
	}
	return fmt.Errorf("session still valid after %v: %w", expireWait, last)
}

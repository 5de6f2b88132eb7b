package discovery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/sirupsen/logrus"
)

// Defaults of ClientConfig.
const (
	DefaultSessionTimeout = 10 * time.Second
	DefaultResyncInterval = 30 * time.Second
)

// closeTimeout bounds Client.Close: go-zookeeper's Close can block while its
// send queue is full (up to a few seconds).
const closeTimeout = 5 * time.Second

// errNoSession is the answer of an operation that needs a session while
// the client holds none.
var errNoSession = errors.New("no zookeeper session")

// Auth is an authentication added to the session, as zkCli's addauth.
type Auth struct {
	// Scheme is the ZooKeeper auth scheme, usually "digest". Empty means
	// no authentication.
	Scheme string
	// Credentials are the scheme's credentials: "user:password" for digest.
	Credentials string
}

// ClientConfig configures a Client.
type ClientConfig struct {
	// Servers are the ZooKeeper servers, "host:port" (port 2181 when
	// omitted). Required.
	Servers []string
	// SessionTimeout is the session timeout requested from ZooKeeper
	// (which bounds it between 2 and 20 ticks). Default 10s.
	SessionTimeout time.Duration
	// Auth, when Scheme and Credentials are set, is added to the first
	// session before it is declared usable (before Dial returns), and again
	// after every reconnect.
	Auth Auth
	// ResyncInterval is how often each LoadBalanceZkConf verifies its
	// membership with a read without watches, repairing watches that
	// were lost silently. Default 30s; negative disables it.
	ResyncInterval time.Duration

	// outageReport, when set, replaces firstOutageReport (tests).
	outageReport time.Duration
}

// Validate reports the configuration's problems, each naming its field.
func (cfg ClientConfig) Validate() error {
	var errs []error
	if len(cfg.Servers) == 0 {
		errs = append(errs, errors.New("discovery: zookeeper servers: none given"))
	}
	for i, s := range cfg.Servers {
		if strings.TrimSpace(s) == "" || strings.ContainsAny(s, " ,/") {
			errs = append(errs, fmt.Errorf("discovery: zookeeper servers[%d]: %q is not host[:port]", i, s))
		}
	}
	if cfg.SessionTimeout < 0 {
		errs = append(errs, fmt.Errorf("discovery: zookeeper session_timeout: %v is negative", cfg.SessionTimeout))
	}
	if cfg.Auth.Scheme == "" && cfg.Auth.Credentials != "" {
		errs = append(errs, errors.New("discovery: zookeeper auth: credentials given without a scheme"))
	}
	return errors.Join(errs...)
}

// Status is a snapshot of the session state, for metrics and status pages.
type Status struct {
	// State is the session state (see SessionState).
	State SessionState
	// HasSession reports whether the client holds a usable session
	// (State is SessionConnected).
	HasSession bool
	// SessionID is the current (or last) session id; 0 before the first.
	SessionID int64
	// Servers are the configured servers; Server is the one of the last
	// connection.
	Servers []string
	Server  string
	// LastError is the last failure to get or keep a session (a refused
	// connection, a handshake that did not complete, an authentication
	// failure), and LastErrorAt when it happened. Kept after a session is
	// established, for the record.
	LastError   string
	LastErrorAt time.Time
	// Established counts sessions established, reconnections included.
	Established uint64
	// Expirations counts sessions expired by the server.
	Expirations uint64
	// Disconnects counts losses of an established session's connection.
	Disconnects uint64
	// WatchResetFailures counts reconnects on which go-zookeeper failed to
	// re-register the session's watches (each triggers a full re-arm).
	WatchResetFailures uint64
	// HandshakeTimeouts counts connections closed because the server
	// accepted them but did not complete the session handshake in time.
	HandshakeTimeouts uint64
	// Since is when the client entered State.
	Since time.Time
	// NoSessionSince is when the client last lost (or, at start, began
	// without) a session; zero while it has one.
	NoSessionSince time.Time
}

// OutageError returns LastError when it happened during the current lack of
// a session, "" otherwise: an error of an earlier outage, kept for the
// record, says nothing about this one.
func (s Status) OutageError() string {
	if s.HasSession || s.NoSessionSince.IsZero() || s.LastErrorAt.Before(s.NoSessionSince) {
		return ""
	}
	return s.LastError
}

// Client is the process's ZooKeeper session, shared by every
// LoadBalanceZkConf and Registrar. Its methods are safe for concurrent use.
type Client struct {
	conn *zk.Conn
	cfg  ClientConfig
	log  logrus.FieldLogger

	// Session events arrive through go-zookeeper's event callback, which
	// sees every event (its channel holds 6 and drops the rest, and a
	// session expiry floods it with one EventNotWatching per watch). The
	// callback queues them; run handles them.
	evMu     sync.Mutex
	evQueue  []zk.State
	evSignal chan struct{}

	mu           sync.Mutex // guards the fields below
	sess         session
	state        SessionState
	since        time.Time
	lastErr      string
	lastErrAt    time.Time
	authed       bool      // cfg.Auth was added to the session
	noSession    time.Time // since when no session is held; zero while one is
	established  uint64
	expirations  uint64
	disconnects  uint64
	resetFailure uint64
	first        chan struct{} // closed on the first session

	// The handshake watchdog (see watchdog.go).
	handshakeTimeout  time.Duration
	lastConn          atomic.Pointer[dialedConn]
	liveState         atomic.Int32 // the library's state, as its callback reports it
	handshakeTimeouts atomic.Uint64

	subMu  sync.RWMutex
	byPath map[string]map[subscriber]struct{}
	all    map[subscriber]struct{}

	stop      chan struct{}
	closing   atomic.Bool // Close was called: disconnection is expected
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Connect starts a Client and returns at once: the session is sought in the
// background, and kept alive, reconnected and re-established as needed,
// until Close. Until the first session, reads fail and subscribers wait for
// it; Status says what the client is trying and what failed last, and the
// log says so too, less often the longer it lasts (see reportOutages).
// Server names are resolved at each dial, so a name that does not resolve
// yet is a failure to retry, not an error. An error is returned only for a
// configuration that cannot work.
func Connect(cfg ClientConfig, log logrus.FieldLogger) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = DefaultSessionTimeout
	}
	if cfg.ResyncInterval == 0 {
		cfg.ResyncInterval = DefaultResyncInterval
	}
	log = log.WithField("component", "zookeeper")
	now := time.Now()
	c := &Client{
		cfg:       cfg,
		log:       log,
		evSignal:  make(chan struct{}, 1),
		state:     SessionConnecting,
		since:     now,
		noSession: now,
		first:     make(chan struct{}),
		byPath:    make(map[string]map[subscriber]struct{}),
		all:       make(map[subscriber]struct{}),
		stop:      make(chan struct{}),
	}
	c.handshakeTimeout = handshakeTimeout(cfg.SessionTimeout)
	conn, events, err := zk.Connect(cfg.Servers, cfg.SessionTimeout,
		zk.WithLogger(zkLogger{log: log, onWatchResetFailure: c.watchResetFailed, onHandshakeFailure: c.noteError}),
		zk.WithEventCallback(c.onEvent),
		zk.WithHostProvider(&hostList{}),
		zk.WithDialer(c.dial))
	if err != nil {
		return nil, fmt.Errorf("discovery: connect to zookeeper %v: %w", cfg.Servers, err)
	}
	c.conn = conn
	c.wg.Go(func() { c.drain(events) })
	c.wg.Go(c.run)
	c.wg.Go(c.reportOutages)
	return c, nil
}

// Dial is Connect, then waits for the first session: it returns once a
// session is established (and authenticated when cfg.Auth is set), or with
// an error when ctx ends first.
func Dial(ctx context.Context, cfg ClientConfig, log logrus.FieldLogger) (*Client, error) {
	c, err := Connect(cfg, log)
	if err != nil {
		return nil, err
	}
	if err := c.awaitFirst(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Client) awaitFirst(ctx context.Context) error {
	select {
	case <-c.first:
		return nil
	case <-ctx.Done():
		if st := c.Status(); st.LastError != "" {
			return fmt.Errorf("discovery: no zookeeper session with %v (last error: %s): %w", c.cfg.Servers, st.LastError, ctx.Err())
		}
		return fmt.Errorf("discovery: no zookeeper session with %v: %w", c.cfg.Servers, ctx.Err())
	}
}

// authenticate adds cfg.Auth to the session, once: go-zookeeper adds it
// again after every reconnect. It runs on the event goroutine before the
// first session is declared usable, so that no subscriber reads without it.
func (c *Client) authenticate() error {
	if c.cfg.Auth.Scheme == "" || c.cfg.Auth.Credentials == "" {
		return nil // no credentials: nothing to add
	}
	c.mu.Lock()
	done := c.authed
	c.mu.Unlock()
	if done {
		return nil
	}
	if err := c.conn.AddAuth(c.cfg.Auth.Scheme, []byte(c.cfg.Auth.Credentials)); err != nil {
		return fmt.Errorf("zookeeper auth (scheme %s): %w", c.cfg.Auth.Scheme, err)
	}
	c.mu.Lock()
	c.authed = true
	c.mu.Unlock()
	return nil
}

// Close ends the session (its ephemeral nodes vanish at once) and stops the
// client's goroutines. It returns within a bounded time even when the
// connection is stuck. Close the confs and registrars first.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		done := make(chan struct{})
		go func() {
			c.conn.Close()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(closeTimeout):
			c.log.Warnf("zookeeper close did not finish within %v; abandoning it", closeTimeout)
		}
		close(c.stop)
		c.wg.Wait()
		c.mu.Lock()
		c.sess.ok = false
		c.setState(SessionClosed)
		c.mu.Unlock()
	})
}

// Status returns the session state and counters.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Status{
		State:              c.state,
		HasSession:         c.sess.ok,
		SessionID:          c.sess.id,
		Servers:            c.cfg.Servers,
		Server:             c.conn.Server(),
		LastError:          c.lastErr,
		LastErrorAt:        c.lastErrAt,
		Established:        c.established,
		Expirations:        c.expirations,
		Disconnects:        c.disconnects,
		WatchResetFailures: c.resetFailure,
		HandshakeTimeouts:  c.handshakeTimeouts.Load(),
		Since:              c.since,
		NoSessionSince:     c.noSession,
	}
}

// setState enters st; c.mu is held.
func (c *Client) setState(st SessionState) {
	if st == c.state {
		return
	}
	c.state, c.since = st, time.Now()
	switch {
	case st == SessionConnected:
		c.noSession = time.Time{}
	case c.noSession.IsZero():
		c.noSession = c.since
	}
}

// noteError records err as the last failure to get or keep a session.
func (c *Client) noteError(err error) {
	c.mu.Lock()
	c.lastErr, c.lastErrAt = err.Error(), time.Now()
	c.mu.Unlock()
}

// HasSession reports whether the client holds a usable session.
func (c *Client) HasSession() bool { return c.session().ok }

// ResyncInterval returns the configured verification period (negative when
// disabled).
func (c *Client) ResyncInterval() time.Duration { return c.cfg.ResyncInterval }

func (c *Client) session() session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// parentPath returns the parent of a znode path ("" for the root or a path
// that is not absolute).
func parentPath(p string) string {
	i := strings.LastIndexByte(p, '/')
	switch {
	case i < 0 || p == "/":
		return ""
	case i == 0:
		return "/"
	}
	return p[:i]
}

// validatePath checks an absolute znode path.
func validatePath(what, p string) error {
	if p == "" || p[0] != '/' {
		return fmt.Errorf("discovery: %s %q: must be an absolute znode path", what, p)
	}
	if p == "/" {
		return nil
	}
	if strings.HasSuffix(p, "/") {
		return fmt.Errorf("discovery: %s %q: must not end with /", what, p)
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." || strings.ContainsRune(seg, 0) {
			return fmt.Errorf("discovery: %s %q: empty, \".\" or \"..\" path element", what, p)
		}
	}
	return nil
}

package discovery

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/sirupsen/logrus"
)

// This file holds the client's event handling: go-zookeeper's callback,
// the routing of watch events to subscribers by path, and the session state
// machine that tells subscribers about new sessions.

// subscriber is told about what happens on the client. Both methods are
// called from the client's goroutines and must not block.
type subscriber interface {
	// nodeEvent reports a watch event on the subscribed path (child
	// false) or on one of its children (child true).
	nodeEvent(ev zk.Event, child bool)
	// sessionEvent reports a change of session state; the subscriber
	// reads the new state with Client.session.
	sessionEvent()
}

// session is the client's session as the subscribers see it.
type session struct {
	ok    bool   // a usable session is held
	id    int64  // its id
	gen   uint64 // incremented on each StateHasSession
	rearm uint64 // incremented when watches must all be set again
}

// onEvent is go-zookeeper's event callback. It runs on the library's
// goroutines and must not block.
func (c *Client) onEvent(ev zk.Event) {
	switch ev.Type {
	case zk.EventSession:
		c.liveState.Store(int32(ev.State))
		if ev.State == zk.StateConnected {
			c.watchHandshake()
		}
		c.evMu.Lock()
		c.evQueue = append(c.evQueue, ev.State)
		c.evMu.Unlock()
		select {
		case c.evSignal <- struct{}{}:
		default:
		}
	case zk.EventNotWatching:
		// Sent per watch when a session expires; the expiry itself
		// arrives as a session event.
	default:
		c.route(ev)
	}
}

// route delivers a watch event to the subscribers of its path and of its
// parent.
func (c *Client) route(ev zk.Event) {
	c.subMu.RLock()
	defer c.subMu.RUnlock()
	for s := range c.byPath[ev.Path] {
		s.nodeEvent(ev, false)
	}
	if parent := parentPath(ev.Path); parent != "" {
		for s := range c.byPath[parent] {
			s.nodeEvent(ev, true)
		}
	}
}

// subscribe registers s for session events and, when path is not empty, for
// watch events on path and its children.
func (c *Client) subscribe(path string, s subscriber) {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.all[s] = struct{}{}
	if path == "" {
		return
	}
	if c.byPath[path] == nil {
		c.byPath[path] = make(map[subscriber]struct{})
	}
	c.byPath[path][s] = struct{}{}
}

func (c *Client) unsubscribe(path string, s subscriber) {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	delete(c.all, s)
	if m := c.byPath[path]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(c.byPath, path)
		}
	}
}

// drain empties go-zookeeper's event channel until it is closed: the
// callback already saw every event.
func (c *Client) drain(events <-chan zk.Event) {
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-c.stop:
			return
		}
	}
}

// run handles session events in order, on a goroutine of its own.
func (c *Client) run() {
	for {
		select {
		case <-c.stop:
			return
		case <-c.evSignal:
		}
		c.evMu.Lock()
		states := c.evQueue
		c.evQueue = nil
		c.evMu.Unlock()
		for _, st := range states {
			c.handle(st)
		}
	}
}

// handle applies one of the library's session events to the client's own
// state (see SessionState) and tells the subscribers when the session became
// usable or stopped being so.
func (c *Client) handle(st zk.State) {
	if st == zk.StateHasSession {
		if err := c.authenticate(); err != nil {
			if c.closing.Load() {
				return // Close interrupted it
			}
			// The connection is closed or the server refused: the
			// library reconnects and the next session event retries.
			c.noteError(err)
			c.log.WithError(err).Error("zookeeper authentication failed; the session is not used until it succeeds")
			return
		}
	}
	c.mu.Lock()
	prev, prevState, lost := c.sess, c.state, c.noSession
	notify := false
	switch st {
	case zk.StateHasSession:
		c.established++
		c.sess = session{ok: true, id: c.conn.SessionID(), gen: prev.gen + 1, rearm: prev.rearm}
		c.setState(SessionConnected)
		notify = true
	case zk.StateExpired:
		c.expirations++
		c.sess.ok = false
		c.setState(SessionExpired)
		notify = true
	default:
		// Disconnected, connecting, TCP-connected, auth failed: no
		// usable session. An expired one stays "expired" until the
		// next session.
		if prev.ok {
			c.disconnects++
			c.sess.ok = false
			notify = true
		}
		if c.state == SessionConnected {
			c.setState(SessionConnecting)
		}
	}
	cur := c.sess
	c.mu.Unlock()
	if st == zk.StateAuthFailed {
		c.noteError(fmt.Errorf("zookeeper server %s refused the authentication", c.conn.Server()))
	}

	log := c.log.WithFields(logrus.Fields{"session": fmt.Sprintf("0x%x", cur.id), "state": c.Status().State.String()})
	switch {
	case st == zk.StateHasSession:
		log = log.WithField("server", c.conn.Server())
		if !lost.IsZero() {
			log = log.WithField("without_session", roundSeconds(time.Since(lost)).String())
		}
		switch {
		case prev.gen == 0:
			log.Info("zookeeper session established")
			close(c.first)
		case prev.id == cur.id:
			log.Info("zookeeper reconnected; session kept")
		default:
			log.Info("zookeeper new session; re-reading every watched service")
		}
	case st == zk.StateExpired:
		log.Warn("zookeeper session expired; serving the last known membership until a new session")
	case st == zk.StateAuthFailed:
		log.Error("zookeeper authentication failed")
	case prev.ok && c.closing.Load():
		log.Info("zookeeper session closed")
	case prev.ok:
		log.Warn("zookeeper connection lost; serving the last known membership while reconnecting")
	default:
		log.Debugf("zookeeper client state %v (session state %v)", st, prevState)
	}
	if notify {
		c.notifyAll()
	}
}

// The log reports a lack of session after firstOutageReport, then each
// time its length has doubled, then every maxOutageReport.
const (
	firstOutageReport = 3 * time.Second
	maxOutageReport   = time.Minute
)

// reportOutages logs, while the client has no session, how long it has
// been without one, which servers it is trying and the last error: at
// firstOutageReport, then less and less often.
func (c *Client) reportOutages() {
	first := firstOutageReport
	if c.cfg.outageReport > 0 {
		first = c.cfg.outageReport
	}
	t := time.NewTicker(min(first, time.Second))
	defer t.Stop()
	var reported time.Time // the outage last reported
	next := first
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		st := c.Status()
		since, state, lastErr := st.NoSessionSince, st.State, st.OutageError()
		if since.IsZero() {
			continue
		}
		if since != reported {
			reported, next = since, first
		}
		d := time.Since(since)
		if d < next {
			continue
		}
		next = d + min(max(d, first), maxOutageReport)
		servers := strings.Join(c.cfg.Servers, ",")
		e := c.log.WithFields(logrus.Fields{"state": state.String(), "servers": servers, "without_session": roundSeconds(d).String()})
		if lastErr != "" {
			e = e.WithField("last_error", lastErr)
		}
		e.Warnf("no zookeeper session for %v; still trying %s; serving the last known membership (none before the first session)", roundSeconds(d), servers)
	}
}

// roundSeconds rounds d for a log line: to the second from 10s up, to the
// tenth below.
func roundSeconds(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

func (c *Client) notifyAll() {
	c.subMu.RLock()
	defer c.subMu.RUnlock()
	for s := range c.all {
		s.sessionEvent()
	}
}

// watchResetFailed is called when go-zookeeper reports that it could not set
// the session's watches again after a reconnect: every subscriber must then
// set its watches itself.
func (c *Client) watchResetFailed() {
	c.mu.Lock()
	c.resetFailure++
	c.sess.rearm++
	c.mu.Unlock()
	c.notifyAll()
}

// zkLogger routes go-zookeeper's log into logrus at debug level. It also
// spots the messages that carry what the library reports nowhere else: that
// watches were lost on a reconnect (go-zookeeper v1.0.4 says so only in its
// log), and why a session handshake failed.
type zkLogger struct {
	log                 logrus.FieldLogger
	onWatchResetFailure func()
	onHandshakeFailure  func(error)
}

func (l zkLogger) Printf(format string, args ...any) {
	switch {
	case strings.HasPrefix(format, "Failed to set previous watches"):
		l.log.Warnf("zookeeper: "+format+"; setting every watch again", args...)
		l.onWatchResetFailure()
		return
	case strings.HasPrefix(format, "authentication failed: ") && l.onHandshakeFailure != nil:
		// The library's name for a failed session handshake. Not for a
		// connection the watchdog closed (it noted why) nor for an
		// expired session (a state of its own).
		var err error
		if len(args) > 0 {
			err, _ = args[0].(error)
		}
		if !errors.Is(err, net.ErrClosed) && !errors.Is(err, zk.ErrSessionExpired) {
			l.onHandshakeFailure(fmt.Errorf("session handshake failed: %v", fmt.Sprint(args...)))
		}
	}
	l.log.Debugf("zookeeper: "+format, args...)
}

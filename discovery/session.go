package discovery

import (
	"fmt"
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

func (c *Client) handle(st zk.State) {
	c.mu.Lock()
	prev := c.sess
	if st != c.state {
		c.state, c.since = st, time.Now()
	}
	notify := false
	switch st {
	case zk.StateHasSession:
		c.established++
		c.sess = session{ok: true, id: c.conn.SessionID(), gen: prev.gen + 1, rearm: prev.rearm}
		notify = true
	case zk.StateExpired:
		c.expirations++
		c.sess.ok = false
		notify = true
	case zk.StateDisconnected, zk.StateAuthFailed:
		if prev.ok {
			c.disconnects++
		}
		c.sess.ok = false
		notify = prev.ok
	}
	cur := c.sess
	c.mu.Unlock()

	log := c.log.WithField("session", fmt.Sprintf("0x%x", cur.id))
	switch {
	case st == zk.StateHasSession && prev.gen == 0:
		log.WithField("server", c.conn.Server()).Info("zookeeper session established")
		close(c.first)
	case st == zk.StateHasSession && prev.id == cur.id:
		log.WithField("server", c.conn.Server()).Info("zookeeper reconnected; session kept")
	case st == zk.StateHasSession:
		log.WithField("server", c.conn.Server()).Info("zookeeper new session; re-reading every watched service")
	case st == zk.StateExpired:
		log.Warn("zookeeper session expired; serving the last known membership until a new session")
	case st == zk.StateAuthFailed:
		log.Error("zookeeper authentication failed")
	case st == zk.StateDisconnected && prev.ok && c.closing.Load():
		log.Info("zookeeper session closed")
	case st == zk.StateDisconnected && prev.ok:
		log.Warn("zookeeper disconnected; serving the last known membership")
	default:
		log.Debugf("zookeeper state %v", st)
	}
	if notify {
		c.notifyAll()
	}
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
// spots the one message that says watches were lost on a reconnect
// (go-zookeeper v1.0.4 reports it only in its log).
type zkLogger struct {
	log                 logrus.FieldLogger
	onWatchResetFailure func()
}

func (l zkLogger) Printf(format string, args ...any) {
	if strings.HasPrefix(format, "Failed to set previous watches") {
		l.log.Warnf("zookeeper: "+format+"; setting every watch again", args...)
		l.onWatchResetFailure()
		return
	}
	l.log.Debugf("zookeeper: "+format, args...)
}

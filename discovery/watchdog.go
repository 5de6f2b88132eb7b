package discovery

import (
	"fmt"
	"net"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/zkgate/zkgate/internal/logging"
)

// go-zookeeper waits up to ten read timeouts (6.7 times the session timeout)
// for the server's answer to its session handshake. A server that accepts
// connections without answering them (a JVM still starting, a server stuck
// or half dead) thus holds the client off every other server, and off a
// recovered one, for minutes. The Client bounds the handshake itself: a
// connection still without a session after handshakeTimeout is closed, and
// the library reconnects.

// Bounds of the handshake timeout, which is a third of the session timeout.
const (
	minHandshakeTimeout = time.Second
	maxHandshakeTimeout = 10 * time.Second
)

func handshakeTimeout(session time.Duration) time.Duration {
	return min(max(session/3, minHandshakeTimeout), maxHandshakeTimeout)
}

// dialedConn is the identity of one connection made by the library.
type dialedConn struct{ net.Conn }

// dial is the library's dialer: a plain TCP dial that remembers the
// connection for the watchdog.
func (c *Client) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		c.noteError(err)
		return nil, err
	}
	c.lastConn.Store(&dialedConn{conn})
	return conn, nil
}

// watchHandshake is called when the library has connected (StateConnected)
// and starts its handshake on the last dialed connection: if that
// connection is still the current one and still has no session after the
// handshake timeout, it is closed.
func (c *Client) watchHandshake() {
	dc := c.lastConn.Load()
	if dc == nil {
		return
	}
	time.AfterFunc(c.handshakeTimeout, func() {
		if c.lastConn.Load() != dc || zk.State(c.liveState.Load()) != zk.StateConnected {
			return
		}
		c.handshakeTimeouts.Add(1)
		server := dc.RemoteAddr().String()
		c.noteError(fmt.Errorf("%s accepted the connection but did not complete the session handshake within %v", server, c.handshakeTimeout))
		c.log.WithField("server", server).
			Debugf("zookeeper accepted the connection but did not complete the session handshake within %s; reconnecting", logging.Duration(c.handshakeTimeout))
		_ = dc.Close()
	})
}

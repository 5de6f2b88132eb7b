package proxy

import (
	"errors"
	"net"
	"time"
)

// watchDelay is how long a fast-path request waits for its response head
// before a goroutine starts watching the client connection. Quick answers,
// the bulk, pay for a timer reset and stop only; a slow one has its
// upstream exchange aborted when the client goes away (the Handler's path
// gets the same from net/http's background read; nginx from epoll).
const watchDelay = 100 * time.Millisecond

// Read is the client connection as the input buffer reads it: the byte
// the watch may have read first.
func (c *fconn) Read(p []byte) (int, error) {
	if c.watchN > 0 && len(p) > 0 {
		p[0] = c.watchBuf[0]
		c.watchN = 0
		return 1, nil
	}
	if c.sock.ok() {
		return c.sock.Read(p)
	}
	return c.nc.Read(p)
}

// armWatch starts the watch timer of a request.
func (c *fconn) armWatch() {
	if c.watchN > 0 {
		// A byte an earlier watch read is not in the input buffer yet (the
		// requests since were buffered whole): a second watch could
		// overwrite or drop it, shifting the stream. This request goes
		// unwatched; the byte is read first by the next fill.
		c.watching = false
		return
	}
	c.watching = true
	if c.watchTimer == nil {
		c.watchDone = make(chan struct{}, 1)
		c.watchTimer = time.AfterFunc(watchDelay, c.watch)
		return
	}
	c.watchTimer.Reset(watchDelay)
}

// disarmWatch ends the watch of a request: the timer is stopped or, when
// it fired, the watching read is interrupted and awaited, so that the
// connection's reader is the request goroutine's alone again.
func (c *fconn) disarmWatch() {
	c.cur.Store(nil)
	if !c.watching {
		return
	}
	c.watching = false
	if c.watchTimer.Stop() {
		return
	}
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
	<-c.watchDone
	c.readDeadline = time.Time{}
	_ = c.nc.SetReadDeadline(time.Time{})
}

// watch runs on its own goroutine once a request's answer is slow: it reads
// the client connection, which an HTTP/1.1 client leaves silent while it
// awaits the answer. End of stream or an error other than the interrupting
// deadline means the client went away: the upstream exchange in progress is
// aborted. A byte read is the start of a pipelined request, kept for the
// reader.
func (c *fconn) watch() {
	n, err := c.nc.Read(c.watchBuf[:])
	c.watchN = n
	var ne net.Error
	if n == 0 && err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		c.gone.Store(true)
		if uc := c.cur.Load(); uc != nil {
			uc.abort()
		}
	}
	c.watchDone <- struct{}{}
}

// watchUpstream makes uc the exchange the watch aborts; it reports false
// when the client has gone already.
func (c *fconn) watchUpstream(uc *upConn) bool {
	c.cur.Store(uc)
	if c.gone.Load() {
		uc.abort()
		return false
	}
	return true
}

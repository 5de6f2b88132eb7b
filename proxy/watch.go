package proxy

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// errReadInWait is a read of a client connection whose hot wait serves
// the request (fconn.Read).
var errReadInWait = errors.New("proxy: client read while its wait serves a request")

// watchDelay is how long a fast-path request waits for its response head
// before a goroutine starts watching the client connection. Quick answers,
// the bulk, pay for two uncontended locks (clientWatch); a slow one has its
// upstream exchange aborted when the client goes away (the Handler's path
// gets the same from net/http's background read; nginx from epoll).
const watchDelay = 100 * time.Millisecond

// Read is the client connection as the input buffer reads it: the byte
// the watch may have read first.
func (c *fconn) Read(p []byte) (int, error) {
	if c.inWait {
		// The wait holds the socket's read lock: a read would wait for
		// it for ever. serveInWait takes no request that reads on.
		return 0, errReadInWait
	}
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

// A clientWatch is the watch timer of an fconn and its state, kept with
// the fconn across its recycling. The timer is not moved with every
// request: a request's watch is armed by recording its start, and the
// timer, once set, checks when it fires whether the request then in
// flight has waited watchDelay — if not, it is set again for the rest of
// that request's delay; if no request is in flight, it stays unset until
// the next request sets it. A busy connection so costs its timer about one
// firing per watchDelay rather than a reset and a stop per request.
//
// A request served inside the hot wait (waitserve.go) cannot have its
// client read: its watch peeks at the socket instead, every watchDelay
// until the end of the answer's body, and takes the end of stream, an
// error or the socket being closed for the client gone (look). It sees
// that up to watchDelay late; once the client has sent bytes, it sees the
// socket being closed only.
type clientWatch struct {
	c      *fconn
	timer  *time.Timer
	done   chan struct{} // the watching read has ended
	peekFn func(uintptr) // w.peekFd, bound once
	mu     sync.Mutex
	since  time.Time // the start of the request in flight (state watchArmed)
	state  uint8
	set    bool // the timer is set (and its function not yet past mu)
	peek   bool // the request in flight is watched by peeking (fconn.inWait, fconn.inLoop)
	peekN  int
	peekE  syscall.Errno
}

// The states of a clientWatch.
const (
	watchIdle    = iota // no request is watched
	watchArmed          // a request waits for its answer; the watch may start
	watchRunning        // the watching read runs
)

// armWatch arms the watch of a request that started at c.now.
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
	w := c.w
	if w == nil {
		w = &clientWatch{c: c, done: make(chan struct{}, 1)}
		w.peekFn = w.peekFd
		c.w = w
	}
	w.mu.Lock()
	w.state, w.since, w.peek = watchArmed, c.now, c.inWait || c.inLoop
	if !w.set {
		w.set = true
		if w.timer == nil {
			w.timer = time.AfterFunc(watchDelay, w.fire)
		} else {
			w.timer.Reset(watchDelay)
		}
	}
	w.mu.Unlock()
}

// fire is the watch timer's function: the watch starts if the request in
// flight has waited watchDelay, else the timer is set for the rest of its
// delay; with no request in flight it is left unset.
func (w *clientWatch) fire() {
	w.mu.Lock()
	if w.state != watchArmed {
		w.set = false
		w.mu.Unlock()
		return
	}
	if d := watchDelay - time.Since(w.since); d > 0 {
		w.timer.Reset(d)
		w.mu.Unlock()
		return
	}
	if w.peek {
		w.look()
		w.mu.Unlock()
		return
	}
	w.state, w.set = watchRunning, false
	w.mu.Unlock()
	w.c.watch()
}

// look peeks at the client's socket for the request in flight (under
// w.mu): nothing there, or bytes (the next request), it looks again after
// watchDelay; the end of stream or an error means the client went away,
// and a socket being closed that the server closes it: either way the
// exchange is aborted, as nginx aborts it (proxy_ignore_client_abort off,
// its default), and the watch ends.
func (w *clientWatch) look() {
	c := w.c
	w.peekN, w.peekE = 0, 0
	closing := c.cc.raw.Control(w.peekFn) != nil // Server.Close closes it
	if !closing && (w.peekE == syscall.EAGAIN || w.peekE == syscall.EWOULDBLOCK || w.peekN > 0) {
		// Nothing yet, or bytes (the next request), behind which the
		// end of stream cannot be seen: it looks again, for the socket
		// being closed at least.
		w.timer.Reset(watchDelay)
		return
	}
	c.clientLeft()
	w.set = false
}

// disarmWatch ends the watch of a request: when the watching read has
// started, it is interrupted and awaited, so that the connection's reader
// is the request goroutine's alone again.
func (c *fconn) disarmWatch() {
	c.cur.Store(nil)
	if !c.watching {
		return
	}
	c.watching = false
	w := c.w
	w.mu.Lock()
	running := w.state == watchRunning
	w.state = watchIdle
	w.mu.Unlock()
	if !running {
		return
	}
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
	<-w.done
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
		c.clientLeft()
	}
	c.w.done <- struct{}{}
}

// clientLeft records that the client went away (or the server closes its
// connection) and aborts the upstream exchange in progress, if any.
func (c *fconn) clientLeft() {
	c.gone.Store(true)
	if uc := c.cur.Load(); uc != nil {
		uc.abort()
	}
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

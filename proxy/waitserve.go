package proxy

// Serving in the wait.
//
// A hot wait (cconn.wait) is one RawConn.Read of the client's socket: the
// runtime clears the socket's readiness when the read begins, calls the
// wait's function, and parks the goroutine until the socket is readable
// each time the function asks to wait. When the function returns, and the
// next wait begins with another Read, any readiness that came in between
// is cleared, so that wait must try a receive before it may park: on a
// keep-alive connection, whose client sends its next request only once it
// has the answer, that receive fails every time (EAGAIN), one failed
// system call per request.
//
// So a request that the wait's function reads, and that can be served
// without reading the client's socket again, is served inside the
// function: its answer is written there, and the function then asks to
// wait on, within the same Read. Readiness that came while the request
// was served (a pipelined request, the end of stream) is not cleared, so
// the wait ends at once for it; otherwise the goroutine parks, and the
// next request's readiness wakes it to a receive that succeeds. Such a
// request is one that came whole in the read, its head and its body if it
// has one (with a Content-Length), not asking to switch protocols; anything
// else leaves the wait with its serving state bound, and fconn.serve goes
// on with it as with any request (from its head again when nothing was
// answered).
//
// Inside the function the goroutine holds the socket's read lock, and
// closing the socket waits until it is released:
//   - the client is never read while such a request is served (fconn.Read
//     refuses to), and its watch looks at the socket without reading it
//     (clientWatch.look), from the wait for the answer to the end of its
//     body;
//   - the connection is never closed inside the function: it ends the
//     wait, and cconn.wait closes it, after draining what the client
//     still sends when a body was refused (lingerClose);
//   - another goroutine's close (Server.Close) is not waited for
//     (connInWait): the watch sees the socket closing within watchDelay
//     and aborts the exchange, which ends the request.

// serveInWait serves the request the hot wait has just read (cc.got)
// inside the wait, when it can. It reports whether the wait goes on; if
// not, w.out says how it ended.
func (w *hotWaiter) serveInWait() bool {
	cc := w.cc
	switch cc.endWait(connWaiting, connInWait) {
	case connWaiting:
	case connKicked:
		// kickCold's deadline, in the past: the next waitDeadline moves
		// it.
		cc.readDeadline = aLongTimeAgo.UnixNano()
	default: // Shutdown closed it
		cc.dropGot()
		w.out = outClosed
		return false
	}
	c := bindFconn(cc)
	cc.quick = c.now.UnixNano()-cc.since.Load() < int64(hotIdle)
	if !cc.quick || cc.s.closing.Load() {
		// Parked once served, or the server closing: served outside the
		// wait. (Server.closeAll, which runs once closing is set, either
		// saw connInWait, or finds the connection served outside and its
		// close waits for nothing.)
		return w.handOut(c)
	}
	from := 0
	n := headEnd(c.in.unread(), &from)
	if n <= 0 || n > c.s.cfg.MaxHeaderBytes {
		return w.handOut(c) // not whole, or to be refused: fconn.serve's
	}
	c.req.reset()
	c.why = ""
	r := &c.req
	if c.parseRequest(c.in.unread()[:n]) != serveFast || r.chunked || r.upgrade != nil ||
		r.clen > int64(len(c.in.unread())-n) {
		// A body not all here (readBody would read on): served outside,
		// from its head again.
		return w.handOut(c)
	}
	c.inWait = true
	keep, verdict := c.serveRequest(n)
	if verdict > 0 {
		// A body refused before any route took it (as fconn.serve
		// refuses it): answered, drained once the wait has returned.
		c.reject(verdict)
	}
	c.inWait = false
	switch {
	case verdict == handOff:
		// Nothing was answered (a route the fast path does not serve):
		// handed off outside the wait.
		return w.handOut(c)
	case verdict != serveFast || !keep || c.s.closing.Load():
		// Answered, and the connection ends (as in fconn.serve), once
		// the read has returned.
		if c.drainLater {
			w.out, w.next = outDrain, c
			return false
		}
		c.recycle()
		w.out = outClose
		return false
	case len(c.in.unread()) > 0:
		return w.handOut(c) // a pipelined request follows: served outside
	}
	// Served: the connection waits on, without its buffers (as cconn.run
	// has it wait).
	c.waitDeadline()
	cc.readDeadline = unixNanos(c.readDeadline)
	since := c.now
	c.recycle()
	if ok, own := cc.waitOn(since); !ok {
		w.out = outClosed
		if own {
			w.out = outClose
		}
		return false
	}
	return true
}

// handOut ends the wait with c, bound to the connection and holding what
// was read, to be served outside it.
func (w *hotWaiter) handOut(c *fconn) bool {
	w.cc.state.Store(connActive)
	w.out, w.next = outServe, c
	return false
}

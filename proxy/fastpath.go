package proxy

import (
	"net/http"
	"time"
)

// serveRequest serves the parsed request whose head is the first n unread
// bytes, reading its body first. It reports whether the connection stays
// open, and a verdict other than serveFast when the request is not served
// here: handOff (a route the fast path does not serve, a body net/http streams —
// nothing sent then), clientGone, or a status to reject it with (a body
// over the limits, malformed or too slow).
func (c *fconn) serveRequest(n int) (keep bool, verdict int) {
	e, keep, verdict := c.prepare(n)
	if e == nil {
		return keep, verdict
	}
	return c.end(n, c.proxy(e, &c.ex)), serveFast
}

// prepare readies the exchange (c.ex) of the parsed request whose head is
// the first n unread bytes, up to what goes upstream: its route, its body,
// its admission by the route's policies and its outbound head. It returns
// the route's entry when the request is to be proxied; otherwise nil, and
// serveRequest's results: the request was answered here (no route, a
// refused body, a policy's answer), or is not served here (verdict).
func (c *fconn) prepare(n int) (e *entry, keep bool, verdict int) {
	h := c.s.h
	r := &c.req
	path := bstr(r.path)
	e = h.router.Load().find(hostOnly(bstr(r.host)), r.method, path, bstr(r.query), r)
	limit := c.s.cfg.MaxBodyBytes
	if e != nil {
		if !e.fast {
			return nil, false, handOff
		}
		if l := e.route.Upstream.MaxBodyBytes; l > 0 && l < limit {
			limit = l
		}
		if r.rawPath != nil && e.route.StripPrefix && e.prefix != "" {
			if _, raw := stripPrefix(path, bstr(r.rawPath), e.prefix); raw == "" {
				// The escaped form does not survive the strip: the Handler
				// sends the decoded rest in net/url's default escaping.
				return nil, false, handOff
			}
		}
	}
	if c.nowStale {
		c.now, c.nowStale = time.Now(), false
	}
	start := c.now
	if v := c.readBody(n, limit); v != serveFast {
		if v > 0 && e != nil {
			return nil, c.refuse(e, start, v), serveFast
		}
		return nil, false, v
	}
	if e == nil {
		return nil, c.notFound(n), serveFast
	}
	ex := &c.ex
	c.begin(e, start)
	if e.pol != nil {
		// The connection's answer buffer, reused: an admitted request
		// allocates nothing here.
		w := &c.polAnswer
		w.status, w.body = 0, w.body[:0]
		clear(w.h)
		if e.admit(ex, r.method, r, w, start) {
			// Refused, or a preflight answered: no endpoint is contacted,
			// and the connection stays (its body, if any, was read).
			c.writeBuffered(ex, w)
			return nil, c.end(n, true), serveFast
		}
	}
	up := e.route.Upstream
	ex.replayable = isIdempotent(r.method) || r.idemKey
	ex.bodyUnkept = r.clen > 0 && !(e.record && ex.replayable && r.clen <= up.Retry.BufferBodyBytes)
	ex.hashKey = e.hash.key(r, path, ex.clientIP)
	if h.onFast != nil {
		h.onFast(c.inWait || c.inLoop)
	}
	c.buildOutbound(e, ex, path)
	return e, false, serveFast
}

// refuse answers a request of route e whose body the fast path refuses —
// 400 malformed, 408 not whole within BodyTimeout, 413 over the limit — as
// the Handler answers such a body (a JSON error naming the route, counted
// and logged), and closes the connection: the rest of the body cannot be
// told apart from a request. It reports false, the connection's fate.
func (c *fconn) refuse(e *entry, start time.Time, status int) bool {
	c.req.close = true
	c.begin(e, start)
	kind := failBadBody
	switch status {
	case http.StatusRequestEntityTooLarge:
		kind = failBodyTooLarge
	case http.StatusRequestTimeout:
		kind = failBodyTimeout
	}
	var w bufferedResponse
	writeFailure(&w, &c.ex, kind)
	c.writeBuffered(&c.ex, &w)
	c.finish(&c.ex)
	if c.bw.Flush() == nil {
		c.lingerClose()
	}
	return false
}

// begin starts c.ex, the exchange of a request of route e (nil: none
// matched) that arrived at start.
func (c *fconn) begin(e *entry, start time.Time) {
	ex := &c.ex
	*ex = exchange{h: c.s.h, e: e, start: start, clock: &c.now}
	ex.tried = ex.triedBuf[:0]
	ex.clientIP, ex.trusted = clientIP(c.peer, &c.req, c.s.h.trusted)
	if t := c.s.cfg.WriteTimeout; t > 0 {
		_ = c.nc.SetWriteDeadline(start.Add(t))
	}
}

// end accounts for the request whose head is n bytes long, consumes it
// and flushes its answer. It reports whether the connection stays open:
// keep, unless the client or a shutdown says otherwise.
func (c *fconn) end(n int, keep bool) bool {
	c.finish(&c.ex)
	// The head's and body's bytes are consumed only now: until here the
	// parsed slices pointed into them.
	c.releaseBody(n)
	flushed := c.bw.Flush() == nil
	// The flush may have waited on a slow reader: a request read already
	// (pipelined) reads the clock for its start.
	c.nowStale = true
	return flushed && keep && !c.req.close && !c.s.closing.Load()
}

// fail answers a request that got no response, as handleError does.
func (c *fconn) fail(ex *exchange, kind failKind, err error) bool {
	ex.fail = kind
	if kind == failClientGone {
		ex.sw.status = StatusClientClosedRequest // nobody is listening
		return false
	}
	logFailure(ex, err)
	var w bufferedResponse
	writeFailure(&w, ex, kind)
	c.writeBuffered(ex, &w)
	return true // serveRequest flushes
}

// writeBuffered writes an answer the proxy made itself (with a
// Content-Length) to the client, and records its status and size in ex.
func (c *fconn) writeBuffered(ex *exchange, w *bufferedResponse) {
	ex.sw.status, ex.sw.size = w.status, int64(len(w.body))
	c.bw.statusLine(c.req.http10, w.status, http.StatusText(w.status))
	for name, vals := range w.h {
		for _, v := range vals {
			c.bw.field(name, v)
		}
	}
	c.endHead(false, true)
	if c.req.method != http.MethodHead {
		_, _ = c.bw.Write(w.body)
	}
}

// notFound answers, as the Handler does, the request whose head is the
// first n buffered bytes (its body, if any, buffered after it) and which
// no route matches: 404, counted and logged without a route. It reports
// whether the connection stays open. Serving it here rather than handing
// the connection to net/http keeps a client's keep-alive connection on
// the fast path after a stray request (a browser's /favicon.ico).
func (c *fconn) notFound(n int) bool {
	c.now = time.Now()
	c.begin(nil, c.now)
	var w bufferedResponse
	writeError(&w, http.StatusNotFound, "no route", "", "")
	c.writeBuffered(&c.ex, &w)
	return c.end(n, true)
}

// bufferedResponse is the http.ResponseWriter of an error answer on the
// fast path.
type bufferedResponse struct {
	h      http.Header
	status int
	body   []byte
}

func (w *bufferedResponse) Header() http.Header {
	if w.h == nil {
		w.h = make(http.Header, 4)
	}
	return w.h
}

func (w *bufferedResponse) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *bufferedResponse) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

// finish reports the request to metrics and the access log, as
// Handler.finish does.
func (c *fconn) finish(ex *exchange) {
	h := c.s.h
	d := time.Since(ex.start)
	c.now = ex.start.Add(d)
	status := ex.sw.status
	if h.metrics != nil {
		var route *Route
		if ex.e != nil {
			route = ex.e.route
		}
		h.metrics.ObserveRequest(route, c.req.method, status, d, ex.attempts)
	}
	if h.access != nil {
		proto := "HTTP/1.1"
		if c.req.http10 {
			proto = "HTTP/1.0"
		}
		h.access.recordFields(ex, c.remoteAddr, c.req.method, bstr(c.req.host), bstr(c.req.target), proto, status, d)
	}
}

package proxy

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/zkgate/zkgate/balancer"
)

// serveRequest serves the parsed request whose head is the first n unread
// bytes, reading its body first. It reports whether the connection stays
// open, and a verdict other than serveFast when the request is not served
// here: handOff (a route the fast path does not serve, a body net/http streams —
// nothing sent then), clientGone, or a status to reject it with (a body
// over the limits, malformed or too slow).
func (c *fconn) serveRequest(n int) (keep bool, verdict int) {
	h := c.s.h
	r := &c.req
	path := bstr(r.path)
	e := h.router.Load().find(hostOnly(bstr(r.host)), r.method, path, r)
	limit := c.s.cfg.MaxBodyBytes
	if e != nil {
		if !e.fast {
			return false, handOff
		}
		if l := e.route.Upstream.MaxBodyBytes; l > 0 && l < limit {
			limit = l
		}
		if r.rawPath != nil && e.route.StripPrefix && e.prefix != "" {
			if _, raw := stripPrefix(path, bstr(r.rawPath), e.prefix); raw == "" {
				// The escaped form does not survive the strip: the Handler
				// sends the decoded rest in net/url's default escaping.
				return false, handOff
			}
		}
	}
	start := time.Now()
	c.now = start
	if v := c.readBody(n, limit); v != serveFast {
		if v > 0 && e != nil {
			return c.refuse(e, start, v), serveFast
		}
		return false, v
	}
	if e == nil {
		return c.notFound(n), serveFast
	}
	ex := &c.ex
	c.begin(e, start)
	up := e.route.Upstream
	ex.replayable = isIdempotent(r.method) || r.idemKey
	ex.bodyUnkept = r.clen > 0 && !(e.record && ex.replayable && r.clen <= up.Retry.BufferBodyBytes)
	ex.hashKey = e.hash.key(r, path, ex.clientIP)
	if h.onFast != nil {
		h.onFast()
	}
	c.buildOutbound(e, ex, path)
	return c.end(n, c.proxy(e, ex)), serveFast
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
	*ex = exchange{h: c.s.h, e: e, start: start}
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
	return c.bw.Flush() == nil && keep && !c.req.close && !c.s.closing.Load()
}

// buildOutbound writes the outbound request head into c.out, with the
// Host value left out at c.hostAt: it may differ per attempt. It applies
// what ReverseProxy, shape and setForwarded do on the net/http side.
func (c *fconn) buildOutbound(e *entry, ex *exchange, path string) {
	r := &c.req
	b := c.out[:0]
	b = append(b, r.method...)
	b = append(b, ' ')
	plan := &e.plan
	stripping := plan.prefix != nil
	switch {
	case stripping && r.rawPath != nil:
		_, raw := stripPrefix(path, bstr(r.rawPath), e.prefix)
		b = append(b, raw...)
	case stripping:
		p, _ := stripPrefix(path, "", e.prefix)
		b = append(b, p...)
	case r.rawPath != nil:
		b = append(b, r.rawPath...)
	default:
		b = append(b, path...)
	}
	if r.hasQuery {
		b = append(b, '?')
		b = append(b, r.query...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	c.hostAt = len(b)
	b = append(b, "\r\n"...)
	switch {
	case r.chunked:
		// The body goes as it came, its framing checked.
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case r.clen > 0, r.method == http.MethodPost, r.method == http.MethodPut, r.method == http.MethodPatch:
		// As net/http's transport: a length whenever there is a body or
		// the method expects one.
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, r.clen, 10)
		b = append(b, "\r\n"...)
	}

	var xffPrior, xfHost, xfProto []byte
	nPrior := 0
	uaSeen := false
	for i := range r.hdrs {
		l := &r.hdrs[i]
		switch l.kind {
		case hkHost, hkConnection, hkHop, hkTe, hkForwarded, hkXRealIP, hkContentLength, hkTransferEncoding:
			continue
		case hkXFF:
			if nPrior > 0 {
				xffPrior = append(xffPrior, ", "...)
			}
			xffPrior = append(xffPrior, l.value...)
			nPrior++
			continue
		case hkXFHost:
			if xfHost == nil {
				xfHost = l.value
			}
			continue
		case hkXFProto:
			if xfProto == nil {
				xfProto = l.value
			}
			continue
		case hkXFPrefix:
			if !ex.trusted || stripping {
				continue
			}
		case hkUserAgent:
			// The first User-Agent decides, as in writeRequest: an
			// empty one is sent as none.
			if uaSeen || len(l.value) == 0 {
				uaSeen = true
				continue
			}
			uaSeen = true
		}
		if plan.edits(bstr(l.name)) {
			continue
		}
		b = appendField(b, l.name, l.value)
	}
	if r.te {
		b = append(b, "Te: trailers\r\n"...)
	}
	// setForwarded.
	if c.peer != "" && plan.sends(genXFF) {
		if ex.trusted && nPrior > 0 {
			xffPrior = append(append(xffPrior, ", "...), c.peer...)
			b = appendField(b, "X-Forwarded-For", xffPrior)
		} else {
			b = appendField(b, "X-Forwarded-For", c.peer)
		}
	}
	host := r.host
	if ex.trusted && len(xfHost) > 0 {
		host = xfHost
	}
	if plan.sends(genXFHost) {
		b = appendField(b, "X-Forwarded-Host", host)
	}
	proto := []byte("http")
	if ex.trusted && len(xfProto) > 0 {
		proto = xfProto
	}
	if plan.sends(genXFProto) {
		b = appendField(b, "X-Forwarded-Proto", proto)
	}
	if ex.clientIP != "" && plan.sends(genRealIP) {
		b = appendField(b, "X-Real-Ip", ex.clientIP)
	}
	if stripping && plan.sends(genPrefix) {
		b = appendField(b, "X-Forwarded-Prefix", plan.prefix[0])
	}
	for i := range plan.set {
		if s := &plan.set[i]; !s.none {
			b = appendField(b, s.name, s.value[0])
		}
	}
	b = append(b, "\r\n"...)
	c.out = b
}

// appendField appends the header line "name: value".
func appendField[N, V string | []byte](b []byte, name N, value V) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}

// proxy makes the attempts of one request (entry.attempts) and relays the
// answer. It reports whether the client connection stays open.
func (c *fconn) proxy(e *entry, ex *exchange) bool {
	tr := e.route.Upstream.Transport.(*Transport)
	var deadline time.Time
	if t := e.route.Timeout; t > 0 {
		deadline = ex.start.Add(t)
	}
	var uc *upConn
	try := func(ep balancer.Endpoint) (failKind, error) {
		if ex.attempts == 1 {
			c.armWatch()
		} else {
			c.now = time.Now()
		}
		var kind failKind
		var err error
		uc, kind, err = c.attempt(tr, e, ep, deadline)
		return kind, err
	}
	discard := func() {
		if uc != nil {
			uc.close()
		}
	}
	ep, kind, err := e.attempts(ex, try, discard)
	if kind == failNoEndpoint {
		return c.fail(ex, kind, err)
	}
	c.disarmWatch()
	if uc == nil {
		e.done(ep)
		return c.fail(ex, kind, err)
	}
	keep := c.relay(uc, ex)
	e.done(ep)
	return keep
}

// failure classifies a failed exchange with an endpoint (classify).
func (c *fconn) failure(err error, deadline time.Time) failKind {
	if c.gone.Load() {
		return failClientGone
	}
	return classify(err, nil, !deadline.IsZero() && !time.Now().Before(deadline), false)
}

// attempt sends the request to ep and reads the response head into c.res.
// On success (an answer, 5xx included) it returns the connection, which
// the body is then read from; on failure the connection is closed.
func (c *fconn) attempt(tr *Transport, e *entry, ep balancer.Endpoint, deadline time.Time) (*upConn, failKind, error) {
	addr := ep.Addr
	if !strings.Contains(addr, ":") {
		addr += ":80"
	}
	p := tr.pool(addr)
	uc := p.reusable(c.now)
	fresh := uc == nil
	if fresh {
		var err error
		if uc, err = tr.dialBy(p, deadline); err != nil {
			return nil, c.failure(err, deadline), err
		}
	}
	host := ep.Addr
	if e.route.Upstream.PassHostHeader {
		host = bstr(c.req.host)
	}
	for {
		if !c.watchUpstream(uc) {
			uc.close()
			return nil, failClientGone, errClientGone
		}
		err := c.roundTripHead(uc, host, deadline)
		if err == nil {
			if c.res.status >= 500 {
				return uc, failServerError, nil
			}
			return uc, failNone, nil
		}
		stale := uc.reused && uc.nread == 0
		uc.close()
		kind := c.failure(err, deadline)
		if fresh || !stale || kind == failRouteTimeout || kind == failClientGone ||
			(uc.nwritten > 0 && !c.ex.replayable) {
			return nil, kind, err
		}
		// A kept-alive connection the endpoint had closed: nothing was
		// processed, so try once more on a fresh one when nothing was
		// written or the request may be sent twice (net/http's rule; the
		// body is in memory).
		fresh = true
		if uc, err = tr.dialBy(p, deadline); err != nil {
			return nil, c.failure(err, deadline), err
		}
	}
}

// roundTripHead writes the request on uc and reads the final response
// head into c.res, passing informational answers on to the client.
func (c *fconn) roundTripHead(uc *upConn, host string, deadline time.Time) error {
	uc.nread, uc.nwritten = 0, 0
	dl := deadline
	if t := uc.pool.t.cfg.ResponseHeaderTimeout; t > 0 {
		if hd := c.now.Add(t); dl.IsZero() || hd.Before(dl) {
			dl = hd
		}
	}
	uc.setDeadline(dl, uc.pool.t.cfg.ResponseHeaderTimeout, !deadline.IsZero())
	_, _ = uc.bw.Write(c.out[:c.hostAt])
	_, _ = uc.bw.WriteString(host)
	_, _ = uc.bw.Write(c.out[c.hostAt:])
	_, _ = uc.bw.Write(c.body)
	if err := uc.bw.Flush(); err != nil {
		return err
	}
	for informational := 0; ; informational++ {
		n, err := readResponseHead(uc.br)
		if err == nil {
			err = c.res.parse(uc.br, n)
		}
		if err != nil {
			return err
		}
		if c.res.status >= 200 {
			return nil
		}
		if c.res.status == http.StatusSwitchingProtocols {
			return errUnaskedSwitch
		}
		if informational == max1xx {
			return errTooMany1xx
		}
		// An informational answer (103 Early Hints): pass it on.
		c.writeHead(false)
		_, _ = uc.br.Discard(n)
		if err := c.bw.Flush(); err != nil {
			return errClientGone
		}
	}
}

// max1xx is the number of informational answers passed on before a final
// one; more fail the exchange (502), as net/http's transport fails it.
const max1xx = 5

var (
	errUnaskedSwitch = errors.New("proxy: upstream switched protocols unasked")
	errTooMany1xx    = errors.New("proxy: upstream sent too many informational answers")
	errClientGone    = errors.New("proxy: the client went away")
)

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

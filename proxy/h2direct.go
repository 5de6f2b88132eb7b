package proxy

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/http2/hpack"

	"github.com/zkgate/zkgate/balancer"
)

// forward.direct serves the most common HTTP/2 request — no body, a route
// whose policies do not edit answers, not gRPC, an HTTP/1.1 upstream —
// from the native server's stream to the upstream connection and back
// without the http.Response and header maps between them: the request is
// built as forward.lean builds it and written as roundTripH1 writes it;
// the answer's head is read into a fastResponse, and its fields go from
// there into the HEADERS frame, its body from the connection's buffer into
// DATA frames. That takes more than a quarter off the gateway's CPU per
// HTTP/2 request (h2load -c4 -m16 over TLS: 59 against 81 µs). An answer
// direct does not carry whole (chunked, or delimited by the connection's
// end) becomes an http.Response after its head and goes the lean way.
// TestNativeH2Diff and FuzzNativeH2 compare it with ReverseProxy and
// net/http's server.

// directEligible reports whether r, which leanEligible accepted, is
// served by forward.direct: it has no body, its answer goes to the native
// HTTP/2 server (w), the route's policies do not edit answers
// (policies.editsAnswers: authentication, forwarded claims, IP rules and
// the rate limit act on the request, which direct builds as lean does),
// it is not a gRPC call (whose grpc-timeout and errors have rules of
// their own), its upstream speaks plain HTTP/1.1 through roundTripH1, and
// the method is one roundTripH1 sends.
func directEligible(w http.ResponseWriter, r *http.Request, ex *exchange) (*h2writer, *Transport, bool) {
	hw, ok := w.(*h2writer)
	if !ok || (ex.e.pol != nil && ex.e.pol.editsAnswers()) || ex.grpc ||
		r.ContentLength != 0 || (r.Body != nil && r.Body != http.NoBody) {
		return nil, nil, false
	}
	t, ok := ex.e.route.Upstream.Transport.(*Transport)
	if !ok || !t.fast() || t.cfg.StdTransportOnly {
		return nil, nil, false
	}
	for _, m := range h1Methods {
		if r.Method == m {
			return hw, t, true
		}
	}
	return nil, nil, false
}

// direct forwards req to an endpoint of f's route over t, answering on w
// (directEligible). The attempts, retries and health reports are
// entry.attempts', as on both other paths.
func (f *forward) direct(w *h2writer, t *Transport, req *http.Request) {
	ex := &f.exchange
	e := ex.e
	outreq, h := f.leanRequest(req, false)
	defer putLeanHeader(h)
	outreq.URL.Scheme = t.scheme()
	outreq.URL.Host = "endpoint" // h1Target's checks do not depend on it
	uri, ok := t.h1Target(outreq)
	if !ok {
		// Fields net/http's transport must judge: lean's way, under the
		// route's timer as there.
		if to := e.route.Timeout; to > 0 {
			req = req.WithContext(ex.startTimer(req.Context(), to))
		}
		f.lean(&ex.sw, req)
		return
	}
	// Route.Timeout bounds the exchange until the answer's head, as the
	// timer of the other paths does.
	var deadline time.Time
	if to := e.route.Timeout; to > 0 {
		deadline = ex.start.Add(to)
	}
	st := w.st
	var uc *upConn
	fr := &f.fr
	fr.hdrs = f.frFields[:0]
	try := func(ep balancer.Endpoint) (failKind, error) {
		outreq.URL.Host = ep.Addr
		var err error
		if uc, err = t.directHead(st, outreq, uri, ex.start, deadline, fr); err != nil {
			uc = nil
			expired := !deadline.IsZero() && !time.Now().Before(deadline)
			return classify(err, nil, expired, outreq.Context().Err() != nil || st.gone()), err
		}
		if fr.status >= 500 {
			return failServerError, nil
		}
		return failNone, nil
	}
	discard := func() {
		if uc != nil {
			st.setUpstream(nil)
			uc.close()
			uc = nil
		}
	}
	ep, kind, err := e.attempts(ex, try, discard)
	if err != nil {
		if kind != failNoEndpoint {
			e.done(ep)
		}
		ex.fail = kind
		f.handleError(&ex.sw, outreq, err)
		return
	}
	defer e.done(ep)
	if fr.chunked || (fr.clen < 0 && fr.hasBody(outreq.Method)) {
		// Not delimited by a length: the lean way, from the head on, the
		// request's end aborting the body's reads as roundTripH1's does.
		st.setUpstream(nil)
		stop := context.AfterFunc(outreq.Context(), uc.abort)
		res, err := fr.withBody(uc, outreq, stop)
		if err != nil {
			stop()
			uc.close()
			f.handleError(&ex.sw, outreq, err)
			return
		}
		f.answer(&ex.sw, outreq, res)
		return
	}
	f.directAnswer(w, uc, fr, outreq.Method)
}

// directHead sends req (to uri) on a connection of its endpoint's pool and
// reads the final answer's head into fr (now is the request's start, read
// once for the pool's idle check and the header timeout), passing informational answers on
// to st as lean does. As roundTripH1, a kept-alive connection the endpoint
// had closed is replaced once. While the exchange lasts, the stream's end
// (a reset, the connection's end) aborts the connection's I/O.
func (t *Transport) directHead(st *h2stream, req *http.Request, uri string, now, deadline time.Time, fr *fastResponse) (*upConn, error) {
	p := t.endpointPool(req.URL.Host)
	uc := p.reusable(now)
	fresh := uc == nil
	if fresh {
		var err error
		if uc, err = t.dialContext(req.Context(), p, deadline); err != nil {
			return nil, err
		}
	}
	for {
		if !st.setUpstream(uc) {
			uc.close()
			return nil, errClientGone // the stream ended first
		}
		err := exchangeHead(uc, st, req, uri, now, deadline, fr)
		if err == nil {
			return uc, nil
		}
		st.setUpstream(nil)
		uc.close()
		if fresh || !staleConn(uc, err) || st.gone() {
			return nil, err
		}
		fresh = true
		if uc, err = t.dialContext(req.Context(), p, deadline); err != nil {
			return nil, err
		}
	}
}

// exchangeHead writes req's head on uc and reads answers until the final
// one's head, which stays in uc's buffer (fr.n bytes).
func exchangeHead(uc *upConn, st *h2stream, req *http.Request, uri string, now, deadline time.Time, fr *fastResponse) error {
	uc.begin(now, deadline)
	uc.usedAt = now // pool.put takes it for the time the connection went idle
	writeH1Head(uc.bw, req, uri)
	if err := uc.flushRequest(true); err != nil {
		return err
	}
	for informational := 0; ; informational++ {
		n, err := readResponseHead(uc.br)
		if err == nil {
			err = fr.parse(uc.br, n)
		}
		if err != nil {
			return err
		}
		if fr.status >= 200 {
			return nil
		}
		if fr.status == http.StatusSwitchingProtocols {
			return errUnaskedSwitch
		}
		if informational == max1xx {
			return errTooMany1xx
		}
		st.directInformational(fr)
		_, _ = uc.br.Discard(n)
	}
}

// setUpstream makes uc the connection the stream's end aborts (nil: none)
// and reports whether the stream is still open and its request's context
// not ended. abortUpstreams takes c.mu after the context ends, so a
// connection set here is either refused or aborted by it.
func (st *h2stream) setUpstream(uc *upConn) bool {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if uc != nil && (st.closed != nil || c.dead != nil || st.req.Context().Err() != nil) {
		return false
	}
	st.up = uc
	return true
}

// gone reports whether the stream has ended (reset, or its connection).
func (st *h2stream) gone() bool {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	return st.closed != nil || c.dead != nil
}

// directInformational queues the informational answer fr as lean passes
// one on (its trace's Got1xxResponse): every field, but those an HTTP/2
// answer must not carry.
func (st *h2stream) directInformational(fr *fastResponse) {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.closed != nil || c.dead != nil {
		return
	}
	c.hbuf.Reset()
	_ = c.enc.WriteField(hpack.HeaderField{Name: ":status", Value: statusText(fr.status)})
	for i := range fr.hdrs {
		c.writeH1FieldLocked(&fr.hdrs[i])
	}
	st.writeBlockLocked(c.hbuf.Bytes(), false)
	c.flushLocked()
}

// writeH1FieldLocked encodes the field l of an HTTP/1.1 answer into the
// header block being built, under the rules writeHeadLocked applies to a
// handler's fields (h2NameAllowed, h2ValueAllowed), and reports whether it
// went.
func (c *h2conn) writeH1FieldLocked(l *hdrLine) bool {
	lk, ok := lowerH2(canonicalBytes(l.name))
	if !ok || !h2NameAllowed(lk) {
		return false
	}
	v := string(l.value)
	if !h2ValueAllowed(lk, v) {
		return false
	}
	_ = c.enc.WriteField(hpack.HeaderField{Name: lk, Value: v})
	return true
}

// directAnswer sends the final answer whose head is in fr (a length, or no
// body) on w's stream, its body read from uc, as lean and h2writer would
// send it: the fields without hop-by-hop ones and those Connection names,
// a Date when the upstream sent none, the length; no type sniffed (the
// proxy passes the type it got, or none). A body that ends short resets
// the stream. uc goes back to its pool when the body was read whole.
func (f *forward) directAnswer(w *h2writer, uc *upConn, fr *fastResponse, method string) {
	ex := &f.exchange
	st := w.st
	c := st.c
	uc.clearDeadline() // the body is bounded by the stream, as lean's is
	body := fr.hasBody(method)
	left := fr.clen
	if !body || left < 0 {
		left = 0
	}
	// The handler's writer takes no part: its end sends nothing more.
	w.taken, w.wroteHeader, w.sentHeader, w.status = true, true, true, fr.status
	ex.sw.status = fr.status

	c.mu.Lock()
	if st.closed != nil || c.dead != nil {
		c.mu.Unlock()
		st.setUpstream(nil)
		uc.close()
		return
	}
	c.hbuf.Reset()
	_ = c.enc.WriteField(hpack.HeaderField{Name: ":status", Value: statusText(fr.status)})
	hasDate := false // a Date went out (not one Connection names)
	for i := range fr.hdrs {
		if l := &fr.hdrs[i]; fr.forwardable(l) && c.writeH1FieldLocked(l) {
			hasDate = hasDate || l.kind == rkDate
		}
	}
	if fr.clen >= 0 {
		var nb [20]byte
		_ = c.enc.WriteField(hpack.HeaderField{Name: "content-length", Value: string(strconv.AppendInt(nb[:0], fr.clen, 10))})
	}
	if !hasDate {
		_ = c.enc.WriteField(hpack.HeaderField{Name: "date", Value: httpDateString()})
	}
	_, _ = uc.br.Discard(fr.n)
	st.writeBlockLocked(c.hbuf.Bytes(), left == 0)
	var err error
	for left > 0 && err == nil {
		if uc.br.Buffered() == 0 {
			// What was queued goes out before the wait for more.
			c.flushLocked()
			c.mu.Unlock()
			_, err = uc.br.Peek(1)
			c.mu.Lock()
			if err != nil {
				break
			}
		}
		n := int(min(int64(uc.br.Buffered()), left))
		b, _ := uc.br.Peek(n)
		left -= int64(n)
		if err = st.sendDataLocked(b, left == 0); err == nil {
			ex.sw.size += int64(n)
		}
		_, _ = uc.br.Discard(n)
	}
	cut := left > 0 || err != nil
	c.flushBatchedLocked(!cut)
	st.up = nil
	c.mu.Unlock()
	if cut {
		// Cut short (the upstream's end, or the stream's): the client
		// must not take it for whole (finish resets the stream).
		uc.close()
		return
	}
	uc.release(!fr.close)
}

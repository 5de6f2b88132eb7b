package proxy

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// HTTP/2 requests are forwarded by forward.lean instead of
// httputil.ReverseProxy: the same steps, in the same order, without what
// such a request never needs (a protocol switch), and without
// ReverseProxy's allocations and header passes, which cost an eighth of
// an HTTP/2 request's CPU in the profile (perf, h2load -c4 -m16). A body
// (a POST, a gRPC call) goes as ReverseProxy sends it: the exchange's
// body (ex.body, replayable for retries) in each attempt, streamed, with
// the request's trailers. Everything else — HTTP/1.x requests net/http
// serves, and the reference of the fast path's differential tests — keeps
// ReverseProxy. TestRoundTripH1Diff and TestNativeH2Diff compare the two
// over the differential suite's backend behaviours.

// leanEligible reports whether out (the request as it came: what the
// checks read, the outbound request does not change) is forwarded without
// ReverseProxy to up, by forward.lean or forward.direct: an HTTP/2
// request, no protocol switch asked for, and a query ReverseProxy would
// send unchanged; not when up's transport is the differential tests'
// reference (TransportConfig.StdTransportOnly), which ReverseProxy serves
// as before.
func leanEligible(out *http.Request, up *Upstream) bool {
	if out.ProtoMajor != 2 {
		return false
	}
	if t, ok := up.Transport.(*Transport); ok && t.cfg.StdTransportOnly {
		return false
	}
	if _, ok := out.Header["Upgrade"]; ok {
		return false
	}
	if _, ok := out.Header["Connection"]; ok {
		return false
	}
	return cleanQuery(out.URL.RawQuery)
}

// lean forwards req (leanEligible) as ReverseProxy (with f's Rewrite,
// Transport, ModifyResponse and ErrorHandler) would: the outbound request
// without hop-by-hop or inbound forwarding fields, rewritten, sent; the
// answer's head without hop-by-hop fields, edited by the route's policies,
// written with its trailers announced; its body copied, flushed after each
// read when its length is unknown or it is an event stream; a broken body
// aborts the answer (http.ErrAbortHandler, as ReverseProxy under a
// server).
func (f *forward) lean(rw http.ResponseWriter, req *http.Request) {
	outreq, h := f.leanRequest(req, true)
	f.trace.Got1xxResponse = func(code int, hdr textproto.MIMEHeader) error {
		h := rw.Header()
		for k, vv := range hdr {
			h[k] = append(h[k], vv...)
		}
		rw.WriteHeader(code)
		clear(h)
		return nil
	}
	if outreq.Body != nil {
		// As ReverseProxy: the transport stops reading it by the time
		// the handler returns.
		defer outreq.Body.Close()
	}
	res, err := f.RoundTrip(outreq)
	if err != nil {
		// The header map is not pooled again: net/http's transport may
		// still be reading it on a goroutine of its own (an HTTP/2
		// stream's writer, when the attempt failed or was reset midway).
		// An answer means the request's head went out whole.
		f.handleError(rw, outreq, err)
		return
	}
	defer putLeanHeader(h)
	f.answer(rw, outreq, res)
}

// putLeanHeader gives an outbound header map of leanRequest back.
func putLeanHeader(h http.Header) {
	clear(h)
	leanHeaders.Put(h)
}

// leanRequest returns the outbound request of req, as ReverseProxy with
// f's Rewrite makes it: a copy of req with its own URL and header map,
// without hop-by-hop or inbound forwarding fields, rewritten; its body
// req's, unless req declares none (ContentLength 0), as ReverseProxy
// decides. The map, also returned, comes from a pool and holds req's
// value slices, which nothing changes in place (fields are set and
// deleted whole); it goes back (putLeanHeader) when an answer is done, by
// which time nothing reads it, and not after a failed attempt, which
// net/http's transport may still be writing. With trace, the request's context
// carries f.trace.
func (f *forward) leanRequest(req *http.Request, trace bool) (*http.Request, http.Header) {
	h := leanHeaders.Get().(http.Header)
	// The fields forwarded: not the hop-by-hop ones (there is no
	// Connection field to name more: leanEligible), and not the inbound
	// forwarding ones, which rewrite sets (as ReverseProxy with Rewrite).
	for k, vv := range req.Header {
		if !isHopByHop(k) && !inboundForwardingField(k) {
			h[k] = vv
		}
	}
	ctx := req.Context()
	if trace {
		ctx = httptrace.WithClientTrace(ctx, &f.trace)
	}
	outreq := req.WithContext(ctx)
	u := *req.URL
	outreq.URL = &u
	outreq.Header = h
	if req.ContentLength == 0 {
		outreq.Body = nil
	}
	outreq.Close = false
	if vv := req.Header["Te"]; len(vv) > 0 && httpguts.HeaderValuesContainsToken(vv, "trailers") {
		h["Te"] = teTrailers
	}
	pr := httputil.ProxyRequest{In: req, Out: outreq}
	f.rewrite(&pr)
	outreq = pr.Out
	if _, ok := outreq.Header["User-Agent"]; !ok {
		outreq.Header["User-Agent"] = noUserAgent // none, rather than Go's
	}
	return outreq, h
}

// answer passes res, the answer to outreq, on to rw as ReverseProxy would:
// its head without hop-by-hop fields, edited by the route's policies,
// with its trailers announced; its body copied, flushed after each read
// when its length is unknown or it is an event stream; a broken body
// aborts the answer (http.ErrAbortHandler).
func (f *forward) answer(rw http.ResponseWriter, outreq *http.Request, res *http.Response) {
	if res.StatusCode == http.StatusSwitchingProtocols {
		_ = res.Body.Close()
		f.handleError(rw, outreq, errUnaskedSwitch)
		return
	}
	removeHopFields(res.Header)
	if f.rp.ModifyResponse != nil {
		if err := f.rp.ModifyResponse(res); err != nil {
			_ = res.Body.Close()
			f.handleError(rw, outreq, err)
			return
		}
	}
	out := rw.Header()
	for k, vv := range res.Header {
		if len(out[k]) == 0 {
			out[k] = vv // the answer's own slice: nothing else holds it
			continue
		}
		out[k] = append(out[k], vv...)
	}
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		out.Add("Trailer", strings.Join(keys, ", "))
	}
	rw.WriteHeader(res.StatusCode)
	flush := streams(res)
	if flush {
		// The head goes out at once, before any of the body (ReverseProxy
		// flushes it from a timer that fires at once).
		_ = http.NewResponseController(rw).Flush()
	}
	if err := copyBody(rw, res.Body, flush); err != nil {
		_ = res.Body.Close()
		panic(http.ErrAbortHandler)
	}
	_ = res.Body.Close() // now, so that res.Trailer is filled
	if len(res.Trailer) > 0 {
		_ = http.NewResponseController(rw).Flush() // the answer is chunked, not given a length
	}
	if len(res.Trailer) == announced {
		for k, vv := range res.Trailer {
			// Only trailers with values, as ReverseProxy copies them: a
			// key set without one (an announced trailer the endpoint did
			// not send) makes Go's HTTP/2 server hold the stream open
			// for a trailer section it then never writes.
			if len(vv) > 0 {
				out[k] = append(out[k], vv...)
			}
		}
		return
	}
	for k, vv := range res.Trailer {
		k = http.TrailerPrefix + k
		for _, v := range vv {
			out.Add(k, v)
		}
	}
}

// leanHeaders holds the outbound header maps of forward.lean.
var leanHeaders = sync.Pool{New: func() any { return make(http.Header, 16) }}

// teTrailers and noUserAgent are outbound field values lean shares: the
// transport only reads them.
var (
	teTrailers  = []string{"trailers"}
	noUserAgent = []string{""}
)

// removeHopFields deletes the hop-by-hop fields of h: those Connection
// names, and hopByHop.
func removeHopFields(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				delete(h, textproto.CanonicalMIMEHeaderKey(name))
			}
		}
	}
	for name := range h {
		if isHopByHop(name) {
			delete(h, name)
		}
	}
}

// inboundForwardingField reports whether the canonical name is one of the
// forwarding fields ReverseProxy (with Rewrite) drops from the outbound
// request before Rewrite sets its own.
func inboundForwardingField(name string) bool {
	switch name {
	case "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
		return true
	}
	return false
}

// streams reports whether an answer is passed on as it comes, each read
// flushed (as ReverseProxy's flush interval -1): a body of unknown length,
// or an event stream.
func streams(res *http.Response) bool {
	if res.ContentLength == -1 {
		return true
	}
	// The media type, as mime.ParseMediaType reads it, without its
	// allocations: what comes before any parameter, trimmed, any case.
	ct := res.Header.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}

// errCopyWrite is a write to the client that failed during copyBody.
var errCopyWrite = errors.New("proxy: writing the answer's body failed")

// copyBody copies src to w with a pooled buffer, flushing after each write
// when flush is set; it returns the first error of either side (io.EOF is
// the end).
func copyBody(w http.ResponseWriter, src io.Reader, flush bool) error {
	bp := sharedBufferPool.Get()
	defer sharedBufferPool.Put(bp)
	buf := bp
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return errCopyWrite
			}
			if flush {
				_ = http.NewResponseController(w).Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

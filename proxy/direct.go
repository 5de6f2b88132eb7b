package proxy

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
)

// The direct path serves the plain requests that the lean upstream path
// takes anyway (no body, no protocol switch, no 100-continue, no trailers)
// without httputil.ReverseProxy: the outbound request is one shallow copy
// of the inbound one with a filtered header map, and the response is
// copied by hand. It keeps ReverseProxy's behaviour: hop-by-hop headers
// (and those named by Connection) are removed both ways, "Te: trailers" is
// passed on, inbound Forwarded and X-Forwarded-* headers are replaced by the
// route's (shape), User-Agent stays absent when the client sent none,
// streamed answers (text/event-stream, or no Content-Length) are flushed
// after every write, response trailers are copied after the body, 1xx
// answers are passed on, and a failed copy aborts the response. Retries,
// passive health reports, Route.Timeout and error statuses are RoundTrip's
// and handleError's, as on the ReverseProxy path. Anything else takes
// ReverseProxy.

// hopHeaders are the hop-by-hop headers removed from both directions, as
// httputil.ReverseProxy removes them.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// forwardHeaders are the inbound forwarding headers ReverseProxy drops
// before Rewrite; shape sets the route's own.
var forwardHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// Shared header values, never modified.
var (
	teTrailers = []string{"trailers"}
	emptyValue = []string{""}
)

// queryReencoded is set when GODEBUG changes urlmaxqueryparams: then
// ReverseProxy re-encodes every query, and requests with one take it.
var queryReencoded = strings.Contains(os.Getenv("GODEBUG"), "urlmaxqueryparams")

// maxQueryParams is the number of query parameters past which ReverseProxy
// re-encodes a query (net/url's default limit).
const maxQueryParams = 10000

// directRoute reports whether route r can use the direct path at all: its
// transport is the lean-capable Transport and it sets no header that
// changes the protocol (which would send its requests to the standard
// transport, whose answers may switch protocols).
func directRoute(r *Route) bool {
	if _, ok := r.Upstream.Transport.(*Transport); !ok {
		return false
	}
	for name := range r.SetHeaders {
		switch http.CanonicalHeaderKey(name) {
		case "Connection", "Upgrade", "Expect", "Te", "Trailer", "Transfer-Encoding", "Content-Length":
			return false
		}
	}
	return true
}

// directable reports whether the inbound request in can take the direct
// path: no body, no trailers, no upgrade, no 100-continue, an ordinary
// target and a query ReverseProxy would pass unchanged.
func directable(in *http.Request) bool {
	if in.ContentLength != 0 || (in.Body != nil && in.Body != http.NoBody) ||
		len(in.TransferEncoding) > 0 || len(in.Trailer) > 0 || in.URL.Opaque != "" {
		return false
	}
	h := in.Header
	if h["Upgrade"] != nil || h["Expect"] != nil {
		return false
	}
	return in.URL.RawQuery == "" || cleanQuery(in.URL.RawQuery)
}

// cleanQuery reports whether ReverseProxy would send query q unchanged: no
// ';', only valid %-escapes, not too many parameters.
func cleanQuery(q string) bool {
	if queryReencoded || strings.Count(q, "&")+1 > maxQueryParams {
		return false
	}
	for i := 0; i < len(q); {
		switch q[i] {
		case ';':
			return false
		case '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				return false
			}
			i += 3
		default:
			i++
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// serveDirect proxies the directable request in on the direct path. ctx is
// the request context carrying ex; path and rawPath are the cleaned path.
func (e *entry) serveDirect(ex *exchange, in *http.Request, ctx context.Context, path, rawPath string) {
	w := &ex.sw
	ex.direct = true
	out := in.WithContext(ctx)
	ex.url = *in.URL
	ex.url.Path, ex.url.RawPath = path, rawPath
	ex.url.Scheme, ex.url.Host, ex.url.User = "http", "", nil
	out.URL = &ex.url
	out.Header = outboundHeader(in.Header)
	out.Body = nil
	out.ContentLength = 0
	out.Close = false
	e.shape(out, in, ex)
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = emptyValue // send none rather than Go's
	}

	res, err := e.RoundTrip(out)
	if err != nil {
		handleError(w, out, err)
		return
	}
	removeHopByHop(res.Header)
	dst := w.Header()
	for k, vv := range res.Header {
		if len(vv) == 0 {
			continue
		}
		if old, ok := dst[k]; ok {
			dst[k] = append(old, vv...)
		} else {
			dst[k] = vv // res.Header is ours alone
		}
	}
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		dst.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(res.StatusCode)
	stream := res.ContentLength == -1 || isEventStream(res.Header["Content-Type"])
	if stream {
		_ = w.FlushError() // the headers go out before the first event
	}
	buf := sharedBufferPool.Get()
	err = copyBody(w, res.Body, buf, stream)
	sharedBufferPool.Put(buf)
	if err != nil {
		res.Body.Close()
		if ctx.Value(http.ServerContextKey) != nil {
			// The client got part of the answer: abort the response so
			// that it cannot take it for the whole one.
			panic(http.ErrAbortHandler)
		}
		return
	}
	res.Body.Close() // now, so that res.Trailer is complete
	if len(res.Trailer) > 0 {
		// Force chunking, so that the trailers can follow the body.
		_ = w.FlushError()
	}
	if len(res.Trailer) == announced {
		for k, vv := range res.Trailer {
			for _, v := range vv {
				dst.Add(k, v)
			}
		}
		return
	}
	for k, vv := range res.Trailer {
		k = http.TrailerPrefix + k
		for _, v := range vv {
			dst.Add(k, v)
		}
	}
}

// outboundHeader returns the header of the outbound request for inbound
// header in: every field but the hop-by-hop ones, those named by
// Connection and the inbound forwarding headers, with "Te: trailers" when
// the client announced it. The value slices are in's, shared and never
// modified: the outbound request only replaces values.
func outboundHeader(in http.Header) http.Header {
	h := make(http.Header, len(in)+4)
	for k, v := range in {
		h[k] = v
	}
	for _, f := range in["Connection"] {
		for name := range strings.SplitSeq(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		delete(h, name)
	}
	for _, name := range forwardHeaders {
		delete(h, name)
	}
	if hasToken(in["Te"], "trailers") {
		h["Te"] = teTrailers
	}
	return h
}

// removeHopByHop removes the hop-by-hop headers from h, and those its
// Connection header names.
func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for name := range strings.SplitSeq(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		delete(h, name)
	}
}

// hasToken reports whether the comma-separated values hold token, compared
// case-insensitively and ignoring parameters after ';'.
func hasToken(vals []string, token string) bool {
	for _, v := range vals {
		for item := range strings.SplitSeq(v, ",") {
			if i := strings.IndexByte(item, ';'); i >= 0 {
				item = item[:i]
			}
			if strings.EqualFold(strings.TrimSpace(item), token) {
				return true
			}
		}
	}
	return false
}

// isEventStream reports whether a Content-Type is text/event-stream.
func isEventStream(ct []string) bool {
	if len(ct) == 0 {
		return false
	}
	v := ct[0]
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	return strings.EqualFold(strings.TrimSpace(v), "text/event-stream")
}

// copyBody copies src to w through buf, flushing after every write when
// flush is set. It returns write errors and read errors other than io.EOF.
func copyBody(w *statusWriter, src io.Reader, buf []byte, flush bool) error {
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := w.Write(buf[:nr])
			if werr != nil {
				return werr
			}
			if nw != nr {
				return io.ErrShortWrite
			}
			if flush {
				_ = w.FlushError()
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

// pass1xx passes an informational answer of the direct path on to the
// client: its headers go with it and are then cleared, as WriteHeader does
// not clear them for 1xx.
func (ex *exchange) pass1xx(code int, h http.Header) {
	dst := ex.sw.Header()
	for k, vv := range h {
		for _, v := range vv {
			dst.Add(k, v)
		}
	}
	ex.sw.WriteHeader(code)
	clear(dst)
}

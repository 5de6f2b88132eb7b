package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"
)

// HTTP/2 requests to plain HTTP/1.1 endpoints are sent by roundTripH1 over
// the fast path's keep-alive pool (hostPool) rather than through
// net/http's transport, whose two goroutines per connection, and the
// channels between them and the request, cost a quarter of the CPU of an
// HTTP/2 request (perf, h2load -c4 -m16). The request is written as
// net/http's transport writes it; the answer is read by the fast path's
// parser (fastResponse.parse) and its rules, and its body framing checked
// as the fast path checks it.
//
// Only what needs no more is sent this way (h1Target): a request without
// a body, of a method the fast path serves, whose fields net/http's
// transport would write unchanged. Everything else — and every HTTP/1.x
// request net/http serves, the fast path's hand-offs, whose net/http side
// is the differential tests' reference — keeps the standard transport.

// h1Methods are the methods roundTripH1 sends: those without a body.
var h1Methods = [...]string{http.MethodGet, http.MethodHead, http.MethodDelete, http.MethodOptions}

// h1Target reports whether RoundTrip sends req with roundTripH1, and the
// request target it writes then.
func (t *Transport) h1Target(req *http.Request) (string, bool) {
	if !t.fast() || t.cfg.StdTransportOnly || req.ProtoMajor != 2 || req.Close ||
		(req.Body != nil && req.Body != http.NoBody) || req.ContentLength != 0 || len(req.Trailer) > 0 ||
		!slices.Contains(h1Methods[:], req.Method) || req.URL == nil || req.URL.Host == "" || req.URL.Opaque != "" {
		return "", false
	}
	if !validHost(sbytes(h1Host(req))) {
		return "", false
	}
	for name, vv := range req.Header {
		if !validFieldName(sbytes(name)) {
			return "", false
		}
		for _, v := range vv {
			if !validFieldValue(sbytes(v)) {
				return "", false
			}
		}
	}
	uri := req.URL.RequestURI()
	return uri, !hasCTL(uri)
}

// h1Host is the Host field of req, as net/http's transport takes it.
func h1Host(req *http.Request) string {
	if req.Host != "" {
		return req.Host
	}
	return req.URL.Host
}

// hasCTL reports whether s holds a control byte.
func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// h1Unwritten are the request fields net/http's transport does not write
// from the header map (it writes Host and User-Agent itself; a bodiless
// request has no framing).
var h1Unwritten = [...]string{"Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer"}

// defaultUserAgent is net/http's transport's, sent when the request has no
// User-Agent field at all (ReverseProxy sets an empty one to send none).
const defaultUserAgent = "Go-http-client/1.1"

// roundTripH1 sends req (h1Target, which gave uri) to req.URL.Host over a pooled
// connection and returns the answer, whose body reads from the connection
// and gives it back to the pool at its end. A kept-alive connection the
// endpoint had closed (it failed before any byte of an answer, and not by
// a timeout) is replaced once, as the fast path replaces it: every request
// sent this way is idempotent (isReplayable), so sending it again is safe.
// The dial follows the request's context, as net/http's does.
func (t *Transport) roundTripH1(req *http.Request, uri string) (*http.Response, error) {
	ctx := req.Context()
	p := t.endpointPool(req.URL.Host)
	deadline, _ := ctx.Deadline()
	uc := p.reusable(time.Now())
	fresh := uc == nil
	if fresh {
		var err error
		if uc, err = t.dialContext(ctx, p, deadline); err != nil {
			return nil, err
		}
	}
	for {
		stop := context.AfterFunc(ctx, uc.abort)
		res, err := exchangeH1(uc, req, uri, deadline, stop)
		if err == nil {
			return res, nil
		}
		stop()
		uc.close()
		if fresh || !staleConn(uc, err) || ctx.Err() != nil || !isReplayable(req) {
			return nil, err
		}
		fresh = true
		if uc, err = t.dialContext(ctx, p, deadline); err != nil {
			return nil, err
		}
	}
}

// exchangeH1 writes req, to uri, on uc and reads the final answer's head.
func exchangeH1(uc *upConn, req *http.Request, uri string, deadline time.Time, stop func() bool) (*http.Response, error) {
	uc.begin(time.Now(), deadline)
	writeH1Head(uc.bw, req, uri)
	if err := uc.flushRequest(true); err != nil {
		return nil, err
	}
	var fr fastResponse
	for informational := 0; ; informational++ {
		n, err := readResponseHead(uc.br)
		if err == nil {
			err = fr.parse(uc.br, n)
		}
		if err != nil {
			return nil, err
		}
		if fr.status >= 200 {
			break
		}
		if fr.status == http.StatusSwitchingProtocols {
			return nil, errUnaskedSwitch
		}
		if informational == max1xx {
			return nil, errTooMany1xx
		}
		// An informational answer (103 Early Hints): ReverseProxy passes
		// it on through the trace, as net/http's transport calls it.
		if trace := httptrace.ContextClientTrace(req.Context()); trace != nil && trace.Got1xxResponse != nil {
			h := make(textproto.MIMEHeader, len(fr.hdrs))
			for _, f := range fr.hdrs {
				h.Add(string(f.name), string(f.value))
			}
			if err := trace.Got1xxResponse(fr.status, h); err != nil {
				return nil, err
			}
		}
		_, _ = uc.br.Discard(n)
	}
	return fr.withBody(uc, req, stop)
}

// withBody returns the http.Response of the final head fr, read on uc, for
// req, with a body that reads the rest from uc and gives uc back to its
// pool at its end; stop is called then (or when the body breaks off), and
// a connection whose stop reports false is not kept.
func (fr *fastResponse) withBody(uc *upConn, req *http.Request, stop func() bool) (*http.Response, error) {
	res, err := fr.response(req)
	_, _ = uc.br.Discard(fr.n)
	if err != nil {
		return nil, err
	}
	uc.clearDeadline() // the body is bounded by the request's context, as net/http's is
	body := &h1Body{uc: uc, res: res, stop: stop, keep: !fr.close}
	switch {
	case !fr.hasBody(req.Method):
		body.finish()
		res.Body = http.NoBody
		return res, nil
	case fr.chunked:
		body.mode = h1Chunked
	case fr.clen >= 0:
		body.mode, body.left = h1Length, fr.clen
		if fr.clen == 0 {
			body.finish()
			res.Body = http.NoBody
			return res, nil
		}
	default:
		body.mode, body.keep = h1ToEOF, false
	}
	res.Body = body
	return res, nil
}

// writeH1Head writes req's head as net/http's transport writes a bodiless
// request: the request line, Host, User-Agent, then the other fields
// sorted by name, values trimmed.
func writeH1Head(bw *bufio.Writer, req *http.Request, uri string) {
	_, _ = bw.WriteString(req.Method)
	_ = bw.WriteByte(' ')
	_, _ = bw.WriteString(uri)
	_, _ = bw.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = bw.WriteString(h1Host(req))
	_, _ = bw.WriteString("\r\n")
	ua := defaultUserAgent
	if v, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(v) > 0 {
			ua = v[0]
		}
	}
	if ua != "" { // tested before the trim, as net/http tests it
		_, _ = bw.WriteString("User-Agent: ")
		_, _ = bw.WriteString(strings.Trim(ua, " \t"))
		_, _ = bw.WriteString("\r\n")
	}
	var stack [32]string
	names := stack[:0]
	for name := range req.Header {
		if !slices.Contains(h1Unwritten[:], name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		for _, v := range req.Header[name] {
			_, _ = bw.WriteString(name)
			_, _ = bw.WriteString(": ")
			_, _ = bw.WriteString(strings.Trim(v, " \t"))
			_, _ = bw.WriteString("\r\n")
		}
	}
	_, _ = bw.WriteString("\r\n")
}

// errBadTrailerKey is a Trailer field naming a framing field, which
// net/http's transport refuses too.
var errBadTrailerKey = errors.New("proxy: bad trailer key in upstream response")

// response builds the http.Response of a parsed final head, as net/http's
// transport builds it: canonical field names; for a chunked answer
// Transfer-Encoding moved to TransferEncoding and the fields Trailer names
// declared in Trailer.
func (fr *fastResponse) response(req *http.Request) (*http.Response, error) {
	proto, minor := "HTTP/1.1", 1
	if fr.http10 {
		proto, minor = "HTTP/1.0", 0
	}
	res := &http.Response{
		Status: fr.statusText(), StatusCode: fr.status,
		Proto: proto, ProtoMajor: 1, ProtoMinor: minor,
		Header:  make(http.Header, len(fr.hdrs)),
		Request: req,
		Close:   fr.close,
	}
	// One string holds every value and one array every field's value
	// slice (capped, so that a second value of a name is appended
	// elsewhere): two allocations for the fields, beside the names
	// commonCanon does not know.
	var all strings.Builder
	for _, f := range fr.hdrs {
		all.Grow(len(f.value))
	}
	for _, f := range fr.hdrs {
		all.Write(f.value)
	}
	values, vals, off := all.String(), make([]string, len(fr.hdrs)), 0
	for i, f := range fr.hdrs {
		v := values[off : off+len(f.value)]
		off += len(f.value)
		if f.kind == rkTransferEncoding {
			continue
		}
		key := canonicalBytes(f.name)
		if vv, ok := res.Header[key]; ok {
			res.Header[key] = append(vv, v)
			continue
		}
		vals[i] = v
		res.Header[key] = vals[i : i+1 : i+1]
	}
	switch {
	case req.Method == http.MethodHead:
		res.ContentLength = fr.clen
	case !fr.hasBody(req.Method):
		res.ContentLength = 0
	case fr.chunked:
		res.ContentLength = -1
		res.TransferEncoding = []string{"chunked"}
	case fr.clen >= 0:
		res.ContentLength = fr.clen
	default:
		res.ContentLength = -1
		res.Close = true
	}
	if declared, ok := res.Header["Trailer"]; ok && fr.chunked {
		res.Trailer = make(http.Header)
		for _, v := range declared {
			for _, key := range strings.Split(v, ",") {
				key = textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(key))
				switch key {
				case "":
					continue
				case "Transfer-Encoding", "Trailer", "Content-Length":
					return nil, errBadTrailerKey
				}
				res.Trailer[key] = nil
			}
		}
		delete(res.Header, "Trailer")
	}
	return res, nil
}

// statusLines are "code reason" of the statuses net/http names.
var statusLines = func() map[int]string {
	m := make(map[int]string)
	for code := 100; code < 600; code++ {
		if t := http.StatusText(code); t != "" {
			m[code] = strconv.Itoa(code) + " " + t
		}
	}
	return m
}()

// statusText is the Status of the answer's http.Response: its code and
// reason as they came, without an allocation when they are net/http's.
func (fr *fastResponse) statusText() string {
	if s, ok := statusLines[fr.status]; ok && len(fr.reason) > 0 && s[:3] == string(fr.code) && s[4:] == string(fr.reason) {
		return s
	}
	status := string(fr.code)
	if len(fr.reason) > 0 {
		status += " " + string(fr.reason)
	}
	return status
}

// h1Body is the body of an answer roundTripH1 read the head of.
type h1Body struct {
	uc   *upConn
	res  *http.Response
	stop func() bool // stops the context's abort of uc
	mode uint8
	left int64 // h1Length: bytes to come; h1Chunked: of the current chunk
	// crlf: a chunk's data was read, its CRLF not yet.
	crlf bool
	keep bool  // the connection may serve another request after the body
	err  error // what Read returns from now on (io.EOF at the end)
}

const (
	h1Length  uint8 = iota // Content-Length
	h1Chunked              // chunked coding
	h1ToEOF                // ends with the connection
)

// errH1BodyClosed is a Read after Close, as net/http's.
var errH1BodyClosed = errors.New("http: read on closed response body")

func (b *h1Body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	switch b.mode {
	case h1Length:
		if int64(len(p)) > b.left {
			p = p[:b.left]
		}
		n, err := b.uc.br.Read(p)
		b.left -= int64(n)
		if b.left == 0 {
			b.finish()
			return n, io.EOF
		}
		if err != nil {
			return n, b.fail(unexpected(err))
		}
		return n, nil
	case h1ToEOF:
		n, err := b.uc.br.Read(p)
		if err == io.EOF {
			b.keep = false
			b.finish()
			return n, io.EOF
		}
		if err != nil {
			return n, b.fail(err)
		}
		return n, nil
	}
	for b.left == 0 {
		if err := b.nextChunk(); err != nil {
			if err == io.EOF {
				return 0, io.EOF
			}
			return 0, b.fail(err)
		}
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.uc.br.Read(p)
	b.left -= int64(n)
	if b.left == 0 {
		b.crlf = true
	}
	if err != nil {
		return n, b.fail(unexpected(err))
	}
	return n, nil
}

// nextChunk reads the CRLF that ends the previous chunk's data, then the
// next chunk-size line; at the last chunk, the trailer section (into
// res.Trailer) and its end, returning io.EOF.
func (b *h1Body) nextChunk() error {
	br := b.uc.br
	if b.crlf {
		crlf, err := br.Peek(2)
		if err != nil {
			return unexpected(err)
		}
		if crlf[0] != '\r' || crlf[1] != '\n' {
			return errBadResponse
		}
		_, _ = br.Discard(2)
		b.crlf = false
	}
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == bufio.ErrBufferFull {
			return errBadResponse
		}
		return unexpected(err)
	}
	size, ok := chunkSize(line)
	if !ok {
		return errBadResponse
	}
	if size > 0 {
		b.left = size
		return nil
	}
	// The trailer section, bounded by the read buffer as the head is.
	total := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if err == bufio.ErrBufferFull {
				return errBadResponse
			}
			return unexpected(err)
		}
		if total += len(line); total > br.Size() || len(line) < 2 || line[len(line)-2] != '\r' {
			return errBadResponse
		}
		if len(line) == 2 {
			break
		}
		name, value, ok := splitField(line[:len(line)-2])
		if !ok {
			return errBadResponse
		}
		if b.res.Trailer == nil {
			b.res.Trailer = make(http.Header)
		}
		key := textproto.CanonicalMIMEHeaderKey(string(name))
		b.res.Trailer[key] = append(b.res.Trailer[key], string(value))
	}
	b.finish()
	return io.EOF
}

// finish ends a whole body: the connection goes back to the pool when it
// may serve another request and the context's abort did not touch it.
func (b *h1Body) finish() {
	b.err = io.EOF
	stopped := b.stop()
	b.uc.release(b.keep && stopped)
}

// fail ends a broken body: the connection is closed.
func (b *h1Body) fail(err error) error {
	b.err = err
	b.stop()
	b.uc.close()
	return err
}

// Close ends the body; before its end the connection is closed, as
// net/http's transport closes it.
func (b *h1Body) Close() error {
	if b.err == nil {
		b.err = errH1BodyClosed
		b.stop()
		b.uc.close()
	}
	return nil
}

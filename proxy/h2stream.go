package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2stream is a request of the native HTTP/2 server (h2server.go) and its
// answer. Its fields but req and w are guarded by c.mu.
type h2stream struct {
	c      *h2conn
	id     uint32
	req    *http.Request
	cancel context.CancelFunc
	up     *upConn   // forward.direct's upstream connection while in use
	wake   sync.Cond // L is c.mu: body bytes, send window, the stream's end

	sendWin, recvWin, unacked int64
	declared, got             int64 // the request's Content-Length (-1: none) and the body bytes come
	recvDone                  bool  // END_STREAM came: half-closed (remote)
	sentEnd                   bool  // END_STREAM went
	closed                    error // the stream ended (reset, or the connection): writes fail with it
	timedOut                  bool
	trailer                   http.Header // the request's trailers, until its body's reader takes them
	body                      *h2body
	w                         h2writer
	handler                   http.HandlerFunc // nil: the server's
}

// onHeaders handles a HEADERS frame (with its CONTINUATIONs): a new
// request, or the trailers of one whose body is coming.
func (c *h2conn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol) // clients open odd streams (§5.1.1)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.streams[id]; st != nil {
		return c.onTrailers(st, f)
	}
	if id <= c.lastID {
		if c.closedByReset(id) {
			return nil
		}
		return http2.ConnectionError(http2.ErrCodeStreamClosed) // a closed stream (§5.1)
	}
	c.lastID = id
	if c.goAway || c.closing {
		return nil // after GOAWAY new streams are ignored (§6.8)
	}
	if f.HasPriority() && f.Priority.StreamDep == id {
		c.glitches++
		c.writeRSTLocked(id, http2.ErrCodeProtocol) // depends on itself (§5.3.1)
		return nil
	}
	if len(c.streams) >= h2MaxConcurrentStreams {
		c.glitches++
		c.writeRSTLocked(id, http2.ErrCodeRefusedStream)
		return nil
	}
	if c.handlers >= h2MaxHandlers {
		// Handlers of reset streams pile up: rapid reset.
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	st := &h2stream{c: c, id: id, sendWin: c.peerWin, recvWin: h2StreamWindow, declared: -1}
	st.wake.L = &c.mu
	req, code := c.newRequest(st, f)
	if code != http2.ErrCodeNo {
		c.glitches++
		c.writeRSTLocked(id, code)
		return nil
	}
	st.req = req
	st.w = h2writer{st: st, clen: -1, head: req.Method == http.MethodHead}
	if f.StreamEnded() {
		st.recvDone = true
	}
	c.streams[id] = st
	c.handlers++
	c.opened++
	if len(c.streams) == 1 {
		c.setIdleDeadline()
	}
	if f.Truncated {
		st.handler = headerListTooLong // the header list passed MaxHeaderBytes
	}
	startH2Worker(st)
	return nil
}

// Streams run on workers: goroutines that, once a stream's handler
// returned, wait a while for the next stream rather than exit. A new
// goroutine starts with a small stack, and a request's handler grows it
// several times (copying it each time): 4.6% of an HTTP/2 request's CPU
// (perf, h2load -c4 -m16). A worker's stack stays grown between streams,
// until a collection shrinks it or the worker has waited h2WorkerIdle.
const h2WorkerIdle = time.Second

// h2Work hands a stream to a worker waiting for one.
var h2Work = make(chan *h2stream)

// startH2Worker runs st on a waiting worker, or on a new one.
func startH2Worker(st *h2stream) {
	select {
	case h2Work <- st:
	default:
		go h2Worker(st)
	}
}

// h2Worker runs st, then the streams it is given, until it has waited
// h2WorkerIdle for one. The timer is not moved for each stream (each move
// takes the runtime's timer lock): when it fires, a worker that ran a
// stream since the last firing waits one more period, so an idle worker
// ends between one and two periods after its last stream.
func h2Worker(st *h2stream) {
	idle := time.NewTimer(h2WorkerIdle)
	defer idle.Stop()
	sc := new(h2Scratch)
	for {
		st.w.scratch = sc
		st.run()
		ran := true
		for st = nil; st == nil; {
			select {
			case st = <-h2Work:
			case <-idle.C:
				if !ran {
					return
				}
				ran = false
				idle.Reset(h2WorkerIdle)
			}
		}
	}
}

// h2Scratch is a worker's storage for the answer header of the stream it
// runs and its snapshot (h2writer.Header, WriteHeader), reused from one
// stream to the next: a map per request, and the copy net/http's
// Header.Clone makes, without their allocations.
type h2Scratch struct {
	hdr  http.Header
	snap http.Header
	vals []string
}

// header returns the worker's empty header map for the handler's answer
// (h2writer.Header). It is the stream's until the handler has returned
// and the answer's end is written, the next stream's after that.
func (sc *h2Scratch) header() http.Header {
	if sc.hdr == nil {
		sc.hdr = make(http.Header, 16)
	} else {
		clear(sc.hdr)
	}
	return sc.hdr
}

// clone returns a copy of h in sc's storage, valid until the next clone.
// As Header.Clone, each field's values are copied, and a nil value stays
// nil.
func (sc *h2Scratch) clone(h http.Header) http.Header {
	if sc.snap == nil {
		sc.snap = make(http.Header, 16)
	} else {
		clear(sc.snap)
	}
	nv := 0
	for _, vv := range h {
		nv += len(vv)
	}
	if cap(sc.vals) < nv {
		sc.vals = make([]string, nv)
	}
	clear(sc.vals[nv:cap(sc.vals)]) // no strings kept for nothing
	sv := sc.vals[:nv]
	for k, vv := range h {
		if vv == nil {
			sc.snap[k] = nil
			continue
		}
		n := copy(sv, vv)
		sc.snap[k] = sv[:n:n]
		sv = sv[n:]
	}
	return sc.snap
}

// headerListTooLong answers a request whose fields the Framer cut.
func headerListTooLong(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "request header fields too large", http.StatusRequestHeaderFieldsTooLarge)
}

// onTrailers handles a HEADERS frame on an open stream: the request's
// trailer section, which must end the stream and hold no pseudo-header.
func (c *h2conn) onTrailers(st *h2stream, f *http2.MetaHeadersFrame) error {
	if st.recvDone {
		return http2.ConnectionError(http2.ErrCodeStreamClosed) // half-closed (remote) (§5.1)
	}
	if !f.StreamEnded() || len(f.PseudoFields()) > 0 || f.Truncated {
		st.refuseLocked(http2.ErrCodeProtocol)
		return nil
	}
	for _, hf := range f.RegularFields() {
		key := canonicalH2(hf.Name)
		if !httpguts.ValidTrailerHeader(key) {
			st.refuseLocked(http2.ErrCodeProtocol)
			return nil
		}
		if st.trailer == nil {
			st.trailer = make(http.Header)
		}
		st.trailer[key] = append(st.trailer[key], hf.Value)
	}
	if st.declared >= 0 && st.got != st.declared {
		st.refuseLocked(http2.ErrCodeProtocol)
		return nil
	}
	st.endRecvLocked()
	st.wake.Broadcast()
	return nil
}

// h2ConnFields are the connection-specific fields an HTTP/2 message must
// not carry (RFC 9113 §8.2.2); a request with one is malformed.
var h2ConnFields = [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade"}

// newRequest builds st's request from its HEADERS, or returns the stream
// error that refuses it (RFC 9113 §8.1.1, §8.3.1: a malformed request is a
// PROTOCOL_ERROR). The rules beyond the Framer's:
//
//   - :method, :scheme (http or https) and :path are present, :path is an
//     origin-form or asterisk-form target; CONNECT and :protocol (extended
//     CONNECT, which the server does not offer) are refused;
//   - no connection-specific field; TE only as "trailers";
//   - a Host field, if any, equals :authority (either gives the host);
//   - Content-Length, if any, is one decimal number, 0 when HEADERS ends
//     the stream.
func (c *h2conn) newRequest(st *h2stream, f *http2.MetaHeadersFrame) (*http.Request, http2.ErrCode) {
	method, path := f.PseudoValue("method"), f.PseudoValue("path")
	scheme, authority := f.PseudoValue("scheme"), f.PseudoValue("authority")
	if method == "" || path == "" || (scheme != "http" && scheme != "https") ||
		method == http.MethodConnect || f.PseudoValue("protocol") != "" {
		return nil, http2.ErrCodeProtocol
	}
	if path[0] != '/' && (path != "*" || method != http.MethodOptions) {
		return nil, http2.ErrCodeProtocol
	}
	fields := f.RegularFields()
	h := make(http.Header, len(fields))
	vals := make([]string, len(fields)) // every field's value slice, capped
	for i, hf := range fields {
		key := canonicalH2(hf.Name)
		if vv, ok := h[key]; ok {
			h[key] = append(vv, hf.Value)
			continue
		}
		vals[i] = hf.Value
		h[key] = vals[i : i+1 : i+1]
	}
	for _, k := range h2ConnFields {
		if _, ok := h[k]; ok {
			return nil, http2.ErrCodeProtocol
		}
	}
	if te, ok := h["Te"]; ok && (len(te) != 1 || te[0] != "trailers") {
		return nil, http2.ErrCodeProtocol
	}
	if hv, ok := h["Host"]; ok {
		if len(hv) != 1 || (authority != "" && hv[0] != authority) {
			return nil, http2.ErrCodeProtocol
		}
		authority = hv[0]
		delete(h, "Host")
	}
	if cookies := h["Cookie"]; len(cookies) > 1 {
		h["Cookie"] = []string{strings.Join(cookies, "; ")} // §8.2.3
	}
	clen := int64(-1)
	if cl, ok := h["Content-Length"]; ok {
		n, err := strconv.ParseUint(cl[0], 10, 63)
		if len(cl) != 1 || err != nil || cl[0][0] == '+' {
			return nil, http2.ErrCodeProtocol
		}
		clen = int64(n)
	}
	if f.StreamEnded() {
		if clen > 0 {
			return nil, http2.ErrCodeProtocol // declares a body it does not send
		}
		clen = 0
	}
	u, err := url.ParseRequestURI(path)
	if err != nil {
		return nil, http2.ErrCodeProtocol
	}
	var trailer http.Header
	for _, v := range h["Trailer"] {
		for _, key := range strings.Split(v, ",") {
			key = http.CanonicalHeaderKey(strings.TrimSpace(key))
			switch key {
			case "", "Transfer-Encoding", "Trailer", "Content-Length":
				continue // as net/http's server: ignored
			}
			if trailer == nil {
				trailer = make(http.Header)
			}
			trailer[key] = nil
		}
	}
	delete(h, "Trailer")
	ctx, cancel := context.WithCancel(c.ctx)
	st.cancel = cancel
	st.declared = clen
	r := &http.Request{
		Method: method, URL: u, RequestURI: path,
		Proto: "HTTP/2.0", ProtoMajor: 2,
		Header: h, Host: authority, RemoteAddr: c.remote, TLS: c.tls,
		ContentLength: clen, Trailer: trailer, Body: http.NoBody,
	}
	if !f.StreamEnded() {
		st.body = &h2body{st: st}
		r.Body = st.body
	}
	return r.WithContext(ctx), http2.ErrCodeNo
}

// run serves the stream's request with its handler (nil: the server's)
// and ends its answer.
func (st *h2stream) run() {
	defer st.finish()
	handler := st.handler
	if handler == nil {
		handler = st.c.s.serveHTTP
	}
	handler(&st.w, st.req)
	st.w.end()
}

// finish ends the stream once its handler returned or panicked.
func (st *h2stream) finish() {
	c := st.c
	p := recover()
	if p != nil && p != http.ErrAbortHandler && c.s.h != nil && c.s.h.log != nil {
		buf := make([]byte, 16<<10)
		buf = buf[:runtime.Stack(buf, false)]
		c.s.h.log.WithField("remote_addr", c.remote).Errorf("http2: panic serving %s %s: %v\n%s", st.req.Method, st.req.URL.Path, p, buf)
	}
	st.cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handlers--
	switch {
	case p != nil || !st.sentEnd:
		// A panic (ReverseProxy's when the answer broke off), or an
		// answer cut short: the client must not take it for whole.
		st.resetLocked(http2.ErrCodeInternal, errStreamProtocol)
	case !st.recvDone:
		// The answer is whole while the request body still comes: the
		// client may stop sending (§8.1).
		st.resetLocked(http2.ErrCodeNo, errStreamProtocol)
	}
	if b := st.body; b != nil && !b.closed {
		b.closeLocked()
	}
	if c.closing && len(c.streams) == 0 && c.handlers == 0 {
		// The last stream after a GOAWAY: what is queued goes out, and
		// the reader ends the connection when the client closes it, or
		// after h2Linger (setIdleDeadline).
		c.drainLocked()
		return
	}
	c.flushLocked()
}

// resetLocked ends the stream with a RST_STREAM of code (unless it ended
// already) and err for its handler's reads and writes.
func (st *h2stream) resetLocked(code http2.ErrCode, err error) {
	if st.closed != nil || (st.sentEnd && st.recvDone) {
		return
	}
	st.c.writeRSTLocked(st.id, code)
	st.closeLocked(err)
}

// refuseLocked resets the stream for the client's error, which counts as
// a glitch (controlRoom): a client that provokes resets makes the server
// start work it never answers, as rapid reset does (CVE-2025-8671).
func (st *h2stream) refuseLocked(code http2.ErrCode) {
	if st.closed == nil && !(st.sentEnd && st.recvDone) {
		st.c.glitches++
	}
	st.resetLocked(code, errStreamProtocol)
}

// closeLocked ends the stream with err: its context is cancelled, its body
// and writes fail, it leaves the connection's streams.
func (st *h2stream) closeLocked(err error) {
	if st.closed != nil {
		return
	}
	st.closed = err
	if st.cancel != nil {
		st.cancel()
	}
	if st.up != nil {
		st.up.abort() // forward.direct's exchange ends with the stream
	}
	if b := st.body; b != nil && b.err == nil {
		b.err = err
	}
	st.wake.Broadcast()
	st.removeLocked()
}

// removeLocked takes the stream out of the connection's open streams.
func (st *h2stream) removeLocked() {
	c := st.c
	if c.streams[st.id] != st {
		return
	}
	delete(c.streams, st.id)
	if len(c.streams) == 0 && c.dead == nil {
		c.setIdleDeadline()
	}
}

// endRecvLocked records the request's END_STREAM.
func (st *h2stream) endRecvLocked() {
	st.recvDone = true
	if b := st.body; b != nil && b.err == nil {
		b.err = io.EOF
	}
	if st.sentEnd {
		st.removeLocked()
	}
}

// endSentLocked records the answer's END_STREAM.
func (st *h2stream) endSentLocked() {
	st.sentEnd = true
	if st.recvDone {
		st.removeLocked()
	}
}

// waitLocked waits for a change of the stream (window, data, end), at
// most until the write deadline; what is queued goes out first, since the
// peer answers it.
func (st *h2stream) waitLocked(dl time.Time) error {
	c := st.c
	if c.flushLocked() {
		// The lock was released while writing: the window may have
		// grown meanwhile, and its broadcast found no one waiting.
		return nil
	}
	if st.closed != nil || c.dead != nil {
		return nil
	}
	st.timedOut = false
	t := time.AfterFunc(time.Until(dl), func() {
		c.mu.Lock()
		st.timedOut = true
		st.wake.Broadcast()
		c.mu.Unlock()
	})
	st.wake.Wait()
	t.Stop()
	if st.timedOut {
		st.resetLocked(http2.ErrCodeCancel, os.ErrDeadlineExceeded)
	}
	return nil
}

// sendDataLocked sends p as DATA frames within the flow-control windows,
// the last with END_STREAM when end is set.
func (st *h2stream) sendDataLocked(p []byte, end bool) error {
	c := st.c
	var dl time.Time // set at the first wait for window
	for {
		if st.closed != nil {
			return st.closed
		}
		if c.dead != nil {
			return c.dead
		}
		if len(p) == 0 {
			if end {
				_ = c.fr.WriteData(st.id, true, nil)
				st.endSentLocked()
			}
			return nil
		}
		n := min(int64(len(p)), int64(c.peerMax), c.sendWin, st.sendWin)
		if n <= 0 {
			if dl.IsZero() {
				dl = time.Now().Add(h2WriteByteTimeout)
			}
			_ = st.waitLocked(dl)
			continue
		}
		last := end && n == int64(len(p))
		_ = c.fr.WriteData(st.id, last, p[:n])
		c.sendWin -= n
		st.sendWin -= n
		p = p[n:]
		if last {
			st.endSentLocked()
			return nil
		}
		if len(c.out) >= 64<<10 {
			c.flushLocked()
			c.waitRoomLocked()
		}
	}
}

// writeHeadLocked queues a HEADERS frame (and CONTINUATIONs) of status (0:
// a trailer section) with h's fields — those of keys when keys is not nil
// — and the extra fields.
func (st *h2stream) writeHeadLocked(status int, h http.Header, keys []string, extra []hpack.HeaderField, end bool) error {
	c := st.c
	if st.closed != nil {
		return st.closed
	}
	if c.dead != nil {
		return c.dead
	}
	c.hbuf.Reset()
	if status != 0 {
		_ = c.enc.WriteField(hpack.HeaderField{Name: ":status", Value: statusText(status)})
	}
	if keys == nil {
		var stack [32]string
		keys = stack[:0]
		for k := range h {
			keys = append(keys, k)
		}
		slices.Sort(keys)
	}
	for _, k := range keys {
		lk, ok := lowerH2(k)
		if !ok || !h2NameAllowed(lk) {
			continue
		}
		for _, v := range h[k] {
			if h2ValueAllowed(lk, v) {
				_ = c.enc.WriteField(hpack.HeaderField{Name: lk, Value: v})
			}
		}
	}
	for _, hf := range extra {
		_ = c.enc.WriteField(hf)
	}
	st.writeBlockLocked(c.hbuf.Bytes(), end)
	return nil
}

// writeBlockLocked queues the header block of a HEADERS frame, with
// CONTINUATIONs when it is longer than the peer's frame size; end ends
// the stream.
func (st *h2stream) writeBlockLocked(block []byte, end bool) {
	c := st.c
	max := int(c.peerMax)
	first := true
	for first || len(block) > 0 {
		frag := block[:min(len(block), max)]
		block = block[len(frag):]
		if first {
			_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: st.id, BlockFragment: frag, EndStream: end, EndHeaders: len(block) == 0})
			first = false
		} else {
			_ = c.fr.WriteContinuation(st.id, len(block) == 0, frag)
		}
	}
	if end {
		st.endSentLocked()
	}
}

// h2NameAllowed reports whether lk (lower case) may name a field of an
// HTTP/2 answer: a valid name, not a connection-specific one.
func h2NameAllowed(lk string) bool {
	return httpguts.ValidHeaderFieldName(lk) && !isH2ConnField(lk)
}

// h2ValueAllowed reports whether v may be the value of the answer's field
// lk: a valid value, and TE only as "trailers".
func h2ValueAllowed(lk, v string) bool {
	return httpguts.ValidHeaderFieldValue(v) && (lk != "te" || v == "trailers")
}

// isH2ConnField reports a connection-specific field name (lower case),
// which an HTTP/2 answer must not carry (§8.2.2).
func isH2ConnField(lk string) bool {
	switch lk {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return true
	}
	return false
}

// statusText is a status code's decimal form.
func statusText(code int) string {
	switch code {
	case 200:
		return "200"
	case 204:
		return "204"
	case 304:
		return "304"
	case 404:
		return "404"
	}
	return strconv.Itoa(code)
}

// h2body is a request body as its DATA frames arrive; reading it gives the
// window back to the client.
type h2body struct {
	st     *h2stream
	buf    []byte
	off    int
	err    error // returned once buf is read: io.EOF at END_STREAM
	closed bool  // the handler closed it
	timer  *time.Timer
}

func (b *h2body) Read(p []byte) (int, error) {
	c := b.st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for b.off == len(b.buf) && b.err == nil && !b.closed {
		b.st.wake.Wait()
	}
	if b.closed {
		return 0, errH2BodyClosed
	}
	if b.off < len(b.buf) {
		n := copy(p, b.buf[b.off:])
		b.off += n
		if b.off == len(b.buf) {
			b.buf, b.off = b.buf[:0], 0
		}
		c.giveBackLocked(b.st, int64(n))
		c.flushLocked()
		return n, nil
	}
	if b.err == io.EOF && b.st.trailer != nil {
		// The trailers go into the request at the body's end, in the
		// reading goroutine, as net/http's server puts them: only the
		// declared ones.
		for k, vv := range b.st.trailer {
			if _, ok := b.st.req.Trailer[k]; ok {
				b.st.req.Trailer[k] = vv
			}
		}
		b.st.trailer = nil
	}
	return 0, b.err
}

var errH2BodyClosed = fmt.Errorf("http2: request body closed by handler")

func (b *h2body) Close() error {
	c := b.st.c
	c.mu.Lock()
	b.closeLocked()
	c.flushLocked()
	c.mu.Unlock()
	return nil
}

// closeLocked drops what was not read, giving its window back.
func (b *h2body) closeLocked() {
	if b.closed {
		return
	}
	b.closed = true
	if n := len(b.buf) - b.off; n > 0 {
		b.st.c.giveBackLocked(nil, int64(n))
	}
	b.buf, b.off = nil, 0
	if b.timer != nil {
		b.timer.Stop()
	}
	b.st.wake.Broadcast()
}

// h2writer is the http.ResponseWriter of a native HTTP/2 stream. It writes
// as net/http's HTTP/2 server writes: the head at the first Write or
// Flush or the handler's return, with a Content-Length when the handler
// returned with its whole body unflushed and declared none, a sniffed
// Content-Type when the key is absent, and a Date; trailers declared by
// Trailer or by TrailerPrefix keys; a body larger than its declared
// Content-Length is refused, a shorter one resets the stream.
type h2writer struct {
	st          *h2stream
	hdr         http.Header
	snap        http.Header // the head's fields, as at WriteHeader
	taken       bool        // forward.direct sent the answer past the writer
	scratch     *h2Scratch  // the worker's, for snap (nil: snap is a Clone)
	status      int
	wroteHeader bool
	sentHeader  bool
	head        bool // a HEAD request
	buf         []byte
	trailers    []string
	clen        int64 // the declared Content-Length, -1 if none
	written     int64
	writeDL     time.Time
}

func (w *h2writer) Header() http.Header {
	if w.hdr == nil {
		if w.scratch != nil {
			w.hdr = w.scratch.header()
		} else {
			w.hdr = make(http.Header)
		}
	}
	return w.hdr
}

func (w *h2writer) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.wroteHeader {
		return
	}
	if code < 200 {
		// Informational: sent now, the final head follows.
		c := w.st.c
		c.mu.Lock()
		_ = w.st.writeHeadLocked(code, w.hdr, nil, nil, false)
		c.flushLocked()
		c.mu.Unlock()
		return
	}
	w.wroteHeader = true
	w.status = code
	if w.scratch != nil {
		w.snap = w.scratch.clone(w.hdr)
	} else if w.snap = w.hdr.Clone(); w.snap == nil {
		w.snap = http.Header{}
	}
	// One Content-Length goes out, the first value, when it is a number
	// (as net/http's server sends it); the head's writer adds it.
	// (the key without a value keeps one from being added).
	if cl := w.snap.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseUint(cl, 10, 63); err == nil {
			w.clen = int64(n)
		}
		delete(w.snap, "Content-Length")
	}
}

func (w *h2writer) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.clen >= 0 && w.written+int64(len(p)) > w.clen {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.head {
		return len(p), nil
	}
	if len(w.buf)+len(p) > h2BodyChunk && len(w.buf) > 0 {
		if err := w.flush(false, false); err != nil {
			return 0, err
		}
	}
	if len(p) >= h2BodyChunk {
		w.buf = p
		err := w.flush(false, false)
		w.buf = nil
		if err != nil {
			return 0, err
		}
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

func (w *h2writer) WriteString(s string) (int, error) { return w.Write([]byte(s)) }

// FlushError sends the head and the body written so far.
func (w *h2writer) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.flush(false, true)
}

func (w *h2writer) Flush() { _ = w.FlushError() }

// SetReadDeadline bounds the reads of the request body: once it passes,
// they fail with os.ErrDeadlineExceeded.
func (w *h2writer) SetReadDeadline(t time.Time) error {
	b := w.st.body
	if b == nil {
		return nil
	}
	c := w.st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if t.IsZero() {
		return nil
	}
	expire := func() {
		c.mu.Lock()
		if b.err == nil {
			b.err = os.ErrDeadlineExceeded
		}
		b.st.wake.Broadcast()
		c.mu.Unlock()
	}
	if d := time.Until(t); d > 0 {
		b.timer = time.AfterFunc(d, expire)
	} else if b.err == nil {
		b.err = os.ErrDeadlineExceeded
		b.st.wake.Broadcast()
	}
	return nil
}

// SetWriteDeadline is accepted; a stream's writes are bounded by
// h2WriteByteTimeout.
func (w *h2writer) SetWriteDeadline(t time.Time) error {
	w.writeDL = t
	return nil
}

// EnableFullDuplex: an HTTP/2 stream is full duplex.
func (w *h2writer) EnableFullDuplex() error { return nil }

// end finishes the answer when the handler returned.
func (w *h2writer) end() {
	if w.taken {
		return // forward.direct answered, or cut its answer short
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	for k, vv := range w.hdr {
		if tk, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			w.declareTrailer(tk)
			w.hdr[http.CanonicalHeaderKey(tk)] = vv
		}
	}
	slices.Sort(w.trailers)
	if bodyAllowed(w.status) && !w.head && w.clen >= 0 && w.written < w.clen {
		return // shorter than declared: finish resets the stream
	}
	_ = w.flush(true, true)
}

func (w *h2writer) declareTrailer(k string) {
	k = http.CanonicalHeaderKey(strings.TrimSpace(k))
	if k == "" || !httpguts.ValidTrailerHeader(k) || slices.Contains(w.trailers, k) {
		return
	}
	w.trailers = append(w.trailers, k)
}

// hasTrailers reports a declared trailer with a value.
func (w *h2writer) hasTrailers() bool {
	for _, k := range w.trailers {
		if len(w.hdr[k]) > 0 {
			return true
		}
	}
	return false
}

// flush sends the head if it has not gone, then the body gathered; final
// ends the stream (with the trailers, if any). batch (the answer's end, a
// flush the handler asked for) lets the connection's ready handlers queue
// their frames first (flushBatchedLocked); a body chunk written because
// the buffer is full goes at once, so that a large answer does not wait
// for other goroutines once per chunk.
func (w *h2writer) flush(final, batch bool) error {
	st := w.st
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !w.sentHeader {
		w.sentHeader = true
		for _, v := range w.snap["Trailer"] {
			for _, k := range strings.Split(v, ",") {
				w.declareTrailer(k)
			}
		}
		var extra [3]hpack.HeaderField
		n := 0
		_, noCL := w.snap["Content-Length"]
		switch {
		case w.clen >= 0:
			extra[n] = hpack.HeaderField{Name: "content-length", Value: strconv.FormatInt(w.clen, 10)}
			n++
		case !noCL && final && bodyAllowed(w.status) && (len(w.buf) > 0 || !w.head):
			extra[n] = hpack.HeaderField{Name: "content-length", Value: strconv.Itoa(len(w.buf))}
			n++
		}
		if _, ok := w.snap["Content-Type"]; !ok && bodyAllowed(w.status) && len(w.buf) > 0 && w.snap.Get("Content-Encoding") == "" {
			extra[n] = hpack.HeaderField{Name: "content-type", Value: http.DetectContentType(w.buf)}
			n++
		}
		if _, ok := w.snap["Date"]; !ok {
			extra[n] = hpack.HeaderField{Name: "date", Value: httpDateString()}
			n++
		}
		end := (final && !w.hasTrailers() && len(w.buf) == 0) || w.head
		if err := st.writeHeadLocked(w.status, w.snap, nil, extra[:n], end); err != nil {
			return err
		}
		if end {
			c.flushBatchedLocked(batch)
			return nil
		}
	}
	if w.head || st.sentEnd {
		return nil
	}
	trailers := final && w.hasTrailers()
	if len(w.buf) > 0 || (final && !trailers) {
		if err := st.sendDataLocked(w.buf, final && !trailers); err != nil {
			return err
		}
	}
	w.buf = w.buf[:0]
	if trailers {
		if err := st.writeHeadLocked(0, w.hdr, w.trailers, nil, true); err != nil {
			return err
		}
	}
	c.flushBatchedLocked(batch)
	return nil
}

// bodyAllowed reports whether an answer of status may have a body.
func bodyAllowed(status int) bool {
	return (status < 100 || status > 199) && status != http.StatusNoContent && status != http.StatusNotModified
}

// commonNames are field names whose forms are known without work: most
// requests and answers carry only these. commonCanon maps a name's
// canonical and lower-case forms to its canonical form, commonLower its
// canonical form to the lower-case one.
var commonCanon, commonLower = func() (map[string]string, map[string]string) {
	canon, lower := make(map[string]string), make(map[string]string)
	for _, k := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Accept-Ranges", "Age",
		"Access-Control-Allow-Credentials", "Access-Control-Allow-Headers", "Access-Control-Allow-Methods",
		"Access-Control-Allow-Origin", "Access-Control-Expose-Headers", "Access-Control-Max-Age",
		"Access-Control-Request-Headers", "Access-Control-Request-Method", "Allow", "Authorization",
		"Cache-Control", "Connection", "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
		"Content-Location", "Content-Range", "Content-Type", "Cookie", "Date", "Etag", "Expect", "Expires",
		"From", "Host", "If-Match", "If-Modified-Since", "If-None-Match", "If-Unmodified-Since", "Keep-Alive",
		"Last-Modified", "Link", "Location", "Max-Forwards", "Origin", "Proxy-Authenticate",
		"Proxy-Authorization", "Range", "Referer", "Refresh", "Retry-After", "Server", "Set-Cookie",
		"Strict-Transport-Security", "Te", "Trailer", "Transfer-Encoding", "User-Agent", "Vary", "Via",
		"Www-Authenticate", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip",
		"X-Request-Id", "X-Content-Type-Options", "Grpc-Status", "Grpc-Message", "Grpc-Timeout",
		"Grpc-Encoding", "Grpc-Accept-Encoding", "Priority", "Upgrade-Insecure-Requests",
		"Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User",
	} {
		canon[k], canon[strings.ToLower(k)] = k, k
		lower[k] = strings.ToLower(k)
	}
	return canon, lower
}()

// canonicalH2 is the canonical form of a field name as it came (lower
// case on the wire).
func canonicalH2(name string) string {
	if k, ok := commonCanon[name]; ok {
		return k
	}
	return http.CanonicalHeaderKey(name)
}

// canonicalBytes is the canonical form of a field name read from an
// HTTP/1.1 head, allocating only for a name commonCanon does not know in
// that spelling.
func canonicalBytes(name []byte) string {
	if k, ok := commonCanon[string(name)]; ok {
		return k
	}
	return textproto.CanonicalMIMEHeaderKey(string(name))
}

// lowerH2 is the wire form of a field name; false when it is not ASCII.
func lowerH2(k string) (string, bool) {
	if lk, ok := commonLower[k]; ok {
		return lk, true
	}
	for i := 0; i < len(k); i++ {
		if k[i] >= 0x80 {
			return "", false
		}
	}
	return strings.ToLower(k), true
}

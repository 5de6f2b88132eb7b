package proxy

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// RequestObserver receives one call per request the Handler served, for
// metrics. route is nil when no route matched; status is the status sent to
// the client (499 when the client went away first); attempts is the number
// of endpoints tried (0 when none was). It is called on the request path and
// must not block.
type RequestObserver interface {
	ObserveRequest(route *Route, method string, status int, d time.Duration, attempts int)
}

// RefusalObserver, when the RequestObserver implements it too, counts the
// requests a route's policies refuse, by reason: "ip", "cors", "auth" or
// "rate_limit".
type RefusalObserver interface {
	ObserveRefusal(route *Route, reason string)
}

// Options configures a Handler.
type Options struct {
	// TrustedProxies are the peers whose X-Forwarded-For, X-Forwarded-Host
	// and X-Forwarded-Proto headers are believed (and X-Forwarded-For
	// appended to). From any other peer they are replaced, so that a client
	// cannot choose the address a backend or consistent hashing sees. Empty
	// trusts no one.
	TrustedProxies []netip.Prefix
	// AccessLog receives one line per request. Nil logs nothing.
	AccessLog *AccessLog
	// Metrics observes every request. Nil observes nothing.
	Metrics RequestObserver
	// Logger receives debug entries about failed requests. Nil discards.
	Logger logrus.FieldLogger
}

// Handler is the http.Handler of the proxy listener: it serves routes and
// nothing else.
type Handler struct {
	router  atomic.Pointer[Router]
	trusted []netip.Prefix
	access  *AccessLog
	metrics RequestObserver
	log     logrus.FieldLogger
	// onForward and onFast, when set (by tests), are called for every
	// request forwarded by ReverseProxy and by a Server's fast path (with
	// whether it is served inside its connection's hot wait, or by a
	// loop).
	onForward func()
	onFast    func(inWait bool)
	onDirect  func() // forward.direct serves a request
}

// NewHandler returns a Handler serving rt's routes. A nil rt serves 404 to
// every request until SetRouter is called.
func NewHandler(rt *Router, opts Options) *Handler {
	log := opts.Logger
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	h := &Handler{
		trusted: append([]netip.Prefix(nil), opts.TrustedProxies...),
		access:  opts.AccessLog,
		metrics: opts.Metrics,
		log:     log.WithField("component", "proxy"),
	}
	h.SetRouter(rt)
	return h
}

// SetRouter atomically replaces the routes (a configuration reload).
// Requests in flight finish on the routes they matched. A nil rt serves 404.
func (h *Handler) SetRouter(rt *Router) {
	if rt == nil {
		rt = &Router{}
	}
	h.router.Store(rt)
}

// Router returns the routes being served.
func (h *Handler) Router() *Router { return h.router.Load() }

// exchange is the state of one proxied request, on either path. On the
// net/http side it is part of the request's forward, which hands it to
// Rewrite, the attempt loop and the error handler; on the fast path it is
// the connection's. Everything but body is used by the request's goroutine
// only.
type exchange struct {
	h     *Handler
	e     *entry
	start time.Time
	// clock, when set, is where the request's path keeps its latest clock
	// reading (the fast path's fconn.now, which is start until the first
	// attempt): attempts takes an attempt's start from it, and reads the
	// clock into it for a retry, instead of reading the clock itself.
	clock    *time.Time
	sw       statusWriter
	body     requestBody
	clientIP string
	trusted  bool // the direct peer is a trusted proxy
	// replayable: the request may be sent twice (an idempotent method, or
	// an Idempotency-Key header).
	replayable bool
	hashKey    string
	attempts   int
	addr       string // the last endpoint tried
	tried      []string
	triedBuf   [4]string
	fail       failKind
	timer      *time.Timer
	cancel     context.CancelCauseFunc
	// bodyUnkept: a fast-path request body that RetryPolicy does not keep
	// for replays.
	bodyUnkept bool
	// grpc: a gRPC request, answered gRPC errors (grpc.go).
	grpc bool
	// deadline is when timer fires (zero: no timer).
	deadline time.Time
	// byClient: the timer is the client's deadline (grpc-timeout), not
	// Route.Timeout.
	byClient bool
	// origin is the request's Origin when the route's CORS allows it: the
	// answer gets the CORS fields.
	origin string
	// claims are the verified token's, forwarded by the route's policy.
	claims Claims
	// enc is the coding the client accepts, when the route compresses.
	enc encoding
}

// forward is a request the net/http side serves: its exchange, and the
// httputil.ReverseProxy made for it, whose Rewrite, Transport (the attempt
// loop) and ErrorHandler are bound to the exchange. Per-request state thus
// travels as arguments, never through the request's context.
type forward struct {
	exchange
	rp httputil.ReverseProxy
	// trace passes 1xx answers on (forward.lean).
	trace httptrace.ClientTrace
	// fr and frFields hold forward.direct's answer head: its fields'
	// first backing array, so that parsing a usual head allocates nothing.
	fr       fastResponse
	frFields [8]hdrLine
}

// discardLog is ReverseProxy's ErrorLog: copy errors (a client that went
// away mid-response) are per request, and the access log records them.
var discardLog = log.New(io.Discard, "", 0)

func (f *forward) rewrite(pr *httputil.ProxyRequest) { f.e.rewrite(pr, &f.exchange) }

func (f *forward) RoundTrip(req *http.Request) (*http.Response, error) {
	return f.e.roundTrip(&f.exchange, req)
}

func (f *forward) modifyResponse(res *http.Response) error {
	p := f.e.pol
	p.editResponse(res.Header, f.exchange.origin)
	if z := p.compress; z != nil {
		f.compress(z, res)
	}
	return nil
}

// compress sets up the compression of res, when it is eligible, as the
// fast path's writeHead does: the answer's fields now, and an encoder the
// body goes through (statusWriter), ended after ReverseProxy has copied it.
func (f *forward) compress(z *compressPolicy, res *http.Response) {
	facts := headerFacts(res.Header, res.ContentLength)
	if !z.eligible(res.Request.Method, res.StatusCode, &facts) {
		return
	}
	if !facts.varies {
		res.Header.Add("Vary", "Accept-Encoding")
	}
	enc := f.exchange.enc
	if enc == encNone {
		return
	}
	sw := &f.exchange.sw
	if sw.z = z.get(enc, encSink{w: sw.w, n: &sw.size}); sw.z == nil {
		return // maxEncoderBytes in use: the answer as it is
	}
	h := res.Header
	delete(h, "Content-Length")
	delete(h, "Accept-Ranges")
	for i, et := range h["Etag"] {
		h["Etag"][i] = weakETag(et) // each, as the fast path writes them
	}
	h.Set("Content-Encoding", enc.token())
}

func (f *forward) handleError(w http.ResponseWriter, _ *http.Request, err error) {
	handleError(&f.exchange, w, err)
}

func (ex *exchange) triedAddr(addr string) bool {
	for _, a := range ex.tried {
		if a == addr {
			return true
		}
	}
	return false
}

// expire is the Route.Timeout timer's function.
func (ex *exchange) expire() {
	if ex.byClient {
		ex.cancel(errClientDeadline)
		return
	}
	ex.cancel(errRouteTimeout)
}

// stopTimer stops the Route.Timeout timer as the answer arrived and reports
// whether it had not fired (true when there is none).
func (ex *exchange) stopTimer() bool {
	return ex.timer == nil || ex.timer.Stop()
}

// refuse answers a request the entry point's rules refuse before any route
// is matched — in net/http's words, as the fast path's reject does, or as
// a gRPC error to a gRPC call — and records it without a route.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status int, why string) {
	ex := &exchange{h: h, start: time.Now()}
	ex.sw.w = w
	ex.clientIP, ex.trusted = clientIP(peerHost(r.RemoteAddr), headerMap(r.Header), h.trusted)
	defer h.finish(ex, r)
	if isGRPC(r) {
		writeGRPCError(&ex.sw, status, why, "", "")
		ex.sw.status = status
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr["X-Content-Type-Options"] = nosniff
	if r.ProtoMajor == 1 {
		hdr["Connection"] = connectionClose
	}
	ex.sw.WriteHeader(status)
	_, _ = io.WriteString(&ex.sw, strconv.Itoa(status)+" "+http.StatusText(status)+": "+why)
}

// ServeHTTP proxies r to the route it matches.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := &forward{exchange: exchange{h: h, start: time.Now()}}
	ex := &f.exchange
	ex.sw.w = w
	ex.tried = ex.triedBuf[:0]
	defer h.finish(ex, r)
	ex.clientIP, ex.trusted = clientIP(peerHost(r.RemoteAddr), headerMap(r.Header), h.trusted)
	ex.grpc = isGRPC(r)

	if r.Method == http.MethodConnect {
		// A CONNECT tunnel would reach any host the client names.
		ex.writeError(&ex.sw, http.StatusMethodNotAllowed, "method not allowed", "", "")
		return
	}
	path, rawPath, ok := normalizePath(r.URL.Path, r.URL.RawPath)
	if !ok {
		ex.writeError(&ex.sw, http.StatusBadRequest, "bad request", "", "")
		return
	}
	e := h.router.Load().match(r, path)
	if e == nil {
		ex.writeError(&ex.sw, http.StatusNotFound, "no route", "", "")
		return
	}
	ex.e = e
	if e.pol != nil && e.admit(ex, r.Method, headerMap(r.Header), &ex.sw, time.Now()) {
		return
	}
	up := e.route.Upstream
	if up.MaxBodyBytes > 0 && r.ContentLength > up.MaxBodyBytes {
		ex.writeError(&ex.sw, http.StatusRequestEntityTooLarge, "request body too large", e.route.Name, e.service)
		return
	}
	ex.hashKey = e.hash.key(headerMap(r.Header), path, ex.clientIP)
	ex.replayable = isReplayable(r)
	ex.initBody(w, r)
	lean := leanEligible(r, up)
	var hw *h2writer
	var t *Transport
	direct := false
	if lean {
		hw, t, direct = directEligible(w, r, ex)
	}
	// forward.direct bounds the exchange by Route.Timeout's deadline
	// itself; the others by the outbound request's context.
	out := ex.outbound(r, path, rawPath, !direct)
	if h.onForward != nil {
		h.onForward()
	}
	if direct {
		if h.onDirect != nil {
			h.onDirect()
		}
		f.direct(hw, t, out)
	} else {
		f.rp = httputil.ReverseProxy{
			Rewrite:      f.rewrite,
			Transport:    f,
			BufferPool:   sharedBufferPool,
			ErrorHandler: f.handleError,
			ErrorLog:     discardLog,
		}
		if e.pol != nil && e.pol.editsAnswers() {
			f.rp.ModifyResponse = f.modifyResponse
		}
		if lean {
			f.lean(&ex.sw, out)
		} else {
			f.rp.ServeHTTP(&ex.sw, out)
		}
	}
	if z := ex.sw.z; z != nil {
		// The body was copied whole (a broken one panics out of
		// ServeHTTP, and the client sees it cut): end the stream.
		_ = z.close()
	}
}

// initBody prepares ex.body to serve r's body, if it has one, under the
// upstream's body limit, keeping what the RetryPolicy replays.
func (ex *exchange) initBody(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return
	}
	up := ex.e.route.Upstream
	var src io.Reader = r.Body
	if up.MaxBodyBytes > 0 {
		src = http.MaxBytesReader(w, r.Body, up.MaxBodyBytes)
	}
	var keep int64
	if ex.e.record && ex.replayable {
		keep = up.Retry.BufferBodyBytes
	}
	ex.body.init(src, keep)
}

// outbound returns the request ReverseProxy forwards: r with the cleaned
// path, and, with timer, with a context Route.Timeout's timer cancels when
// the route has one (or a gRPC request's grpc-timeout, when shorter). r
// itself is left as it came (the access log reads it).
func (ex *exchange) outbound(r *http.Request, path, rawPath string, timer bool) *http.Request {
	ctx := r.Context()
	t := ex.e.route.Timeout
	if !timer {
		t = 0
	}
	if ex.grpc {
		if d, ok := grpcTimeout(r.Header); ok && (t <= 0 || d < t) {
			t, ex.byClient = d, true // the caller's deadline comes first
		}
	}
	if t > 0 {
		ctx = ex.startTimer(ctx, t)
	} else if !timer && path == r.URL.Path && rawPath == r.URL.RawPath {
		return r // forward.direct copies it before changing anything
	}
	out := r.WithContext(ctx)
	if path != r.URL.Path || rawPath != r.URL.RawPath {
		u := *r.URL
		u.Path, u.RawPath = path, rawPath
		out.URL = &u
	}
	return out
}

// startTimer starts the exchange's timer, which cancels the context it
// returns, made from ctx, after t.
func (ex *exchange) startTimer(ctx context.Context, t time.Duration) context.Context {
	ctx, ex.cancel = context.WithCancelCause(ctx)
	ex.deadline = time.Now().Add(t)
	ex.timer = time.AfterFunc(t, ex.expire)
	return ctx
}

// finish ends a request: it stops its timer, then reports it to metrics and
// the access log. It runs deferred, so also when ReverseProxy aborts the
// response with a panic.
func (h *Handler) finish(ex *exchange, r *http.Request) {
	if ex.timer != nil {
		ex.timer.Stop()
		ex.cancel(nil)
	}
	if z := ex.sw.z; z != nil {
		z.release()
		ex.sw.z = nil
	}
	d := time.Since(ex.start)
	status := ex.sw.status
	if status == 0 {
		status = http.StatusOK // the server sends 200 for a handler that wrote nothing
	}
	if h.metrics != nil {
		var route *Route
		if ex.e != nil {
			route = ex.e.route
		}
		h.metrics.ObserveRequest(route, r.Method, status, d, ex.attempts)
	}
	if h.access != nil {
		h.access.record(ex, r, status, d)
	}
}

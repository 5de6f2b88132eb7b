package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// Server serves a proxy listener. Plain requests — HTTP/1.1 or HTTP/1.0,
// no body or a Content-Length or chunked body of up to 64 KiB, no
// 100-continue, a clean origin-form target, a route the fast path serves
// (fastRoute) or none — and WebSocket handshakes are proxied on the
// connection's own goroutine by the fast path: the request head is parsed
// in place in the read buffer (reqparse.go) and forwarded as bytes, the
// response head is filtered as bytes and its body relayed (relay.go), with
// no http.Request, header maps or per-request goroutines; a switch the
// endpoint accepts becomes a tunnel relayed by a poller (tunnel.go). A
// request the fast path does not take, once the same parser has accepted
// its head, is handed with the connection's buffered bytes to a standard
// net/http server running the Handler (handoff.go), which serves that one
// request and closes the connection: streamed bodies, other protocol
// switches, trailers and 100-continue are net/http's and ReverseProxy's.
//
// Between requests a connection holds no buffer, and once quiet no
// goroutine either: it is parked in an epoll poller (idleconn.go).
//
// The fast path keeps the Handler's behaviour for what it serves: the
// route match, path cleaning, hop-by-hop and forwarding headers, the
// route's header edits, retries, passive health reports, Route.Timeout,
// error statuses, metrics and the access log. A client that goes away
// during a slow answer is noticed by the client watch (watch.go) and its
// upstream exchange aborted.
type Server struct {
	h   *Handler
	cfg ServerConfig
	hs  *http.Server
	hl  *handoffListener

	mu      sync.Mutex
	conns   map[*cconn]struct{}
	tunnels map[*tunnel]struct{}
	h2conns map[*h2conn]struct{}
	// tunnelsClosed: closeTunnels ran, no tunnel opens any more.
	tunnelsClosed bool
	base          context.Context // cfg.BaseContext or Background
	stopAfter     func() bool     // unregisters closeTunnels from base
	lns           map[net.Listener]struct{}
	closing       atomic.Bool
	closed        chan struct{} // closed with closing
	kicking       atomic.Bool   // kickCold runs
	loops         *loops        // nil without loops
	handoffs      atomic.Bool   // hs.Serve is running
	// netHTTPConns counts the connections net/http's server holds
	// (ConnStats).
	netHTTPConns atomic.Int64
}

// ServerConfig is an entry point's limits, with net/http.Server's meaning.
type ServerConfig struct {
	// ReadHeaderTimeout bounds reading a request head; 0 means none.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request; 0 means none.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response; 0 means none.
	WriteTimeout time.Duration
	// IdleTimeout bounds the wait for the next request of a keep-alive
	// connection; 0 means ReadTimeout, and both 0 means none.
	IdleTimeout time.Duration
	// MaxHeaderBytes limits a request head (request line and header
	// fields, line ends included): a larger one is answered 431 and the
	// connection closed. 0 means DefaultMaxHeaderBytes (32 KiB, nginx's
	// large_client_header_buffers).
	MaxHeaderBytes int
	// MaxHeaderCount limits the number of request header fields: 431.
	// 0 means DefaultMaxHeaderCount (100).
	MaxHeaderCount int
	// MaxTargetBytes limits the request target: 414. 0 means
	// DefaultMaxTargetBytes (8 KiB).
	MaxTargetBytes int
	// MaxBodyBytes limits a request body: a larger Content-Length is
	// answered 413 before any endpoint is contacted, a chunked body when
	// it passes the limit. 0 means DefaultMaxBodyBytes (10 MiB); a
	// service's own, smaller limit applies too.
	MaxBodyBytes int64
	// BodyTimeout bounds reading a request body that is buffered before
	// the endpoint is contacted (up to 64 KiB): a body not whole within it
	// is answered 408 and the connection closed, no endpoint contacted.
	// A larger body is streamed and must keep MinBodyRate after
	// BodyTimeout. 0 means DefaultBodyTimeout (30s).
	BodyTimeout time.Duration
	// MinBodyRate is the average rate, in bytes per second, a streamed
	// request body must keep once BodyTimeout has passed; a slower body
	// ends the exchange (the endpoint's connection is closed). 0 means
	// DefaultMinBodyRate (1 KiB/s).
	MinBodyRate int64
	// BaseContext is the parent of every request context on the net/http
	// path (upgraded connections end with it). Nil means Background.
	BaseContext context.Context
	// DisableFastPath hands every connection to net/http.
	DisableFastPath bool
	// Loops, when not 0, is how many event loops serve plain fast-path
	// connections between requests and their simple exchanges, without a
	// goroutine (loop_linux.go; Linux only, ignored elsewhere and with
	// TLS). 0: every connection has a goroutine while it is served, and
	// waits hot or parked between requests.
	Loops int
	// TLS makes the entry point HTTPS: every connection is a TLS server
	// connection with this configuration. Once the handshake is done
	// (within the head timeout), HTTP/1.1 is served by the fast path as a
	// plain connection is, never parked; HTTP/2 (the handshake chose "h2",
	// which HTTP2Off leaves out of NextProtos) by net/http for the
	// connection's life. Nil: plain.
	TLS *tls.Config
	// HTTP2 is how HTTP/2 is served (HTTP2Auto: by ALPN with TLS, not
	// without it).
	HTTP2 HTTP2Mode
	// HTTP2Server is which server speaks HTTP/2: net/http's (the zero
	// value) or zkgate's own (h2server.go).
	HTTP2Server HTTP2Server
	// RedirectPort, when not 0, answers every request 308 Permanent
	// Redirect to https on the same host at this port (left out when it
	// is 443), except requests under /.well-known/acme-challenge/, which
	// are proxied as usual.
	RedirectPort int
}

// HTTP2Mode is how an entry point serves HTTP/2.
type HTTP2Mode int

const (
	// HTTP2Auto offers HTTP/2 by ALPN on a TLS entry point and not on a
	// plain one.
	HTTP2Auto HTTP2Mode = iota
	// HTTP2Off serves HTTP/1.x only.
	HTTP2Off
	// HTTP2H2C also accepts HTTP/2 with prior knowledge on a plain entry
	// point (a connection that opens with the HTTP/2 preface).
	HTTP2H2C
)

// HTTP2Server is the server an entry point speaks HTTP/2 with.
type HTTP2Server int

const (
	// HTTP2ServerGo is net/http's HTTP/2 server.
	HTTP2ServerGo HTTP2Server = iota
	// HTTP2ServerZkgate is zkgate's own (h2server.go).
	HTTP2ServerZkgate
)

// The HTTP/2 server's limits (http.HTTP2Config); the header list is
// bounded by MaxHeaderBytes. Go's server also bounds the work a peer can
// cause with resets (CVE-2023-44487, rapid reset) and CONTINUATION frames
// (CVE-2023-45288).
const (
	h2MaxConcurrentStreams = 128 // nginx's http2_max_concurrent_streams
	h2MaxReadFrameSize     = 16 << 10
	h2HPACKTableSize       = 4 << 10
	h2PingTimeout          = 15 * time.Second
	h2WriteByteTimeout     = 60 * time.Second // nginx's send_timeout
)

// Defaults of ServerConfig's limits.
const (
	DefaultMaxHeaderBytes = 32 << 10
	DefaultMaxHeaderCount = 100
	DefaultMaxTargetBytes = 8 << 10
	DefaultMaxBodyBytes   = 10 << 20
	DefaultBodyTimeout    = 30 * time.Second
	DefaultMinBodyRate    = 1 << 10
)

// withDefaults returns cfg with its zero limits replaced by the defaults.
func (cfg ServerConfig) withDefaults() ServerConfig {
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.MaxHeaderCount <= 0 {
		cfg.MaxHeaderCount = DefaultMaxHeaderCount
	}
	if cfg.MaxTargetBytes <= 0 {
		cfg.MaxTargetBytes = DefaultMaxTargetBytes
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	if cfg.MinBodyRate <= 0 {
		cfg.MinBodyRate = DefaultMinBodyRate
	}
	return cfg
}

// testLoops is the loops a Server has when its configuration leaves them
// out: set by the package's tests only (ZKGATE_TEST_LOOPS), to run every
// test with loops.
var testLoops int

// NewServer returns a Server for h.
func NewServer(h *Handler, cfg ServerConfig) *Server {
	cfg = cfg.withDefaults()
	s := &Server{
		h:       h,
		cfg:     cfg,
		conns:   make(map[*cconn]struct{}),
		tunnels: make(map[*tunnel]struct{}),
		h2conns: make(map[*h2conn]struct{}),
		closed:  make(chan struct{}),
		lns:     make(map[net.Listener]struct{}),
	}
	s.hl = newHandoffListener()
	if cfg.Loops == 0 {
		cfg.Loops = testLoops
		s.cfg.Loops = testLoops
	}
	if cfg.Loops > 0 && cfg.fastPath() && cfg.TLS == nil {
		s.loops = newLoops(s, cfg.Loops)
	}
	base := cfg.BaseContext
	if base == nil {
		base = context.Background()
	}
	s.base = base
	s.stopAfter = context.AfterFunc(base, s.closeTunnels)
	s.hs = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ConnState:         s.connState,
		ConnContext:       connContext,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return base },
		Protocols:         cfg.protocols(),
		ErrorLog:          serverErrorLog(h),
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:      h2MaxConcurrentStreams,
			MaxReadFrameSize:          h2MaxReadFrameSize,
			MaxDecoderHeaderTableSize: h2HPACKTableSize,
			MaxEncoderHeaderTableSize: h2HPACKTableSize,
			SendPingTimeout:           h2PingTimeout,
			PingTimeout:               h2PingTimeout,
			WriteByteTimeout:          h2WriteByteTimeout,
		},
	}
	return s
}

// serverErrorLog is net/http's server's ErrorLog: what a client got wrong
// (failed TLS handshakes from scanners, HTTP/2 protocol errors) goes to the
// Handler's logger at debug level, not to stderr.
func serverErrorLog(h *Handler) *log.Logger {
	if h == nil || h.log == nil {
		return discardLog
	}
	return log.New(debugWriter{h.log.WithField("component", "http_server")}, "", 0)
}

// debugWriter logs each write as one debug entry.
type debugWriter struct{ log logrus.FieldLogger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.log.Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}

// protocols are the protocols net/http's server speaks for cfg.
func (cfg ServerConfig) protocols() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	switch {
	case cfg.TLS != nil && cfg.HTTP2 != HTTP2Off:
		p.SetHTTP2(true)
	case cfg.TLS == nil && cfg.HTTP2 == HTTP2H2C:
		p.SetUnencryptedHTTP2(true)
	}
	return p
}

// FastPath reports whether the Server serves HTTP/1.x requests on its fast
// path (plain or in TLS): not when it redirects, and not when it is
// disabled.
func (s *Server) FastPath() bool { return s.cfg.fastPath() }

// fastPath reports whether HTTP/1.x connections start on the fast path
// (over TLS too, once the handshake chose HTTP/1.1).
func (cfg ServerConfig) fastPath() bool {
	return !cfg.DisableFastPath && cfg.RedirectPort == 0
}

// Serve accepts connections on ln until Shutdown or Close, and returns
// http.ErrServerClosed then (or the listener's error).
func (s *Server) Serve(ln net.Listener) error {
	if !s.trackListener(ln, true) {
		return http.ErrServerClosed
	}
	defer s.trackListener(ln, false)
	if s.handoffs.CompareAndSwap(false, true) {
		go func() { _ = s.hs.Serve(s.hl) }() // ends with Shutdown or Close
	}
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Out of file descriptors and the like: back off as
				// net/http does, up to a second.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay) // a back-off, not synchronisation
				continue
			}
			return err
		}
		delay = 0
		if !s.cfg.fastPath() {
			if s.cfg.TLS != nil {
				nc = tls.Server(nc, s.cfg.TLS) // net/http runs the handshake
			}
			s.handoff(nc)
			continue
		}
		if s.cfg.TLS != nil {
			wc := newCoalescingConn(nc)
			go s.serveTLS(tls.Server(wc, s.cfg.TLS), wc)
			continue
		}
		s.serveFast(nc)
	}
}

// serveFast serves nc on the fast path, on a goroutine of its own.
func (s *Server) serveFast(nc net.Conn) {
	if s.loops != nil {
		nc = loopConn(nc)
	}
	cc := newCconn(s, nc)
	if !s.trackConn(cc, true) {
		_ = nc.Close()
		return
	}
	if cc.parkable && !s.kicking.Load() && s.kicking.CompareAndSwap(false, true) {
		go s.kickCold()
	}
	go cc.run(false)
}

// serveTLS runs the TLS handshake of tc within the head timeout, then
// serves the connection: HTTP/1.1 on the fast path (a TLS connection is
// never parked: its reads hold TLS state the poller cannot see), HTTP/2
// (ALPN h2) by zkgate's own server, which gathers its TLS records in wc
// (tc's transport), or by net/http's, for which wc coalesces.
func (s *Server) serveTLS(tc *tls.Conn, wc *coalescingConn) {
	t := s.cfg.ReadHeaderTimeout
	if t <= 0 {
		t = s.cfg.ReadTimeout
	}
	if t <= 0 {
		t = defaultHandshakeTimeout
	}
	_ = tc.SetDeadline(time.Now().Add(t))
	ctx, cancel := context.WithTimeout(s.base, t)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		if s.h != nil && s.h.log != nil && debugEnabled(s.h.log) {
			s.h.log.WithError(err).WithField("remote_addr", tc.RemoteAddr().String()).Debug("TLS handshake failed")
		}
		_ = tc.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	if st := tc.ConnectionState(); st.NegotiatedProtocol == "h2" {
		if s.nativeH2() {
			wc.startGather()
			s.serveH2(tc, &st, wc)
			return
		}
		wc.start()
		s.handoff(tc)
		return
	}
	s.serveFast(tc)
}

// defaultHandshakeTimeout bounds a TLS handshake when the entry point sets
// no read timeout at all.
const defaultHandshakeTimeout = 10 * time.Second

func (s *Server) trackListener(ln net.Listener, add bool) bool { return track(s, s.lns, ln, add) }

func (s *Server) trackConn(cc *cconn, add bool) bool { return track(s, s.conns, cc, add) }

// track adds k to, or removes it from, one of s's sets under s.mu; an add
// fails once s is closing.
func track[K comparable](s *Server, set map[K]struct{}, k K, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(set, k)
		return true
	}
	if s.closing.Load() {
		return false
	}
	set[k] = struct{}{}
	return true
}

// handoff gives nc (with the bytes already read into br, if any) to the
// net/http server.
func (s *Server) handoff(nc net.Conn) {
	if !s.hl.push(nc) {
		_ = nc.Close()
	}
}

// Shutdown stops accepting, closes idle connections, and waits until the
// requests in flight finish (each fast connection closes after its current
// answer) or ctx ends, like http.Server.Shutdown.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginClose()
	hsErr := make(chan error, 1)
	go func() { hsErr <- s.hs.Shutdown(ctx) }()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if s.closeIdle() == 0 {
			break
		}
		select {
		case <-ctx.Done():
			s.closeAll()
			<-hsErr
			return ctx.Err()
		case <-t.C:
		}
	}
	return <-hsErr
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.beginClose()
	s.closeAll()
	return s.hs.Close()
}

func (s *Server) beginClose() {
	s.mu.Lock()
	if !s.closing.Swap(true) {
		close(s.closed)
	}
	for ln := range s.lns {
		_ = ln.Close()
	}
	s.mu.Unlock()
	s.hl.close()
	if s.loops != nil {
		s.loops.wake()
	}
}

// closeIdle closes the fast connections waiting for a request and returns
// how many connections remain.
func (s *Server) closeIdle() int {
	for _, cc := range s.connList() {
		cc.closeIfIdle()
	}
	open := 0
	for _, c := range s.h2List() {
		if c.shutdown() {
			open++
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns) + open
}

func (s *Server) closeAll() {
	for _, cc := range s.connList() {
		if cc.state.Load() == connInWait {
			// Its close waits for the request served inside the hot
			// wait, which its watch ends (waitserve.go).
			go cc.nc.Close()
			continue
		}
		cc.closeIfIdle()
		closeConn(cc.nc)
	}
	for _, c := range s.h2List() {
		c.kill()
	}
	s.stopAfter()
	s.closeTunnels()
}

// connList returns the fast connections (closing one takes s.mu).
func (s *Server) connList() []*cconn { return list(s, s.conns) }

// list returns the members of one of s's sets, taken under s.mu.
func list[K comparable](s *Server, set map[K]struct{}) []K {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := make([]K, 0, len(set))
	for k := range set {
		l = append(l, k)
	}
	return l
}

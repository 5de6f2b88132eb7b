package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The net/http side of a Server: the requests the fast path hands over
// (their heads checked by parseRequest first), and every request when the
// fast path is off.

// serveHTTP is the net/http server's handler: the Handler, behind the
// entry point's rules for what net/http reads.
//
// A handed-over connection serves one request: its head passed the fast
// path's rules, but net/http would parse the next one alone, and its
// parser is more lenient (it takes Content-Length with
// Transfer-Encoding, obs-fold and bare LF line ends, which the fast path
// refuses). So the final answer says "Connection: close" (closeAfterWriter;
// a 101 does not), and connState closes a connection that goes idle all
// the same.
//
// A request body is read through a guard (guardedBody) that drops the
// trailer fields a recipient must not act on and ends a body that comes
// slower than MinBodyRate once BodyTimeout has passed, so that a slow
// client cannot hold an endpoint connection for long.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		// A TLS connection the fast path handed over with bytes it had
		// read: net/http sees the wrapper, not the *tls.Conn.
		if st, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok {
			r.TLS = st
		}
	}
	if s.cfg.fastPath() && r.ProtoMajor == 1 {
		w = &closeAfterWriter{ResponseWriter: w}
	} else if status, why := s.checkRequest(r); status != 0 {
		// Not handed over by the fast path, whose parser applied the
		// entry point's rules: TLS, HTTP/2, or the fast path off.
		s.h.refuse(w, r, status, why)
		return
	}
	if r.Body != nil && r.Body != http.NoBody && !(s.cfg.fastPath() && r.ProtoMajor == 1) {
		r.Body = http.MaxBytesReader(nil, r.Body, s.cfg.MaxBodyBytes) // nil: the transport may read it after the handler returned
	}
	if s.cfg.RedirectPort != 0 && !isACMEChallenge(r) && !s.viaHTTPS(r) {
		s.redirectHTTPS(w, r)
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		g := &guardedBody{
			src: r.Body, req: r, rc: http.NewResponseController(w), start: time.Now(),
			timeout: s.cfg.BodyTimeout, rate: s.cfg.MinBodyRate, max: s.cfg.ReadTimeout,
		}
		if isGRPC(r) {
			// A gRPC stream's messages come when the application has
			// them: a quiet client stream is not a slow body. Only
			// ReadTimeout bounds it; HTTP/2's flow control bounds what
			// it holds.
			g.rate = 0
		}
		r.Body = g
		defer g.handlerDone()
	}
	s.h.ServeHTTP(w, r)
}

// checkRequest applies the entry point's request rules that the fast
// path's parser applies to what it reads, to a request net/http parsed:
// the Host (a plain host[:port]; HTTP/2's :authority too), the number of
// header fields, the target's length and a declared body's size. It
// returns the status to refuse the request with, or 0.
func (s *Server) checkRequest(r *http.Request) (int, string) {
	if r.Host != "" && !validHost(sbytes(r.Host)) {
		return http.StatusBadRequest, "malformed Host or :authority"
	}
	if r.ProtoMajor == 1 && r.ProtoMinor == 1 && r.Host == "" {
		return http.StatusBadRequest, "missing Host"
	}
	if len(r.RequestURI) > s.cfg.MaxTargetBytes {
		return http.StatusRequestURITooLong, "request target too long"
	}
	n := 0
	for _, vs := range r.Header {
		n += len(vs)
	}
	if n > s.cfg.MaxHeaderCount {
		return http.StatusRequestHeaderFieldsTooLarge, "too many header fields"
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return http.StatusRequestEntityTooLarge, "request body too large"
	}
	return 0, ""
}

var connectionClose = []string{"close"}

// closeAfterWriter adds "Connection: close" to the final answer of a
// handed-over request as it is written — not to a 101, which switches
// protocols. Set before, it would be lost: ReverseProxy clears the header
// map after passing an informational answer (100 Continue, 103) on, and
// the client would then reuse a connection connState closes.
type closeAfterWriter struct {
	http.ResponseWriter
	final bool
}

func (w *closeAfterWriter) WriteHeader(code int) {
	if !w.final && code >= 200 {
		w.final = true
		w.Header()["Connection"] = connectionClose
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *closeAfterWriter) Write(p []byte) (int, error) {
	if !w.final {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap returns the underlying writer, for http.ResponseController
// (flushes, and the hijack of a protocol switch).
func (w *closeAfterWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// connState closes a handed-over connection once its request is answered
// (serveHTTP).
func (s *Server) connState(nc net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		s.netHTTPConns.Add(1)
	case http.StateClosed, http.StateHijacked:
		s.netHTTPConns.Add(-1)
	case http.StateIdle:
		if s.cfg.fastPath() && !isWholeConn(nc) {
			_ = nc.Close()
		}
	}
}

// tlsStateKey is the context key of a handed-over TLS connection's state.
type tlsStateKey struct{}

// connContext is net/http's ConnContext: a bufferedConn over a TLS
// connection puts the connection's state in the context, for serveHTTP.
func connContext(ctx context.Context, nc net.Conn) context.Context {
	if bc, ok := nc.(*bufferedConn); ok {
		if tc, ok := bc.Conn.(*tls.Conn); ok {
			st := tc.ConnectionState()
			return context.WithValue(ctx, tlsStateKey{}, &st)
		}
	}
	return ctx
}

// isWholeConn reports whether net/http serves nc for its whole life: an
// h2c connection the fast path handed over at its preface, or a TLS
// connection that chose HTTP/2.
func isWholeConn(nc net.Conn) bool {
	switch c := nc.(type) {
	case *bufferedConn:
		return c.whole
	case *tls.Conn:
		// HTTP/2 chosen by ALPN (serveTLS handed it over at once); an
		// HTTP/1.1 one came from the fast path for one request.
		return c.ConnectionState().NegotiatedProtocol == "h2"
	}
	return false
}

// acmeChallengePrefix is the path of ACME HTTP-01 challenges (RFC 8555
// §8.3), which a redirecting entry point still routes.
const acmeChallengePrefix = "/.well-known/acme-challenge/"

// viaHTTPS reports whether a trusted proxy in front (a load balancer that
// terminates TLS) says the client came over https: no redirect then, or
// the client would loop.
func (s *Server) viaHTTPS(r *http.Request) bool {
	if len(s.h.trusted) == 0 || !isTrusted(peerHost(r.RemoteAddr), s.h.trusted) {
		return false
	}
	proto := r.Header.Values("X-Forwarded-Proto")
	return len(proto) > 0 && strings.EqualFold(strings.TrimSpace(proto[len(proto)-1]), "https")
}

// isACMEChallenge reports whether r asks for an ACME challenge: its path,
// cleaned as routing cleans it, is under acmeChallengePrefix (so that
// "/.well-known/acme-challenge/../../admin" is redirected like "/admin").
func isACMEChallenge(r *http.Request) bool {
	path, _, ok := normalizePath(r.URL.Path, r.URL.RawPath)
	return ok && strings.HasPrefix(path, acmeChallengePrefix)
}

// redirectHTTPS answers 308 to the request's target on https at
// RedirectPort: the same host (without its port) and target. A request
// without a host has nowhere to go: 400.
func (s *Server) redirectHTTPS(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "" {
		http.Error(w, "400 Bad Request: no Host to redirect to", http.StatusBadRequest)
		return
	}
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]" // IPv6
	}
	if s.cfg.RedirectPort != 443 {
		host = net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(s.cfg.RedirectPort))
	}
	target := r.URL.RequestURI()
	if r.URL.Path == "" || r.URL.Path[0] != '/' {
		target = "/" // an asterisk-form or authority-form target
	}
	w.Header().Set("Location", "https://"+host+target)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusPermanentRedirect)
}

// guardedBody is a request body on the net/http side (serveHTTP).
type guardedBody struct {
	src      io.ReadCloser
	req      *http.Request
	rc       *http.ResponseController
	start    time.Time
	timeout  time.Duration
	rate     int64 // bytes per second; 0: no rate rule, ReadTimeout only
	max      time.Duration
	n        int64     // bytes read
	deadline time.Time // the read deadline set, zero before the first read
	// mu guards rc against the handler's end: the transport may still
	// read the body (on its own goroutine) after the handler returned,
	// when net/http's response writer must no longer be used.
	mu   sync.Mutex
	done bool // the handler returned: rc is not used any more
}

// setReadDeadline sets the connection's read deadline through rc while
// the handler runs.
func (b *guardedBody) setReadDeadline(t time.Time) {
	b.mu.Lock()
	if !b.done {
		_ = b.rc.SetReadDeadline(t)
	}
	b.mu.Unlock()
}

// handlerDone marks the handler's end (serveHTTP).
func (b *guardedBody) handlerDone() {
	b.mu.Lock()
	b.done = true
	b.mu.Unlock()
}

// Read reads the body under a read deadline that allows BodyTimeout plus
// the time MinBodyRate takes for the bytes read so far. The deadline is
// moved only when it is less than half a BodyTimeout ahead, so that a
// quick body sets it about once, and it is cleared at the body's end:
// net/http's watch for the client going away reads the connection after
// the body, and must not time out while the backend answers.
func (b *guardedBody) Read(p []byte) (int, error) {
	if b.rate <= 0 {
		if b.max > 0 && b.deadline.IsZero() {
			b.deadline = b.start.Add(b.max)
			b.setReadDeadline(b.deadline)
		}
	} else if now := time.Now(); b.deadline.Sub(now) < b.timeout/2 {
		allowed := b.timeout + time.Duration(float64(b.n)/float64(b.rate)*float64(time.Second))
		if b.max > 0 && allowed > b.max {
			allowed = b.max // ReadTimeout bounds the whole request
		}
		b.deadline = b.start.Add(allowed)
		b.setReadDeadline(b.deadline)
	}
	n, err := b.src.Read(p)
	b.n += int64(n)
	if err == io.EOF {
		b.setReadDeadline(time.Time{})
		if len(b.req.Trailer) > 0 {
			// net/http fills the trailer map when the body ends, before
			// the transport writes the trailers.
			dropForbiddenTrailers(b.req.Trailer)
		}
	}
	return n, err
}

func (b *guardedBody) Close() error { return b.src.Close() }

// dropForbiddenTrailers removes the trailer fields a recipient must not
// act on (RFC 9110 §6.5.1): framing, routing, authentication, request
// modifiers and content metadata, and the hop-by-hop and forwarding
// fields. A backend that merges trailers into the header would otherwise
// take a Content-Length, Host or X-Forwarded-For from the client.
func dropForbiddenTrailers(t http.Header) {
	for name := range t {
		if forbiddenTrailer[http.CanonicalHeaderKey(name)] {
			delete(t, name)
		}
	}
}

var forbiddenTrailer = func() map[string]bool {
	m := map[string]bool{}
	for _, name := range []string{
		"Content-Length", "Transfer-Encoding", "Host", "Trailer", "Te",
		"Connection", "Keep-Alive", "Proxy-Connection", "Upgrade",
		"Content-Encoding", "Content-Type", "Content-Range", "Content-Location",
		"Authorization", "Proxy-Authorization", "Proxy-Authenticate", "Cookie", "Set-Cookie",
		"Expect", "Max-Forwards", "Cache-Control", "Pragma", "Range",
		"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range",
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
		"X-Forwarded-Prefix", "X-Real-Ip",
	} {
		m[name] = true
	}
	return m
}()

// handoffListener is the net.Listener of the net/http server: it yields
// the connections the fast path hands over.
type handoffListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newHandoffListener() *handoffListener {
	return &handoffListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoffListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) close() { l.once.Do(func() { close(l.done) }) }

func (l *handoffListener) Close() error { l.close(); return nil }

func (l *handoffListener) Addr() net.Addr { return handoffAddr{} }

type handoffAddr struct{}

func (handoffAddr) Network() string { return "tcp" }
func (handoffAddr) String() string  { return "zkgate-handoff" }

// bufferedConn is a connection whose first bytes were already read into
// unread: net/http reads them first.
type bufferedConn struct {
	net.Conn
	unread []byte
	// whole: net/http serves the connection for its whole life (an h2c
	// connection), not one handed-over request.
	whole bool
}

// CloseWrite half-closes the connection, as net/http does before closing
// one it answered with an error, so that the client reads the answer
// rather than a reset.
func (c *bufferedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	if len(c.unread) > 0 {
		n := copy(p, c.unread)
		c.unread = c.unread[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"time"
)

// Transport is the HTTP/1.1 transport of one service. Plain requests
// without a body (the bulk of proxied traffic) take a lean path: the
// request is written and the response read on the calling goroutine over a
// pooled keep-alive connection, with no reader or writer goroutine per
// connection and no channel hand-offs. Everything else — requests with a
// body, upgrades (WebSockets), Expect: 100-continue, trailers, other
// schemes — goes through a standard *http.Transport with the same
// settings. Both keep their own connection pools.
//
// A Transport is safe for concurrent use. Share one per service across
// routes and reloads: it holds the keep-alive connections.
type Transport struct {
	cfg    TransportConfig
	dialer net.Dialer
	std    *http.Transport

	mu    sync.Mutex
	pools map[string]*hostPool
}

// errServerClosedConn marks an endpoint that closed the connection before
// its response was complete.
var errServerClosedConn = errors.New("proxy: upstream closed the connection before answering")

// timeoutError is the error of an endpoint that sent no response headers
// within TransportConfig.ResponseHeaderTimeout.
type timeoutError struct{ addr string }

func (e *timeoutError) Error() string {
	return "proxy: timeout awaiting response headers from " + e.addr
}
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

// Std returns the standard transport that serves what the lean path does
// not.
func (t *Transport) Std() *http.Transport { return t.std }

// CloseIdleConnections closes every idle keep-alive connection, of both
// paths.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	pools := make([]*hostPool, 0, len(t.pools))
	for _, p := range t.pools {
		pools = append(pools, p)
	}
	t.mu.Unlock()
	for _, p := range pools {
		p.closeIdle()
	}
	t.std.CloseIdleConnections()
}

// RoundTrip sends req and returns the response, like http.Transport.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !leanable(req) {
		return t.std.RoundTrip(req)
	}
	ctx := req.Context()
	addr := req.URL.Host
	if !strings.Contains(addr, ":") {
		addr += ":80"
	}
	p := t.pool(addr)
	c, err := p.get(ctx)
	if err != nil {
		return nil, err
	}
	res, err := c.roundTrip(req)
	if err == nil || !c.reused || !shouldRetryStale(req, err) || ctx.Err() != nil {
		return res, err
	}
	// A kept-alive connection the endpoint had closed: nothing was
	// processed, so try once more on a fresh one (net/http's rule).
	if c, err = t.dial(ctx, p); err != nil {
		return nil, err
	}
	return c.roundTrip(req)
}

// leanable reports whether req can take the lean path: plain HTTP, no
// body, no protocol switch, no 100-continue and no trailers.
func leanable(req *http.Request) bool {
	if req.URL.Scheme != "http" || req.Method == http.MethodConnect {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0 {
		return false
	}
	if req.ContentLength != 0 || len(req.TransferEncoding) > 0 || len(req.Trailer) > 0 {
		return false
	}
	h := req.Header
	return h["Upgrade"] == nil && h["Expect"] == nil && h["Connection"] == nil
}

// staleError marks a failure on a reused connection before any byte of the
// response arrived: the endpoint closed the idle connection.
type staleError struct {
	err          error
	wroteNothing bool
}

func (e *staleError) Error() string { return e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }

// shouldRetryStale applies net/http's rule to a failure on a reused
// connection: retry when nothing was written, or when the endpoint closed
// the connection without answering and the request may be sent twice.
func shouldRetryStale(req *http.Request, err error) bool {
	var se *staleError
	if !errors.As(err, &se) {
		return false
	}
	if se.wroteNothing {
		return true // the lean path has no body to rewind
	}
	return isReplayable(req)
}

func (t *Transport) pool(addr string) *hostPool {
	t.mu.Lock()
	p := t.pools[addr]
	if p == nil {
		p = &hostPool{t: t, addr: addr}
		t.pools[addr] = p
	}
	t.mu.Unlock()
	return p
}

// dial opens a connection to addr. Its errors are the dialer's
// *net.OpError with Op "dial", so that the proxy classifies them as connect
// failures.
func (t *Transport) dial(ctx context.Context, p *hostPool) (*upConn, error) {
	nc, err := t.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	return newUpConn(nc, p), nil
}

// dialBy opens a connection to p's address, failing at deadline (zero:
// the dial timeout alone).
func (t *Transport) dialBy(p *hostPool, deadline time.Time) (*upConn, error) {
	d := t.dialer
	d.Deadline = deadline
	nc, err := d.Dial("tcp", p.addr)
	if err != nil {
		return nil, err
	}
	return newUpConn(nc, p), nil
}

// roundTrip writes req on c and reads the response headers. On success the
// connection belongs to the response body until it is read to its end or
// closed; on failure c is closed.
func (c *upConn) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	t := c.pool.t
	c.nread, c.nwritten = 0, 0
	stop := context.AfterFunc(ctx, c.abort)
	if err := writeRequest(c.bw, req); err == nil {
		err = c.bw.Flush()
		if err != nil {
			return nil, c.fail(req, stop, err)
		}
	} else {
		return nil, c.fail(req, stop, err)
	}
	if t.cfg.ResponseHeaderTimeout > 0 {
		c.setDeadline(time.Now().Add(t.cfg.ResponseHeaderTimeout), 0, true)
	} else {
		c.clearDeadline()
	}
	var res *http.Response
	for {
		var err error
		res, err = http.ReadResponse(c.br, req)
		if err != nil {
			return nil, c.fail(req, stop, err)
		}
		if res.StatusCode >= 200 {
			break
		}
		if res.StatusCode == http.StatusSwitchingProtocols {
			return nil, c.fail(req, stop, fmt.Errorf("proxy: %s switched protocols unasked", c.pool.addr))
		}
		// An informational answer (103 Early Hints): pass it on and read
		// the final one.
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(res.StatusCode, textproto.MIMEHeader(res.Header)); err != nil {
				return nil, c.fail(req, stop, err)
			}
		} else if ex := exchangeFrom(ctx); ex != nil && ex.direct {
			// The direct path sets no trace: the answer is passed on
			// here, on the request's goroutine.
			ex.pass1xx(res.StatusCode, res.Header)
		}
	}
	c.clearDeadline()
	keep := !res.Close && !req.Close
	if res.Body == http.NoBody {
		c.release(stop, keep)
		return res, nil
	}
	b := &leanBody{c: c, src: res.Body, stop: stop, keep: keep}
	res.Body = b
	return res, nil
}

// fail closes c after a failed exchange and returns the error to report:
// the context's when it was cancelled, a timeoutError when the endpoint
// did not answer in time, a staleError when a reused connection failed
// before any response byte.
func (c *upConn) fail(req *http.Request, stop func() bool, err error) error {
	stop()
	c.close()
	ctx := req.Context()
	if ctx.Err() != nil {
		return fmt.Errorf("proxy: request to %s: %w", c.pool.addr, context.Cause(ctx))
	}
	var ne net.Error
	if c.nwritten > 0 && errors.As(err, &ne) && ne.Timeout() {
		return &timeoutError{addr: c.pool.addr}
	}
	if c.reused && c.nread == 0 {
		return &staleError{err: fmt.Errorf("proxy: request to %s: %w", c.pool.addr, err), wroteNothing: c.nwritten == 0}
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = fmt.Errorf("%w: %w", errServerClosedConn, err)
	}
	return fmt.Errorf("proxy: request to %s: %w", c.pool.addr, err)
}

// leanBody is a response body read from a pooled connection: at its end
// the connection goes back to the pool (when the response allows it), and
// closing it early closes the connection.
type leanBody struct {
	c    *upConn
	src  io.ReadCloser
	stop func() bool
	keep bool
	done bool
}

func (b *leanBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.src.Read(p)
	if err == io.EOF {
		b.done = true
		b.c.release(b.stop, b.keep)
	} else if err != nil {
		b.done = true
		b.c.release(b.stop, false)
	}
	return n, err
}

func (b *leanBody) Close() error {
	if !b.done {
		b.done = true
		b.c.release(b.stop, false)
	}
	return nil
}

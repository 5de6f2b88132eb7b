package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"
)

// TransportConfig tunes the transport of one service. Zero fields take the
// defaults given.
type TransportConfig struct {
	// DialTimeout bounds connecting to an endpoint. Default 5s.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds writing the request (its head, and a
	// body the fast path holds whole) and the wait for the response
	// headers. Default 0: no limit (Route.Timeout may bound it).
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout closes keep-alive connections idle this long.
	// Default 90s.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost is the number of idle keep-alive connections
	// kept per endpoint; it should cover the concurrency a gateway sends
	// to one endpoint, or connections are closed and re-dialled under
	// load. Default 256.
	MaxIdleConnsPerHost int
	// ExpectContinueTimeout is how long a request with "Expect:
	// 100-continue" waits for the endpoint's 100 Continue before sending
	// its body anyway. Default 1s.
	ExpectContinueTimeout time.Duration
	// Protocol is what is spoken to the endpoints: UpstreamHTTP1 (the
	// fast path's), UpstreamH2C or UpstreamH2. Default UpstreamHTTP1.
	Protocol UpstreamProtocol
	// TLS, when not nil, is the client TLS configuration towards the
	// endpoints (UpstreamH2 requires it); ServerName empty means the
	// endpoint's host.
	TLS *tls.Config
	// StdTransportOnly sends every request net/http serves through
	// net/http's transport, HTTP/2 clients' bodiless ones too (see
	// roundTripH1). The differential tests set it for their reference.
	StdTransportOnly bool
}

// UpstreamProtocol is the protocol spoken to a service's endpoints.
type UpstreamProtocol int

const (
	// UpstreamHTTP1 is HTTP/1.1 (over TLS when TransportConfig.TLS is
	// set).
	UpstreamHTTP1 UpstreamProtocol = iota
	// UpstreamH2C is HTTP/2 without TLS, with prior knowledge.
	UpstreamH2C
	// UpstreamH2 is HTTP/2 over TLS, which the endpoint must choose by
	// ALPN.
	UpstreamH2
)

// Transport defaults.
const (
	DefaultDialTimeout           = 5 * time.Second
	DefaultIdleConnTimeout       = 90 * time.Second
	DefaultMaxIdleConnsPerHost   = 256
	DefaultExpectContinueTimeout = time.Second
)

// NewTransport returns the HTTP/1.1 transport of one service (see
// Transport). Share it between every route to the service and across
// reloads: it holds the keep-alive connection pools. It never uses proxies
// from the environment and never compresses or decompresses: bodies pass
// through as they are.
func NewTransport(cfg TransportConfig) *Transport {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.IdleConnTimeout <= 0 {
		cfg.IdleConnTimeout = DefaultIdleConnTimeout
	}
	if cfg.MaxIdleConnsPerHost <= 0 {
		cfg.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if cfg.ExpectContinueTimeout <= 0 {
		cfg.ExpectContinueTimeout = DefaultExpectContinueTimeout
	}
	t := &Transport{
		cfg:    cfg,
		dialer: net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second},
		pools:  make(map[string]*hostPool),
	}
	t.std = &http.Transport{
		Proxy:                 nil,
		DialContext:           t.dialer.DialContext,
		MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:       cfg.IdleConnTimeout,
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout: cfg.ExpectContinueTimeout,
		// A proxy must not add Accept-Encoding and transparently
		// decompress: the client asked for what it can read.
		DisableCompression:  true,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	p := new(http.Protocols)
	switch cfg.Protocol {
	case UpstreamH2C:
		p.SetUnencryptedHTTP2(true)
	case UpstreamH2:
		p.SetHTTP2(true)
	default:
		p.SetHTTP1(true)
	}
	t.std.Protocols = p
	if cfg.TLS != nil {
		c := cfg.TLS.Clone()
		if cfg.Protocol == UpstreamH2 {
			c.NextProtos = []string{"h2"}
		} else {
			c.NextProtos = nil
		}
		t.std.TLSClientConfig = c
	}
	if p.HTTP2() || p.UnencryptedHTTP2() {
		// A connection carries many streams: ping an idle one so that a
		// dead endpoint is noticed before a request waits on it.
		t.std.HTTP2 = &http.HTTP2Config{SendPingTimeout: 15 * time.Second, PingTimeout: 15 * time.Second}
		// and the frames of its streams go out together (coalesce.go).
		t.std.DialContext = t.dialCoalescing
	}
	return t
}

// dialCoalescing dials an HTTP/2 endpoint: net/http's HTTP/2 client writes
// the frames of many streams through a coalescingConn, beneath TLS when
// the service has it.
func (t *Transport) dialCoalescing(ctx context.Context, network, addr string) (net.Conn, error) {
	nc, err := t.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	wc := newCoalescingConn(nc)
	wc.start()
	return wc, nil
}

// fast reports whether the fast path may write to t's endpoints: plain
// HTTP/1.1 only.
func (t *Transport) fast() bool { return t.cfg.Protocol == UpstreamHTTP1 && t.cfg.TLS == nil }

// scheme is the URL scheme of requests to t's endpoints.
func (t *Transport) scheme() string {
	if t.cfg.TLS != nil {
		return "https"
	}
	return "http"
}

// copyBufferSize is the size of the buffers ReverseProxy copies bodies with.
const copyBufferSize = 32 << 10

// sharedBufferPool is every route's ReverseProxy.BufferPool.
var sharedBufferPool = &bufferPool{}

// bufferPool is an httputil.BufferPool of 32 KiB buffers. sync.Pool holds
// pointers (*[]byte) so that Put does not allocate a slice header; emptied
// holders are pooled too.
type bufferPool struct {
	bufs, holders sync.Pool
}

func (p *bufferPool) Get() []byte {
	if h, ok := p.bufs.Get().(*[]byte); ok {
		b := *h
		*h = nil
		p.holders.Put(h)
		return b
	}
	return make([]byte, copyBufferSize)
}

func (p *bufferPool) Put(b []byte) {
	if cap(b) < copyBufferSize {
		return
	}
	h, _ := p.holders.Get().(*[]byte)
	if h == nil {
		h = new([]byte)
	}
	*h = b[:copyBufferSize]
	p.bufs.Put(h)
}

// Transport is the upstream side of one service. The fast path writes its
// requests and reads the answers itself over the keep-alive connections
// pooled here (hostPool, one per endpoint address); every other request —
// those net/http serves: bodies streamed, upgrades, 100-continue, trailers —
// goes through a standard *http.Transport with the same settings, which
// keeps its own pool. RoundTrip is that transport's.
//
// A Transport is safe for concurrent use. Share one per service across
// routes and reloads: it holds the keep-alive connections.
type Transport struct {
	cfg    TransportConfig
	dialer net.Dialer
	std    *http.Transport

	mu      sync.Mutex
	pools   map[string]*hostPool
	members map[string]struct{} // the service's endpoints (Retain); nil: not known
}

// Std returns the standard transport that serves what the fast path does
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

// RoundTrip sends req: a bodiless HTTP/2 request to a plain HTTP/1.1
// endpoint over the fast path's pool (roundTripH1), any other through the
// standard transport.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if uri, ok := t.h1Target(req); ok {
		return t.roundTripH1(req, uri)
	}
	return t.std.RoundTrip(req)
}

package proxy

import (
	"net"
	"net/http"
	"sync"
	"time"
)

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

	mu    sync.Mutex
	pools map[string]*hostPool
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

// RoundTrip sends req through the standard transport.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.std.RoundTrip(req)
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

// dialBy opens a connection to p's address, failing at deadline (zero:
// the dial timeout alone). Its errors are the dialer's *net.OpError with
// Op "dial", which the proxy classifies as connect failures.
func (t *Transport) dialBy(p *hostPool, deadline time.Time) (*upConn, error) {
	d := t.dialer
	d.Deadline = deadline
	nc, err := d.Dial("tcp", p.addr)
	if err != nil {
		return nil, err
	}
	return newUpConn(nc, p), nil
}

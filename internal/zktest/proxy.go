package zktest

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a TCP proxy on a free loopback port in front of one ZooKeeper
// address. Clients connect to Addr. Cut closes every open connection and
// refuses new ones (reset at once) until Restore: the clients behind it see
// the server vanish while the server sees them vanish. Cutting for longer than
// a client's session timeout makes the server expire that session.
//
// The proxy also notes each session established through it (from the
// server's connect response), so ExpireSessions can expire exactly the
// sessions of the clients behind it.
type Proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu       sync.Mutex
	cut      bool
	closed   bool
	conns    map[net.Conn]struct{}
	sessions map[int64][]byte
}

// NewProxy starts a proxy in front of target ("host:port") and closes it when
// the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("zktest: proxy for %s: listen: %v", target, err)
	}
	p := &Proxy{
		target:   target,
		ln:       ln,
		conns:    make(map[net.Conn]struct{}),
		sessions: make(map[int64][]byte),
	}
	p.wg.Go(p.acceptLoop)
	t.Cleanup(p.close)
	return p
}

// Addr returns the address clients connect to, "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every proxied connection and makes the proxy reset new ones
// until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		reset(c)
	}
}

// Restore lets connections through again after Cut.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// ExpireSessions expires, on the server, every session that was established
// through the proxy and is still alive, and returns how many it expired. It
// talks to the target directly, so it works while the proxy is cut, and it
// returns once the server has expired them (see ExpireSession).
func (p *Proxy) ExpireSessions(t testing.TB) int {
	t.Helper()
	p.mu.Lock()
	sessions := make(map[int64][]byte, len(p.sessions))
	for id, pw := range p.sessions {
		sessions[id] = pw
	}
	p.mu.Unlock()
	n := 0
	for id, pw := range sessions {
		err := expireSession(p.target, id, pw)
		switch {
		case err == nil:
			n++
		case !errors.Is(err, errSessionInvalid):
			t.Fatalf("zktest: expire session 0x%x on %s: %v", id, p.target, err)
		}
		p.mu.Lock()
		delete(p.sessions, id)
		p.mu.Unlock()
	}
	return n
}

func (p *Proxy) acceptLoop() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(c) {
			reset(c)
			continue
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

// track registers c, unless the proxy is cut or closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		p.untrack(client)
		reset(client)
		return
	}
	if !p.track(server) {
		p.untrack(client)
		reset(client)
		reset(server)
		return
	}
	defer p.untrack(client, server)

	// An orderly end on either side ends both orderly; only Cut and
	// close reset, since a reset discards data the peer has not read yet.
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(server, client)
		_ = server.Close()
		_ = client.Close()
	})
	wg.Go(func() {
		sn := sniffer{onSession: p.remember}
		buf := make([]byte, 32<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 {
				sn.feed(buf[:n])
				if _, werr := client.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		_ = client.Close()
		_ = server.Close()
	})
	wg.Wait()
}

func (p *Proxy) remember(sessionID int64, password []byte) {
	p.mu.Lock()
	p.sessions[sessionID] = password
	p.mu.Unlock()
	rememberSession(sessionID, password)
}

func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		reset(c)
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

// reset closes c with a TCP reset rather than an orderly FIN, as a dead
// server or a broken network would.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

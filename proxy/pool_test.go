package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// poolServer is a TCP listener whose accepted connections are held open
// (and counted) until the test ends.
func poolServer(t *testing.T) (string, chan net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	t.Cleanup(func() {
		l.Close()
		for {
			select {
			case c := <-accepted:
				c.Close()
			default:
				return
			}
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	return l.Addr().String(), accepted
}

func testPool(t *testing.T, cfg TransportConfig, addr string) *hostPool {
	t.Helper()
	tr := NewTransport(cfg)
	t.Cleanup(tr.CloseIdleConnections)
	return tr.pool(addr)
}

func dialPool(t *testing.T, p *hostPool) *upConn {
	t.Helper()
	c, err := p.t.dialBy(p, time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// An idle connection is closed by the sweep once IdleConnTimeout passed,
// and never handed out after it.
func TestPoolIdleTimeout(t *testing.T) {
	addr, _ := poolServer(t)
	p := testPool(t, TransportConfig{IdleConnTimeout: 30 * time.Millisecond}, addr)
	dialPool(t, p).release(true)
	waitFor(t, "the idle connection to be swept", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.idle) == 0 && !p.sweeping
	})
	if c := p.reusable(time.Now()); c != nil {
		t.Error("an expired connection was handed out")
	}
	c := dialPool(t, p)
	c.release(true)
	if got := p.reusable(time.Now().Add(time.Second)); got != nil {
		t.Error("a connection past its idle timeout was handed out")
	}
}

// The pool keeps at most MaxIdleConnsPerHost connections; the rest are
// closed on release.
func TestPoolMaxIdlePerHost(t *testing.T) {
	addr, _ := poolServer(t)
	p := testPool(t, TransportConfig{MaxIdleConnsPerHost: 1}, addr)
	a, b, c := dialPool(t, p), dialPool(t, p), dialPool(t, p)
	a.release(true)
	b.release(true)
	c.release(true)
	p.mu.Lock()
	n := len(p.idle)
	p.mu.Unlock()
	if n != 1 {
		t.Errorf("%d idle connections kept, want 1", n)
	}
}

// A connection released with keep false, or with bytes left unread, is
// closed rather than pooled; one the endpoint closed or wrote to while it
// was idle is closed rather than handed out (the stray-response rule).
func TestPoolReuseRules(t *testing.T) {
	addr, accepted := poolServer(t)
	p := testPool(t, TransportConfig{}, addr)
	dialPool(t, p).release(false)
	<-accepted
	if c := p.reusable(time.Now()); c != nil {
		t.Fatal("a connection released with keep false was pooled")
	}

	// An idle connection the endpoint wrote to or closed is never handed
	// out.
	for _, tc := range []struct {
		what string
		do   func(peer net.Conn)
	}{
		{"a stray response", func(peer net.Conn) { _, _ = peer.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")) }},
		{"the endpoint's FIN", func(peer net.Conn) { peer.Close() }},
	} {
		dialPool(t, p).release(true)
		tc.do(<-accepted)
		waitFor(t, tc.what+" to arrive", func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return len(p.idle) == 1 && p.idle[0].peerClosed()
		})
		if got := p.reusable(time.Now()); got != nil {
			t.Errorf("a connection with %s on it was handed out", tc.what)
		}
	}

	c := dialPool(t, p)
	<-accepted
	c.release(true)
	if got := p.reusable(time.Now()); got != c {
		t.Error("a healthy idle connection was not reused")
	} else if !got.reused {
		t.Error("a reused connection is not marked reused")
	}
	got := p.reusable(time.Now())
	if got != nil {
		t.Error("the pool handed out a connection twice")
	}
	c.close()
}

// deadlineConn is a net.Conn recording the deadlines set on it.
type deadlineConn struct {
	net.Conn
	set []time.Time
}

// SetDeadline records t: upConn sets its reads' and writes' deadline
// together.
func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.set = append(c.set, t)
	return nil
}

// A coarse response-header deadline may fire late, never early: whatever
// deadline is kept or set lies within a sixteenth of the timeout after the
// wanted one.
func TestUpConnCoarseDeadlineNeverEarly(t *testing.T) {
	const timeout = 16 * time.Second
	dc := &deadlineConn{}
	c := &upConn{nc: dc}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for ms := 0; ms < 10000; ms += 7 {
		want := start.Add(time.Duration(ms) * time.Millisecond).Add(timeout)
		c.setDeadline(want, timeout, false)
		if c.dl.Before(want) || c.dl.Sub(want) > timeout/16 {
			t.Fatalf("request at +%dms: deadline %s after the wanted one, want 0 to %s", ms, c.dl.Sub(want), timeout/16)
		}
	}
	// One deadline serves about a sixteenth of the timeout's worth of
	// requests: 10 s of them with a 1 s slack take about 10 updates.
	if n := len(dc.set); n < 5 || n > 15 {
		t.Errorf("%d deadline updates for 10s of requests, want about 10", n)
	}
	c.setDeadline(start.Add(time.Hour), timeout, true)
	if !c.dl.Equal(start.Add(time.Hour)) {
		t.Errorf("an exact deadline was moved to %s", c.dl)
	}
}

// begin: under the defaults (a 15 s response-header timeout, a 30 s route
// timeout) the header deadline binds and is kept across requests, as
// setDeadline keeps a coarse one, but never passes the route's deadline;
// when its slack would pass it, the deadline is exact, at the earlier of
// the two.
func TestUpConnBeginCoarseUnderRouteDeadline(t *testing.T) {
	const rht, route = 15 * time.Second, 30 * time.Second
	dc := &deadlineConn{}
	c := &upConn{nc: dc, pool: &hostPool{t: &Transport{cfg: TransportConfig{ResponseHeaderTimeout: rht}}}}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for ms := 0; ms < 10000; ms += 7 {
		now := start.Add(time.Duration(ms) * time.Millisecond)
		c.begin(now, now.Add(route))
		want := now.Add(rht)
		if c.dl.Before(want) || c.dl.Sub(want) > rht/16 || c.dl.After(now.Add(route)) {
			t.Fatalf("request at +%dms: deadline %s after now, want %s to %s", ms, c.dl.Sub(now), rht, rht+rht/16)
		}
	}
	if n := len(dc.set); n < 5 || n > 15 {
		t.Errorf("%d deadline updates for 10s of requests, want about 10", n)
	}
	for _, tc := range []struct{ route, want time.Duration }{
		{rht, rht},          // the same: exact
		{rht + rht/32, rht}, // the slack would pass the route's
		{rht / 2, rht / 2},  // the route's is the earlier
		{rht + rht/8, -1},   // room for the slack: coarse
		{0, -1},             // no route deadline: coarse
	} {
		c := &upConn{nc: &deadlineConn{}, pool: c.pool}
		now := start
		var deadline time.Time
		if tc.route > 0 {
			deadline = now.Add(tc.route)
		}
		c.begin(now, deadline)
		got := c.dl.Sub(now)
		if tc.want >= 0 && got != tc.want {
			t.Errorf("route timeout %s: deadline at +%s, want exactly +%s", tc.route, got, tc.want)
		}
		if tc.want < 0 && (got < rht || got > rht+rht/16 || (!deadline.IsZero() && c.dl.After(deadline))) {
			t.Errorf("route timeout %s: deadline at +%s, want +%s to +%s, not past the route's", tc.route, got, rht, rht+rht/16)
		}
	}
}

// A cconn keeps its peer's IP as a part of its remote address: whatever
// the address, peer gives what peerHost gives, and the record stays in
// its 160-byte size class.
func TestCconnPeerAndSize(t *testing.T) {
	for _, addr := range []string{
		"10.0.0.7:51234", "[::1]:80", "[fe80::1%eth0]:8080", "[2001:db8::1]:1",
		"127.0.0.1:0", "", "@", "/run/zkgate.sock", "host-without-port", "[::1]",
		"[" + strings.Repeat("a", 300) + "]:1",
	} {
		cc := &cconn{}
		cc.setAddr(addr)
		if got := cc.addr(); got != addr {
			t.Errorf("addr = %q, want %q", got, addr)
		}
		cc.setPeer()
		if got, want := cc.peer(), peerHost(addr); got != want && !(want != "" && len(want) > 255 && got == "") {
			t.Errorf("peer of %q = %q, want %q", addr, got, want)
		}
	}
	if n := unsafe.Sizeof(cconn{}); n > 160 {
		t.Errorf("a cconn takes %d bytes, past the 160-byte size class", n)
	}
}

// TestUpConnAbortOutlastsDeadlines: abort (a client gone, the server
// closing) interrupts the connection's I/O with a deadline in the past;
// a deadline the exchange sets or clears afterwards, or while abort runs
// (the relay lifting the response-header deadline before it waits for the
// body), must not undo it, or the read would wait on a silent endpoint for
// ever.
func TestUpConnAbortOutlastsDeadlines(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after func(c *upConn)
	}{
		{"clear", func(c *upConn) { c.clearDeadline() }},
		{"set", func(c *upConn) { c.setDeadline(time.Now().Add(time.Hour), time.Hour, true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, _ := poolServer(t)
			p := testPool(t, TransportConfig{}, addr)
			c := dialPool(t, p)
			c.setDeadline(time.Now().Add(time.Hour), time.Hour, true)
			c.abort()
			tc.after(c)
			read := make(chan error, 1)
			go func() {
				_, err := c.Read(make([]byte, 1))
				read <- err
			}()
			select {
			case err := <-read:
				if !isTimeout(err) {
					t.Fatalf("read of an aborted connection: %v, want its deadline", err)
				}
			case <-time.After(diffDeadline):
				c.close()
				t.Fatal("a read of an aborted connection waited: its deadline was moved")
			}
		})
	}
}

// When an endpoint leaves the service (Transport.Retain), its idle
// connections are closed and one in use is closed when its request ends,
// not pooled; the other endpoints' pools are kept, the departed endpoint's
// pool leaves the Transport, and a request that still goes to it gets a
// retired pool of its own, not a pool that would keep its connection.
func TestPoolRetiredWhenEndpointLeaves(t *testing.T) {
	addrA, acceptedA := poolServer(t)
	addrB, acceptedB := poolServer(t)
	tr := NewTransport(TransportConfig{})
	t.Cleanup(tr.CloseIdleConnections)
	pA, pB := tr.endpointPool(addrA), tr.endpointPool(addrB)
	noPort := tr.endpointPool("127.0.0.1") // kept as 127.0.0.1:80

	dialPool(t, pA).release(true)
	idleA := <-acceptedA
	busy := dialPool(t, pA)
	busyA := <-acceptedA
	dialPool(t, pB).release(true)
	idleB := <-acceptedB

	tr.Retain([]string{addrB, "127.0.0.1"})

	if !closedByPeer(t, idleA) {
		t.Error("the departed endpoint's idle connection was not closed")
	}
	busy.release(true)
	if !closedByPeer(t, busyA) {
		t.Error("a connection to the departed endpoint, in use when it left, was not closed at its release")
	}
	if c := pA.reusable(time.Now()); c != nil {
		t.Error("the retired pool handed out a connection")
	}
	_ = idleB.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := idleB.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the remaining endpoint's idle connection: %v, want it open", err)
	}
	if c := pB.reusable(time.Now()); c == nil {
		t.Error("the remaining endpoint's idle connection left its pool")
	}
	tr.mu.Lock()
	_, hasA := tr.pools[addrA]
	n := len(tr.pools)
	tr.mu.Unlock()
	if hasA || n != 2 {
		t.Errorf("pools after the change: %d, the departed one's kept: %v; want 2 without it", n, hasA)
	}
	if tr.endpointPool("127.0.0.1") != noPort {
		t.Error("an endpoint named without a port lost its pool")
	}

	// A request that picked A just before it left.
	late := tr.endpointPool(addrA)
	if late == pA || !late.retired {
		t.Fatal("a request to the departed address got a pool that keeps connections")
	}
	c := dialPool(t, late)
	peer := <-acceptedA
	c.release(true)
	if !closedByPeer(t, peer) {
		t.Error("a connection to the departed address, dialled after it left, was kept at its release")
	}
	tr.mu.Lock()
	_, hasA = tr.pools[addrA]
	tr.mu.Unlock()
	if hasA {
		t.Error("a request to the departed address put a pool for it back")
	}
}

// closedByPeer reports whether c's peer closed it, waiting up to 5 s.
func closedByPeer(t *testing.T, c net.Conn) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return errors.Is(err, io.EOF)
}

// Close, for a service replaced or stopped, closes the idle connections of
// both sides now and the fast path's connections in use at their release.
func TestTransportCloseRetiresEverything(t *testing.T) {
	var open atomic.Int64
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	addr, accepted := poolServer(t)
	tr := NewTransport(TransportConfig{})
	p := tr.endpointPool(addr)
	dialPool(t, p).release(true)
	idle := <-accepted
	busy := dialPool(t, p)
	busyPeer := <-accepted
	resp, err := tr.Std().RoundTrip(httptest.NewRequest(http.MethodPost, s.URL+"/", strings.NewReader("x")))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	tr.Close()
	if !closedByPeer(t, idle) {
		t.Error("an idle connection outlived Close")
	}
	busy.release(true)
	if !closedByPeer(t, busyPeer) {
		t.Error("a connection in use at Close was pooled at its release")
	}
	waitFor(t, "net/http's idle connection to close", func() bool { return open.Load() == 0 })
}

// A drained endpoint (SetDraining) keeps no connection: idle ones close at
// once, one in use at its release; back in service, it pools again.
func TestPoolDrainedKeepsNothing(t *testing.T) {
	addr, accepted := poolServer(t)
	tr := NewTransport(TransportConfig{})
	t.Cleanup(tr.CloseIdleConnections)
	p := tr.endpointPool(addr)
	dialPool(t, p).release(true)
	idle := <-accepted
	busy := dialPool(t, p)
	busyPeer := <-accepted

	tr.SetDraining(addr, true)
	if !closedByPeer(t, idle) {
		t.Error("the drained endpoint's idle connection was not closed")
	}
	busy.release(true)
	if !closedByPeer(t, busyPeer) {
		t.Error("a connection in use when its endpoint was drained was pooled at its release")
	}

	tr.SetDraining(addr, false)
	c := dialPool(t, p)
	<-accepted
	c.release(true)
	if got := p.reusable(time.Now()); got != c {
		t.Error("an undrained endpoint's connection was not pooled")
	}
}

package proxy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// connBufferSize is the size of each pooled connection's write buffer: a
// whole request head fits. connReadBufferSize is its read buffer's: a
// 16 KiB body with a response head of up to 4 KiB is read in one system
// call and relayed in one more (the fast path's writev).
const (
	connBufferSize     = 4 << 10
	connReadBufferSize = 20 << 10
)

// errWouldBlock is a read in nonblock mode that found nothing.
var errWouldBlock = errors.New("proxy: nothing to read yet")

// aLongTimeAgo is a deadline in the past, to interrupt a connection's I/O.
var aLongTimeAgo = time.Unix(1, 0)

// upConn is one keep-alive connection of the fast path. It is used by one
// request at a time: from hostPool.reusable or Transport.dialBy until release.
type upConn struct {
	nc   net.Conn
	pool *hostPool
	br   *bufio.Reader
	bw   *bufio.Writer

	reused   bool  // served a request before this one
	nread    int64 // bytes read during the current request
	nwritten int64 // bytes written during the current request
	idleAt   time.Time
	// usedAt, when set (by the fast path, which knows the time), is when
	// the connection's last request started: put takes it as idleAt
	// rather than reading the clock, so the idle timeout counts a little
	// early.
	usedAt time.Time
	// raw, peekFn and the peek fields serve peerClosed.
	raw     syscall.RawConn
	peekFn  func(fd uintptr)
	peekBuf [1]byte
	peekN   int
	peekErr error
	// nonblock makes Read take only what has arrived (sock.readNow).
	nonblock bool
	// await makes Write wait for the answer after writing
	// (sock.writeAwait): see flushRequest.
	await bool
	// inBody: the answer's head is read, and its body relayed; the
	// exchange's deadline does not bound it (liftBodyDeadline).
	inBody bool
	// sock does the reads and writes of a TCP connection (sockio_linux.go);
	// else they go through nc.
	sock sockIO
	// aborted: abort interrupted the connection's I/O (its deadlines are
	// in the past): it is never pooled again.
	aborted atomic.Bool
	// lp is the loop whose pool the connection is of, while it is in a
	// loop (loop_linux.go); waiter the loop's exchange awaiting its
	// answer; marked, that an event came while it was idle there.
	lp     *loop
	waiter *lconn
	marked bool
	hup    bool // the loop saw the endpoint hang up
	// dl is the deadline set on nc, for reads and writes alike (zero:
	// none): the request's write is bounded as the wait for its answer
	// is (what is written under it is a head, or a body held whole in
	// memory), so an endpoint that stops reading cannot hold a request
	// past its timeouts. The fast path moves it only when it would fire
	// before the wanted deadline or more than a sixteenth of the timeout
	// after it, not on every request: each move updates a runtime timer.
	dl time.Time
}

// setDeadline sets the deadline to dl. When exact is false the
// deadline may fire up to a sixteenth of timeout after dl, never before:
// one already set within that window is kept, and a new one is set at its
// end, so that the following requests can keep it too.
func (c *upConn) setDeadline(dl time.Time, timeout time.Duration, exact bool) {
	if dl.IsZero() {
		c.clearDeadline()
		return
	}
	if !exact {
		slack := timeout / 16
		if !c.dl.IsZero() && !c.dl.Before(dl) && c.dl.Sub(dl) <= slack {
			return
		}
		dl = dl.Add(slack)
	}
	c.dl = dl
	c.setNCDeadline(dl)
}

// setNCDeadline sets nc's read and write deadlines to dl (the runtime
// keeps one timer for both when they are equal), unless abort has run:
// its deadline in the past stays then, whichever of the two ran first
// (abort marks the connection before it sets the deadline).
func (c *upConn) setNCDeadline(dl time.Time) {
	_ = c.nc.SetDeadline(dl)
	if c.aborted.Load() {
		_ = c.nc.SetDeadline(aLongTimeAgo)
	}
}

// begin starts an exchange on c at now: its byte counts from zero, and the
// deadline of writing the request and reading the answer's head at the
// earlier of deadline (Route.Timeout's, exact; zero:
// none) and now plus the transport's ResponseHeaderTimeout, which may fire
// a little late (see setDeadline) as long as that stays before deadline:
// so the header timeout's deadline, the one that binds under the defaults
// (15 s against a route's 30 s), moves about once per sixteenth of it
// rather than with every request.
func (c *upConn) begin(now, deadline time.Time) {
	c.nread, c.nwritten, c.inBody = 0, 0, false
	rht := c.pool.t.cfg.ResponseHeaderTimeout
	if rht > 0 {
		hd := now.Add(rht)
		if deadline.IsZero() || hd.Add(rht/16).Before(deadline) {
			c.setDeadline(hd, rht, false)
			return
		}
		if hd.Before(deadline) {
			deadline = hd
		}
	}
	c.setDeadline(deadline, rht, true)
}

// clearDeadline removes the deadline.
func (c *upConn) clearDeadline() {
	if !c.dl.IsZero() {
		c.dl = time.Time{}
		c.setNCDeadline(time.Time{})
	}
}

func newUpConn(nc net.Conn, p *hostPool) *upConn {
	c := &upConn{nc: nc, pool: p}
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
			c.peekFn = c.peek
			if _, plain := nc.(*net.TCPConn); plain {
				// Not a wrapper a custom dialer made, which may count
				// or shape what passes.
				c.sock.init(raw)
			}
		}
	}
	c.br = bufio.NewReaderSize(c, connReadBufferSize)
	c.bw = bufio.NewWriterSize(c, connBufferSize)
	return c
}

// Read reads from the connection, counting bytes: a reused connection that
// failed before any byte arrived was closed by the endpoint while idle. A
// read of the answer's body that the exchange's deadline failed is made
// again without it (liftBodyDeadline).
func (c *upConn) Read(p []byte) (int, error) {
	for {
		var n int
		var err error
		switch {
		case c.nonblock:
			n, err = c.sock.readNow(p)
		case c.sock.ok():
			n, err = c.sock.Read(p)
		default:
			n, err = c.nc.Read(p)
		}
		c.nread += int64(n)
		if c.liftBodyDeadline(n, err) {
			continue
		}
		return n, err
	}
}

// liftBodyDeadline reports whether a read of the answer's body that
// returned n bytes and err was ended by the exchange's deadline, which
// does not bound the body (Route.Timeout), with nothing read: the deadline
// is then lifted, and the read is to be made again. The
// relay lifts it before it waits for the endpoint (flushBeforeWait); a
// body the endpoint has ready, relayed to a client slower than it, never
// makes the relay wait, and would be cut off when the deadline passed.
// An abort's deadline is never lifted.
func (c *upConn) liftBodyDeadline(n int, err error) bool {
	if n != 0 || err == nil || !c.inBody || c.dl.IsZero() || c.aborted.Load() || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	c.clearDeadline()
	return true
}

// Write writes to the connection, counting bytes.
func (c *upConn) Write(p []byte) (int, error) {
	var n int
	var err error
	switch {
	case c.await && c.sock.ok():
		n, err = c.sock.writeAwait(nil, p)
	case c.sock.ok():
		n, err = c.sock.Write(p)
	default:
		n, err = c.nc.Write(p)
	}
	c.nwritten += int64(n)
	return n, err
}

// flushRequest sends the rest of a request buffered in c.bw, which ends
// it: nothing more is written before the answer. On a TCP socket of its
// own (sock), a request sent whole in this one write is followed by the
// wait for the answer, which then starts before the answer can come: the
// read that follows finds it rather than failing once first
// (sockIO.writeAwait). A request part of which went out already (one
// larger than c.bw) may have its answer on the way, whose readiness the
// wait would clear: it is read as usual. So is one without a read
// deadline: bytes an endpoint sent unasked between the pool's peek and the
// wait could leave the wait to the deadline, and there must be one. Nor is
// one written with await false (a loop's, which waits in its own epoll
// set).
func (c *upConn) flushRequest(await bool) error {
	c.await = await && c.awaits()
	err := c.bw.Flush()
	c.await = false
	return err
}

// awaits reports whether the request's last write is followed by the
// wait for the answer (see flushRequest): nothing of it is written yet,
// and a deadline bounds the wait.
func (c *upConn) awaits() bool { return c.nwritten == 0 && !c.dl.IsZero() }

// sendRequest sends a request whose head and body are whole in memory, as
// writing them to c.bw and flushRequest(await) would, without copying them: on a
// TCP socket of its own, head and body go out in one system call from
// where they are (followed by the wait for the answer, as flushRequest's).
func (c *upConn) sendRequest(head, body []byte, await bool) error {
	if !c.sock.ok() || c.bw.Buffered() > 0 {
		_, _ = c.bw.Write(head)
		_, _ = c.bw.Write(body)
		return c.flushRequest(await)
	}
	var n int
	var err error
	if await && c.awaits() {
		n, err = c.sock.writeAwait(head, body)
	} else {
		n, err = c.sock.writeTwo(head, body)
	}
	c.nwritten += int64(n)
	return err
}

// abort interrupts the connection's I/O when the request's context ends
// (the client went away, Route.Timeout expired). It runs on its own
// goroutine (context.AfterFunc); the request's goroutine then fails and
// closes the connection.
func (c *upConn) abort() {
	c.aborted.Store(true)
	_ = c.nc.SetDeadline(aLongTimeAgo)
}

func (c *upConn) close() { _ = c.nc.Close() }

// release ends the current request: the connection goes back to the pool
// when keep holds and no unread byte is left; otherwise it is closed.
func (c *upConn) release(keep bool) {
	if !keep || c.aborted.Load() || c.br.Buffered() > 0 {
		c.close()
		return
	}
	if c.lp != nil {
		c.lp.putIdle(c)
		return
	}
	c.pool.put(c)
}

// markIdle records when c went idle: usedAt when the fast path set it (the
// idle timeout then counts a little early), else now.
func (c *upConn) markIdle() {
	if c.usedAt.IsZero() {
		c.idleAt = time.Now()
	} else {
		c.idleAt, c.usedAt = c.usedAt, time.Time{}
	}
}

// pooling reports whether p keeps idle connections: not once retired or
// drained.
func (p *hostPool) pooling() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.retired && !p.drained
}

// hostPool is the idle connections to one endpoint address, most recently
// used last: a request takes the warmest connection, and the coldest ones
// expire first.
type hostPool struct {
	t    *Transport
	addr string

	mu       sync.Mutex
	idle     []*upConn // under mu
	sweeping bool      // a sweep timer is armed
	retired  bool      // its endpoint left the membership: pool nothing
	drained  bool      // drained by the operator (SetDraining): pool nothing
}

// reusable returns the warmest idle connection that has not passed the idle
// timeout at now and has nothing to read, or nil: the caller dials then.
// A connection with something to read — the endpoint's FIN, a reset, or
// bytes nobody asked for (a stray response after a 204 or a HEAD answer) —
// is closed, never used: a request written on it would fail or be
// answered with another request's bytes. This is the one place where a
// pooled connection is judged fit for reuse, for every method and both
// request paths; replacing a stale one is not a retry.
func (p *hostPool) reusable(now time.Time) *upConn {
	for {
		c := p.pop(now)
		if c == nil || !c.peerClosed() {
			return c
		}
		c.close()
	}
}

// pop takes the warmest idle connection that has not passed the idle
// timeout at now, closing the expired ones.
func (p *hostPool) pop(now time.Time) *upConn {
	p.mu.Lock()
	n := len(p.idle)
	if n == 0 {
		p.mu.Unlock()
		return nil
	}
	c := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	if now.Sub(c.idleAt) < p.t.cfg.IdleConnTimeout {
		p.mu.Unlock()
		c.reused = true
		return c
	}
	// The others are older still.
	expired := append(p.idle, c)
	p.idle = nil
	p.mu.Unlock()
	for _, c := range expired {
		c.close()
	}
	return nil
}

// put returns c to the pool, or closes it when the pool is full.
func (p *hostPool) put(c *upConn) {
	c.markIdle()
	p.mu.Lock()
	if p.retired || p.drained || len(p.idle) >= p.t.cfg.MaxIdleConnsPerHost {
		p.mu.Unlock()
		c.close()
		return
	}
	p.idle = append(p.idle, c)
	arm := !p.sweeping
	p.sweeping = true
	p.mu.Unlock()
	if arm {
		time.AfterFunc(p.t.cfg.IdleConnTimeout, p.sweep)
	}
}

// sweep closes the connections idle longer than the idle timeout, and
// re-arms itself while connections remain.
func (p *hostPool) sweep() {
	timeout := p.t.cfg.IdleConnTimeout
	now := time.Now()
	p.mu.Lock()
	k := 0
	for k < len(p.idle) && now.Sub(p.idle[k].idleAt) >= timeout {
		k++
	}
	expired := append([]*upConn(nil), p.idle[:k]...)
	n := copy(p.idle, p.idle[k:])
	clear(p.idle[n:])
	p.idle = p.idle[:n]
	var next time.Duration
	if n > 0 {
		next = max(timeout-now.Sub(p.idle[0].idleAt), time.Millisecond)
	} else {
		p.sweeping = false
	}
	p.mu.Unlock()
	for _, c := range expired {
		c.close()
	}
	if next > 0 {
		time.AfterFunc(next, p.sweep)
	}
}

// retire closes p's idle connections, and those in use as their requests
// end: its endpoint left the service (Transport.Retain), or the service
// was closed.
func (p *hostPool) retire() {
	p.mu.Lock()
	p.retired = true
	p.mu.Unlock()
	p.closeIdle()
}

// closeIdle closes every idle connection.
func (p *hostPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// Retain makes addrs the endpoints of the Transport's service: the members
// its health checker knows, healthy or not, those its removal guard holds
// included (healthcheck.OnMembers). The pools of addresses that left are
// retired: their idle connections are closed, and those in use are closed
// when their requests end rather than pooled, so that a departed endpoint
// (a backend draining before it exits) is not held open until the idle
// timeout, and the pools do not grow with every address the service ever
// had. From then on a request to an address outside addrs (one that picked
// it just before it left) gets a pool of its own, retired, whose
// connection closes at its release. Retain is quick: the sockets are
// closed on a goroutine of their own. net/http's side (bodies streamed,
// HTTP/2, gRPC and TLS upstreams) keeps its pool, which cannot be emptied
// for one address: its idle connections end at its idle timeout, or
// sooner when the endpoint closes them (a GOAWAY, a server's shutdown).
func (t *Transport) Retain(addrs []string) {
	keep := make(map[string]struct{}, len(addrs))
	for _, a := range addrs {
		keep[poolAddr(a)] = struct{}{}
	}
	var gone []*hostPool
	t.mu.Lock()
	t.members = keep
	for addr, p := range t.pools {
		if _, ok := keep[addr]; !ok {
			delete(t.pools, addr)
			gone = append(gone, p)
		}
	}
	t.mu.Unlock()
	if len(gone) > 0 {
		go retireAll(gone)
	}
}

// SetDraining marks the endpoint at addr drained by an operator (the admin
// API's drain: no new requests go to it) or back in service. While it is
// drained its idle connections are closed, and those in use close at their
// release rather than being pooled, so that the endpoint is not held open
// by connections nothing will use.
func (t *Transport) SetDraining(addr string, draining bool) {
	p := t.endpointPool(addr)
	p.mu.Lock()
	p.drained = draining
	p.mu.Unlock()
	if draining {
		p.closeIdle()
	}
}

// Close retires every pool of the Transport, whose service was replaced
// or stopped: idle connections close now, those in use at their release;
// net/http's idle connections close too. The fast path pools nothing on
// the Transport after Close.
func (t *Transport) Close() {
	t.mu.Lock()
	gone := make([]*hostPool, 0, len(t.pools))
	for _, p := range t.pools {
		gone = append(gone, p)
	}
	t.pools = map[string]*hostPool{}
	t.members = map[string]struct{}{}
	t.mu.Unlock()
	retireAll(gone)
	t.std.CloseIdleConnections()
}

func retireAll(pools []*hostPool) {
	for _, p := range pools {
		p.retire()
	}
}

func (t *Transport) pool(addr string) *hostPool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.pools[addr]; p != nil {
		return p
	}
	p := &hostPool{t: t, addr: addr}
	if _, member := t.members[addr]; t.members != nil && !member {
		p.retired = true // not a member (any more): pool nothing
		return p
	}
	t.pools[addr] = p
	return p
}

// endpointPool returns the pool of the endpoint at addr, port 80 when it
// names none.
func (t *Transport) endpointPool(addr string) *hostPool {
	return t.pool(poolAddr(addr))
}

// poolAddr is the address an endpoint's pool dials: addr, with port 80 when
// it names none.
func poolAddr(addr string) string {
	if !strings.Contains(addr, ":") {
		return addr + ":80"
	}
	return addr
}

// dialBy opens a connection to p's address, failing at deadline (zero:
// the dial timeout alone). Its errors are the dialer's *net.OpError with
// Op "dial", which the proxy classifies as connect failures.
func (t *Transport) dialBy(p *hostPool, deadline time.Time) (*upConn, error) {
	return t.dialContext(context.Background(), p, deadline)
}

// dialContext is dialBy, ended early by ctx too (the request's: its
// client went away, or Route.Timeout cancelled it).
func (t *Transport) dialContext(ctx context.Context, p *hostPool, deadline time.Time) (*upConn, error) {
	d := t.dialer
	d.Deadline = deadline
	nc, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	return newUpConn(nc, p), nil
}

// staleConn reports whether an exchange on uc failed because the endpoint
// had closed the kept-alive connection while it was idle: uc served a
// request before, nothing of an answer came, and the failure is not a
// timeout (an endpoint slow to answer is not a closed connection: the
// request is not sent again).
func staleConn(uc *upConn, err error) bool {
	var ne net.Error
	return uc.reused && uc.nread == 0 && !(errors.As(err, &ne) && ne.Timeout())
}

package proxy

import (
	"crypto/tls"
	"errors"
	"math"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// A client connection costs what it holds between requests, and most of a
// gateway's connections are between requests at any instant (browsers,
// mobile clients, keep-alive pools of other proxies). So a fast connection
// is split in two:
//
//   - cconn, what the connection keeps for its whole life: the socket, the
//     peer's address, its state and its read deadline — a few hundred bytes
//     besides the runtime's own socket structures;
//   - fconn, the serving state — input and output buffers, the parsed
//     request and response, the exchange — bound to the connection only
//     while it has bytes to serve, and given back to a pool as soon as it
//     has none.
//
// Between requests a connection waits in one of two ways:
//
//   - hot (connWaiting): its goroutine waits, holding no buffer, for the
//     socket to become readable in the runtime's network poller, which
//     runs the goroutine again directly when the next request comes — what
//     a busy keep-alive connection costs per request is what it cost when
//     it waited in a read, and a request that comes whole is served inside
//     the wait (waitserve.go), which saves the receive that would
//     otherwise fail before each wait;
//   - cold (connIdle): the connection is parked in an epoll poller
//     (poller_linux.go) and its goroutine ends: a parked connection has no
//     goroutine, no stack and no buffer, as in nginx's event loop. The
//     poller starts a goroutine for it when it becomes readable, and
//     closes it when its idle timeout passes first. Waking a parked
//     connection costs a goroutine start and a thread hand-off more than a
//     hot wait.
//
// A connection waits hot for its first request, and after a request when
// its previous wait ended within hotIdle (a client sending requests in
// quick succession: a load generator, a page's assets, an API client's
// pool); otherwise it is parked at once (a client that sent its request and
// went quiet). A hot wait that lasts hotIdle is interrupted by a
// per-Server sweep (kickCold) and the connection parked.
//
// A connection that is not a socket of the runtime's network poller (a
// listener wrapping its connections), or any connection where there is no
// poller (other systems than Linux), waits in a read with its buffers. A
// wrapper that passes SyscallConn on must not buffer reads of its own (a
// PROXY protocol reader, say): the poller and the hot wait read the socket
// itself.
//
// A cconn is what every open connection costs, so its fields are laid out
// to fit the 160-byte size class: the small ones packed at the end, the
// deadline as Unix nanoseconds, the peer's address in a buffer of its own
// and its IP as a part of that.
type cconn struct {
	pollReg // raw is made at the first hot wait or park
	s       *Server
	nc      net.Conn
	// longAddr points to the peer's address when it does not fit addrBuf,
	// where it is written otherwise; it is addrLen bytes long either way
	// (see addr).
	longAddr *byte
	addrBuf  [addrBufLen]byte
	// since is when the current hot wait began (Unix nanoseconds).
	since atomic.Int64
	// mu orders the sweep's interruption of a hot wait (state connKicked
	// and a read deadline in the past) with the waiting goroutine's
	// wake-up, so that the interruption never lands on a connection
	// already serving again.
	mu sync.Mutex
	// readDeadline is the read deadline last set on nc, in Unix
	// nanoseconds (0: none), kept across the fconns that serve the
	// connection so that a busy connection moves it about once per
	// deadlineSlack.
	readDeadline int64
	// got is what the last hot wait read (gotN bytes), for the next
	// fconn.
	got   *[]byte
	state atomic.Int32
	gotN  int32
	// peerOff and peerLen place the peer's IP in addr (peer).
	peerOff, peerLen uint8
	addrLen          uint16
	parkable         bool // false: it waits in reads
	tls              bool // a TLS connection (https in X-Forwarded-Proto)
	// served is whether a request was served: the wait for the first is
	// bounded by ReadHeaderTimeout, the next ones by IdleTimeout.
	served bool
	// quick is whether the connection's last wait between requests ended
	// within hotIdle: only then does the next one wait hot; else the
	// connection is parked as soon as it has nothing to serve.
	quick bool
}

// addrBufLen is the room a cconn has for its peer's address: every IPv4
// address with its port ("255.255.255.255:65535" is 21 bytes) and short
// IPv6 ones ("[2001:db8:1234:5678::1]:65535" is 29). A longer one (a
// global IPv6 address of eight groups takes about 45) is formatted into
// an allocation of its own, 48 or 64 bytes.
const addrBufLen = 32

// addr returns the peer's address, as net.Addr's String writes it.
func (cc *cconn) addr() string {
	if cc.longAddr != nil {
		return unsafe.String(cc.longAddr, int(cc.addrLen))
	}
	return unsafe.String(&cc.addrBuf[0], int(cc.addrLen))
}

// setAddr records a, which may be written in addrBuf already, as the
// peer's address; a longer one is kept where it is (cut at 64 KiB, which
// no address of a socket comes near).
func (cc *cconn) setAddr(a string) {
	if len(a) <= len(cc.addrBuf) {
		cc.longAddr, cc.addrLen = nil, uint16(copy(cc.addrBuf[:], a))
		return
	}
	cc.longAddr, cc.addrLen = unsafe.StringData(a), uint16(min(len(a), math.MaxUint16))
}

// peer returns the peer's IP, as peerHost finds it in addr.
func (cc *cconn) peer() string {
	return cc.addr()[cc.peerOff : int(cc.peerOff)+int(cc.peerLen)]
}

// setPeer finds the peer's IP in addr (peerHost); an address whose IP
// part does not fit the offsets (never an IP address) has none.
func (cc *cconn) setPeer() {
	addr := cc.addr()
	host := peerHost(addr)
	i := strings.Index(addr, host)
	if host == "" || i < 0 || i > 255 || len(host) > 255 {
		cc.peerOff, cc.peerLen = 0, 0
		return
	}
	cc.peerOff, cc.peerLen = uint8(i), uint8(len(host))
}

// A hotWaiter is the RawConn.Read function of a hot wait, bound to the
// waiting connection for the wait only: a pool of them serves every
// connection, rather than each holding a bound method value of its own.
// When the wait ends in it (serveInWait), out says how, and next is the
// serving state to go on with.
type hotWaiter struct {
	cc   *cconn
	fn   func(uintptr) bool // w.recv, bound once
	out  uint8
	next *fconn
}

// How a hot wait ended in its function (hotWaiter.out).
const (
	outNone   = iota // it did not: the runtime's read returned as usual
	outServe         // bytes to serve outside the wait, in next
	outClose         // the connection is to be closed, once the read has returned
	outDrain         // the same, after a lingering drain (fconn.lingerClose) with next
	outClosed        // the connection was closed (by Shutdown)
)

var hotWaiters = sync.Pool{New: func() any {
	w := new(hotWaiter)
	w.fn = w.recv
	return w
}}

// recv reads what came; a request it can serve without leaving the wait
// it serves there (serveInWait), and the wait goes on.
func (w *hotWaiter) recv(fd uintptr) bool {
	cc := w.cc
	for {
		if !cc.recv(fd) {
			return false // nothing came: the runtime waits
		}
		if cc.got == nil {
			return true // the end of stream, or an error
		}
		// A read that filled the buffer may have left bytes behind,
		// whose readiness is spent: read again rather than wait.
		full := int(cc.gotN) == len(*cc.got)
		if !w.serveInWait() {
			return true
		}
		if !full {
			return false
		}
	}
}

// hotIdle is how long a quiet connection keeps its goroutine (waiting in
// the runtime's poller) before it is parked in the epoll poller, and
// kickTick how often each Server looks for such connections.
const (
	hotIdle  = time.Second
	kickTick = 250 * time.Millisecond
)

func newCconn(s *Server, nc net.Conn) *cconn {
	cc := &cconn{s: s, nc: nc}
	cc.fd, cc.owner = -1, cc
	cc.setAddr(formatAddr(nc.RemoteAddr(), &cc.addrBuf))
	cc.setPeer()
	if _, ok := nc.(syscall.Conn); ok {
		cc.parkable = pollersReady()
	}
	_, cc.tls = nc.(*tls.Conn)
	cc.state.Store(connActive)
	return cc
}

// run serves cc on the calling goroutine until the connection closes, is
// handed to net/http, or is parked. ready is whether bytes are known to be
// waiting (the poller woke it).
func (cc *cconn) run(ready bool) { cc.runFrom(nil, ready) }

// runFrom is run, going on with next (bound to cc, with what it has read)
// when it is not nil.
func (cc *cconn) runFrom(next *fconn, ready bool) {
	for {
		c := next
		if c == nil {
			c = bindFconn(cc)
			if ready && cc.served {
				cc.quick = c.now.UnixNano()-cc.since.Load() < int64(hotIdle)
			}
		}
		next = nil
		if !c.serve(ready) {
			return
		}
		quiet := !cc.served || !cc.quick
		if cc.s.loops != nil && cc.loopable(quiet) {
			// Between requests in a loop rather than hot or parked, its
			// idle timeout counted from since as a parked one's.
			if cc.served {
				cc.since.Store(c.now.UnixNano())
			}
			c.recycle()
			cc.toLoop()
			return
		}
		if quiet {
			// Silent for hotIdle before its first request (since is the
			// wait's start), or not a quick client: parked at once.
			if cc.served {
				cc.since.Store(c.now.UnixNano())
			}
			cc.readDeadline = unixNanos(c.readDeadline)
			c.recycle()
			cc.park()
			return
		}
		c.waitDeadline()
		cc.readDeadline = unixNanos(c.readDeadline)
		since := c.now
		c.recycle()
		var st int
		switch st, next = cc.wait(since); st {
		case waitReady:
			ready = true
		case waitCold:
			cc.park()
			return
		default:
			return
		}
	}
}

// The outcomes of a hot wait.
const (
	waitReady  = iota // bytes came
	waitCold          // quiet for hotIdle: to be parked
	waitClosed        // closed: its idle timeout passed, or Shutdown
)

// wait is the hot wait: the goroutine waits, holding no buffer, for the
// connection's next bytes in the runtime's network poller, bounded by its
// read deadline (the idle timeout, set by waitDeadline) and by kickCold.
// The requests it can serve without leaving the wait it serves there
// (serveInWait); next is the serving state, bound already, of bytes
// that are to be served outside it, if any.
func (cc *cconn) wait(since time.Time) (st int, next *fconn) {
	if !cc.makeRaw() {
		cc.close()
		return waitClosed, nil
	}
	if ok, own := cc.waitOn(since); !ok {
		if own {
			cc.close()
		}
		return waitClosed, nil
	}
	w := hotWaiters.Get().(*hotWaiter)
	w.cc = cc
	err := cc.raw.Read(w.fn)
	out, next := w.out, w.next
	w.cc, w.out, w.next = nil, outNone, nil
	hotWaiters.Put(w)
	switch out {
	case outServe:
		return waitReady, next
	case outClose:
		// Not inside the read: closing the socket waits for its lock.
		cc.close()
		return waitClosed, nil
	case outDrain:
		next.drain()
		cc.close()
		next.recycle()
		return waitClosed, nil
	case outClosed:
		return waitClosed, nil
	}
	got := cc.got
	switch cc.endWait(connWaiting, connActive) {
	case connWaiting:
		if err == nil && got != nil {
			return waitReady, nil
		}
	case connKicked:
		cc.readDeadline = aLongTimeAgo.UnixNano() // kickCold's: the next waitDeadline moves it
		if err == nil && got != nil {
			return waitReady, nil
		}
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			return waitCold, nil
		}
	default:
		cc.dropGot()
		return waitClosed, nil // Shutdown closed it
	}
	// The idle timeout passed, the client closed, or an error.
	cc.dropGot()
	cc.close()
	return waitClosed, nil
}

// waitOn starts (or, after a request served in the wait, resumes) a hot
// wait that began at since. It reports false when the server is closing
// instead: own then says whether the caller closes the connection, else
// Shutdown does. (Inside the wait it must not: the socket's close waits
// for the read lock the wait holds.)
func (cc *cconn) waitOn(since time.Time) (ok, own bool) {
	cc.since.Store(since.UnixNano())
	cc.state.Store(connWaiting)
	if !cc.s.closing.Load() {
		return true, false
	}
	return false, cc.state.CompareAndSwap(connWaiting, connClosed)
}

// dropGot gives back what a hot wait read, when it is not served.
func (cc *cconn) dropGot() {
	if cc.got != nil {
		putInBuf(cc.got)
		cc.got = nil
	}
}

// makeRaw makes cc.raw, on the first wait or park rather than at accept:
// a connection that closes after one request never needs it. It reports
// false when the socket is closed.
func (cc *cconn) makeRaw() bool {
	if cc.raw != nil {
		return true
	}
	raw, err := cc.nc.(syscall.Conn).SyscallConn()
	cc.raw = raw
	return err == nil
}

// endWait ends a wait begun in state st: the connection is served again,
// in state to (connActive, or connInWait), unless it was closed
// meanwhile. It returns the state the wait ended in: st, connKicked
// (kickCold interrupted it) or connClosed.
func (cc *cconn) endWait(st, to int32) int32 {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cur := cc.state.Load()
	if cur == st || cur == connKicked {
		cc.state.Store(to)
	}
	return cur
}

// kick interrupts the hot wait of cc if it began before t (Unix
// nanoseconds): the goroutine then parks the connection.
func (cc *cconn) kick(t int64) {
	if cc.state.Load() != connWaiting || cc.since.Load() > t {
		return
	}
	cc.mu.Lock()
	if cc.state.CompareAndSwap(connWaiting, connKicked) {
		_ = cc.nc.SetReadDeadline(aLongTimeAgo)
	}
	cc.mu.Unlock()
}

// park hands the cold connection, holding no buffer, to its poller, which
// serves it on a goroutine of its own when bytes come and closes it when
// its idle timeout passes first. The idle timeout counts from the start of
// the hot wait.
func (cc *cconn) park() {
	if cc.s.loops != nil && cc.loopable(true) {
		cc.toLoop()
		return
	}
	cc.parkPoller()
}

// parkPoller is park without loops.
func (cc *cconn) parkPoller() {
	d := cc.idleTimeout()
	var until int64
	if d > 0 {
		until = cc.since.Load() + int64(d)
	}
	cc.until.Store(until)
	cc.state.Store(connIdle)
	if cc.s.closing.Load() {
		cc.expire()
		return
	}
	a := getArmer()
	ok := cc.makeRaw() && a.fetchFd(&cc.pollReg) && pollerFor(&cc.pollReg).park(&cc.pollReg, d, a)
	putArmer(a)
	if !ok {
		cc.expire()
	}
}

// toLoop moves the connection, between requests with nothing buffered, into
// a loop; when none takes it, it is parked as without loops (or closed,
// when its socket was lost in the attempt).
func (cc *cconn) toLoop() {
	switch moved, gone := cc.takeLoop(); {
	case moved:
	case gone:
		cc.close()
	default:
		cc.parkPoller()
	}
}

// idleTimeout is how long the idle connection may stay silent, as net/http
// bounds it: before its first request by ReadHeaderTimeout, then by
// IdleTimeout (each else ReadTimeout); 0 means no bound.
func (cc *cconn) idleTimeout() time.Duration {
	cfg := &cc.s.cfg
	d := cfg.IdleTimeout
	if !cc.served {
		d = cfg.ReadHeaderTimeout
	}
	if d <= 0 {
		d = cfg.ReadTimeout
	}
	return d
}

// woken serves the parked connection, which became readable, on a
// goroutine of its own, unless it was closed meanwhile (pollOwner).
func (cc *cconn) woken() {
	if cc.state.CompareAndSwap(connIdle, connActive) {
		go cc.run(true)
	}
}

// gone reports whether the connection is no longer parked (pollOwner).
func (cc *cconn) gone() bool { return cc.state.Load() != connIdle }

// expire closes the parked connection if it is still parked (pollOwner:
// its idle timeout passed).
func (cc *cconn) expire() {
	if cc.state.CompareAndSwap(connIdle, connClosed) {
		cc.close()
	}
}

// closeIfIdle closes cc if it is between requests (Shutdown): parked, in
// its hot wait, or waiting in a read when it cannot wait otherwise.
func (cc *cconn) closeIfIdle() {
	for _, st := range [...]int32{connIdle, connWaiting, connKicked} {
		if cc.state.CompareAndSwap(st, connClosed) {
			cc.close()
			return
		}
	}
}

// close ends the connection: it leaves the Server's set and its socket is
// closed (which also takes it out of any epoll set).
func (cc *cconn) close() {
	cc.state.Store(connClosed)
	cc.s.trackConn(cc, false)
	_ = cc.nc.Close()
}

// pollReg is a socket's registration in a poller (poller_linux.go): its
// descriptor's number (-1 until known), the registration's generation
// (events of an earlier registration of the same number are told apart by
// it), whether the descriptor is in the poller's epoll set, while parked
// the time (Unix nanoseconds) after which the poller expires it (0:
// never), and who is told of its events.
type pollReg struct {
	raw syscall.RawConn
	fd  int32
	// gen is the registration's generation in its poller's epoll set: 0
	// while it is not in the set.
	gen   int32
	until atomic.Int64
	owner pollOwner
}

// pollOwner is what a poller registration belongs to: a parked client
// connection (cconn), or a side of a tunnel.
type pollOwner interface {
	woken()     // the socket became readable (or hung up); called once per arming
	gone() bool // closed or taken back: the poller forgets the registration
	expire()    // the registration's until passed
}

// kickCold parks the connections quiet for hotIdle, every kickTick, until
// the Server closes.
func (s *Server) kickCold() {
	t := time.NewTicker(kickTick)
	defer t.Stop()
	var cold []*cconn
	for {
		select {
		case <-s.closed:
			return
		case now := <-t.C:
			// The candidates are picked under s.mu, which accepts and
			// closes take, and kicked (a deadline each) outside it.
			before := now.Add(-hotIdle).UnixNano()
			s.mu.Lock()
			for cc := range s.conns {
				if cc.state.Load() == connWaiting && cc.since.Load() <= before {
					cold = append(cold, cc)
				}
			}
			s.mu.Unlock()
			for i, cc := range cold {
				cc.kick(before)
				cold[i] = nil
			}
			cold = cold[:0]
		}
	}
}

// formatAddr returns a.String(), written in buf when a is a TCP address
// that fits (as net.TCPAddr writes it: an IPv4-mapped address as IPv4), so
// that a connection's address costs no allocation of its own. The string
// may refer to buf, which must live as long as it.
func formatAddr(a net.Addr, buf *[addrBufLen]byte) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	ap := ta.AddrPort()
	ip := ap.Addr().Unmap()
	if !ip.IsValid() {
		return a.String()
	}
	b := netip.AddrPortFrom(ip, ap.Port()).AppendTo(buf[:0])
	if len(b) == 0 {
		return a.String()
	}
	// In buf, or in the array append made when it did not fit, which
	// nothing else refers to.
	return unsafe.String(&b[0], len(b))
}

// ConnStats counts a Server's client connections by what they hold at the
// moment (issue 18's accounting; zkgate_client_connections).
type ConnStats struct {
	// Serving: a goroutine serves a request, with the connection's
	// buffers.
	Serving int
	// Waiting: between requests with a goroutine and no buffer (a hot
	// wait), or, not parkable, in a read with its buffers.
	Waiting int
	// Parked: between requests in the poller or in a loop, with no
	// goroutine.
	Parked int
	// Tunnels: WebSocket tunnels relayed by the poller (two sockets each).
	Tunnels int
	// NetHTTP: connections net/http's server holds (handed off; an
	// upgraded one leaves its count when ReverseProxy hijacks it).
	NetHTTP int
}

// LoopStats counts what a Server's loops did (ServerConfig.Loops).
type LoopStats struct {
	// Served: requests served in a loop from start to end, without a
	// goroutine.
	Served int64
	// HandedOff: requests a loop gave to a goroutine before anything was
	// sent (not whole, not served inline, an upgrade).
	HandedOff int64
	// Escalated: exchanges that left a loop with its goroutine, because
	// something had to wait (a dial, a write not taken whole, a streamed
	// body, a retry, a deadline).
	Escalated int64
}

// ConnStats returns the Server's connection counts.
func (s *Server) ConnStats() ConnStats {
	var st ConnStats
	s.mu.Lock()
	for cc := range s.conns {
		switch cc.state.Load() {
		case connActive, connInWait:
			st.Serving++
		case connIdle:
			if cc.parkable {
				st.Parked++
			} else {
				st.Waiting++
			}
		case connLooped:
			st.Parked++
		case connWaiting, connKicked:
			st.Waiting++
		}
	}
	st.Tunnels = len(s.tunnels)
	s.mu.Unlock()
	st.NetHTTP = int(s.netHTTPConns.Load())
	return st
}

//go:build linux

package proxy

import (
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Loops (ServerConfig.Loops; docs/design/loops.md): event loops that
// serve the fast path's simple exchanges without a goroutine.
//
// A plain TCP client connection is served by a goroutine until it is
// between requests; then, rather than waiting hot or parking in a poller
// (idleconn.go), it moves into a loop (cconn.takeLoop): a locked OS thread
// with an epoll set of its own, whose sockets are out of the runtime's
// network poller (loopFD). The loop waits for the connection's next
// request and serves it with the code a goroutine runs — parseRequest,
// prepare, the attempts (startAttempts, endAttempt), answer, end — but it
// waits for the answer in its own epoll set: an idle upstream connection
// of the loop's own pool is registered there from the moment the loop
// takes it to its close, so no epoll_ctl is made per request, and an event
// on an idle one marks it (peeked before reuse, where the runtime's pool
// peeks every time).
//
// The loop serves an exchange only as far as nothing must wait but the
// answer's head and its Content-Length body (up to loopBodyMax): a request
// whose head or body is not whole in what was read, one the fast path does
// not serve, an upgrade, go to a goroutine before anything is sent
// (handOff: the connection leaves the loop). Anything else that must wait
// — a dial, a client or endpoint whose socket does not take a write whole,
// a streamed or chunked body, a 1xx, a retry after a failure, the answer's
// deadline — escalates (escalate): the loop hands its thread's role to a
// new goroutine, which carries on with the loop's other sockets, and the
// exchange's two sockets move to the runtime's poller; the goroutine that
// was the loop finishes the exchange with today's blocking code, then goes
// on serving the connection as any connection's goroutine does, until it
// is between requests again and moves back into a loop. So every decision
// (keep-alive, reuse, retries, failure answers, accounting) is made by the
// one function that makes it without loops.
//
// The client's hang-up while its answer is awaited (EPOLLRDHUP) aborts the
// exchange as the client watch does (watch.go): once the request has
// waited watchDelay, if the next thing on the socket is its end.

// loopEvents is how many events one epoll_wait takes.
const loopEvents = 256

// loopBodyMax is the largest Content-Length body the loop waits for
// whole before it relays it; a larger one is relayed by a goroutine as it
// comes. It is well below a socket's receive buffer, so a body of that
// size can always arrive whole.
const loopBodyMax = 64 << 10

// loopSweep is how often a loop closes the client and upstream
// connections idle past their timeouts.
const loopSweep = 250 * time.Millisecond

// loops are a Server's event loops, started with its first connection
// that moves into one.
type loops struct {
	s *Server
	n int
	// newLoop makes a loop (newLoop; a test's may fail).
	newLoop func(*Server) (*loop, error)

	mu       sync.Mutex
	ls       []*loop
	started  atomic.Bool
	stopped  bool      // the Server is closing: none start
	failedAt time.Time // when the loops last failed to start
	next     atomic.Uint32
	// What the loops did (LoopStats).
	served, handedOff, escalated atomic.Int64
}

// loopRetry is how long after loops failed to start (out of descriptors,
// say) they are tried again; meanwhile connections wait as without
// loops.
const loopRetry = 10 * time.Second

// LoopStats returns what the Server's loops did so far (zero without
// loops).
func (s *Server) LoopStats() LoopStats {
	ls := s.loops
	if ls == nil {
		return LoopStats{}
	}
	return LoopStats{Served: ls.served.Load(), HandedOff: ls.handedOff.Load(), Escalated: ls.escalated.Load()}
}

func newLoops(s *Server, n int) *loops { return &loops{s: s, n: n, newLoop: newLoop} }

// pick returns the loop a connection moves into, round robin; nil when
// none runs (the Server is closing, or they failed to start).
func (ls *loops) pick() *loop {
	if !ls.started.Load() && !ls.start() {
		return nil
	}
	return ls.ls[int(ls.next.Add(1))%len(ls.ls)]
}

// start starts the loops, unless they run, the Server is closing, or
// they failed to start within loopRetry. It reports whether they run.
func (ls *loops) start() bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.started.Load() {
		return true
	}
	if ls.stopped || !ls.failedAt.IsZero() && time.Since(ls.failedAt) < loopRetry {
		return false
	}
	var err error
	for len(ls.ls) < ls.n {
		var l *loop
		if l, err = ls.newLoop(ls.s); err != nil {
			break
		}
		ls.ls = append(ls.ls, l)
		go l.run()
	}
	if len(ls.ls) == 0 {
		ls.failedAt = time.Now()
		if h := ls.s.h; h != nil && h.log != nil {
			h.log.WithError(err).Warnf("event loops did not start: connections wait without them; tried again in %s", loopRetry)
		}
		return false
	}
	ls.started.Store(true) // (fewer than asked when some failed)
	return true
}

// wake wakes every loop (the Server is closing); none starts after.
func (ls *loops) wake() {
	if ls == nil {
		return
	}
	ls.mu.Lock()
	ls.stopped = true
	loops := ls.ls
	ls.mu.Unlock()
	for _, l := range loops {
		l.wake()
	}
}

// A loop is one event loop. Its fields are its goroutine's (whichever
// goroutine is the loop: see escalate), but mu's.
type loop struct {
	s       *Server
	epfd    int
	evfd    int
	events  [loopEvents]syscall.EpollEvent
	n, next int
	regs    []*loopFD // by descriptor
	gen     atomic.Uint32

	mu     sync.Mutex
	adds   []*loopFD // client connections moved in, to register
	closes []*loopFD // closeOutside's
	exited bool

	clients map[*lconn]struct{}
	pending []*lconn // exchanges waiting for their answers
	pools   map[*hostPool][]*upConn
	todo    []todo
	later   []todo // reads for the next turn, after the next epoll_wait
	spare   []*loopFD
	cur     *lconn // the exchange being served (escalate's)
	sweepAt time.Time
	closing bool
}

// A todo is work a loop found outside its events.
type todo struct {
	lc   *lconn
	what uint8
}

const (
	todoRead   = iota // read the idle connection (moved in, or readable while busy)
	todoExpire        // the answer's deadline passed
	todoHup           // the client hung up while its answer is awaited, watchDelay ago
	todoClose         // Server.Close closes it (closeOutside)
	todoStream        // its answer's body did not come whole within watchDelay
)

// An lconn is a client connection in a loop: between requests, or with
// an exchange under way (c set).
type lconn struct {
	cc *cconn
	lf *loopFD
	// The exchange under way.
	c        *fconn
	e        *entry
	run      attemptRun
	uc       *upConn
	tr       *Transport
	deadline time.Time // Route.Timeout's
	n        int       // the request head's length
	headN    int       // the answer head's length, once parsed
	bodyAt   time.Time // when the loop began to await the answer's body whole
	since    time.Time // when the request was sent upstream
	pendAt   int       // its index in pending; -1: not awaiting
	discard  func()    // lc.dropUp, bound once

	idleSince time.Time
	live      bool // in the loop's clients
	readable  bool // bytes (or the end) came while it was busy
	hup       bool // its hang-up was seen (an edge that does not come again)
	hupLooked bool // the exchange under way found bytes before the end
	escalated bool // the exchange left the loop with its goroutine
}

func newLoop(s *Server) (*loop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	r, _, e := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if e != 0 {
		_ = syscall.Close(epfd)
		return nil, e
	}
	l := &loop{s: s, epfd: epfd, evfd: int(r), clients: map[*lconn]struct{}{}, pools: map[*hostPool][]*upConn{}}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | epollET, Fd: int32(l.evfd)}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, l.evfd, &ev); err != nil {
		_ = syscall.Close(epfd)
		_ = syscall.Close(l.evfd)
		return nil, err
	}
	l.sweepAt = time.Now().Add(loopSweep)
	return l, nil
}

// epollET is EPOLLET as the uint32 of EpollEvent.Events.
const epollET = 1 << 31

// loopInterest is what a loop's sockets are registered for, edge-triggered:
// readable, and the peer's hang-up.
const loopInterest = syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET

// wake interrupts the loop's wait, unless it has ended (its eventfd's
// number may be another file's by then).
func (l *loop) wake() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.wakeLocked()
}

// wakeLocked is wake, under l.mu.
func (l *loop) wakeLocked() {
	if !l.exited {
		one := uint64(1)
		_, _ = syscall.Write(l.evfd, (*[8]byte)(unsafe.Pointer(&one))[:])
	}
}

// takeLoop moves cc, between requests with nothing buffered, into a loop,
// with its idle timeout counted from cc.since. It reports whether it
// moved; when not, gone says whether its socket was closed in the
// attempt (the caller closes the connection), else it is as it was.
func (cc *cconn) takeLoop() (moved, gone bool) {
	lf, ok := cc.nc.(*loopFD)
	if !ok || cc.s.closing.Load() {
		return false, false
	}
	l := cc.s.loops.pick()
	if l == nil {
		return false, false
	}
	lc := lf.lc
	if lc == nil {
		lc = &lconn{cc: cc, lf: lf}
		lc.discard = lc.dropUp
		lf.lc = lc
	}
	lc.pendAt, lc.escalated, lc.readable, lc.hup = -1, false, false, false
	lc.idleSince = time.Unix(0, cc.since.Load())
	if !lf.toLoop(l) {
		return false, lf.isClosed()
	}
	cc.readDeadline = 0 // the socket's deadlines stay behind
	cc.raw = &lf.raw
	cc.state.Store(connLooped)
	lf.gen = l.gen.Add(1)
	ev := syscall.EpollEvent{Events: loopInterest, Fd: int32(lf.fd), Pad: int32(lf.gen)}
	l.mu.Lock()
	// Under l.mu: a loop that has ended has closed its epoll set.
	if l.exited || syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, lf.fd, &ev) != nil {
		l.mu.Unlock()
		lf.dropRaw()
		return false, true
	}
	// Registered before the loop knows of it: an event it takes first
	// is dropped, and the loop reads the connection once it knows it.
	l.adds = append(l.adds, lf)
	l.wakeLocked()
	l.mu.Unlock()
	return true, false
}

// dropRaw closes the socket of a loopFD in a loop's mode that no loop
// knows of.
func (lf *loopFD) dropRaw() {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.inLoop.Load() {
		_ = syscall.Close(lf.fd)
		lf.inLoop.Store(false)
		lf.fd, lf.l, lf.closed = -1, nil, true
	}
}

// askClose asks the loop to close lf (loopFD.closeOutside).
func (l *loop) askClose(lf *loopFD) {
	l.mu.Lock()
	l.closes = append(l.closes, lf)
	l.wakeLocked()
	l.mu.Unlock()
}

// register adds lf, in l's mode, to the loop's table of sockets; add
// also registers it in the epoll set.
func (l *loop) register(lf *loopFD, add bool) bool {
	if add {
		lf.gen = l.gen.Add(1)
		ev := syscall.EpollEvent{Events: loopInterest, Fd: int32(lf.fd), Pad: int32(lf.gen)}
		if syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, lf.fd, &ev) != nil {
			return false
		}
	}
	for lf.fd >= len(l.regs) {
		l.regs = append(l.regs, make([]*loopFD, max(len(l.regs), 64))...)
	}
	l.regs[lf.fd] = lf
	return true
}

// forget drops lf from the loop's table and its epoll set (loopFD's
// toRuntime and Close).
func (l *loop) forget(lf *loopFD) {
	if lf.fd < len(l.regs) && l.regs[lf.fd] == lf {
		l.regs[lf.fd] = nil
	}
	_ = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, lf.fd, nil)
}

// run is the loop: it serves events and its other work until the Server
// has closed and it holds no connection. A goroutine that escalates an
// exchange stops being the loop: run returns in it, and a new goroutine
// runs on from where it was.
func (l *loop) run() {
	runtime.LockOSThread()
	for {
		for l.next < l.n {
			ev := &l.events[l.next]
			l.next++
			if !l.dispatch(ev.Fd, uint32(ev.Pad), ev.Events) {
				return
			}
		}
		for len(l.todo) > 0 {
			t := l.todo[len(l.todo)-1]
			l.todo = l.todo[:len(l.todo)-1]
			if !l.do(t) {
				return
			}
		}
		if !l.turn() {
			runtime.UnlockOSThread()
			return
		}
	}
}

// dispatch serves one event. It reports false when the goroutine is no
// longer the loop.
func (l *loop) dispatch(fd int32, gen uint32, events uint32) bool {
	if int(fd) == l.evfd {
		var b [8]byte
		_, _ = syscall.Read(l.evfd, b[:])
		return true
	}
	if int(fd) >= len(l.regs) {
		return true
	}
	lf := l.regs[fd]
	if lf == nil || lf.gen != gen {
		return true // an earlier registration's
	}
	if uc := lf.uc; uc != nil {
		if events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
			// The endpoint closed it: never pooled unpeeked, and an
			// answer awaited whole from it comes no more.
			uc.marked, uc.hup = true, true
		}
		if lc := uc.waiter; lc != nil {
			return l.answer(lc)
		}
		uc.marked = true // idle: the endpoint closed it or sent unasked
		return true
	}
	lc := lf.lc
	if events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		lc.hup = true
	}
	if lc.c != nil {
		lc.readable = true // busy: its answer is awaited
		return true
	}
	return l.serve(lc)
}

// do does one todo.
func (l *loop) do(t todo) bool {
	lc := t.lc
	if !lc.live {
		return true
	}
	switch t.what {
	case todoRead:
		if lc.c == nil {
			return l.serve(lc)
		}
	case todoExpire:
		if lc.pendAt >= 0 {
			// The endpoint did not answer in time: the attempt fails
			// as it fails without a loop (its deadline has passed).
			l.cur = lc
			p := lc.uc.pool
			l.escalate(nil)
			return lc.finish(p, lc.uc, true, nil)
		}
	case todoStream:
		if lc.pendAt >= 0 && lc.headN > 0 {
			// Relayed as it comes, by a goroutine: a peer whose window
			// does not take the body whole is not waited for.
			l.cur = lc
			l.unpend(lc)
			l.escalate(nil)
			return lc.after(lc.kind(), nil)
		}
	case todoClose:
		if lc.c == nil {
			l.closeClient(lc, nil)
			return true
		}
		if lc.pendAt >= 0 {
			return l.abort(lc) // its answer awaited: ended as a client gone
		}
	case todoHup:
		if lc.pendAt >= 0 {
			var b [1]byte
			n, e := recvRaw(uintptr(lc.lf.fd), b[:], syscall.MSG_PEEK|recvFlags)
			if e == syscall.EAGAIN || n > 0 {
				lc.hupLooked = true // bytes, behind which the end cannot be seen
				return true
			}
			return l.abort(lc)
		}
	}
	return true
}

// serve reads what came on lc, between requests, and serves it.
func (l *loop) serve(lc *lconn) bool {
	cc := lc.cc
	lc.readable = false
	if !cc.recv(uintptr(lc.lf.fd)) {
		return true // nothing came
	}
	if cc.got == nil {
		l.closeClient(lc, nil) // the end of stream, or an error
		return true
	}
	if int(cc.gotN) == len(*cc.got) {
		lc.readable = true // more may be waiting
	}
	cc.state.Store(connActive)
	return l.serveBuffered(lc, bindFconn(cc))
}

// serveBuffered serves the requests whole in c's input buffer, as
// serveInWait serves them (waitserve.go); anything else goes to a
// goroutine with what was read.
func (l *loop) serveBuffered(lc *lconn, c *fconn) bool {
	for {
		if len(c.in.unread()) == 0 {
			return l.idle(lc, c)
		}
		if l.closing {
			return l.handOff(lc, c)
		}
		from := 0
		n := headEnd(c.in.unread(), &from)
		if n <= 0 || n > l.s.cfg.MaxHeaderBytes {
			return l.handOff(lc, c) // not whole, or to be refused: fconn.serve's
		}
		c.req.reset()
		c.why = ""
		r := &c.req
		if c.parseRequest(c.in.unread()[:n]) != serveFast || r.chunked || r.upgrade != nil ||
			r.clen > int64(len(c.in.unread())-n) {
			return l.handOff(lc, c)
		}
		l.cur = lc
		c.inLoop = true
		e, keep, verdict := c.prepare(n)
		if e != nil {
			return l.exchange(lc, c, e, n)
		}
		if verdict != serveFast {
			// Nothing was answered (a route the fast path does not
			// serve, a body refused before any route took it):
			// fconn.serve's, from the head again.
			l.cur = nil
			return l.handOff(lc, c)
		}
		// Answered here (no route, a policy's answer, a refused body).
		return l.goOn(lc, c, keep)
	}
}

// exchange proxies the prepared request of route e, whose head is n bytes.
func (l *loop) exchange(lc *lconn, c *fconn, e *entry, n int) bool {
	ex := &c.ex
	lc.c, lc.e, lc.n, lc.headN, lc.uc, lc.hupLooked, lc.bodyAt = c, e, n, 0, nil, false, time.Time{}
	if err := e.startAttempts(ex, &lc.run); err != nil {
		return l.end(lc, c.answer(e, ex, lc.run.ep, nil, failNoEndpoint, err))
	}
	lc.tr = e.route.Upstream.Transport.(*Transport)
	lc.deadline = time.Time{}
	if t := e.route.Timeout; t > 0 {
		lc.deadline = ex.start.Add(t)
	}
	return l.send(lc)
}

// send sends the request of the attempt under way on a connection of the
// loop's pool, and awaits the answer in the loop; without one (a dial),
// or when the write does not go whole, the attempt goes on on this
// goroutine (escalate).
func (l *loop) send(lc *lconn) bool {
	c := lc.c
	p := lc.tr.endpointPool(lc.run.ep.Addr)
	uc := l.popIdle(p, c.now)
	if uc == nil {
		l.escalate(nil)
		return lc.finish(p, nil, false, nil)
	}
	lc.uc = uc
	uc.begin(c.now, lc.deadline)
	err := c.writeRequest(uc, lc.run.ep.Addr, false)
	if lc.escalated || err != nil {
		if !lc.escalated {
			l.escalate(nil)
		}
		return lc.finish(p, uc, true, err)
	}
	uc.waiter = lc
	lc.since = c.now
	lc.pendAt = len(l.pending)
	l.pending = append(l.pending, lc)
	l.cur = nil
	return true
}

// unpend takes lc off the exchanges awaiting their answers.
func (l *loop) unpend(lc *lconn) {
	if i := lc.pendAt; i >= 0 {
		last := len(l.pending) - 1
		l.pending[i] = l.pending[last]
		l.pending[i].pendAt = i
		l.pending[last] = nil
		l.pending = l.pending[:last]
		lc.pendAt = -1
	}
	if lc.uc != nil {
		lc.uc.waiter = nil
	}
}

// Whether an answer's body is there to relay without waiting.
const (
	bodyHere   = iota
	bodyWait   // not yet, and it will fit: the loop waits on
	bodyStream // relayed as it comes, by a goroutine
)

// answer reads what came for lc's exchange: once the answer's head and
// body are there, it ends the attempt and relays the answer.
func (l *loop) answer(lc *lconn) bool {
	l.cur = lc
	c, uc := lc.c, lc.uc
	if lc.headN == 0 {
		uc.nonblock = true
		hn, err := readResponseHead(uc.br)
		uc.nonblock = false
		if err == errWouldBlock {
			l.cur = nil
			return true
		}
		if err == nil {
			err = c.res.parse(uc.br, hn)
		}
		if err != nil || c.res.status < 200 || c.res.status == 101 {
			// A failure, or an informational answer: awaitHead's, from
			// the head again.
			l.escalate(nil)
			return lc.finish(uc.pool, uc, true, nil)
		}
		lc.headN = hn
	}
	st := bodyState(uc, &c.res, c.req.method)
	if st == bodyWait && uc.hup {
		st = bodyStream // cut short: the relay finds where, as without loops
	}
	if pol := lc.e.pol; pol != nil && pol.compress != nil && c.ex.enc != encNone {
		st = bodyStream // compressing costs the loop too long: a goroutine's
	}
	switch st {
	case bodyWait:
		if lc.bodyAt.IsZero() {
			lc.bodyAt = time.Now()
		}
		l.cur = nil
		return true
	case bodyStream:
		l.escalate(nil)
		return lc.after(lc.kind(), nil)
	}
	l.unpend(lc)
	lc.headN = 0
	kind := lc.kind()
	if lc.e.endAttempt(&c.ex, &lc.run, kind, lc.discard) {
		lc.bodyAt = time.Time{}
		return l.send(lc) // a retry (its answer dropped)
	}
	return l.end(lc, c.answer(lc.e, &c.ex, lc.run.ep, uc, kind, nil))
}

// kind is what the attempt whose answer's head is parsed came to.
func (lc *lconn) kind() failKind {
	if lc.c.res.status >= 500 {
		return failServerError
	}
	return failNone
}

// dropUp is lc.discard: the answer of an attempt that is retried is
// dropped with its connection.
func (lc *lconn) dropUp() {
	if lc.uc != nil {
		lc.uc.waiter = nil
		lc.uc.close()
		lc.uc = nil
	}
}

// bodyState says whether the body of the answer whose head res is parsed
// from uc is there whole.
func bodyState(uc *upConn, res *fastResponse, method string) int {
	if !res.hasBody(method) {
		return bodyHere
	}
	if res.chunked || res.clen < 0 {
		return bodyStream
	}
	need := int64(res.n) + res.clen
	have := int64(uc.br.Buffered())
	if have >= need {
		return bodyHere
	}
	if need > loopBodyMax {
		return bodyStream
	}
	if have+int64(inQueue(uc)) >= need {
		return bodyHere
	}
	return bodyWait
}

// inQueue is how many bytes wait in uc's socket's receive queue.
func inQueue(uc *upConn) int {
	var v int32
	if _, _, e := syscall.RawSyscall(syscall.SYS_IOCTL, uintptr(uc.lf().fd), siocinq, uintptr(unsafe.Pointer(&v))); e != 0 {
		return 0
	}
	return int(v)
}

// abort ends lc's exchange, whose client went away while its answer was
// awaited, as the client watch ends it: the upstream connection is
// closed, nothing is answered, and the connection closes.
func (l *loop) abort(lc *lconn) bool {
	l.cur = lc
	l.unpend(lc)
	lc.dropUp()
	c := lc.c
	_ = lc.e.endAttempt(&c.ex, &lc.run, failClientGone, lc.discard)
	return l.end(lc, c.answer(lc.e, &c.ex, lc.run.ep, nil, failClientGone, errClientGone))
}

// end ends lc's exchange: the request is accounted for, its answer
// flushed, and the connection goes on with keep (answer's).
func (l *loop) end(lc *lconn, keep bool) bool {
	c := lc.c
	keep = c.end(lc.n, keep)
	lc.c, lc.e, lc.uc, lc.tr = nil, nil, nil, nil
	return l.goOn(lc, c, keep)
}

// goOn goes on with lc, whose request c has just answered, with keep:
// closed, or serving what follows in c's buffer, or waiting in the loop —
// or, when the request escalated, on this goroutine, no longer the loop.
func (l *loop) goOn(lc *lconn, c *fconn, keep bool) bool {
	if lc.escalated {
		lc.resume(c, keep)
		return false
	}
	l.s.loops.served.Add(1)
	lc.cc.served = true // its idle timeout is IdleTimeout from now on
	c.inLoop = false
	l.cur = nil
	if !keep {
		l.closeClient(lc, c)
		return true
	}
	return l.serveBuffered(lc, c)
}

// idle makes lc wait in the loop for its next request.
func (l *loop) idle(lc *lconn, c *fconn) bool {
	if l.closing {
		l.cur = nil
		l.closeClient(lc, c)
		return true
	}
	lc.idleSince = c.now
	c.recycle()
	lc.cc.state.Store(connLooped)
	l.cur = nil
	if lc.readable || lc.hup {
		// An edge that came while it was busy is spent; so is a
		// hang-up's, which a read finds (the end of stream). It is read
		// at the next turn, after the events that came meanwhile: one
		// client that keeps its socket full (pipelined requests the loop
		// answers itself) gets a read per turn, not the loop.
		lc.readable = false
		l.later = append(l.later, todo{lc, todoRead})
	}
	return true
}

// closeClient closes lc (c: its serving state, if bound).
func (l *loop) closeClient(lc *lconn, c *fconn) {
	if c != nil {
		c.recycle()
	}
	l.drop(lc)
	lc.cc.close()
}

// drop takes lc out of the loop's connections.
func (l *loop) drop(lc *lconn) {
	l.unpend(lc)
	if lc.live {
		lc.live = false
		delete(l.clients, lc)
	}
}

// handOff gives lc, with what was read and nothing answered, to a
// goroutine, which serves it as a connection without loops from its
// request's head.
func (l *loop) handOff(lc *lconn, c *fconn) bool {
	l.s.loops.handedOff.Add(1)
	lc.lf.sticky = true
	l.cur = nil
	l.drop(lc)
	l.forget(lc.lf)
	lc.cc.state.Store(connActive)
	lc.cc.quick = true
	c.inLoop = false // served from its head again, by the goroutine
	go lc.handedOff(c)
	return true
}

// handedOff serves lc's connection, which a loop has let go of, on a
// goroutine from c: its socket moves to the runtime's poller (off the
// loop's thread), then its request is served from its head.
func (lc *lconn) handedOff(c *fconn) {
	lc.lf.toRuntime()
	lc.cc.runFrom(c, true)
}

// escalate makes the exchange under way leave the loop with the calling
// goroutine, which is the loop: its two sockets move to the runtime's
// poller, a new goroutine becomes the loop and runs on from where this one
// was, and this one, no longer locked to its thread, finishes the
// exchange with the blocking code and serves the connection on. lf is a
// socket that must wait, which must be the exchange's. After escalate the
// caller must not touch the loop.
func (l *loop) escalate(lf *loopFD) {
	l.s.loops.escalated.Add(1)
	var moving [3]*loopFD
	n := 0
	if lc := l.cur; lc != nil {
		l.drop(lc)
		lc.escalated = true
		lc.lf.sticky = true
		l.forget(lc.lf)
		moving[n], n = lc.lf, n+1
		if uc := lc.uc; uc != nil && uc.lp == l {
			uc.waiter, uc.lp = nil, nil
			l.forget(uc.lf())
			moving[n], n = uc.lf(), n+1
		}
	}
	if lf != nil && lf != moving[0] && lf != moving[1] && lf.inLoop.Load() && lf.l == l {
		l.forget(lf) // (not the exchange's: never expected)
		moving[n], n = lf, n+1
	}
	l.cur = nil
	go l.run()
	runtime.UnlockOSThread()
	// Off the loop's thread: a move costs tens of microseconds.
	for _, m := range moving[:n] {
		m.toRuntime()
	}
}

// finish runs, on the goroutine that left the loop with lc's exchange,
// the attempt under way — on uc, to p, written already when written (werr
// its error), else from its start, a dial included — then the rest.
func (lc *lconn) finish(p *hostPool, uc *upConn, written bool, werr error) bool {
	c := lc.c
	c.armWatch()
	var kind failKind
	var err error
	if uc == nil {
		uc, kind, err = c.attempt(lc.tr, lc.e, lc.run.ep, lc.deadline)
	} else {
		uc, kind, err = c.attemptOn(lc.tr, p, uc, !uc.reused, lc.run.ep.Addr, lc.deadline, written, werr)
	}
	lc.uc = uc
	return lc.after(kind, err)
}

// after runs, on the goroutine that left the loop with lc's exchange, the
// exchange from the end of its attempt under way (lc.uc, with the answer's
// head in c.res, or nil when it failed, with kind and err): the attempts
// the retry rules allow, the answer, then the connection.
func (lc *lconn) after(kind failKind, err error) bool {
	c, e := lc.c, lc.e
	if !c.watching {
		// Begun by the loop, which watched the client: the watch takes
		// over (peeking: nothing reads the client meanwhile).
		// A client gone already has uc aborted: its relay fails.
		c.armWatch()
		if lc.uc != nil {
			_ = c.watchUpstream(lc.uc)
		}
	}
	ex := &c.ex
	uc := lc.uc
	discard := func() {
		if uc != nil {
			uc.close()
		}
	}
	for e.endAttempt(ex, &lc.run, kind, discard) {
		uc, kind, err = c.attempt(lc.tr, e, lc.run.ep, lc.deadline)
	}
	keep := c.end(lc.n, c.answer(e, ex, lc.run.ep, uc, kind, err))
	lc.c, lc.e, lc.uc, lc.tr = nil, nil, nil, nil
	lc.resume(c, keep)
	return false
}

// resume serves lc's connection on, on the goroutine that left the loop
// with it, from c (its serving state, with what is left to serve): as any
// connection's goroutine does, until it is between requests again and
// moves back into a loop.
func (lc *lconn) resume(c *fconn, keep bool) {
	cc := lc.cc
	if !keep {
		c.recycle()
		cc.close()
		return
	}
	cc.quick = true // busy: it waits hot (sticky) for its next request
	cc.served = true
	c.inLoop = false
	cc.runFrom(c, false)
}

// upstream sockets of the loop's own pools.

// lf returns uc's socket, a loopFD.
func (uc *upConn) lf() *loopFD { return uc.nc.(*loopFD) }

// popIdle takes the warmest idle connection to p of the loop's pool that
// its events have not shown closed, or else moves one from p's own pool
// into the loop; nil when there is none (a dial).
func (l *loop) popIdle(p *hostPool, now time.Time) *upConn {
	list := l.pools[p]
	timeout := p.t.cfg.IdleConnTimeout
	for len(list) > 0 {
		uc := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		if now.Sub(uc.idleAt) >= timeout || !p.pooling() {
			// The rest are older still.
			uc.close()
			for _, o := range list {
				o.close()
			}
			clear(list)
			list = list[:0]
			break
		}
		if uc.marked && uc.peerClosed() {
			uc.close()
			continue
		}
		l.pools[p] = list
		uc.reused, uc.marked, uc.hup = true, false, false
		return uc
	}
	l.pools[p] = list
	uc := p.reusable(now)
	if uc == nil {
		return nil
	}
	if !l.adopt(uc) {
		uc.close()
		return nil
	}
	return uc
}

// adopt moves uc, taken from its pool, into the loop.
func (l *loop) adopt(uc *upConn) bool {
	lf, ok := uc.nc.(*loopFD)
	if !ok {
		tc, ok := uc.nc.(*net.TCPConn)
		if !ok || !uc.sock.ok() {
			return false // a dialer's wrapper: never without the runtime
		}
		lf = newLoopFD(tc)
		lf.uc = uc
		uc.nc, uc.raw = lf, &lf.raw
		uc.sock.init(&lf.raw)
	}
	if !lf.toLoop(l) {
		return false
	}
	if !l.register(lf, true) {
		lf.dropRaw()
		return false
	}
	uc.lp, uc.marked, uc.hup, uc.dl = l, false, false, time.Time{}
	return true
}

// putIdle keeps uc, released by an exchange of the loop, in the loop's
// pool (hostPool.put's rules).
func (l *loop) putIdle(uc *upConn) {
	if lc := l.cur; lc != nil && lc.uc == uc {
		lc.uc = nil // the exchange is done with it (an escalation leaves it)
	}
	if uc.sock.full {
		// The last receive filled its buffer: bytes may wait behind the
		// answer with no edge to come for them. Peeked before reuse.
		uc.marked = true
	}
	uc.markIdle()
	p := uc.pool
	list := l.pools[p]
	if !p.pooling() || len(list) >= p.t.cfg.MaxIdleConnsPerHost {
		uc.close()
		return
	}
	l.pools[p] = append(list, uc)
}

// turn takes the loop's mail, sweeps, and waits for events. It reports
// false when the loop has ended.
func (l *loop) turn() bool {
	l.mail()
	now := time.Now()
	if l.closing || l.s.closing.Load() {
		l.closing = true
		for lc := range l.clients {
			if lc.c == nil {
				l.closeClient(lc, nil)
			}
		}
	}
	if !now.Before(l.sweepAt) {
		l.sweep(now)
	}
	if l.closing && len(l.clients) == 0 && len(l.todo) == 0 && len(l.later) == 0 {
		l.mu.Lock()
		if len(l.adds) == 0 && len(l.closes) == 0 {
			l.exited = true
			l.exit() // under l.mu: takeLoop and wake check exited first
			l.mu.Unlock()
			return false
		}
		l.mu.Unlock()
		return true
	}
	wait := l.sweepAt.Sub(now)
	for _, lc := range l.pending {
		if dl := lc.uc.dl; !dl.IsZero() {
			if d := dl.Sub(now); d <= 0 {
				l.todo = append(l.todo, todo{lc, todoExpire})
			} else {
				wait = min(wait, d)
			}
		}
		if lc.headN > 0 && !lc.bodyAt.IsZero() {
			if d := lc.bodyAt.Add(watchDelay).Sub(now); d <= 0 {
				l.todo = append(l.todo, todo{lc, todoStream})
			} else {
				wait = min(wait, d)
			}
		}
		if lc.hup && !lc.hupLooked {
			if d := lc.since.Add(watchDelay).Sub(now); d <= 0 {
				l.todo = append(l.todo, todo{lc, todoHup})
			} else {
				wait = min(wait, d)
			}
		}
	}
	if len(l.todo) > 0 {
		return true
	}
	if len(l.later) > 0 {
		wait = 0 // events first, without blocking, then the reads put off
	}
	l.n, l.next = l.wait(wait), 0
	// (run serves the events, then the todo list: the reads put off.)
	for i := len(l.later) - 1; i >= 0; i-- {
		l.todo = append(l.todo, l.later[i])
	}
	clear(l.later)
	l.later = l.later[:0]
	// An idle upstream connection with an event in this batch is marked
	// before any event is served: a request served first must not take
	// it unpeeked.
	for i := range l.events[:l.n] {
		ev := &l.events[i]
		if fd := int(ev.Fd); fd < len(l.regs) {
			if lf := l.regs[fd]; lf != nil && lf.gen == uint32(ev.Pad) && lf.uc != nil && lf.uc.waiter == nil {
				lf.uc.marked = true
			}
		}
	}
	return true
}

// wait takes the ready events, blocking at most d when there are none.
// Ready events are taken first without the runtime knowing of a system
// call (it cannot block), so the loop keeps its processor; only a wait
// that blocks is one the runtime is told of.
func (l *loop) wait(d time.Duration) int {
	r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_WAIT, uintptr(l.epfd),
		uintptr(unsafe.Pointer(&l.events[0])), loopEvents, 0, 0, 0)
	if e == 0 && r > 0 {
		return int(r)
	}
	ms := int((d + time.Millisecond - 1) / time.Millisecond)
	n, err := syscall.EpollWait(l.epfd, l.events[:], max(ms, 0))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// mail registers the client connections moved in, and closes those
// closeOutside asked to close.
func (l *loop) mail() {
	l.mu.Lock()
	adds, closes := l.adds, l.closes
	l.adds, l.closes = l.spare[:0], nil
	l.mu.Unlock()
	for i, lf := range adds {
		lc := lf.lc
		l.register(lf, false)
		lc.live = true
		l.clients[lc] = struct{}{}
		adds[i] = nil
		lf.mu.Lock()
		asked := lf.closeAsked
		lf.mu.Unlock()
		if asked || l.closing {
			// Server.Close asked before the loop knew of it, or the
			// Server is closing: an idle connection closes.
			l.closeClient(lc, nil)
			continue
		}
		l.todo = append(l.todo, todo{lc, todoRead})
	}
	l.spare = adds[:0]
	for _, lf := range closes {
		lf.mu.Lock()
		mine := lf.inLoop.Load() && lf.l == l
		lf.mu.Unlock()
		if !mine {
			lf.closeOutside() // it left the loop meanwhile
			continue
		}
		if lc := lf.lc; lc != nil && lc.live {
			l.todo = append(l.todo, todo{lc, todoClose})
		} // else not registered yet: its add finds closeAsked
	}
}

// sweep closes the idle client connections past their idle timeout and
// the pooled upstream ones past theirs or of pools that no longer pool.
func (l *loop) sweep(now time.Time) {
	l.sweepAt = now.Add(loopSweep)
	for lc := range l.clients {
		if lc.c != nil {
			continue
		}
		if d := lc.cc.idleTimeout(); d > 0 && now.Sub(lc.idleSince) >= d {
			l.closeClient(lc, nil)
		}
	}
	for p, list := range l.pools {
		timeout := p.t.cfg.IdleConnTimeout
		pooling := p.pooling()
		k := 0
		for _, uc := range list {
			if !pooling || now.Sub(uc.idleAt) >= timeout || (uc.marked && uc.peerClosed()) {
				uc.close()
				continue
			}
			list[k] = uc
			k++
		}
		clear(list[k:])
		if k == 0 {
			delete(l.pools, p)
		} else {
			l.pools[p] = list[:k]
		}
	}
}

// exit closes what the loop still holds once it has ended.
func (l *loop) exit() {
	for p, list := range l.pools {
		for _, uc := range list {
			uc.close()
		}
		delete(l.pools, p)
	}
	_ = syscall.Close(l.epfd)
	_ = syscall.Close(l.evfd)
}

// siocinq is the ioctl that reads a socket's receive queue length
// (SIOCINQ, which is FIONREAD).
const siocinq = 0x541B

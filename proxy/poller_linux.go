//go:build linux

package proxy

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A poller watches parked sockets — idle client connections (idleconn.go),
// the two sides of tunnels (tunnel.go) — with an epoll
// set of its own, besides the runtime's: each parked socket is registered
// one-shot for readability (and peer hang-up), so that an idle connection
// costs a slot in the set and no goroutine, stack or buffer. The poller's
// goroutine waits for the epoll descriptor itself to become readable
// through the runtime's network poller — no thread blocks in epoll_wait —
// then collects the ready sockets without waiting and starts a goroutine
// for each. Every tick it closes the parked connections whose idle timeout
// has passed.
//
// The socket stays registered with the runtime's poller too, which is
// edge-triggered and needs nothing from a socket no goroutine reads: once
// woken, the connection's reads go through net.Conn as before. A one-shot
// registration reports at most one event per arming, and the event carries
// the registration's generation, so that an event collected just before
// its socket was closed and its number reused cannot wake the connection
// that reused it.
type poller struct {
	epfd int
	f    *os.File // epfd, in the runtime's network poller
	rc   syscall.RawConn

	mu      sync.Mutex
	slots   []*pollReg // the parked sockets by descriptor number (slot)
	gen     int32
	woken   []*pollReg
	expired []*pollReg

	// tick is the sweep interval in nanoseconds: pollTick, or less when a
	// shorter idle timeout is used (a quarter of it, at least a
	// millisecond).
	tick     atomic.Int64
	n        int
	events   [256]syscall.EpollEvent
	collectF func(uintptr) bool
}

const pollTick = 250 * time.Millisecond

var pollers struct {
	once sync.Once
	ps   []*poller
}

// pollersReady starts the pollers on first use — one per processor the
// runtime runs goroutines on, at most 16 — and reports whether they run.
func pollersReady() bool {
	pollers.once.Do(func() {
		n := min(runtime.GOMAXPROCS(0), 16)
		for range n {
			p, err := newPoller()
			if err != nil {
				pollers.ps = nil // parking off: connections wait in reads
				return
			}
			pollers.ps = append(pollers.ps, p)
		}
		for _, p := range pollers.ps {
			go p.loop()
		}
	})
	return len(pollers.ps) > 0
}

// pollerFor returns the poller of a registration whose fd is known.
func pollerFor(r *pollReg) *poller { return pollers.ps[int(r.fd)%len(pollers.ps)] }

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		_ = syscall.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	// A non-blocking descriptor is added to the runtime's poller.
	f := os.NewFile(uintptr(epfd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	p := &poller{epfd: epfd, f: f, rc: rc}
	p.tick.Store(int64(pollTick))
	p.collectF = p.collect
	if err := f.SetReadDeadline(time.Now().Add(pollTick)); err != nil {
		_ = f.Close()
		return nil, err // not in the runtime's poller
	}
	return p, nil
}

// park registers r, whose owner is ready for its events, for the socket's
// next bytes, with timeout d (0: none; the sweep interval follows it),
// through a, the parking goroutine's own. It reports false when the socket
// could not be armed (it was closed). Once armed, r belongs to the poller:
// everything park writes of it is written under p.mu before, and nothing
// after.
func (p *poller) park(r *pollReg, d time.Duration, a *armer) bool {
	if d > 0 {
		t := max(int64(d)/4, int64(time.Millisecond))
		for {
			cur := p.tick.Load()
			if t >= cur || p.tick.CompareAndSwap(cur, t) {
				break
			}
		}
	}
	p.mu.Lock()
	a.op = syscall.EPOLL_CTL_MOD
	if r.gen == 0 {
		a.op = syscall.EPOLL_CTL_ADD
		if p.gen++; p.gen <= 0 { // 0 is unregistered's
			p.gen = 1
		}
		r.gen = p.gen
	}
	p.mu.Unlock()
	a.p, a.r = p, r
	a.ev = syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: r.fd, Pad: r.gen}
	// Control holds the descriptor open while arm runs: the slot is the
	// socket's own then (its number cannot belong to another socket), and
	// a socket closed meanwhile (Shutdown) fails Control rather than
	// letting the number, maybe reused already, be armed or its slot
	// touched.
	a.ok = false
	err := r.raw.Control(a.fn)
	a.p, a.r = nil, nil
	if err == nil && a.ok {
		return true
	}
	if a.op == syscall.EPOLL_CTL_ADD {
		r.gen = 0 // r is still the caller's
	}
	return false
}

// slot returns the index of descriptor fd in p.slots: the pollers share the
// numbers out by their remainder, so each keeps a slot per n-th number.
func slot(fd int32) int { return int(fd) / len(pollers.ps) }

// armer arms a parked connection's registration: the state of one parking
// goroutine, so that the result of arming is never read from the
// connection, which the poller may have handed to another goroutine by
// then.
type armer struct {
	p    *poller
	r    *pollReg
	op   int
	ev   syscall.EpollEvent
	ok   bool
	fn   func(uintptr) // a.arm, bound once
	fd   int32
	fdFn func(uintptr) // a.readFd, bound once
}

var armers sync.Pool

func getArmer() *armer {
	if a, ok := armers.Get().(*armer); ok {
		return a
	}
	a := &armer{}
	a.fn, a.fdFn = a.arm, a.readFd
	return a
}

// fetchFd records r's descriptor number at its first park; it reports
// false when the socket is closed.
func (a *armer) fetchFd(r *pollReg) bool {
	if r.fd >= 0 {
		return true
	}
	a.fd = -1
	if r.raw.Control(a.fdFn) != nil || a.fd < 0 {
		return false
	}
	r.fd = a.fd
	return true
}

func (a *armer) readFd(fd uintptr) { a.fd = int32(fd) }

func putArmer(a *armer) { armers.Put(a) }

// arm is a.fn, run by Control with the socket held open: it takes the
// socket's slot, then registers or re-arms it; a failure gives the slot up.
func (a *armer) arm(fd uintptr) {
	p, r := a.p, a.r
	i := slot(r.fd)
	p.mu.Lock()
	if i >= len(p.slots) {
		p.slots = append(p.slots, make([]*pollReg, i+1-len(p.slots))...)
	}
	p.slots[i] = r
	p.mu.Unlock()
	if a.ok = syscall.EpollCtl(p.epfd, a.op, int(fd), &a.ev) == nil; a.ok {
		return
	}
	p.mu.Lock()
	if p.slots[i] == r {
		p.slots[i] = nil
	}
	p.mu.Unlock()
}

// loop collects ready connections and sweeps expired ones, for the life of
// the process.
func (p *poller) loop() {
	for {
		err := p.rc.Read(p.collectF)
		if err == nil {
			p.dispatch()
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			p.sweep(time.Now())
			_ = p.f.SetReadDeadline(time.Now().Add(time.Duration(p.tick.Load())))
			continue
		}
		// The epoll descriptor failed, which does not happen to a valid
		// one: wait a tick rather than spin, and go on.
		time.Sleep(pollTick) // a back-off, not synchronisation
	}
}

// collect is p.collectF: it takes the ready events without waiting, and
// asks the runtime to wait for the epoll descriptor when there are none.
func (p *poller) collect(fd uintptr) bool {
	n, err := syscall.EpollWait(int(fd), p.events[:], 0)
	if err != nil || n <= 0 {
		return false
	}
	p.n = n
	return true
}

// dispatch tells the owner of each registration an event came for.
func (p *poller) dispatch() {
	p.mu.Lock()
	for i := range p.events[:p.n] {
		ev := &p.events[i]
		if ev.Fd < 0 {
			continue
		}
		i := slot(ev.Fd)
		if i >= len(p.slots) {
			continue
		}
		r := p.slots[i]
		if r == nil || r.fd != ev.Fd || r.gen != ev.Pad {
			continue // a registration gone since
		}
		p.slots[i] = nil
		p.woken = append(p.woken, r)
	}
	p.mu.Unlock()
	for i, r := range p.woken {
		p.woken[i] = nil
		r.owner.woken()
	}
	p.woken = p.woken[:0]
}

// sweep expires the registrations whose until has passed, and forgets
// those whose owner is gone.
func (p *poller) sweep(now time.Time) {
	t := now.UnixNano()
	p.mu.Lock()
	for fd, r := range p.slots {
		if r == nil {
			continue
		}
		if r.owner.gone() {
			p.slots[fd] = nil
			continue
		}
		if u := r.until.Load(); u != 0 && t >= u {
			p.slots[fd] = nil
			p.expired = append(p.expired, r)
		}
	}
	p.mu.Unlock()
	for i, r := range p.expired {
		p.expired[i] = nil
		r.owner.expire()
	}
	p.expired = p.expired[:0]
}

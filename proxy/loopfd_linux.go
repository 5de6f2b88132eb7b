//go:build linux

package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// A loopFD is a TCP socket of a Server with loops (loop_linux.go), client
// or upstream. It is a net.Conn and a syscall.Conn (its RawConn is raw), and
// it is in one of two modes:
//
//   - the runtime's: a *net.TCPConn, whose waits are in the runtime's
//     network poller, as every socket is without loops;
//   - a loop's: a raw non-blocking descriptor in the loop's epoll set,
//     out of the runtime's poller, used only by the loop's goroutine.
//
// A socket moves to a loop between requests (toLoop: a duplicate of the
// descriptor is kept, the *net.TCPConn closed), and back to the runtime
// (toRuntime) when what it serves must wait in a way the loop does not:
// the loop then hands its thread on (loop.escalate), and the waits of the
// socket's goroutine are the runtime's again. Whoever holds the socket
// uses it through the same loopFD in either mode, so nothing that refers
// to it changes when it moves.
//
// In a loop's mode only the loop's goroutine touches the socket: another
// goroutine may only ask the loop to close it (closeOutside). Deadlines
// set meanwhile are kept, and set on the socket when it leaves the loop.
type loopFD struct {
	// mu orders mode changes with closeOutside.
	mu     sync.Mutex
	inLoop atomic.Bool
	closed bool
	// closeAsked: closeOutside asked the loop to close it (under mu).
	closeAsked bool

	// The runtime's mode.
	tcp *net.TCPConn
	rc  syscall.RawConn // tcp's

	// A loop's mode: the descriptor, the loop, and the registration's
	// generation in its epoll set.
	fd  int
	l   *loop
	gen uint32
	// What the loop's events for the socket are for: a client connection
	// or an upstream one.
	lc *lconn
	uc *upConn

	raw    loopRaw
	la, ra net.Addr
	// sticky: a loop gave the connection's request to a goroutine, and
	// its next requests are likely alike (large or streamed bodies,
	// upgrades, a slow client): it waits between requests as without
	// loops (each move costs about 50 us) until it goes quiet.
	sticky bool
	// rdl and wdl are the deadlines set in a loop's mode (Unix
	// nanoseconds; 0: none).
	rdl, wdl int64
}

// newLoopFD returns tc as a loopFD in the runtime's mode.
func newLoopFD(tc *net.TCPConn) *loopFD {
	lf := &loopFD{tcp: tc, fd: -1, la: tc.LocalAddr(), ra: tc.RemoteAddr()}
	lf.rc, _ = tc.SyscallConn()
	lf.raw.lf = lf
	return lf
}

// errLoopClosed is I/O on a loopFD that is closed.
var errLoopClosed = errors.New("proxy: use of a closed loop connection")

// toLoop moves the socket, in the runtime's mode and used by no other
// goroutine, out of the runtime's poller into l's mode; the caller
// registers it in l's epoll set. It reports false when the socket is
// closed or cannot move (it is left as it was, or closed).
func (lf *loopFD) toLoop(l *loop) bool {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.closed || lf.inLoop.Load() || lf.rc == nil {
		return false
	}
	nfd, err := -1, error(nil)
	if cerr := lf.rc.Control(func(fd uintptr) {
		nfd, err = dupCloexec(int(fd))
	}); cerr != nil || err != nil {
		return false
	}
	// Closing the *net.TCPConn takes its descriptor out of the runtime's
	// poller; the socket lives on in the duplicate (non-blocking, as
	// the runtime left it: the flag is the open file's).
	_ = lf.tcp.Close()
	lf.tcp, lf.rc = nil, nil
	lf.fd, lf.l, lf.rdl, lf.wdl = nfd, l, 0, 0
	lf.inLoop.Store(true)
	return true
}

// toRuntime moves the socket, in a loop's mode, back to the runtime's
// poller, on the goroutine that takes it from the loop, once the loop has
// dropped it from its epoll set (loop.forget) and let go of it. The
// deadlines set meanwhile are set again. A socket that cannot move, or
// that Server.Close asked to close meanwhile, is closed (its I/O then
// fails).
func (lf *loopFD) toRuntime() {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if !lf.inLoop.Load() {
		return
	}
	f := os.NewFile(uintptr(lf.fd), "")
	nc, err := net.FileConn(f) // a duplicate, in the runtime's poller
	_ = f.Close()
	lf.fd, lf.l = -1, nil
	lf.inLoop.Store(false)
	tc, ok := nc.(*net.TCPConn)
	if err != nil || !ok {
		if nc != nil {
			_ = nc.Close()
		}
		lf.closed = true
		return
	}
	lf.tcp = tc
	lf.rc, _ = tc.SyscallConn()
	if lf.closeAsked {
		lf.closed = true
		_ = tc.Close()
		return
	}
	if lf.rdl != 0 {
		_ = tc.SetReadDeadline(time.Unix(0, lf.rdl))
	}
	if lf.wdl != 0 {
		_ = tc.SetWriteDeadline(time.Unix(0, lf.wdl))
	}
}

// dupCloexec duplicates fd, close-on-exec.
func dupCloexec(fd int) (int, error) {
	for {
		nfd, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(nfd), nil
	}
}

// wouldBlock is called in a loop's mode when an operation of the socket
// must wait: the loop hands its thread on and the socket, with the rest
// of the exchange it serves, leaves for the runtime's poller
// (loop.escalate). It reports false when the socket cannot wait: it is
// closed, or not of an exchange the loop serves (the operation then
// fails).
func (lf *loopFD) wouldBlock() bool {
	if lf.inLoop.Load() {
		if lf.l.cur == nil {
			return false
		}
		lf.l.escalate(lf)
	}
	return lf.rc != nil
}

// Read reads as net.Conn's Read does.
func (lf *loopFD) Read(p []byte) (int, error) {
	if !lf.inLoop.Load() {
		if lf.tcp == nil {
			return 0, errLoopClosed
		}
		return lf.tcp.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, e := recvRaw(uintptr(lf.fd), p, recvFlags)
	switch {
	case e == syscall.EAGAIN:
		if !lf.wouldBlock() {
			return 0, errLoopClosed
		}
		return lf.tcp.Read(p)
	case e != 0:
		return 0, sockError("read", e)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes as net.Conn's Write does.
func (lf *loopFD) Write(p []byte) (int, error) {
	if !lf.inLoop.Load() {
		if lf.tcp == nil {
			return 0, errLoopClosed
		}
		return lf.tcp.Write(p)
	}
	w := 0
	for w < len(p) {
		n, e := sendRaw(uintptr(lf.fd), p[w:])
		switch e {
		case 0:
			w += n
			continue
		case syscall.EAGAIN:
			if !lf.wouldBlock() {
				return w, errLoopClosed
			}
			n, err := lf.tcp.Write(p[w:])
			return w + n, err
		}
		return w, sockError("write", e)
	}
	return w, nil
}

// sendRaw is one raw send of p, tried again on EINTR.
func sendRaw(fd uintptr, p []byte) (int, syscall.Errno) {
	if raceIO {
		return raceSend(fd, p)
	}
	for {
		n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), sendFlags, 0, 0)
		if e != syscall.EINTR {
			if e != 0 {
				return 0, e
			}
			return int(n), 0
		}
	}
}

// Close closes the socket: in a loop's mode only from the loop's
// goroutine (any other goroutine asks with closeOutside).
func (lf *loopFD) Close() error {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.closed {
		return nil
	}
	lf.closed = true
	if lf.inLoop.Load() {
		lf.l.forget(lf)
		lf.inLoop.Store(false)
		err := syscall.Close(lf.fd)
		lf.fd, lf.l = -1, nil
		return err
	}
	return lf.tcp.Close()
}

// closeOutside closes the socket from a goroutine that does not own it
// (Server.Close): in the runtime's mode at once, in a loop's mode by the
// loop, which is asked to.
func (lf *loopFD) closeOutside() {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	switch {
	case lf.closed:
	case lf.inLoop.Load():
		lf.closeAsked = true
		l := lf.l
		lf.mu.Unlock()
		l.askClose(lf) // (not under lf.mu: the loop takes it to look)
		lf.mu.Lock()
	default:
		lf.closed = true
		_ = lf.tcp.Close()
	}
}

// CloseWrite shuts down the writing side, as (*net.TCPConn).CloseWrite.
func (lf *loopFD) CloseWrite() error {
	if lf.inLoop.Load() {
		return syscall.Shutdown(lf.fd, syscall.SHUT_WR)
	}
	if lf.tcp == nil {
		return errLoopClosed
	}
	return lf.tcp.CloseWrite()
}

func (lf *loopFD) LocalAddr() net.Addr  { return lf.la }
func (lf *loopFD) RemoteAddr() net.Addr { return lf.ra }

func (lf *loopFD) SetDeadline(t time.Time) error {
	if err := lf.SetReadDeadline(t); err != nil {
		return err
	}
	return lf.SetWriteDeadline(t)
}

func (lf *loopFD) SetReadDeadline(t time.Time) error {
	if lf.inLoop.Load() {
		lf.rdl = unixNanos(t)
		return nil
	}
	if lf.tcp == nil {
		return errLoopClosed
	}
	return lf.tcp.SetReadDeadline(t)
}

func (lf *loopFD) SetWriteDeadline(t time.Time) error {
	if lf.inLoop.Load() {
		lf.wdl = unixNanos(t)
		return nil
	}
	if lf.tcp == nil {
		return errLoopClosed
	}
	return lf.tcp.SetWriteDeadline(t)
}

// SyscallConn returns the socket's RawConn.
func (lf *loopFD) SyscallConn() (syscall.RawConn, error) { return &lf.raw, nil }

// loopRaw is a loopFD's syscall.RawConn.
type loopRaw struct{ lf *loopFD }

// Control runs f on the descriptor.
func (r *loopRaw) Control(f func(fd uintptr)) error {
	lf := r.lf
	if lf.inLoop.Load() {
		f(uintptr(lf.fd))
		return nil
	}
	if lf.rc == nil {
		return errLoopClosed
	}
	return lf.rc.Control(f)
}

// Read calls f until it reports true; in a loop's mode a false hands the
// socket to the runtime (loopFD.wouldBlock), whose poller then waits.
func (r *loopRaw) Read(f func(fd uintptr) bool) error { return r.lf.rawIO(f, false) }

// Write is Read for writing.
func (r *loopRaw) Write(f func(fd uintptr) bool) error { return r.lf.rawIO(f, true) }

func (lf *loopFD) rawIO(f func(fd uintptr) bool, write bool) error {
	if lf.inLoop.Load() {
		if f(uintptr(lf.fd)) {
			return nil
		}
		if !lf.wouldBlock() {
			return errLoopClosed
		}
	}
	if lf.rc == nil {
		return errLoopClosed
	}
	if write {
		return lf.rc.Write(f)
	}
	return lf.rc.Read(f)
}

// loopConn returns nc as a Server with loops serves it: a plain TCP
// connection as a loopFD, anything else as it is.
func loopConn(nc net.Conn) net.Conn {
	if tc, ok := nc.(*net.TCPConn); ok {
		return newLoopFD(tc)
	}
	return nc
}

// plainTCP reports whether nc is a TCP connection of the runtime's or a
// loop's, not a listener's wrapper.
func plainTCP(nc net.Conn) bool {
	switch nc.(type) {
	case *net.TCPConn, *loopFD:
		return true
	}
	return false
}

// closeConn closes nc from a goroutine that may not own it (Server.Close).
func closeConn(nc net.Conn) {
	if lf, ok := nc.(*loopFD); ok {
		lf.closeOutside()
		return
	}
	_ = nc.Close()
}

// loopable reports whether cc is to move into a loop now, quiet being
// whether it went quiet (it would be parked): a plain TCP connection of a
// Server with loops, unless a loop gave its last request to a goroutine
// (loopFD.sticky) and it has been busy since.
func (cc *cconn) loopable(quiet bool) bool {
	lf, ok := cc.nc.(*loopFD)
	if !ok || lf.sticky && !quiet {
		return false
	}
	lf.sticky = false
	return true
}

// isClosed reports whether the socket is closed.
func (lf *loopFD) isClosed() bool {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	return lf.closed
}

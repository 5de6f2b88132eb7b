package benchkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"
)

// An epoll proxy is a measurement floor, not a proxy to run: one epoll loop
// per processor on a locked OS thread, each with a listener of its own
// (SO_REUSEPORT: the kernel spreads the connections), its connections and a
// keep-alive pool of upstream connections that never leave it. No
// goroutine waits for a socket and nothing is shared between cores: what a
// Go gateway built as nginx is (a loop per core) would pay per request on
// this machine before any of zkgate's work. It relays GET requests, adding
// X-Forwarded-For, to one upstream that answers with a Content-Length (the
// bench backend does); anything else closes the connection.

// epollMaxHead bounds a request's or a response's head.
const epollMaxHead = 16 << 10

// epollMaxPending is how many answer bytes may wait for a slow client
// before the loop stops reading the upstream connection.
const epollMaxPending = 256 << 10

// epollUpBuf is an upstream connection's read buffer: a 16 KiB answer
// comes in one read and goes out in one write.
const epollUpBuf = 64 << 10

type epollLoop struct {
	ep, ln   int
	upstream syscall.SockaddrInet4
	conns    map[int]*epollConn
	pool     []*epollConn // idle upstream connections, most recent last
	events   [256]syscall.EpollEvent
}

type epollConn struct {
	fd     int
	client bool
	peer   *epollConn // a client's upstream while it answers, and back
	in     []byte     // read, not consumed yet
	out    []byte     // to write, once the socket takes it
	left   int        // upstream: bytes of the answer still to relay; -1 before its head
	paused bool       // upstream: not read while its client has epollMaxPending to take
	ip     string     // client: its address, for X-Forwarded-For
}

// RunEpollProxy serves the epoll proxy on listen ("127.0.0.1:port") with
// loops loops (0: one per processor), relaying to upstream, until ctx
// ends.
func RunEpollProxy(ctx context.Context, listen, upstream string, loops int) error {
	la, err := netip.ParseAddrPort(listen)
	if err != nil || !la.Addr().Is4() {
		return fmt.Errorf("benchkit: epoll proxy: listen %q: want an IPv4 address:port", listen)
	}
	ua, err := netip.ParseAddrPort(upstream)
	if err != nil || !ua.Addr().Is4() {
		return fmt.Errorf("benchkit: epoll proxy: upstream %q: want an IPv4 address:port", upstream)
	}
	if loops <= 0 {
		loops = runtime.GOMAXPROCS(0)
	}
	stop := make(chan struct{})
	errs := make(chan error, loops)
	for range loops {
		l, err := newEpollLoop(la, ua)
		if err != nil {
			close(stop)
			return err
		}
		go func() { errs <- l.run(stop) }()
	}
	select {
	case <-ctx.Done():
		close(stop)
		return nil
	case err := <-errs:
		close(stop)
		return err
	}
}

func newEpollLoop(listen, upstream netip.AddrPort) (*epollLoop, error) {
	ln, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("benchkit: epoll proxy: socket: %w", err)
	}
	const soReusePort = 0xf // SO_REUSEPORT, which package syscall does not name
	for _, opt := range []int{syscall.SO_REUSEADDR, soReusePort} {
		if err := syscall.SetsockoptInt(ln, syscall.SOL_SOCKET, opt, 1); err != nil {
			syscall.Close(ln)
			return nil, fmt.Errorf("benchkit: epoll proxy: setsockopt: %w", err)
		}
	}
	if err := syscall.Bind(ln, &syscall.SockaddrInet4{Port: int(listen.Port()), Addr: listen.Addr().As4()}); err != nil {
		syscall.Close(ln)
		return nil, fmt.Errorf("benchkit: epoll proxy: listen %s: %w", listen, err)
	}
	if err := syscall.Listen(ln, 4096); err != nil {
		syscall.Close(ln)
		return nil, fmt.Errorf("benchkit: epoll proxy: listen %s: %w", listen, err)
	}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		syscall.Close(ln)
		return nil, fmt.Errorf("benchkit: epoll proxy: epoll: %w", err)
	}
	l := &epollLoop{ep: ep, ln: ln, conns: map[int]*epollConn{},
		upstream: syscall.SockaddrInet4{Port: int(upstream.Port()), Addr: upstream.Addr().As4()}}
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, ln, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(ln)}); err != nil {
		l.closeAll()
		return nil, fmt.Errorf("benchkit: epoll proxy: epoll_ctl: %w", err)
	}
	return l, nil
}

// epollStopCheckMs bounds a loop's wait, in milliseconds, so that it sees
// its stop.
const epollStopCheckMs = 250

// run is the loop, on a thread of its own, until stop closes.
func (l *epollLoop) run(stop <-chan struct{}) error {
	runtime.LockOSThread()
	defer l.closeAll()
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		n, err := syscall.EpollWait(l.ep, l.events[:], epollStopCheckMs)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("benchkit: epoll proxy: epoll_wait: %w", err)
		}
		for _, ev := range l.events[:n] {
			fd := int(ev.Fd)
			if fd == l.ln {
				l.accept()
				continue
			}
			c := l.conns[fd]
			if c == nil {
				continue
			}
			if ev.Events&syscall.EPOLLOUT != 0 && len(c.out) > 0 && !l.flush(c) {
				continue
			}
			if ev.Events&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR|syscall.EPOLLRDHUP) != 0 {
				l.readable(c, ev.Events&(syscall.EPOLLHUP|syscall.EPOLLERR|syscall.EPOLLRDHUP) != 0)
			}
		}
	}
}

func (l *epollLoop) closeAll() {
	for _, c := range l.conns {
		syscall.Close(c.fd)
	}
	syscall.Close(l.ln)
	syscall.Close(l.ep)
}

func (l *epollLoop) accept() {
	for {
		fd, sa, err := syscall.Accept4(l.ln, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN: accepted all; anything else: the next event retries
		}
		ip := ""
		if a, ok := sa.(*syscall.SockaddrInet4); ok {
			ip = net.IP(a.Addr[:]).String()
		}
		l.add(&epollConn{fd: fd, client: true, ip: ip, in: make([]byte, 0, 4096)})
	}
}

// add watches c, edge-triggered for both directions: a write that did not
// take everything waits for the EPOLLOUT edge, a read for the EPOLLIN one.
func (l *epollLoop) add(c *epollConn) {
	_ = syscall.SetsockoptInt(c.fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | -syscall.EPOLLET, Fd: int32(c.fd)}
	if err := syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		syscall.Close(c.fd)
		return
	}
	l.conns[c.fd] = c
}

// drop closes c, and the other side of an exchange in flight.
func (l *epollLoop) drop(c *epollConn) {
	for _, x := range []*epollConn{c, c.peer} {
		if x == nil || l.conns[x.fd] != x {
			continue
		}
		delete(l.conns, x.fd)
		syscall.Close(x.fd)
		if !x.client {
			for i, p := range l.pool {
				if p == x {
					l.pool = append(l.pool[:i], l.pool[i+1:]...)
					break
				}
			}
		}
	}
}

// readable reads what c has and acts on it. A read that fills less than
// the room it was given took all there was: more bytes bring another
// edge, so the loop stops there without the read that would fail with
// EAGAIN, as nginx does. Only when the peer has closed (eof: its end of
// stream or an error came with the event) does it read until the socket
// says so, since no edge follows the last one.
func (l *epollLoop) readable(c *epollConn, eof bool) {
	for {
		if !c.client && c.peer != nil && len(c.peer.out) > epollMaxPending {
			c.paused = true // the client's flush reads on
			return
		}
		if len(c.in) == cap(c.in) {
			if len(c.in) >= epollMaxHead+epollMaxPending {
				l.drop(c)
				return
			}
			c.in = append(c.in, make([]byte, len(c.in))...)[:len(c.in)]
		}
		room := cap(c.in) - len(c.in)
		n, err := rawIO(syscall.SYS_READ, c.fd, c.in[len(c.in):cap(c.in)])
		if err == syscall.EAGAIN {
			return
		}
		if err != nil || n == 0 {
			l.drop(c)
			return
		}
		c.in = c.in[:len(c.in)+n]
		var ok bool
		if c.client {
			ok = l.request(c)
		} else {
			ok = l.answer(c)
		}
		if !ok {
			l.drop(c)
			return
		}
		if n < room && !eof {
			return
		}
	}
}

var crlf2 = []byte("\r\n\r\n")

// fieldValue returns the value of the first field name (lower case, with
// its colon) in head, a head's field lines after its first line, and
// whether it is there.
func fieldValue(head []byte, name string) ([]byte, bool) {
	for len(head) > 0 {
		line := head
		if i := bytes.IndexByte(head, '\n'); i >= 0 {
			line, head = head[:i], head[i+1:]
		} else {
			head = nil
		}
		if len(line) >= len(name) && bytes.EqualFold(line[:len(name)], []byte(name)) {
			return bytes.Trim(line[len(name):], " \t\r"), true
		}
	}
	return nil, false
}

// request forwards the client's next request when one is whole and none is
// in flight. It reports false when the connection is to be closed.
func (l *epollLoop) request(c *epollConn) bool {
	if c.peer != nil {
		return true // pipelined: sent once the answer in flight is relayed
	}
	end := bytes.Index(c.in, crlf2)
	if end < 0 {
		return len(c.in) <= epollMaxHead
	}
	head := c.in[:end+2]
	fields := head[bytes.IndexByte(head, '\n')+1:]
	if !bytes.HasPrefix(head, []byte("GET ")) {
		return false // a method this floor does not relay
	}
	if _, ok := fieldValue(fields, "content-length:"); ok {
		return false // a body
	}
	if _, ok := fieldValue(fields, "transfer-encoding:"); ok {
		return false
	}
	u, err := l.dial()
	if err != nil {
		return false
	}
	u.peer, c.peer, u.left = c, u, -1
	u.out = append(u.out[:0], head...)
	u.out = append(u.out, "X-Forwarded-For: "...)
	u.out = append(u.out, c.ip...)
	u.out = append(u.out, "\r\n\r\n"...)
	c.in = c.in[:copy(c.in, c.in[end+4:])]
	return l.flush(u)
}

// dial returns an idle upstream connection, or a new one.
func (l *epollLoop) dial() (*epollConn, error) {
	if n := len(l.pool); n > 0 {
		u := l.pool[n-1]
		l.pool = l.pool[:n-1]
		return u, nil
	}
	// A blocking connect on loopback, then non-blocking: the loop waits
	// for it once per pooled connection.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := syscall.Connect(fd, &l.upstream); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	u := &epollConn{fd: fd, in: make([]byte, 0, epollUpBuf)}
	l.add(u)
	if l.conns[fd] != u {
		return nil, errors.New("benchkit: epoll proxy: epoll_ctl failed")
	}
	return u, nil
}

// answer relays what the upstream connection u read of its answer; at its
// end u goes back to the pool and the client's next request is sent. It
// reports false when u is to be closed (and the client with it).
func (l *epollLoop) answer(u *epollConn) bool {
	c := u.peer
	if c == nil {
		return false // bytes nobody asked for
	}
	if u.left < 0 {
		end := bytes.Index(u.in, crlf2)
		if end < 0 {
			return len(u.in) <= epollMaxHead
		}
		head := u.in[:end+2]
		v, ok := fieldValue(head[bytes.IndexByte(head, '\n')+1:], "content-length:")
		if !ok {
			return false
		}
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 0 {
			return false
		}
		u.left = end + 4 + n
	}
	k := min(len(u.in), u.left)
	relay := u.in[:k]
	if len(c.out) == 0 {
		// Straight from the read buffer; only what the client's socket
		// does not take waits in c.out.
		n, err := rawIO(syscall.SYS_WRITE, c.fd, relay)
		if err != nil && err != syscall.EAGAIN {
			l.drop(c)
			return true // drop closed both
		}
		relay = relay[max(n, 0):]
	}
	c.out = append(c.out, relay...)
	u.in = u.in[:copy(u.in, u.in[k:])]
	u.left -= k
	if !l.flush(c) {
		return true // drop closed both
	}
	if u.left > 0 {
		return true
	}
	if len(u.in) > 0 {
		return false
	}
	u.peer, c.peer = nil, nil
	l.pool = append(l.pool, u)
	if len(c.in) > 0 && !l.request(c) {
		l.drop(c)
	}
	return true
}

// flush writes what waits in c.out; the rest waits for the EPOLLOUT edge.
// A client that took enough lets its upstream connection be read on. It
// reports false when c was closed.
func (l *epollLoop) flush(c *epollConn) bool {
	for len(c.out) > 0 {
		n, err := rawIO(syscall.SYS_WRITE, c.fd, c.out)
		if err == syscall.EAGAIN {
			return true
		}
		if err != nil {
			l.drop(c)
			return false
		}
		c.out = c.out[:copy(c.out, c.out[n:])]
	}
	if c.client && c.peer != nil && c.peer.paused {
		c.peer.paused = false // readable paused for this client: read on
		l.readable(c.peer, true)
	}
	return l.conns[c.fd] == c
}

// rawIO reads or writes (trap SYS_READ or SYS_WRITE) p on the non-blocking
// socket fd without telling the scheduler: such a call never blocks, and
// the scheduler's bookkeeping of a system call costs about as much as the
// call itself.
func rawIO(trap uintptr, fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

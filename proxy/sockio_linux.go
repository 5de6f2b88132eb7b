//go:build linux && !386

package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// sockIO does the fast path's reads and writes of one plain TCP socket
// with raw system calls, through the socket's RawConn: the runtime's
// poller still does the waiting (and the deadlines), but the system calls
// themselves do not enter the scheduler's syscall state.
//
// The sockets are non-blocking and every call passes MSG_DONTWAIT as well,
// so none can block: each lasts as long as the kernel's work on the bytes.
// A goroutine in a syscall the runtime knows of lets sysmon hand its P to
// another thread when the call outlasts a 20 µs tick while goroutines wait
// to run, which on a busy gateway is the rule (a write on loopback runs the
// receiver's side of TCP too): the hand-off and the thread that later
// gives the P back cost more than the call. A raw call keeps its P, as
// nginx's worker keeps its core through its system calls.
//
// Writes pass MSG_NOSIGNAL: a peer that has gone answers EPIPE, never
// SIGPIPE.
//
// A sockIO is not copied once bound: its functions are bound to it. A
// read and a write may run at once (a request body is sent while the
// response is read): each has its own fields.
type sockIO struct {
	raw syscall.RawConn
	// The read's buffer, count and error; full, that the last receive
	// filled its buffer (the socket may hold more: a loop, which learns of
	// bytes from edges, cannot tell that they came).
	rp   []byte
	rn   int
	re   syscall.Errno
	full bool
	// The write's.
	iov [2]syscall.Iovec
	msg syscall.Msghdr
	wn  int
	we  syscall.Errno
	// readFn, nowFn and writevFn are recv, readOnce and writev, bound
	// once; awaitFn is sendAwait, bound by the first writeAwait.
	readFn, nowFn, writevFn, awaitFn func(uintptr) bool
}

const (
	sendFlags = syscall.MSG_DONTWAIT | syscall.MSG_NOSIGNAL
	recvFlags = syscall.MSG_DONTWAIT
)

// init binds s to raw; nil leaves s unusable (ok reports false).
func (s *sockIO) init(raw syscall.RawConn) {
	s.raw = raw
	if s.readFn == nil {
		s.readFn, s.nowFn, s.writevFn = s.recv, s.readOnce, s.writev
	}
}

// ok reports whether s is bound to a socket.
func (s *sockIO) ok() bool { return s.raw != nil }

// recvRaw is one raw receive into p, tried again on EINTR: EAGAIN when
// nothing has arrived (recvFlags holds MSG_DONTWAIT).
func recvRaw(fd uintptr, p []byte, flags int) (int, syscall.Errno) {
	if raceIO && flags&syscall.MSG_PEEK == 0 {
		return raceRecv(fd, p)
	}
	for {
		n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd,
			uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), uintptr(flags), 0, 0)
		if e != syscall.EINTR {
			if e != 0 {
				return 0, e
			}
			return int(n), 0
		}
	}
}

// sendmsgRaw is one raw sendmsg of msg's pieces.
func sendmsgRaw(fd uintptr, msg *syscall.Msghdr, v []syscall.Iovec) (int, syscall.Errno) {
	if raceIO {
		// One piece at a time through the race detector's view.
		return raceSend(fd, unsafe.Slice(v[0].Base, v[0].Len))
	}
	msg.Iov = &v[0]
	setLen(&msg.Iovlen, len(v))
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(msg)), sendFlags)
		if e != syscall.EINTR {
			if e != 0 {
				return 0, e
			}
			return int(n), 0
		}
	}
}

// setLen sets a length field whose width depends on the architecture
// (Msghdr.Iovlen: 64 bits on amd64 and arm64, 32 on arm).
func setLen[T ~uint32 | ~uint64](f *T, n int) { *f = T(n) }

// recv is one receive into s.rp: false when nothing has arrived. It is
// s.readFn, RawConn.Read's function for Read (false makes the runtime wait
// for readability).
func (s *sockIO) recv(fd uintptr) bool {
	n, e := recvRaw(fd, s.rp, recvFlags)
	if e == syscall.EAGAIN {
		s.full = false
		return false
	}
	s.rn, s.re, s.full = n, e, n == len(s.rp)
	return true
}

// readOnce is s.nowFn, for readNow: it never waits.
func (s *sockIO) readOnce(fd uintptr) bool {
	if !s.recv(fd) {
		s.re = syscall.EAGAIN
	}
	return true
}

// Read reads into p as net.Conn's Read does, bounded by the socket's read
// deadline.
func (s *sockIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return s.readWith(p, s.readFn)
}

// readNow reads into p what has arrived: errWouldBlock when nothing is
// there, io.EOF at the end of stream.
func (s *sockIO) readNow(p []byte) (int, error) {
	if s.raw == nil {
		return 0, errWouldBlock
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := s.readWith(p, s.nowFn)
	if s.re == syscall.EAGAIN {
		return 0, errWouldBlock
	}
	return n, err
}

func (s *sockIO) readWith(p []byte, fn func(uintptr) bool) (int, error) {
	s.rp, s.re = p, 0
	err := s.raw.Read(fn)
	s.rp = nil
	switch {
	case err != nil:
		return 0, err
	case s.re == syscall.EAGAIN:
		return 0, nil
	case s.re != 0:
		return 0, sockError("read", s.re)
	case s.rn == 0:
		return 0, io.EOF
	}
	return s.rn, nil
}

// Write writes p as net.Conn's Write does, bounded by the socket's write
// deadline.
func (s *sockIO) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return s.writeTwo(nil, p)
}

// writev is s.writevFn: it sends s.iov's pieces, all of them unless the
// send buffer fills (false: the runtime waits for room) or an error.
func (s *sockIO) writev(fd uintptr) bool {
	for s.iov[0].Len+s.iov[1].Len > 0 {
		v := s.iov[:]
		if s.iov[0].Len == 0 {
			v = s.iov[1:]
		}
		n, e := sendmsgRaw(fd, &s.msg, v)
		switch e {
		case 0:
			s.wn += n
			for i := range s.iov {
				k := min(n, int(s.iov[i].Len))
				if s.iov[i].SetLen(int(s.iov[i].Len) - k); s.iov[i].Len == 0 {
					s.iov[i].Base = nil // not past the end of the buffer
				} else {
					s.iov[i].Base = (*byte)(unsafe.Add(unsafe.Pointer(s.iov[i].Base), k))
				}
				n -= k
			}
			continue
		case syscall.EAGAIN:
			return false
		}
		s.we = e
		return true
	}
	return true
}

// writeTwo writes a and then b (a may be empty) in one system call when it
// can, as net.Buffers' WriteTo does, bounded by the write deadline.
func (s *sockIO) writeTwo(a, b []byte) (int, error) {
	s.startWrite(a, b)
	return s.endWrite(s.raw.Write(s.writevFn))
}

// startWrite makes a and then b the write's pieces (s.iov), nothing
// written yet.
func (s *sockIO) startWrite(a, b []byte) {
	s.iov[0] = syscall.Iovec{Base: unsafe.SliceData(a)}
	s.iov[0].SetLen(len(a))
	s.iov[1] = syscall.Iovec{Base: unsafe.SliceData(b)}
	s.iov[1].SetLen(len(b))
	s.wn, s.we = 0, 0
}

// endWrite ends a write whose RawConn call returned err: it lets go of the
// pieces and reports what was written and the write's error.
func (s *sockIO) endWrite(err error) (int, error) {
	s.iov = [2]syscall.Iovec{}
	s.msg.Iov = nil
	if err == nil && s.we != 0 {
		err = sockError("write", s.we)
	}
	return s.wn, err
}

// writeAwait writes a and then b, as writeTwo does, and then waits until
// the socket has something to read (an answer to them, its end, an error)
// or the read
// deadline passes, all in one RawConn.Read: the runtime clears the
// socket's read readiness before the write, so whatever arrives after it
// ends the wait, and the Read that follows finds it there rather than
// failing first with EAGAIN and then waiting. It is for a request whose
// answer cannot come before the request: a peer that sent something
// unasked before the wait began may leave the wait to the deadline (the
// pool's peek refuses a connection with something to read). What ended
// the wait is left to the Read: a deadline that passed or a close fails
// it as it failed the wait.
//
// What the send buffer cannot take at once is written after the wait's
// end, as Write writes it.
func (s *sockIO) writeAwait(a, b []byte) (int, error) {
	if len(a)+len(b) == 0 {
		return 0, nil
	}
	if s.awaitFn == nil {
		s.awaitFn = s.sendAwait
	}
	s.startWrite(a, b)
	_ = s.raw.Read(s.awaitFn)
	var err error
	if s.we == 0 && s.iov[0].Len+s.iov[1].Len > 0 {
		// Not tried (the wait could not begin: a deadline passed, the
		// connection closed) or not taken whole: Write's way.
		err = s.raw.Write(s.writevFn)
	}
	return s.endWrite(err)
}

// sendAwait is s.awaitFn, RawConn.Read's function for writeAwait: while
// something is left to write it writes, and asks for the wait (false)
// once all is written; called again after the wait, with nothing left, it
// ends it. A failed or partial write ends it at once.
func (s *sockIO) sendAwait(fd uintptr) bool {
	if s.iov[0].Len+s.iov[1].Len == 0 {
		return true
	}
	return !s.writev(fd) || s.we != 0
}

// sockError is a failed system call as net.Conn reports it.
func sockError(op string, e syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, e)}
}

//go:build linux && !386 && race

package proxy

import "syscall"

// raceIO: under the race detector, sockIO's reads and sends go through
// syscall.Read and syscall.Write, which tell the detector that bytes
// written to a socket happen before they are read, as net.Conn's I/O
// does; raw calls would hide that, and the tests would report races
// between a goroutine that sets something and then sends a request, and
// the gateway goroutine that reads it. The other builds make the raw
// calls.
const raceIO = true

func raceRecv(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, err := syscall.Read(int(fd), p)
		if err != syscall.EINTR {
			return max(n, 0), toErrno(err)
		}
	}
}

func raceSend(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, err := syscall.Write(int(fd), p)
		if err != syscall.EINTR {
			return max(n, 0), toErrno(err)
		}
	}
}

func toErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if e, ok := err.(syscall.Errno); ok {
		return e
	}
	return syscall.EIO
}

//go:build unix && !(linux && !386)

package proxy

import "syscall"

// recvFlags makes a receive return at once (EAGAIN) when nothing has
// arrived.
const recvFlags = syscall.MSG_DONTWAIT

// recvRaw is one receive into p, tried again on EINTR: EAGAIN when nothing
// has arrived. Where sockIO's raw calls are not made (sockio_linux.go),
// the pool's peek and the hot wait receive through syscall.Recvfrom.
func recvRaw(fd uintptr, p []byte, flags int) (int, syscall.Errno) {
	for {
		n, _, err := syscall.Recvfrom(int(fd), p, flags)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			if e, ok := err.(syscall.Errno); ok {
				return 0, e
			}
			return 0, syscall.EIO
		}
		return n, 0
	}
}

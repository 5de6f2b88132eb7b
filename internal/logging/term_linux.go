package logging

import "golang.org/x/sys/unix"

// isTerminalFd reports whether fd answers the terminal ioctl.
func isTerminalFd(fd uintptr) bool {
	_, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
	return err == nil
}

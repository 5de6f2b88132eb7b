//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package logging

import "golang.org/x/sys/unix"

// isTerminalFd reports whether fd answers the terminal ioctl (TIOCGETA
// on the BSDs and macOS).
func isTerminalFd(fd uintptr) bool {
	_, err := unix.IoctlGetTermios(int(fd), unix.TIOCGETA)
	return err == nil
}

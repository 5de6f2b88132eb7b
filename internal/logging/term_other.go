//go:build !linux && !darwin && !dragonfly && !freebsd && !netbsd && !openbsd

package logging

// isTerminalFd reports false where the terminal ioctl is not known: the
// logs are then JSON, as for a file.
func isTerminalFd(uintptr) bool { return false }

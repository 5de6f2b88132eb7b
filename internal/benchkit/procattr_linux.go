//go:build linux

package benchkit

import "syscall"

// procAttr is a started process's attributes: a process group of its own
// (Proc.Stop ends the group), and, on Linux, SIGKILL from the kernel when
// zkbench dies, so that no proxy or backend outlives an interrupted run.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

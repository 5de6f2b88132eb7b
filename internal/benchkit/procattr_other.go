//go:build unix && !linux

package benchkit

import "syscall"

// procAttr is a started process's attributes: a process group of its own
// (Proc.Stop ends the group). Other systems have no parent-death signal:
// an interrupted run's processes are left to the operator.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

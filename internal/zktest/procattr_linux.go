//go:build linux

package zktest

import "syscall"

// ChildAttr is the process attributes of a server a test starts
// (ZooKeeper, a gateway): the kernel kills it when the test process dies,
// even by SIGKILL (a test binary's timeout), so that no server outlives
// its test.
func ChildAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

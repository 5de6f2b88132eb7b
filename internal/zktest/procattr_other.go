//go:build !linux

package zktest

import "syscall"

// ChildAttr is the process attributes of a server a test starts
// (ZooKeeper, a gateway). Other systems have no parent-death signal: a
// server outlives a test binary killed outright (the test's cleanups stop
// it otherwise).
func ChildAttr() *syscall.SysProcAttr { return nil }

//go:build !linux

package proxy

import "time"

// There is no poller here: idle connections wait in reads (idleconn.go).
func pollersReady() bool { return false }

type poller struct{}

func pollerFor(*pollReg) *poller { return nil }

func (*poller) park(*pollReg, time.Duration, *armer) bool { return false }

type armer struct{}

func getArmer() *armer { return nil }

func putArmer(*armer) {}

func (*armer) fetchFd(*pollReg) bool { return false }

//go:build !linux || 386

package proxy

import "syscall"

// sockIO is Linux's (but 386's, whose socket calls go through
// socketcall): elsewhere it is never bound (ok reports false), and the
// fast path reads and writes through net.Conn.
type sockIO struct{}

func (s *sockIO) init(syscall.RawConn) {}

func (s *sockIO) ok() bool { return false }

func (s *sockIO) Read([]byte) (int, error)  { return 0, errWouldBlock }
func (s *sockIO) Write([]byte) (int, error) { return 0, errWouldBlock }

// readNow cannot read without waiting here: the caller then waits.
func (s *sockIO) readNow([]byte) (int, error) { return 0, errWouldBlock }

func (s *sockIO) writeTwo(a, b []byte) (int, error) { return 0, errWouldBlock }

func (s *sockIO) writeAwait(a, b []byte) (int, error) { return 0, errWouldBlock }

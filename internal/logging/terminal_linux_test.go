//go:build linux

package logging

import (
	"fmt"
	"os"
	"testing"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// openPTY opens the slave side of a new pseudo-terminal (Linux's
// /dev/ptmx and /dev/pts), or skips: under CI, where Debian always has
// them, it fails.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		noPTY(t, "open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		noPTY(t, "unlock pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		noPTY(t, "pseudo-terminal number: %v", err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		noPTY(t, "open pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { slave.Close() })
	return slave
}

func TestAutoIsTextOnATerminal(t *testing.T) {
	tty := openPTY(t)
	if !IsTerminal(tty) {
		t.Fatal("a pseudo-terminal is not a terminal")
	}
	log, err := New("info", "auto", tty)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := log.Formatter.(*logrus.TextFormatter); !ok {
		t.Errorf("formatter on a terminal = %T, want text", log.Formatter)
	}
}

func noPTY(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

package zktest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB that records Fatalf and Skipf instead of acting.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }

func (r *recorder) Skipf(format string, args ...any) { r.skip = fmt.Sprintf(format, args...) }

func TestRequireWhenMissing(t *testing.T) {
	saved := availability
	t.Cleanup(func() { availability = saved })
	availability = func() error { return errors.New("missing /usr/share/java/zookeeper.jar; " + installHint) }

	t.Setenv("CI", "")
	r := &recorder{TB: t}
	Require(r)
	if r.fatal != "" || !strings.Contains(r.skip, "apt-get install zookeeper") {
		t.Errorf("locally: skip %q, fatal %q; want a skip saying how to install", r.skip, r.fatal)
	}

	t.Setenv("CI", "true")
	r = &recorder{TB: t}
	Require(r)
	if r.skip != "" || !strings.Contains(r.fatal, "CI=true") || !strings.Contains(r.fatal, "zookeeper.jar") {
		t.Errorf("under CI: skip %q, fatal %q; want a failure naming the cause", r.skip, r.fatal)
	}
}

func TestRequireWhenPresent(t *testing.T) {
	saved := availability
	t.Cleanup(func() { availability = saved })
	availability = func() error { return nil }
	t.Setenv("CI", "true")
	r := &recorder{TB: t}
	Require(r)
	if r.skip != "" || r.fatal != "" {
		t.Errorf("skip %q, fatal %q; want neither", r.skip, r.fatal)
	}
}

func TestWaitFor(t *testing.T) {
	n := 0
	WaitFor(t, 0, func() bool { n++; return true }, "immediate")
	if n != 1 {
		t.Errorf("cond called %d times, want 1", n)
	}
	r := &recorder{TB: t}
	WaitFor(r, 0, func() bool { return false }, "the %s", "impossible")
	if !strings.Contains(r.fatal, "waiting for the impossible") {
		t.Errorf("fatal %q, want it to name what was awaited", r.fatal)
	}
}

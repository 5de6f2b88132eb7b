package e2e

import (
	"github.com/zkgate/zkgate/internal/zktest"

	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// stopGrace bounds how long a process may take to exit after SIGTERM
	// before it is killed.
	stopGrace = 10 * time.Second
	// tailLines is how much of a process's output a failure shows.
	tailLines = 40
)

// process is a child process started by a test, with its stdout and stderr
// in files.
type process struct {
	name   string
	cmd    *exec.Cmd
	stdout string
	stderr string
	done   chan struct{}
	err    error // cmd.Wait's result, once done is closed
}

// procs are the processes of one test, stopped together when it ends.
type procs struct {
	t   *testing.T
	dir string

	mu   sync.Mutex
	list []*process
}

// newProcs returns the process group of t. Create it after the ZooKeeper the
// processes use, so that its cleanup (stopping them) runs before
// ZooKeeper's.
func newProcs(t *testing.T) *procs {
	g := &procs{t: t, dir: t.TempDir()}
	t.Cleanup(g.cleanup)
	return g
}

// start runs bin with args, its output going to NAME.stdout and NAME.stderr.
func (g *procs) start(name, bin string, args ...string) *process {
	g.t.Helper()
	p := &process{
		name:   name,
		stdout: filepath.Join(g.dir, name+".stdout"),
		stderr: filepath.Join(g.dir, name+".stderr"),
		done:   make(chan struct{}),
	}
	out, err := os.Create(p.stdout)
	if err != nil {
		g.t.Fatalf("start %s: %v", name, err)
	}
	defer out.Close()
	errf, err := os.Create(p.stderr)
	if err != nil {
		g.t.Fatalf("start %s: %v", name, err)
	}
	defer errf.Close()
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = out, errf
	// Should the test binary die, its children go with it (on Linux).
	p.cmd.SysProcAttr = zktest.ChildAttr()
	if err := p.cmd.Start(); err != nil {
		g.t.Fatalf("start %s (%s): %v", name, bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	g.mu.Lock()
	g.list = append(g.list, p)
	g.mu.Unlock()
	return p
}

// cleanup sends SIGTERM to every live process at once, waits for them
// (bounded), kills the rest, and shows the output tails when the test failed.
func (g *procs) cleanup() {
	g.mu.Lock()
	list := append([]*process(nil), g.list...)
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range list {
		wg.Go(func() {
			if err := p.stop(stopGrace); err != nil {
				g.t.Errorf("%v", err)
			}
		})
	}
	wg.Wait()
	if !g.t.Failed() {
		return
	}
	for _, p := range list {
		g.t.Logf("---- %s (pid %d, %s) stderr tail:\n%s", p.name, p.pid(), p.state(), tail(p.stderr, tailLines))
	}
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// state describes how the process ended, or "running".
func (p *process) state() string {
	if !p.exited() {
		return "running"
	}
	if p.err == nil {
		return "exit status 0"
	}
	return p.err.Error()
}

// wait waits up to d for the process to end and reports whether it did.
func (p *process) wait(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.done:
		return true
	case <-timer.C:
		return false
	}
}

// signal sends sig to the process, unless it has ended.
func (p *process) signal(sig syscall.Signal) error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s (pid %d): send %v: %w", p.name, p.pid(), sig, err)
	}
	return nil
}

// stop sends SIGTERM, waits up to grace, then sends SIGKILL and waits again.
// It returns an error when the process had to be killed or would not die.
func (p *process) stop(grace time.Duration) error {
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	if p.wait(grace) {
		return nil
	}
	if err := p.kill(); err != nil {
		return err
	}
	return fmt.Errorf("%s (pid %d): still running %v after SIGTERM; killed", p.name, p.pid(), grace)
}

// kill sends SIGKILL and waits (bounded) until the process is reaped.
func (p *process) kill() error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	if !p.wait(stopGrace) {
		return fmt.Errorf("%s (pid %d): not reaped %v after SIGKILL", p.name, p.pid(), stopGrace)
	}
	return nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// await polls cond like poll and fails t when timeout passes first.
func await(t *testing.T, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if !zktest.Poll(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, fmt.Sprintf(format, args...))
	}
}

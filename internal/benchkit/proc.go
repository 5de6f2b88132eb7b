package benchkit

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Proc is a process the harness started. Its output goes to a file; it is
// stopped by its PID.
type Proc struct {
	// Name identifies the process in messages.
	Name string
	// LogPath is the file that receives its standard output and error.
	LogPath string

	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// ProcSpec says how to start a process.
type ProcSpec struct {
	// Name identifies the process in messages. Required.
	Name string
	// Argv is the command and its arguments. Required.
	Argv []string
	// Env is added to the harness's environment.
	Env []string
	// Log receives the standard error, and the standard output unless
	// Stdout is set. Required.
	Log string
	// Stdout, when set, receives the standard output (an access log).
	Stdout string
}

// StartProc starts the process spec describes, its output appended to its
// files. The process gets its own process group, so that a Ctrl-C on the
// terminal reaches the harness only and the harness stops everything in
// order, and the kernel kills it if the harness dies without stopping it.
func StartProc(spec ProcSpec) (*Proc, error) {
	if spec.Name == "" || len(spec.Argv) == 0 || spec.Log == "" {
		return nil, fmt.Errorf("benchkit: start %q: name, command and log file are required", spec.Name)
	}
	errOut, err := os.OpenFile(spec.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("benchkit: start %s: %w", spec.Name, err)
	}
	defer errOut.Close() // the child has its own copy
	out := errOut
	if spec.Stdout != "" {
		if out, err = os.OpenFile(spec.Stdout, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
			return nil, fmt.Errorf("benchkit: start %s: %w", spec.Name, err)
		}
		defer out.Close()
	}
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.Stdout, cmd.Stderr = out, errOut
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("benchkit: start %s (%s): %w", spec.Name, spec.Argv[0], err)
	}
	p := &Proc{Name: spec.Name, LogPath: spec.Log, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID returns the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited (and been reaped).
func (p *Proc) Exited() <-chan struct{} { return p.done }

// Alive reports whether the process is still running.
func (p *Proc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Err returns an error saying that the process exited, with its status and
// log file, or nil while it runs.
func (p *Proc) Err() error {
	if p.Alive() {
		return nil
	}
	return fmt.Errorf("benchkit: %s (pid %d) exited: %v; see %s", p.Name, p.PID(), p.waitErr, p.LogPath)
}

// Stop sends SIGTERM, waits up to grace for the process to exit, then sends
// SIGKILL. Children the process had when Stop began (nginx's workers) and
// that outlive it are killed too, by their PIDs.
func (p *Proc) Stop(grace time.Duration) error {
	if !p.Alive() {
		return nil
	}
	kids, _ := Children(p.PID())
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	var err error
	select {
	case <-p.done:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			return fmt.Errorf("benchkit: %s (pid %d) survived SIGKILL for 5s", p.Name, p.PID())
		}
		err = fmt.Errorf("benchkit: %s (pid %d) ignored SIGTERM for %v and was killed", p.Name, p.PID(), grace)
	}
	for _, k := range kids {
		if st, serr := ProcState(k); serr == nil && st != 'Z' {
			_ = syscall.Kill(k, syscall.SIGKILL)
		}
	}
	return err
}

// Procs is the set of processes a run started, stopped in reverse order of
// start. Its methods are safe for concurrent use.
type Procs struct {
	mu    sync.Mutex
	procs []*Proc
}

// Start starts a process (see StartProc) and adds it to the set.
func (s *Procs) Start(spec ProcSpec) (*Proc, error) {
	p, err := StartProc(spec)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p, nil
}

// Stop stops p and removes it from the set.
func (s *Procs) Stop(p *Proc, grace time.Duration) error {
	s.mu.Lock()
	s.procs = slices.DeleteFunc(s.procs, func(q *Proc) bool { return q == p })
	s.mu.Unlock()
	return p.Stop(grace)
}

// StopAll stops every process of the set, the last started first.
func (s *Procs) StopAll(grace time.Duration) error {
	s.mu.Lock()
	procs := s.procs
	s.procs = nil
	s.mu.Unlock()
	var errs []error
	for _, p := range slices.Backward(procs) {
		if err := p.Stop(grace); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

package zktest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// quorumModes are the modes of a member that serves as part of a quorum.
var quorumModes = []string{"leader", "follower"}

// Ensemble is an n-node ZooKeeper ensemble on loopback started by
// StartEnsemble. Members are numbered 0..n-1 (their myid is index+1). Its
// methods may be called from any goroutine.
type Ensemble struct {
	members []*member
}

type member struct {
	dir        string
	myid       int
	clientPort int
	peerPorts  [2]int // quorum and leader-election ports

	mu   sync.Mutex
	proc *process // nil while stopped
}

// StartEnsemble starts an n-node ensemble (n >= 2; 3 is typical) on free
// loopback ports, every member in its own directory, waits until every member
// reports Mode leader or follower and a session can be opened, and stops it
// when the test ends.
func StartEnsemble(t testing.TB, n int) *Ensemble {
	t.Helper()
	Require(t)
	if n < 2 {
		t.Fatalf("zktest: StartEnsemble: n = %d, want at least 2 (use Start for one server)", n)
	}
	root := t.TempDir()
	e := &Ensemble{}
	var servers strings.Builder
	for i := range n {
		ports := make([]int, 3)
		for j := range ports {
			ports[j] = FreePort(t)
		}
		m := &member{
			dir:        filepath.Join(root, "node"+strconv.Itoa(i+1)),
			myid:       i + 1,
			clientPort: ports[0],
			peerPorts:  [2]int{ports[1], ports[2]},
		}
		e.members = append(e.members, m)
		fmt.Fprintf(&servers, "server.%d=127.0.0.1:%d:%d\n", m.myid, ports[1], ports[2])
	}
	t.Cleanup(func() {
		e.each(func(i int, m *member) {
			if err := m.stop(0); err != nil {
				t.Errorf("zktest: stop ensemble member %d: %v", i, err)
			}
		})
	})
	for i, m := range e.members {
		if err := m.writeConfig(servers.String()); err != nil {
			t.Fatalf("zktest: ensemble member %d: %v", i, err)
		}
	}
	var (
		mu      sync.Mutex
		errList []error
	)
	e.each(func(i int, m *member) {
		if err := m.start(); err != nil {
			mu.Lock()
			errList = append(errList, fmt.Errorf("member %d: %w", i, err))
			mu.Unlock()
		}
	})
	if err := errors.Join(errList...); err != nil {
		t.Fatalf("zktest: start %d-node ensemble: %v", n, err)
	}
	return e
}

// each runs fn for every member concurrently and waits for all of them.
func (e *Ensemble) each(fn func(i int, m *member)) {
	var wg sync.WaitGroup
	for i, m := range e.members {
		wg.Go(func() { fn(i, m) })
	}
	wg.Wait()
}

// Addrs returns the members' client addresses, by index.
func (e *Ensemble) Addrs() []string {
	out := make([]string, len(e.members))
	for i, m := range e.members {
		out[i] = m.addr()
	}
	return out
}

// ConnectString returns the client addresses joined by commas.
func (e *Ensemble) ConnectString() string { return strings.Join(e.Addrs(), ",") }

// PID returns the process id of member i, or 0 while it is stopped.
func (e *Ensemble) PID(i int) int {
	m := e.members[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil {
		return 0
	}
	return m.proc.pid()
}

// Leader waits (bounded) until exactly one running member reports Mode leader
// and returns its index.
func (e *Ensemble) Leader(t testing.TB) int {
	t.Helper()
	leader := -1
	ok := Poll(startTimeout, func() bool {
		leader = -1
		for i, m := range e.members {
			if !m.running() {
				continue
			}
			if mode, err := Mode(m.addr()); err == nil && mode == "leader" {
				if leader >= 0 {
					leader = -1
					return false
				}
				leader = i
			}
		}
		return leader >= 0
	})
	if !ok {
		t.Fatalf("zktest: no single leader after %v; modes: %s", startTimeout, e.modes())
	}
	return leader
}

// Kill sends SIGKILL to member i and waits until it is dead and reaped.
func (e *Ensemble) Kill(t testing.TB, i int) {
	t.Helper()
	e.check(t, i)
	if err := e.members[i].stop(0); err != nil {
		t.Fatalf("zktest: kill ensemble member %d: %v", i, err)
	}
}

// KillLeader kills the current leader and returns its index.
func (e *Ensemble) KillLeader(t testing.TB) int {
	t.Helper()
	i := e.Leader(t)
	e.Kill(t, i)
	return i
}

// Restart starts member i again with its data and ports (stopping it first if
// it runs), and waits until it has rejoined as leader or follower.
func (e *Ensemble) Restart(t testing.TB, i int) {
	t.Helper()
	e.check(t, i)
	m := e.members[i]
	if err := m.stop(stopGrace); err != nil {
		t.Fatalf("zktest: restart ensemble member %d: %v", i, err)
	}
	if err := m.start(); err != nil {
		t.Fatalf("zktest: restart ensemble member %d: %v", i, err)
	}
}

// WaitQuorum waits (bounded) until some running member is leader again and a
// session can be opened through a running member.
func (e *Ensemble) WaitQuorum(t testing.TB) {
	t.Helper()
	e.Leader(t)
	var last error
	ok := Poll(startTimeout, func() bool {
		for _, m := range e.members {
			if m.running() {
				if last = checkSession(m.addr()); last == nil {
					return true
				}
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("zktest: no quorum after %v: %v; modes: %s", startTimeout, last, e.modes())
	}
}

// LogTail returns the last lines of member i's log.
func (e *Ensemble) LogTail(i int) string { return logTail(e.members[i].logPath(), logTailLines) }

func (e *Ensemble) check(t testing.TB, i int) {
	t.Helper()
	if i < 0 || i >= len(e.members) {
		t.Fatalf("zktest: ensemble member %d out of range [0, %d)", i, len(e.members))
	}
}

// modes describes every member's state, for failure messages.
func (e *Ensemble) modes() string {
	parts := make([]string, len(e.members))
	for i, m := range e.members {
		state := "stopped"
		if m.running() {
			if mode, err := Mode(m.addr()); err != nil {
				state = err.Error()
			} else {
				state = mode
			}
		}
		parts[i] = fmt.Sprintf("%d=%s", i, state)
	}
	return strings.Join(parts, ", ")
}

func (m *member) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.clientPort)) }

func (m *member) logPath() string { return filepath.Join(m.dir, "zookeeper.log") }

func (m *member) running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc != nil && !m.proc.exited()
}

func (m *member) writeConfig(servers string) error {
	data := filepath.Join(m.dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(data, "myid"), []byte(strconv.Itoa(m.myid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("write myid: %w", err)
	}
	text := commonConfig(data) +
		"initLimit=50\n" + // ticks for a follower to connect and sync: 10s
		"syncLimit=15\n" + // ticks a follower may lag: 3s, for loaded machines
		fmt.Sprintf("clientPort=%d\nclientPortAddress=127.0.0.1\n", m.clientPort) +
		servers
	cfg := filepath.Join(m.dir, "zoo.cfg")
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", cfg, err)
	}
	return nil
}

func (m *member) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil {
		return errors.New("already running")
	}
	for _, port := range []int{m.clientPort, m.peerPorts[0], m.peerPorts[1]} {
		if err := portBusy(port); err != nil {
			return err
		}
	}
	p, err := launch(quorumMain, filepath.Join(m.dir, "zoo.cfg"), m.logPath())
	if err != nil {
		return err
	}
	if err := awaitServing(p, m.addr(), m.clientPort, quorumModes, startTimeout); err != nil {
		_ = p.stop(0)
		return err
	}
	m.proc = p
	return nil
}

func (m *member) stop(grace time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil {
		return nil
	}
	err := m.proc.stop(grace)
	m.proc = nil
	return err
}

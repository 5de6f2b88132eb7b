package zktest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// TickTime is the servers' tick. Session timeouts are bounded by
	// [2, MaxSessionTimeout/TickTime] ticks, so clients may ask for
	// sessions as short as 400ms.
	TickTime = 200 * time.Millisecond
	// MaxSessionTimeout is the longest session timeout the servers grant.
	MaxSessionTimeout = 60 * time.Second

	// startTimeout bounds one JVM start, generous for a loaded 2-core machine.
	startTimeout = 60 * time.Second
	// startAttempts is how often Start picks a new port when another
	// process took the chosen one before the JVM could bind it.
	startAttempts = 3
	logTailLines  = 40
)

// Server is a standalone ZooKeeper started by Start. Its methods may be called
// from any goroutine.
type Server struct {
	dir  string
	port int

	mu   sync.Mutex
	proc *process // nil while stopped
}

// Start starts a standalone ZooKeeper on a free loopback port, with its data
// in t.TempDir(), waits until it serves, and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	Require(t)
	s := &Server{dir: t.TempDir()}
	// At the end nothing is worth a graceful stop: kill at once.
	t.Cleanup(func() {
		if err := s.stop(0); err != nil {
			t.Errorf("zktest: stop server: %v", err)
		}
	})
	var err error
	for range startAttempts {
		if s.port, err = freePort(); err != nil {
			break
		}
		if err = s.start(); err == nil || !errors.Is(err, errPortTaken) {
			break
		}
		t.Logf("zktest: %v; retrying on another port", err)
	}
	if err != nil {
		t.Fatalf("zktest: start ZooKeeper: %v", err)
	}
	return s
}

// Addr returns the client address, "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the client port.
func (s *Server) Port() int { return s.port }

// Dir returns the directory holding the server's configuration, data and log.
func (s *Server) Dir() string { return s.dir }

// PID returns the process id of the running JVM, or 0 while stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.pid()
}

// Stop stops the server (SIGTERM, then SIGKILL after a bounded wait), keeping
// its data: clients see an outage until Restart. Stopping a stopped server
// does nothing.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.stop(stopGrace); err != nil {
		t.Fatalf("zktest: stop %s: %v", s.Addr(), err)
	}
}

// Restart starts the server again on the same port with the same data, and
// waits until it serves. A running server is stopped first.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.stop(stopGrace); err != nil {
		t.Fatalf("zktest: restart %s: %v", s.Addr(), err)
	}
	if err := s.start(); err != nil {
		t.Fatalf("zktest: restart %s: %v", s.Addr(), err)
	}
}

// LogTail returns the last lines of the server's log.
func (s *Server) LogTail() string { return logTail(s.logPath(), logTailLines) }

func (s *Server) logPath() string { return filepath.Join(s.dir, "zookeeper.log") }

func (s *Server) stop(grace time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	err := s.proc.stop(grace)
	s.proc = nil
	return err
}

// errPortTaken marks a start that failed because the port was not free.
var errPortTaken = errors.New("port taken")

// start launches the JVM on s.port and waits until it serves. It refuses a
// port that is already bound, and kills its JVM again on any failure.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("already running")
	}
	if err := portBusy(s.port); err != nil {
		return fmt.Errorf("%w: %w", errPortTaken, err)
	}
	cfg, err := s.writeConfig()
	if err != nil {
		return err
	}
	p, err := launch(standaloneMain, cfg, s.logPath())
	if err != nil {
		return err
	}
	if err := awaitServing(p, s.Addr(), s.port, []string{"standalone"}, startTimeout); err != nil {
		_ = p.stop(0)
		return err
	}
	s.proc = p
	return nil
}

func (s *Server) writeConfig() (string, error) {
	data := filepath.Join(s.dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}
	cfg := filepath.Join(s.dir, "zoo.cfg")
	text := commonConfig(data) + fmt.Sprintf("clientPort=%d\nclientPortAddress=127.0.0.1\n", s.port)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", cfg, err)
	}
	return cfg, nil
}

// commonConfig is the part of zoo.cfg shared by standalone servers and
// ensemble members.
func commonConfig(dataDir string) string {
	return strings.Join([]string{
		"tickTime=" + strconv.Itoa(int(TickTime/time.Millisecond)),
		"maxSessionTimeout=" + strconv.Itoa(int(MaxSessionTimeout/time.Millisecond)),
		"dataDir=" + dataDir,
		"admin.enableServer=false",
		"4lw.commands.whitelist=ruok,srvr,mntr",
		// Tests need no durability against power loss; a killed process
		// loses nothing either way, since written data sits in the page cache.
		"forceSync=no",
		// Transaction logs preallocate 64MB by default; 1MB is plenty here.
		"preAllocSize=1024",
		"",
	}, "\n")
}

// awaitServing waits until the server of process p answers srvr with one of
// modes on addr, is itself the process listening on port, and opens a real
// session. It fails fast when p exits, with the log's tail in the error.
func awaitServing(p *process, addr string, port int, modes []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if p.exited() {
			err := fmt.Errorf("ZooKeeper on %s (pid %d) died during start: %w", addr, p.pid(), p.exitError())
			if strings.Contains(logTail(p.logPath, logTailLines), "Address already in use") {
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
			return fmt.Errorf("%w\n%s", err, logTail(p.logPath, logTailLines))
		}
		last = probe(p, addr, port, modes)
		if last == nil {
			return nil
		}
		if errors.Is(last, errForeignListener) {
			return fmt.Errorf("%w\n%s", last, logTail(p.logPath, logTailLines))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ZooKeeper on %s (pid %d) not serving after %v: %w\n%s",
				addr, p.pid(), timeout, last, logTail(p.logPath, logTailLines))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// errForeignListener means a server answers on the port, but not ours.
var errForeignListener = errors.New("another process answers on the port")

// probe performs one readiness check; see awaitServing.
func probe(p *process, addr string, port int, modes []string) error {
	mode, err := Mode(addr)
	if err != nil {
		return err
	}
	if !slices.Contains(modes, mode) {
		return fmt.Errorf("mode %q, want one of %v", mode, modes)
	}
	mine, err := listensOn(p.pid(), port)
	if err != nil {
		return fmt.Errorf("check listener of pid %d: %w", p.pid(), err)
	}
	if !mine {
		if p.exited() {
			return errStopped
		}
		return fmt.Errorf("%w: %s answers srvr but pid %d does not listen on port %d",
			errForeignListener, addr, p.pid(), port)
	}
	return checkSession(addr)
}

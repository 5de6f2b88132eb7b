package zktest

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

func TestStartServesEphemeralNode(t *testing.T) {
	t.Parallel()
	s := Start(t)
	if mode, err := Mode(s.Addr()); err != nil || mode != "standalone" {
		t.Fatalf("Mode(%s) = %q, %v; want standalone", s.Addr(), mode, err)
	}
	if s.PID() == 0 {
		t.Fatal("PID() = 0 for a running server")
	}
	conn := Connect(t, s.Addr())

	if _, err := conn.Create("/eph", []byte("hello"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create /eph: %v", err)
	}
	data, stat, err := conn.Get("/eph")
	if err != nil {
		t.Fatalf("get /eph: %v", err)
	}
	if string(data) != "hello" {
		t.Errorf("get /eph = %q, want %q", data, "hello")
	}
	if stat.EphemeralOwner != conn.SessionID() {
		t.Errorf("/eph owner = 0x%x, want this session 0x%x", stat.EphemeralOwner, conn.SessionID())
	}
}

func TestStopRestartKeepsDataAndSession(t *testing.T) {
	t.Parallel()
	s := Start(t)
	conn, ev := ConnectEvents(t, SessionTimeout, s.Addr())
	session := conn.SessionID()
	if _, err := conn.Create("/kept", []byte("v1"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create /kept: %v", err)
	}

	pid := s.PID()
	s.Stop(t)
	if s.PID() != 0 {
		t.Errorf("PID() = %d after Stop, want 0", s.PID())
	}
	if state, err := procState(pid); err == nil && state != 'Z' {
		t.Errorf("pid %d still alive (state %c) after Stop", pid, state)
	}
	if _, err := FourLetterWord(s.Addr(), "ruok"); err == nil {
		t.Errorf("%s still answers after Stop", s.Addr())
	}
	ev.Await(t, zk.StateDisconnected, 10*time.Second)

	s.Restart(t)
	if s.PID() == 0 || s.PID() == pid {
		t.Errorf("PID() = %d after Restart, want a new running process (old %d)", s.PID(), pid)
	}
	ev.Await(t, zk.StateHasSession, 30*time.Second)
	if conn.SessionID() != session {
		t.Errorf("session 0x%x after restart, want 0x%x to survive a short outage", conn.SessionID(), session)
	}
	data, _, err := conn.Get("/kept")
	if err != nil || string(data) != "v1" {
		t.Fatalf("get /kept after restart = %q, %v; want v1", data, err)
	}
	if _, err := conn.Create("/after", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create /after after restart: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "data", "version-2")); err != nil {
		t.Errorf("data dir: %v", err)
	}
}

func TestRestartRefusesBusyPort(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Stop(t)
	ln, err := net.Listen("tcp", s.Addr())
	if err != nil {
		t.Fatalf("occupy %s: %v", s.Addr(), err)
	}
	defer ln.Close()

	err = s.start()
	if !errors.Is(err, errPortTaken) {
		t.Fatalf("start on busy %s = %v, want errPortTaken", s.Addr(), err)
	}
	if !strings.Contains(err.Error(), "already in use") {
		t.Errorf("error %q does not say the port is in use", err)
	}
	if s.PID() != 0 {
		t.Errorf("PID() = %d after a refused start, want 0", s.PID())
	}
}

// A server of someone else answering on the port must not pass for ours:
// readiness is checked against the process that was started.
func TestReadinessRejectsForeignServer(t *testing.T) {
	t.Parallel()
	other := Start(t)
	mine := &Server{dir: t.TempDir(), port: FreePort(t)}
	cfg, err := mine.writeConfig()
	if err != nil {
		t.Fatal(err)
	}
	p, err := launch(standaloneMain, cfg, mine.logPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.stop(0) })

	// Once our JVM serves its own port, ask about the other server's port.
	if err := awaitServing(p, mine.Addr(), mine.port, []string{"standalone"}, startTimeout); err != nil {
		t.Fatal(err)
	}
	err = awaitServing(p, other.Addr(), other.Port(), []string{"standalone"}, startTimeout)
	if !errors.Is(err, errForeignListener) {
		t.Fatalf("awaitServing against another server's port = %v, want errForeignListener", err)
	}
}

func TestStartFailureReportsLog(t *testing.T) {
	t.Parallel()
	Require(t)
	s := &Server{dir: t.TempDir(), port: FreePort(t)}
	cfg, err := s.writeConfig()
	if err != nil {
		t.Fatal(err)
	}
	// A configuration ZooKeeper rejects makes the JVM exit during start.
	if err := os.WriteFile(cfg, []byte("tickTime=notanumber\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := launch(standaloneMain, cfg, s.logPath())
	if err != nil {
		t.Fatal(err)
	}
	err = awaitServing(p, s.Addr(), s.port, []string{"standalone"}, startTimeout)
	if err == nil {
		t.Fatal("awaitServing succeeded for a server with a broken configuration")
	}
	for _, want := range []string{"died during start", "zookeeper.log (tail)", "notanumber"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if !p.exited() {
		t.Error("process still running after a failed start")
	}
}

// BenchmarkStart measures one standalone start, from launching the JVM to a
// verified session; the kill after it is not timed.
func BenchmarkStart(b *testing.B) {
	for b.Loop() {
		s := Start(b)
		b.StopTimer()
		if err := s.stop(0); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

package zktest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseProcState(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want byte
	}{
		{"1234 (java) S 1 1234 1234 0 -1", 'S'},
		{"99 (a) (b) Z 1 99", 'Z'},    // comm with ") (" inside
		{"7 (with space) R 1 7", 'R'}, // comm with a space
		{"8 (x)) D 1 8", 'D'},         // comm ending in ')'
	} {
		got, err := parseProcState([]byte(tc.stat))
		if err != nil || got != tc.want {
			t.Errorf("parseProcState(%q) = %c, %v; want %c", tc.stat, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "12 (java", "12 (java)"} {
		if _, err := parseProcState([]byte(bad)); err == nil {
			t.Errorf("parseProcState(%q) succeeded, want an error", bad)
		}
	}
}

// A child that has exited but is not reaped yet is a zombie: kill -0 still
// succeeds on it, /proc/PID/stat says Z.
func TestProcStateSeesZombie(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	WaitFor(t, 10*time.Second, func() bool {
		state, err := procState(pid)
		return err == nil && state == 'Z'
	}, "pid %d to become a zombie", pid)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if state, err := procState(pid); err == nil {
		t.Errorf("reaped pid %d still has state %c", pid, state)
	}
}

func TestListeningInodes(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:5DC0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0
   1: 0100007F:5DC0 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0 20 4 30 10 -1
   2: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 333 1 0 100 0 0 10 0
`
	got := listeningInodes([]byte(table), 0x5DC0)
	if len(got) != 1 || got[0] != "111" {
		t.Errorf("listeningInodes(port 0x5DC0) = %v, want [111] (the LISTEN socket only)", got)
	}
	if got := listeningInodes([]byte(table), 0x1234); len(got) != 0 {
		t.Errorf("listeningInodes(unused port) = %v, want none", got)
	}
}

func TestListensOn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if ok, err := listensOn(os.Getpid(), port); err != nil || !ok {
		t.Errorf("listensOn(self, %d) = %v, %v; want true", port, ok, err)
	}
	// A child process holds no socket of ours.
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if ok, err := listensOn(cmd.Process.Pid, port); err != nil || ok {
		t.Errorf("listensOn(child, %d) = %v, %v; want false", port, ok, err)
	}
}

func TestPortBusy(t *testing.T) {
	port := FreePort(t)
	if err := portBusy(port); err != nil {
		t.Fatalf("FreePort returned busy port %d: %v", port, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port
	if err := portBusy(busy); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("portBusy(%d) = %v, want an error saying it is in use", busy, err)
	}
}

func TestFreePortNeverRepeats(t *testing.T) {
	seen := make(map[int]bool)
	for range 50 {
		p := FreePort(t)
		if seen[p] {
			t.Fatalf("FreePort returned %d twice", p)
		}
		if p >= ephemeralLow() {
			t.Errorf("FreePort returned %d inside the ephemeral range (from %d)", p, ephemeralLow())
		}
		seen[p] = true
	}
}

func TestLogTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zookeeper.log")
	var b strings.Builder
	for i := range 100 {
		b.WriteString("line ")
		b.WriteString(strings.Repeat("x", i%7))
		b.WriteString("\n")
	}
	b.WriteString("last line\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	tail := logTail(path, 3)
	lines := strings.Split(tail, "\n")
	if len(lines) != 4 || lines[3] != "last line" || !strings.Contains(lines[0], path) {
		t.Errorf("logTail = %q, want a header and the last 3 lines", tail)
	}
	if got := logTail(filepath.Join(t.TempDir(), "missing"), 3); !strings.Contains(got, "no log") {
		t.Errorf("logTail(missing) = %q, want it to say there is no log", got)
	}
}

package benchkit

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestProcCPUGrowsWithWork(t *testing.T) {
	pid := os.Getpid()
	before, err := ProcCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Spin until the kernel has charged at least two ticks (bounded).
	deadline := time.Now().Add(10 * time.Second)
	x := 0
	for {
		for i := range 1_000_000 {
			x += i
		}
		now, err := ProcCPU(pid)
		if err != nil {
			t.Fatal(err)
		}
		if now-before >= 2*time.Second/userHZ {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time stayed at %v after 10s of spinning (from %v); x=%d", now, before, x)
		}
	}
}

func TestProcRSSAndState(t *testing.T) {
	rss, err := ProcRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss < 1<<20 || rss%1024 != 0 {
		t.Errorf("own RSS = %d bytes, want a whole number of KiB above 1 MiB", rss)
	}
	st, err := ProcState(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st != 'R' && st != 'S' {
		t.Errorf("own state = %q, want R or S", st)
	}
}

func TestProcReadersNameMissingProcess(t *testing.T) {
	const pid = 1 << 30 // above pid_max
	if _, err := ProcCPU(pid); err == nil || !strings.Contains(err.Error(), "pid 1073741824") {
		t.Errorf("ProcCPU of a missing pid: %v, want an error naming it", err)
	}
	if _, err := ProcRSS(pid); err == nil || !strings.Contains(err.Error(), "pid 1073741824") {
		t.Errorf("ProcRSS of a missing pid: %v, want an error naming it", err)
	}
	if _, err := GroupUsage([]int{os.Getpid(), pid}); err == nil {
		t.Error("GroupUsage with a missing pid: no error")
	}
}

func TestStatFieldsWithAwkwardName(t *testing.T) {
	line := []byte("42 (a) (b c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 1 0 100 1000 50")
	f, err := statFields(line)
	if err != nil {
		t.Fatal(err)
	}
	if f[0] != "S" || f[1] != "1" || f[11] != "250" || f[12] != "30" {
		t.Fatalf("fields = %q, want state S, ppid 1, utime 250, stime 30", f[:13])
	}
	if _, err := statFields([]byte("42 no parenthesis")); err == nil {
		t.Error("a line without ')' was accepted")
	}
	if _, err := statFields([]byte("42 (x) S 1 2")); err == nil {
		t.Error("a short line was accepted")
	}
}

func TestChildrenAndGroupUsage(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	kids, err := Children(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(kids, cmd.Process.Pid) {
		t.Fatalf("Children(self) = %v, want it to contain sleep's pid %d", kids, cmd.Process.Pid)
	}
	// A sleeping process's memory and CPU time stand still: the group of
	// it twice is twice it.
	pid := cmd.Process.Pid
	rss, err := ProcRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	cpu, err := ProcCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	u, err := GroupUsage([]int{pid, pid})
	if err != nil {
		t.Fatal(err)
	}
	if u.RSS != 2*rss || u.CPU != 2*cpu || rss == 0 {
		t.Errorf("GroupUsage(sleep, sleep) = %+v, want twice RSS %d and CPU %v", u, rss, cpu)
	}
}

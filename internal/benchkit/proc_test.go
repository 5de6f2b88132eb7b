package benchkit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStartProcSeparatesOutputs(t *testing.T) {
	dir := t.TempDir()
	log, out := filepath.Join(dir, "log"), filepath.Join(dir, "out")
	p, err := StartProc(ProcSpec{Name: "echo", Argv: []string{"sh", "-c", `echo "to out $BENCH_X"; echo to err >&2`},
		Env: []string{"BENCH_X=x"}, Log: log, Stdout: out})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("sh did not exit within 10s")
	}
	if got, _ := os.ReadFile(out); string(got) != "to out x\n" {
		t.Errorf("stdout file = %q, want %q", got, "to out x\n")
	}
	if got, _ := os.ReadFile(log); string(got) != "to err\n" {
		t.Errorf("log file = %q, want %q", got, "to err\n")
	}
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), log) {
		t.Errorf("Err after exit = %v, want one naming the log %s", err, log)
	}
}

func TestStartProcRejects(t *testing.T) {
	dir := t.TempDir()
	for _, spec := range []ProcSpec{
		{Argv: []string{"true"}, Log: filepath.Join(dir, "l")},
		{Name: "x", Log: filepath.Join(dir, "l")},
		{Name: "x", Argv: []string{"true"}},
		{Name: "x", Argv: []string{"/nonexistent/tool"}, Log: filepath.Join(dir, "l")},
		{Name: "x", Argv: []string{"true"}, Log: filepath.Join(dir, "missing", "l")},
	} {
		if _, err := StartProc(spec); err == nil {
			t.Errorf("StartProc(%+v) succeeded", spec)
		}
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	dir := t.TempDir()
	var procs Procs
	// Ignores SIGTERM; exec keeps one process, so SIGKILL hits the one that sleeps.
	stubborn, err := procs.Start(ProcSpec{Name: "stubborn", Argv: []string{"sh", "-c", `trap "" TERM; echo ready; exec sleep 30`},
		Log: filepath.Join(dir, "stubborn.log")})
	if err != nil {
		t.Fatal(err)
	}
	polite, err := procs.Start(ProcSpec{Name: "polite", Argv: []string{"sleep", "30"}, Log: filepath.Join(dir, "polite.log")})
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the trap is set (the shell printed ready) before signalling.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, _ := os.ReadFile(stubborn.LogPath); strings.Contains(string(b), "ready") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stubborn process did not start within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !stubborn.Alive() || !polite.Alive() {
		t.Fatal("processes died early")
	}
	if err := procs.Stop(polite, 5*time.Second); err != nil {
		t.Errorf("Stop(sleep) = %v, want nil (it obeys SIGTERM)", err)
	}
	if polite.Alive() {
		t.Error("sleep alive after Stop")
	}
	err = procs.StopAll(200 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "ignored SIGTERM") {
		t.Errorf("StopAll = %v, want the stubborn process reported as killed", err)
	}
	if stubborn.Alive() {
		t.Error("stubborn process alive after StopAll")
	}
	if err := procs.StopAll(time.Second); err != nil {
		t.Errorf("second StopAll = %v, want nil (nothing left)", err)
	}
}

func TestStopKillsOrphanedChildren(t *testing.T) {
	dir := t.TempDir()
	// The parent leaves on SIGTERM without its child, as an nginx master
	// killed before its worker would.
	p, err := StartProc(ProcSpec{Name: "parent", Argv: []string{"sh", "-c", `sleep 30 & trap "exit 0" TERM; wait`},
		Log: filepath.Join(dir, "log")})
	if err != nil {
		t.Fatal(err)
	}
	var kids []int
	deadline := time.Now().Add(10 * time.Second)
	for len(kids) == 0 {
		kids, _ = Children(p.PID())
		if time.Now().After(deadline) {
			t.Fatal("the child did not start within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		st, err := ProcState(kids[0])
		if err != nil || st == 'Z' {
			break // gone, or dead and waiting for its new parent
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d still running (state %c) after its parent was stopped", kids[0], st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package filewatch

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	logtest "github.com/sirupsen/logrus/hooks/test"
)

// waitLimit bounds every awaited condition.
const waitLimit = 10 * time.Second

// eventually polls cond until it holds, failing the test with what after
// waitLimit.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitLimit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start watches files until the test ends, counting OnChange calls, and
// waits for the watch to stop.
func start(t *testing.T, debounce time.Duration, files ...string) *atomic.Int64 {
	t.Helper()
	var calls atomic.Int64
	var wg sync.WaitGroup
	err := Watch(t.Context(), Options{Files: files, Debounce: debounce, OnChange: func() { calls.Add(1) }, WaitGroup: &wg})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	t.Cleanup(wg.Wait) // after t.Context is canceled
	return &calls
}

// TestRenameIntoPlace: an atomic writer's temp file renamed over the watched
// one is seen; a change to another file of the directory is not.
func TestRenameIntoPlace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.txt")
	write(t, path, "a\n")
	calls := start(t, 20*time.Millisecond, path)

	write(t, filepath.Join(dir, "unrelated"), "x")
	tmp := filepath.Join(dir, ".keys.txt.tmp")
	write(t, tmp, "b\n")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	eventually(t, "OnChange after the rename", func() bool { return calls.Load() == 1 })

	// In place, too.
	write(t, path, "c\n")
	eventually(t, "OnChange after a write in place", func() bool { return calls.Load() == 2 })
}

// TestUnrelatedFileIgnored: only watched names trigger. The watch on the
// directory sees the unrelated write; a watched file written afterwards
// proves the event loop ran past it without a call.
func TestUnrelatedFileIgnored(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "watched")
	write(t, path, "a")
	var order []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	err := Watch(t.Context(), Options{Files: []string{path}, Debounce: time.Millisecond, WaitGroup: &wg, OnChange: func() {
		mu.Lock()
		defer mu.Unlock()
		b, _ := os.ReadFile(path)
		order = append(order, string(b))
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wg.Wait)
	write(t, filepath.Join(dir, "other"), "x")
	write(t, path, "b")
	eventually(t, "one OnChange", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) >= 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 1 || order[0] != "b" {
		t.Errorf("OnChange saw %q, want one call seeing \"b\"", order)
	}
}

// TestDebounce: a burst of writes within the quiet period gives one call.
func TestDebounce(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	write(t, a, "0")
	write(t, b, "0")
	const debounce = 300 * time.Millisecond
	calls := start(t, debounce, a, b)
	begin := time.Now()
	for i := range 5 {
		write(t, a, string(rune('1'+i)))
		write(t, b, string(rune('1'+i)))
	}
	burst := time.Since(begin)
	if burst >= debounce {
		t.Skipf("the burst took %s, longer than the debounce: the machine is too slow for this check", burst)
	}
	eventually(t, "OnChange after the burst", func() bool { return calls.Load() >= 1 })
	if n := calls.Load(); n != 1 {
		t.Errorf("%d calls for one burst of 10 writes, want 1", n)
	}
}

// TestKubernetesSymlinkSwap: files that are links through "..data", swapped
// by renaming a new "..data" link over it, as the kubelet updates a Secret.
func TestKubernetesSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(name, data string) {
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(d, "jwks.json"), data)
	}
	symlink := func(target, link string) {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	version("..v1", "one")
	symlink("..v1", filepath.Join(dir, "..data"))
	symlink("..data/jwks.json", filepath.Join(dir, "jwks.json"))
	calls := start(t, 20*time.Millisecond, filepath.Join(dir, "jwks.json"))

	version("..v2", "two")
	symlink("..v2", filepath.Join(dir, "..data_tmp"))
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "OnChange after the ..data swap", func() bool { return calls.Load() >= 1 })
}

// TestPanicRecovered: a panicking OnChange is logged and the watch goes on.
func TestPanicRecovered(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	write(t, path, "a")
	log, hook := logtest.NewNullLogger()
	var calls atomic.Int64
	var wg sync.WaitGroup
	err := Watch(t.Context(), Options{Files: []string{path}, Debounce: time.Millisecond, Logger: log, WaitGroup: &wg,
		OnChange: func() {
			if calls.Add(1) == 1 {
				panic("boom")
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wg.Wait)
	write(t, path, "b")
	eventually(t, "the first call", func() bool { return calls.Load() == 1 })
	write(t, path, "c")
	eventually(t, "a call after the panic", func() bool { return calls.Load() == 2 })
	if e := hook.LastEntry(); e == nil || e.Data["panic"] != "boom" {
		t.Errorf("panic logged as %v", e)
	}
}

// TestWatchErrors: a directory that does not exist is named; no files or no
// function is refused.
func TestWatchErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone", "keys.txt")
	err := Watch(t.Context(), Options{Files: []string{missing}, OnChange: func() {}})
	if err == nil || !strings.Contains(err.Error(), filepath.Dir(missing)) {
		t.Errorf("Watch = %v, want an error naming %s", err, filepath.Dir(missing))
	}
	if err := Watch(t.Context(), Options{Files: []string{""}, OnChange: func() {}}); err == nil {
		t.Error("Watch with no files: no error")
	}
	if err := Watch(t.Context(), Options{Files: []string{missing}}); err == nil {
		t.Error("Watch with no OnChange: no error")
	}
}

// TestStopsWithContext: the WaitGroup is done once ctx ends.
func TestStopsWithContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	write(t, path, "a")
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	if err := Watch(ctx, Options{Files: []string{path}, OnChange: func() {}, WaitGroup: &wg}); err != nil {
		t.Fatal(err)
	}
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("the watch did not stop after its context ended")
	}
}

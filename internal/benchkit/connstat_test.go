package benchkit

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestProcFDsCountsOpenFiles(t *testing.T) {
	before, err := ProcFDs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var files []*os.File
	for range 5 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	after, err := GroupFDs([]int{os.Getpid(), os.Getpid()})
	for _, f := range files {
		_ = f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if after != 2*(before+5) {
		t.Errorf("descriptors: %d before, %d for the process twice with 5 more open; want %d", before, after, 2*(before+5))
	}
	if _, err := ProcFDs(1 << 30); err == nil || !strings.Contains(err.Error(), "pid 1073741824") {
		t.Errorf("ProcFDs of a missing pid: %v, want an error naming it", err)
	}
}

// reads returns a reader of the given values, then of the last forever.
func reads(vals ...int64) func() (int64, error) {
	i := 0
	return func() (int64, error) {
		v := vals[min(i, len(vals)-1)]
		i++
		return v, nil
	}
}

func TestSettleRSS(t *testing.T) {
	ctx := context.Background()
	// 1000 → 1500 moves; 1500 → 1510 is under 1%: settled at 1510.
	v, ok, err := SettleRSS(ctx, reads(1000, 1500, 1510, 9999), time.Millisecond, time.Minute)
	if v != 1510 || !ok || err != nil {
		t.Errorf("SettleRSS = %d, %v, %v; want 1510, settled", v, ok, err)
	}
	// Always growing by 10%: the bound ends it, not settled, with the last read.
	x := int64(1000)
	grow := func() (int64, error) { x += x / 10; return x, nil }
	v, ok, err = SettleRSS(ctx, grow, time.Millisecond, 30*time.Millisecond)
	if ok || err != nil || v != x {
		t.Errorf("SettleRSS of a growing value = %d, %v, %v; want the last read %d, not settled", v, ok, err, x)
	}
	boom := errors.New("boom")
	n := 0
	failing := func() (int64, error) {
		if n++; n == 2 {
			return 0, boom
		}
		return 100, nil
	}
	if _, _, err := SettleRSS(ctx, failing, time.Millisecond, time.Minute); !errors.Is(err, boom) {
		t.Errorf("SettleRSS with a failing read: %v, want boom", err)
	}
}

func TestParseMetrics(t *testing.T) {
	text := "# HELP go_goroutines Number of goroutines.\n# TYPE go_goroutines gauge\ngo_goroutines 8025\n" +
		"go_memstats_stack_inuse_bytes 3.3587200e+07\ngo_memstats_heap_inuse_bytes_total 1\ngo_memstats_heap_inuse_bytes 1.024e+08\n" +
		`go_info{version="go1.26"} 1` + "\n"
	v, err := parseMetrics(text, goRuntimeMetrics...)
	if err != nil {
		t.Fatal(err)
	}
	if v[0] != 8025 || v[1] != 33587200 || v[2] != 1.024e8 {
		t.Errorf("parseMetrics = %v, want 8025, 33587200, 1.024e8 (not the _total line)", v)
	}
	if _, err := parseMetrics(text, "go_threads"); err == nil || !strings.Contains(err.Error(), "go_threads") {
		t.Errorf("a missing metric: %v, want an error naming it", err)
	}
	if _, err := parseMetrics("go_goroutines many\n", "go_goroutines"); err == nil {
		t.Error("a malformed value was accepted")
	}
}

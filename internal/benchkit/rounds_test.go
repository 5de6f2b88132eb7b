package benchkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// measureRounds runs the warm-up of every measurement first, then visits
// targets and their measurements starting one further each round, saying
// what it does and reporting each recorded run.
func TestMeasureRoundsOrder(t *testing.T) {
	var out strings.Builder
	h := &harness{o: Options{Rounds: 2, Warmup: time.Millisecond, Duration: time.Second, Progress: &out}}
	a, b := &target{TargetInfo: TargetInfo{Name: "a"}}, &target{TargetInfo: TargetInfo{Name: "b"}}
	var calls []string
	r := rounds[string]{
		warmup:   "warm",
		announce: "go",
		measures: func(t *target) []string {
			if t.Name == "a" {
				return []string{"x", "y"}
			}
			return []string{"x"}
		},
		once: func(_ context.Context, t *target, m string, d time.Duration, round int) (string, error) {
			call := fmt.Sprintf("%s/%s/%v/%d", t.Name, m, d, round)
			calls = append(calls, call)
			return call, nil
		},
		progress: func(round int, t *target, m string, s string) {
			fmt.Fprintf(&out, "%d %s %s %s\n", round, t.Name, m, s)
		},
	}
	samples, err := measureRounds(context.Background(), h, []*target{a, b}, r)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a/x/1ms/0", "a/y/1ms/0", "b/x/1ms/0",
		"a/x/1s/0", "a/y/1s/0", "b/x/1s/0",
		"b/x/1s/1", "a/y/1s/1", "a/x/1s/1"}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("runs %q, want %q", calls, want)
	}
	if !reflect.DeepEqual(samples, want[3:]) {
		t.Errorf("samples %q, want the rounds' runs %q", samples, want[3:])
	}
	wantOut := "==> warm\n==> go\n0 a x a/x/1s/0\n0 a y a/y/1s/0\n0 b x b/x/1s/0\n1 b x b/x/1s/1\n1 a y a/y/1s/1\n1 a x a/x/1s/1\n"
	if out.String() != wantOut {
		t.Errorf("progress\n%s\nwant\n%s", out.String(), wantOut)
	}

	// Without a warm-up none is said; a failed run ends the measuring.
	out.Reset()
	h.o.Warmup = 0
	boom := errors.New("boom")
	r.once = func(_ context.Context, t *target, m string, _ time.Duration, round int) (string, error) {
		if round == 1 {
			return "", boom
		}
		return t.Name + m, nil
	}
	if _, err := measureRounds(context.Background(), h, []*target{a, b}, r); !errors.Is(err, boom) {
		t.Errorf("error %v, want the run's", err)
	}
	if got := out.String(); !strings.HasPrefix(got, "==> go\n") || strings.Contains(got, "warm") || strings.Contains(got, "\n1 ") {
		t.Errorf("progress without a warm-up, failing in round 2:\n%s", got)
	}
}

func TestWriteSamplesCSV(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.csv")
	if err := writeSamplesCSV(path, "test", "n,sq", []int{1, 2, 3}, func(n int) string { return fmt.Sprintf("%d,%d", n, n*n) }); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "n,sq\n1,1\n2,4\n3,9\n"; string(got) != want {
		t.Errorf("wrote %q, want %q", got, want)
	}
	err = writeSamplesCSV(filepath.Join(t.TempDir(), "missing", "s.csv"), "test", "n", []int{1}, func(n int) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "benchkit: write test samples:") {
		t.Errorf("error %v, want one naming the samples", err)
	}
}

package benchkit

import (
	"context"
	"fmt"
	"os"
	"time"
)

// ProcFDs returns the number of open descriptors of process pid (the
// entries of /proc/PID/fd).
func ProcFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, fmt.Errorf("benchkit: descriptors of pid %d: %w", pid, err)
	}
	return len(ents), nil
}

// GroupFDs sums ProcFDs over pids.
func GroupFDs(pids []int) (int, error) {
	n := 0
	for _, pid := range pids {
		k, err := ProcFDs(pid)
		if err != nil {
			return 0, err
		}
		n += k
	}
	return n, nil
}

// SettleRSS reads a resident size every interval until two consecutive
// reads differ by less than 1% of the first, and returns the last read and
// true; after bound (or when ctx ends) it returns the last read and false.
// A process that has just taken on connections keeps allocating for a
// moment (runtime structures, a collection): the settled value is what
// the connections cost once it is done.
func SettleRSS(ctx context.Context, read func() (int64, error), interval, bound time.Duration) (int64, bool, error) {
	prev, err := read()
	if err != nil {
		return 0, false, err
	}
	deadline := time.Now().Add(bound)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return prev, false, nil
		case <-t.C:
		}
		cur, err := read()
		if err != nil {
			return 0, false, err
		}
		diff := cur - prev
		if diff < 0 {
			diff = -diff
		}
		if diff*100 < prev {
			return cur, true, nil
		}
		prev = cur
		if time.Now().After(deadline) {
			return cur, false, nil
		}
	}
}

// GoRuntime is the Go runtime's accounting of a zkgate process, from its
// Prometheus metrics (the default Go collector).
type GoRuntime struct {
	// Goroutines is go_goroutines.
	Goroutines float64
	// StackInuse is go_memstats_stack_inuse_bytes: goroutine stacks.
	StackInuse float64
	// HeapInuse is go_memstats_heap_inuse_bytes: spans with live or
	// not yet swept objects.
	HeapInuse float64
}

// goRuntimeMetrics are GoRuntime's metric names, in field order.
var goRuntimeMetrics = []string{"go_goroutines", "go_memstats_stack_inuse_bytes", "go_memstats_heap_inuse_bytes"}

// ReadGoRuntime scrapes url (a zkgate's /metrics) for GoRuntime.
func ReadGoRuntime(url string) (GoRuntime, error) {
	v, err := metricValues(url, goRuntimeMetrics...)
	if err != nil {
		return GoRuntime{}, fmt.Errorf("benchkit: go runtime of %s: %w", url, err)
	}
	return GoRuntime{Goroutines: v[0], StackInuse: v[1], HeapInuse: v[2]}, nil
}

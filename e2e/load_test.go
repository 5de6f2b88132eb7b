package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/loadgen"
	"github.com/zkgate/zkgate/internal/zktest"
)

const (
	// loadRate is the requests per second of every scenario's load.
	loadRate = 400
	// postEvery makes every third request a POST.
	postEvery = 3
	// postBytes is the size of the POST bodies: past the gateway's 4 KiB
	// read buffer, so that its buffered-body path (and the replay of a
	// body to another endpoint) is what the failures hit; the backends'
	// echoes must count every byte.
	postBytes = 20000
)

// startLoad starts the scenario's load through gw; it runs until stopped
// (at most 3 minutes) and is stopped when the test ends.
func startLoad(t *testing.T, gw *gateway) *loadgen.Generator {
	t.Helper()
	g, err := loadgen.Start(context.Background(), loadgen.Config{
		URL:         gw.url,
		Rate:        loadRate,
		Duration:    3 * time.Minute,
		PostEvery:   postEvery,
		PostBytes:   postBytes,
		Concurrency: 64,
		Timeout:     5 * time.Second,
	})
	if err != nil {
		t.Fatalf("start load: %v", err)
	}
	t.Cleanup(func() { g.Stop() })
	return g
}

// firstSeen waits until the load got an answer from instance id and returns
// when that was.
func firstSeen(t *testing.T, g *loadgen.Generator, id string, timeout time.Duration) time.Time {
	t.Helper()
	var at time.Time
	await(t, timeout, func() bool {
		var ok bool
		at, ok = g.Snapshot().FirstSeen[id]
		return ok
	}, "a proxied request answered by %s", id)
	return at
}

// accessEntry is one line of the gateway's access log.
type accessEntry struct {
	Time             time.Time     `json:"time"`
	RequestMethod    string        `json:"RequestMethod"`
	DownstreamStatus int           `json:"DownstreamStatus"`
	Duration         time.Duration `json:"Duration"`
	ServiceAddr      string        `json:"ServiceAddr"`
	RetryAttempts    int           `json:"RetryAttempts"`
}

// accessLog reads the gateway's access log once at least n lines are
// written (it is flushed every second), bounded.
func accessLog(t *testing.T, gw *gateway, n int) []accessEntry {
	t.Helper()
	var entries []accessEntry
	ok := zktest.Poll(10*time.Second, func() bool {
		entries = readAccessLog(t, gw.proc.stdout)
		return len(entries) >= n
	})
	if !ok {
		t.Logf("access log has %d lines, want %d; using what is there", len(entries), n)
	}
	return entries
}

func readAccessLog(t *testing.T, path string) []accessEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("access log: %v", err)
	}
	defer f.Close()
	var out []accessEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e accessEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.DownstreamStatus != 0 {
			out = append(out, e)
		}
	}
	return out
}

// failedRequests summarizes the access log's failed requests (status 500 and
// above) by status, method and endpoint, e.g. "502 POST 127.0.0.1:9001
// retries=0 ×2".
func failedRequests(entries []accessEntry) string {
	counts := map[string]int{}
	for _, e := range entries {
		if e.DownstreamStatus >= 500 {
			counts[fmt.Sprintf("%d %s %s retries=%d", e.DownstreamStatus, e.RequestMethod, e.ServiceAddr, e.RetryAttempts)]++
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, counts[k])
	}
	if len(parts) == 0 {
		return "none in the access log"
	}
	return strings.Join(parts, "; ")
}

// retried counts the access log's requests that needed more than one
// attempt.
func retried(entries []accessEntry) int {
	n := 0
	for _, e := range entries {
		if e.RetryAttempts > 0 {
			n++
		}
	}
	return n
}

// checkNoFailures stops nothing: it fails t when res has failed requests,
// reporting them from the load's view and the gateway's access log.
func checkNoFailures(t *testing.T, gw *gateway, res loadgen.Result, row *scenarioRow) {
	t.Helper()
	entries := accessLog(t, gw, res.Sent)
	row.note("retried=%d", retried(entries))
	if res.Failed == 0 {
		return
	}
	failed := failedRequests(entries)
	row.note("FAILED: %s", failed)
	t.Errorf("%d of %d requests failed (by status %v); gateway access log: %s; client view: %s; gateway log:\n%s",
		res.Failed, res.Sent, res.ByStatus, failed, strings.Join(res.Failures, ", "), proxyErrors(gw, 10))
}

// proxyErrors returns up to n lines of the gateway's log about failed
// proxied requests (logged at debug level, which the tests configure).
func proxyErrors(gw *gateway, n int) string {
	b, err := os.ReadFile(gw.proc.stderr)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "proxied request failed") && len(out) < n {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

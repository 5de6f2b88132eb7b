package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// syncBuffer is an io.Writer safe to read while the log writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimSuffix(b.buf.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

type accessLine struct {
	Time                  string
	ClientAddr            string
	ClientHost            string
	RequestMethod         string
	RequestHost           string
	RequestPath           string
	RequestProtocol       string
	DownstreamStatus      int
	DownstreamContentSize int64
	Duration              int64
	RouterName            string
	ServiceName           string
	ServiceAddr           string
	RetryAttempts         int
}

func parseLine(t *testing.T, line string) accessLine {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	var l accessLine
	if err := dec.Decode(&l); err != nil {
		t.Fatalf("access log line %q: %v", line, err)
	}
	return l
}

func TestAccessLogLine(t *testing.T) {
	be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("0123456789"))
	})
	dead := deadAddr(t)
	up := testUpstream(t, "svc")
	up.Retry = RetryPolicy{Attempts: 2}
	route := testRoute(t, "api", "round_robin", up, dead, be.addr())
	route.PathPrefix = "/api"
	out := &syncBuffer{}
	log := NewAccessLog(out, AccessLogOptions{FlushInterval: time.Hour})
	fe, _ := newFrontend(t, Options{AccessLog: log}, route)

	start := time.Now()
	for range 2 { // round robin: at least one of the two tries the dead endpoint first
		req, _ := http.NewRequest("GET", fe.URL+"/api/x?q=\"1\"", nil)
		req.Host = "example.com"
		if res, _ := do(t, req); res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	get(t, fe.URL+"/nothing")
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	lines := out.lines()
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3: %q", len(lines), lines)
	}
	retries := 0
	for _, line := range lines[:2] {
		l := parseLine(t, line)
		ts, err := time.Parse(time.RFC3339Nano, l.Time)
		if err != nil || ts.Before(start.Add(-time.Second)) || ts.After(time.Now()) {
			t.Errorf("time %q (%v) not the request's arrival", l.Time, err)
		}
		if !strings.HasPrefix(l.ClientAddr, "127.0.0.1:") || l.ClientHost != "127.0.0.1" {
			t.Errorf("client %q %q", l.ClientAddr, l.ClientHost)
		}
		want := accessLine{
			Time: l.Time, ClientAddr: l.ClientAddr, ClientHost: "127.0.0.1",
			RequestMethod: "GET", RequestHost: "example.com", RequestPath: `/api/x?q="1"`, RequestProtocol: "HTTP/1.1",
			DownstreamStatus: 200, DownstreamContentSize: 10, Duration: l.Duration,
			RouterName: "api", ServiceName: "svc", ServiceAddr: be.addr(), RetryAttempts: l.RetryAttempts,
		}
		if l != want {
			t.Errorf("line\n %+v\nwant\n %+v", l, want)
		}
		if l.Duration <= 0 {
			t.Errorf("duration %d", l.Duration)
		}
		retries += l.RetryAttempts
	}
	if retries < 1 || retries > 2 {
		t.Errorf("RetryAttempts sum %d over two requests, want 1 or 2", retries)
	}
	l := parseLine(t, lines[2])
	if l.DownstreamStatus != 404 || l.RouterName != "" || l.ServiceAddr != "" || l.RequestPath != "/nothing" {
		t.Errorf("unmatched request line %+v", l)
	}
}

func TestAccessLogClientGoneIs499(t *testing.T) {
	be := stalling(t, "slow")
	out := &syncBuffer{}
	log := NewAccessLog(out, AccessLogOptions{FlushInterval: 10 * time.Millisecond})
	defer log.Close()
	fe, _ := newFrontend(t, Options{AccessLog: log}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", fe.URL+"/", nil)
	done := make(chan error, 1)
	go func() {
		_, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
		done <- err
	}()
	waitFor(t, "the request to reach the backend", func() bool { return be.hits.Load() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("client error %v", err)
	}
	waitFor(t, "the access log line", func() bool { return len(out.lines()) == 1 })
	if l := parseLine(t, out.lines()[0]); l.DownstreamStatus != StatusClientClosedRequest {
		t.Errorf("status %d, want 499", l.DownstreamStatus)
	}
}

// blockingWriter blocks every write until released.
type blockingWriter struct {
	release chan struct{}
	out     syncBuffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	return w.out.Write(p)
}

func TestAccessLogDropsInsteadOfBlocking(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	log := NewAccessLog(w, AccessLogOptions{QueueSize: 2, BufferSize: 16, FlushInterval: time.Hour})
	ex := &exchange{start: time.Now()}
	r, _ := http.NewRequest("GET", "/", nil)
	for range 50 { // the writer is stuck: these must not block
		log.record(ex, r, 200, time.Millisecond)
	}
	if log.Dropped() < 47 {
		t.Errorf("dropped %d of 50 lines with a stuck writer and a queue of 2, want at least 47", log.Dropped())
	}
	close(w.release)
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	written := uint64(len(w.out.lines()))
	if written+log.Dropped() != 50 {
		t.Errorf("written %d + dropped %d != 50", written, log.Dropped())
	}
	log.record(ex, r, 200, time.Millisecond)
	if log.Dropped()+written != 51 {
		t.Error("a line logged after Close was not counted as dropped")
	}
}

// failingWriter fails while fail is set.
type failingWriter struct {
	mu   sync.Mutex
	fail bool
	out  bytes.Buffer
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail {
		return 0, errors.New("disk full")
	}
	return w.out.Write(p)
}

// Lines of many clients go to different shards, and the writer merges
// them back in the order their requests ended: a request that ended before
// another began is never written after it.
func TestAccessLogMergesShardsInEndOrder(t *testing.T) {
	out := &syncBuffer{}
	log := NewAccessLog(out, AccessLogOptions{FlushInterval: time.Hour})
	if len(log.shards) < 2 {
		t.Fatalf("%d shards: nothing to merge", len(log.shards))
	}
	start := time.Now()
	used := map[*logShard]bool{}
	const n = 200
	for i := range n {
		client := "10.0.0.1:" + strconv.Itoa(30000+i*7)
		used[log.shardFor(client)] = true
		ex := &exchange{start: start.Add(time.Duration(i) * time.Millisecond)}
		// Each request ends 1.5 ms after its start: after the next one
		// began, before the one after that.
		log.recordFields(ex, client, "GET", "h", "/"+strconv.Itoa(i), "HTTP/1.1", 200, 1500*time.Microsecond)
	}
	if len(used) < 2 {
		t.Fatalf("%d clients went to %d shard", n, len(used))
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	lines := out.lines()
	if len(lines) != n {
		t.Fatalf("%d lines, want %d", len(lines), n)
	}
	for i, line := range lines {
		if got, want := parseLine(t, line).RequestPath, "/"+strconv.Itoa(i); got != want {
			t.Fatalf("line %d is the request %s, want %s (lines out of their requests' order)", i, got, want)
		}
	}
}

// A log has about four shards per processor, a power of two, at most
// maxLogShards. Each gets its share of QueueSize and BufferSize, but not
// less than minShardLines and minShardBuffer (or all of them, when they
// are smaller): one busy connection is not starved by the sharding.
func TestAccessLogShards(t *testing.T) {
	for _, c := range []struct{ procs, want int }{{1, 4}, {2, 8}, {3, 16}, {16, 64}, {200, 64}} {
		if got := logShards(c.procs); got != c.want {
			t.Errorf("logShards(%d) = %d, want %d", c.procs, got, c.want)
		}
	}
	// share checks a shard's share of total among n: at least least (or
	// total), together at least total, and no more than the larger of the
	// two needs.
	share := func(what string, got, n, total, least int) {
		floor := min(total, least)
		if got < floor || got*n < total || got > max((total+n-1)/n, floor) {
			t.Errorf("%s %d among %d shards: %d each", what, total, n, got)
		}
	}
	for _, o := range []AccessLogOptions{{QueueSize: 100, BufferSize: 1 << 10}, {}, {QueueSize: 1 << 20, BufferSize: 16 << 20}} {
		log := NewAccessLog(io.Discard, o)
		n := len(log.shards)
		if o.QueueSize == 0 {
			o.QueueSize, o.BufferSize = DefaultAccessLogQueueSize, DefaultAccessLogBufferSize
		}
		share("queue", log.maxLines, n, o.QueueSize, minShardLines)
		share("buffer", log.threshold, n, o.BufferSize, minShardBuffer)
		if got := 32 - int(log.shift); 1<<got != n {
			t.Errorf("shift %d for %d shards", log.shift, n)
		}
		_ = log.Close()
	}
}

func TestAccessLogRecoversAfterWriteError(t *testing.T) {
	w := &failingWriter{fail: true}
	log := NewAccessLog(w, AccessLogOptions{BufferSize: 16, FlushInterval: time.Hour})
	ex := &exchange{start: time.Now()}
	r, _ := http.NewRequest("GET", "/lost", nil)
	log.record(ex, r, 200, 0) // longer than the buffer: written at once, fails
	w.mu.Lock()
	w.fail = false
	w.mu.Unlock()
	r2, _ := http.NewRequest("GET", "/kept", nil)
	log.record(ex, r2, 200, 0)
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	if got := w.out.String(); !strings.Contains(got, `"/kept"`) {
		t.Errorf("after the failure nothing more was written: %q", got)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\s`, "\x00\x01\x1f\t\n\r", "é€😀", "\xff\xfe bad", "\u2028\u2029", "<a&b>"} {
		b := appendJSONString(nil, s)
		if !json.Valid(b) {
			t.Errorf("%q encoded as invalid JSON %s", s, b)
			continue
		}
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if want := strings.ToValidUTF8(s, "\uFFFD"); got != want && utf8.ValidString(s) {
			t.Errorf("%q round-tripped to %q", s, got)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("a\"b\\c\x00\xff\u2028")
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		if !json.Valid(b) {
			t.Fatalf("%q encoded as invalid JSON %s", s, b)
		}
		if utf8.ValidString(s) {
			var got string
			if err := json.Unmarshal(b, &got); err != nil || got != s {
				t.Fatalf("%q round-tripped to %q (%v)", s, got, err)
			}
		}
	})
}

// BenchmarkAccessLogRecord measures encoding one fast-path request's line
// into the batch (the writer discards the batches).
func BenchmarkAccessLogRecord(b *testing.B) {
	a := NewAccessLog(io.Discard, AccessLogOptions{})
	defer a.Close()
	ex := &exchange{start: time.Now(), clientIP: "127.0.0.1", addr: "127.0.0.1:22200", attempts: 1}
	ex.sw.status, ex.sw.size = 200, 13
	b.ReportAllocs()
	for b.Loop() {
		a.recordFields(ex, "127.0.0.1:54321", "GET", "127.0.0.1:22080", "/echo/", "HTTP/1.1", 200, 1234567)
	}
}

// BenchmarkAccessLogRecordParallel is BenchmarkAccessLogRecord from every
// processor at once, each goroutine a client connection of its own, as
// the requests of a busy gateway log: what sharing the batches costs.
func BenchmarkAccessLogRecordParallel(b *testing.B) {
	a := NewAccessLog(io.Discard, AccessLogOptions{})
	defer a.Close()
	var port atomic.Int32
	port.Store(40000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ex := &exchange{start: time.Now(), clientIP: "127.0.0.1", addr: "127.0.0.1:22200", attempts: 1}
		ex.sw.status, ex.sw.size = 200, 13
		client := "127.0.0.1:" + strconv.Itoa(int(port.Add(1)))
		for pb.Next() {
			a.recordFields(ex, client, "GET", "127.0.0.1:22080", "/echo/", "HTTP/1.1", 200, 1234567)
		}
	})
}

package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/sirupsen/logrus"
	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/internal/zktest"
)

// wait bounds every wait of the integration tests.
const wait = 20 * time.Second

// zkCase is an integration test sharing the package's ZooKeeper server
// (a JVM takes seconds to start). Cases use paths of their own.
type zkCase struct {
	name string
	fn   func(t *testing.T, srv *zktest.Server)
}

// TestWithZooKeeper runs every case of zkCases against one real ZooKeeper.
func TestWithZooKeeper(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	var cases []zkCase
	cases = append(cases, clientCases...)
	cases = append(cases, confCases...)
	cases = append(cases, registrarCases...)
	cases = append(cases, treeCases...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, srv) })
	}
}

var pathSeq atomic.Int64

// testPath returns a service path no other test uses.
func testPath(t testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return fmt.Sprintf("/zkgate-test/%s-%d/svc", name, pathSeq.Add(1))
}

// logSink captures log entries at its level and above (warn for testLog,
// see testLogAt); the output goes to stderr only when ZKGATE_TEST_LOG is set.
type logSink struct {
	level   logrus.Level
	mu      sync.Mutex
	entries []string
}

func (s *logSink) Levels() []logrus.Level { return logrus.AllLevels[:s.level+1] }

func (s *logSink) Fire(e *logrus.Entry) error {
	line, _ := e.String()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = append(s.entries, line)
	return nil
}

// count returns how many captured entries contain substr.
func (s *logSink) count(substr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.entries {
		if strings.Contains(e, substr) {
			n++
		}
	}
	return n
}

// lines returns the captured entries containing substr, one a line.
func (s *logSink) lines(substr string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, e := range s.entries {
		if strings.Contains(e, substr) {
			b.WriteString(e)
		}
	}
	return b.String()
}

func testLog() (*logrus.Logger, *logSink) { return testLogAt(logrus.WarnLevel) }

// testLogAt is testLog capturing entries at level and above.
func testLogAt(level logrus.Level) (*logrus.Logger, *logSink) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if os.Getenv("ZKGATE_TEST_LOG") != "" {
		l.SetOutput(os.Stderr)
		l.SetLevel(logrus.DebugLevel)
	}
	sink := &logSink{level: level}
	l.AddHook(sink)
	return l, sink
}

// dial returns a Client of servers, closed when the test ends.
func dial(t testing.TB, cfg ClientConfig) *Client {
	t.Helper()
	log, _ := testLog()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := Dial(ctx, cfg, log)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// watch returns a conf of path with a recorder attached, closed when the
// test ends.
func watch(t testing.TB, c *Client, path string, opts ZkConfOptions) (*LoadBalanceZkConf, *recorder, *logSink) {
	t.Helper()
	log, sink := testLog()
	z, err := NewLoadBalanceZkConf(c, path, opts, log)
	if err != nil {
		t.Fatalf("NewLoadBalanceZkConf(%s): %v", path, err)
	}
	t.Cleanup(z.Close)
	r := newRecorder()
	z.Attach(r)
	return z, r, sink
}

// recorder is an observer keeping every list it is given, with its time.
type recorder struct {
	mu      sync.Mutex
	lists   [][]balancer.Endpoint
	times   []time.Time
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) Update(eps []balancer.Endpoint) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lists = append(r.lists, eps)
	r.times = append(r.times, now)
	close(r.changed)
	r.changed = make(chan struct{})
}

// updates returns how many lists were received.
func (r *recorder) updates() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lists)
}

func (r *recorder) last() []balancer.Endpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lists) == 0 {
		return nil
	}
	return r.lists[len(r.lists)-1]
}

// await waits until the last list satisfies cond, and returns when the
// first list of the run that satisfies it was received.
func (r *recorder) await(t testing.TB, desc string, cond func([]balancer.Endpoint) bool) time.Time {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		n := len(r.lists)
		ok := n > 0 && cond(r.lists[n-1])
		var at time.Time
		if ok {
			at = r.times[n-1]
			for i := n - 2; i >= 0 && cond(r.lists[i]); i-- {
				at = r.times[i]
			}
		}
		changed := r.changed
		var got []balancer.Endpoint
		if n > 0 {
			got = r.lists[n-1]
		}
		r.mu.Unlock()
		if ok {
			return at
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no list with %s within %v; last list: %v", desc, wait, addrsOf(got))
		}
	}
}

// awaitAddrs waits until the last list holds exactly addrs.
func (r *recorder) awaitAddrs(t testing.TB, addrs ...string) time.Time {
	t.Helper()
	want := slices.Clone(addrs)
	slices.Sort(want)
	return r.await(t, fmt.Sprintf("addresses %v", want), func(eps []balancer.Endpoint) bool {
		return eps != nil && slices.Equal(addrsOf(eps), want)
	})
}

func addrsOf(eps []balancer.Endpoint) []string {
	out := make([]string, len(eps))
	for i, e := range eps {
		out[i] = e.Addr
	}
	return out
}

func find(eps []balancer.Endpoint, addr string) (balancer.Endpoint, bool) {
	for _, e := range eps {
		if e.Addr == addr {
			return e, true
		}
	}
	return balancer.Endpoint{}, false
}

// mkdirs creates p and its parents on conn.
func mkdirs(t testing.TB, conn *zk.Conn, p string) {
	t.Helper()
	cur := ""
	for _, seg := range strings.Split(p[1:], "/") {
		cur += "/" + seg
		if _, err := conn.Create(cur, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatalf("create %s: %v", cur, err)
		}
	}
}

func create(t testing.TB, conn *zk.Conn, p string, data string, flags int32) string {
	t.Helper()
	got, err := conn.Create(p, []byte(data), flags, zk.WorldACL(zk.PermAll))
	if err != nil {
		t.Fatalf("create %s: %v", p, err)
	}
	return got
}

func remove(t testing.TB, conn *zk.Conn, p string) {
	t.Helper()
	if err := conn.Delete(p, -1); err != nil {
		t.Fatalf("delete %s: %v", p, err)
	}
}

func waitFor(t testing.TB, desc string, cond func() bool) {
	t.Helper()
	zktest.WaitFor(t, wait, cond, "%s", desc)
}

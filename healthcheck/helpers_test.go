package healthcheck

import (
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/internal/zktest"
)

// waitLimit bounds every awaited condition.
const waitLimit = 5 * time.Second

// eventually polls cond until it holds, failing the test with what after
// waitLimit.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitLimit, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// recorder is an Observer that keeps every list it is given.
type recorder struct {
	mu    sync.Mutex
	lists [][]balancer.Endpoint
}

func (r *recorder) Update(eps []balancer.Endpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lists = append(r.lists, eps)
}

// addrs returns the addresses of the last list, joined by commas.
func (r *recorder) addrs() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lists) == 0 {
		return "<none>"
	}
	return addrsOf(r.lists[len(r.lists)-1])
}

// addrsAt returns the addresses of the i-th list received.
func (r *recorder) addrsAt(i int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i >= len(r.lists) {
		return "<none>"
	}
	return addrsOf(r.lists[i])
}

// count returns the number of lists received.
func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lists)
}

// ever reports whether any list received so far lacks addr.
func (r *recorder) everWithout(addr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lists {
		if !strings.Contains(","+addrsOf(l)+",", ","+addr+",") {
			return true
		}
	}
	return false
}

func addrsOf(eps []balancer.Endpoint) string {
	s := make([]string, len(eps))
	for i, e := range eps {
		s[i] = e.Addr
	}
	return strings.Join(s, ",")
}

func join(addrs ...string) string {
	s := slices.Clone(addrs)
	slices.Sort(s)
	return strings.Join(s, ",")
}

func eps(addrs ...string) []balancer.Endpoint {
	out := make([]balancer.Endpoint, len(addrs))
	for i, a := range addrs {
		out[i] = balancer.Endpoint{ID: "id-" + a, Addr: a, Weight: 1}
	}
	return out
}

// start returns a checker over up with an attached recorder, closed at the
// end of the test, and the hook holding its log entries.
func start(t *testing.T, up balancer.LoadBalanceConf, cfg Config, opts ...Option) (*LoadBalanceCheckConf, *recorder, *logtest.Hook) {
	t.Helper()
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	c, err := New(up, cfg, log, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	rec := &recorder{}
	c.Attach(rec)
	return c, rec, hook
}

// fastActive returns an active config with intervals short enough for tests.
func fastActive(typ string) ActiveConfig {
	return ActiveConfig{
		Type: typ, Path: "/healthz", Interval: 15 * time.Millisecond, Timeout: time.Second,
		HealthyThreshold: 2, UnhealthyThreshold: 2, Jitter: 0.1,
	}
}

// stateOf returns addr's state in c's status.
func stateOf(c *LoadBalanceCheckConf, addr string) (EndpointHealth, bool) {
	for _, e := range c.Status().Endpoints {
		if e.Addr == addr {
			return e, true
		}
	}
	return EndpointHealth{}, false
}

// deadAddr returns a loopback address on which nothing listens.
func deadAddr(t *testing.T) string { return zktest.RefusedAddr(t) }

// Backend modes.
const (
	modeOK    int32 = iota // 200
	modeError              // 500
	modeFlap               // alternates 200 and 500
	modeHang               // accepts and never answers
)

// backend is a real listener on loopback that can stop, come back on the
// same address, answer 200 or 500, or hang (accept and never answer).
type backend struct {
	t    *testing.T
	addr string
	mode atomic.Int32
	hits atomic.Int64

	mu    sync.Mutex
	ln    net.Listener
	srv   *http.Server
	conns map[net.Conn]struct{} // hung connections
	done  chan struct{}         // closed by stop
}

func newBackend(t *testing.T) *backend {
	b := &backend{t: t, addr: "127.0.0.1:0"}
	b.start()
	t.Cleanup(b.stop)
	return b
}

// start (re)starts the backend on its address.
func (b *backend) start() {
	b.t.Helper()
	var ln net.Listener
	var err error
	deadline := time.Now().Add(waitLimit)
	for {
		ln, err = net.Listen("tcp", b.addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // the port may linger briefly after stop
	}
	if err != nil {
		b.t.Fatalf("backend listen %s: %v", b.addr, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.addr = ln.Addr().String()
	b.ln = ln
	b.done = make(chan struct{})
	b.conns = map[net.Conn]struct{}{}
	b.srv = &http.Server{Handler: http.HandlerFunc(b.serve)}
	one := make(chan net.Conn)
	go func(srv *http.Server, l chanListener) { _ = srv.Serve(l) }(b.srv, chanListener{ln.Addr(), one, b.done})
	go b.acceptLoop(ln, one, b.done)
}

// acceptLoop hands connections to the HTTP server, or holds them unanswered
// in hang mode.
func (b *backend) acceptLoop(ln net.Listener, one chan<- net.Conn, done chan struct{}) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		b.hits.Add(1)
		if b.mode.Load() == modeHang {
			b.mu.Lock()
			select {
			case <-done:
				_ = conn.Close()
			default:
				b.conns[conn] = struct{}{}
			}
			b.mu.Unlock()
			continue
		}
		select {
		case one <- conn:
		case <-done:
			_ = conn.Close()
			return
		}
	}
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	switch b.mode.Load() {
	case modeError:
		w.WriteHeader(http.StatusInternalServerError)
	case modeFlap:
		if b.hits.Load()%2 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}
	_, _ = io.WriteString(w, "ok\n")
}

// stop closes the listener and every connection: the backend is gone.
func (b *backend) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ln == nil {
		return
	}
	_ = b.ln.Close()
	close(b.done)
	_ = b.srv.Close()
	for c := range b.conns {
		_ = c.Close()
	}
	b.ln = nil
}

// chanListener is a net.Listener fed by the accept loop.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
}

func (l chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l chanListener) Close() error   { return nil }
func (l chanListener) Addr() net.Addr { return l.addr }

var _ net.Listener = chanListener{}

// fakeClock is a Clock that moves only when told to.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	clock *fakeClock
	at    time.Time
	ch    chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) NewTimer(at time.Time) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{clock: f, at: at, ch: make(chan time.Time, 1)}
	if !at.After(f.now) {
		t.ch <- f.now
		return t
	}
	f.timers = append(f.timers, t)
	return t
}

// Advance moves the clock by d and fires the timers that are due.
func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	f.timers = slices.DeleteFunc(f.timers, func(t *fakeTimer) bool {
		if t.at.After(f.now) {
			return false
		}
		t.ch <- f.now
		return true
	})
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	f := t.clock
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.timers)
	f.timers = slices.DeleteFunc(f.timers, func(x *fakeTimer) bool { return x == t })
	return len(f.timers) < n
}

// logged returns the messages of hook's entries at level or more severe.
func logged(hook *logtest.Hook, level logrus.Level) []string {
	var out []string
	for _, e := range hook.AllEntries() {
		if e.Level <= level {
			out = append(out, e.Message)
		}
	}
	return out
}

func countMsg(msgs []string, prefix string) int {
	n := 0
	for _, m := range msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

// staticOf returns a Static upstream listing addrs.
func staticOf(addrs ...string) *balancer.Static { return balancer.NewStatic(eps(addrs...)...) }

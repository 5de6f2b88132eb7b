package proxy

import (
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/healthcheck"
)

// observer is a RequestObserver remembering every call.
type observer struct {
	mu    sync.Mutex
	calls []observation
}

type observation struct {
	route    string
	method   string
	status   int
	attempts int
}

func (o *observer) ObserveRequest(route *Route, method string, status int, _ time.Duration, attempts int) {
	name := ""
	if route != nil {
		name = route.Name
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, observation{name, method, status, attempts})
}

func (o *observer) last() observation {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.calls) == 0 {
		return observation{}
	}
	return o.calls[len(o.calls)-1]
}

// totalAttempts returns the sum of the attempts of every request observed.
func (o *observer) totalAttempts() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, c := range o.calls {
		n += c.attempts
	}
	return n
}

func countReports(reports []string, suffix string) int {
	n := 0
	for _, r := range reports {
		if strings.HasSuffix(r, suffix) {
			n++
		}
	}
	return n
}

func TestRetryConnectFailureLandsOnAnotherEndpoint(t *testing.T) {
	live := newBackend(t, "live", nil)
	dead := deadAddr(t)
	rep := &recorder{}
	up := testUpstream(t, "svc")
	up.Retry = RetryPolicy{Attempts: 2} // no body buffering: an unread body needs none
	up.Reporter = rep
	obs := &observer{}
	fe, _ := newFrontend(t, Options{Metrics: obs}, testRoute(t, "r", "round_robin", up, dead, live.addr()))

	retried := 0
	for i := range 10 {
		for _, method := range []string{"GET", "POST"} {
			payload := "payload-" + strconv.Itoa(i)
			req, _ := http.NewRequest(method, fe.URL+"/x", strings.NewReader(payload))
			res, body := do(t, req)
			if res.StatusCode != 200 {
				t.Fatalf("%s: status %d: %s", method, res.StatusCode, body)
			}
			if e := decodeEcho(t, body); e.Body != payload {
				t.Errorf("%s: backend received body %q, want %q", method, e.Body, payload)
			}
			if obs.last().attempts == 2 {
				retried++
			}
		}
	}
	if retried == 0 {
		t.Error("no request was retried: the dead endpoint was never picked")
	}
	reports := rep.list()
	if n := countReports(reports, dead+" connect_failure"); n != retried {
		t.Errorf("%d connect failures reported for %s, want %d (%v)", n, dead, retried, reports)
	}
	if n := countReports(reports, live.addr()+" success"); n != 20 {
		t.Errorf("%d successes reported for the live endpoint, want 20", n)
	}
}

func TestRetryBoundedByAttempts(t *testing.T) {
	rep := &recorder{}
	up := testUpstream(t, "svc")
	up.Retry = RetryPolicy{Attempts: 2}
	up.Reporter = rep
	obs := &observer{}
	fe, _ := newFrontend(t, Options{Metrics: obs}, testRoute(t, "r", "round_robin", up, deadAddr(t), deadAddr(t), deadAddr(t)))
	res, body := get(t, fe.URL+"/")
	if res.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	reports := rep.list()
	if len(reports) != 2 || countReports(reports, "connect_failure") != 2 {
		t.Errorf("reports %v, want 2 connect failures", reports)
	}
	if reports[0] == reports[1] {
		t.Errorf("both attempts went to the same endpoint: %v", reports)
	}
	if got := obs.last(); got.attempts != 2 || got.status != 502 {
		t.Errorf("observed %+v, want 2 attempts and 502", got)
	}
}

// stalling returns a backend that reads the request and never answers.
// (The server notices the proxy closing the connection only once the body
// was read.)
func stalling(t *testing.T, name string) *backend {
	stop := make(chan struct{})
	b := newBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	t.Cleanup(func() { close(stop) }) // runs before the server's Close
	return b
}

// failing returns a backend answering status after reading the body.
func failing(t *testing.T, name string, status int) *backend {
	return newBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(status)
	})
}

func TestNoRetryOfPostOnServerError(t *testing.T) {
	a, b := failing(t, "a", 500), failing(t, "b", 500)
	up := testUpstream(t, "svc")
	up.Retry = RetryPolicy{Attempts: 2, OnServerError: true, BufferBodyBytes: 1 << 20}
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", up, a.addr(), b.addr()))

	req, _ := http.NewRequest("POST", fe.URL+"/", strings.NewReader("order"))
	if res, _ := do(t, req); res.StatusCode != 500 {
		t.Errorf("POST status %d, want the backend's 500", res.StatusCode)
	}
	if n := a.hits.Load() + b.hits.Load(); n != 1 {
		t.Errorf("POST answered 500 was sent %d times, want 1", n)
	}
	if res, _ := get(t, fe.URL+"/"); res.StatusCode != 500 {
		t.Errorf("GET status %d, want 500", res.StatusCode)
	}
	if ha, hb := a.hits.Load(), b.hits.Load(); ha+hb != 3 || ha == 0 || hb == 0 {
		t.Errorf("GET was not retried on the other endpoint: hits a=%d b=%d", a.hits.Load(), b.hits.Load())
	}
}

func TestRetryOfGetOnServerErrorReachesHealthyEndpoint(t *testing.T) {
	bad, good := failing(t, "bad", 503), newBackend(t, "good", nil)
	rep := &recorder{}
	up := testUpstream(t, "svc")
	up.Retry = RetryPolicy{Attempts: 2, OnServerError: true}
	up.Reporter = rep
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", up, bad.addr(), good.addr()))
	for range 6 {
		if res, body := get(t, fe.URL+"/"); res.StatusCode != 200 {
			t.Fatalf("status %d: %s", res.StatusCode, body)
		}
	}
	if n := countReports(rep.list(), bad.addr()+" server_error"); n != int(bad.hits.Load()) || n == 0 {
		t.Errorf("%d server errors reported, backend answered %d", n, bad.hits.Load())
	}
}

func TestNoRetryOfPostOnTimeout(t *testing.T) {
	a, b := stalling(t, "a"), stalling(t, "b")
	up := &Upstream{Name: "svc", Transport: NewTransport(TransportConfig{ResponseHeaderTimeout: 100 * time.Millisecond})}
	up.Retry = RetryPolicy{Attempts: 2, OnTimeout: true, BufferBodyBytes: 1 << 20}
	rep := &recorder{}
	up.Reporter = rep
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", up, a.addr(), b.addr()))

	req, _ := http.NewRequest("POST", fe.URL+"/", strings.NewReader("order"))
	res, body := do(t, req)
	if res.StatusCode != http.StatusGatewayTimeout || decodeError(t, res, body).Error != "gateway timeout" {
		t.Errorf("POST status %d body %s, want 504", res.StatusCode, body)
	}
	waitFor(t, "the POST to arrive", func() bool { return a.hits.Load()+b.hits.Load() == 1 })
	if res, _ := get(t, fe.URL+"/"); res.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("GET status %d, want 504", res.StatusCode)
	}
	waitFor(t, "the GET's two attempts", func() bool { return a.hits.Load()+b.hits.Load() == 3 })
	if n := countReports(rep.list(), "timeout"); n != 3 {
		t.Errorf("%d timeouts reported, want 3: %v", n, rep.list())
	}
}

func TestRetryReplaysBufferedBody(t *testing.T) {
	bad, good := failing(t, "bad", 503), newBackend(t, "good", nil)
	up := testUpstream(t, "svc")
	up.Retry = RetryPolicy{Attempts: 2, OnServerError: true, BufferBodyBytes: 1 << 20}
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", up, bad.addr(), good.addr()))
	payload := strings.Repeat("0123456789", 10_000) // larger than a copy buffer
	for i := range 4 {
		req, _ := http.NewRequest("PUT", fe.URL+"/", strings.NewReader(payload))
		if i%2 == 1 {
			req.ContentLength = -1 // chunked
			req.Body = io.NopCloser(strings.NewReader(payload))
		}
		res, body := do(t, req)
		if res.StatusCode != 200 {
			t.Fatalf("PUT %d: status %d", i, res.StatusCode)
		}
		if e := decodeEcho(t, body); e.Body != payload {
			t.Fatalf("PUT %d: replayed body of %d bytes, want %d", i, len(e.Body), len(payload))
		}
	}
	if bad.hits.Load() == 0 {
		t.Error("the failing endpoint was never tried")
	}
}

func TestNoRetryWhenBodyExceedsReplayBuffer(t *testing.T) {
	a, b := failing(t, "a", 503), failing(t, "b", 503)
	up := testUpstream(t, "svc")
	up.Retry = RetryPolicy{Attempts: 2, OnServerError: true, BufferBodyBytes: 4}
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", up, a.addr(), b.addr()))
	req, _ := http.NewRequest("PUT", fe.URL+"/", strings.NewReader("more than four bytes"))
	if res, _ := do(t, req); res.StatusCode != 503 {
		t.Errorf("status %d, want the backend's 503", res.StatusCode)
	}
	if n := a.hits.Load() + b.hits.Load(); n != 1 {
		t.Errorf("sent %d times, want 1: the body could not be replayed", n)
	}
}

// dropping is a backend that reads each request and then closes the
// connection without answering, as a backend killed mid-request does.
func dropping(t *testing.T, name string) *backend {
	t.Helper()
	return newBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		conn.Close()
	})
}

func TestRetryOfGetOnBrokenConnectionReachesAnotherEndpoint(t *testing.T) {
	bad, good := dropping(t, "bad"), newBackend(t, "good", nil)
	rep := &recorder{}
	up := testUpstream(t, "svc")
	up.Retry = RetryPolicy{Attempts: 2, OnBrokenConnection: true, BufferBodyBytes: 1 << 20}
	up.Reporter = rep
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", up, bad.addr(), good.addr()))
	for range 4 {
		if res, body := get(t, fe.URL+"/"); res.StatusCode != 200 {
			t.Fatalf("GET status %d: %s", res.StatusCode, body)
		}
	}
	if bad.hits.Load() == 0 {
		t.Fatal("the dropping backend was never tried: the test proves nothing")
	}
	if n := countReports(rep.list(), bad.addr()+" connect_failure"); n == 0 {
		t.Errorf("broken connections not reported as connect failures: %v", rep.list())
	}
}

func TestNoRetryOfPostOnBrokenConnection(t *testing.T) {
	a, b := dropping(t, "a"), dropping(t, "b")
	up := testUpstream(t, "svc")
	up.Retry = RetryPolicy{Attempts: 2, OnBrokenConnection: true, BufferBodyBytes: 1 << 20}
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", up, a.addr(), b.addr()))
	req, _ := http.NewRequest("POST", fe.URL+"/", strings.NewReader("order"))
	if res, _ := do(t, req); res.StatusCode != http.StatusBadGateway {
		t.Errorf("POST status %d, want 502", res.StatusCode)
	}
	if n := a.hits.Load() + b.hits.Load(); n != 1 {
		t.Errorf("POST whose connection broke was sent %d times, want 1 (it may have been acted on)", n)
	}
}

func TestRetryOfPostWithIdempotencyKeyOnBrokenConnection(t *testing.T) {
	bad, good := dropping(t, "bad"), newBackend(t, "good", nil)
	up := testUpstream(t, "svc")
	up.Retry = RetryPolicy{Attempts: 2, OnBrokenConnection: true, BufferBodyBytes: 1 << 20}
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", up, bad.addr(), good.addr()))
	for range 4 {
		req, _ := http.NewRequest("POST", fe.URL+"/", strings.NewReader("order 17"))
		req.Header.Set("Idempotency-Key", "order-17")
		res, body := do(t, req)
		if res.StatusCode != 200 {
			t.Fatalf("POST with Idempotency-Key: status %d: %s", res.StatusCode, body)
		}
		if got := decodeEcho(t, body).Body; got != "order 17" {
			t.Fatalf("retried POST reached the backend with body %q", got)
		}
	}
	if bad.hits.Load() == 0 {
		t.Fatal("the dropping backend was never tried: the test proves nothing")
	}
}

// TestRetryBudgetCapsAttemptsToFailingService sends N requests through the
// proxy to a service whose two endpoints answer every request with 503,
// with retries on server errors (attempts 2). Without a budget every
// request is retried: 2N attempts. With a budget of 20% and a floor of 1/s
// over a 10s window (its clock stopped, so all N requests fall in one
// window), the retries are capped at N×20/100 + 1×10, the requests beyond
// are not retried and counted as exhausted, and every client sees the
// last attempt's 503.
func TestRetryBudgetCapsAttemptsToFailingService(t *testing.T) {
	const (
		n                  = 100
		percent, minPerSec = 20, 1
		window             = 10 * time.Second
		wantRetries        = n*percent/100 + minPerSec*10
	)
	for _, path := range []struct {
		name string
		cfg  ServerConfig
	}{{"fast path", ServerConfig{}}, {"net/http", ServerConfig{DisableFastPath: true}}} {
		for _, budgeted := range []bool{false, true} {
			name := path.name + "/no budget"
			if budgeted {
				name = path.name + "/budget"
			}
			t.Run(name, func(t *testing.T) {
				a, b := failing(t, "a", 503), failing(t, "b", 503)
				up := testUpstream(t, "svc")
				up.Retry = RetryPolicy{Attempts: 2, OnServerError: true}
				if budgeted {
					clock := &budgetClock{}
					budget, err := NewRetryBudget(RetryBudgetConfig{Percent: percent, MinPerSecond: minPerSec, Window: window, Now: clock.now})
					if err != nil {
						t.Fatal(err)
					}
					up.Retry.Budget = budget
				}
				obs := &observer{}
				rt, err := NewRouter([]*Route{testRoute(t, "r", "round_robin", up, a.addr(), b.addr())})
				if err != nil {
					t.Fatal(err)
				}
				fe := startFrontend(t, NewHandler(rt, Options{Metrics: obs}), path.cfg)
				for i := range n {
					if res, body := get(t, fe.URL+"/"); res.StatusCode != 503 {
						t.Fatalf("request %d: status %d (%s), want the last attempt's 503", i, res.StatusCode, body)
					}
				}
				attempts := a.hits.Load() + b.hits.Load()
				waitFor(t, "the proxy to report as many attempts as the backends saw", func() bool {
					return obs.totalAttempts() == int(attempts)
				})
				if !budgeted {
					if attempts != 2*n {
						t.Errorf("without a budget: %d attempts for %d requests, want %d (every request retried)", attempts, n, 2*n)
					}
					return
				}
				if want := int64(n + wantRetries); attempts != want {
					t.Errorf("with a budget: %d attempts for %d requests, want %d = N + N×%d%% + %d/s × 10s", attempts, n, want, percent, minPerSec)
				}
				if got, want := up.Retry.Budget.Exhausted(), uint64(n-wantRetries); got != want {
					t.Errorf("%d refused retries counted, want %d", got, want)
				}
			})
		}
	}
}

// TestRetryBudgetCountsOnlyRetriesTheBudgetRefused: a request that the
// policy would not retry anyway (a POST answered 503) withdraws nothing
// and is not counted as exhausted, and a connection failure refused by the
// budget ends with the gateway's 502.
func TestRetryBudgetCountsOnlyRetriesTheBudgetRefused(t *testing.T) {
	a, b := failing(t, "a", 503), failing(t, "b", 503)
	up := testUpstream(t, "svc")
	clock := &budgetClock{}
	budget, err := NewRetryBudget(RetryBudgetConfig{Percent: 0, MinPerSecond: 1, Window: time.Second, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	up.Retry = RetryPolicy{Attempts: 2, OnServerError: true, BufferBodyBytes: 1 << 10, Budget: budget}
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", up, a.addr(), b.addr()))
	for range 3 {
		req, _ := http.NewRequest("POST", fe.URL+"/", strings.NewReader("order"))
		if res, _ := do(t, req); res.StatusCode != 503 {
			t.Fatalf("POST status %d, want 503", res.StatusCode)
		}
	}
	if got := budget.Exhausted(); got != 0 {
		t.Errorf("POSTs the policy never retries counted %d exhausted retries", got)
	}
	if got := budget.Available(); got != 1 {
		t.Errorf("POSTs withdrew from the budget: %d retry left, want 1", got)
	}

	dead := testUpstream(t, "dead")
	deadBudget, err := NewRetryBudget(RetryBudgetConfig{Percent: 0, MinPerSecond: 1, Window: time.Second, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	dead.Retry = RetryPolicy{Attempts: 3, Budget: deadBudget}
	rep := &recorder{}
	dead.Reporter = rep
	fe, _ = newFrontend(t, Options{}, testRoute(t, "r", "round_robin", dead, deadAddr(t), deadAddr(t), deadAddr(t)))
	for i, want := range []int{2, 1} { // the floor's one retry, then none
		before := len(rep.list())
		if res, body := get(t, fe.URL+"/"); res.StatusCode != http.StatusBadGateway {
			t.Fatalf("request %d: status %d (%s), want 502", i, res.StatusCode, body)
		}
		if got := len(rep.list()) - before; got != want {
			t.Errorf("request %d: %d attempts, want %d", i, got, want)
		}
	}
	if got := deadBudget.Exhausted(); got != 2 {
		t.Errorf("Exhausted = %d, want 2 (the first request's second retry, the second's first)", got)
	}
}

// attemptRecorder is an AttemptObserver remembering every attempt.
type attemptRecorder struct {
	mu       sync.Mutex
	attempts []Attempt
}

func (r *attemptRecorder) ObserveAttempt(a Attempt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts = append(r.attempts, a)
}

func (r *attemptRecorder) list() []Attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.attempts)
}

// Upstream.Attempts hears of every attempt, on both paths: its outcome, how
// long the endpoint took to answer, and whether another endpoint was tried
// after it.
func TestAttemptObserver(t *testing.T) {
	const delay = 30 * time.Millisecond
	slow := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay) // the latency to measure
		w.WriteHeader(http.StatusInternalServerError)
	})
	dead := deadAddr(t)
	for _, fast := range []bool{true, false} {
		t.Run(map[bool]string{true: "fast", false: "nethttp"}[fast], func(t *testing.T) {
			rec := &attemptRecorder{}
			up := testUpstream(t, "svc")
			up.Retry = RetryPolicy{Attempts: 2}
			up.Attempts = rec
			rt, err := NewRouter([]*Route{testRoute(t, "r", "round_robin", up, dead, slow.addr())})
			if err != nil {
				t.Fatal(err)
			}
			fe := startFrontend(t, NewHandler(rt, Options{}), ServerConfig{DisableFastPath: !fast})
			for range 4 {
				if res, body := get(t, fe.URL+"/"); res.StatusCode != http.StatusInternalServerError {
					t.Fatalf("status %d: %s", res.StatusCode, body)
				}
			}
			var deadSeen, slowSeen int
			for _, a := range rec.list() {
				if a.End.After(time.Now()) || time.Since(a.End) > 5*time.Second {
					t.Errorf("attempt %+v ended at %v, not just before now", a, a.End)
				}
				switch a.Addr {
				case dead:
					deadSeen++
					if a.Outcome != healthcheck.ConnectFailure || !a.Retried {
						t.Errorf("dead endpoint's attempt %+v, want a connect failure, retried", a)
					}
				case slow.addr():
					slowSeen++
					if a.Outcome != healthcheck.ServerError || a.Retried || a.Duration < delay || a.Duration > 5*time.Second {
						t.Errorf("slow endpoint's attempt %+v, want a server error taking at least %v, not retried", a, delay)
					}
				default:
					t.Errorf("attempt to unknown endpoint: %+v", a)
				}
			}
			if slowSeen != 4 || deadSeen == 0 {
				t.Errorf("observed %d attempts to the dead endpoint and %d to the slow one, want some and 4", deadSeen, slowSeen)
			}
		})
	}
}

// pickLedger is a balancer that hands out endpoints from a script, in
// turn, and counts the picks and Dones of each address.
type pickLedger struct {
	script []string
	next   int
	picks  map[string]int
	dones  map[string]int
}

func (b *pickLedger) Pick(string) (balancer.Endpoint, error) {
	if len(b.script) == 0 {
		return balancer.Endpoint{}, balancer.ErrNoEndpoint
	}
	a := b.script[b.next%len(b.script)]
	b.next++
	b.picks[a]++
	return balancer.Endpoint{Addr: a}, nil
}

func (b *pickLedger) Done(ep balancer.Endpoint) { b.dones[ep.Addr]++ }

func (b *pickLedger) Update([]balancer.Endpoint) {}

// TestAttemptsEveryPickDoneOnce runs entry.attempts through its retry and
// failure cases with a scripted balancer and scripted outcomes: every
// pick gets exactly one Done (the last attempt's by the caller, as the
// request paths give it), each retried attempt's answer is discarded once,
// and the attempts and endpoints tried are recorded in order.
func TestAttemptsEveryPickDoneOnce(t *testing.T) {
	emptyBudget, err := NewRetryBudget(RetryBudgetConfig{Percent: 0, MinPerSecond: 0})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		script     []string
		pol        RetryPolicy
		replayable bool
		outcomes   []failKind
		wantTried  []string
		wantKind   failKind
	}{
		{name: "first attempt answers", script: []string{"a", "b"}, pol: RetryPolicy{Attempts: 3},
			outcomes: []failKind{failNone}, wantTried: []string{"a"}, wantKind: failNone},
		{name: "connect failure, then an answer", script: []string{"a", "b"}, pol: RetryPolicy{Attempts: 3},
			outcomes: []failKind{failConnect, failNone}, wantTried: []string{"a", "b"}, wantKind: failNone},
		{name: "every attempt fails", script: []string{"a", "b", "c"}, pol: RetryPolicy{Attempts: 3},
			outcomes: []failKind{failConnect, failConnect, failConnect}, wantTried: []string{"a", "b", "c"}, wantKind: failConnect},
		{name: "repicks of a tried endpoint are discarded", script: []string{"a", "a", "a", "b"}, pol: RetryPolicy{Attempts: 2},
			outcomes: []failKind{failConnect, failNone}, wantTried: []string{"a", "b"}, wantKind: failNone},
		{name: "no untried endpoint within maxRepicks", script: []string{"a"}, pol: RetryPolicy{Attempts: 3},
			outcomes: []failKind{failConnect}, wantTried: []string{"a"}, wantKind: failConnect},
		{name: "the retry budget refuses", script: []string{"a", "b"}, pol: RetryPolicy{Attempts: 3, Budget: emptyBudget},
			outcomes: []failKind{failConnect}, wantTried: []string{"a"}, wantKind: failConnect},
		{name: "a timeout is not retried for a request that may not be sent twice", script: []string{"a", "b"},
			pol: RetryPolicy{Attempts: 3, OnTimeout: true}, outcomes: []failKind{failTimeout}, wantTried: []string{"a"}, wantKind: failTimeout},
		{name: "a timeout retried for one that may", script: []string{"a", "b"}, replayable: true,
			pol: RetryPolicy{Attempts: 3, OnTimeout: true}, outcomes: []failKind{failTimeout, failServerError},
			wantTried: []string{"a", "b"}, wantKind: failServerError},
		{name: "no endpoint", script: nil, pol: RetryPolicy{Attempts: 3}, wantKind: failNoEndpoint},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lb := &pickLedger{script: tc.script, picks: map[string]int{}, dones: map[string]int{}}
			up := &Upstream{Name: "svc", Retry: tc.pol}
			e := &entry{route: &Route{Name: "r", Balancer: lb, Upstream: up}, track: lb}
			ex := &exchange{start: time.Now(), replayable: tc.replayable}
			var tries []string
			discards := 0
			try := func(ep balancer.Endpoint) (failKind, error) {
				tries = append(tries, ep.Addr)
				if ex.attempts != len(tries) {
					t.Errorf("attempt %d recorded as %d", len(tries), ex.attempts)
				}
				if len(tries) > len(tc.outcomes) {
					t.Fatalf("attempt %d to %s: none scripted", len(tries), ep.Addr)
				}
				return tc.outcomes[len(tries)-1], nil
			}
			ep, kind, _ := e.attempts(ex, try, func() { discards++ })
			if kind != tc.wantKind {
				t.Errorf("kind %d, want %d", kind, tc.wantKind)
			}
			if kind != failNoEndpoint {
				e.done(ep) // the caller's, as every request path gives it
			}
			if !slices.Equal(tries, tc.wantTried) || !slices.Equal(ex.tried, tc.wantTried) {
				t.Errorf("tried %v (recorded %v), want %v", tries, ex.tried, tc.wantTried)
			}
			if want := max(len(tries)-1, 0); discards != want {
				t.Errorf("%d answers discarded, want %d", discards, want)
			}
			for a, n := range lb.picks {
				if lb.dones[a] != n {
					t.Errorf("%s: %d picks, %d Dones", a, n, lb.dones[a])
				}
			}
			for a, n := range lb.dones {
				if lb.picks[a] == 0 {
					t.Errorf("%s: %d Dones without a pick", a, n)
				}
			}
		})
	}
}

// attemptLog is an AttemptObserver remembering every attempt.
type attemptLog struct{ seen []Attempt }

func (l *attemptLog) ObserveAttempt(a Attempt) { l.seen = append(l.seen, a) }

// TestAttemptsObservedFromTheirOwnStart pins what an observer is told of
// each attempt on the fast path's clock (ex.clock): an attempt starts at
// the clock's reading when it begins — the request's for the first, read
// again for a retry — and ends that long after, so that whoever ends an
// attempt (endAttempt) reports the span its beginning recorded.
func TestAttemptsObservedFromTheirOwnStart(t *testing.T) {
	lb := &pickLedger{script: []string{"a", "b", "c"}, picks: map[string]int{}, dones: map[string]int{}}
	obs := &attemptLog{}
	up := &Upstream{Name: "svc", Retry: RetryPolicy{Attempts: 3}, Attempts: obs}
	e := &entry{route: &Route{Name: "r", Balancer: lb, Upstream: up}, track: lb}
	start := time.Now().Add(-time.Second) // the request arrived a while ago
	clock := start
	ex := &exchange{start: start, clock: &clock}
	var began []time.Time
	outcomes := []failKind{failConnect, failConnect, failNone}
	try := func(balancer.Endpoint) (failKind, error) {
		began = append(began, clock)
		return outcomes[len(began)-1], nil
	}
	ep, kind, _ := e.attempts(ex, try, func() {})
	e.done(ep)
	if kind != failNone || len(obs.seen) != 3 {
		t.Fatalf("kind %d, %d attempts observed; want an answer at the third", kind, len(obs.seen))
	}
	if !began[0].Equal(start) {
		t.Errorf("the first attempt began at %v, not at the request's clock reading %v", began[0], start)
	}
	for i, a := range obs.seen {
		if a.Addr != []string{"a", "b", "c"}[i] || a.Retried != (i < 2) {
			t.Errorf("attempt %d observed as %+v", i+1, a)
		}
		if got := a.End.Add(-a.Duration); !got.Equal(began[i]) {
			t.Errorf("attempt %d: End − Duration is %v, but it began at %v", i+1, got, began[i])
		}
		if a.Duration < 0 {
			t.Errorf("attempt %d lasted %v", i+1, a.Duration)
		}
		if i > 0 && began[i].Before(obs.seen[i-1].End) {
			t.Errorf("attempt %d began at %v, before attempt %d ended (%v)", i+1, began[i], i, obs.seen[i-1].End)
		}
	}
}

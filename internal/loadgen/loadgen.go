// Package loadgen is a small, bounded HTTP load generator for the demo smoke
// run and the end-to-end tests. It sends a steady stream of GET and POST
// requests to one URL at a fixed rate, and counts answers by status and by the
// backend instance that served them (the echo backend's X-Echo-Instance
// header). It stops by itself after Duration or MaxRequests, whichever comes
// first, or when its context ends.
package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config says what to send.
type Config struct {
	// URL is the target; it must be a loopback address.
	URL string
	// Rate is requests per second (default 300).
	Rate int
	// Duration bounds the run (default 10s, at most 10m).
	Duration time.Duration
	// MaxRequests bounds the count (default Rate × Duration seconds).
	MaxRequests int
	// Concurrency bounds requests in flight (default 32).
	Concurrency int
	// PostEvery makes every n-th request a POST with a small body (0: GET only).
	PostEvery int
	// PostBytes, when positive, is the size of every POST body, and the
	// answer must be an echo reply (internal/echo) counting exactly that
	// many body bytes: a body cut short or doubled on its way is a
	// failure.
	PostBytes int
	// PlainPosts sends POSTs without an Idempotency-Key header. By default
	// each POST carries a unique key, as API clients that want their writes
	// retried safely do; a gateway may then resend it to another backend when
	// the first one dies mid-request, which it must never do for a plain POST.
	PlainPosts bool
	// Timeout is the client timeout per request (default 5s).
	Timeout time.Duration
}

// Result is what a run saw.
type Result struct {
	Sent, OK, Failed int
	ByStatus         map[int]int
	ByInstance       map[string]int
	FirstSeen        map[string]time.Time
	LastSeen         map[string]time.Time
	// Failures holds up to 20 examples of failed requests.
	Failures  []string
	Latencies []time.Duration
}

// Generator is a running load.
type Generator struct {
	cfg    Config
	client *http.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	res Result
}

// Start validates cfg and starts sending in the background.
func Start(ctx context.Context, cfg Config) (*Generator, error) {
	if cfg.Rate <= 0 {
		cfg.Rate = 300
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Duration > 10*time.Minute {
		return nil, fmt.Errorf("loadgen: duration %s is over the 10m bound", cfg.Duration)
	}
	if cfg.MaxRequests <= 0 {
		cfg.MaxRequests = int(float64(cfg.Rate) * cfg.Duration.Seconds())
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 32
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	req, err := http.NewRequest(http.MethodGet, cfg.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("loadgen: url: %w", err)
	}
	if h := req.URL.Hostname(); h != "localhost" && !strings.HasPrefix(h, "127.") && h != "::1" {
		return nil, fmt.Errorf("loadgen: url %q: only loopback targets are allowed", cfg.URL)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	g := &Generator{
		cfg: cfg,
		client: &http.Client{
			Timeout: cfg.Timeout,
			Transport: &http.Transport{
				MaxIdleConnsPerHost: cfg.Concurrency,
				IdleConnTimeout:     30 * time.Second,
			},
		},
		cancel: cancel,
		done:   make(chan struct{}),
		res: Result{
			ByStatus:   map[int]int{},
			ByInstance: map[string]int{},
			FirstSeen:  map[string]time.Time{},
			LastSeen:   map[string]time.Time{},
		},
	}
	go g.run(ctx)
	return g, nil
}

func (g *Generator) run(ctx context.Context) {
	defer close(g.done)
	defer g.cancel()
	sem := make(chan struct{}, g.cfg.Concurrency)
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(g.cfg.Rate))
	defer tick.Stop()
	for i := 0; i < g.cfg.MaxRequests; i++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		post := g.cfg.PostEvery > 0 && i%g.cfg.PostEvery == 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			g.one(post, i)
		}()
	}
	wg.Wait()
}

func (g *Generator) one(post bool, seq int) {
	method, body := http.MethodGet, io.Reader(nil)
	payload := fmt.Appendf(nil, "request %d", seq)
	if post {
		if n := g.cfg.PostBytes; n > len(payload) {
			payload = append(payload, bytes.Repeat([]byte{'.'}, n-len(payload))...)
		}
		method, body = http.MethodPost, bytes.NewReader(payload)
	}
	// The request is not tied to the run's context: a request already sent is
	// awaited (bounded by the client timeout) rather than cut at the deadline,
	// which would count as a failure of the system under test.
	req, err := http.NewRequest(method, g.cfg.URL, body)
	if err != nil {
		g.record(0, "", 0, err)
		return
	}
	if post && !g.cfg.PlainPosts {
		req.Header.Set("Idempotency-Key", "loadgen-"+strconv.Itoa(seq))
	}
	start := time.Now()
	resp, err := g.client.Do(req)
	if err != nil {
		g.record(0, "", time.Since(start), err)
		return
	}
	if post && g.cfg.PostBytes > 0 && resp.StatusCode == http.StatusOK {
		err = checkEcho(resp.Body, len(payload))
	}
	if _, cerr := io.Copy(io.Discard, resp.Body); err == nil {
		err = cerr
	}
	_ = resp.Body.Close()
	g.record(resp.StatusCode, resp.Header.Get("X-Echo-Instance"), time.Since(start), err)
}

// checkEcho reads an echo reply and checks that the backend received n
// body bytes.
func checkEcho(r io.Reader, n int) error {
	var reply struct { // internal/echo's Reply, the part read here
		Request struct {
			BodyBytes *int64 `json:"body_bytes"`
		} `json:"request"`
	}
	if err := json.NewDecoder(r).Decode(&reply); err != nil {
		return fmt.Errorf("echo reply: %w", err)
	}
	got := reply.Request.BodyBytes
	if got == nil {
		return fmt.Errorf("echo reply without request.body_bytes (%d body bytes sent)", n)
	}
	if *got != int64(n) {
		return fmt.Errorf("the backend received %d body bytes of %d", *got, n)
	}
	return nil
}

func (g *Generator) record(status int, instance string, d time.Duration, err error) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	r := &g.res
	r.Sent++
	r.Latencies = append(r.Latencies, d)
	if err == nil && status >= 200 && status < 400 {
		r.OK++
	} else {
		r.Failed++
		if len(r.Failures) < 20 {
			msg := fmt.Sprintf("status %d", status)
			if err != nil {
				msg = err.Error()
			}
			r.Failures = append(r.Failures, now.Format("15:04:05.000")+" "+msg)
		}
	}
	if status != 0 {
		r.ByStatus[status]++
	}
	if instance != "" && err == nil {
		r.ByInstance[instance]++
		if _, ok := r.FirstSeen[instance]; !ok {
			r.FirstSeen[instance] = now
		}
		r.LastSeen[instance] = now
	}
}

// Snapshot returns a copy of the counts so far.
func (g *Generator) Snapshot() Result {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.res
	r.ByStatus = clone(r.ByStatus)
	r.ByInstance = clone(r.ByInstance)
	r.FirstSeen = clone(r.FirstSeen)
	r.LastSeen = clone(r.LastSeen)
	r.Failures = slices.Clone(r.Failures)
	r.Latencies = slices.Clone(r.Latencies)
	return r
}

// Wait blocks until the run ends by itself and returns its result.
func (g *Generator) Wait() Result {
	<-g.done
	return g.Snapshot()
}

// Stop ends the run early, waits for requests in flight and returns the
// result.
func (g *Generator) Stop() Result {
	g.cancel()
	return g.Wait()
}

// Done is closed when the run has ended.
func (g *Generator) Done() <-chan struct{} { return g.done }

func clone[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Percentile returns the p-th percentile (0..100) of ds, or 0 for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p / 100 * float64(len(s)-1))
	return s[i]
}

// Summary renders a one-paragraph report of r.
func (r Result) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sent=%d ok=%d failed=%d p50=%s p99=%s", r.Sent, r.OK, r.Failed,
		Percentile(r.Latencies, 50).Round(time.Microsecond), Percentile(r.Latencies, 99).Round(time.Microsecond))
	names := make([]string, 0, len(r.ByInstance))
	for n := range r.ByInstance {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, " %s=%d", n, r.ByInstance[n])
	}
	for _, f := range r.Failures {
		b.WriteString("\n  failure: " + f)
	}
	return b.String()
}

// ErrFailed is returned by Check when requests failed.
var ErrFailed = errors.New("loadgen: requests failed")

// Check returns ErrFailed (wrapped with the counts) when any request failed.
func (r Result) Check() error {
	if r.Failed > 0 {
		return fmt.Errorf("%w: %d of %d", ErrFailed, r.Failed, r.Sent)
	}
	return nil
}

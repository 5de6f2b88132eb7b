package loadgen

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/echo"
)

func TestRunCountsByStatusAndInstance(t *testing.T) {
	var n, posts, keys atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
			if r.Header.Get("Idempotency-Key") != "" {
				keys.Add(1)
			}
		}
		if n.Add(1)%5 == 0 {
			http.Error(w, "no", http.StatusBadGateway)
			return
		}
		w.Header().Set("X-Echo-Instance", "b1")
	}))
	defer srv.Close()
	g, err := Start(context.Background(), Config{URL: srv.URL, Rate: 500, MaxRequests: 50, Duration: 10 * time.Second, PostEvery: 2})
	if err != nil {
		t.Fatal(err)
	}
	r := g.Wait()
	if r.Sent != 50 || r.OK != 40 || r.Failed != 10 || r.ByStatus[502] != 10 || r.ByInstance["b1"] != 40 {
		t.Fatalf("result %s (by status %v)", r.Summary(), r.ByStatus)
	}
	if posts.Load() != 25 || keys.Load() != 25 {
		t.Errorf("posts %d with idempotency keys %d, want 25 and 25", posts.Load(), keys.Load())
	}
	if !errors.Is(r.Check(), ErrFailed) {
		t.Errorf("Check() = %v, want ErrFailed", r.Check())
	}
}

func TestStartRefusesNonLoopbackTargets(t *testing.T) {
	for _, u := range []string{"http://10.0.0.1/", "http://example.com/"} {
		if _, err := Start(context.Background(), Config{URL: u}); err == nil {
			t.Errorf("Start(%s) accepted a non-loopback target", u)
		}
	}
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3}
	if p := Percentile(ds, 50); p != 3 {
		t.Errorf("p50 = %d, want 3", p)
	}
	if p := Percentile(ds, 100); p != 5 {
		t.Errorf("p100 = %d, want 5", p)
	}
	if p := Percentile(nil, 99); p != 0 {
		t.Errorf("empty p99 = %d", p)
	}
}

func TestPostBytesChecksTheEcho(t *testing.T) {
	var cut atomic.Bool
	be := &echo.Handler{Instance: "b1"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && cut.Load() {
			_, _ = r.Body.Read(make([]byte, 1)) // as if a byte were lost on the way
		}
		be.ServeHTTP(w, r)
	}))
	defer srv.Close()
	for _, lose := range []bool{false, true} {
		cut.Store(lose)
		g, err := Start(context.Background(), Config{URL: srv.URL, Rate: 500, MaxRequests: 20, Duration: 10 * time.Second, PostEvery: 2, PostBytes: 20000})
		if err != nil {
			t.Fatal(err)
		}
		r := g.Wait()
		wantFailed := 0
		if lose {
			wantFailed = 10
		}
		if r.Sent != 20 || r.Failed != wantFailed {
			t.Errorf("bodies cut: %v: result %s, want %d failed (%v)", lose, r.Summary(), wantFailed, r.Failures)
		}
	}
}

package app

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/zktest"
)

// unavailable starts a backend answering every request 503 and counting
// them.
func unavailable(t *testing.T, hits *atomic.Int64) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(s.Close)
	return s
}

// TestRetryBudgetFromConfigCapsRetriesAndIsCounted runs the gateway with
// two services whose endpoints (registered in ZooKeeper) answer every
// request 503, both retrying server errors once: "capped" with a retry
// budget of 20% of the requests and no floor over a 60s window, "unbudgeted"
// with its budget disabled. N requests to each: the unbudgeted service gets
// 2N attempts (the behaviour without a budget), the capped one N + N×20%,
// the retries refused are exported as zkgate_retry_budget_exhausted_total,
// and every client gets the backends' 503.
func TestRetryBudgetFromConfigCapsRetriesAndIsCounted(t *testing.T) {
	zktest.Require(t)
	srv := zktest.Start(t)
	conn := zktest.Connect(t, srv.Addr())
	const n = 50
	routes := `  - { name: capped, match: { path_prefix: /capped }, service: capped, balancer: round_robin }
  - { name: unbudgeted, match: { path_prefix: /unbudgeted }, service: unbudgeted, balancer: round_robin }`
	services := `  capped:
    health_check: { passive: { max_failures: 0 } }
    retries: { attempts: 2, on: [server_error], budget: { percent: 20, min_per_second: 0, window: 60s } }
  unbudgeted:
    health_check: { passive: { max_failures: 0 } }
    retries: { attempts: 2, on: [server_error], budget: { enabled: false } }`
	g := startGateway(t, srv.Addr(), routes, services)

	hits := map[string]*atomic.Int64{"capped": new(atomic.Int64), "unbudgeted": new(atomic.Int64)}
	for svc, h := range hits {
		a, b := unavailable(t, h), unavailable(t, h)
		register(t, conn, svc, hostPort(a))
		register(t, conn, svc, hostPort(b))
		// Wait on the admin API, not on proxied requests: those would
		// spend the budget before the count starts.
		zktest.WaitFor(t, 10*time.Second, func() bool {
			_, body := get(t, g.admin+"/api/services/"+svc)
			return strings.Contains(body, hostPort(a)) && strings.Contains(body, hostPort(b))
		}, "both endpoints of %s known", svc)
	}

	for svc := range hits {
		for i := range n {
			if code, body := get(t, g.proxy+"/"+svc+"/"); code != http.StatusServiceUnavailable {
				t.Fatalf("%s request %d: %d %s, want the backends' 503", svc, i, code, body)
			}
		}
	}
	const capped = n + n*20/100
	if got := hits["capped"].Load(); got != capped {
		t.Errorf("capped: %d attempts for %d requests, want %d = N + N×20%%", got, n, capped)
	}
	if got := hits["unbudgeted"].Load(); got != 2*n {
		t.Errorf("unbudgeted: %d attempts for %d requests, want %d (every request retried)", got, n, 2*n)
	}
	_, metrics := get(t, g.admin+"/metrics")
	for _, want := range []string{
		fmt.Sprintf(`zkgate_retry_budget_exhausted_total{service="capped"} %d`, n-n*20/100),
		`zkgate_retry_budget_exhausted_total{service="unbudgeted"} 0`,
		fmt.Sprintf(`zkgate_upstream_attempts_total{result="retried",service="capped"} %d`, n*20/100),
		fmt.Sprintf(`zkgate_upstream_attempts_total{result="retried",service="unbudgeted"} %d`, n),
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(metrics, "retr"))
		}
	}
}

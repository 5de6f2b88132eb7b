package balancer

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// waitLimit bounds every awaited condition.
const waitLimit = 5 * time.Second

// eventually polls cond until it holds, failing the test with what after
// waitLimit (as healthcheck's helper of that name does).
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

// list returns normalized endpoints with the given weights, named
// 10.0.0.1:80, 10.0.0.2:80, ... so that address order is index order for up
// to 9 endpoints; use listN for more.
func list(weights ...int) []Endpoint {
	eps := make([]Endpoint, len(weights))
	for i, w := range weights {
		eps[i] = Endpoint{ID: fmt.Sprint("n", i), Addr: fmt.Sprintf("10.0.0.%d:80", i+1), Weight: w}
	}
	return Normalize(eps)
}

// listN returns n normalized endpoints of weight 1 + i%mod (mod 0: all 1),
// with zero-padded addresses so that address order is index order.
func listN(n, mod int) []Endpoint {
	eps := make([]Endpoint, n)
	for i := range eps {
		w := 1
		if mod > 0 {
			w += i % mod
		}
		eps[i] = Endpoint{ID: fmt.Sprint("n", i), Addr: fmt.Sprintf("10.%03d.%03d.1:80", i/256, i%256), Weight: w}
	}
	return Normalize(eps)
}

// addrs returns the addresses of eps.
func addrs(eps []Endpoint) []string {
	out := make([]string, len(eps))
	for i, e := range eps {
		out[i] = e.Addr
	}
	return out
}

// picks returns the addresses of n successive picks with key "".
func picks(t testing.TB, b Balancer, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		e, err := b.Pick("")
		if err != nil {
			t.Fatalf("pick %d: %v", i, err)
		}
		out[i] = e.Addr
	}
	return out
}

// naiveSmooth is nginx's smooth weighted round robin as nginx writes it
// (ngx_http_upstream_get_peer), O(n) a pick: the reference the precomputed
// schedule must reproduce.
type naiveSmooth struct {
	weight, current []int
}

func newNaiveSmooth(weights []int) *naiveSmooth {
	return &naiveSmooth{weight: weights, current: make([]int, len(weights))}
}

func (s *naiveSmooth) next() int {
	total, best := 0, -1
	for i, w := range s.weight {
		s.current[i] += w
		total += w
		if best < 0 || s.current[i] > s.current[best] {
			best = i
		}
	}
	s.current[best] -= total
	return best
}

// randomWeights returns n weights in [1, maxW] drawn from r.
func randomWeights(r *rand.Rand, n, maxW int) []int {
	w := make([]int, n)
	for i := range w {
		w[i] = 1 + r.IntN(maxW)
	}
	return w
}

// weightsOf returns the weights of eps, each at least 1, as the balancers
// derive their tables from them when no endpoint ramps.
func weightsOf(eps []Endpoint) []int {
	w := make([]int, len(eps))
	for i, e := range eps {
		w[i] = max(e.Weight, 1)
	}
	return w
}

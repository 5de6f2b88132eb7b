package balancer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// chiSquare001 holds the chi-square critical values at p = 0.001 by degrees
// of freedom: a correct sampler exceeds them once in a thousand seeds.
var chiSquare001 = map[int]float64{2: 13.816, 4: 18.467, 9: 27.877, 19: 43.820}

// chiSquare returns the statistic of observed counts against expected
// probabilities over n draws.
func chiSquare(observed []int, p []float64, n int) float64 {
	var stat float64
	for i, o := range observed {
		e := p[i] * float64(n)
		stat += (float64(o) - e) * (float64(o) - e) / e
	}
	return stat
}

// seeded returns a Random drawing from a fixed-seed generator, so that the
// distribution tests are deterministic.
func seeded(seed uint64) *Random {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	return &Random{src: r.Uint64}
}

func TestRandomDistribution(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{
		{"uniform 10", []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{"weighted 3", []int{5, 1, 1}},
		{"weighted 5", []int{1, 2, 3, 4, 10}},
		{"weighted 20", []int{1, 9, 2, 8, 3, 7, 4, 6, 5, 5, 1, 1, 1, 1, 20, 2, 2, 2, 3, 3}},
	}
	const draws = 200000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eps := listN(len(tt.weights), 0)
			total := 0
			for i, w := range tt.weights {
				eps[i].Weight = w
				total += w
			}
			b := seeded(uint64(len(tt.weights)))
			b.Update(eps)
			index := map[string]int{}
			for i, e := range eps {
				index[e.Addr] = i
			}
			observed := make([]int, len(eps))
			for range draws {
				e, err := b.Pick("")
				if err != nil {
					t.Fatal(err)
				}
				observed[index[e.Addr]]++
			}
			p := make([]float64, len(eps))
			for i, w := range tt.weights {
				p[i] = float64(w) / float64(total)
			}
			stat, limit := chiSquare(observed, p, draws), chiSquare001[len(eps)-1]
			if stat > limit {
				t.Errorf("chi-square %.1f > %.1f (df %d): counts %v for weights %v", stat, limit, len(eps)-1, observed, tt.weights)
			}
		})
	}
}

func TestAliasTableIsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for trial := range 200 {
		n := 2 + r.IntN(50)
		w := randomWeights(r, n, []int{2, 10, 1000}[trial%3])
		w[0] = 1 // at least two distinct weights
		w[1] = 2
		eps := make([]Endpoint, n)
		total := 0
		for i := range eps {
			eps[i].Weight = w[i]
			total += w[i]
		}
		keep, alias := aliasTable(weightsOf(eps))
		if keep == nil {
			t.Fatalf("weights %v: no alias table", w)
		}
		// The probability of each endpoint, summed over the slots.
		p := make([]float64, n)
		for i := range keep {
			own := float64(keep[i]) / (1 << 64)
			if int(alias[i]) == i {
				own = 1
			}
			p[i] += own / float64(n)
			p[alias[i]] += (1 - own) / float64(n)
		}
		for i := range p {
			if want := float64(w[i]) / float64(total); math.Abs(p[i]-want) > 1e-9 {
				t.Fatalf("weights %v: endpoint %d has probability %g, want %g", w, i, p[i], want)
			}
		}
	}
}

func TestAliasTableEqualWeights(t *testing.T) {
	if keep, alias := aliasTable(weightsOf(list(3, 3, 3))); keep != nil || alias != nil {
		t.Error("aliasTable built a table for equal weights")
	}
}

func TestRandomDefaultSourceReachesEveryEndpoint(t *testing.T) {
	b := NewRandom()
	eps := list(1, 2, 3, 4)
	b.Update(eps)
	seen := map[string]bool{}
	// Each endpoint has probability at least 1/10: missing one in 2000
	// draws has probability below 1e-90.
	for _, a := range picks(t, b, 2000) {
		seen[a] = true
	}
	if len(seen) != len(eps) {
		t.Errorf("2000 draws reached %d of %d endpoints: %v", len(seen), len(eps), seen)
	}
}

func TestRandomWeightChangeRebuildsTable(t *testing.T) {
	b := NewRandom()
	b.Update(list(1, 1))
	if b.snap.Load().keep != nil {
		t.Fatal("table built for equal weights")
	}
	b.Update(list(1, 3))
	s := b.snap.Load()
	if s.keep == nil {
		t.Fatal("no table after a weight change")
	}
	meta := list(1, 3)
	meta[0].Meta = map[string]string{"zone": "z"}
	b.Update(meta)
	if got := b.snap.Load(); &got.keep[0] != &s.keep[0] {
		t.Error("a metadata-only Update rebuilt the table")
	}
}

func ExampleRandom() {
	b := NewRandom()
	b.Update([]Endpoint{{Addr: "10.0.0.1:80", Weight: 3}})
	e, err := b.Pick("")
	fmt.Println(e.Addr, err)
	// Output: 10.0.0.1:80 <nil>
}

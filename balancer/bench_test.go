package balancer

import (
	"strconv"
	"testing"
	"time"
)

// reportCPU adds the process's CPU time per operation since start as the
// cpu-ns/op metric. On a shared machine ns/op also counts the time other
// processes hold the CPU; cpu-ns/op does not (it still counts cache misses
// they cause). In parallel benchmarks it sums the CPU time of all pickers.
func reportCPU(b *testing.B, start time.Duration) {
	if start > 0 && b.N > 0 {
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}

// benchSizes are the list lengths the benchmarks measure.
var benchSizes = []int{10, 1000, 10000}

// benchList is n endpoints of weights 1 to 5, as a weighted service might
// have.
func benchList(n int) []Endpoint { return listN(n, 5) }

// benchKeys are the consistent-hash keys the pick benchmarks cycle through:
// enough distinct keys to reach every part of a large ring.
var benchKeys = hashKeys(1 << 16)

// BenchmarkPick measures one Pick by one goroutine. For least_request,
// whose callers also call Done, see BenchmarkLeastRequestPickDone too;
// without Done its counters only grow, which changes nothing for the cost
// of a pick.
func BenchmarkPick(b *testing.B) {
	for _, name := range Names() {
		for _, n := range benchSizes {
			b.Run(name+"/n="+strconv.Itoa(n), func(b *testing.B) {
				bal, err := New(name)
				if err != nil {
					b.Fatal(err)
				}
				bal.Update(benchList(n))
				b.ReportAllocs()
				i := 0
				cpu := processCPU()
				for b.Loop() {
					i++
					if _, err := bal.Pick(benchKeys[i&(len(benchKeys)-1)]); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, cpu)
			})
		}
	}
}

// BenchmarkPickParallel measures picks from GOMAXPROCS goroutines sharing
// one balancer, as concurrent requests do.
func BenchmarkPickParallel(b *testing.B) {
	for _, name := range Names() {
		for _, n := range benchSizes {
			b.Run(name+"/n="+strconv.Itoa(n), func(b *testing.B) {
				bal, err := New(name)
				if err != nil {
					b.Fatal(err)
				}
				bal.Update(benchList(n))
				b.ReportAllocs()
				cpu := processCPU()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						i++
						if _, err := bal.Pick(benchKeys[i&(len(benchKeys)-1)]); err != nil {
							b.Error(err)
							return
						}
					}
				})
				reportCPU(b, cpu)
			})
		}
	}
}

// BenchmarkUpdate measures rebuilding a snapshot for a changed list of
// 10000 endpoints: two lists that differ by one endpoint (one leaves,
// another joins), alternately, as a rolling restart produces.
func BenchmarkUpdate(b *testing.B) {
	for _, name := range Names() {
		b.Run(name+"/n=10000", func(b *testing.B) {
			bal, err := New(name)
			if err != nil {
				b.Fatal(err)
			}
			lists := [2][]Endpoint{benchList(10000), benchList(10000)}
			lists[1][0].Addr = "10.000.000.0:80" // still first in address order
			b.ReportAllocs()
			i := 0
			cpu := processCPU()
			for b.Loop() {
				i++
				bal.Update(lists[i&1])
			}
			reportCPU(b, cpu)
		})
	}
}

// BenchmarkRingBuild measures building a consistent-hash ring from scratch,
// as the first Update of a ConsistentHash does (later ones merge).
func BenchmarkRingBuild(b *testing.B) {
	eps := benchList(10000)
	b.ReportAllocs()
	for b.Loop() {
		buildRing(eps, nil, nil)
	}
}

// BenchmarkLeastRequestPickDone measures least_request's cost per request:
// a Pick and its Done, serially and from GOMAXPROCS goroutines.
func BenchmarkLeastRequestPickDone(b *testing.B) {
	for _, n := range benchSizes {
		bal := NewLeastRequest()
		bal.Update(benchList(n))
		b.Run("serial/n="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				e, err := bal.Pick("")
				if err != nil {
					b.Fatal(err)
				}
				bal.Done(e)
			}
			reportCPU(b, cpu)
		})
		b.Run("parallel/n="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			cpu := processCPU()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					e, err := bal.Pick("")
					if err != nil {
						b.Error(err)
						return
					}
					bal.Done(e)
				}
			})
			reportCPU(b, cpu)
		})
	}
}

// slowStartBalancer returns the balancer of algorithm name with slow start
// on a frozen fake clock, holding benchList(n) whose last endpoint has just
// joined and ramps, at its floor weight.
func slowStartBalancer(b *testing.B, name string, n int) Balancer {
	bal, err := New(name, WithSlowStart(30*time.Second), withClock(newFakeClock()))
	if err != nil {
		b.Fatal(err)
	}
	eps := benchList(n)
	bal.Update(eps[:n-1])
	bal.Update(eps)
	return bal
}

// BenchmarkPickSlowStart measures one Pick by one goroutine while an
// endpoint ramps, for the algorithms that honour slow start: a pick then
// reads tables built from weights in units of 1/rampScale.
func BenchmarkPickSlowStart(b *testing.B) {
	for _, name := range SlowStartAlgorithms() {
		for _, n := range benchSizes {
			b.Run(name+"/n="+strconv.Itoa(n), func(b *testing.B) {
				bal := slowStartBalancer(b, name, n)
				b.ReportAllocs()
				cpu := processCPU()
				for b.Loop() {
					if _, err := bal.Pick(""); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, cpu)
			})
		}
	}
}

// BenchmarkSlowStartRefresh measures one step of the ramp for 10000
// endpoints: rebuilding the snapshot from the effective weights, which the
// refresh timer does rampSteps times a window while an endpoint ramps.
func BenchmarkSlowStartRefresh(b *testing.B) {
	for _, name := range SlowStartAlgorithms() {
		b.Run(name+"/n=10000", func(b *testing.B) {
			bal := slowStartBalancer(b, name, 10000)
			refresh := map[string]func(){
				"random":               func() { bal.(*Random).refresh() },
				"weighted_round_robin": func() { bal.(*WeightRoundRobin).refresh() },
			}[name]
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				refresh()
			}
			reportCPU(b, cpu)
		})
	}
}

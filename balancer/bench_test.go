package balancer

import (
	"strconv"
	"testing"
)

// benchSizes are the list lengths the benchmarks measure.
var benchSizes = []int{10, 1000, 10000}

// benchList is n endpoints of weights 1 to 5, as a weighted service might
// have.
func benchList(n int) []Endpoint { return listN(n, 5) }

// benchKeys are the consistent-hash keys the pick benchmarks cycle through.
var benchKeys = hashKeys(1 << 16)

// BenchmarkPick measures one pick (and, for least_request, its Done) by one
// goroutine.
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
				for b.Loop() {
					i++
					if _, err := pickDone(bal, benchKeys[i&(len(benchKeys)-1)]); err != nil {
						b.Fatal(err)
					}
				}
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
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						i++
						if _, err := pickDone(bal, benchKeys[i&(len(benchKeys)-1)]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkUpdate measures rebuilding a snapshot for a changed list of
// 10000 endpoints: two lists that differ by one weight, alternately.
func BenchmarkUpdate(b *testing.B) {
	for _, name := range Names() {
		b.Run(name+"/n=10000", func(b *testing.B) {
			bal, err := New(name)
			if err != nil {
				b.Fatal(err)
			}
			lists := [2][]Endpoint{benchList(10000), benchList(10000)}
			lists[1][0].Weight++
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				bal.Update(lists[i&1])
			}
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

package discovery

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/internal/zktest"
)

// The benchmarks below run against a real ZooKeeper on loopback and report
// custom metrics; run them one iteration at a time:
//
//	go test -run '^$' -bench 'Propagation' -benchtime 200x ./discovery/
//	go test -run '^$' -bench 'Sync' -benchtime 1x ./discovery/

// BenchmarkPropagation measures, for each iteration, the time from the start
// of a znode create to the observer holding the new list, and the same for
// a delete. It reports the 50th and 99th percentiles.
func BenchmarkPropagation(b *testing.B) {
	srv := zktest.Start(b)
	raw := zktest.Connect(b, srv.Addr())
	p := "/bench/propagation"
	mkdirs(b, raw, p)
	c := dial(b, ClientConfig{Servers: []string{srv.Addr()}})
	_, r, _ := watch(b, c, p, ZkConfOptions{})
	r.awaitAddrs(b)
	var adds, dels []time.Duration
	i := 0
	for b.Loop() {
		addr := fmt.Sprintf("127.0.0.1:%d", 10000+i%50000)
		i++
		start := time.Now()
		create(b, raw, p+"/"+addr, addr+",1", zk.FlagEphemeral)
		adds = append(adds, r.awaitAddrs(b, addr).Sub(start))
		start = time.Now()
		remove(b, raw, p+"/"+addr)
		dels = append(dels, r.awaitAddrs(b).Sub(start))
	}
	report(b, "add", adds)
	report(b, "remove", dels)
}

func report(b *testing.B, what string, d []time.Duration) {
	slices.Sort(d)
	q := func(f float64) float64 { return float64(d[int(f*float64(len(d)-1))]) / 1e6 }
	b.ReportMetric(q(0.50), what+"-p50-ms")
	b.ReportMetric(q(0.99), what+"-p99-ms")
	b.ReportMetric(float64(d[len(d)-1])/1e6, what+"-max-ms")
}

// populate creates, concurrently, nodes Curator-JSON instance nodes under
// each of paths.
func populate(b *testing.B, addr string, paths []string, nodes int) {
	conn := zktest.Connect(b, addr)
	type job struct {
		p string
		i int
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	var once sync.Once
	var failure error
	for range 64 {
		wg.Go(func() {
			for j := range jobs {
				id := fmt.Sprintf("%08x-0000-4000-8000-%012x", j.i, j.i)
				data, _ := encodeCurator("bench", id, "10.0.0.1", 10000+j.i%50000, 1, map[string]string{"zone": "z1"}, time.Now())
				if _, err := conn.Create(j.p+"/"+id, data, 0, zk.WorldACL(zk.PermAll)); err != nil {
					once.Do(func() { failure = err })
				}
			}
		})
	}
	for _, p := range paths {
		mkdirs(b, conn, p)
		for i := range nodes {
			jobs <- job{p, i}
		}
	}
	close(jobs)
	wg.Wait()
	if failure != nil {
		b.Fatal(failure)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkSync10kNodes measures one service of 10,000 Curator instances:
// the first full read (list, 10,000 reads with data watches, decode,
// publish), the heap it holds after GC (conf and the client's watches), and
// the propagation of one add and one remove.
func BenchmarkSync10kNodes(b *testing.B) {
	const n = 10000
	srv := zktest.Start(b)
	p := "/bench/big"
	populate(b, srv.Addr(), []string{p}, n)
	raw := zktest.Connect(b, srv.Addr())
	c := dial(b, ClientConfig{Servers: []string{srv.Addr()}, ResyncInterval: -1})
	var syncs, heaps, adds, dels []time.Duration
	for b.Loop() {
		before := heapInUse()
		start := time.Now()
		log, _ := testLog()
		z, err := NewLoadBalanceZkConf(c, p, ZkConfOptions{}, log)
		if err != nil {
			b.Fatal(err)
		}
		r := newRecorder()
		z.Attach(r)
		r.await(b, fmt.Sprintf("%d endpoints", n), func(eps []balancer.Endpoint) bool { return len(eps) == n })
		syncs = append(syncs, time.Since(start))
		heaps = append(heaps, time.Duration(int64(heapInUse())-int64(before)))

		start = time.Now()
		node := create(b, raw, p+"/extra", `{"address":"10.9.9.9","port":80}`, zk.FlagEphemeral)
		r.await(b, "the extra node", func(eps []balancer.Endpoint) bool { return len(eps) == n+1 })
		adds = append(adds, time.Since(start))
		start = time.Now()
		remove(b, raw, node)
		r.await(b, "the extra node gone", func(eps []balancer.Endpoint) bool { return len(eps) == n })
		dels = append(dels, time.Since(start))
		z.Close()
	}
	b.ReportMetric(float64(slices.Max(syncs))/1e6, "sync-ms")
	b.ReportMetric(float64(slices.Max(heaps))/(1<<20), "heap-MiB")
	b.ReportMetric(float64(slices.Max(adds))/1e6, "add-ms")
	b.ReportMetric(float64(slices.Max(dels))/1e6, "remove-ms")
}

// BenchmarkSync1000Services measures the first read of 1,000 services of 10
// Curator instances each, all watched through one client.
func BenchmarkSync1000Services(b *testing.B) {
	const services, nodes = 1000, 10
	srv := zktest.Start(b)
	paths := make([]string, services)
	for i := range paths {
		paths[i] = fmt.Sprintf("/bench/many/svc-%04d", i)
	}
	populate(b, srv.Addr(), paths, nodes)
	c := dial(b, ClientConfig{Servers: []string{srv.Addr()}, ResyncInterval: -1})
	var syncs []time.Duration
	var heaps []time.Duration
	for b.Loop() {
		before := heapInUse()
		start := time.Now()
		confs := make([]*LoadBalanceZkConf, services)
		log, _ := testLog()
		for i, p := range paths {
			z, err := NewLoadBalanceZkConf(c, p, ZkConfOptions{}, log)
			if err != nil {
				b.Fatal(err)
			}
			confs[i] = z
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		for _, z := range confs {
			if err := z.WaitSynced(ctx); err != nil {
				b.Fatal(err)
			}
			if got := len(z.Endpoints()); got != nodes {
				b.Fatalf("%s: %d endpoints, want %d", z.Path(), got, nodes)
			}
		}
		cancel()
		syncs = append(syncs, time.Since(start))
		heaps = append(heaps, time.Duration(int64(heapInUse())-int64(before)))
		for _, z := range confs {
			z.Close()
		}
	}
	b.ReportMetric(float64(slices.Max(syncs))/1e6, "sync-ms")
	b.ReportMetric(float64(slices.Max(heaps))/(1<<20), "heap-MiB")
}

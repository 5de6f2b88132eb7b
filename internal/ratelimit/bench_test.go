package ratelimit

import (
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// benchLimiter is a limit a busy client meets: 1,000 per second, burst 100.
func benchLimiter(b *testing.B) *Limiter {
	l, err := New(Config{Average: 1000, Burst: 100})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkAllowOneKey: every goroutine hammers one key (the worst case
// for contention: one shard lock, one timestamp).
func BenchmarkAllowOneKey(b *testing.B) {
	l := benchLimiter(b)
	start := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Allow("203.0.113.7", start.Add(time.Duration(i)*time.Microsecond))
			i++
		}
	})
}

// BenchmarkAllowManyKeys: goroutines spread over 10,000 tracked client
// addresses.
func BenchmarkAllowManyKeys(b *testing.B) {
	l := benchLimiter(b)
	keys := make([]string, 10_000)
	ip := netip.MustParseAddr("198.51.100.0")
	for i := range keys {
		ip = ip.Next()
		keys[i] = ip.String()
	}
	start := time.Now()
	for _, k := range keys {
		l.Allow(k, start)
	}
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seq.Add(7919)) // each goroutine starts elsewhere
		for pb.Next() {
			l.Allow(keys[i%len(keys)], start.Add(time.Duration(i)*time.Microsecond))
			i++
		}
	})
}

// BenchmarkAllowNewKeys: a flood of distinct keys through a full limiter
// (the default MaxKeys), the path that copies keys and evicts.
func BenchmarkAllowNewKeys(b *testing.B) {
	l := benchLimiter(b)
	start := time.Now()
	buf := make([]byte, 0, 32)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = strconv.AppendInt(append(buf[:0], "k"...), int64(i), 10)
		l.Allow(string(buf), start.Add(time.Duration(i)))
	}
}

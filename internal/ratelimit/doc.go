// Package ratelimit limits the rate of requests per key (a client address,
// a header's value, a route) with a token bucket per key, and writes the
// RateLimit-Policy and RateLimit header values of the IETF draft. It knows
// nothing of HTTP routing or configuration files: the wiring layer builds one
// Limiter per route from a Config and calls Allow on the request path.
//
// # The bucket
//
// Each key has a bucket of Burst tokens, refilled at Average tokens per
// Period; a request takes one token or is refused. The bucket is kept as
// the generic cell rate algorithm (GCRA) keeps it: one int64, the instant
// at which the bucket will be full (its theoretical arrival time, TAT). With
// interval = Period/Average and tau = Burst × interval, the bucket holds
// (tau - (TAT - now)) / interval tokens, a request is allowed when moving
// TAT one interval later (from now if it has passed) leaves TAT - now ≤ tau,
// and that move is one compare-and-swap. Over any window of length W a key
// is admitted at most Burst + W/interval requests, whatever the order in
// which concurrent callers' timestamps arrive. interval is rounded down to
// a nanosecond (never stricter than configured; at most one request per
// microsecond, so the excess stays below 0.1%).
//
// # Keys and memory
//
// Keys live in up to 64 shards, each a map from the key (copied when it is
// added) to its 8-byte bucket behind a read-write lock: Allow for a known key
// takes the read lock and allocates nothing; adding a key takes the write
// lock. The shard of a key is chosen by a hash seeded per Limiter.
//
// A key whose bucket is full carries no state and may be dropped. Keys are
// dropped lazily, with no goroutine: when a shard holds its share of
// MaxKeys and a new key arrives, the shard is swept under its write lock.
// The sweep frees at least an eighth of the shard: every key whose bucket is
// full, then, only if that is not enough, the keys nearest to full; the
// survivors move to a map built afresh (a Go map that keys churn through
// keeps its deleted slots and grows: 98 instead of 62 bytes per key after
// 1,000,000 keys). So the number of keys never exceeds MaxKeys, and a flood
// of distinct keys costs one sweep per MaxKeys/512 new keys, a constant
// amortized cost per new key (about 1.5µs, BenchmarkAllowNewKeys).
//
// Measured by TestMemoryBoundedUnderDistinctKeys (1,000,000 distinct IPv4
// addresses through a Limiter of the default MaxKeys, live heap after GC):
// 62 bytes per tracked key — the map slot with its share of the map's spare
// capacity, the copied key and the bucket — and 5.8 MB in all at the
// default bound of 100,000 keys, the same after 200,000 and 1,000,000
// keys. Longer keys (IPv6 addresses, header values) cost their length
// rounded up to Go's size classes, up to MaxKeyLen (64) bytes; a longer key
// is tracked by its 32-byte SHA-256 digest. So no key costs more than about
// 110 bytes, and the default bound is at most 11 MB whatever the keys.
//
// A sweep holds its shard's write lock for a time proportional to the
// shard's share of MaxKeys (0.27 ms on average for the default's 1,563
// keys, measured on 2 shared cores): requests whose keys hash to that
// shard wait that long, once per MaxKeys/512 new keys.
//
// # When more than MaxKeys keys are active
//
// Evicting a key whose bucket is not full forgives its debt: if it comes
// back it starts with a full bucket, gaining at most Burst requests once.
// The alternative, refusing keys the limiter has no room for, would let a
// flood of distinct keys (an IPv6 client has 2^64 addresses in its /64)
// lock out every new legitimate client. Eviction instead costs enforcement
// only to keys the flood displaces, those nearest to full are chosen (they
// are forgiven least), and a client hammering one key keeps the largest debt
// and is evicted last. A flooding client gains nothing it did not have
// already: each of its new keys starts with a full bucket anyway. Evicted
// counts such evictions; a nonzero count means MaxKeys is too small for the
// traffic.
//
// # Why not golang.org/x/time/rate
//
// A rate.Limiter per key is 80 bytes (a mutex, two float64s, two
// time.Times) behind its own pointer, and its AllowN takes that mutex.
// Measured with the same 64 shards of map[string]*rate.Limiter and the same
// benchmarks (outside this module, which does not depend on it): 100,000
// IPv4 keys take 131 bytes per key (13.1 MB) against 59 here (5.9 MB), and
// a parallel allow costs 134 ns on one key and 228 ns over 10,000 keys
// against 35 ns and 133 ns here (medians of 3 runs side by side on 2 cores
// shared with other work; both allocation-free). The bucket here is one
// atomic word, and its Decision carries what the headers need (remaining
// tokens, reset and retry times), which rate.Limiter gives only through a
// Reservation.
//
// # Headers
//
// AppendPolicy, AppendRateLimit and AppendRetryAfter append the field values
// of draft-ietf-httpapi-ratelimit-headers-11 without allocating; see
// headers.go for how a token bucket maps onto the draft's quota and window.
package ratelimit

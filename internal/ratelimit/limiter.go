package ratelimit

import (
	"crypto/sha256"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Decision is the outcome of one Allow.
type Decision struct {
	// Allowed reports whether the request took a token.
	Allowed bool
	// Remaining is the number of whole tokens left after this request.
	Remaining int
	// RetryAfter is, when the request was refused, the time until one
	// token is available; zero when it was allowed.
	RetryAfter time.Duration
	// Reset is the time until the bucket is full again if the key makes
	// no more requests.
	Reset time.Duration
}

// Limiter is a token bucket per key, kept as one GCRA timestamp per key in
// a sharded map; see the package doc. Safe for concurrent use.
type Limiter struct {
	p      params
	epoch  time.Time // the origin of the int64 clock; carries a monotonic reading
	seed   maphash.Seed
	mask   uint64
	shards []shard
	forced atomic.Uint64 // keys evicted before their bucket was full

	policy []byte // the RateLimit-Policy value
	item   []byte // the quoted policy name, which starts a RateLimit item
}

// shard is one lock and the buckets of the keys that hash to it. A bucket is
// read and updated under the read lock (its timestamp is atomic); keys are
// added and evicted under the write lock.
type shard struct {
	mu    sync.RWMutex
	m     map[string]*bucket
	limit int // the most keys this shard holds
	// pad keeps two shards' locks off one cache line (128 bytes: the
	// adjacent-line prefetcher pulls lines in pairs).
	_ [128 - unsafe.Sizeof(sync.RWMutex{}) - 16]byte
}

// bucket is one key's state: its theoretical arrival time (TAT), the
// instant, on the limiter's clock, at which its bucket will be full. A TAT
// at or before now means a full bucket: such a key carries no state.
type bucket struct {
	tat atomic.Int64
}

// maxShards is the number of shards of a Limiter with MaxKeys of at least
// maxShards × minShardKeys.
const (
	maxShards    = 64
	minShardKeys = 64
)

// MaxKeyLen is the longest key tracked as it is; longer keys are tracked by
// their 32-byte SHA-256 digest.
const MaxKeyLen = 64

// clockBound clamps the limiter's clock to ±2^61 ns (73 years) around its
// epoch, so that adding a fill time (at most MaxFill, under 2^59 ns) can
// never overflow, whatever time the caller passes.
const clockBound = 1 << 61

// New returns a Limiter for cfg, or the problems with cfg (see
// Config.Validate).
func New(cfg Config) (*Limiter, error) {
	p, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	n := maxShards
	for n > 1 && p.maxKeys/n < minShardKeys {
		n /= 2
	}
	l := &Limiter{
		p:      p,
		epoch:  time.Now(),
		seed:   maphash.MakeSeed(),
		mask:   uint64(n - 1),
		shards: make([]shard, n),
	}
	for i := range l.shards {
		s := &l.shards[i]
		s.limit = p.maxKeys / n
		if i < p.maxKeys%n {
			s.limit++
		}
		s.m = make(map[string]*bucket)
	}
	l.policy = appendPolicy(nil, p)
	l.item = appendString(nil, p.name)
	return l, nil
}

// Allow takes one token for key at now and says whether there was one.
//
// It does not retain key: a key seen for the first time is copied when it
// is added, so callers may pass strings that alias reusable buffers. For a
// key already tracked Allow allocates nothing and takes the read lock of
// one of up to 64 shards (chosen by a hash seeded per Limiter, so that
// clients cannot aim their keys at one shard) and one compare-and-swap on
// the key's timestamp. A new key takes its shard's write lock and, when the
// shard is full, evicts (see the package doc).
//
// A key longer than MaxKeyLen bytes (a header's value may be kilobytes) is
// tracked by its SHA-256 digest, so that no key costs more memory than a
// 64-byte one: two keys share a bucket only if their digests collide (or a
// 32-byte key equals another's digest), which no client can arrange.
//
// now is the caller's clock: pass time.Now() (its monotonic reading makes
// the limiter immune to wall-clock steps), or a virtual time in tests. A
// request stamped earlier than one already counted is charged from that
// later one: out-of-order stamps never admit more than the rate.
func (l *Limiter) Allow(key string, now time.Time) Decision {
	if len(key) > MaxKeyLen {
		// Read in place (Sum256 neither keeps nor changes its input).
		sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(key), len(key)))
		return l.allow(string(sum[:]), now)
	}
	return l.allow(key, now)
}

// allow is Allow for a key of at most MaxKeyLen bytes.
func (l *Limiter) allow(key string, now time.Time) Decision {
	t := min(max(int64(now.Sub(l.epoch)), -clockBound), clockBound)
	s := &l.shards[maphash.String(l.seed, key)&l.mask]
	s.mu.RLock()
	if b := s.m[key]; b != nil {
		d := l.take(b, t)
		s.mu.RUnlock()
		return d
	}
	s.mu.RUnlock()
	return l.add(s, key, t)
}

// take charges one token to b at t (GCRA: the bucket holds
// (tau - (TAT - t)) / interval tokens; a request moves TAT one interval
// later, from t if the bucket is full).
func (l *Limiter) take(b *bucket, t int64) Decision {
	for {
		tat := b.tat.Load()
		next := max(tat, t) + l.p.interval
		debt := next - t // > 0: how far the bucket would be from full
		if debt > l.p.tau {
			// Refused: tat > t here, since a full bucket has a token.
			return Decision{RetryAfter: time.Duration(debt - l.p.tau), Reset: time.Duration(tat - t)}
		}
		if b.tat.CompareAndSwap(tat, next) {
			return Decision{Allowed: true, Remaining: int((l.p.tau - debt) / l.p.interval), Reset: time.Duration(debt)}
		}
	}
}

// add takes a token for a key its shard did not hold under the read lock.
func (l *Limiter) add(s *shard, key string, t int64) Decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.m[key]
	if b == nil {
		if len(s.m) >= s.limit {
			l.evict(s, t)
		}
		b = new(bucket)
		b.tat.Store(t) // full
		s.m[strings.Clone(key)] = b
	}
	return l.take(b, t)
}

// evict makes room in s, which is full, under its write lock. It frees at
// least an eighth of the shard, so that a flood of new keys sweeps a shard
// once per limit/8 insertions (amortized O(log n) per new key): every key
// whose bucket is full at t (dropping it loses nothing), and, if that is not
// enough, the keys nearest to full (the smallest TAT: dropping a key
// forgives its debt, so these forgive least). The survivors move to a new
// map sized for the shard's limit: a map that keys churn through keeps its
// deleted slots and grows, one built afresh stays at its size.
func (l *Limiter) evict(s *shard, t int64) {
	target := max(1, s.limit/8)
	tats := make([]int64, 0, len(s.m))
	full := 0
	for _, b := range s.m {
		tat := b.tat.Load()
		tats = append(tats, tat)
		if tat <= t {
			full++
		}
	}
	// Keys with a TAT below cut go, and atCut of those at cut.
	cut, atCut := t, len(s.m)
	if full < target {
		cut = selectNth(tats, target-1)
		atCut = 0
		for _, tat := range tats[:target] {
			if tat == cut {
				atCut++
			}
		}
		l.forced.Add(uint64(target - full))
	}
	m := make(map[string]*bucket, s.limit)
	for k, b := range s.m {
		tat := b.tat.Load()
		if tat < cut {
			continue
		}
		if tat == cut && atCut > 0 {
			atCut--
			continue
		}
		m[k] = b
	}
	s.m = m
}

// selectNth reorders a so that a[n] is the value it would have if a were
// sorted, no element of a[:n] is greater and none of a[n+1:] smaller, and
// returns a[n] (Hoare's quickselect: O(len(a)) on average).
func selectNth(a []int64, n int) int64 {
	lo, hi := 0, len(a)-1
	for lo < hi {
		// The median of three as the pivot keeps sorted input linear.
		mid := lo + (hi-lo)/2
		if a[mid] < a[lo] {
			a[mid], a[lo] = a[lo], a[mid]
		}
		if a[hi] < a[lo] {
			a[hi], a[lo] = a[lo], a[hi]
		}
		if a[hi] < a[mid] {
			a[hi], a[mid] = a[mid], a[hi]
		}
		pivot := a[mid]
		i, j := lo, hi
		for i <= j {
			for a[i] < pivot {
				i++
			}
			for a[j] > pivot {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		switch {
		case n <= j:
			hi = j
		case n >= i:
			lo = i
		default:
			return a[n]
		}
	}
	return a[n]
}

// Keys returns the number of keys tracked now, at most MaxKeys.
func (l *Limiter) Keys() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Evicted returns the number of keys evicted so far before their bucket was
// full: each such key, if it comes back, starts with a full bucket. Nonzero
// only when more than MaxKeys keys were active at once.
func (l *Limiter) Evicted() uint64 { return l.forced.Load() }

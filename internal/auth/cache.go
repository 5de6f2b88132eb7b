package auth

import (
	"hash/maphash"
	"sync"
)

// cacheShards spreads a cache over this many locks, so that parallel hits
// on different keys rarely share one.
const cacheShards = 16

// cache is a bounded map from byte strings to values, safe for concurrent
// use. A lookup by []byte does not allocate. When a shard is full, an
// insert evicts an arbitrary entry of it (Go's map iteration order is
// randomised), which bounds memory under a flood of distinct keys without
// the bookkeeping of an LRU; a hot key evicted is simply checked and
// inserted again.
type cache[V any] struct {
	seed     maphash.Seed
	perShard int
	shards   [cacheShards]cacheShard[V]
}

type cacheShard[V any] struct {
	mu sync.RWMutex
	m  map[string]V
	_  [40]byte // keep shards on separate cache lines
}

// newCache returns a cache of at most size entries (at least one per shard).
func newCache[V any](size int) *cache[V] {
	c := &cache[V]{seed: maphash.MakeSeed(), perShard: max(1, (size+cacheShards-1)/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]V)
	}
	return c
}

func (c *cache[V]) shard(key []byte) *cacheShard[V] {
	return &c.shards[maphash.Bytes(c.seed, key)%cacheShards]
}

// get returns the value cached under key.
func (c *cache[V]) get(key []byte) (V, bool) {
	s := c.shard(key)
	s.mu.RLock()
	v, ok := s.m[string(key)] // no allocation: the compiler does not copy key here
	s.mu.RUnlock()
	return v, ok
}

// put caches v under a copy of key, evicting an entry if the shard is full.
func (c *cache[V]) put(key []byte, v V) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[string(key)]; !ok && len(s.m) >= c.perShard {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[string(key)] = v
}

// remove drops key.
func (c *cache[V]) remove(key []byte) {
	s := c.shard(key)
	s.mu.Lock()
	delete(s.m, string(key))
	s.mu.Unlock()
}

// len is the number of entries.
func (c *cache[V]) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

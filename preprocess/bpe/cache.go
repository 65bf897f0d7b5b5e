package bpe

import (
	"hash/maphash"
	"strings"
	"sync"
)

// wordCache is a bounded, concurrency-safe map from a pre-token's bytes to
// its output ids. It is split into shards, each with its own lock, so
// goroutines encoding different words rarely contend. A full shard evicts
// an arbitrary entry (Go's randomised map iteration order makes this random
// replacement), which keeps memory bounded without bookkeeping on hits.
type wordCache struct {
	seed     maphash.Seed
	shards   [cacheShards]cacheShard
	perShard int
}

const (
	cacheShards = 32
	// maxCachedWord is the longest pre-token, in bytes, worth caching:
	// longer ones are rare and would let one input fill the cache.
	maxCachedWord = 64
)

type cacheShard struct {
	mu sync.RWMutex
	m  map[string][]int32
	_  [40]byte // keep shards on separate cache lines
}

// newWordCache returns a cache of about size entries, or nil (no caching)
// when size <= 0.
func newWordCache(size int) *wordCache {
	if size <= 0 {
		return nil
	}
	per := (size + cacheShards - 1) / cacheShards
	c := &wordCache{seed: maphash.MakeSeed(), perShard: per}
	for i := range c.shards {
		c.shards[i].m = make(map[string][]int32)
	}
	return c
}

func (c *wordCache) shard(word string) *cacheShard {
	return &c.shards[maphash.String(c.seed, word)%cacheShards]
}

// get returns the cached ids of word; the slice must not be modified.
func (c *wordCache) get(word string) ([]int32, bool) {
	s := c.shard(word)
	s.mu.RLock()
	ids, ok := s.m[word]
	s.mu.RUnlock()
	return ids, ok
}

// put stores a copy of word and ids.
func (c *wordCache) put(word string, ids []int32) {
	s := c.shard(word)
	key := strings.Clone(word) // never retain the caller's (possibly large) text
	val := append([]int32(nil), ids...)
	s.mu.Lock()
	if len(s.m) >= c.perShard {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[key] = val
	s.mu.Unlock()
}

// len returns the number of cached words.
func (c *wordCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

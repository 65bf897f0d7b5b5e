package repository

import (
	"sync"
	"time"

	"github.com/ofaserve/ofaserve/batcher"
	"github.com/ofaserve/ofaserve/repository/cache"
)

// cacheStats counts what the response cache did for one model version, in
// Triton's terms (docs/triton-batcher-and-kserve-v2.md §1.11 and the
// statistics extension): a hit is a successful request (success, and queue
// time until the cache answered, including any wait for an identical
// request in flight) that never reached the model, with cache_hit counting
// the key's hashing, the lookup and the copy out; a miss that succeeded
// counts cache_miss (hashing, lookup and keeping the answer) and adds the
// keeping to the request's success time. A request that gave up waiting for
// an identical one is a failure (CANCELED) the model never saw. What reached
// the model is counted by the model kind as usual.
type cacheStats struct {
	mu                   sync.Mutex
	hit, miss            batcher.Duration
	success, queue, fail batcher.Duration
	successExtra         time.Duration // misses' keeping time
	canceled             uint64
	last                 time.Time
}

// record counts one request answered through the cache. start is the
// request's start, lookup when the handle began hashing it, hashed how long
// that took.
func (c *cacheStats) record(start, lookup time.Time, hashed time.Duration, out cache.Outcome, err error) {
	end := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil && out.Hit:
		c.hit.Count++
		c.hit.Total += hashed + out.Lookup
		c.success.Count++
		c.success.Total += end.Sub(start)
		c.queue.Count++
		c.queue.Total += lookup.Sub(start) + out.Waited
		if end.After(c.last) {
			c.last = end
		}
	case err == nil && out.Computed:
		c.miss.Count++
		c.miss.Total += hashed + out.Lookup + out.Insert
		c.successExtra += out.Insert
	case err != nil && !out.Computed:
		c.fail.Count++
		c.fail.Total += end.Sub(start)
		c.canceled++
	}
}

// addTo adds the cache's counts to a model kind's statistics.
func (c *cacheStats) addTo(st *batcher.Stats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st.CacheHit, st.CacheMiss = c.hit, c.miss
	st.Success.Count += c.success.Count
	st.Success.Total += c.success.Total + c.successExtra
	st.Queue.Count += c.queue.Count
	st.Queue.Total += c.queue.Total
	st.Fail.Count += c.fail.Count
	st.Fail.Total += c.fail.Total
	if c.canceled > 0 {
		if st.Failures == nil {
			st.Failures = map[batcher.FailReason]uint64{}
		}
		st.Failures[batcher.FailCanceled] += c.canceled
	}
	if c.last.After(st.LastInference) {
		st.LastInference = c.last
	}
}

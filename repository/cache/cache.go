// Package cache is the response cache: answers of earlier requests, kept so
// that an identical request is answered without running its model again
// (Triton's response cache, its "local" implementation).
//
// One Cache serves every model whose config says response_cache { enable:
// true }; the server makes it from --cache-config local,size=BYTES
// (ParseConfig). It is an LRU bounded in bytes: an answer's data plus a
// fixed bookkeeping allowance per entry and per tensor (entrySize) count
// against Size, and the least recently used answers are evicted to make
// room. An answer larger than the whole cache is not kept.
//
// # Keys
//
// A request's Key is a SHA-256 digest of the model's name and version, the
// load of that version it was answered by (so a model reloaded under the
// same version number never serves its predecessor's answers), every input
// (name, datatype, shape and data, in name order) and the set of requested
// outputs (no list and the full list are the same set). Triton hashes with
// a 64-bit hash and may serve a colliding request the wrong answer; a
// 256-bit digest makes that a non-issue. What a frontend does with the
// answer afterwards (JSON or binary encoding, the classification
// extension) is applied to the cached answer per request, so those
// parameters are not part of the key. The request's id, priority, timeout
// and custom parameters are not either: they do not change the answer.
//
// # Identical requests at the same time
//
// Do is single-flight: while a request is being computed, an identical
// request waits for it instead of running the model a second time, and
// then gets a copy of its answer (a hit, whose wait counts as queue time).
// If the first request fails or is cancelled, every request that waited
// for it runs the model on its own, so one client's cancellation or
// deadline never fails another; a waiting request whose own context ends
// stops waiting with its context's error. Only successful answers are kept.
//
// Answers go in and come out as copies: a caller may change what it got
// without touching the cache.
package cache

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ofaserve/ofaserve/backend"
)

// Cache is a byte-bounded LRU of answers. Its methods are safe for
// concurrent use.
type Cache struct {
	size int64

	mu        sync.Mutex
	used      int64
	lru       list.List // of *entry, most recently used first
	entries   map[Key]*list.Element
	flights   map[Key]*flight
	evictions uint64
}

// entry is one kept answer.
type entry struct {
	key   Key
	owner uint64
	resp  *backend.Response // never changed once kept
	bytes int64
}

// flight is a request being computed; identical requests wait on done.
type flight struct {
	done chan struct{}
	resp *backend.Response // a copy, set before done closes, nil on failure
}

// New returns an empty cache of size bytes.
func New(size int64) (*Cache, error) {
	if size <= 0 {
		return nil, errors.New("cache: size must be positive")
	}
	return &Cache{size: size, entries: map[Key]*list.Element{}, flights: map[Key]*flight{}}, nil
}

// Outcome says how Do answered, for the model's statistics.
type Outcome struct {
	// Hit: the answer came from the cache, or from an identical request
	// that was computed meanwhile.
	Hit bool
	// Computed: compute ran (a miss); its failure is compute's to count.
	Computed bool
	// Waited is the time spent waiting for an identical request.
	Waited time.Duration
	// Lookup is the time spent looking the key up and, on a hit, copying
	// the answer out.
	Lookup time.Duration
	// Insert is, on a successful miss, the time spent keeping the answer.
	Insert time.Duration
}

// Do answers the request whose key is key: from the cache if it holds the
// answer, else by waiting for an identical request in flight, else by
// calling compute, keeping its answer if it succeeds. owner tags what is
// kept, for Drop.
func (c *Cache) Do(ctx context.Context, key Key, owner uint64, compute func(context.Context) (*backend.Response, error)) (*backend.Response, Outcome, error) {
	var out Outcome
	begin := time.Now()
	c.mu.Lock()
	if el, ok := c.entries[key]; ok {
		c.lru.MoveToFront(el)
		kept := el.Value.(*entry).resp
		c.mu.Unlock()
		resp := clone(kept)
		out.Hit, out.Lookup = true, time.Since(begin)
		return resp, out, nil
	}
	f, waiting := c.flights[key]
	if !waiting {
		f = &flight{done: make(chan struct{})}
		c.flights[key] = f
	}
	c.mu.Unlock()
	out.Lookup = time.Since(begin)

	if waiting {
		select {
		case <-f.done:
		case <-ctx.Done():
			out.Waited = time.Since(begin) - out.Lookup
			return nil, out, ctx.Err()
		}
		out.Waited = time.Since(begin) - out.Lookup
		if f.resp != nil {
			copyStart := time.Now()
			resp := clone(f.resp)
			out.Hit = true
			out.Lookup += time.Since(copyStart)
			return resp, out, nil
		}
		// The request we waited for failed: run our own.
		out.Computed = true
		resp, err := compute(ctx)
		if err == nil && resp != nil {
			insertStart := time.Now()
			c.insert(key, owner, clone(resp))
			out.Insert = time.Since(insertStart)
		}
		return resp, out, err
	}

	out.Computed = true
	resp, err := compute(ctx)
	var kept *backend.Response
	insertStart := time.Now()
	if err == nil && resp != nil {
		kept = clone(resp)
		c.insert(key, owner, kept)
	}
	c.mu.Lock()
	f.resp = kept
	delete(c.flights, key)
	c.mu.Unlock()
	close(f.done)
	if kept != nil {
		out.Insert = time.Since(insertStart)
	}
	return resp, out, err
}

// insert keeps resp under key, evicting least recently used answers to
// make room; an answer larger than the cache is not kept.
func (c *Cache) insert(key Key, owner uint64, resp *backend.Response) {
	n := entrySize(resp)
	if n > c.size {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok { // kept meanwhile by an identical request
		c.lru.MoveToFront(el)
		return
	}
	for c.used+n > c.size {
		c.removeLocked(c.lru.Back())
		c.evictions++
	}
	c.entries[key] = c.lru.PushFront(&entry{key: key, owner: owner, resp: resp, bytes: n})
	c.used += n
}

func (c *Cache) removeLocked(el *list.Element) {
	e := c.lru.Remove(el).(*entry)
	delete(c.entries, e.key)
	c.used -= e.bytes
}

// Drop removes every answer kept for owner (a model version that unloads).
func (c *Cache) Drop(owner uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.lru.Front(); el != nil; {
		next := el.Next()
		if el.Value.(*entry).owner == owner {
			c.removeLocked(el)
		}
		el = next
	}
}

// Usage is what the cache holds.
type Usage struct {
	Entries   int
	Bytes     int64 // counted against Size
	Size      int64
	Evictions uint64
}

// Usage returns what the cache holds now.
func (c *Cache) Usage() Usage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Usage{Entries: len(c.entries), Bytes: c.used, Size: c.size, Evictions: c.evictions}
}

// Per-entry and per-tensor bookkeeping allowances, in bytes: what the
// entry, its list element, its map slot and a tensor's header cost beyond
// the data, rounded up.
const (
	entryOverhead  = 256
	tensorOverhead = 96
)

// entrySize is what an answer counts against the cache's size.
func entrySize(resp *backend.Response) int64 {
	n := int64(entryOverhead)
	for _, t := range resp.Outputs {
		n += tensorOverhead + int64(len(t.Name)+len(t.Datatype)+8*len(t.Shape)+len(t.Data))
	}
	for k, v := range resp.Parameters {
		n += int64(len(k)) + 32
		if s, ok := v.(string); ok {
			n += int64(len(s))
		}
	}
	return n
}

// clone copies an answer: its tensors' names, shapes and data (in one
// buffer), and its parameters map (the values are scalars).
func clone(resp *backend.Response) *backend.Response {
	total := 0
	for _, t := range resp.Outputs {
		total += len(t.Data)
	}
	buf := make([]byte, 0, total)
	out := &backend.Response{Outputs: make([]backend.Tensor, len(resp.Outputs))}
	for i, t := range resp.Outputs {
		start := len(buf)
		buf = append(buf, t.Data...)
		out.Outputs[i] = backend.Tensor{Name: t.Name, Datatype: t.Datatype, Shape: append([]int64(nil), t.Shape...), Data: buf[start:len(buf):len(buf)]}
	}
	if resp.Parameters != nil {
		out.Parameters = make(map[string]any, len(resp.Parameters))
		for k, v := range resp.Parameters {
			out.Parameters[k] = v
		}
	}
	return out
}

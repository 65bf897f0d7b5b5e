// Package workpool bounds the CPU work that requests do before they are batched (decoding images, resizing,
// tokenizing) to a fixed number of concurrent jobs shared by every model of the server, and shares those
// workers fairly between models.
//
// Without it every request prepares in its caller's goroutine: a burst of large images runs as many decodes
// at once as there are clients, each holding its pixels, and one model's burst takes every core from the
// others. With it a request that has been admitted to its model's queue (batcher.Reserve) waits for a worker
// here, runs its preparation, and gives the worker back.
//
// Fairness is per key (the model's name), round-robin: waiters queue FIFO within their key, and each freed
// worker goes to the next key in turn that has a waiter. A model with a thousand waiting requests and one
// with a single request share the workers one for one, while a single model under load gets them all. A
// plain FIFO of tickets would be fair to requests instead, so the busiest model would take nearly every
// worker and a quiet model's request would wait behind its whole backlog; weights would need a knob that
// nothing in a model config gives. Within a key the order is arrival order, as the batcher's queue is.
//
// A job is run in the caller's goroutine once it holds a worker (the pool starts no goroutines, so a
// waiting job costs a list element and a channel, not a stack); a caller whose context ends while it waits
// leaves at once, and its place goes to nobody. A nil *Pool bounds nothing: Do runs the job at once.
package workpool // import "github.com/ofaserve/ofaserve/backend/workpool"

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// Pool is a bounded set of workers shared round-robin between keys. It is safe for concurrent use.
type Pool struct {
	workers int

	mu    sync.Mutex
	free  int
	ring  []*keyQueue // keys with waiters, in turn order
	next  int         // index in ring of the key served next
	byKey map[string]*keyQueue
	stats Stats
}

// keyQueue is one key's waiters, FIFO.
type keyQueue struct {
	key     string
	waiters []*waiter
}

type waiter struct {
	ready   chan struct{} // closed when granted
	granted bool          // mu held
}

// Stats are a pool's cumulative counts.
type Stats struct {
	Workers  int           // the bound
	Busy     int           // workers held now
	Waiting  int           // callers waiting now
	Jobs     uint64        // jobs that got a worker
	Waited   uint64        // of those, jobs that had to wait for one
	WaitTime time.Duration // total time jobs waited for a worker
	Canceled uint64        // callers whose context ended while they waited
}

// New returns a pool of n workers; n <= 0 means runtime.NumCPU().
func New(n int) *Pool {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	return &Pool{workers: n, free: n, byKey: map[string]*keyQueue{}, stats: Stats{Workers: n}}
}

// Do runs job once a worker is free for key, and returns nil; or returns the context's error (wrapped)
// without running it if ctx ends first. On a nil Pool it runs job at once.
func (p *Pool) Do(ctx context.Context, key string, job func()) error {
	if p == nil {
		job()
		return nil
	}
	if err := p.acquire(ctx, key); err != nil {
		return err
	}
	defer p.release()
	job()
	return nil
}

func (p *Pool) acquire(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("workpool: cancelled before a worker was free: %w", err)
	}
	p.mu.Lock()
	if p.free > 0 && len(p.ring) == 0 {
		p.free--
		p.stats.Jobs++
		p.mu.Unlock()
		return nil
	}
	w := &waiter{ready: make(chan struct{})}
	q := p.byKey[key]
	if q == nil {
		q = &keyQueue{key: key}
		p.byKey[key] = q
		p.ring = append(p.ring, q)
	}
	q.waiters = append(q.waiters, w)
	p.stats.Waiting++
	p.mu.Unlock()
	start := time.Now()

	select {
	case <-w.ready:
		p.waited(time.Since(start))
		return nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	if w.granted { // granted as ctx ended: pass the worker on
		p.stats.WaitTime += time.Since(start)
		p.mu.Unlock()
		p.release()
		return fmt.Errorf("workpool: cancelled while waiting for a worker: %w", ctx.Err())
	}
	p.removeLocked(q, w)
	p.stats.Waiting--
	p.stats.Canceled++
	p.mu.Unlock()
	return fmt.Errorf("workpool: cancelled while waiting for a worker: %w", ctx.Err())
}

func (p *Pool) waited(d time.Duration) {
	p.mu.Lock()
	p.stats.WaitTime += d
	p.mu.Unlock()
}

// release gives a worker to the next key in turn that has a waiter, or back to the free count.
func (p *Pool) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ring) == 0 {
		p.free++
		return
	}
	if p.next >= len(p.ring) {
		p.next = 0
	}
	q := p.ring[p.next]
	w := q.waiters[0]
	q.waiters[0] = nil
	q.waiters = q.waiters[1:]
	if len(q.waiters) == 0 {
		p.dropLocked(p.next) // the key after it moves into p.next: its turn is next
	} else {
		p.next++
	}
	w.granted = true
	p.stats.Waiting--
	p.stats.Jobs++
	p.stats.Waited++
	close(w.ready)
}

// removeLocked takes a cancelled waiter out of its key's queue.
func (p *Pool) removeLocked(q *keyQueue, w *waiter) {
	for i, x := range q.waiters {
		if x == w {
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			break
		}
	}
	if len(q.waiters) > 0 {
		return
	}
	for i, x := range p.ring {
		if x == q {
			p.dropLocked(i)
			if i < p.next {
				p.next--
			}
			return
		}
	}
}

// dropLocked removes the empty key at ring index i.
func (p *Pool) dropLocked(i int) {
	delete(p.byKey, p.ring[i].key)
	p.ring = append(p.ring[:i], p.ring[i+1:]...)
}

// Stats returns the pool's counts; a nil Pool has none.
func (p *Pool) Stats() Stats {
	if p == nil {
		return Stats{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Busy = p.workers - p.free
	return s
}

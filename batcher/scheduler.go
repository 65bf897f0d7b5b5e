package batcher

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// This file is "deciding who runs it": Submit puts requests in the queue, and a batch is formed only when an
// instance is free to run it. A free instance forms its own next batch as it finishes one; the dispatcher
// goroutine covers the rest (an instance idle while a batch waits for max_queue_delay, queue deadlines).

// Batcher is one model's dynamic batcher and its instance workers. It is safe for concurrent use.
type Batcher[T, R any] struct {
	cfg   Config
	shape shape
	exec  ExecFunc[T, R]
	now   func() time.Time
	hooks hooks[T]

	mu       sync.Mutex
	q        queue[T, R]
	gathered []*node[T, R] // scratch for queue.form
	idle     []*instance[T, R]
	hold     int       // HoldUntil, until first reached
	timerAt  time.Time // when the dispatcher's timer fires; zero = not armed
	stopping bool      // Stop called: no new requests, drain without waiting
	hardStop bool      // Stop's ctx ended: queued requests failed, nothing new starts
	running  int       // instances not idle

	wake     chan struct{} // nudges the dispatcher (one slot)
	execCtx  context.Context
	cancel   context.CancelFunc
	finished chan struct{} // closed when every goroutine has exited
	wg       sync.WaitGroup
	pool     sync.Pool
	pending  atomic.Int64

	order ordering[T, R] // preserve_ordering slots
	stats statsRecorder
}

// instance is one model instance: a goroutine that runs one batch at a time.
type instance[T, R any] struct {
	id    int
	run   chan struct{} // one slot: batch holds work handed over by the dispatcher
	batch batch[T, R]
}

// New validates cfg and starts the batcher's goroutines (one dispatcher, one per instance).
func New[T, R any](cfg Config, exec ExecFunc[T, R]) (*Batcher[T, R], error) {
	return newBatcher(cfg, exec, hooks[T]{})
}

// hooks lets tests observe the batcher from inside.
type hooks[T any] struct {
	answered func(T) // called for each executed request just before its answer is released
}

func newBatcher[T, R any](cfg Config, exec ExecFunc[T, R], h hooks[T]) (*Batcher[T, R], error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("batcher: %w", err)
	}
	if exec == nil {
		return nil, fmt.Errorf("batcher: nil ExecFunc")
	}
	maxBatch := max(1, cfg.MaxBatchSize)
	s := shape{maxBatch: maxBatch, pref: make([]bool, maxBatch+1), delay: cfg.MaxQueueDelay}
	for _, p := range cfg.PreferredBatchSizes {
		s.pref[p] = true
		s.maxPref = max(s.maxPref, p)
	}
	if len(cfg.PreferredBatchSizes) == 0 {
		s.maxPref = maxBatch
		if cfg.MaxBatchSize > 0 {
			s.pref[maxBatch] = true
		}
	}
	b := &Batcher[T, R]{
		cfg: cfg, shape: s, exec: exec, now: time.Now, hooks: h,
		hold:     cfg.HoldUntil,
		wake:     make(chan struct{}, 1),
		finished: make(chan struct{}),
	}
	b.pool.New = func() any { return &node[T, R]{done: make(chan struct{}, 1), heapIdx: -1} }
	b.order.on = cfg.PreserveOrdering
	b.stats.init()
	b.execCtx, b.cancel = context.WithCancel(context.Background())
	n := max(1, cfg.Instances)
	for i := 0; i < n; i++ {
		in := &instance[T, R]{id: i, run: make(chan struct{}, 1)}
		b.idle = append(b.idle, in)
		b.wg.Add(1)
		go b.instanceLoop(in)
	}
	go b.dispatch()
	return b, nil
}

// Submit queues it and waits for its result, its rejection, or ctx (a cancelled ctx removes the request
// from the queue if it has not started).
//
// A full queue returns ErrQueueFull at once, an expired REJECT timeout ErrTimeout, a stopping batcher
// ErrStopped, a request larger than max_batch_size ErrBatchSize. If ctx ends while the request's batch
// is executing, Submit returns the ctx error at once; the batch runs on and the request counts as
// executed in Stats.
func (b *Batcher[T, R]) Submit(ctx context.Context, it Item[T]) (R, error) {
	var zero R
	units := max(1, it.Size)
	if units > b.shape.maxBatch {
		return zero, fmt.Errorf("%w (batch-size %d, max_batch_size %d)", ErrBatchSize, units, b.shape.maxBatch)
	}
	if err := ctx.Err(); err != nil {
		return zero, fmt.Errorf("batcher: request cancelled before queueing: %w", err)
	}
	prio := it.Priority
	if prio == 0 || prio > b.cfg.PriorityLevels {
		prio = b.cfg.DefaultPriorityLevel
	}
	now := b.now()
	start := it.Start
	if start.IsZero() {
		start = now
	}

	b.mu.Lock()
	if b.stopping {
		b.mu.Unlock()
		b.stats.fail(FailOther, now.Sub(start), now)
		return zero, ErrStopped
	}
	lvl := b.level(prio)
	if m := lvl.policy.MaxQueueSize; m > 0 && lvl.size() >= m {
		b.mu.Unlock()
		b.stats.fail(FailRejected, now.Sub(start), now)
		return zero, ErrQueueFull
	}
	n := b.pool.Get().(*node[T, R])
	n.value, n.units, n.key, n.start, n.queued, n.lvl = it.Value, units, it.ShapeKey, start, now, lvl
	if b.cfg.Observer != nil {
		n.ctx = ctx
	}
	n.deadline = time.Time{}
	if t := lvl.policy.DefaultTimeout; t > 0 {
		if lvl.policy.AllowTimeoutOverride && it.Timeout > 0 && it.Timeout < t {
			t = it.Timeout
		}
		n.deadline = now.Add(t)
	}
	b.q.push(n)
	b.pending.Add(1)
	// Wake the dispatcher when an idle instance might take this request, or its timer must fire sooner.
	if len(b.idle) > 0 || (!n.deadline.IsZero() && (b.timerAt.IsZero() || n.deadline.Before(b.timerAt))) {
		b.nudge()
	}
	b.mu.Unlock()

	select {
	case <-n.done:
		return b.collect(n)
	case <-ctx.Done():
	}
	b.mu.Lock()
	if n.state == stQueued {
		b.q.remove(n)
		b.pending.Add(-1)
		b.nudge() // the walk may now reach a different batch
		b.mu.Unlock()
		end := b.now()
		b.stats.fail(FailCanceled, end.Sub(n.start), end)
		b.release(n)
		return zero, fmt.Errorf("batcher: request cancelled while queued: %w", ctx.Err())
	}
	b.mu.Unlock()
	select {
	case <-n.done: // answered meanwhile
		return b.collect(n)
	default:
		// Running: abandon the node to its batch (it is not pooled again) and let the caller go.
		return zero, fmt.Errorf("batcher: request cancelled while executing: %w", ctx.Err())
	}
}

// collect reads a node's answer and returns the node to the pool.
func (b *Batcher[T, R]) collect(n *node[T, R]) (R, error) {
	res, err := n.res, n.err
	b.release(n)
	return res, err
}

func (b *Batcher[T, R]) release(n *node[T, R]) {
	var zt T
	var zr R
	n.value, n.res, n.err, n.lvl, n.key, n.ready, n.reason, n.ctx = zt, zr, nil, nil, "", false, "", nil
	n.heapIdx, n.state = -1, 0
	b.pool.Put(n)
}

// level returns the queue level for priority p (mu held).
func (b *Batcher[T, R]) level(p uint64) *level[T, R] {
	pol, ok := b.cfg.PriorityQueuePolicy[p]
	if !ok {
		pol = b.cfg.DefaultQueuePolicy
	}
	return b.q.levelFor(p, pol, ok || p == b.cfg.DefaultPriorityLevel)
}

func (b *Batcher[T, R]) nudge() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// answer finishes a request that never ran (mu held).
func (b *Batcher[T, R]) answer(n *node[T, R], err error, reason FailReason, now time.Time) {
	n.state = stFinished
	n.err = err
	b.pending.Add(-1)
	b.stats.fail(reason, now.Sub(n.start), now)
	n.done <- struct{}{}
}

// formLocked forms the next batch into in.batch if the rules say one leaves now (mu held).
// It returns false and, when a batch is waiting for max_queue_delay, the time to look again.
func (b *Batcher[T, R]) formLocked(in *instance[T, R], now time.Time) (bool, time.Time) {
	if b.hardStop || b.q.count == 0 {
		return false, time.Time{}
	}
	if b.hold > 0 && !b.stopping {
		if b.q.count < b.hold {
			return false, time.Time{}
		}
		b.hold = 0
	}
	d := b.q.form(&b.shape, payload{}, now, b.stopping, &b.gathered)
	if d.n == 0 {
		clear(b.gathered)
		return false, d.wakeAt
	}
	b.take(&in.batch, d)
	return true, time.Time{}
}

// take dequeues the first d.n gathered requests into bt (mu held).
func (b *Batcher[T, R]) take(bt *batch[T, R], d decision) {
	g := b.gathered[:d.n]
	for _, n := range g {
		b.q.remove(n)
		n.state = stTaken
		bt.nodes = append(bt.nodes, n)
	}
	if len(g) > 0 && bt.units == 0 {
		bt.key = g[0].key
	}
	bt.units += d.units
	bt.saturated = d.saturated
	b.order.reserve(g) // a response slot per request, in dequeue order
	clear(b.gathered)
}

// dispatch is the dispatcher goroutine: it hands batches to idle instances, rejects or delays requests whose
// queue deadline passed (on a timer, so even while every instance is busy), and runs the shutdown.
func (b *Batcher[T, R]) dispatch() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		b.mu.Lock()
		now := b.now()
		b.q.expire(now, b.expired)
		var wakeAt time.Time
		for len(b.idle) > 0 {
			in := b.idle[len(b.idle)-1]
			ok, at := b.formLocked(in, now)
			if !ok {
				wakeAt = at
				break
			}
			b.idle = b.idle[:len(b.idle)-1]
			b.running++
			in.batch.handed = true
			in.run <- struct{}{}
		}
		if b.stopping && b.q.count == 0 && b.running == 0 {
			for _, in := range b.idle {
				close(in.run)
			}
			b.mu.Unlock()
			b.wg.Wait()
			b.cancel()
			close(b.finished)
			return
		}
		if d := b.q.nearestDeadline(); !d.IsZero() && (wakeAt.IsZero() || d.Before(wakeAt)) {
			wakeAt = d
		}
		b.timerAt = wakeAt
		b.mu.Unlock()
		if !wakeAt.IsZero() {
			timer.Reset(time.Until(wakeAt))
		}
		select {
		case <-b.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// expired applies a REJECT timeout (mu held; called by queue.expire).
func (b *Batcher[T, R]) expired(n *node[T, R]) {
	b.answer(n, ErrTimeout, FailRejected, b.now())
}

// instanceLoop runs the batches of one instance. After each batch the instance forms its next one itself
// when the rules allow, and otherwise goes idle and leaves the waiting to the dispatcher.
func (b *Batcher[T, R]) instanceLoop(in *instance[T, R]) {
	defer b.wg.Done()
	for range in.run {
		for {
			if in.batch.handed {
				b.mu.Lock()
				b.grow(&in.batch)
				b.mu.Unlock()
			}
			b.runBatch(in)
			b.mu.Lock()
			ok, _ := b.formLocked(in, b.now())
			if !ok {
				b.running--
				b.idle = append(b.idle, in)
				b.nudge()
				b.mu.Unlock()
				break
			}
			b.mu.Unlock()
		}
	}
}

// grow lets a formed batch that has not started absorb queued requests, unless it is saturated (mu held).
func (b *Batcher[T, R]) grow(bt *batch[T, R]) {
	bt.handed = false
	if bt.saturated || b.q.count == 0 || b.hardStop {
		return
	}
	d := b.q.form(&b.shape, payload{units: bt.units, key: bt.key, saturated: bt.saturated}, b.now(), b.stopping, &b.gathered)
	if d.n > 0 {
		b.take(bt, d)
	} else {
		clear(b.gathered)
	}
}

// Stop stops accepting, then drains queued requests until ctx is done; whatever is still queued then
// fails with ErrStopped. Running batches see their context cancelled at that point; Stop returns once
// every goroutine of the batcher has exited.
func (b *Batcher[T, R]) Stop(ctx context.Context) error {
	b.mu.Lock()
	b.stopping = true
	b.nudge()
	b.mu.Unlock()
	select {
	case <-b.finished:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	b.hardStop = true
	now := b.now()
	for n := b.q.first(); n != nil; n = b.q.first() {
		b.q.remove(n)
		b.answer(n, ErrStopped, FailOther, now)
	}
	b.nudge()
	b.mu.Unlock()
	b.cancel()
	<-b.finished
	return fmt.Errorf("batcher: stopped before the queue drained: %w", ctx.Err())
}

// Stats returns a copy of the cumulative statistics.
func (b *Batcher[T, R]) Stats() Stats {
	s := b.stats.snapshot()
	s.Pending = int(b.pending.Load())
	return s
}

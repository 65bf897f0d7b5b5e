package batcher

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// This file is "deciding who runs it": Submit puts requests in the queue, and a batch is formed only when an
// instance can take it: when it is free, or, where Triton would prefetch, while its previous batch runs. A
// free instance forms its own next batch as it finishes one; the dispatcher goroutine covers the rest (an
// instance idle while a batch waits, the staged slot of a running instance, queue deadlines).

// Batcher is one model's dynamic batcher and its instance workers. It is safe for concurrent use.
type Batcher[T, R any] struct {
	cfg      Config
	shape    shape // the Triton rules
	walkAll  shape // the walk of the Adaptive policy: everything compatible, up to max_batch_size
	prefetch bool  // cfg.prefetch()
	exec     func(context.Context, Run, []T) ([]R, Timing, error)
	stage    func(context.Context, Run, []T) error // nil: the executor does not stage
	now      func() time.Time
	hooks    hooks[T]

	mu       sync.Mutex
	q        queue[T, R]
	gathered []*node[T, R] // scratch for queue.form
	insts    []*instance[T, R]
	idle     []*instance[T, R] // neither running nor told to start
	hold     int               // HoldUntil, until first reached
	timerAt  time.Time         // when the dispatcher's timer fires; zero = not armed
	stopping bool              // Stop called: no new requests, drain without waiting
	hardStop bool              // Stop's ctx ended: queued requests failed, nothing new starts
	running  int               // instances not idle
	inSystem int               // units submitted and not yet answered
	reserved int               // slots reserved (Reserve) and neither submitted nor released
	cost     costModel         // Adaptive
	fc       forecast          // Adaptive
	decided  uint64            // Adaptive: decisions made (Stats)
	waited   uint64            // Adaptive: of those, waits

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

// New validates cfg and starts the batcher's goroutines (one dispatcher, one per instance).
func New[T, R any](cfg Config, exec ExecFunc[T, R]) (*Batcher[T, R], error) {
	return newBatcher(cfg, exec, hooks[T]{})
}

// NewStaged is New for an executor that stages each batch before it runs (see Executor): it also starts
// one stager goroutine per instance.
func NewStaged[T, R any](cfg Config, e Executor[T, R]) (*Batcher[T, R], error) {
	if e == nil {
		return nil, fmt.Errorf("batcher: nil Executor")
	}
	return build(cfg, e.Exec, e.Stage, hooks[T]{})
}

// hooks lets tests observe the batcher from inside.
type hooks[T any] struct {
	answered func(T)            // called for each executed request just before its answer is released
	now      func() time.Time   // the batcher's clock (nil = time.Now); its timers run on real time
	decided  func(waitDecision) // Adaptive: called with each decision the rule makes (mu held)
}

func newBatcher[T, R any](cfg Config, exec ExecFunc[T, R], h hooks[T]) (*Batcher[T, R], error) {
	if exec == nil {
		return nil, fmt.Errorf("batcher: nil ExecFunc")
	}
	return build(cfg, func(ctx context.Context, r Run, v []T) ([]R, Timing, error) { return exec(ctx, r.Instance, v) }, nil, h)
}

func build[T, R any](cfg Config, exec func(context.Context, Run, []T) ([]R, Timing, error), stage func(context.Context, Run, []T) error, h hooks[T]) (*Batcher[T, R], error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("batcher: %w", err)
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
	all := shape{maxBatch: maxBatch, maxPref: maxBatch, pref: make([]bool, maxBatch+1)}
	all.pref[maxBatch] = true
	b := &Batcher[T, R]{
		cfg: cfg, shape: s, walkAll: all, prefetch: cfg.prefetch(), exec: exec, stage: stage, now: time.Now, hooks: h,
		hold:     cfg.HoldUntil,
		wake:     make(chan struct{}, 1),
		finished: make(chan struct{}),
	}
	if h.now != nil {
		b.now = h.now
	}
	b.pool.New = func() any { return &node[T, R]{done: make(chan struct{}, 1), heapIdx: -1} }
	b.order.on = cfg.PreserveOrdering
	b.stats.init()
	b.execCtx, b.cancel = context.WithCancel(context.Background())
	n := max(1, cfg.Instances)
	for i := 0; i < n; i++ {
		in := &instance[T, R]{id: i, run: make(chan struct{}, 1)}
		in.cond.L = &b.mu
		b.insts = append(b.insts, in)
		b.idle = append(b.idle, in)
		b.wg.Add(1)
		go b.instanceLoop(in)
		if stage != nil {
			in.stage = make(chan struct{}, 1)
			b.wg.Add(1)
			go b.stageLoop(in)
		}
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
	t, err := b.Reserve(ctx, Slot{Size: it.Size, Priority: it.Priority, Timeout: it.Timeout, Start: it.Start})
	if err != nil {
		var zero R
		return zero, err
	}
	return t.Submit(ctx, it)
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
	b.inSystem -= n.units
	b.stats.fail(reason, now.Sub(n.start), now)
	n.done <- struct{}{}
}

// takerLocked reports whether an instance could take a batch now: an idle one, or, with prefetch, a running
// one whose staged slot is free or, under the Adaptive policy with a queue size limit, whose staged batch
// still has room (growsStaged).
func (b *Batcher[T, R]) takerLocked() bool {
	if len(b.idle) > 0 {
		return true
	}
	if b.prefetch {
		for _, in := range b.insts {
			if in.running && !in.starting && (!in.staged || b.growsStaged(in)) {
				return true
			}
		}
	}
	return false
}

// stagedRoom reports whether in holds a staged batch that could still take queued requests.
func (b *Batcher[T, R]) stagedRoom(in *instance[T, R]) bool {
	bt := &in.slots[in.next]
	return in.staged && !bt.saturated && bt.units < b.shape.maxBatch
}

// growsStaged reports whether the staged batch of in takes queued requests as they come rather than when
// its instance starts it: under the Adaptive policy with a queue size limit, while it has room, so that the
// limit bounds the queue and not the batch (prefetchLocked).
func (b *Batcher[T, R]) growsStaged(in *instance[T, R]) bool {
	return b.cfg.Policy == Adaptive && b.cfg.DefaultQueuePolicy.MaxQueueSize > 0 && b.stagedRoom(in)
}

// dispatch is the dispatcher goroutine: it starts batches on idle instances, forms the staged batch of running
// ones (prefetch), rejects or delays requests whose queue deadline passed (on a timer, so even while every
// instance is busy), and runs the shutdown.
func (b *Batcher[T, R]) dispatch() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		b.mu.Lock()
		now := b.now()
		b.q.expire(now, b.expired)
		var wakeAt time.Time
		soonest := func(t time.Time) {
			if !t.IsZero() && (wakeAt.IsZero() || t.Before(wakeAt)) {
				wakeAt = t
			}
		}
		// Idle instances holding a staged batch decide first: while one of them waits, the queue is its to
		// grow with. Then the others, last idle first; once a walk of the queue found nothing to leave, it
		// finds the same for the rest.
		formed := true
		for pass := 0; pass < 2; pass++ {
			for i := len(b.idle) - 1; i >= 0; i-- {
				in := b.idle[i]
				if in.staged != (pass == 0) || (pass == 1 && !formed) {
					continue
				}
				ok, at := b.readyLocked(in, now, true)
				if !ok {
					soonest(at)
					formed = false
					continue
				}
				b.idle = slices.Delete(b.idle, i, i+1)
				b.running++
				in.starting = true
				in.run <- struct{}{}
			}
		}
		if b.prefetch && formed {
			soonest(b.prefetchLocked(now))
		}
		staged := false
		for _, in := range b.insts {
			b.stageAhead(in)
			staged = staged || in.staged
		}
		if b.stopping && b.q.count == 0 && b.running == 0 && !staged && (b.reserved == 0 || b.hardStop) {
			for _, in := range b.insts {
				close(in.run)
				if in.stage != nil {
					close(in.stage)
				}
			}
			b.mu.Unlock()
			b.wg.Wait()
			b.cancel()
			close(b.finished)
			return
		}
		soonest(b.q.nearestDeadline())
		b.timerAt = wakeAt
		b.mu.Unlock()
		if !wakeAt.IsZero() {
			timer.Reset(wakeAt.Sub(b.now()))
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
	if b.cfg.Policy == Adaptive {
		b.mu.Lock()
		s.Adaptive = AdaptiveStats{Enabled: true, Decisions: b.decided, Waits: b.waited}
		if b.cost.known() {
			sec := func(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
			s.Adaptive.Fixed, s.Adaptive.PerSample, s.Adaptive.PerToken = sec(b.cost.a), sec(b.cost.c), sec(b.cost.d)
		}
		b.mu.Unlock()
	}
	return s
}

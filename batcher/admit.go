package batcher

import (
	"context"
	"fmt"
	"time"
)

// This file is "admitting it": a request takes its place in the queue before it is prepared, so that a request
// the queue would refuse is refused before anyone decodes, resizes or tokenizes it. Reserve applies everything
// that decides a refusal (a stopping batcher, the size against max_batch_size, the level's max_queue_size counting
// the slots reserved and not yet submitted, the priority level) and starts the queue timeout; the prepared request
// then takes its slot with Ticket.Submit, or gives it back with Ticket.Release.

// Slot is what admission needs to know about a request before it is prepared.
type Slot struct {
	Size     int           // batch units, as Item.Size (0 is read as 1)
	Priority uint64        // as Item.Priority: 0 or > levels -> the default level
	Timeout  time.Duration // as Item.Timeout: may only lower the policy's default timeout
	Start    time.Time     // request_start, as Item.Start; zero -> the time of Reserve
}

// Ticket is a slot reserved in one priority level of a Batcher's queue. Exactly one of Submit and Release
// must be called, once, by the goroutine that reserved it (Release after Submit does nothing, so
// `defer t.Release()` is safe).
type Ticket[T, R any] struct {
	b        *Batcher[T, R]
	lvl      *level[T, R]
	units    int
	start    time.Time
	admitted time.Time
	deadline time.Time // zero: no queue timeout
	used     bool
}

// Reserve admits a request of s.Size units to its priority level, or refuses it as Submit would: ErrBatchSize,
// ErrStopped, ErrQueueFull, or the ctx error. It does not block. The slot counts against the level's
// max_queue_size until the ticket is submitted (it is then a queued request) or released, and the queue
// timeout counts from now: preparing the request is time spent in the queue.
func (b *Batcher[T, R]) Reserve(ctx context.Context, s Slot) (*Ticket[T, R], error) {
	units := max(1, s.Size)
	if units > b.shape.maxBatch {
		return nil, fmt.Errorf("%w (batch-size %d, max_batch_size %d)", ErrBatchSize, units, b.shape.maxBatch)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("batcher: request cancelled before queueing: %w", err)
	}
	prio := s.Priority
	if prio == 0 || prio > b.cfg.PriorityLevels {
		prio = b.cfg.DefaultPriorityLevel
	}
	now := b.now()
	start := s.Start
	if start.IsZero() {
		start = now
	}
	b.mu.Lock()
	if b.stopping {
		b.mu.Unlock()
		b.stats.fail(FailOther, now.Sub(start), now)
		return nil, ErrStopped
	}
	lvl := b.level(prio)
	if m := lvl.policy.MaxQueueSize; m > 0 && lvl.size() >= m {
		b.q.dropIfEmpty(lvl)
		b.mu.Unlock()
		b.stats.fail(FailRejected, now.Sub(start), now)
		return nil, ErrQueueFull
	}
	lvl.reserved++
	b.reserved++
	b.mu.Unlock()
	t := &Ticket[T, R]{b: b, lvl: lvl, units: units, start: start, admitted: now}
	if d := lvl.policy.DefaultTimeout; d > 0 {
		if lvl.policy.AllowTimeoutOverride && s.Timeout > 0 && s.Timeout < d {
			d = s.Timeout
		}
		t.deadline = now.Add(d)
	}
	return t, nil
}

// Release gives the slot back without submitting (the request failed to prepare, or its caller left). The
// refusal is the caller's to count; Stats does not see it.
func (t *Ticket[T, R]) Release() {
	if t == nil || t.used {
		return
	}
	t.used = true
	b := t.b
	b.mu.Lock()
	t.lvl.reserved--
	b.reserved--
	b.q.dropIfEmpty(t.lvl)
	if b.stopping {
		b.nudge() // the drain may be waiting for this slot
	}
	b.mu.Unlock()
}

// Submit puts the prepared request in the reserved slot and waits for its result, as Batcher.Submit does. The
// slot's size, priority, timeout and start are the ticket's (the item's own are not read); it.Value, ShapeKey
// and Length are the item's. A timeout that passed while the request was prepared applies at once: REJECT
// answers ErrTimeout, DELAY queues it behind the level's unexpired requests. A batcher stopped while the
// request was prepared still runs it unless Stop's context has ended (ErrStopped).
func (t *Ticket[T, R]) Submit(ctx context.Context, it Item[T]) (R, error) {
	var zero R
	if t.used {
		return zero, fmt.Errorf("batcher: ticket already used")
	}
	t.used = true
	b := t.b
	b.mu.Lock()
	t.lvl.reserved--
	b.reserved--
	now := b.now()
	if b.hardStop {
		b.q.dropIfEmpty(t.lvl)
		b.nudge()
		b.mu.Unlock()
		b.stats.fail(FailOther, now.Sub(t.start), now)
		return zero, ErrStopped
	}
	if err := ctx.Err(); err != nil {
		b.q.dropIfEmpty(t.lvl)
		b.nudge()
		b.mu.Unlock()
		b.stats.fail(FailCanceled, now.Sub(t.start), now)
		return zero, fmt.Errorf("batcher: request cancelled before queueing: %w", err)
	}
	n := b.pool.Get().(*node[T, R])
	n.value, n.units, n.key, n.start, n.queued, n.lvl, n.length = it.Value, t.units, it.ShapeKey, t.start, t.admitted, t.lvl, it.Length
	if b.cfg.Observer != nil {
		n.ctx = ctx
	}
	n.deadline = t.deadline
	b.q.push(n)
	b.pending.Add(1)
	b.inSystem += n.units
	if b.cfg.Policy == Adaptive {
		b.fc.arrived(now, n.units, b.inSystem)
	}
	if !n.deadline.IsZero() && !n.deadline.After(now) {
		b.q.expire(now, b.expired) // REJECT answers it now; DELAY moves it back
	}
	// Wake the dispatcher when an instance might take this request, or its timer must fire sooner.
	if n.state == stQueued && (b.takerLocked() || (!n.deadline.IsZero() && (b.timerAt.IsZero() || n.deadline.Before(b.timerAt)))) {
		b.nudge()
	}
	b.mu.Unlock()
	return b.wait(ctx, n)
}

// wait waits for n's answer, or for ctx: a cancelled request still queued leaves the queue, one executing is
// abandoned to its batch.
func (b *Batcher[T, R]) wait(ctx context.Context, n *node[T, R]) (R, error) {
	var zero R
	select {
	case <-n.done:
		return b.collect(n)
	case <-ctx.Done():
	}
	b.mu.Lock()
	if n.state == stQueued {
		b.q.remove(n)
		b.pending.Add(-1)
		b.inSystem -= n.units
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

// Precheck answers ErrQueueFull, counted as a refused request like Reserve's, when every priority level a
// request could name is at its max_queue_size now, and nil otherwise. A frontend calls it before it reads the
// request, so that a full queue refuses a request without even its body being parsed; Reserve still decides for
// the requests Precheck lets through (a slot may fill in between). It does not block and reserves nothing.
func (b *Batcher[T, R]) Precheck() error {
	levels := []uint64{b.cfg.DefaultPriorityLevel}
	if b.cfg.PriorityLevels > 0 {
		levels = levels[:0]
		for p := uint64(1); p <= b.cfg.PriorityLevels; p++ {
			levels = append(levels, p)
		}
	}
	if !b.allFull(levels) {
		return nil
	}
	b.stats.fail(FailRejected, 0, b.now())
	return ErrQueueFull
}

// allFull reports whether each of levels is at a max_queue_size (a level without one is never full).
func (b *Batcher[T, R]) allFull(levels []uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range levels {
		pol, ok := b.cfg.PriorityQueuePolicy[p]
		if !ok {
			pol = b.cfg.DefaultQueuePolicy
		}
		if pol.MaxQueueSize == 0 {
			return false
		}
		size := 0
		for _, l := range b.q.levels {
			if l.prio == p {
				size = l.size()
			}
		}
		if size < pol.MaxQueueSize {
			return false
		}
	}
	return true
}

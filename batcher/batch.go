package batcher

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// This file is "carrying it": a formed batch, its run on an instance, and the answers going back to the
// waiting Submit calls, in dequeue order when preserve_ordering is on.

// batch is one run's work. Each instance owns two and reuses their slices.
type batch[T, R any] struct {
	nodes     []*node[T, R]
	values    []T // nodes' values, filled as they are taken: a Stage call may read them before the run
	units     int
	length    int       // the largest Item.Length
	oldest    time.Time // queue time of the oldest request
	key       string
	saturated bool
	handed    bool  // formed before its instance was ready to start it: may still grow when it starts
	stagedN   int   // values staged so far
	stageErr  error // a failed Stage: the batch fails with it instead of running
	stopped   bool  // Stop's deadline passed before it started: its requests fail with ErrStopped
}

// reset empties bt for its next use (mu held).
func (bt *batch[T, R]) reset() {
	clear(bt.nodes)
	clear(bt.values)
	*bt = batch[T, R]{nodes: bt.nodes[:0], values: bt.values[:0]}
}

// runBatch executes bt on instance in and answers its requests. It returns how long the instance was busy
// with it and whether it ran and succeeded.
func (b *Batcher[T, R]) runBatch(in *instance[T, R], bt *batch[T, R], slot int) (time.Duration, bool) {
	b.pending.Add(-int64(len(bt.nodes)))
	start := b.now()
	var res []R
	var timing Timing
	err := bt.stageErr
	if err == nil && b.stage != nil && bt.stagedN < len(bt.values) && !bt.stopped {
		err = b.callStage(Run{Instance: in.id, Slot: slot, Staged: bt.stagedN}, bt.values)
		bt.stagedN = len(bt.values)
	}
	switch {
	case bt.stopped:
		err = ErrStopped
	case err == nil:
		res, timing, err = b.call(Run{Instance: in.id, Slot: slot}, bt.values)
	}
	end := b.now()
	if err == nil && len(res) != len(bt.nodes) {
		err = fmt.Errorf("batcher: executor returned %d results for a batch of %d requests", len(res), len(bt.nodes))
	}
	reason := FailBackend
	if bt.stopped {
		reason = FailOther
	} else if err != nil {
		err = fmt.Errorf("batcher: batch of %d failed on instance %d: %w", bt.units, in.id, err)
	}
	if err != nil {
		for _, n := range bt.nodes {
			n.err, n.reason = err, reason
		}
	} else {
		for i, n := range bt.nodes {
			n.res = res[i]
		}
	}
	c := computed{start: start, end: end, timing: timing}
	cin, cinf, cout := c.split()
	for _, n := range bt.nodes {
		n.cstart, n.cend, n.cin, n.cinf, n.cout, n.batchUnits = start, end, cin, cinf, cout, bt.units
	}
	if err == nil {
		b.stats.batch(bt.units, cin, cinf, cout)
	}
	if b.order.on {
		b.order.complete(bt.nodes, b)
	} else {
		var t tally
		for _, n := range bt.nodes {
			t.add(n, end)
		}
		b.stats.requests(&t, end) // before the answers: a caller that got its answer sees it counted
		for _, n := range bt.nodes {
			b.observe(n, end)
			if b.hooks.answered != nil {
				b.hooks.answered(n.value)
			}
			n.done <- struct{}{}
		}
	}
	return end.Sub(start), err == nil
}

// errPanic marks an executor that panicked; the batch fails with it instead of taking the server down.
var errPanic = errors.New("executor panicked")

func (b *Batcher[T, R]) call(r Run, values []T) (res []R, t Timing, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, fmt.Errorf("%w: %v", errPanic, p)
		}
	}()
	return b.exec(b.execCtx, r, values)
}

// callStage runs the executor's Stage step for values[r.Staged:]; a panic fails the batch like an error.
func (b *Batcher[T, R]) callStage(r Run, values []T) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", errPanic, p)
		}
	}()
	if err := b.stage(b.execCtx, r, values); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	return nil
}

// computed is what is known about one executed batch.
type computed struct {
	start, end time.Time
	timing     Timing
}

// split returns the batch's input, infer and output durations (docs/triton-batcher-and-kserve-v2.md §1.11).
func (c *computed) split() (in, inf, out time.Duration) {
	t := c.timing
	if t == (Timing{}) {
		return 0, c.end.Sub(c.start), 0
	}
	return t.Input, t.Infer, t.Output
}

// ordering holds answers until every request dequeued before them is answered (preserve_ordering).
type ordering[T, R any] struct {
	on    bool
	mu    sync.Mutex
	slots []*node[T, R] // dequeue order; head at slots[head]
	head  int
}

// reserve gives each request a slot in dequeue order (called under Batcher.mu).
func (o *ordering[T, R]) reserve(g []*node[T, R]) {
	if !o.on {
		return
	}
	o.mu.Lock()
	o.slots = append(o.slots, g...)
	o.mu.Unlock()
}

// complete marks a batch's requests answered and releases the ready run at the head, in order.
func (o *ordering[T, R]) complete(nodes []*node[T, R], b *Batcher[T, R]) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, n := range nodes {
		n.ready = true
	}
	var t tally
	now := b.now()
	start := o.head
	for o.head < len(o.slots) && o.slots[o.head].ready {
		t.add(o.slots[o.head], now)
		o.head++
	}
	b.stats.requests(&t, now) // before the answers: a caller that got its answer sees it counted
	for i := start; i < o.head; i++ {
		b.observe(o.slots[i], now)
		if b.hooks.answered != nil {
			b.hooks.answered(o.slots[i].value)
		}
		o.slots[i].done <- struct{}{}
		o.slots[i] = nil
	}
	if o.head == len(o.slots) {
		o.slots, o.head = o.slots[:0], 0
	} else if o.head > 1024 && o.head*2 > len(o.slots) {
		k := copy(o.slots, o.slots[o.head:])
		clear(o.slots[k:])
		o.slots, o.head = o.slots[:k], 0
	}
}

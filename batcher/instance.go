package batcher

import (
	"slices"
	"sync"
	"time"
)

// This file is "deciding who runs it", the instance's side: an instance holds two batches, the one it
// executes and the one staged to run next (Triton's two payloads per instance), and starts the staged one as
// soon as it is free and the policy lets it leave. Everything that touches the fields marked "mu" holds
// Batcher.mu.

// instance is one model instance: a goroutine that runs one batch at a time, and, when the executor stages,
// a second goroutine that stages the next batch while the first runs.
type instance[T, R any] struct {
	id    int
	run   chan struct{} // one slot: the instance may start slots[next] (closed at shutdown)
	stage chan struct{} // one slot: the stager may stage slots[next] (nil when the executor does not stage)
	cond  sync.Cond     // on Batcher.mu: broadcast when staging ends
	slots [2]batch[T, R]

	next     int       // mu: the slot that runs next; slots[next^1] executes while running
	running  bool      // mu: executing slots[next^1]
	starting bool      // mu: told to start slots[next]
	staged   bool      // mu: slots[next] holds a formed batch that has not started
	staging  bool      // mu: the stager is in Stage for slots[next]
	freeAt   time.Time // mu: when it last finished a batch
	freeBy   time.Time // mu: Adaptive: when the running batch is predicted to end
	episode  time.Time // mu: Adaptive: the anchor of the decision the staged or queued batch is in
}

// instanceLoop runs the batches of one instance. After each batch the instance starts its staged batch, or
// forms its next one itself, when the policy allows; otherwise it goes idle and leaves the waiting to the
// dispatcher.
func (b *Batcher[T, R]) instanceLoop(in *instance[T, R]) {
	defer b.wg.Done()
	for range in.run {
		b.mu.Lock()
		for {
			bt, slot := b.startLocked(in)
			b.mu.Unlock()
			busy, ok := b.runBatch(in, bt, slot)
			b.mu.Lock()
			now := b.now()
			in.running, in.freeAt = false, now
			b.inSystem -= bt.units
			if ok && b.cfg.Policy == Adaptive {
				b.cost.observe(bt.units, bt.length, busy)
			}
			bt.reset()
			if ok, _ := b.readyLocked(in, now, false); !ok {
				break
			}
			in.starting = true
		}
		b.running--
		b.idle = append(b.idle, in)
		b.nudge()
		b.mu.Unlock()
	}
}

// startLocked makes slots[next] the executing batch: it waits for a Stage call in progress on it, lets it
// absorb queued requests (the rules of today, unless saturated), and frees the other slot for the next batch.
func (b *Batcher[T, R]) startLocked(in *instance[T, R]) (*batch[T, R], int) {
	for in.staging {
		in.cond.Wait()
	}
	bt := &in.slots[in.next]
	if b.hardStop {
		bt.stopped = true // formed, not started: it fails like the queued requests
	} else if bt.handed {
		b.grow(bt)
	}
	bt.handed = false
	slot := in.next
	in.next ^= 1
	in.staged, in.starting, in.running, in.episode = false, false, true, time.Time{}
	if b.cfg.Policy == Adaptive {
		in.freeBy = b.now().Add(b.cost.predictDur(bt.units, bt.length))
	}
	if b.prefetch && b.q.count > 0 {
		b.nudge() // the free slot may take the next batch
	}
	return bt, slot
}

// stageLoop stages the batch in slots[next] while it waits for its instance.
func (b *Batcher[T, R]) stageLoop(in *instance[T, R]) {
	defer b.wg.Done()
	for range in.stage {
		b.mu.Lock()
		bt, slot := &in.slots[in.next], in.next
		values, from := bt.values, bt.stagedN
		b.mu.Unlock()
		err := b.callStage(Run{Instance: in.id, Slot: slot, Staged: from}, values)
		b.mu.Lock()
		bt.stagedN = len(values)
		if err != nil && bt.stageErr == nil {
			bt.stageErr = err
		}
		in.staging = false
		in.cond.Broadcast()
		b.mu.Unlock()
	}
}

// stageAhead hands the staged batch of an instance that is not starting it to its stager, if any of it is
// not staged yet.
func (b *Batcher[T, R]) stageAhead(in *instance[T, R]) {
	bt := &in.slots[in.next]
	if in.stage == nil || !in.staged || in.starting || in.staging || bt.stagedN == len(bt.values) || bt.stageErr != nil {
		return
	}
	in.staging = true
	in.stage <- struct{}{}
}

// readyLocked says whether an instance that is not running may start a batch now: its staged batch, or one
// formed for it now. When not, it returns when to look again (zero: at the next arrival). handed marks a
// batch formed here as formed by the dispatcher, which lets it grow when the instance starts it.
func (b *Batcher[T, R]) readyLocked(in *instance[T, R], now time.Time, handed bool) (bool, time.Time) {
	if in.staged && (b.cfg.Policy == Triton || b.hardStop) {
		return true, time.Time{}
	}
	if b.cfg.Policy == Adaptive {
		if !handed && !in.staged && len(b.idle) > 0 {
			// Another instance is idle: the dispatcher decides for the batch at the head of the queue, so
			// that only one instance waits for it.
			return false, time.Time{}
		}
		return b.adaptiveLocked(in, now)
	}
	return b.formLocked(in, now, handed)
}

// holdLocked applies HoldUntil: true while no batch may be formed.
func (b *Batcher[T, R]) holdLocked() bool {
	if b.hold > 0 && !b.stopping {
		if b.q.count < b.hold {
			return true
		}
		b.hold = 0
	}
	return false
}

// formLocked forms the next batch of in into slots[next] if the Triton rules say one leaves now. It returns
// false and, when a batch is waiting for max_queue_delay, the time to look again.
func (b *Batcher[T, R]) formLocked(in *instance[T, R], now time.Time, handed bool) (bool, time.Time) {
	if b.hardStop || b.q.count == 0 || b.holdLocked() {
		return false, time.Time{}
	}
	d := b.q.form(&b.shape, payload{}, now, b.stopping, &b.gathered)
	if d.n == 0 {
		clear(b.gathered)
		return false, d.wakeAt
	}
	b.takeInto(in, d, handed)
	return true, time.Time{}
}

// prefetchLocked forms the next batch of running instances into their free slot while no instance is idle.
// Under Triton rules every such instance takes one if the rules let it leave. Under the Adaptive policy only
// the instance predicted to be free first takes one, with whatever is queued (when it leaves is decided
// once the instance is free), and only while no other staged batch could still take the queued requests:
// one batch at a time gathers a cohort, instead of each instance's slot taking a piece of it. Under a queue
// size limit that staged batch takes what is queued at once rather than when its instance starts it, so
// that the limit bounds the queue and not the batch (a staged batch formed from the first request after a
// start would otherwise leave with it and the queue's 8).
func (b *Batcher[T, R]) prefetchLocked(now time.Time) time.Time {
	if len(b.idle) > 0 || b.hardStop || b.q.count == 0 {
		return time.Time{}
	}
	if b.cfg.Policy == Triton {
		for _, in := range b.insts {
			if !in.running || in.staged || in.starting {
				continue
			}
			if ok, at := b.formLocked(in, now, true); !ok {
				return at
			}
		}
		return time.Time{}
	}
	var first *instance[T, R]
	for _, in := range b.insts {
		if b.stagedRoom(in) {
			if b.growsStaged(in) {
				b.grow(&in.slots[in.next])
			}
			return time.Time{}
		}
		if in.running && !in.staged && !in.starting && (first == nil || in.freeBy.Before(first.freeBy)) {
			first = in
		}
	}
	if first == nil || b.holdLocked() {
		return time.Time{}
	}
	d := b.q.form(&b.walkAll, payload{}, now, b.stopping, &b.gathered)
	if d.n == 0 {
		clear(b.gathered)
		return time.Time{}
	}
	b.takeInto(first, d, true)
	return time.Time{}
}

// adaptiveLocked is readyLocked under the Adaptive policy. The candidate is the staged batch, if any, plus
// what the queue walk would add to it up to max_batch_size; decideWait says whether it leaves now.
func (b *Batcher[T, R]) adaptiveLocked(in *instance[T, R], now time.Time) (bool, time.Time) {
	if b.hardStop || (!in.staged && (b.q.count == 0 || b.holdLocked())) {
		return false, time.Time{}
	}
	var p payload
	var oldest time.Time
	length := 0
	bt := &in.slots[in.next]
	if in.staged {
		p, oldest, length = payload{units: bt.units, key: bt.key, saturated: bt.saturated}, bt.oldest, bt.length
	}
	d := decision{}
	if !p.saturated && b.q.count > 0 {
		d = b.q.form(&b.walkAll, p, now, b.stopping, &b.gathered)
	}
	for _, n := range b.gathered[:d.n] {
		if oldest.IsZero() || n.queued.Before(oldest) {
			oldest = n.queued
		}
		length = max(length, n.length)
	}
	units := p.units + d.units
	if units == 0 {
		clear(b.gathered)
		return false, time.Time{}
	}
	if !(p.saturated || d.saturated || b.stopping || units >= b.shape.maxBatch) && b.cost.known() {
		anchor := oldest
		if in.freeAt.After(anchor) {
			anchor = in.freeAt
		}
		bound := b.cfg.AdaptiveQueueBound
		if bound == 0 {
			bound = b.cfg.MaxQueueDelay + b.cost.predictDur(b.shape.maxBatch, length)
		}
		if !in.episode.Equal(anchor) {
			b.fc.open(anchor, bound, b.shape.maxBatch, b.inSystem)
			in.episode = anchor
		}
		arrived, last := 0, anchor
		count := func(nodes []*node[T, R]) {
			for _, n := range nodes {
				if n.queued.After(anchor) {
					arrived += n.units
					if n.queued.After(last) {
						last = n.queued
					}
				}
			}
		}
		count(b.gathered[:d.n])
		if in.staged {
			count(bt.nodes)
		}
		wins, peak := b.fc.complete(now)
		room := peak - b.inSystem
		// Other idle instances would run the expected units at once: waiting for them pays only when more
		// can come than those instances take.
		others := len(b.idle) // in is idle when the dispatcher asks, busy when it asks for itself
		if slices.Contains(b.idle, in) {
			others--
		}
		if room <= others*b.shape.maxBatch {
			room = 0
		}
		w := decideWait(waitInput{now: now, anchor: anchor, oldest: oldest, units: units, length: length, max: b.shape.maxBatch,
			bound: bound, typical: b.cost.typical(), arrived: arrived, last: last, room: room}, &b.cost, wins)
		if b.hooks.decided != nil {
			b.hooks.decided(w)
		}
		b.decided++
		if !w.leave {
			b.waited++
			clear(b.gathered)
			return false, w.wakeAt
		}
	}
	if in.staged {
		clear(b.gathered) // the instance grows its staged batch when it starts it
		return true, time.Time{}
	}
	b.takeInto(in, d, false)
	return true, time.Time{}
}

// takeInto dequeues the first d.n gathered requests into the free slot of in, which then holds a staged batch.
func (b *Batcher[T, R]) takeInto(in *instance[T, R], d decision, handed bool) {
	bt := &in.slots[in.next]
	b.take(bt, d)
	bt.handed = handed
	in.staged = true
}

// take dequeues the first d.n gathered requests into bt (mu held).
func (b *Batcher[T, R]) take(bt *batch[T, R], d decision) {
	g := b.gathered[:d.n]
	for _, n := range g {
		b.q.remove(n)
		n.state = stTaken
		bt.nodes = append(bt.nodes, n)
		bt.values = append(bt.values, n.value)
		bt.length = max(bt.length, n.length)
		if bt.oldest.IsZero() || n.queued.Before(bt.oldest) {
			bt.oldest = n.queued
		}
	}
	if len(g) > 0 && bt.units == 0 {
		bt.key = g[0].key
	}
	bt.units += d.units
	bt.saturated = d.saturated
	b.order.reserve(g) // a response slot per request, in dequeue order
	clear(b.gathered)
}

// grow lets a formed batch that has not started absorb queued requests, unless it is saturated (mu held).
func (b *Batcher[T, R]) grow(bt *batch[T, R]) {
	if bt.saturated || b.q.count == 0 {
		return
	}
	s := &b.shape
	if b.cfg.Policy == Adaptive {
		s = &b.walkAll
	}
	d := b.q.form(s, payload{units: bt.units, key: bt.key, saturated: bt.saturated}, b.now(), b.stopping, &b.gathered)
	if d.n > 0 {
		b.take(bt, d)
	} else {
		clear(b.gathered)
	}
}

package batcher

import (
	"context"
	"slices"
	"time"
)

// This file is "forming a batch": the priority queue of waiting requests and the walk over it that decides
// how much of its head leaves as the next batch (docs/triton-batcher-and-kserve-v2.md §1.3). Everything here runs under Batcher.mu.

// request states, guarded by Batcher.mu.
const (
	stQueued   uint8 = iota + 1 // in a level list
	stTaken                     // dequeued into a batch
	stFinished                  // answered without running (rejected, cancelled, stopped)
)

// node is one submitted request: an intrusive list element, its deadline-heap slot and its answer.
// Nodes are pooled per Batcher; the result travels through the one-slot channel done.
type node[T, R any] struct {
	value    T
	units    int
	length   int
	key      string
	start    time.Time // request_start
	queued   time.Time // queue_start
	deadline time.Time // zero: no queue timeout
	lvl      *level[T, R]

	prev, next *node[T, R]
	list       *list[T, R]
	heapIdx    int // index in queue.deadlines, -1 when absent
	state      uint8

	// Filled by whoever answers, read by Submit after <-done.
	res    R
	err    error
	ready  bool // preserve_ordering: result present, waiting for earlier slots
	done   chan struct{}
	reason FailReason // for stats when err != nil

	// The batch's compute timestamps, recorded per request (docs/triton-batcher-and-kserve-v2.md §1.11).
	cstart, cend    time.Time
	cin, cinf, cout time.Duration
	batchUnits      int

	ctx context.Context // Submit's, for the Observer
}

// list is an intrusive FIFO of nodes.
type list[T, R any] struct {
	head, tail *node[T, R]
	n          int
}

func (l *list[T, R]) pushBack(n *node[T, R]) {
	n.prev, n.next, n.list = l.tail, nil, l
	if l.tail != nil {
		l.tail.next = n
	} else {
		l.head = n
	}
	l.tail = n
	l.n++
}

func (l *list[T, R]) remove(n *node[T, R]) {
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		l.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		l.tail = n.prev
	}
	n.prev, n.next, n.list = nil, nil, nil
	l.n--
}

// level is one priority level: unexpired requests first, then those a DELAY policy pushed back.
type level[T, R any] struct {
	prio     uint64
	policy   QueuePolicy
	keep     bool // the default level or one with its own policy; others are dropped when they empty
	reserved int  // slots admitted (Batcher.Reserve) and not yet submitted or released
	main     list[T, R]
	delayed  list[T, R]
}

func (l *level[T, R]) size() int { return l.main.n + l.delayed.n + l.reserved }

// queue holds every waiting request, walked level 1 first, FIFO within a level.
type queue[T, R any] struct {
	levels    []*level[T, R] // ascending priority number; created on first use, kept afterwards
	count     int            // requests queued
	deadlines []*node[T, R]  // min-heap on deadline
}

// levelFor returns the level for priority p, creating it on first use.
func (q *queue[T, R]) levelFor(p uint64, policy QueuePolicy, keep bool) *level[T, R] {
	i := 0
	for ; i < len(q.levels); i++ {
		if q.levels[i].prio == p {
			return q.levels[i]
		}
		if q.levels[i].prio > p {
			break
		}
	}
	l := &level[T, R]{prio: p, policy: policy, keep: keep}
	q.levels = append(q.levels, nil)
	copy(q.levels[i+1:], q.levels[i:])
	q.levels[i] = l
	return l
}

func (q *queue[T, R]) push(n *node[T, R]) {
	n.lvl.main.pushBack(n)
	n.state = stQueued
	q.count++
	if !n.deadline.IsZero() {
		q.heapPush(n)
	}
}

// remove takes n out of its list and out of the deadline heap.
func (q *queue[T, R]) remove(n *node[T, R]) {
	if n.heapIdx >= 0 {
		q.heapRemove(n.heapIdx)
	}
	q.unlink(n)
}

// unlink takes n out of its list, and drops its level if that empties a level created on demand (so that
// clients sending many distinct priorities cannot grow the queue's level list).
func (q *queue[T, R]) unlink(n *node[T, R]) {
	n.list.remove(n)
	q.count--
	q.dropIfEmpty(n.lvl)
}

// dropIfEmpty drops l if it was created on demand and holds nothing, reserved slots included.
func (q *queue[T, R]) dropIfEmpty(l *level[T, R]) {
	if l.keep || l.size() > 0 {
		return
	}
	for i, x := range q.levels {
		if x == l {
			q.levels = slices.Delete(q.levels, i, i+1) // zeroes the freed tail slot
			return
		}
	}
}

// first is the request at the head of the queue, nil when it is empty.
func (q *queue[T, R]) first() *node[T, R] {
	for _, l := range q.levels {
		if l.main.head != nil {
			return l.main.head
		}
		if l.delayed.head != nil {
			return l.delayed.head
		}
	}
	return nil
}

// nearestDeadline is the earliest queue deadline, zero when none.
func (q *queue[T, R]) nearestDeadline() time.Time {
	if len(q.deadlines) == 0 {
		return time.Time{}
	}
	return q.deadlines[0].deadline
}

// expire applies the queue policy to every request whose deadline is not after now: REJECT takes it out and
// hands it to reject; DELAY moves it to the end of its level's delayed list (where it has no deadline).
func (q *queue[T, R]) expire(now time.Time, reject func(*node[T, R])) {
	for len(q.deadlines) > 0 && !q.deadlines[0].deadline.After(now) {
		n := q.deadlines[0]
		q.heapRemove(0)
		if n.lvl.policy.TimeoutAction == Delay {
			n.list.remove(n)
			n.lvl.delayed.pushBack(n)
			continue
		}
		q.unlink(n)
		reject(n)
	}
}

// shape is what the formation rules need to know about the model.
type shape struct {
	maxBatch int
	maxPref  int
	pref     []bool // pref[s]: s is a preferred batch size
	delay    time.Duration
}

// payload is the part of a batch already formed before the walk (docs/triton-batcher-and-kserve-v2.md §1.3 "P").
type payload struct {
	units     int
	key       string
	saturated bool
}

// decision is the outcome of one walk: take the first n gathered requests now, or wait until wakeAt.
type decision struct {
	n         int
	units     int
	saturated bool
	wakeAt    time.Time // when nothing is taken and the batch waits for max_queue_delay
}

// form walks the queue in order and applies Triton's GetDynamicBatch rules (docs/triton-batcher-and-kserve-v2.md §1.3) for a batch that
// already holds p. It appends the walked requests to *gathered (reused between calls) and says how many of
// them leave now. flush (shutting down) treats the queue delay as exceeded.
func (q *queue[T, R]) form(s *shape, p payload, now time.Time, flush bool, gathered *[]*node[T, R]) decision {
	g := (*gathered)[:0]
	defer func() { *gathered = g }()
	pending, bestUnits, bestN := 0, 0, 0
	sendNow, saturated, prefHit := false, false, false
	ref := p.key
	var oldest time.Time
walk:
	for _, l := range q.levels {
		for _, lst := range [2]*list[T, R]{&l.main, &l.delayed} {
			for r := lst.head; r != nil; r = r.next {
				b := r.units
				if p.units+pending == 0 {
					ref = r.key // the first request starts the batch, whatever its size
				} else {
					if p.units+pending+b > s.maxPref && bestUnits == 0 {
						bestUnits, bestN, saturated = pending, len(g), true
					}
					if p.units+pending+b > s.maxBatch {
						sendNow = true
						break walk
					}
					if r.key != ref {
						saturated, sendNow = true, true
						break walk
					}
				}
				g = append(g, r)
				pending += b
				if oldest.IsZero() || r.queued.Before(oldest) {
					oldest = r.queued
				}
				if p.units+pending < len(s.pref) && s.pref[p.units+pending] {
					bestUnits, bestN, prefHit = pending, len(g), true
				}
			}
		}
	}
	exceeded := flush || (s.delay > 0 && now.Sub(oldest) >= s.delay)
	switch {
	case p.units > 0 && s.pref[p.units] && !exceeded && !prefHit:
		// A formed batch at a preferred size grows only to a larger preferred size until the delay passes.
		// Triton's walk marks the cut before a request that crosses the largest preferred size with the
		// count gathered so far, which is 0 here and reads as "no cut": it then takes what lies past it.
		return decision{}
	case bestUnits != 0 && !exceeded:
		return decision{n: bestN, units: bestUnits, saturated: saturated || s.delay == 0}
	case len(g) == 0:
		return decision{}
	case sendNow || p.units+pending >= s.maxPref:
		return decision{n: len(g), units: pending, saturated: true}
	case exceeded || s.delay == 0:
		return decision{n: len(g), units: pending, saturated: saturated}
	case p.units > 0 && !p.saturated && !(p.units < len(s.pref) && s.pref[p.units]):
		// A formed batch that is not at a preferred size takes what is there rather than wait.
		return decision{n: len(g), units: pending, saturated: saturated}
	}
	return decision{wakeAt: oldest.Add(s.delay)}
}

// Deadline heap (container/heap without the interface boxing).

func (q *queue[T, R]) heapLess(i, j int) bool {
	return q.deadlines[i].deadline.Before(q.deadlines[j].deadline)
}

func (q *queue[T, R]) heapSwap(i, j int) {
	h := q.deadlines
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}

func (q *queue[T, R]) heapPush(n *node[T, R]) {
	n.heapIdx = len(q.deadlines)
	q.deadlines = append(q.deadlines, n)
	q.heapUp(n.heapIdx)
}

func (q *queue[T, R]) heapRemove(i int) {
	last := len(q.deadlines) - 1
	n := q.deadlines[i]
	if i != last {
		q.heapSwap(i, last)
	}
	q.deadlines[last] = nil
	q.deadlines = q.deadlines[:last]
	n.heapIdx = -1
	if i != last {
		if !q.heapDown(i) {
			q.heapUp(i)
		}
	}
}

func (q *queue[T, R]) heapUp(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !q.heapLess(j, i) {
			break
		}
		q.heapSwap(i, j)
		j = i
	}
}

func (q *queue[T, R]) heapDown(i0 int) bool {
	i, n := i0, len(q.deadlines)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && q.heapLess(r, l) {
			j = r
		}
		if !q.heapLess(j, i) {
			break
		}
		q.heapSwap(i, j)
		i = j
	}
	return i > i0
}

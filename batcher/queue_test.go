package batcher

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// These tests drive the formation walk (queue.form) directly with a fixed clock: no goroutines, no timing.

type qreq struct {
	size  int
	key   string
	prio  uint64
	age   time.Duration // how long it has been queued
	delay bool          // already moved to the delayed list by a DELAY timeout
}

// formAll forms batches from the queue until the walk says wait (or the queue is empty), and returns the
// sizes of the batches that left now plus the units still waiting.
func formAll(s *shape, p payload, reqs []qreq, now time.Time) (batches []int, waiting int, wakeAt time.Time) {
	var q queue[int, int]
	for i, r := range reqs {
		lvl := q.levelFor(r.prio, QueuePolicy{}, true)
		n := &node[int, int]{value: i, units: max(1, r.size), key: r.key, queued: now.Add(-r.age), lvl: lvl, heapIdx: -1}
		q.push(n)
		if r.delay {
			n.list.remove(n)
			lvl.delayed.pushBack(n)
		}
	}
	var g []*node[int, int]
	defer func() {
		for _, l := range q.levels {
			for n := l.main.head; n != nil; n = n.next {
				waiting += n.units
			}
			for n := l.delayed.head; n != nil; n = n.next {
				waiting += n.units
			}
		}
	}()
	for q.count > 0 {
		d := q.form(s, p, now, false, &g)
		if d.n == 0 {
			return batches, 0, d.wakeAt
		}
		units := 0
		for _, n := range g[:d.n] {
			units += n.units
			q.remove(n)
		}
		if units != d.units {
			panic(fmt.Sprintf("decision units %d != taken units %d", d.units, units))
		}
		batches = append(batches, units)
		if p.units > 0 {
			break // growing a payload happens once
		}
	}
	return batches, 0, time.Time{}
}

func mkShape(maxBatch int, pref []int, delay time.Duration) *shape {
	s := &shape{maxBatch: maxBatch, pref: make([]bool, maxBatch+1), delay: delay}
	for _, p := range pref {
		s.pref[p] = true
		s.maxPref = max(s.maxPref, p)
	}
	if len(pref) == 0 {
		s.maxPref = maxBatch
		s.pref[maxBatch] = true
	}
	return s
}

func sizes(ns ...int) []qreq {
	out := make([]qreq, len(ns))
	for i, n := range ns {
		out[i] = qreq{size: n}
	}
	return out
}

func TestFormRules(t *testing.T) {
	const D = 10 * time.Second
	now := time.Unix(1000, 0)
	p26 := mkShape(8, []int{2, 6}, D)
	p46zero := mkShape(8, []int{4, 6}, 0)
	cases := []struct {
		name    string
		s       *shape
		p       payload
		reqs    []qreq
		batches []int // batches that leave now, in order
		waiting int   // units left waiting for the delay
	}{
		// qa/L0_batcher batcher_test.py, max 8, preferred [2,6], delay 10 s.
		{"static preferred 2", p26, payload{}, sizes(2), []int{2}, 0},
		{"static preferred 6", p26, payload{}, sizes(6), []int{6}, 0},
		{"static lt any preferred waits", p26, payload{}, sizes(1), nil, 1},
		{"static not preferred waits", p26, payload{}, sizes(3), nil, 3},
		{"static gt max preferred runs", p26, payload{}, sizes(7), []int{7}, 0},
		{"first request larger than max preferred is accepted", p26, payload{}, sizes(8), []int{8}, 0},
		{"sum crossing max preferred cuts before", p26, payload{}, sizes(3, 4), []int{3}, 4},
		{"use biggest preferred", p26, payload{}, sizes(1, 1, 1, 1, 1, 1), []int{6}, 0},
		{"use best preferred", p26, payload{}, sizes(1, 1, 1), []int{2}, 1},
		{"largest reachable preferred wins", p26, payload{}, sizes(1, 1, 2, 2, 1), []int{6}, 1},
		{"crossing cut is not a preferred size", p26, payload{}, sizes(5, 3), []int{5}, 3},
		{"past max batch sends now", p26, payload{}, sizes(7, 2), []int{7, 2}, 0},
		{"delayed use max batch", p26, payload{}, []qreq{{size: 3, age: D + time.Millisecond}, {size: 4, age: D + time.Millisecond}, {size: 1}}, []int{8}, 0},
		{"delay exceeded ignores preferred", p26, payload{}, []qreq{{size: 1, age: D}, {size: 1}, {size: 1}}, []int{3}, 0},
		{"delay exceeded still respects max", p26, payload{}, []qreq{{size: 5, age: D}, {size: 2}, {size: 2}}, []int{7, 2}, 0},
		// PREFERRED_BATCH_ONLY: preferred [4,6], delay 0.
		{"delay0 4", p46zero, payload{}, sizes(1, 1, 1, 1), []int{4}, 0},
		{"delay0 5", p46zero, payload{}, sizes(1, 1, 1, 1, 1), []int{4, 1}, 0},
		{"delay0 7", p46zero, payload{}, sizes(1, 1, 1, 1, 1, 1, 1), []int{6, 1}, 0},
		{"delay0 3", p46zero, payload{}, sizes(1, 1, 1), []int{3}, 0},
		// Shapes (§1.6).
		{"different shape closes at once", p26, payload{}, []qreq{{size: 1, key: "a"}, {size: 1, key: "b"}}, []int{1}, 1},
		{"preferred different shape", p26, payload{}, []qreq{{size: 1, key: "a"}, {size: 3, key: "a"}, {size: 1, key: "b"}, {size: 5, key: "b"}}, []int{4, 6}, 0},
		{"not preferred different shape", p26, payload{}, []qreq{{size: 1, key: "a"}, {size: 3, key: "a"}, {size: 1, key: "b"}}, []int{4}, 1},
		{"no skipping ahead for a matching shape", p26, payload{}, []qreq{{size: 1, key: "a"}, {size: 1, key: "b"}, {size: 1, key: "a"}}, []int{1, 1}, 1},
		{"same key batches (ragged allowed)", p26, payload{}, []qreq{{size: 1, key: "x"}, {size: 1, key: "x"}}, []int{2}, 0},
		// Priority and DELAY (§1.7, §1.8), preferred [4,8].
		{"priority 1 ahead", mkShape(8, []int{4, 8}, D), payload{}, []qreq{{size: 2, prio: 2}, {size: 1, prio: 2}, {size: 2, prio: 1}}, []int{4}, 1},
		{"delayed requests come last in their level", mkShape(8, []int{4, 8}, D), payload{}, []qreq{{size: 1, delay: true, age: time.Second}, {size: 2}, {size: 2}}, []int{4}, 1},
		// No preferred list: defaults to max.
		{"default preferred is max", mkShape(4, nil, D), payload{}, sizes(1, 1, 1, 1, 1), []int{4}, 1},
		// A formed batch that has not started (P > 0).
		{"grow: payload not preferred folds in what is there", p26, payload{units: 3}, sizes(1), []int{1}, 0},
		{"grow: payload at preferred size waits", p26, payload{units: 2}, sizes(1), nil, 1},
		{"grow: saturated payload at odd size waits", p26, payload{units: 3, saturated: true}, sizes(1), nil, 1},
		{"grow: reaches preferred", p26, payload{units: 2}, sizes(2, 2), []int{4}, 0},
		{"grow: up to max preferred only", p26, payload{units: 5}, sizes(1, 1), []int{1}, 1},
		{"grow: shape must match payload", p26, payload{units: 1, key: "a"}, []qreq{{size: 1, key: "b"}}, nil, 1},
		// A payload at a preferred size leaves as it is unless the delay passed (issue 14, edge defect).
		{"grow: payload at the largest preferred size leaves as it is", mkShape(8, []int{4}, D), payload{units: 4}, sizes(1), nil, 1},
		{"grow: payload at a preferred size is not carried past the largest", p26, payload{units: 2}, sizes(5), nil, 5},
		{"grow: payload at a preferred size is not carried past max batch", mkShape(8, []int{4}, D), payload{units: 4}, sizes(1, 8), nil, 9},
		{"grow: delay exceeded still grows a preferred payload", mkShape(8, []int{4}, D), payload{units: 4}, []qreq{{size: 1, age: D}}, []int{1}, 0},
		{"grow: payload not at a preferred size still folds in past the largest", p26, payload{units: 3}, sizes(4), []int{4}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, waiting, wakeAt := formAll(c.s, c.p, c.reqs, now)
			if !slices.Equal(got, c.batches) || waiting != c.waiting {
				t.Fatalf("batches %v waiting %d; want %v waiting %d", got, waiting, c.batches, c.waiting)
			}
			if waiting > 0 && c.s.delay > 0 && c.p.units == 0 && !wakeAt.After(now) {
				t.Fatalf("waiting with wakeAt %v not after now", wakeAt)
			}
		})
	}
}

func TestFormWakeAtIsOldestPlusDelay(t *testing.T) {
	now := time.Unix(1000, 0)
	s := mkShape(8, []int{6}, 100*time.Millisecond)
	_, waiting, wakeAt := formAll(s, payload{}, []qreq{{size: 1, age: 30 * time.Millisecond}, {size: 1, age: 10 * time.Millisecond}}, now)
	if waiting != 2 {
		t.Fatalf("waiting %d, want 2", waiting)
	}
	if want := now.Add(70 * time.Millisecond); !wakeAt.Equal(want) {
		t.Fatalf("wakeAt %v, want %v", wakeAt, want)
	}
}

func TestDeadlineHeap(t *testing.T) {
	var q queue[int, int]
	lvl := q.levelFor(0, QueuePolicy{}, true)
	base := time.Unix(0, 0)
	var nodes []*node[int, int]
	for i, ms := range []int{50, 10, 40, 30, 20, 60} {
		n := &node[int, int]{value: i, units: 1, lvl: lvl, heapIdx: -1, deadline: base.Add(time.Duration(ms) * time.Millisecond)}
		q.push(n)
		nodes = append(nodes, n)
	}
	q.remove(nodes[2]) // 40 ms leaves (cancelled)
	var got []int
	q.expire(base.Add(time.Second), func(n *node[int, int]) { got = append(got, int(n.deadline.Sub(base)/time.Millisecond)) })
	if want := []int{10, 20, 30, 50, 60}; !slices.Equal(got, want) {
		t.Fatalf("expired in order %v, want %v", got, want)
	}
	if q.count != 0 || len(q.deadlines) != 0 {
		t.Fatalf("queue not empty: count %d heap %d", q.count, len(q.deadlines))
	}
}

func TestOnDemandLevelsAreDropped(t *testing.T) {
	var q queue[int, int]
	keep := q.levelFor(2, QueuePolicy{}, true)
	var nodes []*node[int, int]
	for p := uint64(1); p <= 5; p++ {
		l := keep
		if p != 2 {
			l = q.levelFor(p, QueuePolicy{}, false)
		}
		n := &node[int, int]{units: 1, lvl: l, heapIdx: -1}
		q.push(n)
		nodes = append(nodes, n)
	}
	if len(q.levels) != 5 {
		t.Fatalf("%d levels, want 5", len(q.levels))
	}
	for _, n := range nodes {
		q.remove(n)
	}
	if len(q.levels) != 1 || q.levels[0] != keep {
		t.Fatalf("levels left %d, want only the kept one", len(q.levels))
	}
}

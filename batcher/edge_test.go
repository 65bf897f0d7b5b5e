package batcher

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"
)

// The edge defect of issue 14, on a clock that moves only when the test moves it: a batch formed at a
// preferred size must leave as it is while the delay has not passed, and not take a later request that would
// carry it past the largest preferred size before its instance starts it.

type timedStep struct {
	at   time.Duration // clock time of the submission
	size int
	prio uint64
}

func TestPreferredBatchLeavesAsItIs(t *testing.T) {
	const delay = 2 * time.Second
	base := Config{MaxBatchSize: 8, PreferredBatchSizes: []int{4}, MaxQueueDelay: delay, Instances: 1}
	prio := base
	prio.PriorityLevels, prio.DefaultPriorityLevel = 2, 2
	delayPolicy := base
	delayPolicy.DefaultQueuePolicy = QueuePolicy{TimeoutAction: Delay, DefaultTimeout: 50 * time.Millisecond}
	cases := []struct {
		name    string
		cfg     Config
		steps   []timedStep
		first   []int         // ids of the batch of 4 that leaves at once
		firstAt time.Duration // when it leaves
		later   time.Duration // when the clock has moved past the delay of the request left behind
	}{
		// bs 2 at 0, bs 1 at 0.1 s, bs 2 at priority 1 at 0.3 s: {4:1, 1:1}, not {5:1}.
		{"priority", prio, []timedStep{{0, 2, 0}, {100 * time.Millisecond, 1, 0}, {300 * time.Millisecond, 2, 1}}, []int{2, 0}, 300 * time.Millisecond, 2100 * time.Millisecond},
		// A bs 1 whose DELAY timeout passed, then two bs 2: 4 + 1, not 5.
		{"DELAY policy", delayPolicy, []timedStep{{0, 1, 0}, {150 * time.Millisecond, 2, 0}, {150 * time.Millisecond, 2, 0}}, []int{1, 2}, 150 * time.Millisecond, 2000 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := newFakeClock()
			m := &fakeModel{clock: clk.now}
			b, err := newBatcher(c.cfg, m.exec, hooks[req]{now: clk.now})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Stop(context.Background())
			outs := make([]<-chan outcome, len(c.steps))
			for i, s := range c.steps {
				clk.set(s.at)
				outs[i] = submitAsync(context.Background(), b, Item[req]{Value: req{id: i, size: s.size}, Size: s.size, Priority: s.prio})
				if i < len(c.steps)-1 {
					waitPending(t, b, i+1) // queue order = step order
				}
			}
			for _, id := range c.first {
				o := get(t, outs[id])
				if o.err != nil || o.res != id*10 {
					t.Fatalf("request %d: %d %v", id, o.res, o.err)
				}
				outs[id] = replay(o)
			}
			// Nothing else can leave before the clock moves: the request left behind has not waited the delay.
			if got := m.compositions(); !slices.EqualFunc(got, [][]int{c.first}, slices.Equal) || b.Stats().Pending != 1 {
				t.Fatalf("batches %v with %d pending; want only %v, one request left waiting", got, b.Stats().Pending, c.first)
			}
			clk.set(c.later)
			b.mu.Lock()
			b.nudge()
			b.mu.Unlock()
			for i := range outs {
				if o := get(t, outs[i]); o.err != nil || o.res != i*10 {
					t.Fatalf("request %d: %d %v", i, o.res, o.err)
				}
			}
			if got := m.sizes(); !maps.Equal(got, map[int]int{4: 1, 1: 1}) {
				t.Fatalf("batches %v (%v); want {4:1, 1:1}", got, m.compositions())
			}
			starts := m.starts()
			if !starts[0].Equal(clk.at(c.firstAt)) || starts[1].Before(clk.at(delay)) {
				t.Fatalf("batches started at %v; want the 4 at %v and the 1 after the %v delay", offsets(clk, starts), c.firstAt, delay)
			}
		})
	}
}

func offsets(c *fakeClock, ts []time.Time) string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Sub(c.at(0)).String())
	}
	return fmt.Sprint(out)
}

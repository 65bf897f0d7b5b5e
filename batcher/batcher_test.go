package batcher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"testing"
	"time"
)

// The end-to-end cases of docs/triton-batcher-and-kserve-v2.md §1.3–§1.9 (qa/L0_batcher, qa/L0_model_queue), with Triton's 10 s delays
// scaled down to D. "fast" means answered well before D; "delayed" means answered only once D has passed.

const D = time.Second

type expect int

const (
	fast expect = iota + 1
	delayed
	rejected // ErrTimeout
	full     // ErrQueueFull
	ok       // success, no timing claim
)

func (e expect) String() string {
	return [...]string{"?", "fast", "delayed", "rejected", "full", "ok"}[e]
}

type step struct {
	size    int
	prio    uint64
	key     string
	timeout time.Duration
	gap     time.Duration // sleep before sending
	seq     bool          // wait for this request's answer before the next step
	want    expect
}

type e2eCase struct {
	name  string
	cfg   Config
	slow  time.Duration // model time per batch
	steps []step
	want  map[int]int // batch size -> executions
}

func bs(size int, want expect) step { return step{size: size, want: want} }

func TestTritonCases(t *testing.T) {
	p26 := func(hold int) Config {
		return Config{MaxBatchSize: 8, PreferredBatchSizes: []int{2, 6}, MaxQueueDelay: D, Instances: 1, HoldUntil: hold}
	}
	p46 := func(hold int) Config {
		return Config{MaxBatchSize: 8, PreferredBatchSizes: []int{4, 6}, Instances: 1, HoldUntil: hold}
	}
	prio := Config{MaxBatchSize: 8, PreferredBatchSizes: []int{4, 8}, MaxQueueDelay: D, Instances: 1,
		PriorityLevels: 2, DefaultPriorityLevel: 2}
	maxPrio := prio
	maxPrio.PriorityLevels, maxPrio.DefaultPriorityLevel = math.MaxUint64, 1<<32+1
	policy := func(a TimeoutAction) Config {
		return Config{MaxBatchSize: 8, PreferredBatchSizes: []int{4, 8}, MaxQueueDelay: D, Instances: 1,
			DefaultQueuePolicy: QueuePolicy{TimeoutAction: a, DefaultTimeout: 50 * time.Millisecond}}
	}
	ones := func(n int, want expect) []step {
		s := make([]step, n)
		for i := range s {
			s[i] = bs(1, want)
		}
		return s
	}
	cases := []e2eCase{
		{name: "static_batch_preferred", cfg: p26(0), steps: []step{{size: 2, seq: true, want: fast}, {size: 6, seq: true, want: fast}}, want: map[int]int{2: 1, 6: 1}},
		{name: "static_batch_lt_any_preferred", cfg: p26(0), steps: []step{bs(1, delayed)}, want: map[int]int{1: 1}},
		{name: "static_batch_not_preferred", cfg: p26(0), steps: []step{bs(3, delayed)}, want: map[int]int{3: 1}},
		{name: "static_batch_gt_max_preferred", cfg: p26(0), steps: []step{bs(7, fast)}, want: map[int]int{7: 1}},
		{name: "multi_batch_sum_gt_max_preferred", cfg: p26(2), steps: []step{bs(3, fast), bs(4, delayed)}, want: map[int]int{3: 1, 4: 1}},
		{name: "multi_batch_delayed_use_max_batch", cfg: p26(3), steps: []step{bs(3, delayed), bs(4, delayed), {size: 1, gap: D + 50*time.Millisecond, want: fast}}, want: map[int]int{8: 1}},
		{name: "multi_batch_use_biggest_preferred", cfg: p26(6), steps: ones(6, fast), want: map[int]int{6: 1}},
		{name: "multi_batch_use_best_preferred", cfg: p26(3), steps: []step{bs(1, fast), bs(1, fast), bs(1, delayed)}, want: map[int]int{2: 1, 1: 1}},
		{name: "preferred_only_4", cfg: p46(4), steps: ones(4, fast), want: map[int]int{4: 1}},
		{name: "preferred_only_5", cfg: p46(5), steps: ones(5, fast), want: map[int]int{4: 1, 1: 1}},
		{name: "preferred_only_7", cfg: p46(7), steps: ones(7, fast), want: map[int]int{6: 1, 1: 1}},
		{name: "preferred_only_3", cfg: p46(3), steps: ones(3, fast), want: map[int]int{3: 1}},
		{name: "multi_batch_different_shape", cfg: p26(2), steps: []step{{size: 1, key: "16", want: fast}, {size: 1, key: "8", want: delayed}}, want: map[int]int{1: 2}},
		{name: "multi_batch_preferred_different_shape", cfg: p26(4), steps: []step{{size: 1, key: "a", want: fast}, {size: 3, key: "a", want: fast}, {size: 1, key: "b", want: fast}, {size: 5, key: "b", want: fast}}, want: map[int]int{4: 1, 6: 1}},
		{name: "multi_batch_not_preferred_different_shape", cfg: p26(3), steps: []step{{size: 1, key: "a", want: fast}, {size: 3, key: "a", want: fast}, {size: 1, key: "b", want: delayed}}, want: map[int]int{4: 1, 1: 1}},
		{name: "multi_batch_different_shape_allow_ragged", cfg: p26(2), steps: []step{bs(1, fast), bs(1, fast)}, want: map[int]int{2: 1}},
		// test_priority_levels: the priority-1 bs 2 arrives later and joins the first bs 2 in a batch of 4.
		{name: "priority_levels", cfg: prio, steps: []step{bs(2, fast), bs(1, delayed), {size: 2, prio: 1, gap: D / 3, want: fast}}, want: map[int]int{4: 1, 1: 1}},
		{name: "max_priority_levels", cfg: maxPrio, steps: []step{bs(2, fast), bs(1, delayed), {size: 2, prio: 1, gap: D / 3, want: fast}}, want: map[int]int{4: 1, 1: 1}},
		// test_policy_delay / test_policy_reject: bs 1 times out after 50 ms; two bs 2 arrive 100 ms later.
		{name: "policy_delay", cfg: policy(Delay), steps: []step{bs(1, delayed), {size: 2, gap: 100 * time.Millisecond, want: fast}, bs(2, fast)}, want: map[int]int{4: 1, 1: 1}},
		{name: "policy_reject", cfg: policy(Reject), steps: []step{bs(1, rejected), {size: 2, gap: 100 * time.Millisecond, want: fast}, bs(2, fast)}, want: map[int]int{4: 1}},
		// test_max_queue_size: a bs 8 runs for D; 10 bs 1 arrive; the queue holds 8 of them.
		{name: "max_queue_size", slow: D / 2,
			cfg:   Config{MaxBatchSize: 8, PreferredBatchSizes: []int{4, 8}, MaxQueueDelay: D, Instances: 1, DefaultQueuePolicy: QueuePolicy{MaxQueueSize: 8}},
			steps: append([]step{{size: 8, want: ok}}, append(ones(8, ok), bs(1, full), bs(1, full))...), want: map[int]int{8: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runCase(t, c)
		})
	}
}

func runCase(t *testing.T, c e2eCase) {
	m := &fakeModel{slow: []time.Duration{c.slow}}
	b := mustNew(t, c.cfg, m)
	ctx := context.Background()
	seen := func() int {
		s := b.Stats()
		n := s.Pending + int(s.Fail.Count)
		for _, bt := range m.compositions() {
			n += len(bt)
		}
		return n
	}
	outs := make([]<-chan outcome, len(c.steps))
	for i, s := range c.steps {
		time.Sleep(s.gap)
		outs[i] = submitAsync(ctx, b, Item[req]{Value: req{id: i, size: s.size}, Size: s.size, Priority: s.prio, ShapeKey: s.key, Timeout: s.timeout})
		if s.seq {
			o := get(t, outs[i])
			outs[i] = replay(o)
		}
		// Keep queue order = step order: the next request goes in only once this one is accounted for.
		waitFor(t, fmt.Sprintf("request %d accounted for", i), func() bool { return seen() >= i+1 })
	}
	got := make([]outcome, len(c.steps))
	for i := range c.steps {
		got[i] = get(t, outs[i])
	}
	for i, s := range c.steps {
		o := got[i]
		took := o.took()
		// "fast" is measured from the last submission before the answer: a request held until others
		// arrive (HoldUntil, a later priority-1 request) cannot be answered before they are sent.
		lastSent := o.sent
		for _, p := range got {
			if p.sent.After(lastSent) && p.sent.Before(o.at) {
				lastSent = p.sent
			}
		}
		switch s.want {
		case fast:
			if o.err != nil || o.res != i*10 || o.at.Sub(lastSent) >= D/2 {
				t.Errorf("request %d: res %d err %v after %v (%v after the last submission); want fast success", i, o.res, o.err, took, o.at.Sub(lastSent))
			}
		case delayed:
			if o.err != nil || o.res != i*10 || took < D-10*time.Millisecond {
				t.Errorf("request %d: res %d err %v after %v; want success after the %v delay", i, o.res, o.err, took, D)
			}
		case rejected:
			if !errors.Is(o.err, ErrTimeout) || o.err.Error() != "Request timeout expired" {
				t.Errorf("request %d: err %v; want %q", i, o.err, ErrTimeout)
			}
		case ok:
			if o.err != nil || o.res != i*10 {
				t.Errorf("request %d: res %d err %v; want success", i, o.res, o.err)
			}
		case full:
			if !errors.Is(o.err, ErrQueueFull) || took > D/2 {
				t.Errorf("request %d: err %v after %v; want %q at once", i, o.err, took, ErrQueueFull)
			}
		}
	}
	if got := m.sizes(); !maps.Equal(got, c.want) {
		t.Errorf("batches %v (%v); want %v", got, m.compositions(), c.want)
	}
	st := b.Stats()
	if got := st.Batches; len(got) != len(c.want) {
		t.Errorf("stats batches %v; want sizes %v", got, c.want)
	}
	for size, n := range c.want {
		if st.Batches[size].Executions != uint64(n) {
			t.Errorf("stats batch %d: %d executions, want %d", size, st.Batches[size].Executions, n)
		}
	}
}

func replay(o outcome) <-chan outcome {
	ch := make(chan outcome, 1)
	ch <- o
	return ch
}

package batcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The early hand-off: an instance's next batch is formed, and staged by the executor, while its current batch
// runs; it may still grow until the instance starts it.

// stagingModel is an Executor that records its calls and checks the Executor contract as it goes.
type stagingModel struct {
	mu        sync.Mutex
	events    []string       // "stage i/s from [ids]" and "exec i/s [ids]", in call order
	staged    map[[2]int]int // (instance, slot) -> values staged for the run in that slot
	executing map[int]int    // instance -> slot executing, absent when none
	violation []string       // broken contract
	gate      chan struct{}  // when non-nil, each Exec waits for a token (or ctx)
	stageSeen chan []int     // when non-nil, receives the ids of each Stage call
	failStage func(req) bool // when non-nil, Stage fails for a batch holding such a request
	delay     func(n int) time.Duration
}

func newStagingModel() *stagingModel {
	return &stagingModel{staged: map[[2]int]int{}, executing: map[int]int{}}
}

func ids(batch []req) []int {
	out := make([]int, len(batch))
	for i, r := range batch {
		out[i] = r.id
	}
	return out
}

func (m *stagingModel) Stage(_ context.Context, r Run, batch []req) error {
	m.mu.Lock()
	key := [2]int{r.Instance, r.Slot}
	m.events = append(m.events, fmt.Sprintf("stage %d/%d from %d %v", r.Instance, r.Slot, r.Staged, ids(batch)))
	if got := m.staged[key]; got != r.Staged {
		m.violation = append(m.violation, fmt.Sprintf("stage %v: Staged %d, but %d values were staged before", key, r.Staged, got))
	}
	if s, ok := m.executing[r.Instance]; ok && s == r.Slot {
		m.violation = append(m.violation, fmt.Sprintf("stage %v while the same slot executes", key))
	}
	m.staged[key] = len(batch)
	fail := m.failStage != nil && slices.ContainsFunc(batch, m.failStage)
	m.mu.Unlock()
	if m.stageSeen != nil {
		m.stageSeen <- ids(batch)
	}
	if fail {
		return errors.New("pinned memory exhausted")
	}
	return nil
}

func (m *stagingModel) Exec(ctx context.Context, r Run, batch []req) ([]int, Timing, error) {
	m.mu.Lock()
	key := [2]int{r.Instance, r.Slot}
	m.events = append(m.events, fmt.Sprintf("exec %d/%d %v", r.Instance, r.Slot, ids(batch)))
	if got := m.staged[key]; got != len(batch) {
		m.violation = append(m.violation, fmt.Sprintf("exec %v of %d values, %d staged", key, len(batch), got))
	}
	if _, busy := m.executing[r.Instance]; busy {
		m.violation = append(m.violation, fmt.Sprintf("exec %v while the instance executes", key))
	}
	m.executing[r.Instance] = r.Slot
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.executing, r.Instance)
		m.staged[key] = 0 // the next run in this slot starts from nothing
		m.mu.Unlock()
	}()
	if m.gate != nil {
		select {
		case <-m.gate:
		case <-ctx.Done():
			return nil, Timing{}, ctx.Err()
		}
	}
	if m.delay != nil {
		time.Sleep(m.delay(len(batch)))
	}
	out := make([]int, len(batch))
	for i, q := range batch {
		out[i] = q.id * 10
	}
	return out, Timing{}, nil
}

func (m *stagingModel) check(t *testing.T) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.violation) > 0 {
		t.Fatalf("Executor contract broken: %v\nevents %v", m.violation, m.events)
	}
}

func mustNewStaged(t *testing.T, cfg Config, m *stagingModel) *Batcher[req, int] {
	t.Helper()
	b, err := NewStaged[req, int](cfg, m)
	if err != nil {
		t.Fatalf("NewStaged: %v", err)
	}
	t.Cleanup(func() {
		if m.gate != nil {
			close(m.gate)
		}
		_ = b.Stop(context.Background())
	})
	return b
}

// While batch 0 runs, request 1 is staged at once in the other slot; requests 2 and 3, arriving after it was
// staged, join it when the instance starts it and are staged then, just before it runs.
func TestStagedWhileRunning(t *testing.T) {
	m := newStagingModel()
	m.gate, m.stageSeen = make(chan struct{}), make(chan []int, 8)
	b := mustNewStaged(t, Config{MaxBatchSize: 4, Instances: 1}, m)
	outs := []<-chan outcome{submitAsync(context.Background(), b, Item[req]{Value: req{id: 0}})}
	if got := <-m.stageSeen; !slices.Equal(got, []int{0}) {
		t.Fatalf("first Stage %v", got)
	}
	outs = append(outs, submitAsync(context.Background(), b, Item[req]{Value: req{id: 1}}))
	select {
	case got := <-m.stageSeen:
		if !slices.Equal(got, []int{1}) {
			t.Fatalf("Stage while batch 0 runs got %v, want [1]", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request 1 was not staged while batch 0 ran")
	}
	outs = append(outs, submitAsync(context.Background(), b, Item[req]{Value: req{id: 2}}))
	waitPending(t, b, 2) // the staged request and this one
	outs = append(outs, submitAsync(context.Background(), b, Item[req]{Value: req{id: 3}}))
	waitPending(t, b, 3)
	m.gate <- struct{}{}
	m.gate <- struct{}{}
	for i, ch := range outs {
		if o := get(t, ch); o.err != nil || o.res != i*10 {
			t.Fatalf("request %d: %d %v", i, o.res, o.err)
		}
	}
	m.check(t)
	want := []string{"stage 0/0 from 0 [0]", "exec 0/0 [0]", "stage 0/1 from 0 [1]", "stage 0/1 from 1 [1 2 3]", "exec 0/1 [1 2 3]"}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.Equal(m.events, want) {
		t.Fatalf("events %v\nwant   %v", m.events, want)
	}
}

// Where Triton would not prefetch (priority levels, queue timeouts, a queue size limit), nothing is taken
// from the queue while the instance is busy, so nothing is staged ahead: the batch is formed and staged when
// its instance is free.
func TestNoEarlyHandOffWithoutPrefetch(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"priority levels", Config{MaxBatchSize: 4, Instances: 1, PriorityLevels: 2, DefaultPriorityLevel: 1}},
		{"queue timeout", Config{MaxBatchSize: 4, Instances: 1, DefaultQueuePolicy: QueuePolicy{DefaultTimeout: time.Hour}}},
		{"queue size", Config{MaxBatchSize: 4, Instances: 1, DefaultQueuePolicy: QueuePolicy{MaxQueueSize: 8}}},
		{"timeout override", Config{MaxBatchSize: 4, Instances: 1, DefaultQueuePolicy: QueuePolicy{AllowTimeoutOverride: true}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newStagingModel()
			m.gate, m.stageSeen = make(chan struct{}), make(chan []int, 8)
			b := mustNewStaged(t, c.cfg, m)
			first := submitAsync(context.Background(), b, Item[req]{Value: req{id: 0}})
			<-m.stageSeen
			second := submitAsync(context.Background(), b, Item[req]{Value: req{id: 1}})
			waitPending(t, b, 1)
			b.mu.Lock()
			taken := b.q.count != 1 || b.insts[0].staged
			b.mu.Unlock()
			if taken {
				t.Fatal("a request left the queue while the instance was busy")
			}
			m.gate <- struct{}{}
			m.gate <- struct{}{}
			get(t, first)
			get(t, second)
			m.check(t)
		})
	}
}

// Several producers and instances with batches of mixed sizes: the Executor contract holds throughout
// (Stage before Exec with the right Staged counts, a slot never staged while it executes, one Exec per
// instance at a time), and every request is answered once.
func TestStagingContract(t *testing.T) {
	for _, c := range []struct {
		inst   int
		policy Policy
	}{{1, Triton}, {3, Triton}, {1, Adaptive}, {3, Adaptive}} {
		inst := c.inst
		t.Run(fmt.Sprintf("instances=%d/%v", inst, c.policy), func(t *testing.T) {
			m := newStagingModel()
			m.delay = func(n int) time.Duration { return time.Duration(100+20*n) * time.Microsecond }
			b := mustNewStaged(t, Config{MaxBatchSize: 8, PreferredBatchSizes: []int{4, 8}, MaxQueueDelay: 200 * time.Microsecond, Instances: inst, Policy: c.policy}, m)
			var wg sync.WaitGroup
			for p := 0; p < 12; p++ {
				wg.Add(1)
				go func(p int) {
					defer wg.Done()
					for i := 0; i < 40; i++ {
						id := p*100 + i
						size := 1 + id%3
						if res, err := b.Submit(context.Background(), Item[req]{Value: req{id: id, size: size}, Size: size}); err != nil || res != id*10 {
							t.Errorf("request %d: %d %v", id, res, err)
						}
					}
				}(p)
			}
			wg.Wait()
			m.check(t)
			m.mu.Lock()
			early := 0
			for _, e := range m.events {
				var i, s, from int
				if n, _ := fmt.Sscanf(e, "stage %d/%d from %d", &i, &s, &from); n == 3 && from == 0 {
					early++
				}
			}
			m.mu.Unlock()
			if early == 0 {
				t.Fatal("no run was staged")
			}
		})
	}
}

// A failed Stage fails its batch with the error, without Exec; the batches around it run.
func TestStageFailure(t *testing.T) {
	m := newStagingModel()
	m.failStage = func(r req) bool { return r.id == 1 }
	m.gate, m.stageSeen = make(chan struct{}), make(chan []int, 8)
	b := mustNewStaged(t, Config{MaxBatchSize: 1, Instances: 1}, m)
	first := submitAsync(context.Background(), b, Item[req]{Value: req{id: 0}})
	<-m.stageSeen
	bad := submitAsync(context.Background(), b, Item[req]{Value: req{id: 1}})
	<-m.stageSeen // staged (and failed) while batch 0 runs
	m.gate <- struct{}{}
	if o := get(t, first); o.err != nil {
		t.Fatal(o.err)
	}
	if o := get(t, bad); o.err == nil || !strings.Contains(o.err.Error(), "staging: pinned memory exhausted") {
		t.Fatalf("request in the failed stage: %v", o.err)
	}
	last := submitAsync(context.Background(), b, Item[req]{Value: req{id: 2}})
	<-m.stageSeen
	m.gate <- struct{}{}
	if o := get(t, last); o.err != nil || o.res != 20 {
		t.Fatalf("request after the failed stage: %d %v", o.res, o.err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.events {
		if e == "exec 0/1 [1]" {
			t.Fatalf("the batch whose Stage failed was executed: %v", m.events)
		}
	}
	if st := b.Stats(); st.Failures[FailBackend] != 1 || st.Success.Count != 2 {
		t.Fatalf("stats failures %v success %d", st.Failures, st.Success.Count)
	}
}

package batcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// ctxKey tags a Submit's context so that a test can tell which request an observation belongs to.
type ctxKey struct{}

// observations collects what an Observer was told, keyed by the request id carried in the context.
type observations struct {
	mu  sync.Mutex
	got map[int][]Times
}

func (o *observations) observe(ctx context.Context, t Times) {
	id, _ := ctx.Value(ctxKey{}).(int)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.got == nil {
		o.got = map[int][]Times{}
	}
	o.got[id] = append(o.got[id], t)
}

func (o *observations) of(id int) []Times {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.got[id]
}

func ordered(t Times) error {
	stamps := []time.Time{t.RequestStart, t.QueueStart, t.ComputeStart, t.ComputeInputEnd, t.ComputeOutputStart, t.ComputeEnd, t.RequestEnd}
	for i := 1; i < len(stamps); i++ {
		if stamps[i].Before(stamps[i-1]) {
			return fmt.Errorf("timestamp %d (%v) before timestamp %d (%v)", i, stamps[i], i-1, stamps[i-1])
		}
	}
	return nil
}

// Every executed request is observed once, with its own context, ordered timestamps and the durations Stats
// counts; requests that never ran are not observed.
func TestObserver(t *testing.T) {
	for _, tc := range []struct {
		name     string
		timing   Timing
		preserve bool
		fail     error
	}{
		{name: "no timing"},
		{name: "executor timing", timing: Timing{Input: 2 * time.Millisecond, Infer: 5 * time.Millisecond, Output: time.Millisecond}},
		{name: "timing longer than the call", timing: Timing{Input: time.Hour, Output: time.Hour}},
		{name: "preserve ordering", preserve: true},
		{name: "failed batch", fail: errors.New("boom")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var obs observations
			cfg := Config{MaxBatchSize: 8, PreferredBatchSizes: []int{6}, MaxQueueDelay: time.Second, Instances: 1,
				PreserveOrdering: tc.preserve, HoldUntil: 3, Observer: obs.observe}
			b, err := New(cfg, func(_ context.Context, _ int, v []req) ([]int, Timing, error) {
				time.Sleep(10 * time.Millisecond)
				return make([]int, len(v)), tc.timing, tc.fail
			})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Stop(context.Background())
			start := time.Now().Add(-50 * time.Millisecond)
			var chans []<-chan outcome
			for id := 1; id <= 3; id++ {
				ctx := context.WithValue(context.Background(), ctxKey{}, id)
				chans = append(chans, submitAsync(ctx, b, Item[req]{Value: req{id: id}, Size: id, Start: start}))
			}
			for _, ch := range chans {
				if o := get(t, ch); (o.err != nil) != (tc.fail != nil) {
					t.Fatalf("Submit: %v", o.err)
				}
			}
			st := b.Stats()
			var sumQueue, sumIn, sumInfer, sumOut, sumReq time.Duration
			for id := 1; id <= 3; id++ {
				got := obs.of(id)
				if len(got) != 1 {
					t.Fatalf("request %d observed %d times", id, len(got))
				}
				o := got[0]
				if err := ordered(o); err != nil {
					t.Errorf("request %d: %v", id, err)
				}
				if !o.RequestStart.Equal(start) || o.Size != id || o.BatchSize != 6 || o.Failed != (tc.fail != nil) {
					t.Errorf("request %d: start %v size %d batch %d failed %v", id, o.RequestStart, o.Size, o.BatchSize, o.Failed)
				}
				if o.ComputeEnd.Sub(o.ComputeStart) < 10*time.Millisecond || o.Request() < 60*time.Millisecond {
					t.Errorf("request %d: compute %v, request %v", id, o.ComputeEnd.Sub(o.ComputeStart), o.Request())
				}
				if tc.timing == (Timing{}) && (!o.ComputeInputEnd.Equal(o.ComputeStart) || !o.ComputeOutputStart.Equal(o.ComputeEnd)) {
					t.Errorf("request %d: without a Timing the whole compute is infer: %+v", id, o)
				}
				if tc.timing.Input == 2*time.Millisecond && o.ComputeInputEnd.Sub(o.ComputeStart) != 2*time.Millisecond {
					t.Errorf("request %d: input end %v after compute start, want 2ms", id, o.ComputeInputEnd.Sub(o.ComputeStart))
				}
				sumQueue += o.Queue()
				sumIn += o.ComputeInput
				sumInfer += o.ComputeInfer
				sumOut += o.ComputeOutput
				sumReq += o.Request()
			}
			if tc.fail != nil {
				if st.Fail.Count != 3 || st.Fail.Total != sumReq {
					t.Fatalf("fail stats %+v, observed request total %v", st.Fail, sumReq)
				}
				return
			}
			if st.Queue.Total != sumQueue || st.ComputeInput.Total != sumIn || st.ComputeInfer.Total != sumInfer ||
				st.ComputeOutput.Total != sumOut || st.Success.Total != sumReq {
				t.Fatalf("observations disagree with Stats: queue %v/%v input %v/%v infer %v/%v output %v/%v request %v/%v",
					sumQueue, st.Queue.Total, sumIn, st.ComputeInput.Total, sumInfer, st.ComputeInfer.Total,
					sumOut, st.ComputeOutput.Total, sumReq, st.Success.Total)
			}
		})
	}
}

func TestObserverSkipsRequestsThatNeverRan(t *testing.T) {
	var obs observations
	m := &fakeModel{gate: make(chan struct{})}
	pol := QueuePolicy{MaxQueueSize: 1}
	b := mustNew(t, Config{MaxBatchSize: 1, Instances: 1, DefaultQueuePolicy: pol, Observer: obs.observe}, m)
	running := submitAsync(context.WithValue(context.Background(), ctxKey{}, 1), b, Item[req]{Value: req{id: 1}})
	waitFor(t, "the first batch to start", func() bool { return len(m.sizes()) == 1 })
	queued := submitAsync(context.WithValue(context.Background(), ctxKey{}, 2), b, Item[req]{Value: req{id: 2}})
	waitPending(t, b, 1)
	if o := get(t, submitAsync(context.WithValue(context.Background(), ctxKey{}, 3), b, Item[req]{Value: req{id: 3}})); !errors.Is(o.err, ErrQueueFull) {
		t.Fatalf("third request: %v, want ErrQueueFull", o.err)
	}
	m.gate <- struct{}{}
	m.gate <- struct{}{}
	get(t, running)
	get(t, queued)
	if len(obs.of(1)) != 1 || len(obs.of(2)) != 1 || len(obs.of(3)) != 0 {
		t.Fatalf("observed %d, %d, %d times; want 1, 1, 0", len(obs.of(1)), len(obs.of(2)), len(obs.of(3)))
	}
}

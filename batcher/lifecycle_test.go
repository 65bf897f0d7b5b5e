// The batcher beyond batch formation: delays, timeouts and deadlines, cancellation, ordering, errors, stats,
// Stop, and a stress run of all of it at once.

package batcher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// test_max_queue_delay_only_default: no preferred list, delay 0, max 100, a 100 ms model: a request that
// arrives while the first batch runs waits for it, and everything queued meanwhile goes as one batch.
func TestDelayZeroBatchesWhatArrivedMeanwhile(t *testing.T) {
	m := &fakeModel{gate: make(chan struct{}), started: make(chan int, 16)}
	b := mustNew(t, Config{MaxBatchSize: 100, Instances: 1}, m)
	first := submitAsync(context.Background(), b, Item[req]{Value: req{id: 0, size: 1}})
	<-m.started
	var rest []<-chan outcome
	for i := 1; i < 12; i++ {
		rest = append(rest, submitAsync(context.Background(), b, Item[req]{Value: req{id: i, size: 1}}))
	}
	waitPending(t, b, 11)
	m.gate <- struct{}{}
	<-m.started
	m.gate <- struct{}{}
	for _, ch := range append(rest, first) {
		if o := get(t, ch); o.err != nil {
			t.Fatal(o.err)
		}
	}
	if got := m.sizes(); !maps.Equal(got, map[int]int{1: 1, 11: 1}) {
		t.Fatalf("batches %v; want {1:1, 11:1}", got)
	}
}

// test_timeout_override: a request's timeout may lower the default, never raise it, and is ignored when
// the default is 0 or overriding is not allowed.
func TestTimeoutOverride(t *testing.T) {
	const def = time.Second
	const lower = 100 * time.Millisecond
	long := 10 * time.Second
	cases := []struct {
		name     string
		policy   QueuePolicy
		timeout  time.Duration
		min, max time.Duration // window for the rejection; max 0 = must not be rejected
	}{
		{"lower is honoured", QueuePolicy{DefaultTimeout: def, AllowTimeoutOverride: true}, lower, lower, def - 200*time.Millisecond},
		{"higher is not honoured", QueuePolicy{DefaultTimeout: def, AllowTimeoutOverride: true}, long, def, def + 2*time.Second},
		{"override not allowed", QueuePolicy{DefaultTimeout: def}, lower, def, def + 2*time.Second},
		{"no default: request timeout ignored", QueuePolicy{AllowTimeoutOverride: true}, lower, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m := &fakeModel{}
			// Preferred 4 and a 1.5 s delay keep a lone bs 1 queued past the default timeout.
			const delay = 1500 * time.Millisecond
			b := mustNew(t, Config{MaxBatchSize: 4, PreferredBatchSizes: []int{4}, MaxQueueDelay: delay, Instances: 1, DefaultQueuePolicy: c.policy}, m)
			o := get(t, submitAsync(context.Background(), b, Item[req]{Value: req{id: 1, size: 1}, Size: 1, Timeout: c.timeout}))
			if c.max == 0 {
				if o.err != nil || o.took() < delay-10*time.Millisecond {
					t.Fatalf("err %v after %v; want success after the queue delay", o.err, o.took())
				}
				return
			}
			if !errors.Is(o.err, ErrTimeout) || o.took() < c.min || o.took() > c.max {
				t.Fatalf("err %v after %v; want ErrTimeout within [%v, %v]", o.err, o.took(), c.min, c.max)
			}
			if n := b.Stats().Failures[FailRejected]; n != 1 {
				t.Fatalf("REJECTED failures %d, want 1", n)
			}
		})
	}
}

// Beyond Triton: a queued request's deadline is honoured on a timer even while every instance is busy.
func TestDeadlineWhileInstancesBusy(t *testing.T) {
	m := &fakeModel{gate: make(chan struct{}), started: make(chan int, 4)}
	b := mustNew(t, Config{MaxBatchSize: 4, Instances: 1, DefaultQueuePolicy: QueuePolicy{DefaultTimeout: time.Hour, AllowTimeoutOverride: true}}, m)
	busy := submitAsync(context.Background(), b, Item[req]{Value: req{id: 0, size: 4}, Size: 4})
	<-m.started
	timeouts := []time.Duration{20, 35, 50, 65, 80} // ms
	var chans []<-chan outcome
	for i, ms := range timeouts {
		chans = append(chans, submitAsync(context.Background(), b, Item[req]{Value: req{id: i + 1, size: 1}, Size: 1, Timeout: ms * time.Millisecond}))
	}
	var late []time.Duration
	for i, ch := range chans {
		o := get(t, ch)
		if !errors.Is(o.err, ErrTimeout) {
			t.Fatalf("request %d: %v, want ErrTimeout", i, o.err)
		}
		lateness := o.took() - timeouts[i]*time.Millisecond
		late = append(late, lateness)
		// Triton checks every 500 ms. The bound is generous for a loaded 2-core CI machine (a scheduling
		// stall delays every goroutine); the typical lateness, logged below, is well under 1 ms.
		if lateness < 0 || lateness > 400*time.Millisecond {
			t.Errorf("request %d rejected %v after its deadline", i, lateness)
		}
	}
	t.Logf("rejection lateness after deadline (incl. the Submit goroutine's wake-up): %v", late)
	m.gate <- struct{}{}
	if o := get(t, busy); o.err != nil {
		t.Fatal(o.err)
	}
}

// The mechanism behind the test above, checked without timing: while every instance is busy the
// dispatcher's timer is armed at the nearest queue deadline, and an earlier deadline re-arms it.
func TestTimerArmedAtNearestDeadline(t *testing.T) {
	m := &fakeModel{gate: make(chan struct{}), started: make(chan int, 4)}
	b := mustNew(t, Config{MaxBatchSize: 4, Instances: 1, DefaultQueuePolicy: QueuePolicy{DefaultTimeout: time.Hour, AllowTimeoutOverride: true}}, m)
	submitAsync(context.Background(), b, Item[req]{Value: req{id: 0}, Size: 4})
	<-m.started
	armed := func(want time.Duration) {
		t.Helper()
		waitFor(t, fmt.Sprintf("timer armed at the %v deadline", want), func() bool {
			b.mu.Lock()
			defer b.mu.Unlock()
			d := b.q.nearestDeadline()
			return !d.IsZero() && b.timerAt.Equal(d) && len(b.q.deadlines) > 0 && b.q.deadlines[0].deadline.Sub(b.q.deadlines[0].queued) == want
		})
	}
	submitAsync(context.Background(), b, Item[req]{Value: req{id: 1}, Size: 1, Timeout: 30 * time.Minute})
	armed(30 * time.Minute)
	submitAsync(context.Background(), b, Item[req]{Value: req{id: 2}, Size: 1, Timeout: 10 * time.Minute})
	armed(10 * time.Minute)
	submitAsync(context.Background(), b, Item[req]{Value: req{id: 3}, Size: 1, Timeout: 20 * time.Minute})
	armed(10 * time.Minute)
}

// Beyond Triton: a cancelled request leaves the queue before it runs, and frees its place at once.
func TestCancelRemovesQueuedRequest(t *testing.T) {
	m := &fakeModel{gate: make(chan struct{}), started: make(chan int, 4)}
	b := mustNew(t, Config{MaxBatchSize: 4, Instances: 1, DefaultQueuePolicy: QueuePolicy{MaxQueueSize: 1}}, m)
	busy := submitAsync(context.Background(), b, Item[req]{Value: req{id: 0, size: 4}, Size: 4})
	<-m.started
	ctx, cancel := context.WithCancel(context.Background())
	victim := submitAsync(ctx, b, Item[req]{Value: req{id: 1}, Size: 1})
	waitPending(t, b, 1)
	if _, err := b.Submit(context.Background(), Item[req]{Value: req{id: 9}, Size: 1}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("second request with a full queue: %v, want ErrQueueFull", err)
	}
	cancel()
	o := get(t, victim)
	if !errors.Is(o.err, context.Canceled) {
		t.Fatalf("cancelled request: %v, want context.Canceled", o.err)
	}
	waitPending(t, b, 0)
	next := submitAsync(context.Background(), b, Item[req]{Value: req{id: 2}, Size: 1}) // the freed place
	waitPending(t, b, 1)
	m.gate <- struct{}{}
	<-m.started
	m.gate <- struct{}{}
	if o := get(t, next); o.err != nil || o.res != 20 {
		t.Fatalf("request after cancel: %d %v", o.res, o.err)
	}
	get(t, busy)
	if got, want := m.compositions(), [][]int{{0}, {2}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("batches %v, want %v (the cancelled request must not run)", got, want)
	}
	st := b.Stats()
	if st.Failures[FailCanceled] != 1 || st.Failures[FailRejected] != 1 || st.Success.Count != 2 {
		t.Fatalf("stats failures %v success %d", st.Failures, st.Success.Count)
	}
}

// test_multi_batch_preserve_ordering: two instances (100 ms and 400 ms), preferred [4], max 4, 12 bs 1.
func TestPreserveOrdering(t *testing.T) {
	for _, preserve := range []bool{true, false} {
		t.Run(fmt.Sprint("preserve=", preserve), func(t *testing.T) {
			t.Parallel()
			m := &fakeModel{slow: []time.Duration{100 * time.Millisecond, 400 * time.Millisecond}}
			var mu sync.Mutex
			var order []int // request ids in the order their answers were released
			cfg := Config{MaxBatchSize: 4, PreferredBatchSizes: []int{4}, MaxQueueDelay: D, Instances: 2, PreserveOrdering: preserve, HoldUntil: 12}
			b, err := newBatcher(cfg, m.exec, hooks[req]{answered: func(r req) { mu.Lock(); order = append(order, r.id); mu.Unlock() }})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Stop(context.Background())
			var chans []<-chan outcome
			for i := 0; i < 12; i++ {
				chans = append(chans, submitAsync(context.Background(), b, Item[req]{Value: req{id: i, size: 1}, Size: 1}))
				if i < 11 {
					waitPending(t, b, i+1) // queue order = submission order
				}
			}
			for i, ch := range chans {
				o := get(t, ch)
				if o.err != nil || o.res != i*10 {
					t.Fatalf("request %d: %d %v", i, o.res, o.err)
				}
			}
			if got := m.sizes(); !maps.Equal(got, map[int]int{4: 3}) {
				t.Fatalf("batches %v, want {4:3}", got)
			}
			mu.Lock()
			defer mu.Unlock()
			if inOrder := slices.IsSorted(order); inOrder != preserve {
				t.Fatalf("answers released in order %v: sorted = %v, want %v", order, inOrder, preserve)
			}
		})
	}
}

func TestSubmitErrors(t *testing.T) {
	m := &fakeModel{}
	b := mustNew(t, Config{MaxBatchSize: 4, Instances: 1}, m)
	if _, err := b.Submit(context.Background(), Item[req]{Size: 5}); !errors.Is(err, ErrBatchSize) {
		t.Fatalf("bs 5 > max 4: %v, want ErrBatchSize", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Submit(ctx, Item[req]{Size: 1}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
	if _, err := New(Config{MaxBatchSize: -1}, m.exec); err == nil {
		t.Fatal("New accepted an invalid config")
	}
}

func TestFailedBatch(t *testing.T) {
	boom := errors.New("CUDA out of memory")
	m := &fakeModel{fail: boom}
	b := mustNew(t, Config{MaxBatchSize: 4, PreferredBatchSizes: []int{2}, Instances: 1, HoldUntil: 2}, m)
	a := submitAsync(context.Background(), b, Item[req]{Value: req{id: 1, size: 1}, Size: 1})
	waitPending(t, b, 1)
	c := submitAsync(context.Background(), b, Item[req]{Value: req{id: 2, size: 1}, Size: 1})
	for _, ch := range []<-chan outcome{a, c} {
		if o := get(t, ch); !errors.Is(o.err, boom) {
			t.Fatalf("got %v, want an error wrapping %v", o.err, boom)
		}
	}
	st := b.Stats()
	if st.Failures[FailBackend] != 2 || st.Fail.Count != 2 || st.Success.Count != 0 || st.ExecutionCount != 0 {
		t.Fatalf("stats %+v", st)
	}
	// A panicking executor fails its batch, not the process.
	p, err := New(Config{MaxBatchSize: 1, Instances: 1}, func(context.Context, int, []req) ([]int, Timing, error) { panic("bad model") })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	if _, err := p.Submit(context.Background(), Item[req]{Size: 1}); !errors.Is(err, errPanic) {
		t.Fatalf("panicking executor: %v", err)
	}
	// A wrong number of results fails the batch.
	w, _ := New(Config{MaxBatchSize: 1, Instances: 1}, func(context.Context, int, []req) ([]int, Timing, error) { return nil, Timing{}, nil })
	defer w.Stop(context.Background())
	if _, err := w.Submit(context.Background(), Item[req]{Size: 1}); err == nil {
		t.Fatal("zero results for one request accepted")
	}
}

// metrics.md §Counts: bs 1 and bs 8 batched together give Request=2, Inference=9, Execution=1.
func TestStats(t *testing.T) {
	const infer = 30 * time.Millisecond
	m := &fakeModel{slow: []time.Duration{infer}}
	b := mustNew(t, Config{MaxBatchSize: 16, PreferredBatchSizes: []int{9}, Instances: 1, HoldUntil: 2}, m)
	start := time.Now().Add(-time.Second) // the frontend received it a second ago
	one := submitAsync(context.Background(), b, Item[req]{Value: req{id: 1, size: 1}, Size: 1, Start: start})
	waitPending(t, b, 1)
	time.Sleep(20 * time.Millisecond)
	eight := submitAsync(context.Background(), b, Item[req]{Value: req{id: 2, size: 8}, Size: 8})
	get(t, one)
	get(t, eight)
	st := b.Stats()
	if st.Success.Count != 2 || st.InferenceCount != 9 || st.ExecutionCount != 1 || st.Batches[9].Executions != 1 || st.Pending != 0 {
		t.Fatalf("counts: %+v", st)
	}
	if st.Queue.Count != 2 || st.Queue.Total < 20*time.Millisecond {
		t.Fatalf("queue %+v: want 2 requests, >= 20 ms in all (the first waited for the second)", st.Queue)
	}
	if st.ComputeInfer.Count != 2 || st.ComputeInfer.Total < 2*infer || st.ComputeInput.Total != 0 {
		t.Fatalf("compute infer %+v input %+v: want the batch's %v counted per request", st.ComputeInfer, st.ComputeInput, infer)
	}
	if st.Batches[9].ComputeInfer < infer || st.Batches[9].ComputeInfer > st.ComputeInfer.Total {
		t.Fatalf("batch stats %+v", st.Batches[9])
	}
	if st.Success.Total < time.Second || st.LastInference.IsZero() {
		t.Fatalf("success %+v (must count from Item.Start), last %v", st.Success, st.LastInference)
	}
	// An executor that reports its own timing is taken at its word.
	r, _ := New(Config{MaxBatchSize: 2, Instances: 1}, func(_ context.Context, _ int, v []req) ([]int, Timing, error) {
		return make([]int, len(v)), Timing{Input: 1 * time.Millisecond, Infer: 2 * time.Millisecond, Output: 3 * time.Millisecond}, nil
	})
	defer r.Stop(context.Background())
	if _, err := r.Submit(context.Background(), Item[req]{Size: 1}); err != nil {
		t.Fatal(err)
	}
	rs := r.Stats()
	if rs.ComputeInput.Total != time.Millisecond || rs.ComputeInfer.Total != 2*time.Millisecond || rs.ComputeOutput.Total != 3*time.Millisecond {
		t.Fatalf("reported timing not used: %+v", rs)
	}
	for _, reason := range []FailReason{FailRejected, FailCanceled, FailBackend, FailOther} {
		if _, ok := rs.Failures[reason]; !ok {
			t.Fatalf("failure series %s missing (all four exist from the start)", reason)
		}
	}
}

// Stop drains the queue without waiting for max_queue_delay, then every goroutine exits.
func TestStopDrains(t *testing.T) {
	base := runtime.NumGoroutine()
	m := &fakeModel{}
	b, err := New(Config{MaxBatchSize: 8, PreferredBatchSizes: []int{8}, MaxQueueDelay: time.Hour, Instances: 3}, m.exec)
	if err != nil {
		t.Fatal(err)
	}
	var chans []<-chan outcome
	for i := 0; i < 5; i++ {
		chans = append(chans, submitAsync(context.Background(), b, Item[req]{Value: req{id: i, size: 1}, Size: 1}))
	}
	waitPending(t, b, 5)
	if err := b.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for i, ch := range chans {
		if o := get(t, ch); o.err != nil || o.res != i*10 {
			t.Fatalf("request %d: %d %v, want drained", i, o.res, o.err)
		}
	}
	if _, err := b.Submit(context.Background(), Item[req]{Size: 1}); !errors.Is(err, ErrStopped) {
		t.Fatalf("Submit after Stop: %v", err)
	}
	settleGoroutines(t, base)
}

// Stop whose context ends fails what is still queued with ErrStopped and cancels running batches.
func TestStopDeadline(t *testing.T) {
	base := runtime.NumGoroutine()
	m := &fakeModel{gate: make(chan struct{}), started: make(chan int, 4)}
	b, err := New(Config{MaxBatchSize: 2, Instances: 1}, m.exec)
	if err != nil {
		t.Fatal(err)
	}
	running := submitAsync(context.Background(), b, Item[req]{Value: req{id: 0}, Size: 2})
	<-m.started
	var queued []<-chan outcome
	for i := 1; i <= 3; i++ {
		queued = append(queued, submitAsync(context.Background(), b, Item[req]{Value: req{id: i}, Size: 2}))
	}
	waitPending(t, b, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop: %v, want DeadlineExceeded", err)
	}
	if o := get(t, running); !errors.Is(o.err, context.Canceled) {
		t.Fatalf("running batch: %v, want its context cancelled", o.err)
	}
	for _, ch := range queued {
		if o := get(t, ch); !errors.Is(o.err, ErrStopped) {
			t.Fatalf("queued request: %v, want ErrStopped", o.err)
		}
	}
	settleGoroutines(t, base)
}

// Many producers, several instances, random sizes, priorities and cancellations: every request is
// answered exactly once, no batch exceeds max_batch_size, and the counters add up.
func TestStress(t *testing.T) {
	base := runtime.NumGoroutine()
	var mu sync.Mutex
	maxSeen := 0
	b, err := New(Config{MaxBatchSize: 8, PreferredBatchSizes: []int{4, 8}, MaxQueueDelay: time.Millisecond, Instances: 3,
		PriorityLevels: 3, DefaultPriorityLevel: 2,
		PriorityQueuePolicy: map[uint64]QueuePolicy{3: {TimeoutAction: Delay, DefaultTimeout: 500 * time.Microsecond}}},
		func(_ context.Context, _ int, v []req) ([]int, Timing, error) {
			units := 0
			out := make([]int, len(v))
			for i, r := range v {
				units += r.size
				out[i] = r.id
			}
			mu.Lock()
			maxSeen = max(maxSeen, units)
			mu.Unlock()
			return out, Timing{}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var okCount, cancelled sync.Map
	for p := 0; p < 16; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				id := p*1000 + i
				size := 1 + (id*7)%3
				ctx, cancel := context.WithCancel(context.Background())
				if i%17 == 0 {
					cancel()
				}
				res, err := b.Submit(ctx, Item[req]{Value: req{id: id, size: size}, Size: size, Priority: uint64(id % 4)})
				cancel()
				switch {
				case err == nil && res == id:
					okCount.Store(id, size)
				case errors.Is(err, context.Canceled):
					cancelled.Store(id, true)
				default:
					t.Errorf("request %d: %d %v", id, res, err)
				}
			}
		}(p)
	}
	wg.Wait()
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, units := 0, 0
	okCount.Range(func(_, v any) bool { n++; units += v.(int); return true })
	st := b.Stats()
	if st.Success.Count != uint64(n) || st.InferenceCount != uint64(units) || maxSeen > 8 || st.Pending != 0 {
		t.Fatalf("success %d/%d inferences %d/%d max batch %d pending %d", st.Success.Count, n, st.InferenceCount, units, maxSeen, st.Pending)
	}
	total := uint64(0)
	for size, bs := range st.Batches {
		total += bs.Executions * uint64(size)
	}
	if total != st.InferenceCount {
		t.Fatalf("batch stats sum %d != inference count %d", total, st.InferenceCount)
	}
	settleGoroutines(t, base)
}

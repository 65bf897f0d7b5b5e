package repository

import (
	"context"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
	"github.com/ofaserve/ofaserve/repository/cache"
)

// countingModel answers every request with an output made from its input,
// after hold is closed (when hold is set), and counts what it ran the way a
// batcher would.
type countingModel struct {
	hold  chan struct{}
	runs  atomic.Int32
	mu    sync.Mutex
	stats batcher.Stats
}

func (c *countingModel) Infer(ctx context.Context, req *backend.Request) (*backend.Response, error) {
	c.runs.Add(1)
	if c.hold != nil {
		select {
		case <-c.hold:
		case <-ctx.Done():
			return nil, backend.SubmitError(ctx.Err())
		}
	}
	c.mu.Lock()
	c.stats.Success.Count++
	c.stats.Success.Total += time.Millisecond
	c.stats.InferenceCount++
	c.stats.ExecutionCount++
	c.mu.Unlock()
	out := append([]byte("answer to "), req.Inputs[0].Data...)
	return &backend.Response{Outputs: []backend.Tensor{{Name: "y", Datatype: "FP32", Shape: []int64{1, 3}, Data: out}}}, nil
}
func (c *countingModel) Close(context.Context) error { return nil }
func (c *countingModel) Stats() batcher.Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

const cachedConfig = simpleConfig + "response_cache { enable: true }\n"

func newCachedRepo(t *testing.T, config string, size int64, model *countingModel) *Repository {
	t.Helper()
	root := t.TempDir()
	writeModel(t, root, "m", config, "1")
	var c *cache.Cache
	if size > 0 {
		var err error
		if c, err = cache.New(size); err != nil {
			t.Fatal(err)
		}
	}
	r, err := New(Options{Root: root, Mode: ModeExplicit, StartupModels: []string{"m"}, Cache: c,
		Loaders: map[string]backend.Loader{"pytorch": func(context.Context, backend.LoadSpec) (backend.Model, error) { return model, nil }}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

func requestWith(b byte) *backend.Request {
	req := validRequest()
	req.Inputs[0].Data[0] = b
	return req
}

// TestCachedHandle: the same request twice is a hit the model never sees,
// with the same answer; Stats counts it as Triton does.
func TestCachedHandle(t *testing.T) {
	model := &countingModel{}
	r := newCachedRepo(t, cachedConfig, 1<<20, model)
	m, _ := r.Model("m", 0)
	first, err := m.Infer(context.Background(), requestWith(1))
	if err != nil {
		t.Fatal(err)
	}
	second, err := m.Infer(context.Background(), requestWith(1))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first, second) || model.runs.Load() != 1 {
		t.Fatalf("second answer %+v (model ran %d times), want the first %+v from the cache", second, model.runs.Load(), first)
	}
	// Invalid requests are refused before the cache; other outputs or
	// inputs are other answers.
	if _, err := m.Infer(context.Background(), &backend.Request{}); backend.CodeOf(err) != backend.CodeInvalidArg {
		t.Errorf("invalid request: %v", err)
	}
	if _, err := m.Infer(context.Background(), requestWith(2)); err != nil || model.runs.Load() != 2 {
		t.Errorf("other input: %v, model ran %d times, want 2", err, model.runs.Load())
	}
	st := m.Stats()
	if st.CacheHit.Count != 1 || st.CacheMiss.Count != 2 || st.CacheHit.Total <= 0 || st.CacheMiss.Total <= 0 {
		t.Errorf("cache_hit %+v, cache_miss %+v; want 1 and 2, with durations", st.CacheHit, st.CacheMiss)
	}
	// success and queue include the hit; inference and execution counts do not.
	if st.Success.Count != 3 || st.Queue.Count != 1 || st.InferenceCount != 2 || st.ExecutionCount != 2 {
		t.Errorf("success %d, queue %d, inferences %d, executions %d; want 3, 1 (the model's own queue counts are its own), 2, 2",
			st.Success.Count, st.Queue.Count, st.InferenceCount, st.ExecutionCount)
	}
	if st.LastInference.IsZero() {
		t.Error("a hit did not set last_inference")
	}
}

// TestSameRequestInFlight: a request identical to one that is running
// waits for it, and the model runs once for both.
func TestSameRequestInFlight(t *testing.T) {
	model := &countingModel{hold: make(chan struct{})}
	r := newCachedRepo(t, cachedConfig, 1<<20, model)
	m, _ := r.Model("m", 0)
	answers := make(chan *backend.Response, 2)
	for range 2 {
		go func() {
			resp, err := m.Infer(context.Background(), requestWith(7))
			if err != nil {
				t.Error(err)
			}
			answers <- resp
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(model.hold)
	a, b := <-answers, <-answers
	if !reflect.DeepEqual(a, b) || model.runs.Load() != 1 {
		t.Errorf("answers %+v / %+v, model ran %d times; want one run, one answer", a, b, model.runs.Load())
	}
	st := m.Stats()
	if st.CacheHit.Count != 1 || st.CacheMiss.Count != 1 || st.Queue.Total < 30*time.Millisecond {
		t.Errorf("hit %+v, miss %+v, queue %v; want one each, the wait counted as queue time", st.CacheHit, st.CacheMiss, st.Queue.Total)
	}

	// One that gives up waiting fails CANCELED, and the model never saw it.
	model2 := &countingModel{hold: make(chan struct{})}
	m2, _ := newCachedRepo(t, cachedConfig, 1<<20, model2).Model("m", 0)
	go func() { _, _ = m2.Infer(context.Background(), requestWith(7)) }()
	for model2.runs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := m2.Infer(ctx, requestWith(7)); backend.CodeOf(err) != backend.CodeUnavailable || err.Error() != "request deadline exceeded" {
		t.Errorf("waiter past its deadline: %v (%v)", err, backend.CodeOf(err))
	}
	close(model2.hold)
	if st := m2.Stats(); st.Fail.Count != 1 || st.Failures[batcher.FailCanceled] != 1 || model2.runs.Load() != 1 {
		t.Errorf("fail %d, CANCELED %d, runs %d; want 1, 1, 1", st.Fail.Count, st.Failures[batcher.FailCanceled], model2.runs.Load())
	}
}

// TestCacheOffUnlessBothSay: the model's response_cache and the server's
// cache are both needed; a reload never serves the old load's answers.
func TestCacheOffUnlessBothSay(t *testing.T) {
	for name, c := range map[string]struct {
		config string
		size   int64
	}{"no server cache": {cachedConfig, 0}, "not enabled": {simpleConfig, 1 << 20}} {
		model := &countingModel{}
		m, _ := newCachedRepo(t, c.config, c.size, model).Model("m", 0)
		for range 2 {
			if _, err := m.Infer(context.Background(), requestWith(1)); err != nil {
				t.Fatal(err)
			}
		}
		if model.runs.Load() != 2 || m.Stats().CacheHit.Count != 0 {
			t.Errorf("%s: the model ran %d times for 2 requests, hits %d", name, model.runs.Load(), m.Stats().CacheHit.Count)
		}
	}
	model := &countingModel{}
	r := newCachedRepo(t, cachedConfig, 1<<20, model)
	m, _ := r.Model("m", 0)
	_, _ = m.Infer(context.Background(), requestWith(1))
	if err := r.Load(context.Background(), "m", nil); err != nil {
		t.Fatal(err)
	}
	m, _ = r.Model("m", 0)
	_, _ = m.Infer(context.Background(), requestWith(1))
	if model.runs.Load() != 2 {
		t.Errorf("after a reload the model ran %d times in all, want 2 (the old answer is not the new load's)", model.runs.Load())
	}
	if u := r.opts.Cache.Usage(); u.Entries != 1 {
		t.Errorf("%d entries kept; the unloaded version's answers should be dropped", u.Entries)
	}
}

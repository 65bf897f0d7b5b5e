package batcher

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// req is the request type of the tests: an id and its batch size.
type req struct {
	id   int
	size int
}

// fakeModel records each batch's composition and can be slowed per instance or blocked.
type fakeModel struct {
	mu      sync.Mutex
	batches []recorded
	slow    []time.Duration // per instance
	gate    chan struct{}   // when non-nil, each batch waits for a token (or ctx)
	started chan int        // when non-nil, receives each batch's size as it starts
	fail    error
	clock   func() time.Time // when non-nil, stamps each batch's start (default time.Now)
}

type recorded struct {
	instance int
	ids      []int
	units    int
	at       time.Time
}

func (m *fakeModel) exec(ctx context.Context, instance int, batch []req) ([]int, Timing, error) {
	r := recorded{instance: instance, at: time.Now()}
	if m.clock != nil {
		r.at = m.clock()
	}
	out := make([]int, len(batch))
	for i, q := range batch {
		r.ids = append(r.ids, q.id)
		r.units += q.size
		out[i] = q.id * 10
	}
	m.mu.Lock()
	m.batches = append(m.batches, r)
	m.mu.Unlock()
	if m.started != nil {
		m.started <- r.units
	}
	if m.gate != nil {
		select {
		case <-m.gate:
		case <-ctx.Done():
			return nil, Timing{}, ctx.Err()
		}
	}
	if instance < len(m.slow) && m.slow[instance] > 0 {
		time.Sleep(m.slow[instance])
	}
	if m.fail != nil {
		return nil, Timing{}, m.fail
	}
	return out, Timing{}, nil
}

// sizes returns the batch-size histogram {units: executions}.
func (m *fakeModel) sizes() map[int]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := map[int]int{}
	for _, b := range m.batches {
		h[b.units]++
	}
	return h
}

// starts returns when each batch started, in order.
func (m *fakeModel) starts() []time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []time.Time
	for _, b := range m.batches {
		out = append(out, b.at)
	}
	return out
}

func (m *fakeModel) compositions() [][]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out [][]int
	for _, b := range m.batches {
		out = append(out, slices.Clone(b.ids))
	}
	return out
}

// outcome is what one Submit returned, and when.
type outcome struct {
	res  int
	err  error
	sent time.Time
	at   time.Time
}

func (o outcome) took() time.Duration { return o.at.Sub(o.sent) }

// submitAsync submits it and delivers the outcome on the returned channel.
func submitAsync(ctx context.Context, b *Batcher[req, int], it Item[req]) <-chan outcome {
	ch := make(chan outcome, 1)
	sent := time.Now()
	go func() {
		res, err := b.Submit(ctx, it)
		ch <- outcome{res: res, err: err, sent: sent, at: time.Now()}
	}()
	return ch
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// waitPending waits until n requests are queued.
func waitPending(t *testing.T, b *Batcher[req, int], n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d pending requests", n), func() bool { return b.Stats().Pending == n })
}

func get(t *testing.T, ch <-chan outcome) outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("a Submit did not return within 10 s")
	}
	return outcome{}
}

func mustNew(t *testing.T, cfg Config, m *fakeModel) *Batcher[req, int] {
	t.Helper()
	b, err := New(cfg, m.exec)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if m.gate != nil {
			close(m.gate)
		}
		_ = b.Stop(ctx)
	})
	return b
}

// settleGoroutines waits until the goroutine count drops to at most base.
func settleGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutine leak: %d > %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

// fakeClock is a clock that moves only when a test sets it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_000_000, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// at is the time d after the clock's origin.
func (c *fakeClock) at(d time.Duration) time.Time { return time.Unix(1_000_000, 0).Add(d) }

// set moves the clock to d after its origin.
func (c *fakeClock) set(d time.Duration) {
	c.mu.Lock()
	c.t = c.at(d)
	c.mu.Unlock()
}

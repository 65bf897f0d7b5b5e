package workpool

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitWaiting polls until n callers wait.
func waitWaiting(t *testing.T, p *Pool, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().Waiting != n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d waiters (have %d)", n, p.Stats().Waiting)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func TestBound(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			p := New(n)
			var running, most atomic.Int32
			var wg sync.WaitGroup
			for i := range 40 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := p.Do(context.Background(), fmt.Sprint(i%3), func() {
						r := running.Add(1)
						for {
							m := most.Load()
							if r <= m || most.CompareAndSwap(m, r) {
								break
							}
						}
						time.Sleep(200 * time.Microsecond)
						running.Add(-1)
					})
					if err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if m := most.Load(); m > int32(n) {
				t.Fatalf("%d jobs ran at once, the bound is %d", m, n)
			}
			s := p.Stats()
			if s.Jobs != 40 || s.Busy != 0 || s.Waiting != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

// One worker, a backlog of model a queued before two requests of model b: b's requests are served
// alternately with a's, not after a's whole backlog.
func TestRoundRobinAcrossKeys(t *testing.T) {
	p := New(1)
	gate := make(chan struct{})
	holding := make(chan struct{})
	go func() { _ = p.Do(context.Background(), "a", func() { close(holding); <-gate }) }()
	<-holding
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	enqueue := func(key string, i, waiting int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.Do(context.Background(), key, func() { mu.Lock(); order = append(order, fmt.Sprintf("%s%d", key, i)); mu.Unlock() })
		}()
		waitWaiting(t, p, waiting) // one at a time, so the FIFO order within a key is known
	}
	for i := range 4 {
		enqueue("a", i, i+1)
	}
	enqueue("b", 0, 5)
	enqueue("b", 1, 6)
	close(gate)
	wg.Wait()
	want := []string{"a0", "b0", "a1", "b1", "a2", "a3"}
	if !slices.Equal(order, want) {
		t.Fatalf("served %v, want %v", order, want)
	}
	if s := p.Stats(); s.Waited != 6 || s.WaitTime <= 0 {
		t.Fatalf("stats %+v: want 6 waited jobs with a wait time", s)
	}
}

// A caller whose context ends while it waits returns at once, without running its job, and the worker
// goes to the next waiter.
func TestCancelWhileWaiting(t *testing.T) {
	p := New(1)
	gate := make(chan struct{})
	holding := make(chan struct{})
	go func() { _ = p.Do(context.Background(), "a", func() { close(holding); <-gate }) }()
	<-holding
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	ran := atomic.Bool{}
	go func() { errc <- p.Do(ctx, "b", func() { ran.Store(true) }) }()
	waitWaiting(t, p, 1)
	next := make(chan error, 1)
	go func() { next <- p.Do(context.Background(), "c", func() {}) }()
	waitWaiting(t, p, 2)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Do: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled waiter did not return")
	}
	if ran.Load() {
		t.Fatal("a cancelled job ran")
	}
	close(gate)
	if err := <-next; err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Canceled != 1 || s.Waiting != 0 || s.Busy != 0 {
		t.Fatalf("stats %+v", s)
	}
	if err := p.Do(ctx, "b", func() { ran.Store(true) }); !errors.Is(err, context.Canceled) || ran.Load() {
		t.Fatalf("Do with an ended context: %v (ran %v)", err, ran.Load())
	}
}

func TestNilPoolRunsInline(t *testing.T) {
	var p *Pool
	ran := false
	if err := p.Do(context.Background(), "a", func() { ran = true }); err != nil || !ran {
		t.Fatalf("nil pool: %v, ran %v", err, ran)
	}
	if p.Stats() != (Stats{}) {
		t.Fatal("nil pool has stats")
	}
}

func TestDefaultWorkers(t *testing.T) {
	if New(0).Stats().Workers < 1 {
		t.Fatal("New(0) has no workers")
	}
}

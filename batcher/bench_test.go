package batcher

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSubmit measures the scheduler's cost per request with a no-op model and 16 concurrent
// producers: ns/op is per request, allocs/op counts everything a request costs on the steady-state path.
func BenchmarkSubmit(b *testing.B) {
	for _, inst := range []int{1, 2} {
		b.Run(map[int]string{1: "instances=1", 2: "instances=2"}[inst], func(b *testing.B) {
			benchSubmit(b, Config{MaxBatchSize: 16, Instances: inst}, 16)
		})
	}
}

// BenchmarkSubmitSerial is the baseline: one producer, so every batch holds one request and the cost is
// a full hand-off per request.
func BenchmarkSubmitSerial(b *testing.B) {
	benchSubmit(b, Config{MaxBatchSize: 16, Instances: 1}, 1)
}

func benchSubmit(b *testing.B, cfg Config, producers int) {
	outs := make([][]int, max(1, cfg.Instances))
	var batches atomic.Int64
	bt, err := New(cfg, func(_ context.Context, inst int, v []int) ([]int, Timing, error) {
		batches.Add(1)
		out := outs[inst][:0]
		out = append(out, v...)
		outs[inst] = out
		return out, Timing{}, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// Warm the pools and the reused slices.
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				_, _ = bt.Submit(ctx, Item[int]{Value: i, Size: 1})
			}
		}()
	}
	wg.Wait()
	batches.Store(0)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := bt.Submit(ctx, Item[int]{Value: 1, Size: 1}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/float64(max(1, batches.Load())), "req/batch")
	if err := bt.Stop(ctx); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkClosedLoop compares Triton rules with the Adaptive policy on a simulated device whose batch of
// b takes t(b) = 20 ms + 2.5 ms·b scaled down 4× (5 ms + 0.625 ms·b, spent sleeping), under 16 closed-loop
// clients whose next request follows an answer by up to 1 ms (spread as HTTP and preprocessing spread it).
// One op is one batch after a warm-up of 15. Metrics: samples/s, the mean batch, and efficiency =
// samples/s ÷ (instances · 16 / t(16)), the device's ideal.
func BenchmarkClosedLoop(b *testing.B) {
	for _, inst := range []int{1, 2} {
		for _, p := range []Policy{Triton, Adaptive} {
			b.Run(fmt.Sprintf("instances=%d/%v", inst, p), func(b *testing.B) {
				d := &linearDevice{a: 5 * time.Millisecond, c: 625 * time.Microsecond}
				cfg := Config{MaxBatchSize: 16, MaxQueueDelay: 500 * time.Microsecond, Instances: inst, Policy: p}
				r := closedLoop(b, cfg, d, 16, 15, b.N, time.Millisecond, hooks[req]{})
				ideal := float64(inst) * 16 / d.cost(16).Seconds()
				b.ReportMetric(r.rate(), "samples/s")
				b.ReportMetric(r.meanBatch(), "mean_batch")
				b.ReportMetric(r.rate()/ideal, "efficiency")
			})
		}
	}
}

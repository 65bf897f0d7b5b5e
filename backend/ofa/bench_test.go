package ofa

import (
	"context"
	"runtime"
	"testing"

	"github.com/ofaserve/ofaserve/backend"
)

// BenchmarkInfer serves one kind of request through Infer one at a time
// (serial: no queue delay, every forward has batch size 1 — the baseline)
// and from 16 goroutines at once with the exported config (concurrent16:
// the batcher stacks them into shared forwards). ns/op is per request in
// both; their ratio is what dynamic batching buys here for the micro model.
func BenchmarkInfer(b *testing.B) {
	img := testImages(b)["photo.jpg"]
	req := func() *backend.Request {
		return request([][]byte{img}, []string{"two dogs run on the grass"}, nil, OutputScores)
	}
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		m := mustLoad(b, exportedConfig(b, "max_queue_delay_microseconds: 2000", "max_queue_delay_microseconds: 0"))
		r := req()
		for b.Loop() {
			if _, err := m.Infer(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("concurrent16", func(b *testing.B) {
		m := mustLoad(b, exportedConfig(b))
		b.SetParallelism((16 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.RunParallel(func(pb *testing.PB) {
			r := req()
			for pb.Next() {
				if _, err := m.Infer(ctx, r); err != nil {
					b.Error(err)
					return
				}
			}
		})
		st := m.Stats()
		if st.ExecutionCount > 0 {
			b.ReportMetric(float64(st.InferenceCount)/float64(st.ExecutionCount), "req/exec")
		}
	})
}

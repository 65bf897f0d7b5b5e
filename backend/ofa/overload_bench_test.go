package ofa

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/backend/workpool"
	"github.com/ofaserve/ofaserve/batcher"
)

// BenchmarkOverload runs clients that retry at once on a refusal against the model, for a fixed time per
// mode, and reports goodput (answers per second) and the p99 latency of a refusal. The modes, in one run:
//   - uncapped: no max_queue_size (the baseline for goodput);
//   - capped8: max_queue_size 8, admission before the decode and the shared pool (Infer);
//   - capped8-decode-first: max_queue_size 8, the request decoded in the client's goroutine and only then
//     submitted (the behaviour before admission existed), for comparison;
//   - the capped modes again with clients that pause 200 µs after a refusal (about a loopback HTTP round
//     trip): clients that retry at once in the same process spin on the two cores and starve the model.
//
// goodput-ratio is each mode's goodput over uncapped's.
func BenchmarkOverload(b *testing.B) {
	const clients, span = 64, 3 * time.Second
	img := benchJPEG(b, 640, 480)
	capped := "dynamic_batching { max_queue_delay_microseconds: 2000 default_queue_policy { max_queue_size: 8 } }"
	pool := workpool.New(0)
	type mode struct {
		name  string
		cfg   string
		infer func(m testModel) func(context.Context, *backend.Request) error
		retry time.Duration // a client's pause after a refusal
	}
	viaInfer := func(m testModel) func(context.Context, *backend.Request) error {
		return func(ctx context.Context, r *backend.Request) error { _, err := m.Infer(ctx, r); return err }
	}
	decodeFirst := func(m testModel) func(context.Context, *backend.Request) error {
		return func(ctx context.Context, r *backend.Request) error {
			p, err := m.prepare(r)
			if err != nil {
				return err
			}
			_, err = m.set.Submit(ctx, batcher.Item[*prepared]{Value: p, Size: p.n})
			return err
		}
	}
	var base float64
	for _, md := range []mode{
		{"uncapped", "", viaInfer, 0},
		{"capped8", capped, viaInfer, 0},
		{"capped8-decode-first", capped, decodeFirst, 0},
		{"capped8-retry200us", capped, viaInfer, 200 * time.Microsecond},
		{"capped8-decode-first-retry200us", capped, decodeFirst, 200 * time.Microsecond},
	} {
		b.Run(md.name, func(b *testing.B) {
			cfg := exportedConfig(b)
			if md.cfg != "" {
				cfg = exportedConfig(b, "dynamic_batching { max_queue_delay_microseconds: 2000 }", md.cfg)
			}
			m := loadWithPool(b, cfg, pool)
			infer := md.infer(m)
			var ok atomic.Int64
			var mu sync.Mutex
			var refusals []time.Duration
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), span)
				var wg sync.WaitGroup
				for range clients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						r := request([][]byte{img}, []string{"two dogs run on the grass"}, nil, OutputScores)
						var mine []time.Duration
						for ctx.Err() == nil {
							t0 := time.Now()
							err := infer(ctx, r)
							switch {
							case err == nil:
								ok.Add(1)
							case backend.CodeOf(err) == backend.CodeUnavailable && ctx.Err() == nil:
								mine = append(mine, time.Since(t0))
								if md.retry > 0 {
									time.Sleep(md.retry)
								}
							}
						}
						mu.Lock()
						refusals = append(refusals, mine...)
						mu.Unlock()
					}()
				}
				wg.Wait()
				cancel()
			}
			goodput := float64(ok.Load()) / (span.Seconds() * float64(b.N))
			b.ReportMetric(goodput, "ok/s")
			if md.name == "uncapped" {
				base = goodput
			} else if base > 0 {
				b.ReportMetric(goodput/base, "goodput-ratio")
			}
			b.ReportMetric(float64(len(refusals))/(span.Seconds()*float64(b.N)), "refused/s")
			if len(refusals) > 0 {
				slices.Sort(refusals)
				b.ReportMetric(float64(refusals[len(refusals)*99/100].Microseconds())/1000, "refusal-p99-ms")
			}
		})
	}
}

// benchJPEG is a w×h photo-like JPEG (a gradient with texture), so its decode costs what a photo's does.
func benchJPEG(b testing.TB, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x ^ y), uint8(x * 3), uint8(y*7 + x), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkBudgetRefusal is what Infer costs for a JPEG of a few KB whose header says 8000×8000 (refused
// from the header, nothing decoded) against a 640×480 JPEG's whole answer (the baseline, same run).
func BenchmarkBudgetRefusal(b *testing.B) {
	m := mustLoad(b, exportedConfig(b))
	ctx := context.Background()
	huge := request([][]byte{claimSize(b, testImages(b)["photo.jpg"], 8000, 8000)}, []string{"x"}, nil)
	photo := request([][]byte{benchJPEG(b, 640, 480)}, []string{"x"}, nil)
	b.Run("8000x8000-header", func(b *testing.B) {
		for b.Loop() {
			if _, err := m.Infer(ctx, huge); backend.CodeOf(err) != backend.CodeInvalidArg {
				b.Fatal(err)
			}
		}
		if d := m.decodes.Load(); d != 0 {
			b.Fatalf("%d decodes", d)
		}
	})
	b.Run("640x480-answered", func(b *testing.B) {
		for b.Loop() {
			if _, err := m.Infer(ctx, photo); err != nil {
				b.Fatal(err)
			}
		}
	})
}

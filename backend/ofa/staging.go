package ofa

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ofaserve/ofaserve/bucket"
	torch "github.com/ofaserve/ofaserve/libtorch"
)

// This file is the input side of every instance: a batch travels to the device through the instance's
// libtorch.Staging (buffers allocated once at load, pinned on CUDA; images as uint8 [B,H,W,3],
// normalized on the device), padded to its bucket when the instance holds a CUDA graph for that bucket.

// stager is one instance's staging: the libtorch.Staging, the buckets it has a graph for, and the runs
// (batches) staged through it.
type stager struct {
	st     *torch.Staging
	device string
	graphs map[bucket.Shape]bool // buckets with a captured graph; read-only once loaded
	runs   [2]stagedRun          // one per batch that may be staged at once (the batcher's slots)
	outs   []torch.Tensor        // forward's outputs, reused
	last   bucket.Shape          // the shape of the last batch forwarded

	computing  atomic.Bool  // a forward runs on the instance
	overlapped atomic.Int64 // batches staged while the instance computed the previous one
}

// stagedRun is one batch on its way to the device.
type stagedRun struct {
	chunks [][]byte  // the requests' images, scratch
	rows   [][]int64 // the requests' id rows, scratch
	images []byte    // stacked images, when they are not one request's buffer as it is
	ids    []int64   // the id matrix, right-padded
	staged torch.Staged
	held   bool          // staged holds a batch not yet forwarded
	shape  bucket.Shape  // the staged [Batch, Length]
	real   int           // the batch's own rows; the rest of shape.Batch is padding
	took   time.Duration // time spent staging the batch, reported as its compute input time
}

// newStagers makes one Staging per instance, sized for the largest batch and the longest row.
func (m *Model) newStagers() error {
	norm := torch.ImageNormalize{Mean: m.popts.Norm.Mean, Std: m.popts.Norm.Std}
	for i, mod := range m.set.Modules {
		st, err := mod.NewStaging(torch.StagingOptions{Slots: len(stager{}.runs), Inputs: []torch.StagingInput{
			{DType: torch.Uint8, MaxShape: []int64{int64(m.bc.maxBatch), int64(m.h), int64(m.w), 3}, Image: &norm},
			{DType: torch.Int64, MaxShape: []int64{int64(m.bc.maxBatch), int64(m.bc.maxRow)}},
		}})
		if err != nil {
			return fmt.Errorf("instance %d (%s): %w", i, m.set.Devices[i], err)
		}
		m.stagers = append(m.stagers, &stager{st: st, device: m.set.Devices[i], graphs: map[bucket.Shape]bool{}})
	}
	return nil
}

// captureGraphs captures one CUDA graph per bucket on every instance, largest bucket first (the graphs of
// an instance share one memory pool, which the first sizes). A bucket whose capture fails runs eagerly;
// each distinct reason is logged once per instance (on the CPU every capture fails with the same one).
func (m *Model) captureGraphs(log *slog.Logger) error {
	for i, s := range m.stagers {
		t0 := time.Now()
		reasons := map[string]int{}
		var order []string
		for _, sh := range m.bc.set.Shapes() {
			err := s.st.CaptureGraph(m.imageShape(sh.Batch), []int64{int64(sh.Batch), int64(sh.Length)})
			var ue *torch.GraphUnavailableError
			switch {
			case err == nil:
				s.graphs[sh] = true
			case errors.As(err, &ue):
				if reasons[ue.Reason] == 0 {
					order = append(order, ue.Reason)
				}
				reasons[ue.Reason]++
			default:
				return fmt.Errorf("cuda graphs on instance %d (%s): %w", i, s.device, err)
			}
		}
		for _, r := range order {
			log.Warn("CUDA graph capture failed: those buckets run eagerly", "instance", i, "device", s.device,
				"buckets", reasons[r], "reason", r)
		}
		log.Info("CUDA graphs", "instance", i, "device", s.device, "captured", len(s.graphs),
			"buckets", len(m.bc.set.Shapes()), "duration", time.Since(t0))
	}
	return nil
}

// imageShape is the staged image shape of b rows: [b,H,W,3].
func (m *Model) imageShape(b int) []int64 { return []int64{int64(b), int64(m.h), int64(m.w), 3} }

// stage puts a batch into run and starts its copy to the device: images (chunks of whole rows of
// uint8 HWC, one per request) stacked into [B,H,W,3], id rows right-padded with the pad id into [B,L].
// B and L are the batch's own rows and longest row, or its bucket's when the instance has a graph for
// it (padding rows: zero images and pad ids, which change no real row's result: see the bucket
// package). A batch run still holds is released first: this stages it again.
func (m *Model) stage(ctx context.Context, s *stager, run *stagedRun, chunks [][]byte, rows [][]int64) error {
	if run.held {
		run.held = false
		if err := run.staged.Release(); err != nil {
			return err
		}
	}
	width := 0
	for _, r := range rows {
		width = max(width, len(r))
	}
	n := len(rows)
	sh := bucket.Shape{Batch: n, Length: width}
	if b, ok := m.bc.set.Pick(n, width); ok && s.graphs[b] {
		sh = b
	}
	total := 0
	for _, c := range chunks {
		total += len(c)
	}
	if total != n*m.chw {
		return fmt.Errorf("staging: %d bytes of images for %d rows of %d bytes", total, n, m.chw)
	}
	var images []byte
	if len(chunks) == 1 && sh.Batch == n {
		images = chunks[0]
	} else {
		run.images = grow(run.images, sh.Batch*m.chw)
		off := 0
		for _, c := range chunks {
			off += copy(run.images[off:], c)
		}
		clear(run.images[off:])
		images = run.images
	}
	var err error
	if run.ids, err = bucket.PadIDs(run.ids, rows, sh, m.padID); err != nil {
		return err
	}
	st, err := s.st.Stage(ctx, []torch.Tensor{
		{DType: torch.Uint8, Shape: m.imageShape(sh.Batch), Data: images},
		{DType: torch.Int64, Shape: []int64{int64(sh.Batch), int64(sh.Length)}, Data: asBytes(run.ids)},
	})
	if err != nil {
		return err
	}
	run.staged, run.held, run.shape, run.real = st, true, sh, n
	return nil
}

// stageBatch stages the requests of a batch into run.
func (m *Model) stageBatch(ctx context.Context, s *stager, run *stagedRun, batch []*prepared) error {
	t0 := time.Now()
	if s.computing.Load() {
		s.overlapped.Add(1)
	}
	defer func() { run.took += time.Since(t0) }()
	run.chunks, run.rows = run.chunks[:0], run.rows[:0]
	for _, p := range batch {
		run.chunks = append(run.chunks, (*p.images)[:p.n*m.chw])
		run.rows = append(run.rows, p.ids...)
	}
	err := m.stage(ctx, s, run, run.chunks, run.rows)
	clear(run.chunks) // keep no request's memory alive
	clear(run.rows)
	return err
}

// forward runs the batch staged in run (replayed from a graph when its shape has one) and returns the
// logits of its real rows: little-endian float32, numLabels per row.
func (m *Model) forward(ctx context.Context, s *stager, run *stagedRun) ([]byte, error) {
	if !run.held {
		return nil, errors.New("staging: no batch staged")
	}
	run.held, run.took, s.last = false, 0, run.shape
	s.computing.Store(true)
	outs, err := s.st.Forward(ctx, run.staged, s.outs)
	s.computing.Store(false)
	s.outs = outs
	if err != nil {
		return nil, err
	}
	rows := int64(run.shape.Batch)
	if len(outs) == 0 || outs[0].DType != torch.Float32 || len(outs[0].Shape) != 2 ||
		outs[0].Shape[0] != rows || outs[0].Shape[1] != numLabels {
		return nil, fmt.Errorf("the ofa module must return float32 logits of shape [%d,%d], got %d tensors%s", rows, numLabels, len(outs), describe(outs))
	}
	return outs[0].Data[:run.real*numLabels*4], nil
}

// warmBuckets runs one batch of every bucket's shape on every instance (zero images, rows of the
// bucket's length), through the path requests take: a graph replay where one was captured, else an
// eager forward at that shape.
func (m *Model) warmBuckets(ctx context.Context, log *slog.Logger) error {
	t0 := time.Now()
	zeros := make([]byte, m.bc.maxBatch*m.chw)
	var rows [][]int64
	for i, s := range m.stagers {
		for _, sh := range m.bc.set.Shapes() {
			if err := ctx.Err(); err != nil {
				return err
			}
			row := make([]int64, sh.Length)
			row[0] = m.bosID
			for k := 1; k < len(row); k++ {
				row[k] = m.eosID
			}
			rows = rows[:0]
			for range sh.Batch {
				rows = append(rows, row)
			}
			run := &s.runs[0]
			err := m.stage(ctx, s, run, [][]byte{zeros[:sh.Batch*m.chw]}, rows)
			if err == nil {
				_, err = m.forward(ctx, s, run)
			}
			if err != nil {
				return fmt.Errorf("warm-up of bucket %v on instance %d (%s): %w", sh, i, s.device, err)
			}
		}
	}
	log.Info("ofa buckets warmed", "buckets", len(m.bc.set.Shapes()), "instances", len(m.stagers), "duration", time.Since(t0))
	return nil
}

package simulated

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"time"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/backend/instances"
	"github.com/ofaserve/ofaserve/backend/ofa"
	"github.com/ofaserve/ofaserve/batcher"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// Platform is the config.pbtxt platform of this kind.
const Platform = "simulated"

// SleepFunc waits d or until ctx ends (then it returns ctx's error).
type SleepFunc func(ctx context.Context, d time.Duration) error

// TimerSleep is the SleepFunc the kind runs with: a timer, no CPU.
func TimerSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Model is a loaded simulated model version. It implements backend.Model.
type Model struct {
	name    string
	profile Profile
	pipe    *ofa.Pipeline // nil: raw tensors
	outputs []rawOutput   // raw tensors: the config's outputs
	batched bool          // max_batch_size > 0: a raw input's first dim is the batch
	sleep   SleepFunc
	pool    backend.Pool // where requests are prepared (LoadSpec.Pool)
	b       *batcher.Batcher[*item, []backend.Tensor]
}

type rawOutput struct {
	name  string
	width int // elements per batch row
	dims  []int64
}

// item is one prepared request: its batch size, its length in tokens and one seed per row.
type item struct {
	n, length int
	prep      *ofa.Prepared // the ofa inputs, or nil
	seeds     []uint64
	outputs   []int // raw tensors: requested outputs (config indices)
}

// Load loads a simulated model version with the timer sleep. It is a backend.Loader.
func Load(ctx context.Context, spec backend.LoadSpec) (backend.Model, error) {
	return LoadWith(ctx, spec, TimerSleep)
}

// LoadWith is Load with the device's wait done by sleep (tests pass a fake clock's).
func LoadWith(_ context.Context, spec backend.LoadSpec, sleep SleepFunc) (*Model, error) {
	cfg := spec.Config
	prof, err := ReadProfile(cfg.GetParameters())
	if err != nil {
		return nil, err
	}
	m := &Model{name: spec.Name, profile: prof, sleep: sleep, pool: spec.Pool, batched: cfg.GetMaxBatchSize() > 0}
	if hasInput(cfg, ofa.InputImage) {
		if m.pipe, err = ofa.NewPipeline(spec); err != nil {
			return nil, fmt.Errorf("simulated %s (ofa inputs): %w", spec.Name, err)
		}
	} else if m.outputs, err = rawOutputs(cfg); err != nil {
		return nil, err
	}
	bc := backend.BatcherConfig(cfg, len(instances.Devices(cfg)))
	bc.Observer = spec.Observer
	if m.b, err = batcher.NewStaged(bc, stagedDevice{m}); err != nil {
		return nil, err
	}
	return m, nil
}

func hasInput(cfg *modelconfig.ModelConfig, name string) bool {
	for _, in := range cfg.GetInput() {
		if in.GetName() == name {
			return true
		}
	}
	return false
}

func rawOutputs(cfg *modelconfig.ModelConfig) ([]rawOutput, error) {
	var outs []rawOutput
	for _, o := range cfg.GetOutput() {
		if o.GetDataType() != modelconfig.DataType_TYPE_FP32 {
			return nil, fmt.Errorf("simulated: output '%s' must be TYPE_FP32 (raw tensors answer logits)", o.GetName())
		}
		w := 1
		for _, d := range o.GetDims() {
			if d < 1 {
				return nil, fmt.Errorf("simulated: output '%s' must have fixed dims, has %v", o.GetName(), o.GetDims())
			}
			w *= int(d)
		}
		outs = append(outs, rawOutput{name: o.GetName(), width: w, dims: o.GetDims()})
	}
	if len(outs) == 0 {
		return nil, fmt.Errorf("simulated: model '%s' declares no output", cfg.GetName())
	}
	return outs, nil
}

// Profile is the device cost the model waits.
func (m *Model) Profile() Profile { return m.profile }

// Infer admits req to the queue, prepares it (the ofa kind's way, or as raw tensors) in the server's
// preprocessing pool, and runs it in a batch on the simulated device, as the real kinds do
// (instances.RunIn): a request the queue refuses is refused before it is decoded.
func (m *Model) Infer(ctx context.Context, req *backend.Request) (*backend.Response, error) {
	n := 1
	if m.batched && len(req.Inputs) > 0 && len(req.Inputs[0].Shape) > 0 {
		n = max(1, int(req.Inputs[0].Shape[0]))
	}
	slot := batcher.Slot{Size: n, Priority: req.Priority, Timeout: req.Timeout, Start: req.Start}
	outs, err := instances.RunIn(ctx, m.b, m.pool, m.name, slot, func() (batcher.Item[*item], error) {
		it, err := m.prepare(req)
		if err != nil {
			return batcher.Item[*item]{}, err
		}
		return batcher.Item[*item]{Value: it, Length: it.length}, nil
	})
	if err != nil {
		return nil, err
	}
	return &backend.Response{Outputs: outs}, nil
}

// Precheck refuses before the request is read when the queue is full at every level (backend.Prechecker).
func (m *Model) Precheck() error {
	if err := m.b.Precheck(); err != nil {
		return backend.SubmitError(err)
	}
	return nil
}

func (m *Model) prepare(req *backend.Request) (*item, error) {
	if m.pipe != nil {
		p, err := m.pipe.Prepare(req)
		if err != nil {
			return nil, err
		}
		it := &item{n: p.N(), length: p.Length(), prep: p, seeds: make([]uint64, p.N())}
		for i, ids := range p.IDs() {
			h := fnv.New64a()
			for _, id := range ids {
				_ = binary.Write(h, binary.LittleEndian, id)
			}
			it.seeds[i] = h.Sum64()
		}
		return it, nil
	}
	n := 1
	if m.batched && len(req.Inputs) > 0 && len(req.Inputs[0].Shape) > 0 {
		n = int(req.Inputs[0].Shape[0])
	}
	it := &item{n: max(1, n), seeds: make([]uint64, max(1, n))}
	it.outputs = backend.RequestedOutputs(req.Outputs, len(m.outputs), func(name string) (int, bool) {
		for i, o := range m.outputs {
			if o.name == name {
				return i, true
			}
		}
		return 0, false
	})
	for i := range it.seeds {
		h := fnv.New64a()
		for _, t := range req.Inputs {
			// Row i of t: its data split evenly over the n rows (BYTES tensors hash whole).
			if len(t.Data)%it.n == 0 {
				w := len(t.Data) / it.n
				_, _ = h.Write(t.Data[i*w : (i+1)*w])
			} else {
				_, _ = h.Write(t.Data)
			}
		}
		it.seeds[i] = h.Sum64()
	}
	return it, nil
}

// stagedDevice runs the batcher's early hand-off as the ofa kind does (batcher.NewStaged): an instance is
// handed its next batch while the current one runs. The simulated device has no host-to-device copy, so
// Stage does nothing.
type stagedDevice struct{ m *Model }

func (stagedDevice) Stage(context.Context, batcher.Run, []*item) error { return nil }

func (d stagedDevice) Exec(ctx context.Context, _ batcher.Run, batch []*item) ([][]backend.Tensor, batcher.Timing, error) {
	return d.m.exec(ctx, 0, batch)
}

// exec is the device: it waits t(b, L) for the batch, then answers every request.
func (m *Model) exec(ctx context.Context, _ int, batch []*item) ([][]backend.Tensor, batcher.Timing, error) {
	b, l := 0, 0
	for _, it := range batch {
		b += it.n
		l = max(l, it.length)
	}
	d := m.profile.Time(b, l)
	if err := m.sleep(ctx, d); err != nil {
		return nil, batcher.Timing{}, backend.Errorf(backend.CodeUnavailable, "simulated device: %v", err)
	}
	res := make([][]backend.Tensor, len(batch))
	for k, it := range batch {
		res[k] = m.answer(it)
	}
	return res, batcher.Timing{Infer: d}, nil
}

// logit is element k of the row seeded by seed: a deterministic number in [-4, 4).
func logit(seed uint64, k int) float32 {
	x := seed ^ (uint64(k)+1)*0x9e3779b97f4a7c15
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return float32(x>>40)/float32(1<<24)*8 - 4
}

func (m *Model) answer(it *item) []backend.Tensor {
	if it.prep != nil {
		logits := make([]float32, 0, it.n*ofa.NumLabels)
		for _, s := range it.seeds {
			for k := range ofa.NumLabels {
				logits = append(logits, logit(s, k))
			}
		}
		return m.pipe.Respond(it.prep, logits)
	}
	outs := make([]backend.Tensor, 0, len(it.outputs))
	for _, o := range it.outputs {
		spec := m.outputs[o]
		t := backend.Tensor{Name: spec.name, Datatype: "FP32", Shape: append([]int64{int64(it.n)}, spec.dims...)}
		if !m.batched {
			t.Shape = append([]int64(nil), spec.dims...)
		}
		t.Data = make([]byte, 0, 4*it.n*spec.width)
		for _, s := range it.seeds {
			for k := range spec.width {
				t.Data = binary.LittleEndian.AppendUint32(t.Data, math.Float32bits(logit(s, o<<20|k)))
			}
		}
		outs = append(outs, t)
	}
	return outs
}

// Stats returns the batcher's statistics.
func (m *Model) Stats() batcher.Stats { return m.b.Stats() }

// Close stops accepting requests and lets queued ones finish (bounded by ctx).
func (m *Model) Close(ctx context.Context) error { return m.b.Stop(ctx) }

var _ backend.Model = (*Model)(nil)

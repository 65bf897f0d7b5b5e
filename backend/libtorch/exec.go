package libtorch

import (
	"context"
	"sync/atomic"
	"time"

	torch "github.com/ofaserve/ofaserve/libtorch"
	"github.com/ofaserve/ofaserve/protocol/datatype"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
)

// vouchWindow is how many executions in a row may fail before a lone failing request is no longer blamed on
// its input: a model that gave results within its last vouchWindow executions is working, so a batch of one
// that fails is the request's fault (400); after that many failures in a row the model or its device is
// suspect (500). A window rather than the last batch alone, so that two bad requests in a row get the same
// answer.
const vouchWindow = 8

// guilt is what exec keeps to fail only the guilty requests of a failed batch (backend.Bisect).
type guilt struct {
	count    backend.BisectCounter
	okOnce   atomic.Bool  // some execution gave a request its result since the load
	failures atomic.Int32 // executions in a row since the last one that gave some request its result
}

// trusted reports whether the model vouches for itself when a lone request fails.
func (g *guilt) trusted() bool { return g.okOnce.Load() && g.failures.Load() < vouchWindow }

// record notes an execution's outcome.
func (g *guilt) record(succeeded int) {
	if succeeded > 0 {
		g.okOnce.Store(true)
		g.failures.Store(0)
		return
	}
	g.failures.Add(1)
}

// exec runs one batch on instance inst. When the forward fails, backend.Bisect re-runs the batch in halves
// so that only the requests that fail on their own fail (each result then carries its error); the others
// get their outputs. A batch of one that fails is not re-run.
func (m *Model) exec(ctx context.Context, inst int, batch []*prepared) ([]*result, batcher.Timing, error) {
	var timing batcher.Timing
	add := func(t batcher.Timing) {
		timing.Input += t.Input
		timing.Infer += t.Infer
		timing.Output += t.Output
	}
	o := backend.Bisect(ctx, batch, m.guilt.trusted(), func(ctx context.Context, part []*prepared) ([]*result, error) {
		res, t, err := m.run(ctx, inst, part)
		add(t)
		return res, err
	})
	m.guilt.record(o.Succeeded)
	m.guilt.count.Add(o.Alone, o.Guilty, o.Runs, o.Bisected)
	if o.Succeeded == 0 {
		// Nothing ran (a batch of one that failed, a cancelled batch) or every request failed alone: the
		// batch fails as a whole, so that a caller outside the batcher (warm-up) sees it.
		return nil, timing, o.Errs[0]
	}
	for i, err := range o.Errs {
		if err != nil {
			o.Results[i] = &result{err: err}
		}
	}
	return o.Results, timing, nil
}

// run runs one batch (or part of one) on instance inst: concatenate, forward, split.
func (m *Model) run(ctx context.Context, inst int, batch []*prepared) ([]*result, batcher.Timing, error) {
	var timing batcher.Timing
	t0 := time.Now()
	first := batch[0]
	rows := 0
	for _, p := range batch {
		rows += p.batch
	}
	sc := &m.scratch[inst]
	if sc.bufs == nil {
		sc.bufs = make([][]byte, len(m.inputs))
	}
	args := make([]torch.Tensor, 0, len(m.inputs))
	byPos := make([]int, len(m.inputs)) // position -> config index, -1 when absent
	for i := range byPos {
		byPos[i] = -1
	}
	for i := range m.inputs {
		if first.present[i] {
			byPos[m.inputs[i].pos] = i
		}
	}
	for _, i := range byPos {
		if i < 0 {
			break // only trailing optional inputs are ever absent
		}
		spec := &m.inputs[i]
		t0in := first.inputs[i]
		var data []byte
		if len(batch) == 1 {
			data = t0in.Data
		} else {
			n := 0
			for _, p := range batch {
				n += len(p.inputs[i].Data)
			}
			buf := sc.bufs[i]
			if cap(buf) < n {
				buf = make([]byte, 0, n)
			}
			buf = buf[:0]
			for _, p := range batch {
				buf = append(buf, p.inputs[i].Data...)
			}
			sc.bufs[i] = buf
			data = buf
		}
		shape := modelShape(t0in.Shape, spec.reshape, m.maxBatch > 0, rows)
		args = append(args, torch.Tensor{DType: spec.dtype, Shape: shape, Data: data})
	}
	t1 := time.Now()
	timing.Input = t1.Sub(t0)
	outs, err := m.set.Modules[inst].Forward(ctx, args)
	t2 := time.Now()
	timing.Infer = t2.Sub(t1)
	if err != nil {
		return nil, timing, backend.Errorf(backend.CodeInternal, "PyTorch execute failure: %v", err)
	}
	results, err := m.split(batch, rows, outs)
	timing.Output = time.Since(t2)
	return results, timing, err
}

// modelShape is the shape forward sees for a request tensor of the given
// protocol shape: the batch dim becomes rows, and a reshape replaces the
// other dims (its -1 resolved from the element count).
func modelShape(shape, reshape []int64, batched bool, rows int) []int64 {
	inner := shape
	if batched {
		inner = shape[1:]
	}
	if reshape != nil {
		n, _, _ := datatype.ElementCount(inner)
		inner = resolve(reshape, n)
	}
	if !batched {
		return inner
	}
	return append([]int64{int64(rows)}, inner...)
}

// resolve fills the one -1 of dims so that the product is n.
func resolve(dims []int64, n int64) []int64 {
	out := append([]int64(nil), dims...)
	fixed, _, _ := datatype.ElementCount(dims)
	hole := -1
	for i, d := range out {
		if d == -1 {
			hole = i
		}
	}
	if hole >= 0 && fixed > 0 {
		out[hole] = n / fixed
	}
	return out
}

// split checks forward's outputs against the config and hands each request
// its rows of the outputs it asked for.
func (m *Model) split(batch []*prepared, rows int, outs []torch.Tensor) ([]*result, error) {
	type view struct {
		shape   []int64 // protocol shape of the whole batch
		rowSize int     // bytes per row (whole tensor without batching)
		data    []byte
	}
	views := make([]view, len(m.outputs))
	needed := make([]bool, len(m.outputs))
	for _, p := range batch {
		for _, o := range p.outputs {
			needed[o] = true
		}
	}
	for i := range m.outputs {
		if !needed[i] {
			continue
		}
		spec := &m.outputs[i]
		if spec.pos >= len(outs) {
			return nil, backend.Errorf(backend.CodeInternal, "output '%s' maps to output %d of forward, which returned %d tensors", spec.name, spec.pos, len(outs))
		}
		t := outs[spec.pos]
		if t.DType != spec.dtype {
			return nil, backend.Errorf(backend.CodeInternal, "output '%s' is %v but the config declares %s", spec.name, t.DType, spec.datatype)
		}
		shape := t.Shape
		if m.maxBatch > 0 {
			if len(shape) == 0 || shape[0] != int64(rows) {
				return nil, backend.Errorf(backend.CodeInternal, "output '%s' has shape %v; its first dimension must be the batch size %d", spec.name, shape, rows)
			}
		}
		if spec.reshape != nil {
			// The module produced the reshape view; clients see dims.
			inner := shape
			if m.maxBatch > 0 {
				inner = shape[1:]
			}
			n, _, _ := datatype.ElementCount(inner)
			d := resolve(spec.dims, n)
			if m.maxBatch > 0 {
				d = append([]int64{int64(rows)}, d...)
			}
			shape = d
		}
		if !matchDims(shape, spec.dims, m.maxBatch > 0) {
			return nil, backend.Errorf(backend.CodeInternal, "output '%s' has shape %v, which does not match the config's dims %s", spec.name, shape, dimsString(spec.dims, m.maxBatch > 0))
		}
		v := view{shape: shape, data: t.Data}
		if m.maxBatch > 0 && rows > 0 {
			v.rowSize = len(t.Data) / rows
		}
		views[i] = v
	}
	results := make([]*result, len(batch))
	row := 0
	for bi, p := range batch {
		r := &result{outputs: make([]backend.Tensor, 0, len(p.outputs))}
		for _, o := range p.outputs {
			v := views[o]
			t := backend.Tensor{Name: m.outputs[o].name, Datatype: m.outputs[o].datatype}
			if m.maxBatch > 0 {
				t.Shape = append([]int64{int64(p.batch)}, v.shape[1:]...)
				t.Data = v.data[row*v.rowSize : (row+p.batch)*v.rowSize : (row+p.batch)*v.rowSize]
			} else {
				t.Shape = v.shape
				t.Data = v.data
			}
			r.outputs = append(r.outputs, t)
		}
		row += p.batch
		results[bi] = r
	}
	return results, nil
}

// matchDims reports whether a full shape fits config dims (plus the batch
// dim when batched).
func matchDims(shape, dims []int64, batched bool) bool {
	if batched {
		if len(shape) == 0 {
			return false
		}
		shape = shape[1:]
	}
	if len(shape) != len(dims) {
		return false
	}
	for i, d := range dims {
		if d != -1 && d != shape[i] {
			return false
		}
	}
	return true
}

// dimsString prints config dims the way Triton's messages show the full
// shape: with -1 for the batch dim of a batching model.
func dimsString(dims []int64, batched bool) string {
	if batched {
		return backend.FormatShape(append([]int64{-1}, dims...))
	}
	return backend.FormatShape(dims)
}

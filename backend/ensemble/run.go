package ensemble

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/ofaserve/ofaserve/backend"
)

// value is an ensemble tensor a request has made: its data and the batch
// size of the request that made it (0 when that model does not batch).
type value struct {
	t     backend.Tensor
	batch int64
}

// done is one step's answer.
type done struct {
	step  int
	resp  *backend.Response
	batch int64 // the step request's batch size (0: its model does not batch)
	err   error
	took  time.Duration
}

// run is one request going through the graph. Only the goroutine that
// called run touches its fields; step goroutines report on answers.
type run struct {
	m        *Model
	req      *backend.Request
	tensors  map[string]value
	missing  []int // per step: tensors it reads that are not made yet
	answers  chan done
	stepTime time.Duration // summed over the steps
}

func newRun(m *Model, req *backend.Request) *run {
	p := m.plan
	r := &run{m: m, req: req, tensors: make(map[string]value, len(p.readers)+len(p.outputs)),
		missing: make([]int, len(p.steps)), answers: make(chan done, len(p.steps))}
	for i, st := range p.steps {
		r.missing[i] = len(st.reads)
	}
	return r
}

// run sends every step once its inputs exist and returns the requested
// ensemble outputs, or the first step's error. It returns only after every
// step it sent has answered, so no step outlives the request.
func (r *run) run(ctx context.Context) (*backend.Response, error) {
	p := r.m.plan
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var batch int64
	if p.batching && len(r.req.Inputs) > 0 && len(r.req.Inputs[0].Shape) > 0 {
		batch = r.req.Inputs[0].Shape[0]
	}
	// Every ensemble input exists from the start, even an optional one the
	// request left out: a step reading it just goes without.
	for _, in := range r.req.Inputs {
		r.tensors[in.Name] = value{t: in, batch: batch}
	}
	var ready []int
	for _, name := range p.inputs {
		ready = r.made(name, ready)
	}
	running, finished := 0, 0
	var first error
	for {
		if first == nil {
			for _, i := range ready {
				running++
				r.start(sctx, i)
			}
		}
		ready = ready[:0]
		if running == 0 {
			break
		}
		d := <-r.answers
		running--
		finished++
		r.stepTime += d.took
		if first != nil {
			continue
		}
		if d.err != nil {
			first = r.stepError(ctx, d)
			cancel()
			continue
		}
		var err error
		if ready, err = r.take(d, ready); err != nil {
			first = err
			cancel()
		}
	}
	if first != nil {
		return nil, first
	}
	if finished != len(p.steps) {
		return nil, backend.Errorf(backend.CodeInternal, "in ensemble '%s', only %d of %d steps could run", p.name, finished, len(p.steps))
	}
	return r.response(), nil
}

// made marks tensor name as made and appends the steps it completes to ready.
func (r *run) made(name string, ready []int) []int {
	for _, i := range r.m.plan.readers[name] {
		if r.missing[i]--; r.missing[i] == 0 {
			ready = append(ready, i)
		}
	}
	return ready
}

// start looks step i's model up, builds its request from the tensors it
// reads and sends it; the answer comes back on r.answers.
func (r *run) start(ctx context.Context, i int) {
	st := &r.m.plan.steps[i]
	begin := time.Now()
	model, err := r.m.models.Model(st.model, st.version)
	if err != nil {
		r.answers <- done{step: i, err: backend.Errorf(backend.CodeUnavailable, "%s", messageOf(err)), took: time.Since(begin)}
		return
	}
	sig := model.Signature()
	batching := sig.MaxBatchSize > 0
	req := &backend.Request{ID: r.req.ID, Priority: r.req.Priority, Timeout: r.req.Timeout, Parameters: r.req.Parameters,
		Inputs: make([]backend.Tensor, 0, len(st.inputs)), Outputs: make([]string, 0, len(st.outputs)), Start: begin}
	batch := int64(0)
	for _, b := range st.inputs {
		v, ok := r.tensors[b.tensor]
		if !ok {
			continue // an optional ensemble input the request left out
		}
		t := v.t
		t.Name = b.model
		if spec := specOf(sig.Inputs, b.model); spec != nil {
			t.Shape = reshape(spec.Dims, batching, v.batch, t.Shape)
		}
		if batching && batch == 0 && len(t.Shape) > 0 {
			batch = t.Shape[0]
		}
		req.Inputs = append(req.Inputs, t)
	}
	for _, b := range st.outputs {
		req.Outputs = append(req.Outputs, b.model)
	}
	go func() {
		resp, err := model.Infer(ctx, req)
		if err == nil && resp == nil {
			err = backend.Errorf(backend.CodeInternal, "model '%s' returned no response", st.model)
		}
		r.answers <- done{step: i, resp: resp, batch: batch, err: err, took: time.Since(begin)}
	}()
}

// take stores a step's outputs as ensemble tensors and appends the steps
// that can now run to ready.
func (r *run) take(d done, ready []int) ([]int, error) {
	st := &r.m.plan.steps[d.step]
	for _, b := range st.outputs {
		t := outputOf(d.resp, b.model)
		if t == nil {
			return ready, backend.Errorf(backend.CodeInternal, "in ensemble '%s', step %d (model '%s') did not produce output '%s'", r.m.plan.name, d.step, st.model, b.model)
		}
		r.tensors[b.tensor] = value{t: *t, batch: d.batch}
		ready = r.made(b.tensor, ready)
	}
	return ready, nil
}

// stepError is the error a failed step gives the client: the step model's
// message and code, with the ensemble and the step named; or, when the
// ensemble request itself was cancelled or ran out of time, that.
func (r *run) stepError(ctx context.Context, d done) error {
	name := r.m.plan.name
	if err := ctx.Err(); err != nil {
		msg := "request cancelled"
		if errors.Is(err, context.DeadlineExceeded) {
			msg = "request deadline exceeded"
		}
		return &backend.Error{Code: backend.CodeOf(err), Msg: "in ensemble '" + name + "': " + msg, Err: err}
	}
	st := &r.m.plan.steps[d.step]
	return &backend.Error{Code: backend.CodeOf(d.err), Err: d.err,
		Msg: "in ensemble '" + name + "', step " + strconv.Itoa(d.step) + " (model '" + st.model + "'): " + messageOf(d.err)}
}

// response assembles the requested ensemble outputs, in config order.
func (r *run) response() *backend.Response {
	p := r.m.plan
	resp := &backend.Response{}
	for _, name := range p.outputs {
		if len(r.req.Outputs) > 0 && !slices.Contains(r.req.Outputs, name) {
			continue
		}
		v, ok := r.tensors[name]
		if !ok {
			continue
		}
		t := v.t
		t.Name = name
		t.Shape = reshape(p.outDims[name], p.batching, v.batch, t.Shape)
		resp.Outputs = append(resp.Outputs, t)
	}
	return resp
}

// reshape moves a tensor between batching and non-batching models as
// Triton's ensemble scheduler does (ReshapeTensorDims): dims are the
// reader's config dims, batching whether the reader batches, batch the
// batch size of the tensor's maker (0: the maker does not batch).
func reshape(dims []int64, batching bool, batch int64, shape []int64) []int64 {
	if batching == (batch != 0) {
		return shape
	}
	if batching {
		if dimsMatch(dims, shape) {
			return append([]int64{1}, shape...)
		}
		return shape
	}
	if !dimsMatch(dims, shape) && batch == 1 && len(shape) > 0 {
		return shape[1:]
	}
	return shape
}

func outputOf(resp *backend.Response, name string) *backend.Tensor {
	for i := range resp.Outputs {
		if resp.Outputs[i].Name == name {
			return &resp.Outputs[i]
		}
	}
	return nil
}

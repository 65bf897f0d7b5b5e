package ensemble

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
)

// Platform is the config platform of an ensemble, and the name its loader
// is registered under.
const Platform = "ensemble"

// Models is how an ensemble reaches its step models; cmd/ofaserve passes
// the model repository.
type Models interface {
	// Model returns a ready version of a model; version 0 is the latest
	// ready one. Errors carry backend codes.
	Model(name string, version int64) (Step, error)
}

// Step is a step's model as the ensemble calls it: the repository's model
// handle, which validates every request before the model's batcher queues
// it.
type Step interface {
	// Signature is what the step's requests are validated against.
	Signature() *backend.Signature
	// Infer validates and runs one request.
	Infer(ctx context.Context, req *backend.Request) (*backend.Response, error)
}

// NewLoader returns the loader of the ensemble kind: it loads ensembles
// whose steps are served by models.
func NewLoader(models Models) backend.Loader {
	return func(ctx context.Context, spec backend.LoadSpec) (backend.Model, error) {
		return Load(ctx, spec, models)
	}
}

// Load checks an ensemble's graph and its mapping onto the step models,
// which must be ready in models, and returns the ensemble.
func Load(_ context.Context, spec backend.LoadSpec, models Models) (*Model, error) {
	if models == nil {
		return nil, errors.New("ensemble: no models to run the steps on")
	}
	p, err := newPlan(spec.Config)
	if err != nil {
		return nil, err
	}
	sigs := make([]*backend.Signature, len(p.steps))
	for i, st := range p.steps {
		m, err := models.Model(st.model, st.version)
		if err != nil {
			return nil, invalid("ensemble '%s' depends on '%s' which has no loaded version: %s", p.name, st.model, messageOf(err))
		}
		sigs[i] = m.Signature()
	}
	if err := p.checkMapping(spec.Config, sigs); err != nil {
		return nil, err
	}
	m := &Model{plan: p, models: models}
	m.stats.Failures = map[batcher.FailReason]uint64{batcher.FailRejected: 0, batcher.FailCanceled: 0, batcher.FailBackend: 0, batcher.FailOther: 0}
	m.stats.Batches = map[int]batcher.BatchStats{}
	return m, nil
}

// Model is a loaded ensemble. Its methods are safe for concurrent use.
type Model struct {
	plan   *plan
	models Models

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup
	stats    batcher.Stats
}

// Infer runs a validated request through the steps (see the package doc).
func (m *Model) Infer(ctx context.Context, req *backend.Request) (*backend.Response, error) {
	start := req.Start
	if start.IsZero() {
		start = time.Now()
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, backend.Errorf(backend.CodeUnavailable, "ensemble '%s' is unloading", m.plan.name)
	}
	m.inflight.Add(1)
	m.mu.Unlock()
	defer m.inflight.Done()

	r := newRun(m, req)
	sent := time.Now()
	resp, err := r.run(ctx)
	m.record(req, start, sent, r.stepTime, err)
	return resp, err
}

// record counts one finished request (docs/triton-batcher-and-kserve-v2.md
// §1.11; the package doc says how compute is counted).
func (m *Model) record(req *backend.Request, start, sent time.Time, steps time.Duration, err error) {
	end := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.stats
	if err != nil {
		s.Fail.Count++
		s.Fail.Total += end.Sub(start)
		s.Failures[batcher.FailOther]++
		return
	}
	units := batchOf(req, m.plan.batching)
	s.Success.Count++
	s.Success.Total += end.Sub(start)
	s.Queue.Count++
	s.Queue.Total += sent.Sub(start)
	s.ComputeInput.Count++
	s.ComputeInfer.Count++
	s.ComputeInfer.Total += steps
	s.ComputeOutput.Count++
	s.InferenceCount += uint64(units)
	s.ExecutionCount++
	bs := s.Batches[units]
	bs.Executions++
	bs.ComputeInfer += steps
	s.Batches[units] = bs
	if end.After(s.LastInference) {
		s.LastInference = end
	}
}

// Stats returns the ensemble's own cumulative statistics.
func (m *Model) Stats() batcher.Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	s.Failures, s.Batches = maps.Clone(m.stats.Failures), maps.Clone(m.stats.Batches)
	return s
}

// Close refuses new requests and waits, up to ctx, for the running ones.
func (m *Model) Close(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	done := make(chan struct{})
	go func() { m.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ensemble '%s': requests still running: %w", m.plan.name, ctx.Err())
	}
}

// batchOf is a request's batch size: its first input's leading dimension
// when the model batches, else 1 (Triton counts max(1, batch)).
func batchOf(req *backend.Request, batching bool) int {
	if batching && len(req.Inputs) > 0 && len(req.Inputs[0].Shape) > 0 {
		return max(1, int(req.Inputs[0].Shape[0]))
	}
	return 1
}

// messageOf is what a client would read of err.
func messageOf(err error) string {
	var be *backend.Error
	if errors.As(err, &be) {
		return be.Msg
	}
	return err.Error()
}

package ensemble

import (
	"context"
	"encoding/binary"
	"math"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// fakeStep is a step model for tests: requests are validated against its
// signature, as the repository's handle does, and then either queued in a
// real dynamic batcher (batch) or answered by fn.
type fakeStep struct {
	sig   backend.Signature
	fn    func(ctx context.Context, req *backend.Request) (*backend.Response, error)
	batch *batcher.Batcher[*backend.Request, *backend.Response]

	mu    sync.Mutex
	calls int
}

func (f *fakeStep) Signature() *backend.Signature { return &f.sig }

func (f *fakeStep) Infer(ctx context.Context, req *backend.Request) (*backend.Response, error) {
	if err := f.sig.Validate(req); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	if f.batch != nil {
		size := 1
		if f.sig.MaxBatchSize > 0 {
			size = int(req.Inputs[0].Shape[0])
		}
		resp, err := f.batch.Submit(ctx, batcher.Item[*backend.Request]{Value: req, Size: size})
		if err != nil {
			return nil, backend.SubmitError(err)
		}
		return resp, nil
	}
	return f.fn(ctx, req)
}

func (f *fakeStep) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// fakeModels serves fake steps by name; a version other than 0 or 1 is not found.
type fakeModels map[string]*fakeStep

func (fm fakeModels) Model(name string, version int64) (Step, error) {
	if s, ok := fm[name]; ok && version <= 1 {
		return s, nil
	}
	return nil, backend.Errorf(backend.CodeNotFound, "Request for unknown model: '%s' is not found", name)
}

// parseConfig reads a config.pbtxt text; name is set when the text has none.
func parseConfig(t testing.TB, name, text string) *modelconfig.ModelConfig {
	t.Helper()
	cfg := &modelconfig.ModelConfig{}
	if err := prototext.Unmarshal([]byte(text), cfg); err != nil {
		t.Fatalf("config %s: %v", name, err)
	}
	if cfg.Name == "" {
		cfg.Name = name
	}
	return cfg
}

// load loads an ensemble config over models, as the repository would.
func load(t testing.TB, text string, models Models) (*Model, error) {
	t.Helper()
	cfg := parseConfig(t, "ens", text)
	return Load(context.Background(), backend.LoadSpec{Name: cfg.Name, Version: 1, Config: cfg, Signature: backend.SignatureOf(cfg.Name, cfg)}, models)
}

// mustLoad is load that fails the test on an error.
func mustLoad(t testing.TB, text string, models Models) *Model {
	t.Helper()
	m, err := load(t, text, models)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

// infer validates req against the ensemble's signature (the repository's
// handle does) and runs it.
func infer(ctx context.Context, m *Model, sig backend.Signature, req *backend.Request) (*backend.Response, error) {
	if err := sig.Validate(req); err != nil {
		return nil, err
	}
	return m.Infer(ctx, req)
}

func f32(name string, shape []int64, v ...float32) backend.Tensor {
	data := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(x))
	}
	return backend.Tensor{Name: name, Datatype: "FP32", Shape: shape, Data: data}
}

func floats(t backend.Tensor) []float32 {
	out := make([]float32, len(t.Data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out
}

// addSubSig is Triton's "simple" model: INPUT0, INPUT1 FP32 [4] ->
// OUTPUT0 = INPUT0+INPUT1, OUTPUT1 = INPUT0-INPUT1.
func addSubSig(name string, maxBatch int) backend.Signature {
	spec := func(n string) backend.TensorSpec {
		return backend.TensorSpec{Name: n, Datatype: "FP32", Dims: []int64{4}}
	}
	return backend.Signature{Name: name, MaxBatchSize: maxBatch,
		Inputs:  []backend.TensorSpec{spec("INPUT0"), spec("INPUT1")},
		Outputs: []backend.TensorSpec{spec("OUTPUT0"), spec("OUTPUT1")}}
}

// addSub computes the "simple" model on one request.
func addSub(req *backend.Request) *backend.Response {
	a, b := floats(req.Inputs[0]), floats(req.Inputs[1])
	if req.Inputs[0].Name != "INPUT0" {
		a, b = b, a
	}
	sum, diff := make([]float32, len(a)), make([]float32, len(a))
	for i := range a {
		sum[i], diff[i] = a[i]+b[i], a[i]-b[i]
	}
	shape := req.Inputs[0].Shape
	resp := &backend.Response{}
	for _, o := range []backend.Tensor{f32("OUTPUT0", shape, sum...), f32("OUTPUT1", shape, diff...)} {
		if len(req.Outputs) == 0 || containsName(req.Outputs, o.Name) {
			resp.Outputs = append(resp.Outputs, o)
		}
	}
	return resp
}

func containsName(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// newAddSub is the "simple" model answering at once.
func newAddSub(name string, maxBatch int) *fakeStep {
	return &fakeStep{sig: addSubSig(name, maxBatch), fn: func(_ context.Context, req *backend.Request) (*backend.Response, error) {
		return addSub(req), nil
	}}
}

// newBatchedAddSub is the "simple" model behind a real dynamic batcher
// with the given queue delay, so that concurrent requests share batches.
func newBatchedAddSub(t testing.TB, name string, delay time.Duration) *fakeStep {
	t.Helper()
	f := &fakeStep{sig: addSubSig(name, 16)}
	b, err := batcher.New(batcher.Config{MaxBatchSize: 16, MaxQueueDelay: delay},
		func(_ context.Context, _ int, batch []*backend.Request) ([]*backend.Response, batcher.Timing, error) {
			out := make([]*backend.Response, len(batch))
			for i, req := range batch {
				out[i] = addSub(req)
			}
			return out, batcher.Timing{}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop(context.Background()) })
	f.batch = b
	return f
}

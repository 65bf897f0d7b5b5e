package server

import (
	"context"
	"encoding/binary"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// fakeModel is an in-process model for frontend tests. Like the
// repository's model handle it validates every request against its
// signature; its infer function then computes outputs from inputs, and it
// records the last request it saw.
type fakeModel struct {
	name     string
	version  int64
	mbs      int
	inputs   []backend.TensorSpec
	outputs  []backend.TensorSpec
	notReady bool
	precheck error // what Precheck answers
	infer    func(req *backend.Request) (*backend.Response, error)
	stats    batcher.Stats
	loadDur  time.Duration
	warmDur  time.Duration

	mu   sync.Mutex
	last *backend.Request
}

func (m *fakeModel) Name() string     { return m.name }
func (m *fakeModel) Version() int64   { return m.version }
func (m *fakeModel) Platform() string { return "pytorch_libtorch" }
func (m *fakeModel) Config() *modelconfig.ModelConfig {
	cfg := &modelconfig.ModelConfig{Name: m.name, Platform: "pytorch_libtorch", MaxBatchSize: int32(m.mbs)}
	return cfg
}
func (m *fakeModel) Signature() *backend.Signature {
	return &backend.Signature{Name: m.name, MaxBatchSize: m.mbs, Inputs: m.inputs, Outputs: m.outputs}
}
func (m *fakeModel) Ready() bool                   { return !m.notReady }
func (m *fakeModel) LoadDuration() time.Duration   { return m.loadDur }
func (m *fakeModel) WarmupDuration() time.Duration { return m.warmDur }
func (m *fakeModel) Stats() batcher.Stats          { return m.stats }
func (m *fakeModel) Infer(ctx context.Context, req *backend.Request) (*backend.Response, error) {
	if err := m.Signature().Validate(req); err != nil {
		return nil, err
	}
	m.mu.Lock()
	cp := *req
	m.last = &cp
	m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return m.infer(req)
}

func (m *fakeModel) Precheck() error { return m.precheck }

func (m *fakeModel) lastRequest() *backend.Request {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// fakeRepo holds fake models keyed by name and version.
type fakeRepo struct {
	mu       sync.Mutex
	models   map[string]map[int64]*fakeModel
	explicit bool
	notReady bool
	loads    []string
	unloads  []string
}

func (r *fakeRepo) add(m *fakeModel) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.models == nil {
		r.models = map[string]map[int64]*fakeModel{}
	}
	if r.models[m.name] == nil {
		r.models[m.name] = map[int64]*fakeModel{}
	}
	r.models[m.name][m.version] = m
}

func (r *fakeRepo) Model(name string, version int64) (Model, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	vs := r.models[name]
	if len(vs) == 0 {
		return nil, backend.Errorf(backend.CodeNotFound, "Request for unknown model: '%s' is not found", name)
	}
	if version <= 0 {
		var best *fakeModel
		for _, m := range vs {
			if !m.notReady && (best == nil || m.version > best.version) {
				best = m
			}
		}
		if best == nil {
			return nil, backend.Errorf(backend.CodeNotFound, "Request for unknown model: '%s' has no available versions", name)
		}
		return best, nil
	}
	m := vs[version]
	if m == nil {
		return nil, backend.Errorf(backend.CodeNotFound, "Request for unknown model: '%s' version %d is not found", name, version)
	}
	if m.notReady {
		return nil, backend.Errorf(backend.CodeUnavailable, "Request for unknown model: '%s' version %d is not at ready state", name, version)
	}
	return m, nil
}

func (r *fakeRepo) Index(readyOnly bool) []IndexEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []IndexEntry
	for _, vs := range r.models {
		for _, m := range vs {
			st := "READY"
			if m.notReady {
				st = "UNAVAILABLE"
			}
			if readyOnly && m.notReady {
				continue
			}
			out = append(out, IndexEntry{Name: m.name, Version: m.version, State: st})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Version < out[j].Version
	})
	return out
}

func (r *fakeRepo) Load(_ context.Context, name string, _ *modelconfig.ModelConfig) error {
	return r.control(&r.loads, name)
}

func (r *fakeRepo) Unload(_ context.Context, name string) error {
	return r.control(&r.unloads, name)
}

// control records a load or unload of name in list, refused unless the
// repository is in explicit mode.
func (r *fakeRepo) control(list *[]string, name string) error {
	if !r.explicit {
		return backend.Errorf(backend.CodeInvalidArg, "explicit model load / unload is not allowed if polling is enabled")
	}
	r.mu.Lock()
	*list = append(*list, name)
	r.mu.Unlock()
	return nil
}

func (r *fakeRepo) Ready() bool { return !r.notReady }

func i32s(b []byte) []int32 {
	out := make([]int32, len(b)/4)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

func i32bytes(v []int32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, uint32(x))
	}
	return b
}

func f32bytes(v []float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

// simpleModel is Triton's "simple": OUTPUT0 = INPUT0 + INPUT1 and
// OUTPUT1 = INPUT0 - INPUT1 over INT32 [16], max_batch_size 8.
func simpleModel() *fakeModel {
	m := &fakeModel{
		name: "simple", version: 1, mbs: 8, loadDur: 2500 * time.Millisecond, warmDur: 750 * time.Millisecond,
		inputs:  []backend.TensorSpec{{Name: "INPUT0", Datatype: "INT32", Dims: []int64{16}}, {Name: "INPUT1", Datatype: "INT32", Dims: []int64{16}}},
		outputs: []backend.TensorSpec{{Name: "OUTPUT0", Datatype: "INT32", Dims: []int64{16}}, {Name: "OUTPUT1", Datatype: "INT32", Dims: []int64{16}}},
		stats: batcher.Stats{
			Success: batcher.Duration{Count: 6, Total: 600 * time.Microsecond}, Queue: batcher.Duration{Count: 6, Total: 60 * time.Microsecond},
			ComputeInfer:   batcher.Duration{Count: 6, Total: 300 * time.Microsecond},
			Failures:       map[batcher.FailReason]uint64{batcher.FailRejected: 2},
			InferenceCount: 6, ExecutionCount: 2, Pending: 3, LastInference: time.UnixMilli(1700000000000),
			Batches: map[int]batcher.BatchStats{1: {Executions: 1, ComputeInfer: 50 * time.Microsecond}, 5: {Executions: 1, ComputeInfer: 250 * time.Microsecond}},
			Adaptive: batcher.AdaptiveStats{Enabled: true, Decisions: 9, Waits: 4, Fixed: 20 * time.Millisecond,
				PerSample: 2500 * time.Microsecond, PerToken: 1500 * time.Nanosecond},
		},
	}
	m.infer = func(req *backend.Request) (*backend.Response, error) {
		var a, b []int32
		var shape []int64
		for _, in := range req.Inputs {
			if in.Name == "INPUT0" {
				a, shape = i32s(in.Data), in.Shape
			} else {
				b = i32s(in.Data)
			}
		}
		sum, diff := make([]int32, len(a)), make([]int32, len(a))
		for i := range a {
			sum[i], diff[i] = a[i]+b[i], a[i]-b[i]
		}
		return &backend.Response{Outputs: []backend.Tensor{
			{Name: "OUTPUT0", Datatype: "INT32", Shape: shape, Data: i32bytes(sum)},
			{Name: "OUTPUT1", Datatype: "INT32", Shape: shape, Data: i32bytes(diff)},
		}}, nil
	}
	return m
}

// identityModel echoes INPUT0 (of the given datatype and dims) as OUTPUT0.
func identityModel(name, dt string, dims []int64, mbs int) *fakeModel {
	m := &fakeModel{
		name: name, version: 1, mbs: mbs,
		inputs:  []backend.TensorSpec{{Name: "INPUT0", Datatype: dt, Dims: dims}},
		outputs: []backend.TensorSpec{{Name: "OUTPUT0", Datatype: dt, Dims: dims}},
	}
	m.infer = func(req *backend.Request) (*backend.Response, error) {
		in := req.Inputs[0]
		return &backend.Response{Outputs: []backend.Tensor{{Name: "OUTPUT0", Datatype: in.Datatype, Shape: in.Shape, Data: in.Data}}}, nil
	}
	return m
}

// testRepo is the fake repository most tests use.
func testRepo() *fakeRepo {
	r := &fakeRepo{}
	r.add(simpleModel())
	r.add(identityModel("identity_fp32", "FP32", []int64{16}, 8))
	r.add(identityModel("identity_fp16", "FP16", []int64{4}, 0))
	r.add(identityModel("strings", "BYTES", []int64{1}, 0))
	r.add(identityModel("multi", "FP32", []int64{-1, -1}, 0))
	lab := identityModel("labels", "FP32", []int64{4}, 4)
	lab.outputs[0].Labels = []string{"cat", "dog", "bird", "fish"}
	r.add(lab)
	v2 := simpleModel()
	v2.version = 2
	v2.notReady = true
	r.add(v2)
	failing := identityModel("failing", "FP32", []int64{1}, 0)
	failing.infer = func(*backend.Request) (*backend.Response, error) {
		return nil, backend.Errorf(backend.CodeUnavailable, "Exceeds maximum queue size")
	}
	r.add(failing)
	return r
}

package libtorch

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/backend/instances"
	"github.com/ofaserve/ofaserve/batcher"
	torch "github.com/ofaserve/ofaserve/libtorch"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// Model is a loaded pytorch_libtorch model version. It implements
// backend.Model.
type Model struct {
	name     string
	maxBatch int // 0: the model does not batch
	inputs   []tensorSpec
	outputs  []tensorSpec
	inIndex  map[string]int
	outIndex map[string]int
	// shapeKeyed: requests must agree on variable dims / optional inputs to
	// share a batch.
	shapeKeyed bool
	limits     []inputLimit // value_range:/max_length: parameters (validate.go)
	guilt      guilt        // bisection of failed batches (exec.go)

	set     *instances.Set[*prepared, *result]
	scratch []instanceScratch
}

// tensorSpec is one config input or output, resolved for execution.
type tensorSpec struct {
	name     string
	datatype string // protocol datatype, e.g. "FP32"
	dtype    torch.DType
	dims     []int64 // config dims (no batch dim)
	reshape  []int64 // the module's view (no batch dim); nil: same as dims
	optional bool
	ragged   bool // allow_ragged_batch (a plain forward cannot honour it: dims still apply)
	variable bool // dims contain -1
	pos      int  // forward argument / output position
}

// instanceScratch holds one instance's reusable input buffers.
type instanceScratch struct {
	bufs [][]byte
}

// prepared is a validated request, ready to batch.
type prepared struct {
	batch   int // rows along dim 0 (1 for a model that does not batch)
	inputs  []*backend.Tensor
	present []bool // by config input index
	outputs []int  // requested outputs (config indices), in config order
}

// result is one request's share of a batch's outputs.
type result struct {
	outputs []backend.Tensor
	err     error // this request alone failed (exec.go's bisection)
}

// Load loads a pytorch_libtorch model version: one module per instance from
// VersionDir/default_model_filename. It is a backend.Loader.
func Load(ctx context.Context, spec backend.LoadSpec) (backend.Model, error) {
	cfg := spec.Config
	m := &Model{name: spec.Name, maxBatch: int(cfg.GetMaxBatchSize()), inIndex: map[string]int{}, outIndex: map[string]int{}}
	for i, in := range cfg.GetInput() {
		ts, err := resolveTensor("input", in.GetName(), in.GetDataType(), in.GetDims(), in.GetReshape())
		if err != nil {
			return nil, err
		}
		ts.optional = in.GetOptional()
		if ts.variable || ts.optional {
			m.shapeKeyed = true
		}
		ts.ragged = in.GetAllowRaggedBatch()
		m.inputs = append(m.inputs, ts)
		m.inIndex[ts.name] = i
	}
	for i, out := range cfg.GetOutput() {
		ts, err := resolveTensor("output", out.GetName(), out.GetDataType(), out.GetDims(), out.GetReshape())
		if err != nil {
			return nil, err
		}
		m.outputs = append(m.outputs, ts)
		m.outIndex[ts.name] = i
	}
	limits, err := parseLimits(cfg, m.inputs, m.inIndex)
	if err != nil {
		return nil, err
	}
	m.limits = limits
	precision, err := instances.Precision(cfg)
	if err != nil {
		return nil, err
	}

	file := filepath.Join(spec.VersionDir, cfg.GetDefaultModelFilename())
	set, err := instances.Load(ctx, spec, file, torch.Options{Precision: precision}, m.bind, m.exec)
	if err != nil {
		return nil, err
	}
	m.set = set
	m.scratch = make([]instanceScratch, len(set.Modules))
	if spec.Logger != nil {
		spec.Logger.Info("pytorch_libtorch model ready", "file", file, "instances", set.Devices,
			"schema", set.Modules[0].Schema(), "max_batch_size", m.maxBatch)
	}
	return m, nil
}

// resolveTensor checks that a config tensor can cross into libtorch.
func resolveTensor(kind, name string, dt modelconfig.DataType, dims []int64, reshape *modelconfig.ModelTensorReshape) (tensorSpec, error) {
	ts := tensorSpec{name: name, datatype: backend.Datatype(dt), dims: dims}
	d, ok := torchDType(ts.datatype)
	if !ok {
		return ts, fmt.Errorf("%s '%s': data type %s is not supported by pytorch_libtorch", kind, name, dt)
	}
	ts.dtype = d
	if reshape != nil {
		ts.reshape = reshape.GetShape()
		if ts.reshape == nil {
			ts.reshape = []int64{}
		}
	}
	for _, x := range dims {
		if x == -1 {
			ts.variable = true
		}
	}
	return ts, nil
}

// torchDType maps a protocol datatype to the libtorch dtype carrying it.
func torchDType(dt string) (torch.DType, bool) {
	switch dt {
	case "FP32":
		return torch.Float32, true
	case "FP16":
		return torch.Float16, true
	case "BF16":
		return torch.BFloat16, true
	case "FP64":
		return torch.Float64, true
	case "INT64":
		return torch.Int64, true
	case "INT32":
		return torch.Int32, true
	case "INT16":
		return torch.Int16, true
	case "INT8":
		return torch.Int8, true
	case "UINT8":
		return torch.Uint8, true
	case "BOOL":
		return torch.Bool, true
	}
	return 0, false
}

// Infer admits req (validated by the repository: backend.Signature.Validate) to the queue, prepares it in
// the server's preprocessing pool, and waits for its share of a batch (instances.Set.Run): a full queue
// refuses it before it is prepared.
func (m *Model) Infer(ctx context.Context, req *backend.Request) (*backend.Response, error) {
	size := 1
	if m.maxBatch > 0 && len(req.Inputs) > 0 && len(req.Inputs[0].Shape) > 0 {
		size = int(req.Inputs[0].Shape[0])
	}
	slot := batcher.Slot{Size: size, Priority: req.Priority, Timeout: req.Timeout, Start: req.Start}
	res, err := m.set.Run(ctx, slot, func() (batcher.Item[*prepared], error) {
		p, key, err := m.prepare(req)
		if err != nil {
			return batcher.Item[*prepared]{}, err
		}
		return batcher.Item[*prepared]{Value: p, ShapeKey: key}, nil
	})
	if err != nil {
		return nil, err
	}
	if res.err != nil {
		return nil, res.err
	}
	return &backend.Response{Outputs: res.outputs}, nil
}

// Warmup runs the config's model_warmup samples on every instance before the model serves
// (backend.Warmer).
func (m *Model) Warmup(ctx context.Context, samples []backend.WarmupSample) error {
	return instances.WarmSamples(ctx, m.set, samples, func(req *backend.Request) (*prepared, error) {
		p, _, err := m.prepare(req)
		return p, err
	})
}

// BisectStats returns the counts of failed batches bisected (backend.BisectStatser).
func (m *Model) BisectStats() backend.BisectStats { return m.guilt.count.Stats() }

// Stats returns the batcher's statistics.
func (m *Model) Stats() batcher.Stats { return m.set.Stats() }

// Precheck refuses before the request is read when the model's queue is full at every level
// (backend.Prechecker).
func (m *Model) Precheck() error { return m.set.Precheck() }

// Close stops accepting requests, lets queued ones finish (bounded by ctx)
// and releases the modules.
func (m *Model) Close(ctx context.Context) error { return m.set.Close(ctx) }

var (
	_ backend.Model         = (*Model)(nil)
	_ backend.Warmer        = (*Model)(nil)
	_ backend.BisectStatser = (*Model)(nil)
)

package libtorch

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

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
	nRequired  int

	set     *instances.Set[*prepared, *result]
	scratch []instanceScratch
}

// tensorSpec is one config input or output, resolved for execution.
type tensorSpec struct {
	name     string
	datatype string // protocol datatype, e.g. "FP32"
	dtype    torch.DType
	size     int     // bytes per element
	dims     []int64 // config dims (no batch dim)
	reshape  []int64 // the module's view (no batch dim); nil: same as dims
	optional bool
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
		if !ts.optional {
			m.nRequired++
		}
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
	precision := torch.Float32
	if p, ok := cfg.GetParameters()["precision"]; ok {
		switch strings.ToLower(p.GetStringValue()) {
		case "", "float32", "fp32":
		case "float16", "fp16":
			precision = torch.Float16
		case "bfloat16", "bf16":
			precision = torch.BFloat16
		default:
			return nil, fmt.Errorf("parameter 'precision': unknown value '%s' (want float32, float16 or bfloat16)", p.GetStringValue())
		}
	}
	if err := ApplyThreadParameters(cfg, spec.Logger); err != nil {
		return nil, err
	}

	file := filepath.Join(spec.VersionDir, cfg.GetDefaultModelFilename())
	set, err := instances.Load(ctx, cfg, file, torch.Options{Precision: precision}, m.bind, m.exec)
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
	ts.dtype, ts.size = d, d.Size()
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

// bind assigns forward positions to the config's inputs and outputs and
// checks them against the module's arity.
func (m *Model) bind(mod *torch.Module) error {
	args := forwardArgs(mod.Schema())
	byName := len(args) > 0
	for _, in := range m.inputs {
		if indexOf(args, in.name) < 0 {
			byName = false
		}
	}
	switch {
	case byName:
		for i := range m.inputs {
			m.inputs[i].pos = indexOf(args, m.inputs[i].name)
		}
	case allIndexed(m.inputs):
		for i := range m.inputs {
			m.inputs[i].pos, _ = nameIndex(m.inputs[i].name)
		}
	default:
		for i := range m.inputs {
			m.inputs[i].pos = i
		}
	}
	if err := checkPositions("input", m.inputs); err != nil {
		return err
	}
	if allIndexed(m.outputs) {
		for i := range m.outputs {
			m.outputs[i].pos, _ = nameIndex(m.outputs[i].name)
		}
	} else {
		for i := range m.outputs {
			m.outputs[i].pos = i
		}
	}
	if err := checkPositions("output", m.outputs); err != nil {
		return err
	}
	lo, hi := mod.NumInputs()
	if len(m.inputs) > hi {
		return fmt.Errorf("the config declares %d inputs but %s takes at most %d", len(m.inputs), mod.Schema(), hi)
	}
	// Optional inputs can only be left off at the end of forward's
	// arguments, and the required ones must cover what forward needs.
	required := 0
	for i := range m.inputs {
		if !m.inputs[i].optional {
			required = max(required, m.inputs[i].pos+1)
		}
	}
	if required < lo {
		return fmt.Errorf("%s needs at least %d inputs but the config requires only %d", mod.Schema(), lo, required)
	}
	for _, in := range m.inputs {
		if in.optional && in.pos < required {
			return fmt.Errorf("optional input '%s' is argument %d of forward, before required arguments; only trailing arguments can be optional", in.name, in.pos)
		}
	}
	return nil
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// nameIndex parses the <name>__<index> convention.
func nameIndex(name string) (int, bool) {
	i := strings.LastIndex(name, "__")
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(name[i+2:])
	if err != nil || n < 0 || n > 1<<16 {
		return 0, false
	}
	return n, true
}

func allIndexed(ts []tensorSpec) bool {
	for _, t := range ts {
		if _, ok := nameIndex(t.name); !ok {
			return false
		}
	}
	return len(ts) > 0
}

// checkPositions requires the positions to be 0..n-1, each once.
func checkPositions(kind string, ts []tensorSpec) error {
	seen := make([]string, len(ts))
	for _, t := range ts {
		if t.pos < 0 || t.pos >= len(ts) {
			return fmt.Errorf("%s '%s' maps to position %d, but the config has %d %ss (positions must be 0..%d)", kind, t.name, t.pos, len(ts), kind, len(ts)-1)
		}
		if seen[t.pos] != "" {
			return fmt.Errorf("%ss '%s' and '%s' both map to position %d", kind, seen[t.pos], t.name, t.pos)
		}
		seen[t.pos] = t.name
	}
	return nil
}

// forwardArgs returns the argument names of a forward schema such as
// "forward(__torch__.M self, Tensor x, Tensor? y=None) -> Tensor",
// without self.
func forwardArgs(schema string) []string {
	open := strings.IndexByte(schema, '(')
	if open < 0 {
		return nil
	}
	var args []string
	depth, start := 0, open+1
	for i := open + 1; i < len(schema); i++ {
		switch schema[i] {
		case '(', '[':
			depth++
		case ']':
			depth--
		case ')':
			if depth == 0 {
				args = append(args, argName(schema[start:i]))
				i = len(schema)
				continue
			}
			depth--
		case ',':
			if depth == 0 {
				args = append(args, argName(schema[start:i]))
				start = i + 1
			}
		}
	}
	if len(args) > 0 && args[0] == "self" {
		args = args[1:]
	}
	return args
}

func argName(decl string) string {
	decl = strings.TrimSpace(decl)
	if i := strings.IndexByte(decl, '='); i >= 0 {
		decl = strings.TrimSpace(decl[:i])
	}
	if i := strings.LastIndexAny(decl, " \t"); i >= 0 {
		decl = decl[i+1:]
	}
	return decl
}

// Infer validates req, queues it and waits for its share of a batch.
func (m *Model) Infer(ctx context.Context, req *backend.Request) (*backend.Response, error) {
	p, key, err := m.prepare(req)
	if err != nil {
		return nil, err
	}
	res, err := m.set.Submit(ctx, batcher.Item[*prepared]{
		Value: p, Size: p.batch, Priority: req.Priority, Timeout: req.Timeout, ShapeKey: key, Start: req.Start,
	})
	if err != nil {
		return nil, err
	}
	return &backend.Response{Outputs: res.outputs}, nil
}

// Stats returns the batcher's statistics.
func (m *Model) Stats() batcher.Stats { return m.set.Stats() }

// Close stops accepting requests, lets queued ones finish (bounded by ctx)
// and releases the modules.
func (m *Model) Close(ctx context.Context) error { return m.set.Close(ctx) }

// exec runs one batch on instance inst: concatenate, forward, split.
func (m *Model) exec(ctx context.Context, inst int, batch []*prepared) ([]*result, batcher.Timing, error) {
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
		inner = resolve(reshape, product(inner))
	}
	if !batched {
		return inner
	}
	return append([]int64{int64(rows)}, inner...)
}

// resolve fills the one -1 of dims so that the product is n.
func resolve(dims []int64, n int64) []int64 {
	out := append([]int64(nil), dims...)
	fixed := int64(1)
	hole := -1
	for i, d := range out {
		if d == -1 {
			hole = i
		} else {
			fixed *= d
		}
	}
	if hole >= 0 && fixed > 0 {
		out[hole] = n / fixed
	}
	return out
}

func product(dims []int64) int64 {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	return n
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
			d := resolve(spec.dims, product(inner))
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

var _ backend.Model = (*Model)(nil)

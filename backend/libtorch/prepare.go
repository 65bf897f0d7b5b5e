package libtorch

import (
	"strconv"
	"strings"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/datatype"
)

// prepare turns a request the repository has validated (backend.Signature.Validate: known, unique and
// complete inputs of the declared datatypes and shapes, a batch within max_batch_size) into one ready to
// batch, with the shape key that keeps incompatible requests out of each other's batches. It checks only
// the rules of this kind: absent optional inputs must be trailing forward arguments, and an
// allow_ragged_batch input still has to fit its dims (a plain forward call cannot take a ragged batch);
// and the config's input limits (value_range:/max_length:, validate.go). Nothing it refuses reaches the
// batcher.
func (m *Model) prepare(req *backend.Request) (*prepared, string, error) {
	p := &prepared{inputs: make([]*backend.Tensor, len(m.inputs)), present: make([]bool, len(m.inputs)), batch: 1}
	for k := range req.Inputs {
		t := &req.Inputs[k]
		i := m.inIndex[t.Name]
		p.present[i] = true
		p.inputs[i] = t
		if m.maxBatch > 0 {
			p.batch = int(t.Shape[0])
		}
	}
	// Absent optional inputs must be trailing forward arguments.
	lastPresent, firstAbsent := -1, len(m.inputs)
	for i, in := range m.inputs {
		if p.present[i] {
			lastPresent = max(lastPresent, in.pos)
		} else {
			firstAbsent = min(firstAbsent, in.pos)
		}
	}
	if lastPresent > firstAbsent {
		for i, in := range m.inputs {
			if !p.present[i] && in.pos == firstAbsent {
				return nil, "", backend.Errorf(backend.CodeInvalidArg, "optional input '%s' of model '%s' must be given when a later forward argument is given", in.name, m.name)
			}
		}
	}
	sig := backend.Signature{Name: m.name, MaxBatchSize: m.maxBatch}
	for i, in := range m.inputs {
		if !p.present[i] || !in.ragged {
			continue
		}
		t := p.inputs[i]
		spec := backend.TensorSpec{Name: in.name, Dims: in.dims}
		dims := t.Shape
		if m.maxBatch > 0 {
			dims = dims[1:]
		}
		if !sig.ShapeFits(&spec, datatype.Parse(t.Datatype), dims) {
			return nil, "", sig.ShapeError(&spec, t.Shape)
		}
	}
	if err := m.checkLimits(p); err != nil {
		return nil, "", err
	}
	p.outputs = backend.RequestedOutputs(req.Outputs, len(m.outputs), func(name string) (int, bool) {
		o, ok := m.outIndex[name]
		return o, ok
	})
	return p, m.shapeKey(p), nil
}

// shapeKey is "" when every request can share a batch; otherwise it names
// the inputs a request supplies and the non-batch shapes of its
// variable-size ones (docs/triton-batcher-and-kserve-v2.md §1.6).
func (m *Model) shapeKey(p *prepared) string {
	if !m.shapeKeyed {
		return ""
	}
	var b strings.Builder
	for i, spec := range m.inputs {
		if !p.present[i] {
			b.WriteString("-;")
			continue
		}
		b.WriteString("+")
		if spec.variable {
			shape := p.inputs[i].Shape
			if m.maxBatch > 0 {
				shape = shape[1:]
			}
			for _, d := range shape {
				b.WriteString(strconv.FormatInt(d, 10))
				b.WriteByte(',')
			}
		}
		b.WriteByte(';')
	}
	return b.String()
}

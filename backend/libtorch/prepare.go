package libtorch

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/datatype"
)

// prepare validates a request against the config (Triton's checks and
// messages, docs/triton-batcher-and-kserve-v2.md §2.3) and returns it ready to batch, with the shape key
// that keeps incompatible requests out of each other's batches. Nothing
// invalid ever reaches the batcher.
func (m *Model) prepare(req *backend.Request) (*prepared, string, error) {
	bad := func(format string, args ...any) error {
		return backend.Errorf(backend.CodeInvalidArg, format, args...)
	}
	p := &prepared{inputs: make([]*backend.Tensor, len(m.inputs)), present: make([]bool, len(m.inputs))}
	for k := range req.Inputs {
		t := &req.Inputs[k]
		i, ok := m.inIndex[t.Name]
		if !ok {
			return nil, "", bad("unexpected inference input '%s' for model '%s'", t.Name, m.name)
		}
		if p.present[i] {
			return nil, "", bad("input '%s' already exists in request", t.Name)
		}
		p.present[i] = true
		p.inputs[i] = t
	}
	var missing, got []string
	nRequiredGot := 0
	for i, in := range m.inputs {
		if p.present[i] {
			got = append(got, "'"+in.name+"'")
			if !in.optional {
				nRequiredGot++
			}
		} else if !in.optional {
			missing = append(missing, "'"+in.name+"'")
		}
	}
	if len(missing) > 0 {
		expected := strconv.Itoa(m.nRequired)
		if m.nRequired != len(m.inputs) {
			expected = fmt.Sprintf("number of inputs between %d and %d", m.nRequired, len(m.inputs))
		}
		return nil, "", bad("expected %s inputs but got %d inputs for model '%s'. Got input(s) [%s], but missing required input(s) [%s]. Please provide all required input(s).",
			expected, len(req.Inputs), m.name, strings.Join(got, ", "), strings.Join(missing, ", "))
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
				return nil, "", bad("optional input '%s' of model '%s' must be given when a later forward argument is given", in.name, m.name)
			}
		}
	}

	batch := -1
	for i := range m.inputs {
		if !p.present[i] {
			continue
		}
		spec := &m.inputs[i]
		t := p.inputs[i]
		if t.Datatype != spec.datatype {
			return nil, "", bad("inference input '%s' data-type is '%s', but model '%s' expects '%s'", t.Name, t.Datatype, m.name, spec.datatype)
		}
		shape := t.Shape
		for _, d := range shape {
			if d < 0 {
				return nil, "", bad("All input dimensions should be specified for input '%s' for model '%s', got %s", t.Name, m.name, backend.FormatShape(shape))
			}
		}
		if m.maxBatch > 0 {
			if len(shape) == 0 {
				return nil, "", bad("input '%s' has no shape but model requires batch dimension for '%s'", t.Name, m.name)
			}
			if batch == -1 {
				batch = int(min(shape[0], math.MaxInt32))
				if batch > m.maxBatch {
					return nil, "", bad("inference request batch-size must be <= %d for '%s'", m.maxBatch, m.name)
				}
				if batch < 1 {
					return nil, "", bad("inference request batch-size must be >= 1 for '%s'", m.name)
				}
			} else if shape[0] != int64(batch) {
				return nil, "", bad("input '%s' batch size does not match other inputs for '%s'", t.Name, m.name)
			}
		}
		if !matchDims(shape, spec.dims, m.maxBatch > 0) {
			note := ""
			if m.maxBatch > 0 {
				note = " NOTE: with a non-zero max_batch_size the request shape must start with the batch dimension, which the config's dims leave out."
			}
			return nil, "", bad("unexpected shape for input '%s' for model '%s'. Expected %s, got %s.%s",
				t.Name, m.name, dimsString(spec.dims, m.maxBatch > 0), backend.FormatShape(shape), note)
		}
		want, ok := byteSize(shape, spec.size)
		if !ok {
			return nil, "", bad("byte size overflow for input '%s' for model '%s'", t.Name, m.name)
		}
		if int64(len(t.Data)) != want {
			return nil, "", bad("input byte size mismatch for input '%s' for model '%s'. Expected %d, got %d", t.Name, m.name, want, len(t.Data))
		}
	}
	p.batch = max(batch, 1)

	outs, err := backend.RequestedOutputs(m.name, req.Outputs, len(m.outputs), func(name string) (int, bool) {
		o, ok := m.outIndex[name]
		return o, ok
	})
	if err != nil {
		return nil, "", err
	}
	p.outputs = outs
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

// byteSize is the byte size of a tensor of this shape, false on overflow.
func byteSize(shape []int64, elem int) (int64, bool) {
	n, variable, ok := datatype.ElementCount(shape)
	if !ok || variable > 0 || n > math.MaxInt64/int64(elem) {
		return 0, false
	}
	return n * int64(elem), true
}

// dimsString prints config dims the way Triton's messages show the full
// shape: with -1 for the batch dim of a batching model.
func dimsString(dims []int64, batched bool) string {
	if batched {
		return backend.FormatShape(append([]int64{-1}, dims...))
	}
	return backend.FormatShape(dims)
}

package server

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/datatype"
)

// outputReq is one output a client asked for and how it wants it back.
type outputReq struct {
	name       string
	binary     bool  // HTTP: send in the binary extension
	classCount int64 // > 0: classification top-K
}

// validateRequest applies Triton's core checks (docs/triton-batcher-and-kserve-v2.md §2.3 table) to a
// decoded request: known, unique and complete inputs with the declared
// datatypes and shapes, a batch within max_batch_size, data sizes that match
// the shapes, and known, unique outputs. The messages are Triton's.
func validateRequest(m Model, req *backend.Request, outs []outputReq) error {
	name := m.Name()
	specs := m.Inputs()
	mbs := m.MaxBatchSize()
	var seen uint64 // bit i: specs[i] supplied (models with > 64 inputs fall back to a map)
	var seenMap map[int]bool
	if len(specs) > 64 {
		seenMap = make(map[int]bool, len(specs))
	}
	batch := int64(-1)
	for i := range req.Inputs {
		in := &req.Inputs[i]
		si := specIndex(specs, in.Name)
		if si < 0 {
			return invalidArg("unexpected inference input '%s' for model '%s'", in.Name, name)
		}
		if seenMap != nil {
			if seenMap[si] {
				return invalidArg("input '%s' already exists in request", in.Name)
			}
			seenMap[si] = true
		} else {
			if seen&(1<<si) != 0 {
				return invalidArg("input '%s' already exists in request", in.Name)
			}
			seen |= 1 << si
		}
		spec := &specs[si]
		d := datatype.Parse(in.Datatype)
		if want := datatype.FromConfig(spec.Datatype); d != want {
			return invalidArg("inference input '%s' data-type is '%s', but model '%s' expects '%s'", in.Name, in.Datatype, name, want)
		}
		for _, v := range in.Shape {
			if v < 0 {
				return invalidArg("All input dimensions should be specified for input '%s' for model '%s', got %s", in.Name, name, backend.FormatShape(in.Shape))
			}
		}
		dims := in.Shape
		if mbs > 0 {
			if len(in.Shape) == 0 {
				return invalidArg("input '%s' has no shape but model requires batch dimension for '%s'", in.Name, name)
			}
			b := in.Shape[0]
			if batch >= 0 && b != batch {
				return invalidArg("input '%s' batch size does not match other inputs for '%s'", in.Name, name)
			}
			batch = b
			if b > int64(mbs) {
				return invalidArg("inference request batch-size must be <= %d for '%s'", mbs, name)
			}
			dims = in.Shape[1:]
		}
		if !spec.AllowRagged && !dimsMatch(spec.Dims, dims) && !implicitStringDim(spec, d, mbs, dims) {
			full := spec.Dims
			note := ""
			if mbs > 0 {
				full = append([]int64{-1}, spec.Dims...)
				note = " NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be prepended to each input shape. If you want to specify the full shape including the batch dim in your input dims config, try setting max_batch_size to zero. See the model configuration docs for more info on max_batch_size."
			}
			return invalidArg("unexpected shape for input '%s' for model '%s'. Expected %s, got %s.%s", in.Name, name, backend.FormatShape(full), backend.FormatShape(in.Shape), note)
		}
		count, variable, ok := datatype.ElementCount(in.Shape)
		if !ok || variable > 0 {
			return invalidArg("input '%s' has a shape %s that causes total element count to exceed maximum size of %d", in.Name, backend.FormatShape(in.Shape), int64(1<<63-1))
		}
		if d == datatype.Bytes {
			n, ok := bytesElements(in.Data)
			if !ok {
				return invalidArg("input '%s' for model '%s' holds malformed BYTES data: each element needs a 4-byte little-endian length followed by that many bytes", in.Name, name)
			}
			if n != count {
				return invalidArg("unexpected number of string elements %d for inference input '%s' for model '%s', expecting %d", n, in.Name, name, count)
			}
		} else {
			es := int64(d.Size())
			if count > (1<<63-1)/es {
				return invalidArg("byte size overflow for input '%s' for model '%s'", in.Name, name)
			}
			if want := count * es; want != int64(len(in.Data)) {
				return invalidArg("input byte size mismatch for input '%s' for model '%s'. Expected %d, got %d", in.Name, name, want, len(in.Data))
			}
		}
	}
	supplied := len(req.Inputs)
	required := 0
	var missing []string
	for j := range specs {
		if specs[j].Optional {
			continue
		}
		required++
		have := seen&(1<<j) != 0
		if seenMap != nil {
			have = seenMap[j]
		}
		if !have {
			missing = append(missing, specs[j].Name)
		}
	}
	if len(missing) > 0 {
		got := make([]string, len(req.Inputs))
		for i := range req.Inputs {
			got[i] = req.Inputs[i].Name
		}
		return invalidArg("expected %d inputs but got %d inputs for model '%s'. Got input(s) %s, but missing required input(s) %s. Please provide all required input(s).",
			required, supplied, name, quoteList(got), quoteList(missing))
	}
	if len(outs) > 0 {
		ospecs := m.Outputs()
		for i := range outs {
			o := &outs[i]
			found := specIndex(ospecs, o.name)
			if found < 0 {
				return invalidArg("unexpected inference output '%s' for model '%s'", o.name, name)
			}
			for k := range i {
				if outs[k].name == o.name {
					return invalidArg("output '%s' already exists in request", o.name)
				}
			}
			if o.classCount > 0 {
				if d := datatype.FromConfig(ospecs[found].Datatype); !classifiable(d) {
					return invalidArg("class result not available for output '%s' due to unsupported type '%s'", o.name, d)
				}
			}
		}
	}
	return nil
}

// implicitStringDim is ofaserve's one relaxation of Triton's shape check: a
// BYTES input declared with dims [1] in a batching model may leave that 1
// off, so shape [n] reads as [n,1] (one string per batch item). The OFA
// tutorial's request sends its strings with shape [1] to such a model; the
// model kind receives the shape as sent.
func implicitStringDim(spec *backend.TensorSpec, d datatype.Type, mbs int, dims []int64) bool {
	return d == datatype.Bytes && mbs > 0 && len(dims) == 0 && len(spec.Dims) == 1 && spec.Dims[0] == 1
}

func dimsMatch(spec, got []int64) bool {
	if len(spec) != len(got) {
		return false
	}
	for i, d := range spec {
		if d != -1 && d != got[i] {
			return false
		}
	}
	return true
}

// specIndex returns the index of the tensor named name in specs, or -1.
func specIndex(specs []backend.TensorSpec, name string) int {
	for j := range specs {
		if specs[j].Name == name {
			return j
		}
	}
	return -1
}

func quoteList(names []string) string {
	var sb strings.Builder
	sb.WriteByte('[')
	for i, n := range names {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteByte('\'')
		sb.WriteString(n)
		sb.WriteByte('\'')
	}
	sb.WriteByte(']')
	return sb.String()
}

// runInfer validates req, runs it, and returns the outputs to send: the
// requested ones in the model's order (all when outs is empty), with
// classification applied. binary[i] says whether outputs[i] was requested
// in binary (HTTP).
func (s *Server) runInfer(ctx context.Context, m Model, req *backend.Request, outs []outputReq) (*backend.Response, []outputReq, error) {
	if err := validateRequest(m, req, outs); err != nil {
		return nil, nil, err
	}
	if len(outs) > 0 && req.Outputs == nil {
		req.Outputs = make([]string, len(outs))
		for i := range outs {
			req.Outputs[i] = outs[i].name
		}
	}
	resp, err := m.Infer(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	if resp == nil {
		return nil, nil, backend.Errorf(backend.CodeInternal, "model '%s' returned no response", m.Name())
	}
	if len(outs) == 0 {
		return resp, nil, nil
	}
	// Keep the requested outputs, in the model's order.
	if sameOutputs(resp.Outputs, outs) {
		return resp, outs, nil // all of them, in that order, as they are
	}
	kept := resp.Outputs[:0:0]
	how := make([]outputReq, 0, len(outs))
	for _, t := range resp.Outputs {
		for _, o := range outs {
			if o.name == t.Name {
				if o.classCount > 0 {
					ct, err := classify(t, o.classCount, m, req)
					if err != nil {
						return nil, nil, err
					}
					t = ct
				}
				kept = append(kept, t)
				how = append(how, o)
				break
			}
		}
	}
	if len(kept) != len(outs) {
		for _, o := range outs {
			found := false
			for _, t := range kept {
				found = found || t.Name == o.name
			}
			if !found {
				return nil, nil, backend.Errorf(backend.CodeInternal, "model '%s' did not produce requested output '%s'", m.Name(), o.name)
			}
		}
	}
	return &backend.Response{Outputs: kept, Parameters: resp.Parameters}, how, nil
}

// sameOutputs reports whether outs asks for exactly got, in its order,
// with no classification.
func sameOutputs(got []backend.Tensor, outs []outputReq) bool {
	if len(got) != len(outs) {
		return false
	}
	for i := range outs {
		if outs[i].name != got[i].Name || outs[i].classCount > 0 {
			return false
		}
	}
	return true
}

func classifiable(d datatype.Type) bool {
	return d != datatype.Bool && d != datatype.Bytes && d != datatype.FP16 && d != datatype.BF16 && d != datatype.Invalid
}

// classify turns a numeric output into the classification extension's
// BYTES tensor (docs/triton-batcher-and-kserve-v2.md §2.10): per batch item, the top k elements as
// "<value>:<index>[:<label>]", values printed as C++ to_string would.
func classify(t backend.Tensor, k int64, m Model, req *backend.Request) (backend.Tensor, error) {
	d := datatype.Parse(t.Datatype)
	if !classifiable(d) {
		return t, invalidArg("class result not available for output '%s' due to unsupported type '%s'", t.Name, t.Datatype)
	}
	count, variable, ok := datatype.ElementCount(t.Shape)
	if !ok || variable > 0 || count*int64(d.Size()) != int64(len(t.Data)) {
		return t, backend.Errorf(backend.CodeInternal, "output '%s' of model '%s' has %d bytes for shape %s", t.Name, m.Name(), len(t.Data), backend.FormatShape(t.Shape))
	}
	var labels []string
	for _, o := range m.Outputs() {
		if o.Name == t.Name {
			labels = o.Labels
		}
	}
	batch := int64(1)
	batched := m.MaxBatchSize() > 0 && len(t.Shape) > 0
	if batched {
		batch = t.Shape[0]
	}
	per := int64(0)
	if batch > 0 {
		per = count / batch
	}
	kk := min(k, per)
	var out []byte
	idx := make([]int, per)
	for b := range batch {
		base := int(b * per)
		for i := range idx {
			idx[i] = base + i
		}
		sort.SliceStable(idx, func(i, j int) bool { return elementFloat(d, t.Data, idx[i]) > elementFloat(d, t.Data, idx[j]) })
		for _, i := range idx[:kk] {
			var s []byte
			if d == datatype.FP32 || d == datatype.FP64 {
				s = fmt.Appendf(s, "%f", elementFloat(d, t.Data, i))
			} else {
				s = appendElementJSON(s, d, t.Data, i)
			}
			s = append(s, ':')
			s = strconv.AppendInt(s, int64(i-base), 10)
			if i-base < len(labels) {
				s = append(s, ':')
				s = append(s, labels[i-base]...)
			}
			out = datatype.AppendElement(out, s)
		}
	}
	shape := []int64{kk}
	if batched {
		shape = []int64{batch, kk}
	}
	return backend.Tensor{Name: t.Name, Datatype: "BYTES", Shape: shape, Data: out}, nil
}

package backend

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/ofaserve/ofaserve/protocol/datatype"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// Signature is a model's request contract as its config.pbtxt declares it:
// the name, max_batch_size and tensors a request is checked against.
//
// Validate is the one place a request is validated: the repository's model
// handle calls it before any model kind sees the request, so a kind trusts
// what its Infer receives and checks only the rules that are its own (the
// libtorch kind's forward-argument order, the ofa kind's image and text
// contents).
type Signature struct {
	Name string
	// MaxBatchSize is max_batch_size; 0 means the model takes no batch
	// dimension.
	MaxBatchSize int
	// Inputs and Outputs are the declared tensors, without the batch
	// dimension, in config order.
	Inputs, Outputs []TensorSpec
}

// SignatureOf reads the signature of a normalized config. Output labels
// live in files beside the config; the repository reads them.
func SignatureOf(name string, cfg *modelconfig.ModelConfig) Signature {
	s := Signature{Name: name, MaxBatchSize: int(cfg.GetMaxBatchSize())}
	for _, in := range cfg.GetInput() {
		s.Inputs = append(s.Inputs, TensorSpec{
			Name: in.GetName(), Datatype: Datatype(in.GetDataType()), Dims: slices.Clone(in.GetDims()),
			Optional: in.GetOptional(), AllowRagged: in.GetAllowRaggedBatch(),
		})
	}
	for _, out := range cfg.GetOutput() {
		s.Outputs = append(s.Outputs, TensorSpec{Name: out.GetName(), Datatype: Datatype(out.GetDataType()), Dims: slices.Clone(out.GetDims())})
	}
	return s
}

// Validate applies Triton's core checks (docs/triton-batcher-and-kserve-v2.md
// §2.3 table) to a decoded request: known, unique and complete inputs with
// the declared datatypes and shapes, a batch from 1 to max_batch_size that
// every input agrees on, data sizes that match the shapes, and known, unique
// outputs. The errors are INVALID_ARG with Triton's messages.
func (s *Signature) Validate(req *Request) error {
	name, specs, mbs := s.Name, s.Inputs, s.MaxBatchSize
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
				return invalidArg("All input dimensions should be specified for input '%s' for model '%s', got %s", in.Name, name, FormatShape(in.Shape))
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
			if b < 1 {
				return invalidArg("inference request batch-size must be >= 1 for '%s'", name)
			}
			dims = in.Shape[1:]
		}
		if !spec.AllowRagged && !s.ShapeFits(spec, d, dims) {
			return s.ShapeError(spec, in.Shape)
		}
		count, variable, ok := datatype.ElementCount(in.Shape)
		if !ok || variable > 0 {
			return invalidArg("input '%s' has a shape %s that causes total element count to exceed maximum size of %d", in.Name, FormatShape(in.Shape), int64(math.MaxInt64))
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
			if count > math.MaxInt64/es {
				return invalidArg("byte size overflow for input '%s' for model '%s'", in.Name, name)
			}
			if want := count * es; want != int64(len(in.Data)) {
				return invalidArg("input byte size mismatch for input '%s' for model '%s'. Expected %d, got %d", in.Name, name, want, len(in.Data))
			}
		}
	}
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
		expected := fmt.Sprintf("%d inputs", required)
		if required != len(specs) {
			expected = fmt.Sprintf("number of inputs between %d and %d", required, len(specs))
		}
		return invalidArg("expected %s but got %d inputs for model '%s'. Got input(s) %s, but missing required input(s) %s. Please provide all required input(s).",
			expected, len(req.Inputs), name, quoteList(got), quoteList(missing))
	}
	for i, o := range req.Outputs {
		if specIndex(s.Outputs, o) < 0 {
			return invalidArg("unexpected inference output '%s' for model '%s'", o, name)
		}
		if slices.Contains(req.Outputs[:i], o) {
			return invalidArg("output '%s' already exists in request", o)
		}
	}
	return nil
}

// ShapeFits reports whether a request's dims (its shape without the batch
// dimension) fit spec's dims, -1 matching any size. ofaserve's one
// relaxation of Triton's rule: a BYTES input declared with dims [1] in a
// batching model may leave that 1 off, so shape [n] reads as [n,1] (one
// string per batch item). The OFA tutorial's request sends its strings with
// shape [1] to such a model; the model kind receives the shape as sent.
func (s *Signature) ShapeFits(spec *TensorSpec, d datatype.Type, dims []int64) bool {
	if d == datatype.Bytes && s.MaxBatchSize > 0 && len(dims) == 0 && len(spec.Dims) == 1 && spec.Dims[0] == 1 {
		return true
	}
	if len(spec.Dims) != len(dims) {
		return false
	}
	for i, d := range spec.Dims {
		if d != -1 && d != dims[i] {
			return false
		}
	}
	return true
}

// ShapeError is the INVALID_ARG error for an input whose shape does not fit
// spec, worded as Triton words it (with its note on the batch dimension when
// the model batches).
func (s *Signature) ShapeError(spec *TensorSpec, shape []int64) error {
	full := spec.Dims
	note := ""
	if s.MaxBatchSize > 0 {
		full = append([]int64{-1}, spec.Dims...)
		note = " NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be prepended to each input shape. If you want to specify the full shape including the batch dim in your input dims config, try setting max_batch_size to zero. See the model configuration docs for more info on max_batch_size."
	}
	return invalidArg("unexpected shape for input '%s' for model '%s'. Expected %s, got %s.%s", spec.Name, s.Name, FormatShape(full), FormatShape(shape), note)
}

// RequestedOutputs resolves a validated request's output names into config
// indices, in config order (all numOutputs of them when names is empty).
// index maps an output name to its config index.
func RequestedOutputs(names []string, numOutputs int, index func(name string) (int, bool)) []int {
	if len(names) == 0 {
		all := make([]int, numOutputs)
		for i := range all {
			all[i] = i
		}
		return all
	}
	want := make([]bool, numOutputs)
	for _, name := range names {
		if o, ok := index(name); ok {
			want[o] = true
		}
	}
	var out []int
	for o, w := range want {
		if w {
			out = append(out, o)
		}
	}
	return out
}

func invalidArg(format string, args ...any) error {
	return Errorf(CodeInvalidArg, format, args...)
}

// specIndex returns the index of the tensor named name in specs, or -1.
func specIndex(specs []TensorSpec, name string) int {
	for j := range specs {
		if specs[j].Name == name {
			return j
		}
	}
	return -1
}

// bytesElements counts the elements of a BYTES tensor in the binary layout
// (4-byte LE length + bytes each); ok=false if the data is not well formed.
func bytesElements(data []byte) (n int64, ok bool) {
	for _, err := range datatype.Elements(data) {
		if err != nil {
			return n, false
		}
		n++
	}
	return n, true
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

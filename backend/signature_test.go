package backend

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

func f32s(n int) []byte { return make([]byte, 4*n) }

func strs(elems ...string) []byte {
	var b []byte
	for _, e := range elems {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e)))
		b = append(b, e...)
	}
	return b
}

// TestValidate: every refusal of the one validation, with its message (Triton's, docs/triton-batcher-and-kserve-v2.md §2.3).
func TestValidate(t *testing.T) {
	pair := &Signature{Name: "pair", MaxBatchSize: 16,
		Inputs:  []TensorSpec{{Name: "A", Datatype: "FP32", Dims: []int64{4}}, {Name: "B", Datatype: "FP32", Dims: []int64{4}}},
		Outputs: []TensorSpec{{Name: "Y", Datatype: "FP32", Dims: []int64{4}}}}
	text := &Signature{Name: "text", MaxBatchSize: 8,
		Inputs: []TensorSpec{{Name: "T", Datatype: "BYTES", Dims: []int64{1}}, {Name: "P", Datatype: "BYTES", Dims: []int64{1}, Optional: true},
			{Name: "R", Datatype: "FP32", Dims: []int64{-1}, AllowRagged: true}},
		Outputs: []TensorSpec{{Name: "Y", Datatype: "BYTES", Dims: []int64{1}}}}
	flat := &Signature{Name: "flat", Inputs: []TensorSpec{{Name: "X", Datatype: "INT64", Dims: []int64{2, 3}}}}
	a := func(shape []int64, n int) Tensor {
		return Tensor{Name: "A", Datatype: "FP32", Shape: shape, Data: f32s(n)}
	}
	b := func(shape []int64, n int) Tensor {
		return Tensor{Name: "B", Datatype: "FP32", Shape: shape, Data: f32s(n)}
	}
	tt := func(shape []int64, elems ...string) Tensor {
		return Tensor{Name: "T", Datatype: "BYTES", Shape: shape, Data: strs(elems...)}
	}
	for _, c := range []struct {
		name string
		sig  *Signature
		req  Request
		want string // "" accepts
	}{
		{"pair ok", pair, Request{Inputs: []Tensor{a([]int64{2, 4}, 8), b([]int64{2, 4}, 8)}}, ""},
		{"unexpected", pair, Request{Inputs: []Tensor{a([]int64{1, 4}, 4), b([]int64{1, 4}, 4), {Name: "C", Datatype: "FP32"}}},
			"unexpected inference input 'C' for model 'pair'"},
		{"duplicate", pair, Request{Inputs: []Tensor{a([]int64{1, 4}, 4), a([]int64{1, 4}, 4)}}, "input 'A' already exists in request"},
		{"missing", pair, Request{Inputs: []Tensor{a([]int64{1, 4}, 4)}},
			"expected 2 inputs but got 1 inputs for model 'pair'. Got input(s) ['A'], but missing required input(s) ['B']. Please provide all required input(s)."},
		{"missing with an optional input", text, Request{Inputs: []Tensor{{Name: "P", Datatype: "BYTES", Shape: []int64{1}, Data: strs("p")}}},
			"expected number of inputs between 2 and 3 but got 1 inputs for model 'text'. Got input(s) ['P'], but missing required input(s) ['T', 'R']. Please provide all required input(s)."},
		{"datatype", pair, Request{Inputs: []Tensor{a([]int64{1, 4}, 4), {Name: "B", Datatype: "INT32", Shape: []int64{1, 4}, Data: f32s(4)}}},
			"inference input 'B' data-type is 'INT32', but model 'pair' expects 'FP32'"},
		{"shape", pair, Request{Inputs: []Tensor{a([]int64{1, 3}, 3), b([]int64{1, 4}, 4)}},
			"unexpected shape for input 'A' for model 'pair'. Expected [-1,4], got [1,3]. NOTE: Setting a non-zero max_batch_size"},
		{"shape without batching", flat, Request{Inputs: []Tensor{{Name: "X", Datatype: "INT64", Shape: []int64{1, 2, 3}, Data: make([]byte, 48)}}},
			"unexpected shape for input 'X' for model 'flat'. Expected [2,3], got [1,2,3]."},
		{"unspecified dim", pair, Request{Inputs: []Tensor{a([]int64{-1, 4}, 4), b([]int64{1, 4}, 4)}},
			"All input dimensions should be specified for input 'A' for model 'pair', got [-1,4]"},
		{"no shape", pair, Request{Inputs: []Tensor{a(nil, 1), b([]int64{1, 4}, 4)}},
			"input 'A' has no shape but model requires batch dimension for 'pair'"},
		{"batch mismatch", pair, Request{Inputs: []Tensor{a([]int64{1, 4}, 4), b([]int64{2, 4}, 8)}},
			"input 'B' batch size does not match other inputs for 'pair'"},
		{"batch too large", pair, Request{Inputs: []Tensor{a([]int64{17, 4}, 68), b([]int64{17, 4}, 68)}},
			"inference request batch-size must be <= 16 for 'pair'"},
		{"batch 0", pair, Request{Inputs: []Tensor{a([]int64{0, 4}, 0), b([]int64{0, 4}, 0)}},
			"inference request batch-size must be >= 1 for 'pair'"},
		{"byte size", pair, Request{Inputs: []Tensor{a([]int64{1, 4}, 3), b([]int64{1, 4}, 4)}},
			"input byte size mismatch for input 'A' for model 'pair'. Expected 16, got 12"},
		{"no data", flat, Request{Inputs: []Tensor{{Name: "X", Datatype: "INT64", Shape: []int64{2, 3}}}},
			"input byte size mismatch for input 'X' for model 'flat'. Expected 48, got 0"},
		{"unknown output", pair, Request{Inputs: []Tensor{a([]int64{1, 4}, 4), b([]int64{1, 4}, 4)}, Outputs: []string{"Z"}},
			"unexpected inference output 'Z' for model 'pair'"},
		{"duplicate output", pair, Request{Inputs: []Tensor{a([]int64{1, 4}, 4), b([]int64{1, 4}, 4)}, Outputs: []string{"Y", "Y"}},
			"output 'Y' already exists in request"},
		// BYTES [1] in a batching model: [n] reads as [n,1]; element counts are checked.
		{"strings [n]", text, Request{Inputs: []Tensor{tt([]int64{2}, "a", "b"), {Name: "R", Datatype: "FP32", Shape: []int64{2, 5}, Data: f32s(10)}}}, ""},
		{"strings [n,1]", text, Request{Inputs: []Tensor{tt([]int64{2, 1}, "a", "b"), {Name: "R", Datatype: "FP32", Shape: []int64{2, 3}, Data: f32s(6)}}}, ""},
		{"strings [n,2]", text, Request{Inputs: []Tensor{tt([]int64{1, 2}, "a", "b")}},
			"unexpected shape for input 'T' for model 'text'. Expected [-1,1], got [1,2]."},
		{"string count", text, Request{Inputs: []Tensor{tt([]int64{2, 1}, "a")}},
			"unexpected number of string elements 1 for inference input 'T' for model 'text', expecting 2"},
		{"malformed strings", text, Request{Inputs: []Tensor{{Name: "T", Datatype: "BYTES", Shape: []int64{1}, Data: []byte{9, 0, 0, 0, 'a'}}}},
			"input 'T' for model 'text' holds malformed BYTES data"},
		// allow_ragged_batch skips the dims check (a kind may add its own).
		{"ragged", text, Request{Inputs: []Tensor{tt([]int64{1}, "a"), {Name: "R", Datatype: "FP32", Shape: []int64{1, 2, 2}, Data: f32s(4)}}}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.sig.Validate(&c.req)
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if CodeOf(err) != CodeInvalidArg || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v %v, want INVALID_ARG %q", CodeOf(err), err, c.want)
			}
		})
	}
}

func TestSignatureOf(t *testing.T) {
	cfg := &modelconfig.ModelConfig{MaxBatchSize: 4,
		Input:  []*modelconfig.ModelInput{{Name: "x", DataType: modelconfig.DataType_TYPE_STRING, Dims: []int64{1}, Optional: true, AllowRaggedBatch: true}},
		Output: []*modelconfig.ModelOutput{{Name: "y", DataType: modelconfig.DataType_TYPE_FP16, Dims: []int64{-1, 2}}}}
	s := SignatureOf("m", cfg)
	in, out := s.Inputs[0], s.Outputs[0]
	if s.Name != "m" || s.MaxBatchSize != 4 || in.Name != "x" || in.Datatype != "BYTES" || !in.Optional || !in.AllowRagged ||
		out.Name != "y" || out.Datatype != "FP16" || len(out.Dims) != 2 {
		t.Errorf("SignatureOf = %+v", s)
	}
	cfg.Input[0].Dims[0] = 7
	if s.Inputs[0].Dims[0] != 1 {
		t.Error("the signature shares its dims with the config")
	}
}

package libtorch

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/ofaserve/ofaserve/backend"
)

// TestRequestValidationMessages: a request refused by the repository's
// validation or by this kind's own rules gets INVALID_ARG with Triton's
// message, never reaches the batcher, and leaves the model serving.
func TestRequestValidationMessages(t *testing.T) {
	m := load(t, "pair", pairConfig+`dynamic_batching { }`)
	ok := func() []backend.Tensor {
		req, _, _ := pairRequest(1, 2)
		return req.Inputs
	}
	with := func(edit func(in []backend.Tensor) []backend.Tensor) *backend.Request {
		return &backend.Request{Inputs: edit(ok())}
	}
	for _, tc := range []struct {
		name string
		req  *backend.Request
		msg  string
	}{
		{"unexpected input", with(func(in []backend.Tensor) []backend.Tensor {
			return append(in, backend.Tensor{Name: "EXTRA", Datatype: "FP32", Shape: []int64{2, 4}, Data: make([]byte, 32)})
		}), "unexpected inference input 'EXTRA' for model 'pair'"},
		{"duplicate input", with(func(in []backend.Tensor) []backend.Tensor { return append(in, in[0]) }),
			"input 'INPUT__0' already exists in request"},
		{"missing input", with(func(in []backend.Tensor) []backend.Tensor { return in[:1] }),
			"expected 2 inputs but got 1 inputs for model 'pair'. Got input(s) ['INPUT__0'], but missing required input(s) ['INPUT__1']. Please provide all required input(s)."},
		{"datatype", with(func(in []backend.Tensor) []backend.Tensor { in[1].Datatype = "INT32"; return in }),
			"inference input 'INPUT__1' data-type is 'INT32', but model 'pair' expects 'FP32'"},
		{"shape", with(func(in []backend.Tensor) []backend.Tensor {
			in[0].Shape = []int64{2, 3}
			in[0].Data = make([]byte, 24)
			return in
		}),
			"unexpected shape for input 'INPUT__0' for model 'pair'. Expected [-1,4], got [2,3]"},
		{"rank without batch", with(func(in []backend.Tensor) []backend.Tensor {
			in[0].Shape, in[1].Shape = []int64{2}, []int64{2}
			return in
		}),
			"unexpected shape for input 'INPUT__0' for model 'pair'. Expected [-1,4], got [2]. NOTE:"},
		{"no shape", with(func(in []backend.Tensor) []backend.Tensor { in[0].Shape = nil; return in }),
			"input 'INPUT__0' has no shape but model requires batch dimension for 'pair'"},
		{"batch too large", with(func(in []backend.Tensor) []backend.Tensor {
			for i := range in {
				in[i].Shape, in[i].Data = []int64{17, 4}, make([]byte, 17*16)
			}
			return in
		}), "inference request batch-size must be <= 16 for 'pair'"},
		{"batch mismatch", with(func(in []backend.Tensor) []backend.Tensor {
			in[0].Shape = []int64{1, 4}
			in[0].Data = make([]byte, 16)
			return in
		}),
			"input 'INPUT__1' batch size does not match other inputs for 'pair'"},
		{"byte size", with(func(in []backend.Tensor) []backend.Tensor { in[0].Data = in[0].Data[:30]; return in }),
			"input byte size mismatch for input 'INPUT__0' for model 'pair'. Expected 32, got 30"},
		{"unspecified dim", with(func(in []backend.Tensor) []backend.Tensor { in[0].Shape = []int64{-1, 4}; return in }),
			"All input dimensions should be specified for input 'INPUT__0'"},
		{"overflow", with(func(in []backend.Tensor) []backend.Tensor { in[0].Shape = []int64{2, math.MaxInt64 / 2}; return in }),
			""}, // shape mismatch or overflow, either way rejected
		{"batch 0", with(func(in []backend.Tensor) []backend.Tensor {
			for i := range in {
				in[i].Shape, in[i].Data = []int64{0, 4}, nil
			}
			return in
		}), "inference request batch-size must be >= 1 for 'pair'"},
		{"unknown output", &backend.Request{Inputs: ok(), Outputs: []string{"NOPE"}}, "unexpected inference output 'NOPE' for model 'pair'"},
		{"duplicate output", &backend.Request{Inputs: ok(), Outputs: []string{"OUTPUT__0", "OUTPUT__0"}}, "output 'OUTPUT__0' already exists in request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.infer(context.Background(), tc.req)
			if err == nil {
				t.Fatal("accepted")
			}
			if backend.CodeOf(err) != backend.CodeInvalidArg || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v %q, want INVALID_ARG %q", backend.CodeOf(err), err, tc.msg)
			}
		})
	}
	// None of them reached the batcher, and the model still serves.
	if st := m.Stats(); st.Fail.Count != 0 || st.ExecutionCount != 0 {
		t.Errorf("invalid requests reached the batcher: %+v", st)
	}
	req, a, b := pairRequest(2, 1)
	resp, err := m.Infer(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	_, want1 := pairExpected(a, b, 1)
	if !near(floats(resp.Outputs[0].Data), want1) {
		t.Errorf("got %v want %v", floats(resp.Outputs[0].Data), want1)
	}
}

// TestRaggedInputKeepsItsDims: the repository's validation lets an
// allow_ragged_batch input of any shape through, but this kind batches by
// concatenation, so the input must still fit its dims; it says so in the
// words of the repository's shape check.
func TestRaggedInputKeepsItsDims(t *testing.T) {
	ragged := strings.Replace(pairConfig, `{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] }`,
		`{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] allow_ragged_batch: true }`, 1)
	if ragged == pairConfig {
		t.Fatal("pairConfig has no INPUT__0 to make ragged")
	}
	m := load(t, "ragged", ragged)
	req, _, _ := pairRequest(1, 1)
	for i := range req.Inputs {
		if req.Inputs[i].Name == "INPUT__0" {
			req.Inputs[i].Shape, req.Inputs[i].Data = []int64{1, 3}, f32(1, 2, 3)
		}
	}
	if err := m.sig.Validate(req); err != nil {
		t.Fatalf("the repository's validation refused a ragged input: %v", err)
	}
	_, err := m.infer(context.Background(), req)
	want := "unexpected shape for input 'INPUT__0' for model 'ragged'. Expected [-1,4], got [1,3]. NOTE: Setting a non-zero max_batch_size"
	if backend.CodeOf(err) != backend.CodeInvalidArg || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v %v, want INVALID_ARG %q", backend.CodeOf(err), err, want)
	}
	if st := m.Stats(); st.ExecutionCount != 0 {
		t.Errorf("the refused request reached the batcher: %+v", st)
	}
}

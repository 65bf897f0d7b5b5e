package ofa_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
)

// tensor is one input of a validation case: its JSON form and its raw bytes
// (the binary layout gRPC's raw_input_contents carries) are built from the
// same values.
type tensor struct {
	name, datatype string
	shape          []int64
	strs           []string // BYTES
	nums           []float64
}

func (t tensor) json() map[string]any {
	var data any = t.nums
	if t.datatype == "BYTES" {
		data = t.strs
	}
	return map[string]any{"name": t.name, "datatype": t.datatype, "shape": t.shape, "data": data}
}

func (t tensor) raw() []byte {
	var b []byte
	for _, s := range t.strs {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	for _, v := range t.nums {
		switch t.datatype {
		case "FP32":
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(v)))
		case "INT32":
			b = binary.LittleEndian.AppendUint32(b, uint32(int32(v)))
		case "INT64":
			b = binary.LittleEndian.AppendUint64(b, uint64(int64(v)))
		}
	}
	return b
}

// batchNote is Triton's note on the batch dimension, which ends every shape
// error of a batching model.
const batchNote = " NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be prepended to each input shape. If you want to specify the full shape including the batch dim in your input dims config, try setting max_batch_size to zero. See the model configuration docs for more info on max_batch_size."

// TestValidationIsTheSameForEveryKindAndProtocol: a request that names its
// inputs wrongly, repeats or leaves one out, or sends the wrong datatype or
// shape gets the same message (Triton's) from both model kinds, over HTTP
// (400) and gRPC (INVALID_ARGUMENT): every request is validated once, by
// the repository's model handle, whichever frontend decoded it.
func TestValidationIsTheSameForEveryKindAndProtocol(t *testing.T) {
	img := tensor{name: "IMAGE", datatype: "BYTES", shape: []int64{1, 1}, strs: []string{"not even an image"}}
	hyp := tensor{name: "HYPOTHESIS", datatype: "BYTES", shape: []int64{1, 1}, strs: []string{"a dog"}}
	ids := tensor{name: "INPUT_IDS", datatype: "INT64", shape: []int64{1, 4}, nums: []float64{0, 5, 6, 2}}
	extra := tensor{name: "EXTRA", datatype: "FP32", shape: []int64{1}, nums: []float64{1}}
	cases := []struct {
		model, problem string
		inputs         []tensor
		want           string
	}{
		{"ofa_entailment", "missing", []tensor{img},
			"expected number of inputs between 2 and 3 but got 1 inputs for model 'ofa_entailment'. Got input(s) ['IMAGE'], but missing required input(s) ['HYPOTHESIS']. Please provide all required input(s)."},
		{"ofa_entailment", "unexpected", []tensor{img, hyp, extra}, "unexpected inference input 'EXTRA' for model 'ofa_entailment'"},
		{"ofa_entailment", "duplicate", []tensor{img, hyp, img}, "input 'IMAGE' already exists in request"},
		{"ofa_entailment", "datatype", []tensor{img, {name: "HYPOTHESIS", datatype: "FP32", shape: []int64{1, 1}, nums: []float64{1}}},
			"inference input 'HYPOTHESIS' data-type is 'FP32', but model 'ofa_entailment' expects 'BYTES'"},
		{"ofa_entailment", "shape", []tensor{{name: "IMAGE", datatype: "BYTES", shape: []int64{1, 2}, strs: []string{"a", "b"}}, hyp},
			"unexpected shape for input 'IMAGE' for model 'ofa_entailment'. Expected [-1,1], got [1,2]." + batchNote},
		{"ofa_entailment_raw", "missing", []tensor{ids},
			"expected 2 inputs but got 1 inputs for model 'ofa_entailment_raw'. Got input(s) ['INPUT_IDS'], but missing required input(s) ['IMAGE']. Please provide all required input(s)."},
		{"ofa_entailment_raw", "unexpected", []tensor{ids, extra}, "unexpected inference input 'EXTRA' for model 'ofa_entailment_raw'"},
		{"ofa_entailment_raw", "duplicate", []tensor{ids, ids}, "input 'INPUT_IDS' already exists in request"},
		{"ofa_entailment_raw", "datatype", []tensor{{name: "INPUT_IDS", datatype: "INT32", shape: []int64{1, 4}, nums: []float64{0, 5, 6, 2}}},
			"inference input 'INPUT_IDS' data-type is 'INT32', but model 'ofa_entailment_raw' expects 'INT64'"},
		{"ofa_entailment_raw", "shape", []tensor{{name: "INPUT_IDS", datatype: "INT64", shape: []int64{1, 2, 2}, nums: []float64{0, 5, 6, 2}}},
			"unexpected shape for input 'INPUT_IDS' for model 'ofa_entailment_raw'. Expected [-1,-1], got [1,2,2]." + batchNote},
	}
	conn, err := grpc.NewClient(env.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	gc := pb.NewGRPCInferenceServiceClient(conn)
	for _, c := range cases {
		t.Run(c.model+"/"+c.problem, func(t *testing.T) {
			// HTTP: KServe v2 JSON.
			var in []map[string]any
			for _, x := range c.inputs {
				in = append(in, x.json())
			}
			body, _ := json.Marshal(map[string]any{"inputs": in})
			code, resp := post(t, "/v2/models/"+c.model+"/infer", "application/json", body, nil)
			var e struct{ Error string }
			if err := json.Unmarshal(resp, &e); code != http.StatusBadRequest || err != nil || e.Error != c.want {
				t.Errorf("HTTP: %d %s\nwant 400 {\"error\": %q}", code, resp, c.want)
			}
			// gRPC: raw_input_contents.
			req := &pb.ModelInferRequest{ModelName: c.model}
			for _, x := range c.inputs {
				req.Inputs = append(req.Inputs, &pb.ModelInferRequest_InferInputTensor{Name: x.name, Datatype: x.datatype, Shape: x.shape})
				req.RawInputContents = append(req.RawInputContents, x.raw())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := gc.ModelInfer(ctx, req)
			st, _ := status.FromError(err)
			if st.Code() != codes.InvalidArgument || st.Message() != c.want {
				t.Errorf("gRPC: %v %q\nwant INVALID_ARGUMENT %q", st.Code(), st.Message(), c.want)
			}
		})
	}
}

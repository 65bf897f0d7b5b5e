package kserve

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/datatype"
	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
)

// DecodeGRPC converts a ModelInferRequest for model (typed contents or
// raw_input_contents, docs/triton-batcher-and-kserve-v2.md §3.3-3.4) into a backend request and the
// outputs it lists.
func DecodeGRPC(r *pb.ModelInferRequest, model string) (*backend.Request, []Output, error) {
	req := &backend.Request{ID: r.GetId()}
	for k, p := range r.GetParameters() {
		if err := applyGRPCParam(req, k, p); err != nil {
			return nil, nil, err
		}
	}
	raw := r.GetRawInputContents()
	if len(raw) > 0 {
		for _, in := range r.GetInputs() {
			if in.GetContents() != nil {
				return nil, nil, invalidArg("contents field must not be specified when using raw_input_contents for '%s' for model '%s'", in.GetName(), model)
			}
		}
	}
	req.Inputs = make([]backend.Tensor, len(r.GetInputs()))
	for i, in := range r.GetInputs() {
		for k := range in.GetParameters() {
			if strings.HasPrefix(k, "shared_memory_") {
				return nil, nil, invalidArg("shared memory is not supported by this server: input '%s' sets parameter '%s'; send the data in raw_input_contents or contents", in.GetName(), k)
			}
		}
		t := &req.Inputs[i]
		t.Name, t.Datatype, t.Shape = in.GetName(), in.GetDatatype(), in.GetShape()
		switch {
		case len(raw) > 0:
			if i >= len(raw) {
				return nil, nil, invalidArg("unable to find data for input tensor '%s' for model '%s' in request.", in.GetName(), model)
			}
			t.Data = raw[i]
		case in.GetContents() != nil:
			data, err := contentsBytes(in, model)
			if err != nil {
				return nil, nil, err
			}
			t.Data = data
		default:
			return nil, nil, invalidArg("unable to find data for input tensor '%s' for model '%s' in request.", in.GetName(), model)
		}
	}
	var outs []Output
	for _, o := range r.GetOutputs() {
		or := Output{Name: o.GetName()}
		for k, p := range o.GetParameters() {
			switch {
			case k == "classification":
				n, ok := p.GetParameterChoice().(*pb.InferParameter_Int64Param)
				if !ok || n.Int64Param < 0 {
					return nil, nil, invalidArg("invalid value type for 'classification' parameter, expected int64_param >= 0")
				}
				or.ClassCount = n.Int64Param
			case strings.HasPrefix(k, "shared_memory_"):
				return nil, nil, invalidArg("shared memory is not supported by this server: output '%s' sets parameter '%s'", o.GetName(), k)
			}
		}
		outs = append(outs, or)
	}
	return req, outs, nil
}

func applyGRPCParam(req *backend.Request, k string, p *pb.InferParameter) error {
	switch k {
	case "priority", "timeout":
		var v uint64
		switch x := p.GetParameterChoice().(type) {
		case *pb.InferParameter_Int64Param:
			if x.Int64Param < 0 {
				return invalidArg("invalid value for '%s' parameter, expected a non-negative value", k)
			}
			v = uint64(x.Int64Param)
		case *pb.InferParameter_Uint64Param:
			v = x.Uint64Param
		default:
			return invalidArg("invalid value type for '%s' parameter, expected int64_param or uint64_param", k)
		}
		if k == "priority" {
			req.Priority = v
		} else {
			req.Timeout = usDuration(v)
		}
		return nil
	case "sequence_id":
		switch x := p.GetParameterChoice().(type) {
		case *pb.InferParameter_Int64Param:
			if x.Int64Param == 0 {
				return nil
			}
		case *pb.InferParameter_StringParam:
			if x.StringParam == "" {
				return nil
			}
		}
		return backend.Errorf(backend.CodeUnsupported, "sequence batching is not supported by this server (parameter 'sequence_id')")
	case "sequence_start", "sequence_end":
		if x, ok := p.GetParameterChoice().(*pb.InferParameter_BoolParam); ok && !x.BoolParam {
			return nil
		}
		return backend.Errorf(backend.CodeUnsupported, "sequence batching is not supported by this server (parameter '%s')", k)
	case "triton_enable_empty_final_response":
		if _, ok := p.GetParameterChoice().(*pb.InferParameter_BoolParam); !ok {
			return invalidArg("invalid value type for '%s' parameter, expected bool_param", k)
		}
		return nil
	case "headers":
		return invalidArg("parameter 'headers' is reserved and should not be specified")
	}
	if strings.HasPrefix(k, "triton_") {
		return invalidArg("parameter keys starting with 'triton_' are reserved for Triton usage and should not be specified.")
	}
	var v any
	switch x := p.GetParameterChoice().(type) {
	case *pb.InferParameter_BoolParam:
		v = x.BoolParam
	case *pb.InferParameter_Int64Param:
		v = x.Int64Param
	case *pb.InferParameter_StringParam:
		v = x.StringParam
	case *pb.InferParameter_DoubleParam:
		v = x.DoubleParam
	case *pb.InferParameter_Uint64Param:
		v = x.Uint64Param
	default:
		return invalidArg("invalid value type for '%s' parameter, expected bool_param, int64_param, string_param, double_param or uint64_param", k)
	}
	if req.Parameters == nil {
		req.Parameters = make(map[string]any)
	}
	req.Parameters[k] = v
	return nil
}

// contentsBytes converts typed contents into the raw layout; the filled
// field must be the one of the input's datatype.
func contentsBytes(in *pb.ModelInferRequest_InferInputTensor, model string) ([]byte, error) {
	c := in.GetContents()
	d := datatype.Parse(in.GetDatatype())
	var want string
	switch {
	case d == datatype.Bool:
		want = "bool_contents"
	case d == datatype.Int8 || d == datatype.Int16 || d == datatype.Int32:
		want = "int_contents"
	case d == datatype.Int64:
		want = "int64_contents"
	case d == datatype.Uint8 || d == datatype.Uint16 || d == datatype.Uint32:
		want = "uint_contents"
	case d == datatype.Uint64:
		want = "uint64_contents"
	case d == datatype.FP32:
		want = "fp32_contents"
	case d == datatype.FP64:
		want = "fp64_contents"
	case d == datatype.Bytes:
		want = "bytes_contents"
	}
	filled := map[string]int{
		"bool_contents": len(c.GetBoolContents()), "int_contents": len(c.GetIntContents()),
		"int64_contents": len(c.GetInt64Contents()), "uint_contents": len(c.GetUintContents()),
		"uint64_contents": len(c.GetUint64Contents()), "fp32_contents": len(c.GetFp32Contents()),
		"fp64_contents": len(c.GetFp64Contents()), "bytes_contents": len(c.GetBytesContents()),
	}
	for f, n := range filled {
		if n > 0 && f != want {
			return nil, invalidArg("unexpected explicit tensor data for input tensor '%s' for model '%s' of type '%s', expected datatype '%s'",
				in.GetName(), model, strings.TrimSuffix(f, "_contents"), in.GetDatatype())
		}
	}
	if want == "" {
		return nil, invalidArg("input '%s' of datatype '%s' cannot be sent in typed contents; use raw_input_contents", in.GetName(), in.GetDatatype())
	}
	var out []byte
	switch want {
	case "bool_contents":
		out = make([]byte, 0, len(c.GetBoolContents()))
		for _, v := range c.GetBoolContents() {
			if v {
				out = append(out, 1)
			} else {
				out = append(out, 0)
			}
		}
	case "int_contents":
		out = make([]byte, 0, len(c.GetIntContents())*d.Size())
		for _, v := range c.GetIntContents() {
			out = appendUint(out, d, uint64(int64(v)))
		}
	case "int64_contents":
		out = make([]byte, 0, 8*len(c.GetInt64Contents()))
		for _, v := range c.GetInt64Contents() {
			out = binary.LittleEndian.AppendUint64(out, uint64(v))
		}
	case "uint_contents":
		out = make([]byte, 0, len(c.GetUintContents())*d.Size())
		for _, v := range c.GetUintContents() {
			out = appendUint(out, d, uint64(v))
		}
	case "uint64_contents":
		out = make([]byte, 0, 8*len(c.GetUint64Contents()))
		for _, v := range c.GetUint64Contents() {
			out = binary.LittleEndian.AppendUint64(out, v)
		}
	case "fp32_contents":
		out = make([]byte, 0, 4*len(c.GetFp32Contents()))
		for _, v := range c.GetFp32Contents() {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
		}
	case "fp64_contents":
		out = make([]byte, 0, 8*len(c.GetFp64Contents()))
		for _, v := range c.GetFp64Contents() {
			out = binary.LittleEndian.AppendUint64(out, math.Float64bits(v))
		}
	case "bytes_contents":
		for _, v := range c.GetBytesContents() {
			out = datatype.AppendElement(out, v)
		}
	}
	return out, nil
}

func paramPB(v any) *pb.InferParameter {
	switch x := v.(type) {
	case bool:
		return &pb.InferParameter{ParameterChoice: &pb.InferParameter_BoolParam{BoolParam: x}}
	case int:
		return &pb.InferParameter{ParameterChoice: &pb.InferParameter_Int64Param{Int64Param: int64(x)}}
	case int64:
		return &pb.InferParameter{ParameterChoice: &pb.InferParameter_Int64Param{Int64Param: x}}
	case uint64:
		return &pb.InferParameter{ParameterChoice: &pb.InferParameter_Uint64Param{Uint64Param: x}}
	case float64:
		return &pb.InferParameter{ParameterChoice: &pb.InferParameter_DoubleParam{DoubleParam: x}}
	case string:
		return &pb.InferParameter{ParameterChoice: &pb.InferParameter_StringParam{StringParam: x}}
	}
	return &pb.InferParameter{}
}

// EncodeGRPC builds the ModelInferResponse of model version for the request
// of the given id: every output in raw_output_contents.
func EncodeGRPC(model string, version int64, id string, resp *backend.Response) *pb.ModelInferResponse {
	out := &pb.ModelInferResponse{
		ModelName:         model,
		ModelVersion:      strconv.FormatInt(version, 10),
		Id:                id,
		Outputs:           make([]*pb.ModelInferResponse_InferOutputTensor, len(resp.Outputs)),
		RawOutputContents: make([][]byte, len(resp.Outputs)),
	}
	for i, t := range resp.Outputs {
		out.Outputs[i] = &pb.ModelInferResponse_InferOutputTensor{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape}
		out.RawOutputContents[i] = t.Data
	}
	if len(resp.Parameters) > 0 {
		out.Parameters = make(map[string]*pb.InferParameter, len(resp.Parameters))
		for k, v := range resp.Parameters {
			out.Parameters[k] = paramPB(v)
		}
	}
	return out
}

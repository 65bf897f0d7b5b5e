package kserve

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/datatype"
)

// Output is one output a request asked for and how it wants it back.
type Output struct {
	Name       string
	Binary     bool  // HTTP: send in the binary extension
	ClassCount int64 // > 0: classification top-K (docs/triton-batcher-and-kserve-v2.md §2.10)
}

// HTTPRequest is a decoded HTTP inference request.
type HTTPRequest struct {
	Request backend.Request
	// Outputs are the outputs the request lists (none: all of them).
	Outputs []Output
	// BinaryOutput is the request's binary_data_output: the format of the
	// outputs it does not list.
	BinaryOutput bool
	// Room for the common request (one input and output of rank <= 4, or
	// two inputs of rank 2) without further allocations.
	inBuf  [1]backend.Tensor
	outBuf [1]Output
	dimBuf [4]int64
}

// keepShape copies a shape out of the envelope into hi's room, or a new
// slice once that is used up.
func (hi *HTTPRequest) keepShape(shape []int64, used *int) []int64 {
	if shape == nil {
		return nil
	}
	if *used+len(shape) <= len(hi.dimBuf) {
		out := hi.dimBuf[*used : *used+len(shape) : *used+len(shape)]
		*used += len(shape)
		copy(out, shape)
		return out
	}
	return append([]int64{}, shape...)
}

// DecodeHTTP decodes the body of POST .../infer for the model of signature
// sig, framed by the Inference-Header-Content-Length header (headerLen, ""
// when absent): a JSON request, a JSON header followed by the binary
// extension's blobs, or a raw binary input (docs/triton-batcher-and-kserve-v2.md §2.3-2.6).
// maxInput caps the decoded size of one JSON tensor. The request's strings
// and data may point into body.
func DecodeHTTP(sig *backend.Signature, headerLen string, body []byte, maxInput int64) (*HTTPRequest, error) {
	if headerLen == "" {
		return decodeHTTP(body, nil, false, sig, maxInput)
	}
	n, err := strconv.ParseInt(headerLen, 10, 64)
	if err != nil {
		return nil, invalidArg("Unable to parse Inference-Header-Content-Length, got: %s", headerLen)
	}
	if n < -(1<<31) || n > 1<<31-1 {
		return nil, invalidArg("Inference-Header-Content-Length value is out of range [%d, %d], got: %s", -(1 << 31), 1<<31-1, headerLen)
	}
	if n == 0 {
		return rawRequest(sig, body)
	}
	if n < 0 || n > int64(len(body)) {
		return nil, invalidArg("inference header size should be in range (0, %d), got: %d", len(body), n)
	}
	return decodeHTTP(body[:n], body[n:], true, sig, maxInput)
}

// decodeHTTP decodes an inference request body: the JSON header
// (header bytes) and the binary blobs that follow it (docs/triton-batcher-and-kserve-v2.md §2.6).
// hasHeaderLen says whether Inference-Header-Content-Length was sent.
func decodeHTTP(header, blobs []byte, hasHeaderLen bool, sig *backend.Signature, maxInput int64) (*HTTPRequest, error) {
	// Malformed or ill-typed JSON is the client's fault: 400, where
	// Triton answers 500 (its JSON helper reports INTERNAL).
	jr := getEnvelope()
	defer putEnvelope(jr)
	if err := parseEnvelope(header, jr); err != nil {
		return nil, err
	}
	modelName := sig.Name
	hi := &HTTPRequest{}
	r := &hi.Request
	if len(jr.ID) > 0 && string(jr.ID) != "null" {
		if jr.ID[0] != '"' {
			return nil, invalidArg("unable to parse 'id': expected a string")
		}
		s := envScanner{b: jr.ID}
		r.ID = s.str(true)
	}
	if err := applyJSONParams(hi, jr.Parameters); err != nil {
		return nil, err
	}
	if len(jr.Inputs) == 0 {
		return nil, invalidArg("unable to parse 'inputs': the request has no inputs")
	}
	if len(jr.Inputs) <= len(hi.inBuf) {
		r.Inputs = hi.inBuf[:len(jr.Inputs):len(jr.Inputs)]
	} else {
		r.Inputs = make([]backend.Tensor, len(jr.Inputs))
	}
	dimsUsed := 0
	for i := range jr.Inputs {
		in := &jr.Inputs[i]
		t := &r.Inputs[i]
		if in.Name == "" {
			return nil, invalidArg("unable to parse 'inputs': input %d has no 'name'", i)
		}
		d := datatype.Parse(in.Datatype)
		if d == datatype.Invalid {
			return nil, invalidArg("invalid datatype '%s' for input '%s'", in.Datatype, in.Name)
		}
		// in's strings point into the body: keep copies (or the model's
		// own strings, which are usually the same).
		t.Name, t.Datatype, t.Shape = internName(in.Name, sig.Inputs), d.String(), hi.keepShape(in.Shape, &dimsUsed)
		binSize := int64(-1)
		for _, p := range in.Parameters {
			k, v := p.key, p.val
			switch k {
			case "binary_data_size":
				n, err := strconv.ParseUint(string(v), 10, 63)
				if err != nil {
					return nil, invalidArg("unable to parse 'binary_data_size' of input '%s': expected a non-negative integer", in.Name)
				}
				binSize = int64(n)
			case "shared_memory_region", "shared_memory_offset", "shared_memory_byte_size":
				return nil, invalidArg("shared memory is not supported by this server: input '%s' sets parameter '%s'; send the data inline or as binary data", in.Name, k)
			}
		}
		hasData := len(in.Data) > 0
		if hasData == (binSize >= 0) {
			got := "neither was set"
			if hasData {
				got = "both 'data' and 'binary_data_size' were set"
			}
			return nil, invalidArg("Input must set only one of the following fields: 'data', 'binary_data_size' in 'parameters', 'shared_memory_region' in 'parameters'. But %s for input '%s'", got, in.Name)
		}
		if binSize >= 0 {
			if !hasHeaderLen {
				return nil, invalidArg("must specify valid 'Infer-Header-Content-Length' in request header and 'binary_data_size' when passing inputs in binary data format")
			}
			if int64(len(blobs)) < binSize {
				return nil, invalidArg("unexpected size for input '%s', expecting %d additional bytes for model '%s'", in.Name, binSize-int64(len(blobs)), modelName)
			}
			t.Data = blobs[:binSize:binSize]
			blobs = blobs[binSize:]
			continue
		}
		want, variable, ok := datatype.ElementCount(in.Shape)
		if !ok || variable > 0 {
			return nil, invalidArg("input '%s' has a shape %s that causes total element count to exceed maximum size of %d", in.Name, backend.FormatShape(in.Shape), int64(math.MaxInt64))
		}
		data, err := decodeJSONData(in.Data, d, want, maxInput, in.Name, nil)
		if err != nil {
			return nil, err
		}
		t.Data = data
	}
	if len(blobs) > 0 {
		return nil, invalidArg("unexpected additional input data for model '%s'", modelName)
	}
	if len(jr.Outputs) > 0 {
		if len(jr.Outputs) <= len(hi.outBuf) {
			hi.Outputs = hi.outBuf[:len(jr.Outputs):len(jr.Outputs)]
		} else {
			hi.Outputs = make([]Output, len(jr.Outputs))
		}
		for i := range jr.Outputs {
			o := &jr.Outputs[i]
			if o.Name == "" {
				return nil, invalidArg("unable to parse 'outputs': output %d has no 'name'", i)
			}
			or := Output{Name: internName(o.Name, sig.Outputs)}
			for _, p := range o.Parameters {
				k, v := p.key, p.val
				switch k {
				case "binary_data":
					b, err := strconv.ParseBool(string(v))
					if err != nil || (string(v) != "true" && string(v) != "false") {
						return nil, invalidArg("unable to parse 'binary_data' of output '%s': expected a boolean", o.Name)
					}
					or.Binary = b
				case "classification":
					n, err := strconv.ParseUint(string(v), 10, 63)
					if err != nil {
						return nil, invalidArg("unable to parse 'classification' of output '%s': expected a non-negative integer", o.Name)
					}
					or.ClassCount = int64(n)
				case "shared_memory_region", "shared_memory_offset", "shared_memory_byte_size":
					return nil, invalidArg("shared memory is not supported by this server: output '%s' sets parameter '%s'", o.Name, k)
				}
			}
			hi.Outputs[i] = or
		}
	}
	return hi, nil
}

// applyJSONParams handles the request-level parameters (docs/triton-batcher-and-kserve-v2.md §2.3).
func applyJSONParams(hi *HTTPRequest, params []jsonParam) error {
	for _, p := range params {
		k, v := p.key, p.val
		s := string(v)
		switch k {
		case "priority":
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return invalidArg("unable to parse 'priority': expected a non-negative integer, got %s", s)
			}
			hi.Request.Priority = n
		case "timeout":
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return invalidArg("unable to parse 'timeout': expected a non-negative integer (microseconds), got %s", s)
			}
			hi.Request.Timeout = usDuration(n)
		case "binary_data_output":
			if s != "true" && s != "false" {
				return invalidArg("unable to parse 'binary_data_output': expected a boolean, got %s", s)
			}
			hi.BinaryOutput = s == "true"
		case "sequence_id":
			if s != "0" && s != `""` {
				return backend.Errorf(backend.CodeUnsupported, "sequence batching is not supported by this server (parameter 'sequence_id')")
			}
		case "sequence_start", "sequence_end":
			if s != "false" {
				return backend.Errorf(backend.CodeUnsupported, "sequence batching is not supported by this server (parameter '%s')", k)
			}
		case "headers":
			return invalidArg("parameter 'headers' is reserved and should not be specified")
		default:
			if strings.HasPrefix(k, "triton_") {
				return invalidArg("parameter keys starting with 'triton_' are reserved for Triton usage and should not be specified.")
			}
			val, err := customParam(v)
			if err != nil {
				return invalidArg("unable to parse parameter '%s': %v", k, err)
			}
			if hi.Request.Parameters == nil {
				hi.Request.Parameters = make(map[string]any)
			}
			hi.Request.Parameters[strings.Clone(k)] = val
		}
	}
	return nil
}

// customParam converts a custom parameter to string, int64, float64 or bool.
func customParam(v []byte) (any, error) {
	s := string(v)
	switch {
	case s == "true" || s == "false":
		return s == "true", nil
	case len(s) > 0 && s[0] == '"':
		var str string
		err := json.Unmarshal(v, &str)
		return str, err
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, invalidArg("expected a string, number or boolean")
	}
	return f, nil
}

func usDuration(us uint64) time.Duration {
	if us > math.MaxInt64/uint64(time.Microsecond) {
		return math.MaxInt64
	}
	return time.Duration(us) * time.Microsecond
}

// rawRequest builds the request of a raw binary body (header length 0,
// docs/triton-batcher-and-kserve-v2.md §2.6): the model's only input, its shape inferred from the size.
func rawRequest(sig *backend.Signature, body []byte) (*HTTPRequest, error) {
	specs := sig.Inputs
	if len(specs) != 1 {
		return nil, invalidArg("Raw request must only have 1 input (found 1) to be deduced but got %d inputs in '%s' model configuration", len(specs), sig.Name)
	}
	spec := specs[0]
	d := datatype.FromConfig(spec.Datatype)
	shape := make([]int64, 0, len(spec.Dims)+1)
	if sig.MaxBatchSize > 0 {
		shape = append(shape, 1)
	}
	data := body
	if d == datatype.Bytes {
		if len(spec.Dims) != 1 || spec.Dims[0] != 1 {
			return nil, invalidArg("For BYTE datatype raw input '%s', the model must have input shape [1]", spec.Name)
		}
		data = datatype.AppendElement(make([]byte, 0, 4+len(body)), body)
		shape = append(shape, 1)
	} else {
		fixed, variable, _ := datatype.ElementCount(spec.Dims)
		if variable > 1 {
			return nil, invalidArg("The shape of the raw input '%s' can not be deduced because there are more than one variable-sized dimension", spec.Name)
		}
		fixed *= int64(d.Size())
		for _, v := range spec.Dims {
			if v == -1 {
				if fixed == 0 || int64(len(body))%fixed != 0 {
					return nil, invalidArg("The shape of the raw input '%s' can not be deduced: %d bytes is not a multiple of %d", spec.Name, len(body), fixed)
				}
				v = int64(len(body)) / fixed
			}
			shape = append(shape, v)
		}
	}
	hi := &HTTPRequest{BinaryOutput: true}
	hi.Request.Inputs = []backend.Tensor{{Name: spec.Name, Datatype: d.String(), Shape: shape, Data: data}}
	return hi, nil
}

func invalidArg(format string, args ...any) error {
	return backend.Errorf(backend.CodeInvalidArg, format, args...)
}

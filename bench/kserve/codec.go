package kserve

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// HeaderLength is the HTTP header that gives the byte length of the JSON part
// of a body carrying binary tensor data (docs/triton-batcher-and-kserve-v2.md §2.6).
const HeaderLength = "Inference-Header-Content-Length"

type jsonInput struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters map[string]any  `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
}

type jsonOutput struct {
	Name       string         `json:"name"`
	Parameters map[string]any `json:"parameters,omitempty"`
}

type jsonRequest struct {
	ID         string         `json:"id,omitempty"`
	Parameters map[string]any `json:"parameters,omitempty"`
	Inputs     []jsonInput    `json:"inputs"`
	Outputs    []jsonOutput   `json:"outputs,omitempty"`
}

// EncodeHTTP encodes req as an HTTP request body. With binaryInputs every
// input travels in the binary extension: the JSON header names its
// binary_data_size and the blobs follow in input order. headerLen is the
// value for Inference-Header-Content-Length, or -1 when the body is pure JSON
// and the header must not be sent.
func EncodeHTTP(req Request, binaryInputs bool) (body []byte, headerLen int, err error) {
	jr := jsonRequest{Inputs: make([]jsonInput, 0, len(req.Inputs))}
	var blobs [][]byte
	for i := range req.Inputs {
		t := &req.Inputs[i]
		if err := t.Validate(); err != nil {
			return nil, 0, err
		}
		in := jsonInput{Name: t.Name, Shape: t.Shape, Datatype: t.Datatype}
		if binaryInputs {
			raw := t.RawBytes()
			in.Parameters = map[string]any{"binary_data_size": len(raw)}
			blobs = append(blobs, raw)
		} else {
			d, err := t.jsonData()
			if err != nil {
				return nil, 0, err
			}
			in.Data = d
		}
		jr.Inputs = append(jr.Inputs, in)
	}
	for _, o := range req.Outputs {
		out := jsonOutput{Name: o}
		if req.BinaryOutput {
			out.Parameters = map[string]any{"binary_data": true}
		}
		jr.Outputs = append(jr.Outputs, out)
	}
	if req.BinaryOutput && len(req.Outputs) == 0 {
		jr.Parameters = map[string]any{"binary_data_output": true}
	}
	head, err := json.Marshal(jr)
	if err != nil {
		return nil, 0, fmt.Errorf("encoding request JSON: %w", err)
	}
	if !binaryInputs {
		return head, -1, nil
	}
	body = head
	for _, b := range blobs {
		body = append(body, b...)
	}
	return body, len(head), nil
}

// OutputTensor is one output of a response, with its raw bytes when it came
// in the binary extension or its JSON data otherwise.
type OutputTensor struct {
	Name       string          `json:"name"`
	Datatype   string          `json:"datatype"`
	Shape      []int64         `json:"shape"`
	Parameters map[string]any  `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
	Raw        []byte          `json:"-"`
}

// Response is a decoded inference response.
type Response struct {
	ID           string         `json:"id,omitempty"`
	ModelName    string         `json:"model_name"`
	ModelVersion string         `json:"model_version"`
	Outputs      []OutputTensor `json:"outputs"`
}

// ErrorBody is the {"error": "..."} document of a failed request.
type ErrorBody struct {
	Error string `json:"error"`
}

// DecodeHTTPResponse splits a response body into its JSON header and the
// binary blobs of outputs that carry binary_data_size. headerLen is the value
// of Inference-Header-Content-Length, "" when absent.
func DecodeHTTPResponse(body []byte, headerLen string) (*Response, error) {
	jsonPart, rest := body, []byte(nil)
	if headerLen != "" {
		n, err := strconv.Atoi(headerLen)
		if err != nil || n < 0 || n > len(body) {
			return nil, fmt.Errorf("bad %s %q for a body of %d bytes", HeaderLength, headerLen, len(body))
		}
		jsonPart, rest = body[:n], body[n:]
	}
	var r Response
	if err := json.Unmarshal(jsonPart, &r); err != nil {
		return nil, fmt.Errorf("decoding response JSON: %w", err)
	}
	for i := range r.Outputs {
		o := &r.Outputs[i]
		v, ok := o.Parameters["binary_data_size"]
		if !ok {
			continue
		}
		f, ok := v.(float64)
		if !ok || f < 0 || f != float64(int64(f)) {
			return nil, fmt.Errorf("output %q: bad binary_data_size %v", o.Name, v)
		}
		n := int(f)
		if n > len(rest) {
			return nil, fmt.Errorf("output %q: binary_data_size %d but only %d bytes left", o.Name, n, len(rest))
		}
		o.Raw, rest = rest[:n], rest[n:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%d unexpected bytes after the last binary output", len(rest))
	}
	return &r, nil
}

// Package kserve is ofabench's client side of the KServe v2 / Triton
// inference protocol: request tensors, their encoding as JSON or with the
// binary-data extension (docs/triton-batcher-and-kserve-v2.md §2.3–2.6), response framing, the model
// metadata, config and statistics documents (§2.2, §2.11), and an HTTP client
// that sends pre-encoded requests. It knows nothing about load generation or
// reports; the gRPC client lives in the sibling package grpcclient.
package kserve

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/ofaserve/ofaserve/protocol/datatype"
)

// Tensor is one named input as the client holds it.
//
// Numeric tensors carry Data, little-endian and row-major. BYTES tensors carry
// Elems, one entry per element. Base64JSON marks a BYTES tensor whose
// elements travel as base64 text in JSON (the IMAGE input of ofa_entailment)
// but as raw bytes in the binary extension.
type Tensor struct {
	Name       string
	Datatype   string
	Shape      []int64
	Data       []byte
	Elems      [][]byte
	Base64JSON bool
}

// Request is one inference request before encoding.
type Request struct {
	Model   string
	Version string   // "" means latest
	Inputs  []Tensor // in wire order
	Outputs []string // requested outputs; empty means all
	// BinaryOutput asks for every output in the binary extension (HTTP).
	BinaryOutput bool
}

// NumElements returns the product of shape, or an error for a negative or
// overflowing dimension.
func NumElements(shape []int64) (int64, error) {
	if slices.ContainsFunc(shape, func(d int64) bool { return d < 0 }) {
		return 0, fmt.Errorf("shape %v has a negative dimension", shape)
	}
	n, _, ok := datatype.ElementCount(shape)
	if !ok || n > math.MaxInt32*int64(256) {
		return 0, fmt.Errorf("shape %v is too large", shape)
	}
	return n, nil
}

// Validate checks that the tensor's payload matches its shape and datatype.
func (t *Tensor) Validate() error {
	n, err := NumElements(t.Shape)
	if err != nil {
		return fmt.Errorf("input %q: %w", t.Name, err)
	}
	if t.Datatype == "BYTES" {
		if int64(len(t.Elems)) != n {
			return fmt.Errorf("input %q: shape %v needs %d BYTES elements, have %d", t.Name, t.Shape, n, len(t.Elems))
		}
		return nil
	}
	sz := datatype.Parse(t.Datatype).Size()
	if sz == 0 {
		return fmt.Errorf("input %q: unknown datatype %q", t.Name, t.Datatype)
	}
	if int64(len(t.Data)) != n*int64(sz) {
		return fmt.Errorf("input %q: shape %v of %s needs %d bytes, have %d", t.Name, t.Shape, t.Datatype, n*int64(sz), len(t.Data))
	}
	return nil
}

// RawBytes returns the tensor's binary-extension payload: Data as is, or for
// BYTES each element as a 4-byte little-endian length followed by its bytes.
func (t *Tensor) RawBytes() []byte {
	if t.Datatype != "BYTES" {
		return t.Data
	}
	size := 0
	for _, e := range t.Elems {
		size += 4 + len(e)
	}
	out := make([]byte, 0, size)
	for _, e := range t.Elems {
		out = datatype.AppendElement(out, e)
	}
	return out
}

// jsonData renders the tensor's elements as a flat JSON array.
func (t *Tensor) jsonData() (json.RawMessage, error) {
	buf := []byte{'['}
	if t.Datatype == "BYTES" {
		for i, e := range t.Elems {
			if i > 0 {
				buf = append(buf, ',')
			}
			s := string(e)
			if t.Base64JSON {
				s = base64.StdEncoding.EncodeToString(e)
			}
			q, err := json.Marshal(s)
			if err != nil {
				return nil, err
			}
			buf = append(buf, q...)
		}
		return append(buf, ']'), nil
	}
	sz := datatype.Parse(t.Datatype).Size()
	if t.Datatype == "FP16" || t.Datatype == "BF16" {
		return nil, fmt.Errorf("input %q: %s cannot be sent as JSON; use --input-tensor-format binary", t.Name, t.Datatype)
	}
	le := binary.LittleEndian
	for i := 0; i+sz <= len(t.Data); i += sz {
		if i > 0 {
			buf = append(buf, ',')
		}
		b := t.Data[i : i+sz]
		switch t.Datatype {
		case "BOOL":
			buf = strconv.AppendBool(buf, b[0] != 0)
		case "UINT8":
			buf = strconv.AppendUint(buf, uint64(b[0]), 10)
		case "INT8":
			buf = strconv.AppendInt(buf, int64(int8(b[0])), 10)
		case "UINT16":
			buf = strconv.AppendUint(buf, uint64(le.Uint16(b)), 10)
		case "INT16":
			buf = strconv.AppendInt(buf, int64(int16(le.Uint16(b))), 10)
		case "UINT32":
			buf = strconv.AppendUint(buf, uint64(le.Uint32(b)), 10)
		case "INT32":
			buf = strconv.AppendInt(buf, int64(int32(le.Uint32(b))), 10)
		case "UINT64":
			buf = strconv.AppendUint(buf, le.Uint64(b), 10)
		case "INT64":
			buf = strconv.AppendInt(buf, int64(le.Uint64(b)), 10)
		case "FP32":
			buf = appendFloat(buf, float64(math.Float32frombits(le.Uint32(b))), 32)
		case "FP64":
			buf = appendFloat(buf, math.Float64frombits(le.Uint64(b)), 64)
		default:
			return nil, fmt.Errorf("input %q: unknown datatype %q", t.Name, t.Datatype)
		}
	}
	return append(buf, ']'), nil
}

func appendFloat(buf []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		// JSON has no NaN/Inf; the server would reject the document.
		return append(buf, '0')
	}
	return strconv.AppendFloat(buf, f, 'g', -1, bits)
}

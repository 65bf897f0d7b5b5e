package kserve

import (
	"strconv"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/datatype"
)

// EncodeHTTP appends the JSON inference response of model version
// (docs/triton-batcher-and-kserve-v2.md §2.4) to buf, followed by the blobs
// of the outputs sent in binary. It returns the buffer and the JSON length,
// or jsonLen = -1 when nothing is binary. binary says for each output
// whether to send it in binary.
func EncodeHTTP(buf []byte, model string, version int64, id string, resp *backend.Response, binary func(i int) bool) ([]byte, int, error) {
	b := buf
	b = append(b, '{')
	if id != "" {
		b = append(b, `"id":`...)
		b = AppendJSONString(b, id)
		b = append(b, ',')
	}
	b = append(b, `"model_name":`...)
	b = AppendJSONString(b, model)
	b = append(b, `,"model_version":"`...)
	b = strconv.AppendInt(b, version, 10)
	b = append(b, '"')
	if len(resp.Parameters) > 0 {
		b = append(b, `,"parameters":`...)
		b = appendParamsJSON(b, resp.Parameters)
	}
	b = append(b, `,"outputs":[`...)
	anyBinary := false
	for i := range resp.Outputs {
		t := &resp.Outputs[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = AppendJSONString(b, t.Name)
		b = append(b, `,"datatype":`...)
		b = AppendJSONString(b, t.Datatype)
		b = append(b, `,"shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, d, 10)
		}
		b = append(b, ']')
		if binary(i) {
			anyBinary = true
			b = append(b, `,"parameters":{"binary_data_size":`...)
			b = strconv.AppendInt(b, int64(len(t.Data)), 10)
			b = append(b, "}}"...)
			continue
		}
		d := datatype.Parse(t.Datatype)
		b = append(b, `,"data":[`...)
		switch {
		case d == datatype.FP16 || d == datatype.BF16:
			return nil, 0, invalidArg("sending %s data via JSON is not supported. Please use the binary data format for output '%s'", d, t.Name)
		case d == datatype.Bytes:
			first := true
			for e, err := range datatype.Elements(t.Data) {
				if err != nil {
					break // stop at the first malformed element
				}
				if !first {
					b = append(b, ',')
				}
				first = false
				b = appendJSONBytes(b, e)
			}
		case d == datatype.Invalid:
			return nil, 0, backend.Errorf(backend.CodeInternal, "output '%s' has unknown datatype '%s'", t.Name, t.Datatype)
		default:
			n := len(t.Data) / d.Size()
			for j := range n {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendElementJSON(b, d, t.Data, j)
			}
		}
		b = append(b, "]}"...)
	}
	b = append(b, "]}"...)
	if !anyBinary {
		return b, -1, nil
	}
	jsonLen := len(b) - len(buf)
	for i := range resp.Outputs {
		if binary(i) {
			b = append(b, resp.Outputs[i].Data...)
		}
	}
	return b, jsonLen, nil
}

// appendParamsJSON appends a parameter map as a JSON object (strings,
// integers, floats and bools; anything else as its string form).
func appendParamsJSON(b []byte, p map[string]any) []byte {
	b = append(b, '{')
	first := true
	for k, v := range p {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = AppendJSONString(b, k)
		b = append(b, ':')
		switch x := v.(type) {
		case string:
			b = AppendJSONString(b, x)
		case bool:
			b = strconv.AppendBool(b, x)
		case int:
			b = strconv.AppendInt(b, int64(x), 10)
		case int64:
			b = strconv.AppendInt(b, x, 10)
		case uint64:
			b = strconv.AppendUint(b, x, 10)
		case float64:
			b = strconv.AppendFloat(b, x, 'g', -1, 64)
		default:
			b = AppendJSONString(b, "?")
		}
	}
	return append(b, '}')
}

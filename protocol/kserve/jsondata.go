package kserve

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"strconv"
	"unsafe"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/datatype"
)

// maxJSONDepth is the deepest nesting a tensor's "data" array may have
// (Triton's limit: depth 50 is accepted, 120 is refused).
const maxJSONDepth = 100

// decodeJSONData parses the "data" field of a JSON input tensor (nested or
// flat arrays; a bare scalar or string is refused, as in Triton) into the raw little-endian layout of
// backend.Tensor, appending to out. want is the element count the shape
// declares; maxBytes caps the decoded size. raw must be valid JSON (the
// envelope decoder has checked it), but every element is checked against d.
func decodeJSONData(raw []byte, d datatype.Type, want int64, maxBytes int64, name string, out []byte) ([]byte, error) {
	if d == datatype.FP16 || d == datatype.BF16 {
		return nil, backend.Errorf(backend.CodeInvalidArg,
			"receiving %s data via JSON is not supported. Please use the binary data format for input '%s'", d, name)
	}
	if d == datatype.Invalid {
		return nil, backend.Errorf(backend.CodeInvalidArg, "invalid datatype for input '%s'", name)
	}
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '[' {
		return nil, backend.Errorf(backend.CodeInvalidArg, "'data' of input '%s' must be a JSON array", name)
	}
	if es := d.Size(); es > 0 {
		if want > maxBytes/int64(es) {
			return nil, backend.Errorf(backend.CodeInvalidArg,
				"JSON input '%s' has a byte_size (%d) that exceeds the maximum allowed value of %d", name, uint64(want)*uint64(es), maxBytes)
		}
		if cap(out)-len(out) < int(want)*es {
			n := make([]byte, len(out), len(out)+int(want)*es)
			copy(n, out)
			out = n
		}
	}
	start := len(out)
	var count int64
	depth := 0
	p := 0
	for p < len(raw) {
		c := raw[p]
		switch c {
		case ' ', '\t', '\n', '\r', ',':
			p++
			continue
		case '[':
			depth++
			if depth >= maxJSONDepth {
				return nil, backend.Errorf(backend.CodeInvalidArg,
					"JSON nesting depth exceeds maximum allowed limit (%d) in 'data' of input '%s'", maxJSONDepth, name)
			}
			p++
			continue
		case ']':
			depth--
			p++
			continue
		}
		if count >= want {
			return nil, backend.Errorf(backend.CodeInvalidArg,
				"unable to parse 'data' of input '%s': shape does not match true shape of 'data' field (more than %d elements)", name, want)
		}
		var err error
		var n int
		out, n, err = appendJSONElement(out, raw[p:], d, name)
		if err != nil {
			return nil, err
		}
		p += n
		count++
		if int64(len(out)-start) > maxBytes {
			return nil, backend.Errorf(backend.CodeInvalidArg,
				"JSON input '%s' has a byte_size (%d) that exceeds the maximum allowed value of %d", name, len(out)-start, maxBytes)
		}
	}
	if count != want {
		return nil, backend.Errorf(backend.CodeInvalidArg,
			"unable to parse 'data' of input '%s': shape does not match true shape of 'data' field (expected %d elements, got %d)", name, want, count)
	}
	return out, nil
}

// appendJSONElement parses one scalar at the start of s and appends it.
// It returns the bytes consumed.
func appendJSONElement(out []byte, s []byte, d datatype.Type, name string) ([]byte, int, error) {
	c := s[0]
	switch {
	case c == '"':
		if d != datatype.Bytes {
			return nil, 0, elemTypeError(name, d, "a string")
		}
		n, str, err := scanJSONString(s)
		if err != nil {
			return nil, 0, backend.Errorf(backend.CodeInvalidArg, "unable to parse 'data' of input '%s': %v", name, err)
		}
		return datatype.AppendElement(out, str), n, nil
	case c == 't' || c == 'f':
		if d != datatype.Bool {
			return nil, 0, elemTypeError(name, d, "a boolean")
		}
		if c == 't' {
			return append(out, 1), 4, nil
		}
		return append(out, 0), 5, nil
	case c == '-' || (c >= '0' && c <= '9'):
	default:
		return nil, 0, elemTypeError(name, d, "'"+string(c)+"'")
	}
	n := 1
	for n < len(s) {
		c := s[n]
		if c == ',' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			break
		}
		n++
	}
	tok := unsafe.String(&s[0], n)
	switch {
	case d.IsUint():
		v, err := strconv.ParseUint(tok, 10, d.Size()*8)
		if err != nil {
			return nil, 0, numError(name, d, tok)
		}
		return appendUint(out, d, v), n, nil
	case d.IsInt():
		v, err := strconv.ParseInt(tok, 10, d.Size()*8)
		if err != nil {
			return nil, 0, numError(name, d, tok)
		}
		return appendUint(out, d, uint64(v)), n, nil
	case d == datatype.FP32:
		v, err := strconv.ParseFloat(tok, 32)
		if err != nil && !isRangeErr(err) {
			return nil, 0, numError(name, d, tok)
		}
		return binary.LittleEndian.AppendUint32(out, math.Float32bits(float32(v))), n, nil
	case d == datatype.FP64:
		v, err := strconv.ParseFloat(tok, 64)
		if err != nil && !isRangeErr(err) {
			return nil, 0, numError(name, d, tok)
		}
		return binary.LittleEndian.AppendUint64(out, math.Float64bits(v)), n, nil
	}
	return nil, 0, elemTypeError(name, d, "a number")
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

func appendUint(out []byte, d datatype.Type, v uint64) []byte {
	switch d.Size() {
	case 1:
		return append(out, byte(v))
	case 2:
		return binary.LittleEndian.AppendUint16(out, uint16(v))
	case 4:
		return binary.LittleEndian.AppendUint32(out, uint32(v))
	}
	return binary.LittleEndian.AppendUint64(out, v)
}

func elemTypeError(name string, d datatype.Type, got string) error {
	return backend.Errorf(backend.CodeInvalidArg,
		"unable to parse 'data' of input '%s': expected %s elements, got %s", name, jsonKind(d), got)
}

func numError(name string, d datatype.Type, tok string) error {
	return backend.Errorf(backend.CodeInvalidArg,
		"unable to parse 'data' of input '%s': %q is not a valid %s value", name, tok, d)
}

func jsonKind(d datatype.Type) string {
	switch {
	case d == datatype.Bool:
		return "boolean"
	case d == datatype.Bytes:
		return "string"
	case d.IsInt():
		return "integer"
	}
	return "number"
}

// scanJSONString returns the length of the JSON string literal at the start
// of s and its decoded contents. Strings without escapes are returned as a
// sub-slice of s (no copy).
func scanJSONString(s []byte) (int, []byte, error) {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '"':
			return i + 1, s[1:i], nil
		case '\\':
			// Slow path: find the end, then let encoding/json decode escapes.
			j := i
			for j < len(s) {
				if s[j] == '\\' {
					j += 2
					continue
				}
				if s[j] == '"' {
					var str string
					if err := json.Unmarshal(s[:j+1], &str); err != nil {
						return 0, nil, err
					}
					return j + 1, []byte(str), nil
				}
				j++
			}
			return 0, nil, errUnterminated
		}
	}
	return 0, nil, errUnterminated
}

type constErr string

func (e constErr) Error() string { return string(e) }

const errUnterminated = constErr("unterminated string")

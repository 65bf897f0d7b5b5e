package server

import (
	"encoding/binary"
	"math"
	"strconv"
	"unsafe"
)

// dtype is an API datatype string decoded once into a small enum so the hot
// path switches on an int rather than comparing strings.
type dtype uint8

const (
	dtInvalid dtype = iota
	dtBool
	dtUint8
	dtUint16
	dtUint32
	dtUint64
	dtInt8
	dtInt16
	dtInt32
	dtInt64
	dtFP16
	dtFP32
	dtFP64
	dtBF16
	dtBytes
)

var dtypeNames = [...]string{
	dtInvalid: "INVALID", dtBool: "BOOL", dtUint8: "UINT8", dtUint16: "UINT16", dtUint32: "UINT32",
	dtUint64: "UINT64", dtInt8: "INT8", dtInt16: "INT16", dtInt32: "INT32", dtInt64: "INT64",
	dtFP16: "FP16", dtFP32: "FP32", dtFP64: "FP64", dtBF16: "BF16", dtBytes: "BYTES",
}

func (d dtype) String() string { return dtypeNames[d] }

// parseDtype maps an API datatype string (spec §2.9) to a dtype.
func parseDtype(s string) dtype {
	switch s {
	case "BOOL":
		return dtBool
	case "UINT8":
		return dtUint8
	case "UINT16":
		return dtUint16
	case "UINT32":
		return dtUint32
	case "UINT64":
		return dtUint64
	case "INT8":
		return dtInt8
	case "INT16":
		return dtInt16
	case "INT32":
		return dtInt32
	case "INT64":
		return dtInt64
	case "FP16":
		return dtFP16
	case "FP32":
		return dtFP32
	case "FP64":
		return dtFP64
	case "BF16":
		return dtBF16
	case "BYTES":
		return dtBytes
	}
	return dtInvalid
}

// size is the byte size of one element; 0 for BYTES (variable) and INVALID.
func (d dtype) size() int {
	switch d {
	case dtBool, dtUint8, dtInt8:
		return 1
	case dtUint16, dtInt16, dtFP16, dtBF16:
		return 2
	case dtUint32, dtInt32, dtFP32:
		return 4
	case dtUint64, dtInt64, dtFP64:
		return 8
	}
	return 0
}

func (d dtype) isInt() bool  { return d >= dtUint8 && d <= dtInt64 }
func (d dtype) isUint() bool { return d >= dtUint8 && d <= dtUint64 }

// elementCount returns the product of shape, or ok=false when a dimension is
// negative or the product overflows int64.
func elementCount(shape []int64) (n int64, ok bool) {
	n = 1
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, false
		}
		n *= d
	}
	return n, true
}

// bytesElements counts the elements of a BYTES tensor in the binary layout
// (4-byte LE length + bytes each); ok=false if the data is not well formed.
func bytesElements(data []byte) (n int64, ok bool) {
	for len(data) > 0 {
		if len(data) < 4 {
			return n, false
		}
		l := binary.LittleEndian.Uint32(data)
		data = data[4:]
		if uint64(l) > uint64(len(data)) {
			return n, false
		}
		data = data[l:]
		n++
	}
	return n, true
}

// forEachBytes calls f with each element of a BYTES tensor in binary layout,
// stopping at the first malformed element.
func forEachBytes(data []byte, f func([]byte)) {
	for len(data) >= 4 {
		l := binary.LittleEndian.Uint32(data)
		data = data[4:]
		if uint64(l) > uint64(len(data)) {
			return
		}
		f(data[:l])
		data = data[l:]
	}
}

// appendElementJSON appends element i of raw little-endian data of type d as
// a JSON value. NaN and infinities, which JSON cannot carry, become null.
func appendElementJSON(b []byte, d dtype, data []byte, i int) []byte {
	switch d {
	case dtBool:
		if data[i] != 0 {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case dtUint8:
		return strconv.AppendUint(b, uint64(data[i]), 10)
	case dtUint16:
		return strconv.AppendUint(b, uint64(binary.LittleEndian.Uint16(data[2*i:])), 10)
	case dtUint32:
		return strconv.AppendUint(b, uint64(binary.LittleEndian.Uint32(data[4*i:])), 10)
	case dtUint64:
		return strconv.AppendUint(b, binary.LittleEndian.Uint64(data[8*i:]), 10)
	case dtInt8:
		return strconv.AppendInt(b, int64(int8(data[i])), 10)
	case dtInt16:
		return strconv.AppendInt(b, int64(int16(binary.LittleEndian.Uint16(data[2*i:]))), 10)
	case dtInt32:
		return strconv.AppendInt(b, int64(int32(binary.LittleEndian.Uint32(data[4*i:]))), 10)
	case dtInt64:
		return strconv.AppendInt(b, int64(binary.LittleEndian.Uint64(data[8*i:])), 10)
	case dtFP32:
		f := math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, float64(f), 'g', -1, 32)
	case dtFP64:
		f := math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	}
	return append(b, "null"...)
}

// elementFloat returns element i of numeric data as float64 (for sorting in
// the classification extension); FP16/BF16 are widened exactly.
func elementFloat(d dtype, data []byte, i int) float64 {
	switch d {
	case dtBool:
		return float64(data[i])
	case dtUint8:
		return float64(data[i])
	case dtUint16:
		return float64(binary.LittleEndian.Uint16(data[2*i:]))
	case dtUint32:
		return float64(binary.LittleEndian.Uint32(data[4*i:]))
	case dtUint64:
		return float64(binary.LittleEndian.Uint64(data[8*i:]))
	case dtInt8:
		return float64(int8(data[i]))
	case dtInt16:
		return float64(int16(binary.LittleEndian.Uint16(data[2*i:])))
	case dtInt32:
		return float64(int32(binary.LittleEndian.Uint32(data[4*i:])))
	case dtInt64:
		return float64(int64(binary.LittleEndian.Uint64(data[8*i:])))
	case dtFP32:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:])))
	case dtFP64:
		return math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
	case dtBF16:
		return float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(data[2*i:])) << 16))
	}
	return 0
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(b []byte, s string) []byte {
	return appendJSONBytes(b, unsafe.Slice(unsafe.StringData(s), len(s)))
}

const hexDigits = "0123456789abcdef"

// appendJSONBytes appends raw bytes as a JSON string literal. Invalid UTF-8
// is passed through byte for byte except control characters, which are
// escaped, so that BYTES outputs keep their bytes where JSON allows.
func appendJSONBytes(b []byte, s []byte) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

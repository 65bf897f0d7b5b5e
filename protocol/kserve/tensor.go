package kserve

import (
	"encoding/binary"
	"math"
	"strconv"
	"unsafe"

	"github.com/ofaserve/ofaserve/protocol/datatype"
)

// appendElementJSON appends element i of raw little-endian data of type d as
// a JSON value. NaN and infinities, which JSON cannot carry, become null.
func appendElementJSON(b []byte, d datatype.Type, data []byte, i int) []byte {
	switch d {
	case datatype.Bool:
		if data[i] != 0 {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case datatype.Uint8:
		return strconv.AppendUint(b, uint64(data[i]), 10)
	case datatype.Uint16:
		return strconv.AppendUint(b, uint64(binary.LittleEndian.Uint16(data[2*i:])), 10)
	case datatype.Uint32:
		return strconv.AppendUint(b, uint64(binary.LittleEndian.Uint32(data[4*i:])), 10)
	case datatype.Uint64:
		return strconv.AppendUint(b, binary.LittleEndian.Uint64(data[8*i:]), 10)
	case datatype.Int8:
		return strconv.AppendInt(b, int64(int8(data[i])), 10)
	case datatype.Int16:
		return strconv.AppendInt(b, int64(int16(binary.LittleEndian.Uint16(data[2*i:]))), 10)
	case datatype.Int32:
		return strconv.AppendInt(b, int64(int32(binary.LittleEndian.Uint32(data[4*i:]))), 10)
	case datatype.Int64:
		return strconv.AppendInt(b, int64(binary.LittleEndian.Uint64(data[8*i:])), 10)
	case datatype.FP32:
		f := math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, float64(f), 'g', -1, 32)
	case datatype.FP64:
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
func elementFloat(d datatype.Type, data []byte, i int) float64 {
	switch d {
	case datatype.Bool:
		return float64(data[i])
	case datatype.Uint8:
		return float64(data[i])
	case datatype.Uint16:
		return float64(binary.LittleEndian.Uint16(data[2*i:]))
	case datatype.Uint32:
		return float64(binary.LittleEndian.Uint32(data[4*i:]))
	case datatype.Uint64:
		return float64(binary.LittleEndian.Uint64(data[8*i:]))
	case datatype.Int8:
		return float64(int8(data[i]))
	case datatype.Int16:
		return float64(int16(binary.LittleEndian.Uint16(data[2*i:])))
	case datatype.Int32:
		return float64(int32(binary.LittleEndian.Uint32(data[4*i:])))
	case datatype.Int64:
		return float64(int64(binary.LittleEndian.Uint64(data[8*i:])))
	case datatype.FP32:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:])))
	case datatype.FP64:
		return math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
	case datatype.BF16:
		return float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(data[2*i:])) << 16))
	}
	return 0
}

// AppendJSONString appends s as a JSON string literal.
func AppendJSONString(b []byte, s string) []byte {
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

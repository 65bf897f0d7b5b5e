// Package datatype holds facts of the KServe v2 wire format shared by the
// server and its clients: the tensor datatypes (their API names, the
// config.pbtxt names "TYPE_X" they are declared with, the byte size of one
// element) and the binary layout of BYTES elements (each a 4-byte
// little-endian length followed by that many bytes).
//
// It imports no ofaserve package, so clients such as ofabench use it
// without taking in server internals.
package datatype

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"strings"
)

// Type is an API datatype (docs/triton-batcher-and-kserve-v2.md §2.9) decoded once into a small enum, so
// hot paths switch on an int rather than compare strings.
type Type uint8

// The API datatypes. The unsigned integers, then the signed ones, are
// contiguous (IsInt and IsUint rely on it).
const (
	Invalid Type = iota
	Bool
	Uint8
	Uint16
	Uint32
	Uint64
	Int8
	Int16
	Int32
	Int64
	FP16
	FP32
	FP64
	BF16
	Bytes
)

var names = [...]string{
	Invalid: "INVALID", Bool: "BOOL", Uint8: "UINT8", Uint16: "UINT16", Uint32: "UINT32",
	Uint64: "UINT64", Int8: "INT8", Int16: "INT16", Int32: "INT32", Int64: "INT64",
	FP16: "FP16", FP32: "FP32", FP64: "FP64", BF16: "BF16", Bytes: "BYTES",
}

// String returns the API name ("FP32", "BYTES"); "INVALID" for Invalid
// and values out of range.
func (t Type) String() string {
	if int(t) >= len(names) {
		return names[Invalid]
	}
	return names[t]
}

// Parse maps an API datatype name to its Type, Invalid for anything else.
func Parse(s string) Type {
	switch s {
	case "BOOL":
		return Bool
	case "UINT8":
		return Uint8
	case "UINT16":
		return Uint16
	case "UINT32":
		return Uint32
	case "UINT64":
		return Uint64
	case "INT8":
		return Int8
	case "INT16":
		return Int16
	case "INT32":
		return Int32
	case "INT64":
		return Int64
	case "FP16":
		return FP16
	case "FP32":
		return FP32
	case "FP64":
		return FP64
	case "BF16":
		return BF16
	case "BYTES":
		return Bytes
	}
	return Invalid
}

// FromConfig maps a config.pbtxt data type name ("TYPE_FP32"; the prefix
// may be missing) to its Type: TYPE_STRING is BYTES on the wire, every
// other TYPE_X is X.
func FromConfig(s string) Type {
	s = strings.TrimPrefix(s, "TYPE_")
	if s == "STRING" {
		return Bytes
	}
	return Parse(s)
}

// Size is the byte size of one element; 0 for Bytes (variable) and
// Invalid.
func (t Type) Size() int {
	switch t {
	case Bool, Uint8, Int8:
		return 1
	case Uint16, Int16, FP16, BF16:
		return 2
	case Uint32, Int32, FP32:
		return 4
	case Uint64, Int64, FP64:
		return 8
	}
	return 0
}

// IsInt reports whether t is an integer type, signed or unsigned.
func (t Type) IsInt() bool { return t >= Uint8 && t <= Int64 }

// IsUint reports whether t is an unsigned integer type.
func (t Type) IsUint() bool { return t >= Uint8 && t <= Uint64 }

// AppendElement appends one BYTES element in the binary layout to dst:
// the length of elem as 4 bytes little-endian, then elem.
func AppendElement(dst, elem []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(elem)))
	return append(dst, elem...)
}

// Elements yields, in order and without copying, the elements of BYTES
// data in the binary layout, each with its capacity cut to its length (so
// appending to one never overwrites the next). When the data is malformed
// (a length prefix cut short, or a length beyond the bytes left) it yields
// the error, with a nil element, last.
func Elements(data []byte) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for i := 0; len(data) > 0; i++ {
			if len(data) < 4 {
				yield(nil, errors.New("malformed BYTES data: a length prefix is cut short"))
				return
			}
			l := binary.LittleEndian.Uint32(data)
			data = data[4:]
			if uint64(l) > uint64(len(data)) {
				yield(nil, fmt.Errorf("malformed BYTES data: element %d declares %d bytes, %d are left", i, l, len(data)))
				return
			}
			if !yield(data[:l:l], nil) {
				return
			}
			data = data[l:]
		}
	}
}

// Split returns every element of BYTES data in the binary layout, as
// Elements yields them, or the error that ends them.
func Split(data []byte) ([][]byte, error) {
	var out [][]byte
	for e, err := range Elements(data) {
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

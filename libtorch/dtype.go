package libtorch

import "fmt"

// DType is the element type of a Tensor. The numbering matches the shim's C ABI (OFA_* in csrc/ofatorch.h).
type DType int

// The element types the shim carries.
const (
	Float32 DType = iota
	Float16
	BFloat16
	Int64
	Int32
	Uint8
	Bool
	Float64
	Int8
	Int16
)

var dtypeNames = [...]string{"float32", "float16", "bfloat16", "int64", "int32", "uint8", "bool", "float64", "int8", "int16"}
var dtypeSizes = [...]int{4, 2, 2, 8, 4, 1, 1, 8, 1, 2}

// String returns the lower-case name of d ("float32", "bfloat16", ...).
func (d DType) String() string {
	if d.valid() {
		return dtypeNames[d]
	}
	return fmt.Sprintf("DType(%d)", int(d))
}

// Size returns the number of bytes per element of d, or 0 for an unknown DType.
func (d DType) Size() int {
	if d.valid() {
		return dtypeSizes[d]
	}
	return 0
}

func (d DType) valid() bool { return d >= 0 && int(d) < len(dtypeNames) }

// ParseDType returns the DType whose String is s.
func ParseDType(s string) (DType, error) {
	for i, n := range dtypeNames {
		if n == s {
			return DType(i), nil
		}
	}
	return 0, fmt.Errorf("libtorch: unknown dtype %q", s)
}

// Tensor is a dense tensor in host memory: Data holds NumElements()*DType.Size() bytes, row-major and
// little-endian. A Tensor with an empty Shape is a scalar (one element).
type Tensor struct {
	DType DType
	Shape []int64
	Data  []byte
}

// NumElements returns the product of t's dimensions (1 for a scalar).
func (t Tensor) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

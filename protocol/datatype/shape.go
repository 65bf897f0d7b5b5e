package datatype

import "math"

// ElementCount is the one shape product of the project. For a request's
// shape it is the tensor's element count; for config dims, where -1 marks a
// variable-size dimension, it is the product of the fixed dimensions, and
// variable says how many were -1. ok is false when a dimension is below -1
// or the product overflows int64. A concrete shape is one with ok and
// variable == 0.
func ElementCount(dims []int64) (n int64, variable int, ok bool) {
	n = 1
	for _, d := range dims {
		switch {
		case d == -1:
			variable++
			continue
		case d < 0:
			return 0, variable, false
		case d != 0 && n > math.MaxInt64/d:
			return 0, variable, false
		}
		n *= d
	}
	return n, variable, true
}

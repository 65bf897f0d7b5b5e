// Package linear is the arithmetic of the "linear" model that
// test/e2e/testdata/make_linear.py exports (INPUT__0, INPUT__1: FP32 [8];
// OUTPUT__0: FP32 [4], OUTPUT__1: FP32 [1]), for the end-to-end tests and
// the client programs they run, which check the server's answers against
// it.
package linear

import "math"

// Expected computes the model's outputs for one batch item.
func Expected(x, y []float32) (out0 [4]float64, out1 float64) {
	for j := range 4 {
		v := float64(j)
		for i := range 8 {
			v += float64(x[i])*float64(i+1)*float64(j+1)/100 + float64(y[i])*float64(i-j)/10
		}
		out0[j] = v
	}
	for i := range 8 {
		out1 += float64(x[i]) * float64(y[i])
	}
	return out0, out1
}

// Near reports whether got, computed by the model in float32, matches the
// expected value want.
func Near(got, want float64) bool { return math.Abs(got-want) <= 1e-4*(1+math.Abs(want)) }

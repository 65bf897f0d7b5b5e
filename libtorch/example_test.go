package libtorch

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
)

// Load reads a TorchScript file onto a device; Forward runs the module on
// host tensors (raw little-endian bytes with a dtype and a shape) and
// returns its outputs in host memory of their own. The module here is a
// fixture of this package's tests (testdata/make_fixtures.py) that doubles
// its input.
func ExampleLoad() {
	m, err := Load(filepath.Join(fixtureDir, "raises.pt"), Options{Device: "cpu"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()

	x := Tensor{DType: Float32, Shape: []int64{1, 3}}
	for _, v := range []float32{1, 2, 3} {
		x.Data = binary.LittleEndian.AppendUint32(x.Data, math.Float32bits(v))
	}
	outs, err := m.Forward(context.Background(), []Tensor{x})
	if err != nil {
		fmt.Println(err)
		return
	}
	y := outs[0]
	vals := make([]float32, y.NumElements())
	for i := range vals {
		vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(y.Data[4*i:]))
	}
	fmt.Println(y.DType, y.Shape, vals)
	// Output:
	// float32 [1 3] [2 4 6]
}

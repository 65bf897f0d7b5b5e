package libtorch

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ofaserve/ofaserve/internal/testenv"
)

// fixtureDir holds the TorchScript fixtures and Python's recorded outputs (testdata/make_fixtures.py).
var fixtureDir string

// TestMain builds the fixtures with $OFASERVE_PYTHON (default /usr/bin/python3) into a temporary
// folder, with Python's outputs computed on the device under test, unless $OFASERVE_FIXTURES names a
// folder that already holds them.
func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if dir := os.Getenv("OFASERVE_FIXTURES"); dir != "" {
		fixtureDir = dir
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "libtorch-fixtures-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	py := testenv.Python()
	cmd := exec.Command(py, filepath.Join("testdata", "make_fixtures.py"), "--out", dir, "--device", testDevice())
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "making fixtures with %s: %v\n%s", py, err, out)
		return 1
	}
	fixtureDir = dir
	return m.Run()
}

// testDevice is the device under test: $OFASERVE_TEST_DEVICE, default cpu.
func testDevice() string {
	if d := os.Getenv("OFASERVE_TEST_DEVICE"); d != "" {
		return d
	}
	return "cpu"
}

type fixtureTensor struct {
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape"`
	File  string  `json:"file"`
}

type fixtureCase struct {
	Batch   int             `json:"batch"`
	Inputs  []fixtureTensor `json:"inputs"`
	Outputs []fixtureTensor `json:"outputs"`
}

type fixtureModel struct {
	File      string        `json:"file"`
	Precision string        `json:"precision"`
	Cases     []fixtureCase `json:"cases"`
}

type fixtureIndex struct {
	Torch  string                  `json:"torch"`
	Models map[string]fixtureModel `json:"models"`
}

func loadIndex(t testing.TB) fixtureIndex {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx fixtureIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Models) == 0 {
		t.Fatal("fixture index lists no models")
	}
	return idx
}

func (ft fixtureTensor) load(t testing.TB) Tensor {
	t.Helper()
	dt, err := ParseDType(ft.DType)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(fixtureDir, ft.File))
	if err != nil {
		t.Fatal(err)
	}
	return Tensor{DType: dt, Shape: ft.Shape, Data: data}
}

func loadTensors(t testing.TB, fts []fixtureTensor) []Tensor {
	out := make([]Tensor, len(fts))
	for i, ft := range fts {
		out[i] = ft.load(t)
	}
	return out
}

func fixtureModule(t testing.TB, name string, opts Options) *Module {
	t.Helper()
	if opts.Device == "" {
		opts.Device = testDevice()
	}
	m, err := Load(filepath.Join(fixtureDir, name+".pt"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// floatAt decodes element i of a floating tensor's data.
func floatAt(dt DType, data []byte, i int) float64 {
	switch dt {
	case Float32:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:])))
	case Float64:
		return math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
	case BFloat16:
		return float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(data[2*i:])) << 16))
	case Float16:
		return halfToFloat(binary.LittleEndian.Uint16(data[2*i:]))
	}
	panic("not a floating dtype: " + dt.String())
}

// halfToFloat decodes an IEEE 754 binary16 value.
func halfToFloat(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * frac * math.Pow(2, -24)
	case 0x1f:
		if frac == 0 {
			return sign * math.Inf(1)
		}
		return math.NaN()
	}
	return sign * (1 + frac/1024) * math.Pow(2, float64(exp-15))
}

func isFloat(dt DType) bool { return dt == Float32 || dt == Float16 || dt == BFloat16 || dt == Float64 }

// tolerance bounds how far a float element may be from what Python computed: |got-want| <= abs +
// rel*|want|.
type tolerance struct{ abs, rel float64 }

// exact is for float32 runs: the shim and Python call the same libtorch kernels.
var exact = tolerance{abs: 1e-6}

// bf16Tol is for bfloat16 runs: bfloat16 keeps 8 significant bits (a relative step of 2^-8), so allow a
// few of its steps, from rounding differences anywhere along the computation.
var bf16Tol = tolerance{abs: 1.0 / 64, rel: 1.0 / 64}

// precisionTol is the tolerance for outputs of a module loaded at a precision.
func precisionTol(p DType) tolerance {
	if p == Float32 {
		return exact
	}
	return bf16Tol
}

// compareTensor returns a description of how got differs from want, or "" when they match: same dtype and
// shape, floats within tol, everything else byte-exact.
func compareTensor(got, want Tensor, tol tolerance) string {
	if got.DType != want.DType {
		return fmt.Sprintf("dtype %v, want %v", got.DType, want.DType)
	}
	if fmt.Sprint(got.Shape) != fmt.Sprint(want.Shape) {
		return fmt.Sprintf("shape %v, want %v", got.Shape, want.Shape)
	}
	if len(got.Data) != len(want.Data) {
		return fmt.Sprintf("%d bytes, want %d", len(got.Data), len(want.Data))
	}
	if !isFloat(got.DType) {
		for i := range got.Data {
			if got.Data[i] != want.Data[i] {
				return fmt.Sprintf("byte %d is %d, want %d", i, got.Data[i], want.Data[i])
			}
		}
		return ""
	}
	for i := 0; i < int(got.NumElements()); i++ {
		g, w := floatAt(got.DType, got.Data, i), floatAt(want.DType, want.Data, i)
		if math.IsNaN(g) != math.IsNaN(w) {
			return fmt.Sprintf("element %d is %v, want %v", i, g, w)
		}
		if d, bound := math.Abs(g-w), tol.abs+tol.rel*math.Abs(w); d > bound {
			return fmt.Sprintf("element %d is %v, want %v (diff %g > %g)", i, g, w, d, bound)
		}
	}
	return ""
}

// compareOutputs checks a float32 forward's outputs against a case's expectations.
func compareOutputs(got, want []Tensor) error { return compareOutputsTol(got, want, exact) }

// compareOutputsTol checks a forward's outputs against a case's expectations, floats within tol.
func compareOutputsTol(got, want []Tensor, tol tolerance) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d outputs, want %d", len(got), len(want))
	}
	for i := range got {
		if d := compareTensor(got[i], want[i], tol); d != "" {
			return fmt.Errorf("output %d: %s", i, d)
		}
	}
	return nil
}

// Errors, cancellation and what a module and the device report, checked through the public API.

package libtorch

import (
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestLoadErrors(t *testing.T) {
	garbage := filepath.Join(t.TempDir(), "garbage.pt")
	if err := os.WriteFile(garbage, []byte("this is not a zip archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		opts Options
		want string
	}{
		{"missing file", filepath.Join(fixtureDir, "nope.pt"), Options{}, "nope.pt: no such file"},
		{"not an archive", garbage, Options{}, "not a TorchScript file"},
		{"state dict", filepath.Join(fixtureDir, "state_dict.pt"), Options{}, "not a TorchScript file"},
		{"json", filepath.Join(fixtureDir, "index.json"), Options{}, "not a TorchScript file"},
		{"unknown device", filepath.Join(fixtureDir, "multi.pt"), Options{Device: "tpu"}, `unknown device "tpu"`},
		{"bad cuda index", filepath.Join(fixtureDir, "multi.pt"), Options{Device: "cuda:99"}, "cuda:99"},
		{"bad precision", filepath.Join(fixtureDir, "multi.pt"), Options{Precision: Int64}, "precision"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Load(tc.path, tc.opts)
			if err == nil {
				m.Close()
				t.Fatalf("Load succeeded, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
	if _, err := Load(filepath.Join(fixtureDir, "nope.pt"), Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v is not fs.ErrNotExist", err)
	}
}

func TestForwardErrors(t *testing.T) {
	m := fixtureModule(t, "multi", Options{})
	raises := fixtureModule(t, "raises", Options{})
	in, want := multiCase(t, 3)
	x, ids := in[0], in[1]

	floatIDs := Tensor{DType: Float32, Shape: ids.Shape, Data: make([]byte, 4*ids.NumElements())}
	x3 := Tensor{DType: Float32, Shape: []int64{3, 1, 4}, Data: x.Data}
	neg := Tensor{DType: Float32, Shape: []int64{2, 2}, Data: make([]byte, 16)}
	for i := 0; i < 4; i++ {
		binary.LittleEndian.PutUint32(neg.Data[4*i:], math.Float32bits(-1))
	}
	tests := []struct {
		name   string
		m      *Module
		inputs []Tensor
		want   []string
	}{
		{"no inputs", m, nil, []string{"wrong number of inputs", "takes 2 (x, ids), got 0"}},
		{"one input", m, []Tensor{x}, []string{"wrong number of inputs", "got 1"}},
		{"three inputs", m, []Tensor{x, ids, ids}, []string{"wrong number of inputs", "got 3"}},
		{"wrong dtype", m, []Tensor{x, floatIDs}, []string{"forward raised", "'indices'", "Long"}},
		{"wrong rank", m, []Tensor{x3, ids}, []string{"forward raised", "matrix"}},
		{"short data", m, []Tensor{{DType: Float32, Shape: x.Shape, Data: x.Data[:5]}, ids},
			[]string{"input 0 (x)", "needs 48 bytes, got 5"}},
		{"unknown dtype", m, []Tensor{{DType: DType(42), Shape: x.Shape, Data: x.Data}, ids},
			[]string{"input 0 (x)", "unknown dtype"}},
		{"negative dim", m, []Tensor{{DType: Float32, Shape: []int64{-3, 4}, Data: x.Data}, ids},
			[]string{"negative dimension"}},
		{"module raises", raises, []Tensor{neg}, []string{"forward raised", "ValueError", "negative input sum"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.m.Forward(context.Background(), tc.inputs)
			if err == nil {
				t.Fatalf("Forward succeeded, want error containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			t.Logf("%v", err)
			if strings.Contains(err.Error(), "frame #") || strings.Contains(err.Error(), "Traceback") {
				t.Errorf("error carries a backtrace: %q", err)
			}
			// The module stays usable.
			got, err := m.Forward(context.Background(), in)
			if err != nil {
				t.Fatalf("Forward after the error: %v", err)
			}
			if err := compareOutputs(got, want); err != nil {
				t.Errorf("Forward after the error: %v", err)
			}
		})
	}
}

func TestForwardContextAndClose(t *testing.T) {
	m := fixtureModule(t, "multi", Options{})
	in, _ := multiCase(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Forward(ctx, in); !errors.Is(err, context.Canceled) {
		t.Errorf("Forward with a cancelled context: %v, want context.Canceled", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := m.Forward(context.Background(), in); !errors.Is(err, ErrClosed) {
		t.Errorf("Forward after Close: %v, want ErrClosed", err)
	}
	if _, err := m.ForwardInto(context.Background(), in, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("ForwardInto after Close: %v, want ErrClosed", err)
	}
	if _, err := m.ForwardInto(ctx, in, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("ForwardInto with a cancelled context: %v, want context.Canceled", err)
	}
}

func TestModuleFacts(t *testing.T) {
	m := fixtureModule(t, "multi", Options{})
	want := testDevice()
	if want == "cuda" {
		want = "cuda:0"
	}
	if m.Device() != want {
		t.Errorf("Device() = %q, want %q", m.Device(), want)
	}
	if !strings.Contains(m.Schema(), "Tensor x, Tensor ids") {
		t.Errorf("Schema() = %q", m.Schema())
	}
	if lo, hi := m.NumInputs(); lo != 2 || hi != 2 {
		t.Errorf("NumInputs() = %d, %d; want 2, 2", lo, hi)
	}
}

func TestDeviceFacts(t *testing.T) {
	if strings.HasPrefix(testDevice(), "cuda") {
		if !CUDAAvailable() || DeviceCount() < 1 {
			t.Fatalf("testing on %s but CUDAAvailable=%v DeviceCount=%d", testDevice(), CUDAAvailable(), DeviceCount())
		}
		dev, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimPrefix(testDevice(), "cuda"), ":"))
		free, total, err := MemoryInfo(dev)
		if err != nil || total == 0 || free > total {
			t.Errorf("MemoryInfo(%d) = %d, %d, %v", dev, free, total, err)
		}
	}
	if !CUDAAvailable() {
		if n := DeviceCount(); n != 0 {
			t.Errorf("no CUDA but DeviceCount() = %d", n)
		}
		if _, _, err := MemoryInfo(0); err == nil || !strings.Contains(err.Error(), "CUDA is not available") {
			t.Errorf("MemoryInfo without CUDA: %v", err)
		}
	}
	if _, _, err := MemoryInfo(-1); err == nil {
		t.Error("MemoryInfo(-1) succeeded")
	}
}

func TestDTypes(t *testing.T) {
	tests := []struct {
		d    DType
		name string
		size int
	}{
		{Float32, "float32", 4}, {Float16, "float16", 2}, {BFloat16, "bfloat16", 2}, {Int64, "int64", 8},
		{Int32, "int32", 4}, {Uint8, "uint8", 1}, {Bool, "bool", 1}, {Float64, "float64", 8},
		{Int8, "int8", 1}, {Int16, "int16", 2}, {DType(-1), "DType(-1)", 0}, {DType(10), "DType(10)", 0},
	}
	for _, tc := range tests {
		if got := tc.d.String(); got != tc.name {
			t.Errorf("DType(%d).String() = %q, want %q", int(tc.d), got, tc.name)
		}
		if got := tc.d.Size(); got != tc.size {
			t.Errorf("%v.Size() = %d, want %d", tc.d, got, tc.size)
		}
		if tc.size > 0 {
			if d, err := ParseDType(tc.name); err != nil || d != tc.d {
				t.Errorf("ParseDType(%q) = %v, %v", tc.name, d, err)
			}
		}
	}
	if _, err := ParseDType("complex64"); err == nil {
		t.Error("ParseDType(complex64) succeeded")
	}
	if n := (Tensor{Shape: []int64{2, 3, 4}}).NumElements(); n != 24 {
		t.Errorf("NumElements = %d", n)
	}
	if n := (Tensor{}).NumElements(); n != 1 {
		t.Errorf("scalar NumElements = %d", n)
	}
}

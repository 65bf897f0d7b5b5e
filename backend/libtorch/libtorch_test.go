package libtorch

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/backend/instances"
	"github.com/ofaserve/ofaserve/batcher"
	"github.com/ofaserve/ofaserve/internal/testenv"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
	"github.com/ofaserve/ofaserve/repository"
)

// modelDir holds the TorchScript modules testdata/make_models.py exports.
var modelDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "backend-libtorch-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	py := testenv.Python()
	if out, err := exec.Command(py, filepath.Join("testdata", "make_models.py"), dir).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "exporting test models with %s: %v\n%s", py, err, out)
		return 1
	}
	modelDir = dir
	return m.Run()
}

// testModel is a loaded model with the signature the repository would
// validate its requests against.
type testModel struct {
	*Model
	sig backend.Signature
}

// infer runs req as the repository's model handle does: validated
// (backend.Signature.Validate), then handed to the kind.
func (m testModel) infer(ctx context.Context, req *backend.Request) (*backend.Response, error) {
	if err := m.sig.Validate(req); err != nil {
		return nil, err
	}
	return m.Infer(ctx, req)
}

// load parses a config (its default_model_filename names a module in
// modelDir), normalizes it as the repository does and loads it.
func load(t *testing.T, name, config string) testModel {
	t.Helper()
	m, err := tryLoad(name, config)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	cfg, _ := normalized(name, config)
	return testModel{m.(*Model), backend.SignatureOf(name, cfg)}
}

func tryLoad(name, config string) (backend.Model, error) {
	cfg, err := normalized(name, config)
	if err != nil {
		return nil, err
	}
	return Load(context.Background(), backend.LoadSpec{Name: name, Version: 1, VersionDir: modelDir, Config: cfg,
		Signature: backend.SignatureOf(name, cfg)})
}

// normalized parses and normalizes a config as the repository does.
func normalized(name, config string) (*modelconfig.ModelConfig, error) {
	cfg, err := repository.ParseConfig(name+"/config.pbtxt", []byte(config))
	if err != nil {
		return nil, err
	}
	if err := repository.Normalize(name+"/config.pbtxt", name, cfg, 0); err != nil {
		return nil, err
	}
	return cfg, nil
}

func f32(vs ...float32) []byte {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func i64(vs ...int64) []byte {
	b := make([]byte, 8*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
	}
	return b
}

func floats(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

func near(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-4 {
			return false
		}
	}
	return true
}

const pairConfig = `
platform: "pytorch_libtorch"
default_model_filename: "pair.pt"
max_batch_size: 16
input [
  { name: "INPUT__1" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] }
]
output [
  { name: "OUTPUT__1" data_type: TYPE_FP32 dims: [ 1 ] },
  { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 4 ] }
]
`

// pairExpected computes the pair module's outputs in Go: out0 = a @ W + b
// with W[i][j] = (4i+j)/10 - 0.5, out1 = sum(a - b) per row.
func pairExpected(a, b []float32, rows int) (out0, out1 []float32) {
	for r := range rows {
		var s float32
		for j := range 4 {
			var acc float32
			for i := range 4 {
				acc += a[4*r+i] * (float32(4*i+j)/10 - 0.5)
			}
			out0 = append(out0, acc+b[4*r+j])
			s += a[4*r+j] - b[4*r+j]
		}
		out1 = append(out1, s)
	}
	return out0, out1
}

func pairRequest(seed, rows int) (*backend.Request, []float32, []float32) {
	var a, b []float32
	for i := range 4 * rows {
		a = append(a, float32((seed*7+i)%11)-5)
		b = append(b, float32((seed*3+2*i)%5)/2)
	}
	req := &backend.Request{Inputs: []backend.Tensor{
		{Name: "INPUT__0", Datatype: "FP32", Shape: []int64{int64(rows), 4}, Data: f32(a...)},
		{Name: "INPUT__1", Datatype: "FP32", Shape: []int64{int64(rows), 4}, Data: f32(b...)},
	}}
	return req, a, b
}

func TestBatchedResultsEqualPerRequestResults(t *testing.T) {
	m := load(t, "pair", pairConfig+`dynamic_batching { preferred_batch_size: [ 16 ] max_queue_delay_microseconds: 300000 }`)
	sizes := []int{1, 2, 1, 3, 1, 1, 4, 1}
	var wg sync.WaitGroup
	errs := make([]error, len(sizes))
	for i, rows := range sizes {
		wg.Go(func() {
			req, a, b := pairRequest(i, rows)
			resp, err := m.Infer(context.Background(), req)
			if err != nil {
				errs[i] = err
				return
			}
			want0, want1 := pairExpected(a, b, rows)
			if len(resp.Outputs) != 2 || resp.Outputs[0].Name != "OUTPUT__1" || resp.Outputs[1].Name != "OUTPUT__0" {
				errs[i] = fmt.Errorf("outputs %+v, want OUTPUT__1, OUTPUT__0 in config order", resp.Outputs)
				return
			}
			o1, o0 := resp.Outputs[0], resp.Outputs[1]
			if fmt.Sprint(o0.Shape) != fmt.Sprint([]int64{int64(rows), 4}) || fmt.Sprint(o1.Shape) != fmt.Sprint([]int64{int64(rows), 1}) {
				errs[i] = fmt.Errorf("shapes %v %v", o0.Shape, o1.Shape)
				return
			}
			if !near(floats(o0.Data), want0) || !near(floats(o1.Data), want1) {
				errs[i] = fmt.Errorf("request %d: got %v %v, want %v %v", i, floats(o0.Data), floats(o1.Data), want0, want1)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	st := m.Stats()
	if st.InferenceCount != 14 || st.Success.Count != uint64(len(sizes)) {
		t.Errorf("inference count %d, successes %d; want 14, %d", st.InferenceCount, st.Success.Count, len(sizes))
	}
	if st.ExecutionCount >= uint64(len(sizes)) {
		t.Errorf("%d executions for %d concurrent requests: nothing was batched", st.ExecutionCount, len(sizes))
	}
	if st.ComputeInfer.Total <= 0 {
		t.Errorf("no infer time recorded: %+v", st.ComputeInfer)
	}
}

func TestOnlyRequestedOutputsReturned(t *testing.T) {
	m := load(t, "pair", pairConfig)
	req, a, b := pairRequest(5, 2)
	req.Outputs = []string{"OUTPUT__0"}
	resp, err := m.Infer(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	want0, _ := pairExpected(a, b, 2)
	if len(resp.Outputs) != 1 || resp.Outputs[0].Name != "OUTPUT__0" || !near(floats(resp.Outputs[0].Data), want0) {
		t.Fatalf("outputs = %+v", resp.Outputs)
	}
}

func TestVariableShapesNeverShareABatch(t *testing.T) {
	m := load(t, "seq", `
backend: "pytorch" default_model_filename: "seq.pt" max_batch_size: 8
input [{ name: "ids" data_type: TYPE_INT64 dims: [ -1 ] }]
output [{ name: "total" data_type: TYPE_FP32 dims: [ 1 ] }]
dynamic_batching { max_queue_delay_microseconds: 200000 }`)
	lengths := []int{3, 5, 3, 5, 2, 3}
	var wg sync.WaitGroup
	errs := make([]error, len(lengths))
	for i, l := range lengths {
		wg.Go(func() {
			ids := make([]int64, l)
			var sum int64
			for j := range ids {
				ids[j] = int64(i*10 + j)
				sum += ids[j]
			}
			resp, err := m.Infer(context.Background(), &backend.Request{Inputs: []backend.Tensor{
				{Name: "ids", Datatype: "INT64", Shape: []int64{1, int64(l)}, Data: i64(ids...)}}})
			if err != nil {
				errs[i] = err
				return
			}
			if got := floats(resp.Outputs[0].Data); len(got) != 1 || got[0] != float32(sum)/2 {
				errs[i] = fmt.Errorf("length %d: got %v, want %v", l, got, float32(sum)/2)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if st := m.Stats(); st.ExecutionCount < 3 {
		t.Errorf("three distinct lengths ran in %d executions", st.ExecutionCount)
	}
}

func TestNonBatchingModel(t *testing.T) {
	m := load(t, "single", `
platform: "pytorch_libtorch" default_model_filename: "single.pt"
input [{ name: "x" data_type: TYPE_FP32 dims: [ 2, 3 ] }]
output [{ name: "y" data_type: TYPE_FP32 dims: [ 2, 3 ] }]`)
	resp, err := m.Infer(context.Background(), &backend.Request{Inputs: []backend.Tensor{
		{Name: "x", Datatype: "FP32", Shape: []int64{2, 3}, Data: f32(0, 1, 2, 3, 4, 5)}}})
	if err != nil {
		t.Fatal(err)
	}
	if y := resp.Outputs[0]; fmt.Sprint(y.Shape) != "[2 3]" || !near(floats(y.Data), []float32{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("y = %v %v", y.Shape, floats(y.Data))
	}
	_, err = m.infer(context.Background(), &backend.Request{Inputs: []backend.Tensor{
		{Name: "x", Datatype: "FP32", Shape: []int64{1, 2, 3}, Data: make([]byte, 24)}}})
	if err == nil || !strings.Contains(err.Error(), "Expected [2,3], got [1,2,3]") || strings.Contains(err.Error(), "NOTE") {
		t.Fatalf("got %v", err)
	}
}

func TestForwardErrorIsInternalAndContained(t *testing.T) {
	m := load(t, "fail", `
platform: "pytorch_libtorch" default_model_filename: "fail.pt" max_batch_size: 4
input [{ name: "x" data_type: TYPE_FP32 dims: [ 2 ] }]
output [{ name: "y" data_type: TYPE_FP32 dims: [ 2 ] }]`)
	_, err := m.Infer(context.Background(), &backend.Request{Inputs: []backend.Tensor{
		{Name: "x", Datatype: "FP32", Shape: []int64{1, 2}, Data: f32(-1, -2)}}})
	if backend.CodeOf(err) != backend.CodeInternal || !strings.Contains(err.Error(), "negative sum") {
		t.Fatalf("got %v %v", backend.CodeOf(err), err)
	}
	resp, err := m.Infer(context.Background(), &backend.Request{Inputs: []backend.Tensor{
		{Name: "x", Datatype: "FP32", Shape: []int64{1, 2}, Data: f32(1, 2)}}})
	if err != nil || !near(floats(resp.Outputs[0].Data), []float32{3, 6}) {
		t.Fatalf("after a failure: %v %v", resp, err)
	}
	if st := m.Stats(); st.Failures[batcher.FailBackend] != 1 || st.Success.Count != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestReshapeAndOptionalInputs(t *testing.T) {
	grid := load(t, "grid", `
platform: "pytorch_libtorch" default_model_filename: "grid.pt" max_batch_size: 4
input [{ name: "x" data_type: TYPE_FP32 dims: [ 6 ] reshape { shape: [ 2, 3 ] } }]
output [{ name: "s" data_type: TYPE_FP32 dims: [ 2 ] }]`)
	resp, err := grid.Infer(context.Background(), &backend.Request{Inputs: []backend.Tensor{
		{Name: "x", Datatype: "FP32", Shape: []int64{1, 6}, Data: f32(1, 2, 3, 10, 20, 30)}}})
	if err != nil || !near(floats(resp.Outputs[0].Data), []float32{6, 60}) {
		t.Fatalf("grid: %v %v", resp, err)
	}

	opt := load(t, "opt", `
platform: "pytorch_libtorch" default_model_filename: "opt.pt" max_batch_size: 4
input [{ name: "x" data_type: TYPE_FP32 dims: [ 2 ] }, { name: "y" data_type: TYPE_FP32 dims: [ 2 ] optional: true }]
output [{ name: "z" data_type: TYPE_FP32 dims: [ 2 ] }]
dynamic_batching { max_queue_delay_microseconds: 100000 }`)
	var wg sync.WaitGroup
	var withY, withoutY []float32
	var e1, e2 error
	wg.Go(func() {
		r, err := opt.Infer(context.Background(), &backend.Request{Inputs: []backend.Tensor{
			{Name: "x", Datatype: "FP32", Shape: []int64{1, 2}, Data: f32(1, 2)},
			{Name: "y", Datatype: "FP32", Shape: []int64{1, 2}, Data: f32(10, 20)}}})
		if e1 = err; err == nil {
			withY = floats(r.Outputs[0].Data)
		}
	})
	wg.Go(func() {
		r, err := opt.Infer(context.Background(), &backend.Request{Inputs: []backend.Tensor{
			{Name: "x", Datatype: "FP32", Shape: []int64{1, 2}, Data: f32(1, 2)}}})
		if e2 = err; err == nil {
			withoutY = floats(r.Outputs[0].Data)
		}
	})
	wg.Wait()
	if e1 != nil || e2 != nil || !near(withY, []float32{11, 22}) || !near(withoutY, []float32{1, 2}) {
		t.Fatalf("optional: %v %v %v %v", withY, withoutY, e1, e2)
	}
}

func TestQueueFullAndCancel(t *testing.T) {
	m := load(t, "pair", pairConfig+`dynamic_batching { max_queue_delay_microseconds: 2000000 default_queue_policy { max_queue_size: 1 } }`)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		req, _, _ := pairRequest(0, 1)
		_, err := m.Infer(ctx, req)
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for m.Stats().Pending != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	req, _, _ := pairRequest(1, 1)
	_, err := m.Infer(context.Background(), req)
	if backend.CodeOf(err) != backend.CodeUnavailable || !strings.Contains(err.Error(), "Exceeds maximum queue size") {
		t.Fatalf("second request: %v %v", backend.CodeOf(err), err)
	}
	cancel()
	if err := <-done; backend.CodeOf(err) != backend.CodeCancelled {
		t.Fatalf("cancelled request: %v %v", backend.CodeOf(err), err)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct{ name, config, msg string }{
		{"string type", `platform: "pytorch_libtorch" default_model_filename: "single.pt"
input [{ name: "x" data_type: TYPE_STRING dims: [ 1 ] }] output [{ name: "y" data_type: TYPE_FP32 dims: [ 1 ] }]`,
			"input 'x': data type TYPE_STRING is not supported"},
		{"too many inputs", `platform: "pytorch_libtorch" default_model_filename: "single.pt"
input [{ name: "a" data_type: TYPE_FP32 dims: [ 1 ] }, { name: "b" data_type: TYPE_FP32 dims: [ 1 ] }]
output [{ name: "y" data_type: TYPE_FP32 dims: [ 1 ] }]`, "takes at most 1"},
		{"position gap", `platform: "pytorch_libtorch" default_model_filename: "pair.pt" max_batch_size: 2
input [{ name: "IN__0" data_type: TYPE_FP32 dims: [ 4 ] }, { name: "IN__2" data_type: TYPE_FP32 dims: [ 4 ] }]
output [{ name: "y" data_type: TYPE_FP32 dims: [ 1 ] }]`, "input 'IN__2' maps to position 2"},
		{"missing file", `platform: "pytorch_libtorch" default_model_filename: "nope.pt"
input [{ name: "x" data_type: TYPE_FP32 dims: [ 1 ] }] output [{ name: "y" data_type: TYPE_FP32 dims: [ 1 ] }]`, "nope.pt"},
		{"bad precision", `platform: "pytorch_libtorch" default_model_filename: "single.pt"
input [{ name: "x" data_type: TYPE_FP32 dims: [ 1 ] }] output [{ name: "y" data_type: TYPE_FP32 dims: [ 1 ] }]
parameters { key: "precision" value: { string_value: "fp8" } }`, "parameter 'precision'"},
		{"intra-op threads not an integer", `platform: "pytorch_libtorch" default_model_filename: "single.pt"
input [{ name: "x" data_type: TYPE_FP32 dims: [ 1 ] }] output [{ name: "y" data_type: TYPE_FP32 dims: [ 1 ] }]
parameters { key: "INTRA_OP_THREAD_COUNT" value: { string_value: "two" } }`, "parameter 'INTRA_OP_THREAD_COUNT': 'two' is not an integer"},
		{"inter-op threads not an integer", `platform: "pytorch_libtorch" default_model_filename: "single.pt"
input [{ name: "x" data_type: TYPE_FP32 dims: [ 1 ] }] output [{ name: "y" data_type: TYPE_FP32 dims: [ 1 ] }]
parameters { key: "INTER_OP_THREAD_COUNT" value: { string_value: "1.5" } }`, "parameter 'INTER_OP_THREAD_COUNT': '1.5' is not an integer"},
		{"negative threads", `platform: "pytorch_libtorch" default_model_filename: "single.pt"
input [{ name: "x" data_type: TYPE_FP32 dims: [ 1 ] }] output [{ name: "y" data_type: TYPE_FP32 dims: [ 1 ] }]
parameters { key: "INTRA_OP_THREAD_COUNT" value: { string_value: "-1" } }`, "parameter 'INTRA_OP_THREAD_COUNT': -1 threads is out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tryLoad(tc.name, tc.config)
			if err == nil {
				_ = m.Close(context.Background())
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %q", err, tc.msg)
			}
		})
	}
}

func TestForwardArgsAndDevices(t *testing.T) {
	got := forwardArgs("forward(__torch__.M self, Tensor x, Dict(str, Tensor) d, Tensor? y=None, int[] z=[1, 2]) -> Tensor")
	if strings.Join(got, ",") != "x,d,y,z" {
		t.Errorf("forwardArgs = %v", got)
	}
	cfg, err := repository.ParseConfig("f", []byte(`platform: "pytorch_libtorch"
input [{ name: "x" data_type: TYPE_FP32 dims: [ 1 ] }] output [{ name: "y" data_type: TYPE_FP32 dims: [ 1 ] }]
instance_group [{ kind: KIND_GPU count: 2 gpus: [0, 1] }, { kind: KIND_CPU count: 1 }]`))
	if err != nil {
		t.Fatal(err)
	}
	if err := repository.Normalize("f", "m", cfg, 2); err != nil {
		t.Fatal(err)
	}
	if d := strings.Join(instances.Devices(cfg), ","); d != "cuda:0,cuda:1,cuda:0,cuda:1,cpu" {
		t.Errorf("devices = %s", d)
	}
}

// TestGPU runs the pair model on $OFASERVE_TEST_DEVICE (cuda:N) when set.
func TestGPU(t *testing.T) {
	dev := os.Getenv("OFASERVE_TEST_DEVICE")
	if !strings.HasPrefix(dev, "cuda:") {
		t.Skip("OFASERVE_TEST_DEVICE is not a cuda device")
	}
	gpu := strings.TrimPrefix(dev, "cuda:")
	cfg, err := repository.ParseConfig("pair", []byte(pairConfig+`instance_group [{ kind: KIND_GPU gpus: [`+gpu+`] }]`))
	if err != nil {
		t.Fatal(err)
	}
	if err := repository.Normalize("pair", "pair", cfg, 8); err != nil {
		t.Fatal(err)
	}
	bm, err := Load(context.Background(), backend.LoadSpec{Name: "pair", Version: 1, VersionDir: modelDir, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer bm.Close(context.Background())
	req, a, b := pairRequest(3, 3)
	resp, err := bm.Infer(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	want0, _ := pairExpected(a, b, 3)
	if !near(floats(resp.Outputs[1].Data), want0) {
		t.Fatalf("got %v want %v", floats(resp.Outputs[1].Data), want0)
	}
}

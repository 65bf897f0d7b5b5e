package repository

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/backend"
)

// warmModel is a fakeModel that warms up (backend.Warmer): it records the samples and may block until
// released or fail.
type warmModel struct {
	fakeModel
	mu      sync.Mutex
	samples []backend.WarmupSample
	started chan struct{} // closed when Warmup starts (nil: not watched)
	release chan struct{} // Warmup waits for it (nil: no wait)
	fail    error
}

func (w *warmModel) Warmup(ctx context.Context, samples []backend.WarmupSample) error {
	w.mu.Lock()
	w.samples = samples
	w.mu.Unlock()
	if w.started != nil {
		close(w.started)
	}
	if w.release != nil {
		select {
		case <-w.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	time.Sleep(2 * time.Millisecond) // a measurable warm-up
	return w.fail
}

func repoWith(t *testing.T, root string, load backend.Loader) *Repository {
	t.Helper()
	r, err := New(Options{Root: root, Mode: ModeExplicit, Loaders: map[string]backend.Loader{"pytorch": load}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

const warmConfig = simpleConfig + `
model_warmup [
  { name: "zeros" batch_size: 3 count: 2 inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 2 ] zero_data: true } } },
  { name: "random" batch_size: 1 inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 2 ] random_data: true } } },
  { name: "file" batch_size: 2 inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 2 ] input_data_file: "x.bin" } } }
]`

func writeWarmupFile(t *testing.T, root, model, file string, data []byte) {
	t.Helper()
	dir := filepath.Join(root, model, WarmupDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func floats(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// TestWarmupSamples: model_warmup samples reach a Warmer as validated requests: zeros, random values in
// [0, 1), a file's element repeated batch_size times, with their counts; a model that is not a Warmer
// gets them through Infer, Count times each; the load and warm-up times are kept.
func TestWarmupSamples(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "m", warmConfig, "1")
	file := make([]byte, 8)
	binary.LittleEndian.PutUint32(file, math.Float32bits(1.5))
	binary.LittleEndian.PutUint32(file[4:], math.Float32bits(-2))
	writeWarmupFile(t, root, "m", "x.bin", file)

	var wm *warmModel
	r := repoWith(t, root, func(ctx context.Context, spec backend.LoadSpec) (backend.Model, error) {
		wm = &warmModel{fakeModel: fakeModel{spec: spec}}
		return wm, nil
	})
	if err := r.Load(context.Background(), "m", nil); err != nil {
		t.Fatal(err)
	}
	if len(wm.samples) != 3 {
		t.Fatalf("%d samples", len(wm.samples))
	}
	z, rnd, f := wm.samples[0], wm.samples[1], wm.samples[2]
	if z.Name != "zeros" || z.Count != 2 || z.Request.Inputs[0].Shape[0] != 3 || len(z.Request.Inputs[0].Data) != 24 {
		t.Errorf("zeros: %+v %+v", z, z.Request.Inputs)
	}
	for _, v := range floats(z.Request.Inputs[0].Data) {
		if v != 0 {
			t.Errorf("zero_data holds %v", v)
		}
	}
	if rnd.Count != 1 {
		t.Errorf("count 0 means once, got %d", rnd.Count)
	}
	rv := floats(rnd.Request.Inputs[0].Data)
	if len(rv) != 2 || rv[0] == rv[1] || rv[0] < 0 || rv[0] >= 1 || rv[1] < 0 || rv[1] >= 1 {
		t.Errorf("random_data %v, want two different values in [0, 1)", rv)
	}
	if got := floats(f.Request.Inputs[0].Data); len(got) != 4 || got[0] != 1.5 || got[1] != -2 || got[2] != 1.5 || got[3] != -2 {
		t.Errorf("input_data_file repeated twice: %v", got)
	}
	m, err := r.Model("m", 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.WarmupDuration() <= 0 || m.LoadDuration() < m.WarmupDuration() {
		t.Errorf("load %v, warm-up %v", m.LoadDuration(), m.WarmupDuration())
	}

	// Not a Warmer: each sample runs Count times through Infer.
	l := &fakeLoader{}
	r2 := repoWith(t, root, l.load)
	if err := r2.Load(context.Background(), "m", nil); err != nil {
		t.Fatal(err)
	}
	if n := l.loaded[0].infers.Load(); n != 2+1+1 {
		t.Errorf("%d Infer calls, want 4 (2 + 1 + 1)", n)
	}
}

// TestNotReadyUntilWarm: a version is not READY while it warms up, and a warm-up that fails leaves it
// UNAVAILABLE with the reason, its model closed.
func TestNotReadyUntilWarm(t *testing.T) {
	root := t.TempDir()
	writeModel(t, root, "m", simpleConfig, "1")
	wm := &warmModel{started: make(chan struct{}), release: make(chan struct{})}
	r := repoWith(t, root, func(ctx context.Context, spec backend.LoadSpec) (backend.Model, error) {
		wm.spec = spec
		return wm, nil
	})
	done := make(chan error, 1)
	go func() { done <- r.Load(context.Background(), "m", nil) }()
	<-wm.started
	if m, err := r.Model("m", 1); err == nil && m.Ready() {
		t.Error("the version is READY while it warms up")
	}
	for _, e := range r.Index(false) {
		if e.Name == "m" && e.State == StateReady {
			t.Errorf("index says %v while warming up", e)
		}
	}
	close(wm.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m, err := r.Model("m", 1); err != nil || !m.Ready() {
		t.Errorf("after warm-up: %v", err)
	}

	bad := &warmModel{fail: errors.New("sample exploded")}
	r2 := repoWith(t, root, func(ctx context.Context, spec backend.LoadSpec) (backend.Model, error) {
		bad.spec = spec
		return bad, nil
	})
	err := r2.Load(context.Background(), "m", nil)
	if err == nil || !strings.Contains(err.Error(), "warm-up failed after") || !strings.Contains(err.Error(), "sample exploded") {
		t.Errorf("failed warm-up: %v", err)
	}
	if bad.closed.Load() != 1 {
		t.Errorf("a model whose warm-up failed is closed %d times, want 1", bad.closed.Load())
	}
	for _, e := range r2.Index(false) {
		if e.Name == "m" && (e.State != StateUnavailable || !strings.Contains(e.Reason, "sample exploded")) {
			t.Errorf("index %+v", e)
		}
	}
}

// TestWarmupConfigErrors: samples that cannot be built are refused with a reason naming the sample,
// before anything is loaded.
func TestWarmupConfigErrors(t *testing.T) {
	sample := func(body string) string { return simpleConfig + "model_warmup [ { " + body + " } ]" }
	x := func(v string) string { return `inputs { key: "x" value: { ` + v + ` } }` }
	for _, tt := range []struct {
		config, want string
	}{
		{sample(`batch_size: 1 ` + x(`data_type: TYPE_FP32 dims: [ 2 ] zero_data: true`)), "a warm-up sample must have a name"},
		{sample(`name: "s" ` + x(`data_type: TYPE_FP32 dims: [ 2 ] zero_data: true`)), "warm-up sample 's': batch_size must be at least 1"},
		{sample(`name: "s" batch_size: 5 ` + x(`data_type: TYPE_FP32 dims: [ 2 ] zero_data: true`)), "batch_size 5 exceeds max_batch_size 4"},
		{sample(`name: "s" batch_size: 1`), "warm-up sample 's' lacks input 'x'"},
		{sample(`name: "s" batch_size: 1 ` + x(`data_type: TYPE_FP32 dims: [ 2 ] zero_data: true`) + ` inputs { key: "z" value: { data_type: TYPE_FP32 dims: [ 1 ] zero_data: true } }`), "'z' is not an input of the model"},
		{sample(`name: "s" batch_size: 1 ` + x(`data_type: TYPE_INT64 dims: [ 2 ] zero_data: true`)), "input 'x' is TYPE_INT64, the model's is TYPE_FP32"},
		{sample(`name: "s" batch_size: 1 ` + x(`data_type: TYPE_FP32 dims: [ -1 ] zero_data: true`)), "must be fully specified"},
		{sample(`name: "s" batch_size: 1 ` + x(`data_type: TYPE_FP32 dims: [ 2 ]`)), "sets none of zero_data, random_data, input_data_file"},
		{sample(`name: "s" batch_size: 1 ` + x(`data_type: TYPE_FP32 dims: [ 2 ] input_data_file: "../x.bin"`)), "must be a plain file name"},
		{sample(`name: "s" batch_size: 1 ` + x(`data_type: TYPE_FP32 dims: [ 2 ] input_data_file: "missing.bin"`)), "warm-up sample 's': input 'x': open"},
		{sample(`name: "s" batch_size: 1 ` + x(`data_type: TYPE_FP32 dims: [ 2 ] input_data_file: "short.bin"`)), "4 bytes, want 8 (2 FP32 elements)"},
		{sample(`name: "s" batch_size: 1 ` + x(`data_type: TYPE_FP32 dims: [ 3 ] zero_data: true`)), "warm-up sample 's': unexpected shape for input 'x'"},
	} {
		root := t.TempDir()
		writeModel(t, root, "m", tt.config, "1")
		writeWarmupFile(t, root, "m", "short.bin", make([]byte, 4))
		l := &fakeLoader{}
		r := repoWith(t, root, l.load)
		err := r.Load(context.Background(), "m", nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s\n  got %v, want %q", tt.config, err, tt.want)
		}
		if len(l.loaded) != 0 {
			t.Errorf("%s: the model was loaded before its warm-up samples were checked", tt.config)
		}
	}
}

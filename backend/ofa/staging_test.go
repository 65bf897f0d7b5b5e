package ofa

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/internal/testenv"
	torch "github.com/ofaserve/ofaserve/libtorch"
	"github.com/ofaserve/ofaserve/preprocess"
)

// testDevice is the device the tests run the model on: OFASERVE_TEST_DEVICE (scripts/gpu sets cuda:0),
// else the CPU.
func testDevice() string {
	if d := os.Getenv("OFASERVE_TEST_DEVICE"); d != "" {
		return d
	}
	return "cpu"
}

// deviceConfig is exportedConfig on the test device.
func deviceConfig(t testing.TB, replace ...string) string {
	t.Helper()
	if gpu, ok := strings.CutPrefix(testDevice(), "cuda:"); ok {
		replace = append(replace, "count: 1 kind: KIND_CPU", "count: 1 kind: KIND_GPU gpus: [ "+gpu+" ]")
	}
	return exportedConfig(t, replace...)
}

// withParams adds config parameters (key, value, ...) to a config text.
func withParams(kv ...string) []string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, "parameters { key: %q value: { string_value: %q } }\n", kv[i], kv[i+1])
	}
	return []string{"parameters {", b.String() + "parameters {"}
}

// parityImages writes the parity images of preprocess's tests (preprocess/testdata/pil_ref.py: photos from
// Debian packages and their PIL-made variants) and returns their files.
func parityImages(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(testenv.Python(), filepath.Join("..", "..", "preprocess", "testdata", "pil_ref.py"), dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pil_ref.py: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct{ File string }
	if err := json.Unmarshal(raw, &cases); err != nil || len(cases) == 0 {
		t.Fatalf("manifest.json: %v (%d images)", err, len(cases))
	}
	var files []string
	for _, c := range cases {
		files = append(files, filepath.Join(dir, c.File))
	}
	return files
}

// float32Path is the kind's path before images went to the device as uint8: preprocess.Prepare's float32
// CHW tensors, ids right-padded to the longest row, one ForwardInto of the instance's module, the same
// softmax. It returns each row's probabilities.
func float32Path(t *testing.T, m testModel, images [][]byte, hyps []string) [][3]float32 {
	t.Helper()
	n := len(images)
	chw := 3 * m.h * m.w
	pix := make([]float32, n*chw)
	var rows [][]int64
	width := 0
	for i := range n {
		if _, err := preprocess.Prepare(images[i], m.popts, pix[i*chw:(i+1)*chw]); err != nil {
			t.Fatal(err)
		}
		ids, err := m.prompts.Build("", hyps[i])
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, ids)
		width = max(width, len(ids))
	}
	ids := make([]int64, n*width)
	for i, r := range rows {
		line := ids[i*width : (i+1)*width]
		for k := copy(line, r); k < width; k++ {
			line[k] = m.padID
		}
	}
	pixBytes := make([]byte, 4*len(pix))
	for i, v := range pix {
		binary.LittleEndian.PutUint32(pixBytes[4*i:], math.Float32bits(v))
	}
	outs, err := m.set.Modules[0].Forward(context.Background(), []torch.Tensor{
		{DType: torch.Float32, Shape: []int64{int64(n), 3, int64(m.h), int64(m.w)}, Data: pixBytes},
		{DType: torch.Int64, Shape: []int64{int64(n), int64(width)}, Data: asBytes(ids)},
	})
	if err != nil {
		t.Fatal(err)
	}
	probs := make([][3]float32, n)
	for i := range probs {
		var l [numLabels]float64
		for k := range l {
			l[k] = float64(math.Float32frombits(binary.LittleEndian.Uint32(outs[0].Data[(i*numLabels+k)*4:])))
		}
		probs[i] = softmax(l)
	}
	return probs
}

func maxDiff(a, b [][3]float32) float64 {
	d := 0.0
	for i := range a {
		for k := range a[i] {
			d = math.Max(d, math.Abs(float64(a[i][k]-b[i][k])))
		}
	}
	return d
}

// TestUint8MatchesFloat32Path is issue 13 item 1 through the kind: every parity image, served by the kind
// (decoded and resized to uint8 HWC, staged, normalized on the device), gives the scores of the float32
// path the kind used before (Prepare's normalized tensor sent as float32), bit for bit on the CPU, alone
// and in batches of 16 whose rows have different lengths. The bytes sent to the device per image are
// 3*H*W (uint8) plus the ids, not 12*H*W.
func TestUint8MatchesFloat32Path(t *testing.T) {
	files := parityImages(t)
	m := mustLoad(t, deviceConfig(t))
	tol := 0.0
	if testDevice() != "cpu" {
		tol = 1e-5
	}
	var images [][]byte
	var hyps []string
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, data)
		hyps = append(hyps, strings.Repeat("a photo of something ", 1+i%5))
	}
	ctx := context.Background()
	worst, checked := 0.0, 0
	for lo := 0; lo < len(images); lo += 16 {
		hi := min(lo+16, len(images))
		want := float32Path(t, m, images[lo:hi], hyps[lo:hi])
		resp, err := m.infer(ctx, request(images[lo:hi], hyps[lo:hi], nil, OutputScores))
		if err != nil {
			t.Fatal(err)
		}
		got := scores(t, output(t, resp, OutputScores))
		if d := maxDiff(got, want); d > tol {
			t.Errorf("images %d..%d in one batch: uint8 path differs from the float32 path by %g: %v vs %v", lo, hi-1, d, got, want)
		}
		worst = math.Max(worst, maxDiff(got, want))
		checked += hi - lo
	}
	st := m.stagers[0].st.Stats()
	before := st.BytesStaged
	for i := range images {
		want := float32Path(t, m, images[i:i+1], hyps[i:i+1])
		resp, err := m.infer(ctx, request(images[i:i+1], hyps[i:i+1], nil, OutputScores))
		if err != nil {
			t.Fatalf("%s: %v", files[i], err)
		}
		if d := maxDiff(scores(t, output(t, resp, OutputScores)), want); d > tol {
			t.Errorf("%s alone: uint8 path differs from the float32 path by %g", filepath.Base(files[i]), d)
		}
		ids, _ := m.prompts.Build("", hyps[i])
		st = m.stagers[0].st.Stats()
		if got, want := st.BytesStaged-before, int64(3*m.h*m.w+8*len(ids)); got != want {
			t.Errorf("%s: %d bytes staged, want %d (uint8 image + ids; float32 would be %d)", filepath.Base(files[i]), got, want, 12*m.h*m.w+8*len(ids))
		}
		before = st.BytesStaged
	}
	t.Logf("%d parity images on %s: max |uint8 path - float32 path| = %g; %d batches staged, %d buffer allocations (all at load)",
		checked, testDevice(), worst, st.Staged, st.BufferAllocations)
	if st.BufferAllocations != m.stagers[0].st.Stats().BufferAllocations || st.BufferAllocations == 0 {
		t.Errorf("staging buffers: %+v", st)
	}
}

// logBuffer is a logger that keeps its text output for the test to read.
func logBuffer() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

// TestCUDAGraphs is item 3 through the kind: with cuda_graphs on, every bucket is offered for capture at
// load. On the CPU each capture fails, the reason is logged once, and every batch runs eagerly with the
// results of a model without graphs, bit for bit. On a GPU the buckets are captured and replayed, and a
// replayed batch (padded to its bucket) gives the eager model's scores within TF32 noise.
func TestCUDAGraphs(t *testing.T) {
	log, buf := logBuffer()
	params := withParams(ParamCUDAGraphs, "true", ParamBucketBatchSizes, "1,2,4", ParamBucketTextLengths, "16,32")
	g, err := loadFrom(t, testRepo, deviceConfig(t, params...), log)
	if err != nil {
		t.Fatal(err)
	}
	eager := mustLoad(t, deviceConfig(t))
	text := buf.String()
	cpu := testDevice() == "cpu"
	if cpu {
		for _, want := range []string{"CUDA graph capture failed: those buckets run eagerly", "buckets=6",
			"CUDA graphs are not supported on cpu", "captured=0"} {
			if !strings.Contains(text, want) {
				t.Errorf("load log lacks %q:\n%s", want, text)
			}
		}
		if n := strings.Count(text, "CUDA graph capture failed"); n != 1 {
			t.Errorf("the reason is logged %d times, want once:\n%s", n, text)
		}
	} else if !strings.Contains(text, "captured=6") {
		t.Errorf("on %s every bucket should be captured:\n%s", testDevice(), text)
	}
	imgs := testImages(t)
	images := [][]byte{imgs["rgb.png"], imgs["photo.jpg"], imgs["gray.png"]}
	hyps := []string{"two birds", "a long sentence about a dog that runs in the park", "x"}
	ctx := context.Background()
	tol := 0.0
	if !cpu {
		tol = 2e-3 // cuDNN picks per-shape algorithms, TF32 by default
	}
	for n := 1; n <= 3; n++ {
		req := func() *backend.Request { return request(images[:n], hyps[:n], nil, OutputScores) }
		rg, err := g.infer(ctx, req())
		if err != nil {
			t.Fatal(err)
		}
		re, err := eager.infer(ctx, req())
		if err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(scores(t, output(t, rg, OutputScores)), scores(t, output(t, re, OutputScores))); d > tol {
			t.Errorf("batch of %d: graphs model differs from the eager model by %g", n, d)
		}
	}
	st := g.stagers[0].st.Stats()
	if cpu && (st.Graphs != 0 || st.GraphReplays != 0 || st.EagerForwards != 3) {
		t.Errorf("CPU staging stats %+v: want no graph, 3 eager forwards", st)
	}
	if !cpu && (st.Graphs != 6 || st.GraphReplays != 3) {
		t.Errorf("GPU staging stats %+v: want 6 graphs, 3 replays", st)
	}
}

// TestBucketPadding runs the padding that graph replays need on the CPU too: with every bucket marked as
// captured, batches are padded to their bucket (zero image rows, pad-id rows and columns) and forwarded
// eagerly at that shape, and their real rows give the unpadded scores (to GEMM-blocking noise).
func TestBucketPadding(t *testing.T) {
	params := withParams(ParamBucketBatchSizes, "2,4,8", ParamBucketTextLengths, "24,48")
	m := mustLoad(t, deviceConfig(t, params...))
	plain := mustLoad(t, deviceConfig(t))
	for _, sh := range m.bc.set.Shapes() {
		m.stagers[0].graphs[sh] = true // eager at the bucket's shape: the shim has no graph for it
	}
	imgs := testImages(t)
	all := [][]byte{imgs["rgb.png"], imgs["photo.jpg"], imgs["gray.png"]}
	ctx := context.Background()
	tol := 1e-5
	if testDevice() != "cpu" {
		tol = 2e-3
	}
	for _, n := range []int{1, 3, 5, 8} {
		var images [][]byte
		var hyps []string
		for i := range n {
			images = append(images, all[i%3])
			hyps = append(hyps, strings.Repeat("word ", 1+3*i))
		}
		got, err := m.infer(ctx, request(images, hyps, nil, OutputScores))
		if err != nil {
			t.Fatal(err)
		}
		want, err := plain.infer(ctx, request(images, hyps, nil, OutputScores))
		if err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(scores(t, output(t, got, OutputScores)), scores(t, output(t, want, OutputScores))); d > tol {
			t.Errorf("batch of %d padded to its bucket: differs by %g", n, d)
		}
		if sh := m.stagers[0].last; !slices.Contains(m.bc.set.Shapes(), sh) || sh.Batch < n {
			t.Errorf("batch of %d staged as %v, want its bucket", n, sh)
		}
	}
}

// TestOverlap is item 2: with the batcher's early hand-off, an instance's next batch is staged (stacked
// into the other slot's buffers, its copy started) while the current one computes; every request still
// gets the scores it gets alone.
func TestOverlap(t *testing.T) {
	m := mustLoad(t, deviceConfig(t))
	imgs := testImages(t)
	images := [][]byte{imgs["rgb.png"], imgs["photo.jpg"], imgs["gray.png"]}
	const n, clients = 48, 24
	hyp := func(i int) string { return strings.Repeat("a dog runs ", 1+i%7) }
	ctx := context.Background()
	alone := make([][3]float32, n)
	for i := range n {
		resp, err := m.infer(ctx, request([][]byte{images[i%3]}, []string{hyp(i)}, nil, OutputScores))
		if err != nil {
			t.Fatal(err)
		}
		alone[i] = scores(t, output(t, resp, OutputScores))[0]
	}
	tol := 1e-5
	if testDevice() != "cpu" {
		tol = 2e-3
	}
	before := m.stagers[0].overlapped.Load()
	// A closed loop of more clients than a batch holds (16): while a batch computes, the others' requests
	// form the next one.
	got := make([][3]float32, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < n; i += clients {
				resp, err := m.infer(ctx, request([][]byte{images[i%3]}, []string{hyp(i)}, nil, OutputScores))
				if err != nil {
					errs <- err
					return
				}
				got[i] = scores(t, output(t, resp, OutputScores))[0]
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if d := maxDiff(got, alone); d > tol {
		t.Errorf("concurrent requests differ from alone by %g", d)
	}
	st := m.Stats()
	overlapped := m.stagers[0].overlapped.Load() - before
	t.Logf("%d requests: %d executions, %d batches staged while the previous one computed", n, st.ExecutionCount, overlapped)
	if overlapped == 0 {
		t.Error("no batch was staged while the instance computed: no early hand-off")
	}
}

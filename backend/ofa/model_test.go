package ofa

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ofaserve/ofaserve/backend"
)

const tol = 1e-4

func closeTo(a [3]float32, b []float64, eps float64) bool {
	if len(b) != 3 {
		return false
	}
	for k := range a {
		if math.Abs(float64(a[k])-b[k]) > eps {
			return false
		}
	}
	return true
}

// TestMatchesReference: a request of 3 images (one forward, ids padded to
// the longest row) and single requests give the Python reference's
// probabilities; RESULT and LABEL agree with SCORES.
func TestMatchesReference(t *testing.T) {
	t.Run("cpu", func(t *testing.T) { testMatchesReference(t, exportedConfig(t)) })
	// On a GPU box (scripts/gpu/gpu_check.sh) the same checks run on the device.
	dev := os.Getenv("OFASERVE_TEST_DEVICE")
	if gpu, ok := strings.CutPrefix(dev, "cuda:"); ok {
		t.Run(dev, func(t *testing.T) {
			testMatchesReference(t, exportedConfig(t, "count: 1 kind: KIND_CPU", "count: 1 kind: KIND_GPU gpus: [ "+gpu+" ]"))
		})
	}
}

func testMatchesReference(t *testing.T, pbtxt string) {
	m := mustLoad(t, pbtxt)
	imgs := testImages(t)
	dir := t.TempDir()
	names := []string{"rgb.png", "photo.jpg", "gray.png"}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), imgs[n], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	premise := "Two dogs are running on the grass, one of them carries a stick."
	hyps := []string{"there are two birds.", "An animal is outside", "the picture shows a very long and detailed description of a city street at night with many lights"}
	var cases []refCase
	for i, n := range names {
		cases = append(cases, refCase{Image: filepath.Join(dir, n), Hypothesis: hyps[i]})
	}
	for i, n := range names {
		cases = append(cases, refCase{Image: filepath.Join(dir, n), Hypothesis: hyps[i], Premise: &premise})
	}
	want := reference(t, cases)

	ctx := context.Background()
	var images [][]byte
	for _, n := range names {
		images = append(images, imgs[n])
	}
	// One request of n=3 without premise, one of n=3 with.
	for half, premises := range [][]string{nil, {premise, premise, premise}} {
		resp, err := m.Infer(ctx, request(images, hyps, premises))
		if err != nil {
			t.Fatal(err)
		}
		got := scores(t, output(t, resp, OutputScores))
		labels := elements(t, output(t, resp, OutputLabel))
		results := elements(t, output(t, resp, OutputResult))
		if len(got) != 3 || len(labels) != 3 || len(results) != 3 {
			t.Fatalf("outputs for n=3: %d scores, %d labels, %d results", len(got), len(labels), len(results))
		}
		if s := output(t, resp, OutputLabel).Shape; len(s) != 2 || s[0] != 3 || s[1] != 1 {
			t.Errorf("LABEL shape %v, want [3,1]", s)
		}
		for i := range 3 {
			w := want[half*3+i]
			if !closeTo(got[i], w.Probabilities, tol) {
				t.Errorf("case %d/%d: SCORES %v, reference %v", half, i, got[i], w.Probabilities)
			}
			if labels[i] != w.Label {
				t.Errorf("case %d/%d: LABEL %q, reference %q", half, i, labels[i], w.Label)
			}
			checkResult(t, results[i], got[i], labels[i])
		}
	}
	// Singles: the same numbers.
	for i, c := range cases {
		var premises []string
		if c.Premise != nil {
			premises = []string{*c.Premise}
		}
		resp, err := m.Infer(ctx, request([][]byte{imgs[names[i%3]]}, []string{c.Hypothesis}, premises, OutputScores))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Outputs) != 1 {
			t.Errorf("asked for SCORES only, got %d outputs", len(resp.Outputs))
		}
		if got := scores(t, output(t, resp, OutputScores))[0]; !closeTo(got, want[i].Probabilities, tol) {
			t.Errorf("single case %d: SCORES %v, reference %v", i, got, want[i].Probabilities)
		}
	}
}

// checkResult parses a RESULT element and checks it against the scores.
func checkResult(t *testing.T, js string, sc [3]float32, label string) {
	t.Helper()
	var r struct {
		Label      string             `json:"label"`
		Confidence float64            `json:"confidence"`
		AllScores  map[string]float64 `json:"all_scores"`
	}
	dec := json.NewDecoder(strings.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("RESULT %s: %v", js, err)
	}
	if r.Label != label {
		t.Errorf("RESULT label %q, LABEL %q", r.Label, label)
	}
	best := float32(0)
	for k, name := range []string{"entailment", "contradiction", "neutral"} {
		if v, ok := r.AllScores[name]; !ok || float32(v) != sc[k] {
			t.Errorf("RESULT all_scores[%s] = %v (present %v), SCORES %v", name, v, ok, sc[k])
		}
		best = max(best, sc[k])
	}
	if float32(r.Confidence) != best || len(r.AllScores) != 3 {
		t.Errorf("RESULT %s: confidence should be the top score %v", js, best)
	}
}

// TestConcurrentBatching: concurrent requests of different text lengths
// share forwards and each gets what it gets alone.
func TestConcurrentBatching(t *testing.T) {
	m := mustLoad(t, exportedConfig(t, "max_queue_delay_microseconds: 2000", "max_queue_delay_microseconds: 300000"))
	imgs := testImages(t)
	images := [][]byte{imgs["rgb.png"], imgs["photo.jpg"], imgs["gray.png"]}
	const n = 12
	hyp := func(i int) string { return strings.Repeat("a dog runs ", i+1) }
	ctx := context.Background()
	alone := make([][3]float32, n)
	for i := range n {
		resp, err := m.Infer(ctx, request([][]byte{images[i%3]}, []string{hyp(i)}, nil, OutputScores))
		if err != nil {
			t.Fatal(err)
		}
		alone[i] = scores(t, output(t, resp, OutputScores))[0]
	}
	before := m.Stats()
	var wg sync.WaitGroup
	got := make([][3]float32, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := m.Infer(ctx, request([][]byte{images[i%3]}, []string{hyp(i)}, nil, OutputScores))
			if err != nil {
				errs[i] = err
				return
			}
			got[i] = scores(t, output(t, resp, OutputScores))[0]
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		w := []float64{float64(alone[i][0]), float64(alone[i][1]), float64(alone[i][2])}
		if !closeTo(got[i], w, 1e-5) {
			t.Errorf("request %d: batched %v, alone %v", i, got[i], alone[i])
		}
	}
	after := m.Stats()
	execs := after.ExecutionCount - before.ExecutionCount
	if execs >= n || after.InferenceCount-before.InferenceCount != n {
		t.Errorf("%d concurrent requests ran in %d executions (inferences +%d); want batching", n, execs, after.InferenceCount-before.InferenceCount)
	}
}

// TestImageEncodings: raw bytes and every accepted base64 spelling of the
// same file give the same scores.
func TestImageEncodings(t *testing.T) {
	m := mustLoad(t, exportedConfig(t))
	raw := testImages(t)["photo.jpg"]
	std := base64.StdEncoding.EncodeToString(raw)
	var wrapped strings.Builder
	for i := 0; i < len(std); i += 76 {
		wrapped.WriteString(std[i:min(i+76, len(std))] + "\r\n")
	}
	variants := map[string]string{
		"std":      std,
		"raw std":  base64.RawStdEncoding.EncodeToString(raw),
		"url":      base64.URLEncoding.EncodeToString(raw),
		"raw url":  base64.RawURLEncoding.EncodeToString(raw),
		"wrapped":  wrapped.String(),
		"data url": "data:image/jpeg;base64," + std,
		"spaces":   "  \n" + std + "\n",
	}
	ctx := context.Background()
	resp, err := m.Infer(ctx, request([][]byte{raw}, []string{"a photo"}, nil, OutputScores))
	if err != nil {
		t.Fatal(err)
	}
	want := scores(t, output(t, resp, OutputScores))[0]
	for name, v := range variants {
		resp, err := m.Infer(ctx, request([][]byte{[]byte(v)}, []string{"a photo"}, nil, OutputScores))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := scores(t, output(t, resp, OutputScores))[0]; got != want {
			t.Errorf("%s: %v, raw bytes gave %v", name, got, want)
		}
	}
}

// TestShapes: [n] and [n,1] are both accepted, and outputs are [n,1]/[n,3].
func TestShapes(t *testing.T) {
	m := mustLoad(t, exportedConfig(t))
	img := testImages(t)["rgb.png"]
	req := request([][]byte{img, img}, []string{"x", "y"}, []string{"p", "q"})
	for i := range req.Inputs {
		req.Inputs[i].Shape = []int64{2}
	}
	resp, err := m.Infer(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if s := output(t, resp, OutputScores).Shape; len(s) != 2 || s[0] != 2 || s[1] != 3 {
		t.Errorf("SCORES shape %v", s)
	}
	if s := output(t, resp, OutputResult).Shape; len(s) != 2 || s[0] != 2 || s[1] != 1 {
		t.Errorf("RESULT shape %v", s)
	}
	if names := []string{resp.Outputs[0].Name, resp.Outputs[1].Name, resp.Outputs[2].Name}; strings.Join(names, ",") != "RESULT,LABEL,SCORES" {
		t.Errorf("outputs %v, want config order", names)
	}
}

// TestBadInput: every kind of bad request, refused by the repository's
// validation or by this kind, is a 400 (INVALID_ARG) naming the problem,
// and a good request afterwards still works.
func TestBadInput(t *testing.T) {
	m := mustLoad(t, exportedConfig(t))
	imgs := testImages(t)
	good := imgs["photo.jpg"]
	shp := []int64{1, 1}
	tests := []struct {
		name string
		req  *backend.Request
		want string
	}{
		{"unknown input", &backend.Request{Inputs: append(request([][]byte{good}, []string{"x"}, nil).Inputs, bytesTensor("TEXT", shp, []byte("x")))}, "unexpected inference input 'TEXT'"},
		{"duplicate input", &backend.Request{Inputs: append(request([][]byte{good}, []string{"x"}, nil).Inputs, bytesTensor(InputHypothesis, shp, []byte("x")))}, "input 'HYPOTHESIS' already exists"},
		{"missing hypothesis", &backend.Request{Inputs: []backend.Tensor{bytesTensor(InputImage, shp, good)}}, "expected number of inputs between 2 and 3 but got 1 inputs for model 'ofa_entailment'. Got input(s) ['IMAGE'], but missing required input(s) ['HYPOTHESIS']"},
		{"wrong datatype", &backend.Request{Inputs: []backend.Tensor{bytesTensor(InputImage, shp, good), {Name: InputHypothesis, Datatype: "UINT8", Shape: shp, Data: []byte("x")}}}, "data-type is 'UINT8'"},
		{"shape [1,2]", &backend.Request{Inputs: []backend.Tensor{bytesTensor(InputImage, []int64{1, 2}, good, good), bytesTensor(InputHypothesis, shp, []byte("x"))}}, "unexpected shape for input 'IMAGE' for model 'ofa_entailment'. Expected [-1,1], got [1,2]"},
		{"batch 0", &backend.Request{Inputs: []backend.Tensor{bytesTensor(InputImage, []int64{0}), bytesTensor(InputHypothesis, []int64{0})}}, "inference request batch-size must be >= 1 for 'ofa_entailment'"},
		{"batch 17", request(repeat(good, 17), repeatS("x", 17), nil), "batch-size must be <= 16"},
		{"batch mismatch", &backend.Request{Inputs: []backend.Tensor{bytesTensor(InputImage, []int64{2, 1}, good, good), bytesTensor(InputHypothesis, shp, []byte("x"))}}, "batch size does not match"},
		{"too few elements", &backend.Request{Inputs: []backend.Tensor{bytesTensor(InputImage, []int64{2, 1}, good), bytesTensor(InputHypothesis, []int64{2, 1}, []byte("x"), []byte("y"))}}, "unexpected number of string elements 1 for inference input 'IMAGE' for model 'ofa_entailment', expecting 2"},
		{"malformed bytes", &backend.Request{Inputs: []backend.Tensor{{Name: InputImage, Datatype: "BYTES", Shape: shp, Data: []byte{9, 0, 0, 0, 1}}, bytesTensor(InputHypothesis, shp, []byte("x"))}}, "malformed BYTES data"},
		{"unknown output", request([][]byte{good}, []string{"x"}, nil, "LOGITS"), "unexpected inference output 'LOGITS'"},
		{"empty image", request([][]byte{{}}, []string{"x"}, nil), "IMAGE[0]: image: empty input"},
		{"truncated jpeg", request([][]byte{good[:len(good)*2/3]}, []string{"x"}, nil), "IMAGE[0]: image: decoding JPEG"},
		{"corrupt png", request([][]byte{corruptPNG(imgs["rgb.png"])}, []string{"x"}, nil), "IMAGE[0]: image: decoding PNG"},
		{"unsupported", request([][]byte{[]byte("%PDF-1.4 not an image at all")}, []string{"x"}, nil), "IMAGE[0]: unsupported image format"},
		{"bad base64", request([][]byte{[]byte("abcde")}, []string{"x"}, nil), "IMAGE[0]: image: the element is base64 text but does not decode"},
		{"bomb header", request([][]byte{pngHeader(50000, 50000)}, []string{"x"}, nil), "IMAGE[0]: image too large: 50000x50000"},
		{"bomb header base64", request([][]byte{[]byte(base64.StdEncoding.EncodeToString(pngHeader(50000, 50000)))}, []string{"x"}, nil), "IMAGE[0]: image too large: 50000x50000"},
		{"second image bad", request([][]byte{good, []byte("garbage!")}, []string{"x", "y"}, nil), "IMAGE[1]: "},
		{"non-UTF-8 hypothesis", request([][]byte{good}, []string{"caf\xe9"}, nil), "HYPOTHESIS[0]: prompt: hypothesis: text is not valid UTF-8"},
		{"non-UTF-8 premise", request([][]byte{good, good}, []string{"x", "y"}, []string{"ok", "\xff\xfe"}), "PREMISE[1]: prompt: premise: text is not valid UTF-8"},
		{"1 MB hypothesis", request([][]byte{good}, []string{strings.Repeat("word ", 200000)}, nil), "HYPOTHESIS[0]: prompt: hypothesis: text is too long: 1000000 bytes"},
		{"empty hypothesis", request([][]byte{good}, []string{"?!..."}, nil), "HYPOTHESIS[0]: prompt: hypothesis: text is empty"},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.infer(ctx, tt.req)
			var be *backend.Error
			if !errors.As(err, &be) || be.Code != backend.CodeInvalidArg {
				t.Fatalf("err = %v, want INVALID_ARG", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to contain %q", err, tt.want)
			}
		})
	}
	if st := m.Stats(); st.ExecutionCount != 0 {
		t.Errorf("bad requests reached the batcher: %d executions", st.ExecutionCount)
	}
	if _, err := m.Infer(ctx, request([][]byte{good}, []string{"x"}, nil)); err != nil {
		t.Errorf("good request after bad ones: %v", err)
	}
}

func repeat(b []byte, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

func repeatS(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// corruptPNG flips bytes in the middle of the compressed data.
func corruptPNG(p []byte) []byte {
	c := append([]byte(nil), p...)
	for i := len(c) / 2; i < len(c)/2+16 && i < len(c)-12; i++ {
		c[i] ^= 0x5a
	}
	return c
}

// TestLoadErrors: configs and metadata this kind cannot serve are refused
// at load time with a reason.
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		replace []string
		want    string
	}{
		{"bad input name", []string{`name: "HYPOTHESIS"`, `name: "TEXT"`}, "input 'TEXT' is not an ofa input"},
		{"image optional", []string{`{ name: "IMAGE" data_type: TYPE_STRING dims: [ 1 ] }`, `{ name: "IMAGE" data_type: TYPE_STRING dims: [ 1 ] optional: true }`}, "cannot be optional"},
		{"scores dims", []string{`dims: [ 3 ]`, `dims: [ 4 ]`}, "output 'SCORES' must be TYPE_FP32 with dims [3]"},
		{"missing metadata", []string{`string_value: "ofa_meta.json"`, `string_value: "nope.json"`}, "nope.json"},
		{"bad parameter", []string{`parameters {`, `parameters { key: "max_text_bytes" value: { string_value: "lots" } }
parameters {`}, "parameter 'max_text_bytes'"},
		{"bad thread parameter", []string{`parameters {`, `parameters { key: "INTER_OP_THREAD_COUNT" value: { string_value: "many" } }
parameters {`}, "parameter 'INTER_OP_THREAD_COUNT': 'many' is not an integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, exportedConfig(t, tt.replace...))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestParameters: max_text_bytes and max_image_pixels from the config apply.
func TestParameters(t *testing.T) {
	m := mustLoad(t, exportedConfig(t, `parameters {`, `parameters { key: "max_text_bytes" value: { string_value: "10" } }
parameters { key: "max_image_pixels" value: { string_value: "100" } }
parameters {`))
	img := testImages(t)["rgb.png"]
	ctx := context.Background()
	// (An image within max_image_pixels: one over it is refused from its header before the text is read.)
	if _, err := m.Infer(ctx, request([][]byte{pngHeader(5, 5)}, []string{"eleven char"}, nil)); err == nil || !strings.Contains(err.Error(), "limit is 10 bytes") {
		t.Errorf("11-byte hypothesis with max_text_bytes 10: %v", err)
	}
	if _, err := m.Infer(ctx, request([][]byte{img}, []string{"short"}, nil)); err == nil || !strings.Contains(err.Error(), "97x41 exceeds the limit of 100 pixels") {
		t.Errorf("97x41 image with max_image_pixels 100: %v", err)
	}
}

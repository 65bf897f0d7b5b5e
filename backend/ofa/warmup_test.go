package ofa

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/backend/ofa/ofatest"
)

// TestWarmup is item 4 in the kind: Warmup runs one batch of every bucket on every instance, then each
// model_warmup sample Count times on every instance, outside the batcher; warmup_buckets "false" leaves
// the buckets out; a sample that fails names itself and the instance.
func TestWarmup(t *testing.T) {
	two := []string{"count: 1 kind: KIND_CPU", "count: 2 kind: KIND_CPU"}
	grid := withParams(ParamBucketBatchSizes, "1,2", ParamBucketTextLengths, "8,16")
	log, buf := logBuffer()
	m, err := loadFrom(t, testRepo, exportedConfig(t, append(two, grid...)...), log)
	if err != nil {
		t.Fatal(err)
	}
	img := testImages(t)["photo.jpg"]
	sample := backend.WarmupSample{Name: "photo", Count: 2, Request: request([][]byte{img, img}, []string{"a", "b"}, nil)}
	ctx := context.Background()
	if err := m.Warmup(ctx, []backend.WarmupSample{sample}); err != nil {
		t.Fatal(err)
	}
	for i, s := range m.stagers {
		st := s.st.Stats()
		// 4 buckets, then the sample twice.
		if st.Staged != 6 || st.EagerForwards != 6 {
			t.Errorf("instance %d: %d staged, %d forwards; want 4 buckets + 2 sample runs", i, st.Staged, st.EagerForwards)
		}
	}
	if !strings.Contains(buf.String(), `msg="ofa buckets warmed" buckets=4 instances=2`) {
		t.Errorf("warm-up log:\n%s", buf.String())
	}
	if st := m.Stats(); st.ExecutionCount != 0 || st.InferenceCount != 0 {
		t.Errorf("warm-up ran through the batcher: %+v", st)
	}

	off, err := load(t, exportedConfig(t, append(grid, withParams(ParamWarmupBuckets, "false")...)...))
	if err != nil {
		t.Fatal(err)
	}
	if err := off.Warmup(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if st := off.stagers[0].st.Stats(); st.Staged != 0 {
		t.Errorf("warmup_buckets false: %d batches staged", st.Staged)
	}
	bad := backend.WarmupSample{Name: "broken", Count: 1, Request: request([][]byte{[]byte("not an image")}, []string{"a"}, nil)}
	if err := off.Warmup(ctx, []backend.WarmupSample{bad}); err == nil ||
		!strings.Contains(err.Error(), "warm-up sample 'broken' (run 1 of 1) on instance 0 (cpu)") ||
		!strings.Contains(err.Error(), "IMAGE[0]") {
		t.Errorf("bad sample: %v", err)
	}
}

// TestPrecision is item 5: one fp32 export served in bfloat16 (parameter precision) gives the fp32
// scores within bfloat16's resolution (8 bits of mantissa: the logits move by ~1e-2, the probabilities
// by less); float16 loads too; an unknown precision is refused.
func TestPrecision(t *testing.T) {
	fp32 := mustLoad(t, deviceConfig(t))
	bf16 := mustLoad(t, deviceConfig(t, withParams("precision", "bfloat16")...))
	if bf16.precision.String() != "bfloat16" {
		t.Fatalf("precision %v", bf16.precision)
	}
	imgs := testImages(t)
	images := [][]byte{imgs["rgb.png"], imgs["photo.jpg"], imgs["gray.png"]}
	hyps := []string{"two birds", "a dog runs in the park", "nothing"}
	ctx := context.Background()
	a, err := fp32.infer(ctx, request(images, hyps, nil, OutputScores))
	if err != nil {
		t.Fatal(err)
	}
	b, err := bf16.infer(ctx, request(images, hyps, nil, OutputScores))
	if err != nil {
		t.Fatal(err)
	}
	d := maxDiff(scores(t, output(t, a, OutputScores)), scores(t, output(t, b, OutputScores)))
	t.Logf("bf16 vs fp32 on %s: max |scores difference| = %g", testDevice(), d)
	if d > bf16Tolerance || d == 0 {
		t.Errorf("bf16 scores differ from fp32 by %g (bound %g; 0 means no conversion happened)", d, bf16Tolerance)
	}
	if _, err := load(t, exportedConfig(t, withParams("precision", "int4")...)); err == nil ||
		!strings.Contains(err.Error(), "parameter 'precision': unknown value 'int4'") {
		t.Errorf("precision int4: %v", err)
	}
}

// bf16Tolerance bounds |bf16 - fp32| of the probabilities of the test model (stated in models/README.md):
// bfloat16 keeps 8 significant bits; the CPU measures 1.8e-4 on it, the bound leaves room for GPU kernels.
const bf16Tolerance = 5e-3

// TestBucketParameters: the bucket and graph parameters are checked at load with a reason.
func TestBucketParameters(t *testing.T) {
	for _, tt := range []struct {
		kv   []string
		want string
	}{
		{[]string{ParamBucketBatchSizes, "0,2"}, "parameter 'bucket_batch_sizes': bucket: \"0,2\": value 0 is below 1"},
		{[]string{ParamBucketBatchSizes, "1,32"}, "parameter 'bucket_batch_sizes': 32 exceeds max_batch_size (16)"},
		{[]string{ParamBucketTextLengths, "8,4"}, "not strictly ascending"},
		{[]string{ParamBucketTextLengths, "2,8"}, "parameter 'bucket_text_lengths': 2 is shorter than any prompt"},
		{[]string{ParamBucketTextLengths, "64,9999"}, "parameter 'bucket_text_lengths': 9999 exceeds the longest id row the model's prompts make (258)"},
		{[]string{ParamCUDAGraphs, "maybe"}, "parameter 'cuda_graphs': 'maybe' is not a boolean"},
		{[]string{ParamWarmupBuckets, "2"}, "parameter 'warmup_buckets': '2' is not a boolean"},
	} {
		if _, err := load(t, exportedConfig(t, withParams(tt.kv...)...)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want %q", tt.kv, err, tt.want)
		}
	}
	m := mustLoad(t, exportedConfig(t))
	if got := m.bc.set.Shapes(); len(got) != 5*4 || got[0].Batch != 16 || got[0].Length != 258 {
		t.Errorf("default buckets %v: want 1,2,4,8,16 x 32,64,128,258", got)
	}
}

// TestPromptOverride: a configuration.json prompt with one field (written by the exporter as the
// override, both templates from it) loads and serves as ModelScope formats it: with a premise, the
// premise fills the one field and the hypothesis is left out.
func TestPromptOverride(t *testing.T) {
	repo := t.TempDir()
	dir, err := ofatest.CopyRepo(testRepo, repo, "ofa_entailment")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "1", "ofa_meta.json")
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	if err := json.Unmarshal(raw, &md); err != nil {
		t.Fatal(err)
	}
	md["prompt_override"] = ` does the image describe " {} "?`
	md["prompt_with_premise"] = ` does the image describe " {premise} "?`
	md["prompt_without_premise"] = ` does the image describe " {hypothesis} "?`
	raw, _ = json.Marshal(md)
	if err := os.Remove(file); err != nil { // a hard link to the cached export: replace, never write through
		t.Fatal(err)
	}
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := loadFrom(t, repo, exportedConfig(t), nil)
	if err != nil {
		t.Fatalf("a one-field prompt override must load: %v", err)
	}
	img := testImages(t)["photo.jpg"]
	ctx := context.Background()
	withPremise, err := m.infer(ctx, request([][]byte{img}, []string{"ignored hypothesis"}, []string{"two dogs run"}, OutputScores))
	if err != nil {
		t.Fatal(err)
	}
	alone, err := m.infer(ctx, request([][]byte{img}, []string{"two dogs run"}, nil, OutputScores))
	if err != nil {
		t.Fatal(err)
	}
	a, b := scores(t, output(t, withPremise, OutputScores))[0], scores(t, output(t, alone, OutputScores))[0]
	for k := range a {
		if math.Float32bits(a[k]) != math.Float32bits(b[k]) {
			t.Fatalf("premise request %v, hypothesis-only request with the premise's text %v: want the same prompt", a, b)
		}
	}
}

package libtorch

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/backend/ofa/ofatest"
	"github.com/ofaserve/ofaserve/internal/testenv"
	"github.com/ofaserve/ofaserve/repository"
)

// TestOFAExportBFloat16 serves the exported micro OFA module (ofa_entailment_raw: the real architecture,
// whose forward index_selects with an int64 answer-ids buffer) with parameter precision: bfloat16, and
// compares its logits with PyTorch running the same module and inputs in bfloat16.
func TestOFAExportBFloat16(t *testing.T) {
	repo, err := ofatest.Export()
	if err != nil {
		t.Fatal(err)
	}
	modelDir, err := ofatest.CopyRepo(repo, t.TempDir(), "ofa_entailment_raw")
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(modelDir, "config.pbtxt"))
	if err != nil {
		t.Fatal(err)
	}
	text = append(text, "\nparameters { key: \"precision\" value: { string_value: \"bfloat16\" } }\n"...)
	cfg, err := repository.ParseConfig("config.pbtxt", text)
	if err != nil {
		t.Fatal(err)
	}
	if err := repository.Normalize("config.pbtxt", "ofa_entailment_raw", cfg, 0); err != nil {
		t.Fatal(err)
	}
	dims := cfg.GetInput()[0].GetDims() // [3, H, W]
	if len(dims) != 3 {
		t.Fatalf("IMAGE dims %v", dims)
	}
	const rows = 2
	ids := []int64{0, 8, 1437, 3, 2776, 5, 42, 2, // bos ... eos
		0, 64, 9, 311, 2, 1, 1, 1} // shorter, padded with pad id 1
	image := make([]float32, rows*int(dims[0]*dims[1]*dims[2]))
	for i := range image {
		image[i] = float32(math.Sin(float64(i) * 0.37)) // normalized pixels lie in [-1, 1]
	}
	m, err := Load(context.Background(), backend.LoadSpec{Name: "ofa_entailment_raw", Version: 1,
		VersionDir: filepath.Join(modelDir, "1"), Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	resp, err := m.Infer(context.Background(), &backend.Request{Inputs: []backend.Tensor{
		{Name: "IMAGE", Datatype: "FP32", Shape: append([]int64{rows}, dims...), Data: f32(image...)},
		{Name: "INPUT_IDS", Datatype: "INT64", Shape: []int64{rows, int64(len(ids) / rows)}, Data: i64(ids...)},
	}})
	if err != nil {
		t.Fatalf("bfloat16 forward: %v", err)
	}
	if len(resp.Outputs) != 1 || resp.Outputs[0].Datatype != "FP32" || len(resp.Outputs[0].Data) != 4*rows*3 {
		t.Fatalf("outputs %+v", resp.Outputs)
	}
	got := floats(resp.Outputs[0].Data)

	in, err := json.Marshal(map[string]any{"precision": "bfloat16", "image": image, "image_shape": append([]int64{rows}, dims...),
		"ids": ids, "ids_shape": []int{rows, len(ids) / rows}})
	if err != nil {
		t.Fatal(err)
	}
	inFile := filepath.Join(t.TempDir(), "inputs.json")
	if err := os.WriteFile(inFile, in, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testenv.Python(), filepath.Join("testdata", "ofa_reference.py"),
		filepath.Join(modelDir, "1", "model.pt"), inFile).Output()
	if err != nil {
		t.Fatalf("ofa_reference.py: %v", err)
	}
	var ref map[string][]float64
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatal(err)
	}
	want, want32 := ref["bfloat16"], ref["float32"]
	if len(want) != len(got) || len(want32) != len(got) {
		t.Fatalf("reference has %d bfloat16 and %d float32 logits, want %d", len(want), len(want32), len(got))
	}
	// Random-init logits are small (about 0.1): bound differences by the logits' own scale.
	scale := 0.0
	for _, w := range want32 {
		scale = max(scale, math.Abs(w))
	}
	for i, g := range got {
		// Python's bfloat16 run: within a couple of bfloat16 steps (8 significant bits) of the scale.
		if d := math.Abs(float64(g) - want[i]); d > scale/128 {
			t.Errorf("logit %d: %v, PyTorch bfloat16 says %v", i, g, want[i])
		}
		// The float32 run: bfloat16 loses precision through the whole network, not meaning.
		if d := math.Abs(float64(g) - want32[i]); d > scale/10 {
			t.Errorf("logit %d: %v, far from PyTorch float32's %v", i, g, want32[i])
		}
	}
	t.Logf("bfloat16 %v; PyTorch bfloat16 %v, float32 %v", got, want, want32)
}

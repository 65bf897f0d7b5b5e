package ofa

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// exportedMeta is an ofa_meta.json as scripts/export_ofa.py writes it (tiny config), model_config cut to
// the two table sizes the server reads.
const exportedMeta = `{"format_version": 1, "image_size": [256, 256], "resample": "bicubic",
"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
"prompt_with_premise": " can image and text1 \" {premise} \" imply text2 \" {hypothesis} \"?",
"prompt_without_premise": " does the image describe \" {hypothesis} \"?", "text_normalization": "ofa_pre_caption",
"bos_id": 0, "pad_id": 1, "eos_id": 2, "labels": ["entailment", "contradiction", "neutral"],
"max_text_length": 1024, "max_src_length": 256, "scoring": "traverse", "vocab_file": "vocab.json",
"merges_file": "merges.txt", "vocab_size": 59457, "model_file": "model.pt",
"model_config": {"vocab_size": 59457, "max_position_embeddings": 1024}}`

// TestMetaTableSizes: the ofa kind's own ids and rows must fit the module's tables; a metadata file whose
// tokenizer or text length outgrows them fails the load instead of failing batches.
func TestMetaTableSizes(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(map[string]any)
		msg  string // "" -> loads
	}{
		{"as exported", func(map[string]any) {}, ""},
		{"no model_config", func(m map[string]any) { delete(m, "model_config") }, ""},
		{"tokenizer larger than the embedding", func(m map[string]any) { m["vocab_size"] = 60000 },
			"vocab_size 60000 is larger than the module's embedding (model_config.vocab_size 59457)"},
		{"text longer than the positions", func(m map[string]any) { m["max_text_length"] = 2000 },
			"max_text_length 2000 is longer than the module's position table (model_config.max_position_embeddings 1024)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal([]byte(exportedMeta), &m); err != nil {
				t.Fatal(err)
			}
			tc.edit(m)
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "ofa_meta.json")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			md, err := readMeta(path)
			if tc.msg == "" {
				if err != nil {
					t.Fatal(err)
				}
				// [bos] + MaxTokens + [eos] must fit the position table.
				cfg, err := md.Meta.Config()
				if err != nil || cfg.MaxTokens+2 > 1024 {
					t.Fatalf("MaxTokens %d (%v): rows would outgrow 1024 positions", cfg.MaxTokens, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %q", err, tc.msg)
			}
		})
	}
}

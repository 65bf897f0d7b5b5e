package prompt

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ofaserve/ofaserve/internal/testenv"
)

// metaCases are requests whose texts exercise every limit: long texts (over max_src_length words and
// tokens), texts the templates would normalise, premises and none.
func metaCases() [][2]*string {
	str := func(s string) *string { return &s }
	long := strings.Repeat("Two Dogs-play in the park, ", 70) // 420 words
	var cases [][2]*string
	for _, h := range []string{"Two dogs play.", "There are two birds.", long, "  A  man/woman <person> rides a horse!  ", "one two three four five six seven"} {
		cases = append(cases, [2]*string{nil, str(h)})
		for _, p := range []string{"There are two dogs.", long, "...a premise  with\tspaces"} {
			cases = append(cases, [2]*string{str(p), str(h)})
		}
	}
	return cases
}

// TestMetaMatchesPython: for exported metadata (the defaults, word limits below and above the texts, a
// token cap from the position table, and each kind of configuration.json prompt override), the Builder
// made from Meta.Config produces the prompt text and the ids that the exporter's Python path
// (scripts/ofa/prompts.py) produces, for every request of metaCases.
func TestMetaMatchesPython(t *testing.T) {
	const (
		with    = ` can image and text1 " {premise} " imply text2 " {hypothesis} "?`
		without = ` does the image describe " {hypothesis} "?`
	)
	str := func(s string) *string { return &s }
	metas := []struct {
		name string
		meta Meta
	}{
		{"defaults", Meta{with, without, nil, 256, 1024}},
		{"max_src_length 5", Meta{with, without, nil, 5, 1024}},
		{"max_src_length 30", Meta{with, without, nil, 30, 1024}},
		{"position table caps tokens", Meta{with, without, nil, 256, 20}},
		{"no max_src_length", Meta{with, without, nil, 0, 1024}},
		{"one-field override", Meta{` does the image describe " {premise} "?`, ` does the image describe " {hypothesis} "?`, str(` does the image describe " {} "?`), 12, 1024}},
		{"two-field override", Meta{`{hypothesis} given {premise}`, without, str(`{1} given {0}`), 256, 1024}},
		{"constant override", Meta{`is this {{it}}?`, `is this {{it}}?`, str(`is this {{it}}?`), 256, 1024}},
	}
	cases := metaCases()
	for _, mc := range metas {
		t.Run(mc.name, func(t *testing.T) {
			var want []struct {
				Prompt string  `json:"prompt"`
				IDs    []int64 `json:"ids"`
			}
			metaJSON := map[string]any{
				"prompt_with_premise": mc.meta.PromptWithPremise, "prompt_without_premise": mc.meta.PromptWithoutPremise,
				"prompt_override": mc.meta.PromptOverride, "max_src_length": mc.meta.MaxSrcLength,
				"max_text_length": mc.meta.MaxTextLength, "bos_id": 0, "eos_id": 2,
			}
			runMetaRef(t, map[string]any{"meta": metaJSON, "cases": cases}, &want)
			if len(want) != len(cases) {
				t.Fatalf("python returned %d results for %d cases", len(want), len(cases))
			}
			cfg, err := mc.meta.Config()
			if err != nil {
				t.Fatal(err)
			}
			b := newBuilder(t, cfg)
			for i, c := range cases {
				premise := ""
				if c[0] != nil {
					premise = *c[0]
				}
				text, err := b.Prompt(premise, *c[1])
				if err != nil {
					t.Fatalf("case %d: %v", i, err)
				}
				if text != want[i].Prompt {
					t.Errorf("case %d prompt:\n go     %.120q\n python %.120q", i, text, want[i].Prompt)
				}
				ids, err := b.Build(premise, *c[1])
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ids, want[i].IDs) {
					t.Errorf("case %d: %d ids from Go, %d from Python:\n go     %v\n python %v", i, len(ids), len(want[i].IDs), ids, want[i].IDs)
				}
			}
		})
	}
}

func runMetaRef(t *testing.T, in, out any) {
	t.Helper()
	var stdin, stderr bytes.Buffer
	if err := json.NewEncoder(&stdin).Encode(in); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.Python(), filepath.Join("testdata", "meta_ref.py"))
	cmd.Stdin, cmd.Stderr = &stdin, &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("meta_ref.py: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("meta_ref.py: bad JSON: %v", err)
	}
}

// TestMetaConfig: the limits and templates Meta.Config derives, and what it refuses.
func TestMetaConfig(t *testing.T) {
	override := "x {}"
	cfg, err := Meta{"{premise} / {hypothesis} {{literal}}", "{hypothesis}", &override, 300, 200}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PremiseTemplate != "{0} / {1} {{literal}}" || cfg.Template != "{0}" || cfg.MaxWords != 300 || cfg.MaxTokens != 198 || !cfg.AllowUnused {
		t.Errorf("Config = %+v", cfg)
	}
	cfg, _ = Meta{"{premise} {hypothesis}", "{hypothesis}", nil, 0, 50}.Config()
	if cfg.MaxWords != -1 || cfg.MaxTokens != 48 || cfg.AllowUnused {
		t.Errorf("Config without max_src_length = %+v", cfg)
	}
	for _, c := range []struct {
		meta Meta
		want string
	}{
		{Meta{"", "{hypothesis}", nil, 5, 50}, "prompt_with_premise and prompt_without_premise are required"},
		{Meta{"a", "b", nil, -1, 50}, "max_src_length must not be negative"},
		{Meta{"a", "b", nil, 5, 2}, "max_text_length must be at least 3"},
	} {
		if _, err := c.meta.Config(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Config(%+v) = %v, want %q", c.meta, err, c.want)
		}
	}
	// Without an override, a template that drops the hypothesis is still refused by New.
	cfg, _ = Meta{"{premise} only", "{hypothesis}", nil, 5, 50}.Config()
	if _, err := New(ofaTokenizer(t), cfg); err == nil || !strings.Contains(err.Error(), "does not use argument 1") {
		t.Errorf("New with a premise template that drops the hypothesis: %v", err)
	}
	// With one (configuration.json's prompt), it is what ModelScope does.
	cfg.AllowUnused = true
	b, err := New(ofaTokenizer(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Prompt("A Lake", "Water"); err != nil || got != "a lake only" {
		t.Errorf("Prompt = %q, %v", got, err)
	}
}

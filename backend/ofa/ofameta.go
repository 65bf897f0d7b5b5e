package ofa

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// DefaultMetadataFile is the metadata file read when the config has no
// "metadata_file" parameter.
const DefaultMetadataFile = "ofa_meta.json"

// meta is the part of ofa_meta.json (written by scripts/export_ofa.py, every
// key documented in models/README.md) that serving needs.
type meta struct {
	FormatVersion        int       `json:"format_version"`
	ImageSize            []int     `json:"image_size"` // [H, W]
	Resample             string    `json:"resample"`
	Mean                 []float32 `json:"mean"`
	Std                  []float32 `json:"std"`
	PromptWithPremise    string    `json:"prompt_with_premise"`
	PromptWithoutPremise string    `json:"prompt_without_premise"`
	TextNormalization    string    `json:"text_normalization"`
	BosID                *int64    `json:"bos_id"`
	PadID                *int64    `json:"pad_id"`
	EosID                *int64    `json:"eos_id"`
	Labels               []string  `json:"labels"`
	MaxTextLength        int       `json:"max_text_length"`
	MaxSrcLength         int       `json:"max_src_length"`
	VocabFile            string    `json:"vocab_file"`
	MergesFile           string    `json:"merges_file"`
	VocabSize            int       `json:"vocab_size"`
	ModelFile            string    `json:"model_file"`
}

// readMeta reads and checks a metadata file.
func readMeta(path string) (*meta, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m meta
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &m, nil
}

func (m *meta) check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if m.FormatVersion != 1 {
		bad("format_version is %d; this server reads version 1", m.FormatVersion)
	}
	if len(m.ImageSize) != 2 || m.ImageSize[0] <= 0 || m.ImageSize[1] <= 0 || m.ImageSize[0] > 4096 || m.ImageSize[1] > 4096 {
		bad("image_size must be [H, W] with 1..4096 pixels each, got %v", m.ImageSize)
	}
	if m.Resample != "bicubic" {
		bad("resample %q is not supported (only bicubic)", m.Resample)
	}
	if len(m.Mean) != 3 || len(m.Std) != 3 {
		bad("mean and std need 3 values each, got %v and %v", m.Mean, m.Std)
	}
	if m.TextNormalization != "ofa_pre_caption" {
		bad("text_normalization %q is not supported (only ofa_pre_caption)", m.TextNormalization)
	}
	if m.PromptWithPremise == "" || m.PromptWithoutPremise == "" {
		bad("prompt_with_premise and prompt_without_premise are required")
	}
	if m.BosID == nil || m.PadID == nil || m.EosID == nil {
		bad("bos_id, pad_id and eos_id are required")
	}
	if len(m.Labels) != 3 {
		bad("labels must name the module's 3 outputs, got %v", m.Labels)
	}
	if m.MaxTextLength < 3 {
		bad("max_text_length must be at least 3, got %d", m.MaxTextLength)
	}
	if m.MaxSrcLength < 0 {
		bad("max_src_length must not be negative, got %d", m.MaxSrcLength)
	}
	if m.VocabFile == "" || m.MergesFile == "" {
		bad("vocab_file and merges_file are required")
	}
	if m.ModelFile == "" {
		m.ModelFile = "model.pt"
	}
	for _, f := range []string{m.VocabFile, m.MergesFile, m.ModelFile} {
		if strings.ContainsAny(f, `/\`) || f == ".." {
			bad("file name %q must not contain a path", f)
		}
	}
	return errors.Join(errs...)
}

// maxTokens is the prompt's BPE-id budget before bos and eos: ModelScope's
// max_src_length, capped so that no row exceeds the module's position table.
func (m *meta) maxTokens() int {
	n := m.MaxSrcLength
	if n == 0 || n > m.MaxTextLength-2 {
		n = m.MaxTextLength - 2
	}
	return n
}

// positional rewrites a template with named fields ("{premise}",
// "{hypothesis}") into the positional form preprocess/prompt parses, the
// names mapped to indices by order; "{{" and "}}" escapes are kept. A field
// it does not know is left as is, for the prompt package to refuse.
func positional(tmpl string, names ...string) string {
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		if (c == '{' || c == '}') && i+1 < len(tmpl) && tmpl[i+1] == c {
			b.WriteString(tmpl[i : i+2])
			i++
			continue
		}
		if c == '{' {
			if end := strings.IndexByte(tmpl[i:], '}'); end > 0 {
				if k := indexOf(names, tmpl[i+1:i+end]); k >= 0 {
					fmt.Fprintf(&b, "{%d}", k)
					i += end
					continue
				}
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

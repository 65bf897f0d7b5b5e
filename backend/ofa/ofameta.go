package ofa

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ofaserve/ofaserve/preprocess/prompt"
)

// DefaultMetadataFile is the metadata file read when the config has no
// "metadata_file" parameter.
const DefaultMetadataFile = "ofa_meta.json"

// meta is the part of ofa_meta.json (written by scripts/export_ofa.py, every
// key documented in models/README.md) that serving needs; the prompt keys
// are preprocess/prompt's Meta, which turns them into the prompt
// configuration ModelScope's preprocessor would use.
type meta struct {
	prompt.Meta
	FormatVersion     int       `json:"format_version"`
	ImageSize         []int     `json:"image_size"` // [H, W]
	Resample          string    `json:"resample"`
	Mean              []float32 `json:"mean"`
	Std               []float32 `json:"std"`
	TextNormalization string    `json:"text_normalization"`
	BosID             *int64    `json:"bos_id"`
	PadID             *int64    `json:"pad_id"`
	EosID             *int64    `json:"eos_id"`
	Labels            []string  `json:"labels"`
	Scoring           string    `json:"scoring"`
	VocabFile         string    `json:"vocab_file"`
	MergesFile        string    `json:"merges_file"`
	VocabSize         int       `json:"vocab_size"`
	ModelFile         string    `json:"model_file"`
	// ModelConfig is the exporter's record of the module's architecture; only its table sizes are read.
	ModelConfig struct {
		VocabSize             int `json:"vocab_size"`
		MaxPositionEmbeddings int `json:"max_position_embeddings"`
	} `json:"model_config"`
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
	if _, err := m.Meta.Config(); err != nil {
		errs = append(errs, err)
	}
	if m.BosID == nil || m.PadID == nil || m.EosID == nil {
		bad("bos_id, pad_id and eos_id are required")
	}
	if len(m.Labels) != 3 {
		bad("labels must name the module's 3 outputs, got %v", m.Labels)
	}
	// The module scores the three answers in one pass (ModelScope's "traverse"); an older export has no
	// scoring key and scores the same way.
	if m.Scoring != "" && m.Scoring != "traverse" {
		bad("scoring %q is not supported (this server scores the three answers in one pass: traverse)", m.Scoring)
	}
	if m.VocabFile == "" || m.MergesFile == "" {
		bad("vocab_file and merges_file are required")
	}
	// The ofa kind tokenizes itself, so its ids are valid when the tokenizer fits the module's embedding,
	// and its rows ([bos] + at most max_text_length-2 ids + [eos], prompt.Meta.Config) fit the position
	// table. An export without model_config is taken on trust.
	if mc := m.ModelConfig; mc.VocabSize > 0 && m.VocabSize > mc.VocabSize {
		bad("vocab_size %d is larger than the module's embedding (model_config.vocab_size %d): token ids would be out of range", m.VocabSize, mc.VocabSize)
	}
	if mc := m.ModelConfig; mc.MaxPositionEmbeddings > 0 && m.MaxTextLength > mc.MaxPositionEmbeddings {
		bad("max_text_length %d is longer than the module's position table (model_config.max_position_embeddings %d)", m.MaxTextLength, mc.MaxPositionEmbeddings)
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

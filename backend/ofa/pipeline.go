package ofa

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/preprocess"
	"github.com/ofaserve/ofaserve/preprocess/bpe"
	"github.com/ofaserve/ofaserve/preprocess/prompt"
)

// Pipeline is this kind's request preparation and answer building without a module: what a kind that
// stands in for the OFA forward (backend/simulated) reuses so that decoding, resizing, tokenizing and the
// outputs run exactly as they do here.
type Pipeline struct{ m *Model }

// Prepared is one request as Pipeline.Prepare built it.
type Prepared struct{ p *prepared }

// N is the request's batch size; Length the longest prompt in tokens ([bos]+ids+[eos]).
func (p *Prepared) N() int { return p.p.n }

// Length is the request's longest prompt in tokens.
func (p *Prepared) Length() int {
	l := 0
	for _, ids := range p.p.ids {
		l = max(l, len(ids))
	}
	return l
}

// IDs are the request's prompts as token ids, one row per element.
func (p *Prepared) IDs() [][]int64 { return p.p.ids }

// NewPipeline reads ofa_meta.json and the tokenizer from spec's version folder and checks spec's config
// tensors the way Load does; it loads no module.
func NewPipeline(spec backend.LoadSpec) (*Pipeline, error) {
	cfg := spec.Config
	params := cfg.GetParameters()
	metaFile := DefaultMetadataFile
	if p, ok := params["metadata_file"]; ok && p.GetStringValue() != "" {
		metaFile = p.GetStringValue()
	}
	md, err := readMeta(filepath.Join(spec.VersionDir, metaFile))
	if err != nil {
		return nil, fmt.Errorf("ofa metadata: %w", err)
	}
	m := &Model{name: spec.Name, h: md.ImageSize[0], w: md.ImageSize[1], padID: *md.PadID, bosID: *md.BosID,
		eosID: *md.EosID, log: slog.New(slog.DiscardHandler)}
	m.chw = 3 * m.h * m.w
	if err := m.checkConfig(cfg); err != nil {
		return nil, err
	}
	copy(m.labels[:], md.Labels)
	for i, l := range m.labels {
		m.labelsJS[i], _ = json.Marshal(l)
	}
	m.popts = preprocess.Options{Width: m.w, Height: m.h}
	copy(m.popts.Norm.Mean[:], md.Mean)
	copy(m.popts.Norm.Std[:], md.Std)
	if err := m.popts.Norm.Check(); err != nil {
		return nil, fmt.Errorf("ofa metadata: %w", err)
	}
	tok, err := bpe.LoadHF(filepath.Join(spec.VersionDir, md.VocabFile), filepath.Join(spec.VersionDir, md.MergesFile),
		bpe.Options{Added: bpe.OFAAddedTokens()})
	if err != nil {
		return nil, fmt.Errorf("ofa tokenizer: %w", err)
	}
	pcfg, err := md.Meta.Config()
	if err != nil {
		return nil, fmt.Errorf("ofa metadata: %w", err)
	}
	if m.prompts, err = prompt.New(tok, pcfg); err != nil {
		return nil, fmt.Errorf("ofa prompts: %w", err)
	}
	return &Pipeline{m: m}, nil
}

// Prepare validates and prepares one request as the ofa kind does (images decoded and resized, prompts
// tokenized); its errors carry backend codes.
func (pl *Pipeline) Prepare(req *backend.Request) (*Prepared, error) {
	p, err := pl.m.prepare(req)
	if err != nil {
		return nil, err
	}
	return &Prepared{p: p}, nil
}

// Respond builds p's outputs from its logits (N rows of 3: entailment, contradiction, neutral) and
// releases p's image buffer.
func (pl *Pipeline) Respond(p *Prepared, logits []float32) []backend.Tensor {
	raw := make([]byte, 0, 4*len(logits))
	for _, v := range logits {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
	}
	pl.m.releaseImages(p.p)
	return pl.m.split(p.p, raw).outputs
}

// NumLabels is the width of a row of logits.
const NumLabels = numLabels

package ofa

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/backend/instances"
	"github.com/ofaserve/ofaserve/batcher"
	torch "github.com/ofaserve/ofaserve/libtorch"
	"github.com/ofaserve/ofaserve/preprocess"
	"github.com/ofaserve/ofaserve/preprocess/bpe"
	"github.com/ofaserve/ofaserve/preprocess/prompt"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// ModelName is the name scripts/export_ofa.py gives the model it writes
// for this kind.
const ModelName = "ofa_entailment"

// Names of the model's inputs and outputs.
const (
	InputImage      = "IMAGE"
	InputHypothesis = "HYPOTHESIS"
	InputPremise    = "PREMISE"
	OutputResult    = "RESULT"
	OutputLabel     = "LABEL"
	OutputScores    = "SCORES"
)

// numLabels is the module's output width: entailment, contradiction, neutral.
const numLabels = 3

type outKind int

const (
	outResult outKind = iota
	outLabel
	outScores
)

// outSpec is one output the config declares.
type outSpec struct {
	name     string
	kind     outKind
	datatype string
}

// Model is a loaded ofa model version. It implements backend.Model.
type Model struct {
	name      string
	h, w      int
	chw       int // bytes per image: 3*h*w, uint8 HWC
	popts     preprocess.Options
	prompts   *prompt.Builder
	padID     int64
	bosID     int64
	eosID     int64
	labels    [numLabels]string
	labelsJS  [numLabels][]byte // labels as JSON strings
	outputs   []outSpec         // config order
	precision torch.DType
	bc        bucketConfig
	budget    pixelBudget
	decodes   atomic.Int64 // images handed to the decoder (a refusal before decoding leaves it)

	set     *instances.Set[*prepared, *result]
	stagers []*stager // one per instance
	results [][]*result

	images  sync.Pool // *[]uint8: a request's images, n*chw
	decoded sync.Pool // *[]byte: base64 scratch
	log     *slog.Logger
}

// prepared is a validated request with its model inputs built.
type prepared struct {
	n       int
	images  *[]uint8  // n*chw bytes (uint8 HWC rows); owned by the batcher once submitted
	ids     [][]int64 // n rows of [bos]+ids+[eos]
	outputs []int     // requested outputs (config indices), config order
}

// result is one request's outputs.
type result struct {
	outputs []backend.Tensor
}

// Load loads an ofa model version: ofa_meta.json, the tokenizer files and
// one TorchScript module per instance, all from the version folder. It is a
// backend.Loader.
func Load(ctx context.Context, spec backend.LoadSpec) (backend.Model, error) {
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
	m := &Model{
		name:  spec.Name,
		h:     md.ImageSize[0],
		w:     md.ImageSize[1],
		padID: *md.PadID,
		bosID: *md.BosID,
		eosID: *md.EosID,
		log:   spec.Logger,
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
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
	maxText := 0
	for key, dst := range map[string]*int{"max_image_bytes": &m.popts.Limits.MaxBytes, "max_text_bytes": &maxText} {
		if v, ok, err := intParam(params, key); err != nil {
			return nil, err
		} else if ok {
			*dst = int(v)
		}
	}
	if m.budget, err = readPixelBudget(params, m.h, m.w, int(cfg.GetMaxBatchSize())); err != nil {
		return nil, err
	}
	m.popts.Limits.MaxPixels = m.budget.image
	if m.budget.image == 0 {
		m.popts.Limits.MaxPixels = -1 // 0 is the decoder's default; the parameter's 0 means none
	}

	tok, err := bpe.LoadHF(filepath.Join(spec.VersionDir, md.VocabFile), filepath.Join(spec.VersionDir, md.MergesFile),
		bpe.Options{Added: bpe.OFAAddedTokens()})
	if err != nil {
		return nil, fmt.Errorf("ofa tokenizer: %w", err)
	}
	if md.VocabSize > 0 && tok.VocabSize() != md.VocabSize {
		return nil, fmt.Errorf("ofa tokenizer: %s has %d tokens with OFA's added ones, ofa_meta.json says vocab_size %d", md.VocabFile, tok.VocabSize(), md.VocabSize)
	}
	for _, s := range []struct {
		tok string
		id  int64
	}{{"<s>", *md.BosID}, {"</s>", *md.EosID}} {
		if id, ok := tok.ID(s.tok); !ok || int64(id) != s.id {
			return nil, fmt.Errorf("ofa tokenizer: %s is id %d in %s, but ofa_meta.json says %d", s.tok, id, md.VocabFile, s.id)
		}
	}
	pcfg, err := md.Meta.Config()
	if err != nil {
		return nil, fmt.Errorf("ofa metadata: %w", err)
	}
	pcfg.MaxInputBytes = maxText
	if m.prompts, err = prompt.New(tok, pcfg); err != nil {
		return nil, fmt.Errorf("ofa prompts: %w", err)
	}
	// [bos] + at most MaxTokens ids + [eos].
	if m.bc, err = readBuckets(params, max(1, int(cfg.GetMaxBatchSize())), pcfg.MaxTokens+2); err != nil {
		return nil, err
	}
	if m.precision, err = instances.Precision(cfg); err != nil {
		return nil, err
	}

	file := filepath.Join(spec.VersionDir, md.ModelFile)
	check := func(mod *torch.Module) error {
		if lo, hi := mod.NumInputs(); lo > 2 || hi < 2 {
			return fmt.Errorf("%s: forward must take (patch_images, input_ids), its schema is %s", file, mod.Schema())
		}
		return nil
	}
	m.set, err = instances.LoadStaged(ctx, spec, file, torch.Options{Precision: m.precision}, check, executor{m})
	if err != nil {
		return nil, err
	}
	m.results = make([][]*result, len(m.set.Modules))
	// The batcher hands out no batch before Load returns, so the stagings are in place for the first.
	if err := m.newStagers(); err != nil {
		_ = m.set.Close(ctx)
		return nil, fmt.Errorf("ofa staging: %w", err)
	}
	if m.bc.graphs {
		if err := m.captureGraphs(m.log); err != nil {
			_ = m.set.Close(ctx)
			return nil, err
		}
	}
	m.log.Info("ofa model ready", "file", file, "instances", m.set.Devices, "precision", m.precision,
		"image_size", md.ImageSize, "max_batch_size", cfg.GetMaxBatchSize(), "labels", md.Labels,
		"buckets", len(m.bc.set.Shapes()), "cuda_graphs", m.bc.graphs)
	return m, nil
}

// checkConfig requires the config's tensors to be the ones this kind
// serves: IMAGE and HYPOTHESIS (and optionally PREMISE) as TYPE_STRING
// dims [1]; any of RESULT, LABEL (TYPE_STRING [1]) and SCORES (TYPE_FP32 [3]).
func (m *Model) checkConfig(cfg *modelconfig.ModelConfig) error {
	seen := map[string]bool{}
	for _, in := range cfg.GetInput() {
		name := in.GetName()
		switch name {
		case InputImage, InputHypothesis:
			if in.GetOptional() {
				return fmt.Errorf("input '%s' of an ofa model cannot be optional", name)
			}
		case InputPremise:
		default:
			return fmt.Errorf("input '%s' is not an ofa input (IMAGE, HYPOTHESIS, PREMISE)", name)
		}
		if in.GetDataType() != modelconfig.DataType_TYPE_STRING || !dimsAre(in.GetDims(), 1) {
			return fmt.Errorf("input '%s' must be TYPE_STRING with dims [1]", name)
		}
		seen[name] = true
	}
	for _, name := range []string{InputImage, InputHypothesis} {
		if !seen[name] {
			return fmt.Errorf("the config must declare input '%s'", name)
		}
	}
	for _, out := range cfg.GetOutput() {
		o := outSpec{name: out.GetName()}
		var want modelconfig.DataType
		var dims int64
		switch o.name {
		case OutputResult:
			o.kind, want, dims = outResult, modelconfig.DataType_TYPE_STRING, 1
		case OutputLabel:
			o.kind, want, dims = outLabel, modelconfig.DataType_TYPE_STRING, 1
		case OutputScores:
			o.kind, want, dims = outScores, modelconfig.DataType_TYPE_FP32, numLabels
		default:
			return fmt.Errorf("output '%s' is not an ofa output (RESULT, LABEL, SCORES)", o.name)
		}
		if out.GetDataType() != want || !dimsAre(out.GetDims(), dims) {
			return fmt.Errorf("output '%s' must be %s with dims [%d]", o.name, want, dims)
		}
		o.datatype = backend.Datatype(want)
		m.outputs = append(m.outputs, o)
	}
	if len(m.outputs) == 0 {
		return fmt.Errorf("the config declares no outputs")
	}
	return nil
}

func dimsAre(dims []int64, d int64) bool { return len(dims) == 1 && dims[0] == d }

// intParam reads an optional integer config parameter.
func intParam(params map[string]*modelconfig.ModelParameter, key string) (int64, bool, error) {
	p, ok := params[key]
	if !ok || p.GetStringValue() == "" {
		return 0, false, nil
	}
	v, err := strconv.ParseInt(p.GetStringValue(), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("parameter '%s': %q is not an integer", key, p.GetStringValue())
	}
	return v, true, nil
}

// Infer refuses a request whose image headers exceed the pixel budget (checkPixels), admits it to the
// queue (a full queue refuses it before any decoding), prepares it in the server's preprocessing pool, and
// waits for its share of a batch.
func (m *Model) Infer(ctx context.Context, req *backend.Request) (*backend.Response, error) {
	if err := m.checkPixels(req); err != nil {
		return nil, err
	}
	n := 1
	for _, t := range req.Inputs {
		if t.Name == InputImage && len(t.Shape) > 0 {
			n = int(t.Shape[0])
		}
	}
	slot := batcher.Slot{Size: n, Priority: req.Priority, Timeout: req.Timeout, Start: req.Start}
	res, err := m.set.Run(ctx, slot, func() (batcher.Item[*prepared], error) {
		p, err := m.prepare(req)
		if err != nil {
			return batcher.Item[*prepared]{}, err
		}
		length := 0
		for _, ids := range p.ids {
			length = max(length, len(ids))
		}
		return batcher.Item[*prepared]{Value: p, Length: length}, nil
	})
	if err != nil {
		return nil, err
	}
	return &backend.Response{Outputs: res.outputs}, nil
}

// Warmup runs one batch of every bucket on every instance (unless warmup_buckets is false), then the
// config's model_warmup samples (backend.Warmer).
func (m *Model) Warmup(ctx context.Context, samples []backend.WarmupSample) error {
	if m.bc.warmBuckets {
		if err := m.warmBuckets(ctx, m.log); err != nil {
			return err
		}
	}
	return instances.WarmSamples(ctx, m.set, samples, m.prepare)
}

// Stats returns the batcher's statistics.
func (m *Model) Stats() batcher.Stats { return m.set.Stats() }

// Precheck refuses before the request is read when the model's queue is full at every level
// (backend.Prechecker).
func (m *Model) Precheck() error { return m.set.Precheck() }

// Close stops accepting requests, lets queued ones finish (bounded by ctx)
// and releases the modules.
func (m *Model) Close(ctx context.Context) error { return m.set.Close(ctx) }

var (
	_ backend.Model  = (*Model)(nil)
	_ backend.Warmer = (*Model)(nil)
)

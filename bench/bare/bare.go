// Package bare measures the bare model: the exported OFA TorchScript
// module's forward pass in a loop at a fixed batch size, with no server,
// no protocol and no batching queue, which is the physical limit a serving
// stack can approach. It builds realistic inputs from the exporter's
// ofa_meta.json (image size, prompt templates, bos/eos/pad ids) and a
// tokenizer, and times forward calls through a function the caller supplies
// (cmd/ofabench wires libtorch), so this package itself needs no cgo.
package bare

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/ofaserve/ofaserve/bench/measure"
	"github.com/ofaserve/ofaserve/bench/workload"
)

// Meta is the part of ofa_meta.json the bare loop needs.
type Meta struct {
	ImageSize            []int  `json:"image_size"` // [H, W]
	PromptWithPremise    string `json:"prompt_with_premise"`
	PromptWithoutPremise string `json:"prompt_without_premise"`
	BosID                int64  `json:"bos_id"`
	PadID                int64  `json:"pad_id"`
	EosID                int64  `json:"eos_id"`
	MaxSrcLength         int    `json:"max_src_length"`
	VocabFile            string `json:"vocab_file"`
	MergesFile           string `json:"merges_file"`
	Dtype                string `json:"dtype"`
	ConfigName           string `json:"config_name"`
	// Mean and Std normalize a uint8 image on the device (the staged path).
	Mean []float32 `json:"mean"`
	Std  []float32 `json:"std"`
}

// ReadMeta reads ofa_meta.json.
func ReadMeta(path string) (Meta, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Meta{}, fmt.Errorf("reading OFA metadata: %w", err)
	}
	m, err := ParseMeta(b)
	if err != nil {
		return m, fmt.Errorf("OFA metadata %s: %w", path, err)
	}
	return m, nil
}

// ParseMeta decodes and checks the contents of ofa_meta.json.
func ParseMeta(b []byte) (Meta, error) {
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return m, err
	}
	if len(m.ImageSize) != 2 || m.ImageSize[0] <= 0 || m.ImageSize[1] <= 0 || m.ImageSize[0] > 4096 || m.ImageSize[1] > 4096 {
		return m, fmt.Errorf("bad image_size %v", m.ImageSize)
	}
	if m.PromptWithoutPremise == "" || m.PromptWithPremise == "" {
		return m, errors.New("missing prompt templates")
	}
	return m, nil
}

var spaces = regexp.MustCompile(`\s{2,}`)

// PreCaption is OFA's caption normalisation (spec ofa-visual-entailment
// §3.2) without the word limit.
func PreCaption(s string) string {
	s = strings.ToLower(s)
	s = strings.TrimLeft(s, ",.!?*#:;~")
	s = strings.NewReplacer("-", " ", "/", " ", "<person>", "person").Replace(s)
	s = spaces.ReplaceAllString(s, " ")
	s = strings.TrimRight(s, "\n")
	return strings.Trim(s, " ")
}

// Prompt fills the metadata's template for one text.
func (m Meta) Prompt(t workload.Text) string {
	if t.Premise != "" {
		return strings.NewReplacer("{premise}", PreCaption(t.Premise), "{hypothesis}", PreCaption(t.Hypothesis)).Replace(m.PromptWithPremise)
	}
	return strings.ReplaceAll(m.PromptWithoutPremise, "{hypothesis}", PreCaption(t.Hypothesis))
}

// Encoder turns text into BPE ids (bpe.Tokenizer.Encode).
type Encoder func(text string) []int32

// Inputs are the two tensors of the TorchScript module's forward, as
// little-endian host buffers.
type Inputs struct {
	Batch      int
	Images     []byte  // float32 [B,3,H,W]
	ImageShape []int64 //
	// Pixels are the uint8 [B,H,W,3] images of the staged path (seeded noise, as Images).
	Pixels      []byte
	PixelsShape []int64
	IDs         []byte // int64 [B,L], right-padded with pad_id
	IDShape     []int64
}

// BuildInputs makes one batch: texts are taken round-robin and tokenized as
// the server would ([bos] + bpe(prompt)[:max_src_length] + [eos], padded to
// the longest row); the image is seeded uniform noise in [-1, 1], which costs
// the model exactly what a normalized photo costs.
func BuildInputs(m Meta, enc Encoder, texts []workload.Text, batch int, seed uint64) (Inputs, error) {
	if batch < 1 {
		return Inputs{}, errors.New("batch must be >= 1")
	}
	if len(texts) == 0 {
		return Inputs{}, errors.New("no texts to tokenize")
	}
	rows := make([][]int64, batch)
	longest := 0
	for i := range rows {
		ids := enc(m.Prompt(texts[i%len(texts)]))
		if m.MaxSrcLength > 0 && len(ids) > m.MaxSrcLength {
			ids = ids[:m.MaxSrcLength]
		}
		row := []int64{m.BosID}
		for _, id := range ids {
			row = append(row, int64(id))
		}
		row = append(row, m.EosID)
		rows[i] = row
		longest = max(longest, len(row))
	}
	in := Inputs{Batch: batch, IDShape: []int64{int64(batch), int64(longest)}}
	in.IDs = make([]byte, 0, batch*longest*8)
	for _, r := range rows {
		for j := range longest {
			v := m.PadID
			if j < len(r) {
				v = r[j]
			}
			in.IDs = binary.LittleEndian.AppendUint64(in.IDs, uint64(v))
		}
	}
	h, w := m.ImageSize[0], m.ImageSize[1]
	in.ImageShape = []int64{int64(batch), 3, int64(h), int64(w)}
	n := batch * 3 * h * w
	rng := rand.New(rand.NewPCG(seed, 0xba5e))
	in.Images = make([]byte, 0, n*4)
	for range n {
		in.Images = binary.LittleEndian.AppendUint32(in.Images, math.Float32bits(rng.Float32()*2-1))
	}
	in.PixelsShape = []int64{int64(batch), int64(h), int64(w), 3}
	in.Pixels = make([]byte, n)
	for i := range in.Pixels {
		in.Pixels[i] = byte(rng.IntN(256))
	}
	return in, nil
}

// ForwardFunc runs the module once on in.
type ForwardFunc func(ctx context.Context, in Inputs) error

// Options bound one measurement.
type Options struct {
	Warmup   int           // untimed forwards first
	Duration time.Duration // timed loop length
	MaxIters int           // timed loop bound (0: none)
}

// Result is one batch size's measurement.
type Result struct {
	Batch      int           `json:"batch_size"`
	SeqLen     int64         `json:"seq_len"`
	Iterations int           `json:"iterations"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	Throughput float64       `json:"throughput_infer_per_sec"` // batch × iterations / elapsed
	Mean       time.Duration `json:"mean_forward_ns"`
	P50        time.Duration `json:"p50_forward_ns"`
	P99        time.Duration `json:"p99_forward_ns"`
	// Path is how inputs reached the module ("float32": Forward; "staged": a Staging, uint8 images;
	// "graph": a Staging replaying a CUDA graph), set by the caller; GraphReason, on the graph path, says
	// why no graph was captured, and the forwards then ran eagerly.
	Path        string `json:"path,omitempty"`
	GraphReason string `json:"graph_unavailable,omitempty"`
	// H2DBytesPerSample is the bytes each sample sent to the device, set by the caller.
	H2DBytesPerSample float64 `json:"h2d_bytes_per_sample,omitempty"`
}

// Run times fwd on in: Warmup untimed calls, then calls until Duration or
// MaxIters, at least one.
func Run(ctx context.Context, fwd ForwardFunc, in Inputs, o Options) (Result, error) {
	for range o.Warmup {
		if err := fwd(ctx, in); err != nil {
			return Result{}, fmt.Errorf("warm-up forward: %w", err)
		}
	}
	var lat []time.Duration
	start := time.Now()
	for len(lat) == 0 || (time.Since(start) < o.Duration && (o.MaxIters <= 0 || len(lat) < o.MaxIters)) {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		t := time.Now()
		if err := fwd(ctx, in); err != nil {
			return Result{}, fmt.Errorf("forward: %w", err)
		}
		lat = append(lat, time.Since(t))
	}
	el := time.Since(start)
	r := Result{Batch: in.Batch, Iterations: len(lat), Elapsed: el, Mean: el / time.Duration(len(lat))}
	if len(in.IDShape) == 2 {
		r.SeqLen = in.IDShape[1]
	}
	r.Throughput = float64(in.Batch*len(lat)) / el.Seconds()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r.P50, r.P99 = measure.Percentile(lat, 50), measure.Percentile(lat, 99)
	return r, nil
}

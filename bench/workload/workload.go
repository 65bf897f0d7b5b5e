// Package workload builds the requests ofabench sends: OFA visual-entailment
// requests from a folder of images and a file of hypotheses (optionally with
// premises), or tensors of any model filled with zeros or seeded random
// values, shaped from the model's metadata and --shape overrides the way
// perf_analyzer does. Requests are built once, before the load starts.
package workload

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/ofaserve/ofaserve/bench/kserve"
	"github.com/ofaserve/ofaserve/protocol/datatype"
)

// MaxRequests caps how many distinct requests a workload holds; the load
// generator cycles through them.
const MaxRequests = 256

// ParseShape parses a --shape value "NAME:d1,d2,..." (dimensions without
// the batch dimension).
func ParseShape(s string) (string, []int64, error) {
	i := strings.LastIndex(s, ":")
	if i <= 0 || i == len(s)-1 {
		return "", nil, fmt.Errorf("--shape %q: want NAME:d1,d2", s)
	}
	var dims []int64
	for _, p := range strings.Split(s[i+1:], ",") {
		d, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil || d < 0 || d > 1<<30 {
			return "", nil, fmt.Errorf("--shape %q: bad dimension %q", s, p)
		}
		dims = append(dims, d)
	}
	return s[:i], dims, nil
}

// Shape works out the request shape of an input from its metadata shape.
// With batching the first metadata dimension is the batch dimension and
// becomes batch. Variable (-1) dimensions come from override (the
// non-batch dims, as in --shape); without one a BYTES input takes 1 and a
// numeric input is an error.
func Shape(in kserve.TensorMetadata, batching bool, batch int, override []int64) ([]int64, error) {
	dims := slices.Clone(in.Shape)
	var out []int64
	if batching {
		if len(dims) == 0 {
			return nil, fmt.Errorf("input %q: batching model but metadata shape is empty", in.Name)
		}
		out = append(out, int64(batch))
		dims = dims[1:]
	} else if batch != 1 {
		return nil, fmt.Errorf("model does not batch (max_batch_size 0): -b must be 1, got %d", batch)
	}
	if override != nil {
		if len(override) != len(dims) {
			return nil, fmt.Errorf("--shape %s:%v has rank %d, the model's input has %d non-batch dims %v", in.Name, override, len(override), len(dims), dims)
		}
		for i, d := range dims {
			if d >= 0 && d != override[i] {
				return nil, fmt.Errorf("--shape %s:%v: dimension %d is fixed at %d", in.Name, override, i, d)
			}
		}
		return append(out, override...), nil
	}
	for _, d := range dims {
		if d < 0 {
			if in.Datatype != "BYTES" {
				return nil, fmt.Errorf("input %q has a variable dimension %v: give it with --shape %s:DIMS", in.Name, in.Shape, in.Name)
			}
			d = 1
		}
		out = append(out, d)
	}
	return out, nil
}

// RawOptions selects how Raw fills tensors.
type RawOptions struct {
	Batch    int
	Batching bool
	Shapes   map[string][]int64 // --shape overrides
	Random   bool               // random values (seeded) instead of zeros
	Seed     uint64
	Count    int // distinct requests (default 16; 1 for zeros)
}

// Raw builds requests for any model from its metadata.
func Raw(meta kserve.ModelMetadata, o RawOptions) ([]kserve.Request, error) {
	if len(meta.Inputs) == 0 {
		return nil, fmt.Errorf("model %q has no inputs in its metadata", meta.Name)
	}
	for name := range o.Shapes {
		if !slices.ContainsFunc(meta.Inputs, func(t kserve.TensorMetadata) bool { return t.Name == name }) {
			return nil, fmt.Errorf("--shape names %q, which is not an input of %q", name, meta.Name)
		}
	}
	count := o.Count
	if count <= 0 {
		count = 16
	}
	if !o.Random {
		count = 1
	}
	count = min(count, MaxRequests)
	rng := rand.New(rand.NewPCG(o.Seed, 0x0fa))
	reqs := make([]kserve.Request, 0, count)
	for range count {
		req := kserve.Request{Model: meta.Name}
		for _, in := range meta.Inputs {
			shape, err := Shape(in, o.Batching, o.Batch, o.Shapes[in.Name])
			if err != nil {
				return nil, err
			}
			t, err := fill(in, shape, o.Random, rng)
			if err != nil {
				return nil, err
			}
			req.Inputs = append(req.Inputs, t)
		}
		reqs = append(reqs, req)
	}
	return reqs, nil
}

func fill(in kserve.TensorMetadata, shape []int64, random bool, rng *rand.Rand) (kserve.Tensor, error) {
	t := kserve.Tensor{Name: in.Name, Datatype: in.Datatype, Shape: shape}
	n, err := kserve.NumElements(shape)
	if err != nil {
		return t, fmt.Errorf("input %q: %w", in.Name, err)
	}
	if n > 1<<28 {
		return t, fmt.Errorf("input %q: %d elements is too many for a benchmark request", in.Name, n)
	}
	if in.Datatype == "BYTES" {
		t.Elems = make([][]byte, n)
		for i := range t.Elems {
			if random {
				t.Elems[i] = []byte(strconv.FormatUint(rng.Uint64(), 36))
			} else {
				t.Elems[i] = []byte{}
			}
		}
		return t, nil
	}
	sz := datatype.Parse(in.Datatype).Size()
	if sz == 0 {
		return t, fmt.Errorf("input %q: unknown datatype %q", in.Name, in.Datatype)
	}
	t.Data = make([]byte, int(n)*sz)
	if !random {
		return t, nil
	}
	le := binary.LittleEndian
	for i := 0; i < int(n); i++ {
		b := t.Data[i*sz : (i+1)*sz]
		switch in.Datatype {
		case "BOOL":
			b[0] = byte(rng.IntN(2))
		case "FP32":
			le.PutUint32(b, math.Float32bits(rng.Float32()))
		case "FP64":
			le.PutUint64(b, math.Float64bits(rng.Float64()))
		case "FP16", "BF16":
			// Values in [1, 2): 0x3C00-0x3FFF in FP16, 0x3F80-0x3FFF in BF16.
			base, span := 0x3C00, 0x400
			if in.Datatype == "BF16" {
				base, span = 0x3F80, 0x80
			}
			le.PutUint16(b, uint16(base+rng.IntN(span)))
		default:
			// Integers in [0, 100): valid token ids, indices and labels for
			// typical models.
			v := uint64(rng.IntN(100))
			for k := range sz {
				b[k] = byte(v >> (8 * k))
			}
		}
	}
	return t, nil
}

// Text is one line of the hypotheses file.
type Text struct {
	Premise    string // "" when the line has none
	Hypothesis string
}

// ReadTexts reads a hypotheses file: one request text per line, either
// "hypothesis" or "premise<TAB>hypothesis". Blank lines and lines starting
// with '#' are skipped.
func ReadTexts(path string) ([]Text, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading hypotheses: %w", err)
	}
	return ParseTexts(b)
}

// ParseTexts parses the contents of a hypotheses file (see ReadTexts).
func ParseTexts(b []byte) ([]Text, error) {
	var out []Text
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		t := Text{Hypothesis: line}
		if p, h, ok := strings.Cut(line, "\t"); ok {
			t = Text{Premise: strings.TrimSpace(p), Hypothesis: h}
		}
		t.Hypothesis = strings.TrimSpace(t.Hypothesis)
		if t.Hypothesis == "" {
			return nil, fmt.Errorf("hypotheses line %d has an empty hypothesis", n)
		}
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading hypotheses: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("hypotheses file has no lines")
	}
	return out, nil
}

// imageExts are the files ReadImages picks up.
var imageExts = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".gif": true, ".bmp": true, ".webp": true}

// ReadImages returns the encoded image files in dir (by extension, sorted by
// name, at most MaxRequests).
func ReadImages(dir string) ([][]byte, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading image folder: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() && imageExts[strings.ToLower(filepath.Ext(e.Name()))] {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("no images (.jpg .jpeg .png .gif .bmp .webp) in %s", dir)
	}
	names = names[:min(len(names), MaxRequests)]
	imgs := make([][]byte, 0, len(names))
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("reading image: %w", err)
		}
		imgs = append(imgs, b)
	}
	return imgs, nil
}

// OFAOptions selects how OFA builds requests.
type OFAOptions struct {
	Batch    int
	Batching bool
}

// OFA builds visual-entailment requests for an ofa_entailment-style model:
// IMAGE (the encoded file; base64 in JSON, raw in binary), HYPOTHESIS and,
// when every text of the request has one and the model takes it, PREMISE.
// Request i takes images and texts round-robin, so every image and every
// text is used.
func OFA(meta kserve.ModelMetadata, images [][]byte, texts []Text, o OFAOptions) ([]kserve.Request, error) {
	if len(images) == 0 || len(texts) == 0 {
		return nil, fmt.Errorf("OFA requests need at least one image and one hypothesis")
	}
	var imgMeta, hypMeta, preMeta *kserve.TensorMetadata
	for i := range meta.Inputs {
		switch meta.Inputs[i].Name {
		case "IMAGE":
			imgMeta = &meta.Inputs[i]
		case "HYPOTHESIS":
			hypMeta = &meta.Inputs[i]
		case "PREMISE":
			preMeta = &meta.Inputs[i]
		}
	}
	if imgMeta == nil || hypMeta == nil {
		return nil, fmt.Errorf("model %q has no IMAGE and HYPOTHESIS inputs; use raw tensors (no --images) for it", meta.Name)
	}
	for _, m := range []*kserve.TensorMetadata{imgMeta, hypMeta, preMeta} {
		if m != nil && m.Datatype != "BYTES" {
			return nil, fmt.Errorf("model %q input %q is %s, want BYTES", meta.Name, m.Name, m.Datatype)
		}
	}
	shape, err := Shape(*imgMeta, o.Batching, o.Batch, nil)
	if err != nil {
		return nil, err
	}
	if n, _ := kserve.NumElements(shape); n != int64(o.Batch) {
		return nil, fmt.Errorf("input IMAGE shape %v holds %d elements, want one per batch item (%d)", shape, n, o.Batch)
	}
	total := max(len(images), len(texts))
	count := min((total+o.Batch-1)/o.Batch, MaxRequests)
	reqs := make([]kserve.Request, 0, count)
	for i := range count {
		img := kserve.Tensor{Name: "IMAGE", Datatype: "BYTES", Shape: shape, Base64JSON: true}
		hyp := kserve.Tensor{Name: "HYPOTHESIS", Datatype: "BYTES", Shape: shape}
		pre := kserve.Tensor{Name: "PREMISE", Datatype: "BYTES", Shape: shape}
		allPremise := preMeta != nil
		for j := range o.Batch {
			k := i*o.Batch + j
			t := texts[k%len(texts)]
			img.Elems = append(img.Elems, images[k%len(images)])
			hyp.Elems = append(hyp.Elems, []byte(t.Hypothesis))
			pre.Elems = append(pre.Elems, []byte(t.Premise))
			allPremise = allPremise && t.Premise != ""
		}
		req := kserve.Request{Model: meta.Name, Inputs: []kserve.Tensor{img, hyp}}
		if allPremise {
			req.Inputs = append(req.Inputs, pre)
		}
		reqs = append(reqs, req)
	}
	return reqs, nil
}

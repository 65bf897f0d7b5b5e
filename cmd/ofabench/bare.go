package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ofaserve/ofaserve/bench/bare"
	"github.com/ofaserve/ofaserve/bench/report"
	"github.com/ofaserve/ofaserve/bench/workload"
	"github.com/ofaserve/ofaserve/libtorch"
	"github.com/ofaserve/ofaserve/preprocess/bpe"
)

// bareResult is the JSON document `ofabench bare` writes.
type bareResult struct {
	Label     string `json:"label"`
	Model     string `json:"model"`
	Device    string `json:"device"`
	Precision string `json:"precision"`
	Path      string `json:"path"`
	// IntraOpThreads is the libtorch intra-op thread count the forwards used.
	IntraOpThreads int            `json:"intra_op_threads"`
	Machine        report.Machine `json:"machine"`
	Results        []bare.Result  `json:"results"`
}

func runBare(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ofabench bare", flag.ContinueOnError)
	model := fs.String("model", "", "TorchScript file: forward(patch_images f32[B,3,H,W], input_ids i64[B,L]) -> f32[B,3] (required)")
	metaPath := fs.String("meta", "", "ofa_meta.json (default: beside --model, else ../../ofa_entailment/1/ofa_meta.json)")
	batches := fs.String("batch", "1,16", "comma-separated batch sizes")
	device := fs.String("device", "cpu", "cpu or cuda:N")
	precision := fs.String("precision", "fp32", "fp32, fp16 or bf16 (converts the module's parameters at load)")
	hyp := fs.String("hypotheses", "", "file of hypotheses (premise<TAB>hypothesis) for realistic token lengths (default: one built-in hypothesis)")
	dur := fs.Duration("duration", 10*time.Second, "timed loop per batch size")
	warmup := fs.Int("warmup", 3, "untimed forwards per batch size")
	maxIters := fs.Int("max-iters", 0, "bound on timed forwards per batch size (0: none)")
	jsonOut := fs.String("json", "", "write results as JSON here")
	label := fs.String("label", "bare model", "label in the JSON")
	intra := fs.Int("intra-op-threads", 0, "libtorch intra-op threads (0: libtorch's default, OMP_NUM_THREADS or the physical cores)")
	path := fs.String("path", "float32", "comma-separated ways inputs reach the module, each measured at every batch size: float32 (Forward of normalized float32 images), "+
		"staged (a Staging: uint8 images normalized on the device, reused pinned buffers) or graph (staged, replaying a CUDA graph "+
		"captured per batch size; eager with the reason where capture fails)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *model == "" || fs.NArg() > 0 {
		return errors.New("bare: --model is required and takes no positional arguments")
	}
	var sizes []int
	for _, s := range strings.Split(*batches, ",") {
		b, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || b < 1 || b > 4096 {
			return fmt.Errorf("bare: bad batch size %q", s)
		}
		sizes = append(sizes, b)
	}
	mp := *metaPath
	if mp == "" {
		dir := filepath.Dir(*model)
		mp = filepath.Join(dir, "ofa_meta.json")
		if _, err := os.Stat(mp); err != nil {
			mp = filepath.Join(dir, "..", "..", "ofa_entailment", filepath.Base(dir), "ofa_meta.json")
		}
	}
	meta, err := bare.ReadMeta(mp)
	if err != nil {
		return err
	}
	tok, err := bpe.LoadHF(filepath.Join(filepath.Dir(mp), meta.VocabFile), filepath.Join(filepath.Dir(mp), meta.MergesFile), bpe.Options{})
	if err != nil {
		return fmt.Errorf("bare: loading the tokenizer beside %s: %w", mp, err)
	}
	texts := []workload.Text{{Hypothesis: "there are two birds."}}
	if *hyp != "" {
		if texts, err = workload.ReadTexts(*hyp); err != nil {
			return err
		}
	}
	prec, err := parsePrecision(*precision)
	if err != nil {
		return err
	}
	if *intra != 0 {
		if err := libtorch.SetNumThreads(*intra); err != nil {
			return fmt.Errorf("bare: --intra-op-threads: %w", err)
		}
	}
	mod, err := libtorch.Load(*model, libtorch.Options{Device: *device, Precision: prec})
	if err != nil {
		return fmt.Errorf("bare: %w", err)
	}
	defer mod.Close()
	inputs := make([]bare.Inputs, len(sizes))
	maxL := 1
	for i, b := range sizes {
		if inputs[i], err = bare.BuildInputs(meta, tok.Encode, texts, b, 1); err != nil {
			return err
		}
		maxL = max(maxL, int(inputs[i].IDShape[1]))
	}
	res := bareResult{Label: *label, Model: *model, Device: *device, Precision: *precision, Path: *path, IntraOpThreads: libtorch.NumThreads(),
		Machine: report.ThisMachine()}
	fmt.Fprintf(os.Stderr, "bare: %s on %s (%s), %s, %d intra-op threads\n", *model, *device, *precision, meta.ConfigName, res.IntraOpThreads)
	for _, kind := range strings.Split(*path, ",") {
		p, err := newBarePath(strings.TrimSpace(kind), mod, meta, sizes, maxL)
		if err != nil {
			return err
		}
		reasons, err := p.prepare(inputs)
		if err != nil {
			return err
		}
		for i, in := range inputs {
			bytes0, samples0 := p.bytes(), p.samples
			r, err := bare.Run(ctx, p.forward, in, bare.Options{Warmup: *warmup, Duration: *dur, MaxIters: *maxIters})
			if err != nil {
				return fmt.Errorf("bare: %s, batch %d: %w", p.kind, in.Batch, err)
			}
			r.Path, r.GraphReason = p.kind, reasons[i]
			if n := p.samples - samples0; n > 0 {
				r.H2DBytesPerSample = float64(p.bytes()-bytes0) / float64(n)
			}
			res.Results = append(res.Results, r)
			fmt.Printf("Batch: %d, seq len %d, throughput: %.2f infer/sec, forward mean %d usec p50 %d usec p99 %d usec (%d iterations), path %s, %.0f H2D bytes/sample\n",
				r.Batch, r.SeqLen, r.Throughput, r.Mean.Microseconds(), r.P50.Microseconds(), r.P99.Microseconds(), r.Iterations, r.Path, r.H2DBytesPerSample)
			if reasons[i] != "" {
				fmt.Printf("Batch: %d: no CUDA graph: %s\n", r.Batch, reasons[i])
			}
		}
		p.close()
	}
	if *jsonOut != "" {
		return writeFile(*jsonOut, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		})
	}
	return nil
}

func parsePrecision(s string) (libtorch.DType, error) {
	switch s {
	case "fp32", "":
		return libtorch.Float32, nil
	case "fp16":
		return libtorch.Float16, nil
	case "bf16":
		return libtorch.BFloat16, nil
	}
	return 0, fmt.Errorf("bare: --precision %q: want fp32, fp16 or bf16", s)
}

// barePath runs forward one way: float32, staged or graph.
type barePath struct {
	kind    string
	mod     *libtorch.Module
	st      *libtorch.Staging
	outs    []libtorch.Tensor
	plain   int64 // bytes handed to Forward (float32 path)
	samples int64 // rows forwarded
}

func newBarePath(kind string, mod *libtorch.Module, meta bare.Meta, sizes []int, maxL int) (*barePath, error) {
	p := &barePath{kind: kind, mod: mod}
	switch kind {
	case "float32":
		return p, nil
	case "staged", "graph":
	default:
		return nil, fmt.Errorf("bare: --path %q: want float32, staged or graph", kind)
	}
	if len(meta.Mean) != 3 || len(meta.Std) != 3 {
		return nil, errors.New("bare: --path staged needs mean and std in ofa_meta.json")
	}
	maxB := 0
	for _, b := range sizes {
		maxB = max(maxB, b)
	}
	var norm libtorch.ImageNormalize
	copy(norm.Mean[:], meta.Mean)
	copy(norm.Std[:], meta.Std)
	h, w := int64(meta.ImageSize[0]), int64(meta.ImageSize[1])
	st, err := mod.NewStaging(libtorch.StagingOptions{Inputs: []libtorch.StagingInput{
		{DType: libtorch.Uint8, MaxShape: []int64{int64(maxB), h, w, 3}, Image: &norm},
		{DType: libtorch.Int64, MaxShape: []int64{int64(maxB), int64(maxL)}},
	}})
	if err != nil {
		return nil, fmt.Errorf("bare: %w", err)
	}
	p.st = st
	return p, nil
}

// prepare captures, on the graph path, one graph per input's shapes, the largest batch first (the
// graphs of a Staging share one memory pool, which the first sizes); it returns, per input, why none was
// captured ("" when one was, or off the graph path).
func (p *barePath) prepare(inputs []bare.Inputs) ([]string, error) {
	reasons := make([]string, len(inputs))
	if p.kind != "graph" {
		return reasons, nil
	}
	order := make([]int, len(inputs))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return inputs[order[a]].Batch > inputs[order[b]].Batch })
	for _, i := range order {
		err := p.st.CaptureGraph(inputs[i].PixelsShape, inputs[i].IDShape)
		var ue *libtorch.GraphUnavailableError
		switch {
		case err == nil:
		case errors.As(err, &ue):
			reasons[i] = ue.Reason
		default:
			return nil, fmt.Errorf("bare: batch %d: %w", inputs[i].Batch, err)
		}
	}
	return reasons, nil
}

func (p *barePath) close() {
	if p.st != nil {
		_ = p.st.Close()
	}
}

// bytes is what crossed to the device so far.
func (p *barePath) bytes() int64 {
	if p.st != nil {
		return p.st.Stats().BytesStaged
	}
	return p.plain
}

func (p *barePath) forward(ctx context.Context, in bare.Inputs) error {
	var out []libtorch.Tensor
	var err error
	if p.st == nil {
		out, err = p.mod.Forward(ctx, []libtorch.Tensor{
			{DType: libtorch.Float32, Shape: in.ImageShape, Data: in.Images},
			{DType: libtorch.Int64, Shape: in.IDShape, Data: in.IDs},
		})
		p.plain += int64(len(in.Images) + len(in.IDs))
	} else {
		var s libtorch.Staged
		if s, err = p.st.Stage(ctx, []libtorch.Tensor{
			{DType: libtorch.Uint8, Shape: in.PixelsShape, Data: in.Pixels},
			{DType: libtorch.Int64, Shape: in.IDShape, Data: in.IDs},
		}); err == nil {
			out, err = p.st.Forward(ctx, s, p.outs)
			p.outs = out
		}
	}
	if err != nil {
		return err
	}
	p.samples += int64(in.Batch)
	if len(out) != 1 || len(out[0].Shape) != 2 || out[0].Shape[0] != int64(in.Batch) || out[0].Shape[1] != 3 {
		return fmt.Errorf("unexpected output %v", shapes(out))
	}
	return nil
}

func shapes(ts []libtorch.Tensor) [][]int64 {
	var s [][]int64
	for _, t := range ts {
		s = append(s, t.Shape)
	}
	return s
}

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
	fwd := func(ctx context.Context, in bare.Inputs) error {
		out, err := mod.Forward(ctx, []libtorch.Tensor{
			{DType: libtorch.Float32, Shape: in.ImageShape, Data: in.Images},
			{DType: libtorch.Int64, Shape: in.IDShape, Data: in.IDs},
		})
		if err != nil {
			return err
		}
		if len(out) != 1 || len(out[0].Shape) != 2 || out[0].Shape[0] != int64(in.Batch) || out[0].Shape[1] != 3 {
			return fmt.Errorf("unexpected output %v", shapes(out))
		}
		return nil
	}
	res := bareResult{Label: *label, Model: *model, Device: *device, Precision: *precision, IntraOpThreads: libtorch.NumThreads(),
		Machine: report.ThisMachine()}
	fmt.Fprintf(os.Stderr, "bare: %s on %s (%s), %s, %d intra-op threads\n", *model, *device, *precision, meta.ConfigName, res.IntraOpThreads)
	for _, b := range sizes {
		in, err := bare.BuildInputs(meta, tok.Encode, texts, b, 1)
		if err != nil {
			return err
		}
		r, err := bare.Run(ctx, fwd, in, bare.Options{Warmup: *warmup, Duration: *dur, MaxIters: *maxIters})
		if err != nil {
			return fmt.Errorf("bare: batch %d: %w", b, err)
		}
		res.Results = append(res.Results, r)
		fmt.Printf("Batch: %d, seq len %d, throughput: %.2f infer/sec, forward mean %d usec p50 %d usec p99 %d usec (%d iterations)\n",
			r.Batch, r.SeqLen, r.Throughput, r.Mean.Microseconds(), r.P50.Microseconds(), r.P99.Microseconds(), r.Iterations)
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

func shapes(ts []libtorch.Tensor) [][]int64 {
	var s [][]int64
	for _, t := range ts {
		s = append(s, t.Shape)
	}
	return s
}

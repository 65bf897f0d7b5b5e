package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ofaserve/ofaserve/bench/kserve"
	"github.com/ofaserve/ofaserve/bench/kserve/grpcclient"
	"github.com/ofaserve/ofaserve/bench/measure"
	"github.com/ofaserve/ofaserve/bench/report"
	"github.com/ofaserve/ofaserve/bench/workload"
	"github.com/ofaserve/ofaserve/protocol/inferencepb"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

type benchFlags struct {
	model, version, url, proto, inFmt, outFmt string
	batch                                     int
	concRange, rateRange, distribution        string
	intervalMS                                int
	stabilityPct, percentile                  float64
	maxTrials                                 int
	maxRequests                               int64
	maxDuration, reqTimeout                   time.Duration
	images, hypotheses, inputData             string
	shapes                                    multiFlag
	csvPath, jsonPath, plotPath, label        string
	verboseCSV, progress, allowRemote         bool
	noServerStats                             bool
	maxOutstanding, warmup                    int
	seed                                      uint64
}

func parseBenchFlags(args []string) (*benchFlags, error) {
	f := &benchFlags{}
	fs := flag.NewFlagSet("ofabench", flag.ContinueOnError)
	fs.StringVar(&f.model, "m", "", "model name (required)")
	fs.StringVar(&f.version, "x", "", "model version (default: latest)")
	fs.StringVar(&f.url, "u", "", "server address host:port (default 127.0.0.1:8000 for http, 127.0.0.1:8001 for grpc)")
	fs.StringVar(&f.proto, "i", "http", "protocol: http or grpc")
	fs.StringVar(&f.inFmt, "input-tensor-format", "json", "HTTP input tensors: json or binary")
	fs.StringVar(&f.outFmt, "output-tensor-format", "", "HTTP output tensors: json or binary (default: as input)")
	fs.IntVar(&f.batch, "b", 1, "batch size of each request (first dimension)")
	fs.StringVar(&f.concRange, "concurrency-range", "", "closed loop: start:end:step (step Nx multiplies), e.g. 1:64:2x (default 1)")
	fs.StringVar(&f.rateRange, "request-rate-range", "", "open loop: requests/s start:end:step")
	fs.StringVar(&f.distribution, "request-distribution", "constant", "open loop arrivals: constant or poisson")
	fs.IntVar(&f.intervalMS, "measurement-interval", 5000, "window length in ms")
	fs.Float64Var(&f.stabilityPct, "stability-percentage", 10, "max/min spread of 3 windows that counts as stable, in %")
	fs.IntVar(&f.maxTrials, "max-trials", 10, "windows per level before giving up on stability")
	fs.Float64Var(&f.percentile, "percentile", 0, "latency percentile for stability and the summary line (default: average)")
	fs.Int64Var(&f.maxRequests, "max-requests", 200000, "stop the whole run after this many requests (0: unlimited)")
	fs.DurationVar(&f.maxDuration, "max-duration", 10*time.Minute, "stop the whole run after this long")
	fs.DurationVar(&f.reqTimeout, "request-timeout", 60*time.Second, "per-request timeout")
	fs.StringVar(&f.images, "images", "", "OFA: folder of image files (with --hypotheses)")
	fs.StringVar(&f.hypotheses, "hypotheses", "", "OFA: file with one hypothesis per line, or premise<TAB>hypothesis")
	fs.StringVar(&f.inputData, "input-data", "random", "raw tensors: zero or random")
	fs.Var(&f.shapes, "shape", "raw tensors: NAME:d1,d2 for variable dims (no batch dim); repeatable")
	fs.StringVar(&f.csvPath, "f", "", "write perf_analyzer CSV here")
	fs.BoolVar(&f.verboseCSV, "verbose-csv", false, "add average latency, overhead, batch, errors and stability columns")
	fs.StringVar(&f.jsonPath, "json", "", "write the JSON result (every window) here")
	fs.StringVar(&f.plotPath, "plot", "", "write a PNG of p99 latency vs throughput here")
	fs.StringVar(&f.label, "label", "", "name of this configuration in plots and reports")
	fs.BoolVar(&f.progress, "progress", false, "show a live progress line even when stderr is not a terminal")
	fs.BoolVar(&f.allowRemote, "allow-remote", false, "allow a non-loopback target")
	fs.BoolVar(&f.noServerStats, "no-server-stats", false, "do not read the statistics endpoint")
	fs.IntVar(&f.maxOutstanding, "max-outstanding", 1024, "open loop: most requests in flight")
	fs.Uint64Var(&f.seed, "seed", 1, "seed for random data and Poisson arrivals")
	fs.IntVar(&f.warmup, "warmup-requests", 0, "requests sent one at a time before the first level, not measured")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if f.model == "" {
		return nil, errors.New("-m MODEL is required")
	}
	if f.outFmt == "" {
		f.outFmt = f.inFmt
	}
	switch {
	case f.proto != "http" && f.proto != "grpc":
		return nil, fmt.Errorf("-i %q: want http or grpc", f.proto)
	case f.inFmt != "json" && f.inFmt != "binary":
		return nil, fmt.Errorf("--input-tensor-format %q: want json or binary", f.inFmt)
	case f.outFmt != "json" && f.outFmt != "binary":
		return nil, fmt.Errorf("--output-tensor-format %q: want json or binary", f.outFmt)
	case f.distribution != "constant" && f.distribution != "poisson":
		return nil, fmt.Errorf("--request-distribution %q: want constant or poisson", f.distribution)
	case f.inputData != "zero" && f.inputData != "random":
		return nil, fmt.Errorf("--input-data %q: want zero or random", f.inputData)
	case f.batch < 1:
		return nil, fmt.Errorf("-b must be >= 1")
	case f.intervalMS < 1 || f.maxTrials < 1 || f.stabilityPct <= 0:
		return nil, errors.New("--measurement-interval, --max-trials and --stability-percentage must be positive")
	case f.concRange != "" && f.rateRange != "":
		return nil, errors.New("give --concurrency-range or --request-rate-range, not both")
	case (f.images == "") != (f.hypotheses == ""):
		return nil, errors.New("--images and --hypotheses go together")
	}
	if f.url == "" {
		f.url = "127.0.0.1:8000"
		if f.proto == "grpc" {
			f.url = "127.0.0.1:8001"
		}
	}
	if f.label == "" {
		f.label = fmt.Sprintf("%s %s", f.model, f.proto)
		if f.proto == "http" {
			f.label += " " + f.inFmt
		}
	}
	return f, nil
}

// server is what the run needs from a protocol.
type server interface {
	Metadata(ctx context.Context, model, version string) (kserve.ModelMetadata, error)
	Config(ctx context.Context, model, version string) (kserve.ModelConfig, error)
	Stats(ctx context.Context, model, version string) (kserve.ModelStats, error)
}

func connect(f *benchFlags) (server, func(reqs []kserve.Request) (measure.DoFunc, error), func(), error) {
	if f.proto == "grpc" {
		c, err := grpcclient.Dial(f.url)
		if err != nil {
			return nil, nil, nil, err
		}
		prep := func(reqs []kserve.Request) (measure.DoFunc, error) {
			msgs := make([]any, len(reqs))
			for i, r := range reqs {
				m, err := grpcclient.Encode(r)
				if err != nil {
					return nil, err
				}
				msgs[i] = m
			}
			return cycle(msgs, func(ctx context.Context, m any) kserve.Outcome {
				return c.Infer(ctx, m.(*inferencepb.ModelInferRequest))
			}), nil
		}
		return c, prep, func() { _ = c.Close() }, nil
	}
	base, _, err := kserve.BaseURL(f.url)
	if err != nil {
		return nil, nil, nil, err
	}
	c := kserve.NewHTTPClient(base, 4096, f.reqTimeout)
	prep := func(reqs []kserve.Request) (measure.DoFunc, error) {
		msgs := make([]any, len(reqs))
		for i, r := range reqs {
			r.BinaryOutput = f.outFmt == "binary"
			p, err := c.Prepare(r, f.inFmt == "binary")
			if err != nil {
				return nil, err
			}
			msgs[i] = p
		}
		return cycle(msgs, func(ctx context.Context, m any) kserve.Outcome {
			return c.Infer(ctx, m.(*kserve.PreparedHTTP))
		}), nil
	}
	return c, prep, c.Close, nil
}

func cycle(msgs []any, send func(context.Context, any) kserve.Outcome) measure.DoFunc {
	return func(ctx context.Context, seq uint64) kserve.Outcome {
		return send(ctx, msgs[seq%uint64(len(msgs))])
	}
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func runBench(ctx context.Context, args []string) error {
	f, err := parseBenchFlags(args)
	if err != nil {
		return err
	}
	hostport := f.url
	if f.proto == "http" {
		if _, hostport, err = kserve.BaseURL(f.url); err != nil {
			return err
		}
	}
	if !f.allowRemote {
		if err := kserve.CheckLoopback(ctx, hostport); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, f.maxDuration)
	defer cancel()

	srv, prepare, closeFn, err := connect(f)
	if err != nil {
		return err
	}
	defer closeFn()
	mctx, mcancel := context.WithTimeout(ctx, 10*time.Second)
	meta, err := srv.Metadata(mctx, f.model, f.version)
	if err != nil {
		mcancel()
		return fmt.Errorf("reading model metadata: %w", err)
	}
	batching := len(meta.Inputs) > 0 && len(meta.Inputs[0].Shape) > 0 && meta.Inputs[0].Shape[0] == -1
	var device *report.Device
	if cfg, err := srv.Config(mctx, f.model, f.version); err == nil {
		batching = cfg.MaxBatchSize > 0
		if device, err = report.SimulatedDevice(cfg); err != nil {
			mcancel()
			return err
		}
		if batching && f.batch > cfg.MaxBatchSize {
			mcancel()
			return fmt.Errorf("-b %d exceeds the model's max_batch_size %d", f.batch, cfg.MaxBatchSize)
		}
	}
	mcancel()

	reqs, wl, err := buildWorkload(f, meta, batching)
	if err != nil {
		return err
	}
	do, err := prepare(reqs)
	if err != nil {
		return fmt.Errorf("encoding requests: %w", err)
	}

	if err := warmUp(ctx, do, f.warmup); err != nil {
		return err
	}

	mode, rng := "concurrency", f.concRange
	if f.rateRange != "" {
		mode, rng = "request_rate", f.rateRange
	}
	if rng == "" {
		rng = "1"
	}
	values, err := measure.ParseRange(rng)
	if err != nil {
		return err
	}

	r := &measure.Runner{
		Settings: measure.Settings{
			Interval: time.Duration(f.intervalMS) * time.Millisecond, StabilityPct: f.stabilityPct,
			MaxTrials: f.maxTrials, Batch: f.batch, Percentile: f.percentile,
			Poisson: f.distribution == "poisson", MaxOutstanding: f.maxOutstanding, Seed: f.seed,
		},
		Do:     do,
		Budget: measure.NewBudget(f.maxRequests),
	}
	if !f.noServerStats {
		r.Stats = func(ctx context.Context) (kserve.ModelStats, error) { return srv.Stats(ctx, f.model, f.version) }
	}
	live := f.progress || isTerminal(os.Stderr)
	if live {
		r.Progress = func(line string) { fmt.Fprintf(os.Stderr, "\r\033[K%s", line) }
	}

	res := &report.Result{
		Label: f.label, Target: f.url, Protocol: f.proto, Format: f.inFmt, Model: f.model, Batch: f.batch,
		Workload: wl, Machine: report.ThisMachine(), Started: time.Now().UTC(),
		Settings: report.Settings{IntervalMS: int64(f.intervalMS), StabilityPct: f.stabilityPct, MaxTrials: f.maxTrials, Percentile: f.percentile},
		Device:   device,
	}
	if mode == "request_rate" {
		res.Settings.Distribution = f.distribution
	}
	fmt.Fprintf(os.Stderr, "ofabench: %s at %s (%s), %s, batch %d, %s %s\n", f.model, f.url, res.Protocol, wl, f.batch, mode, rng)
	var runErr error
	for _, v := range values {
		var lvl measure.Level
		if mode == "concurrency" {
			lvl, runErr = r.RunConcurrency(ctx, int(v))
		} else {
			lvl, runErr = r.RunRate(ctx, v)
		}
		if live {
			fmt.Fprint(os.Stderr, "\r\033[K")
		}
		if len(lvl.Windows) > 0 {
			res.Levels = append(res.Levels, lvl)
			printLevel(os.Stderr, lvl, f.percentile)
			if device != nil {
				printDevice(os.Stderr, device, lvl.Result)
			}
		}
		if runErr != nil || lvl.Truncated {
			fmt.Fprintln(os.Stderr, "ofabench: stopping the sweep: request or time budget spent")
			break
		}
	}
	if errors.Is(runErr, context.DeadlineExceeded) {
		runErr = nil // --max-duration is a bound, not a failure
	}
	if err := writeOutputs(f, res); err != nil {
		return err
	}
	if len(res.Levels) == 0 {
		return errors.Join(errors.New("no level completed a measurement window"), runErr)
	}
	return runErr
}

// warmUp sends n requests one at a time (TorchScript's first calls compile
// and profile) and fails if the last one fails.
func warmUp(ctx context.Context, do measure.DoFunc, n int) error {
	var last kserve.Outcome
	for i := range n {
		if last = do(ctx, uint64(i)); last.Status == "" {
			last.Err = nil
		}
	}
	if n > 0 && last.Status != "" {
		return fmt.Errorf("warm-up request failed (%s): %w", last.Status, last.Err)
	}
	return nil
}

func buildWorkload(f *benchFlags, meta kserve.ModelMetadata, batching bool) ([]kserve.Request, string, error) {
	if f.images != "" {
		imgs, err := workload.ReadImages(f.images)
		if err != nil {
			return nil, "", err
		}
		texts, err := workload.ReadTexts(f.hypotheses)
		if err != nil {
			return nil, "", err
		}
		reqs, err := workload.OFA(meta, imgs, texts, workload.OFAOptions{Batch: f.batch, Batching: batching})
		if err != nil {
			return nil, "", err
		}
		for i := range reqs {
			reqs[i].Version = f.version
		}
		return reqs, fmt.Sprintf("ofa: %d images, %d texts", len(imgs), len(texts)), nil
	}
	shapes := map[string][]int64{}
	for _, s := range f.shapes {
		name, dims, err := workload.ParseShape(s)
		if err != nil {
			return nil, "", err
		}
		shapes[name] = dims
	}
	reqs, err := workload.Raw(meta, workload.RawOptions{
		Batch: f.batch, Batching: batching, Shapes: shapes, Random: f.inputData == "random", Seed: f.seed,
	})
	if err != nil {
		return nil, "", err
	}
	for i := range reqs {
		reqs[i].Version = f.version
	}
	return reqs, "raw " + f.inputData + " tensors", nil
}

func printLevel(w io.Writer, l measure.Level, pct float64) {
	r := l.Result
	lat, name := r.AvgLatency, "avg"
	if pct > 0 {
		lat, name = r.Extra, "p"+strconv.FormatFloat(pct, 'g', -1, 64)
	}
	mode := "Concurrency"
	if l.Mode == "request_rate" {
		mode = "Request rate"
	}
	stable := ""
	if !l.Stable {
		stable = " (not stable)"
	}
	fmt.Fprintf(w, "%s: %g, throughput: %.2f infer/sec, latency %d usec (%s), p99 %d usec%s\n",
		mode, l.Value, r.Throughput, lat.Microseconds(), name, r.P99.Microseconds(), stable)
	if s := r.Server; s != nil {
		fmt.Fprintf(w, "  server: queue %d us, compute input %d us, infer %d us, output %d us, overhead %d us, avg batch %.2f, batches %v\n",
			s.Queue.Microseconds(), s.ComputeInput.Microseconds(), s.ComputeInfer.Microseconds(),
			s.ComputeOutput.Microseconds(), s.Overhead.Microseconds(), s.AvgBatch(), s.BatchSizes)
	} else if r.ServerEr != "" {
		fmt.Fprintf(w, "  server stats unavailable: %s\n", r.ServerEr)
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(w, "  errors: %v\n", r.Errors)
	}
	for st, msg := range l.ErrorSamples {
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		fmt.Fprintf(w, "  first %s: %s\n", st, msg)
	}
}

func writeOutputs(f *benchFlags, res *report.Result) error {
	if f.csvPath != "" {
		if err := writeFile(f.csvPath, func(w io.Writer) error { return report.WriteCSV(w, res.Levels, f.verboseCSV) }); err != nil {
			return err
		}
	}
	if f.jsonPath != "" {
		if err := writeFile(f.jsonPath, func(w io.Writer) error { return report.WriteJSON(w, res) }); err != nil {
			return err
		}
	}
	if f.plotPath != "" && len(res.Levels) > 0 {
		if err := report.PlotPNG(f.plotPath, res.Label, []*report.Result{res}); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, write func(io.Writer) error) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(fh); err != nil {
		fh.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return fh.Close()
}

// printDevice prints a simulated device's efficiency over a level's result: the server's executed samples
// (the device's figure, when the server's statistics were read) and the client's throughput.
func printDevice(w io.Writer, d *report.Device, r measure.Window) {
	if rate, ok := report.Executed(r); ok {
		fmt.Fprintf(w, "  device efficiency: %.3f (%.1f samples/s executed of %.1f ideal at batch %d); client-counted %.3f (%.1f samples/s)\n",
			d.Efficiency(rate), rate, d.IdealPerSec, d.Batch, d.Efficiency(r.Throughput), r.Throughput)
		return
	}
	fmt.Fprintf(w, "  device efficiency (client-counted, no server statistics): %.3f (%.1f of %.1f samples/s ideal at batch %d)\n",
		d.Efficiency(r.Throughput), r.Throughput, d.IdealPerSec, d.Batch)
}

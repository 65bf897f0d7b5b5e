// Command ofaserve serves the models of a Triton-style model repository over
// the KServe v2 / Triton inference protocol (HTTP and gRPC), with Prometheus
// metrics on a third port. Its flags carry tritonserver's names.
//
// Every model needs a config.pbtxt: --strict-model-config=false is accepted
// for compatibility, but ofaserve does not derive configs from model files.
//
// SIGINT or SIGTERM starts a graceful shutdown: the listeners close, in-flight
// and queued requests finish (up to --exit-timeout-secs), then the models
// unload. A second signal exits at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/backend/ensemble"
	torchbackend "github.com/ofaserve/ofaserve/backend/libtorch"
	"github.com/ofaserve/ofaserve/backend/ofa"
	"github.com/ofaserve/ofaserve/backend/simulated"
	"github.com/ofaserve/ofaserve/backend/workpool"
	"github.com/ofaserve/ofaserve/batcher"
	"github.com/ofaserve/ofaserve/libtorch"
	"github.com/ofaserve/ofaserve/logging"
	"github.com/ofaserve/ofaserve/repository"
	"github.com/ofaserve/ofaserve/repository/cache"
	"github.com/ofaserve/ofaserve/server"
	"github.com/ofaserve/ofaserve/tracing"
)

// config is the parsed command line.
type config struct {
	repo           string
	httpAddr       string
	grpcAddr       string
	metricsAddr    string
	httpPort       int
	grpcPort       int
	metricsPort    int
	mode           repository.ControlMode
	pollSecs       int
	loadModels     []string
	exitTimeout    time.Duration
	exitOnError    bool
	logVerbose     int
	logFormat      string
	logInfo        bool
	logWarning     bool
	logError       bool
	logFile        string
	metricsConfig  []string
	traceConfig    []string
	metrics        server.MetricsConfig
	trace          tracing.Config
	strict         bool
	maxInputSize   int64
	gpuMetrics     bool
	allowHTTP      bool
	allowGRPC      bool
	allowMetrics   bool
	modeName       string
	exitTimeoutSec int
	torchIntra     int
	prepWorkers    int
	cacheConfig    []string     // --cache-config values
	cache          cache.Config // parsed
	limits         limits
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("ofaserve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.repo, "model-repository", "", "path of the model repository (required)")
	fs.StringVar(&c.httpAddr, "http-address", "0.0.0.0", "address the HTTP endpoint binds")
	fs.IntVar(&c.httpPort, "http-port", 8000, "HTTP port (0 picks a free one)")
	fs.StringVar(&c.grpcAddr, "grpc-address", "0.0.0.0", "address the gRPC endpoint binds")
	fs.IntVar(&c.grpcPort, "grpc-port", 8001, "gRPC port (0 picks a free one)")
	fs.StringVar(&c.metricsAddr, "metrics-address", "0.0.0.0", "address the metrics endpoint binds")
	fs.IntVar(&c.metricsPort, "metrics-port", 8002, "metrics port (0 picks a free one)")
	fs.BoolVar(&c.allowHTTP, "allow-http", true, "serve HTTP")
	fs.BoolVar(&c.allowGRPC, "allow-grpc", true, "serve gRPC")
	fs.BoolVar(&c.allowMetrics, "allow-metrics", true, "serve metrics")
	fs.BoolVar(&c.gpuMetrics, "allow-gpu-metrics", true, "report GPU gauges when NVML is present")
	fs.StringVar(&c.modeName, "model-control-mode", "none", "none, explicit or poll")
	fs.IntVar(&c.pollSecs, "repository-poll-secs", 15, "rescan interval of --model-control-mode=poll")
	fs.Var((*stringList)(&c.loadModels), "load-model", "model to load at start-up with --model-control-mode=explicit (repeatable; * loads all)")
	fs.IntVar(&c.exitTimeoutSec, "exit-timeout-secs", 30, "how long a shutdown waits for in-flight and queued requests")
	fs.BoolVar(&c.exitOnError, "exit-on-error", true, "exit when a model fails to load at start-up")
	fs.IntVar(&c.logVerbose, "log-verbose", 0, "verbose logging level (>0 logs debug records, one per inference request among them); changeable at run time through /v2/logging")
	fs.StringVar(&c.logFormat, "log-format", "text", "log record format: text (Triton's default and ISO8601 are read as text) or json")
	fs.BoolVar(&c.logInfo, "log-info", true, "log info records")
	fs.BoolVar(&c.logWarning, "log-warning", true, "log warning records")
	fs.BoolVar(&c.logError, "log-error", true, "log error records")
	fs.StringVar(&c.logFile, "log-file", "", "append the log to this file instead of standard error")
	fs.Var((*stringList)(&c.metricsConfig), "metrics-config", "latency metrics, repeatable: counter_latencies=BOOL, summary_latencies=BOOL, summary_quantiles=Q:ERR,..., histogram_latencies=BOOL, histogram_buckets_ms=MS,...")
	fs.Var((*stringList)(&c.traceConfig), "trace-config", "tracing, repeatable: level=OFF|TIMESTAMPS|TENSORS, rate=N, count=N, mode=triton|opentelemetry, triton,file=PATH, triton,log-frequency=N, opentelemetry,url=URL, opentelemetry,resource=K=V, opentelemetry,bsp_*=N")
	fs.BoolVar(&c.strict, "strict-model-config", true, "require config.pbtxt (false is accepted but configs are still required)")
	fs.Int64Var(&c.maxInputSize, "http-max-input-size", 64<<20, "largest request body and decoded JSON tensor, in bytes")
	fs.IntVar(&c.torchIntra, "torch-intra-op-threads", 0, "threads one libtorch op may use, process-wide, set before models load (0: libtorch's default, OMP_NUM_THREADS or the physical cores); takes precedence over models' INTRA_OP_THREAD_COUNT")
	fs.IntVar(&c.prepWorkers, "preprocess-workers", 0, "requests prepared (images decoded, text tokenized) at once, shared round-robin by every model (0: the number of cores)")
	fs.Var((*stringList)(&c.cacheConfig), "cache-config", "response cache: local,size=BYTES (repeatable, as tritonserver's); models opt in with response_cache { enable: true }")
	c.limits.flags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := c.limits.check(); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if c.repo == "" {
		return nil, errors.New("--model-repository is required")
	}
	mode, err := repository.ParseControlMode(c.modeName)
	if err != nil {
		return nil, fmt.Errorf("--model-control-mode: %w", err)
	}
	c.mode = mode
	if c.cache, err = cache.ParseConfig(c.cacheConfig); err != nil {
		return nil, err
	}
	if len(c.loadModels) > 0 && mode != repository.ModeExplicit {
		return nil, errors.New("--load-model needs --model-control-mode=explicit")
	}
	if c.pollSecs < 1 {
		return nil, errors.New("--repository-poll-secs must be at least 1")
	}
	if c.exitTimeoutSec < 0 {
		return nil, errors.New("--exit-timeout-secs must not be negative")
	}
	c.exitTimeout = time.Duration(c.exitTimeoutSec) * time.Second
	if c.maxInputSize <= 0 {
		return nil, errors.New("--http-max-input-size must be positive")
	}
	if _, err := logging.ParseFormat(c.logFormat); err != nil || c.logFormat == "" {
		return nil, fmt.Errorf("--log-format must be text or json, not %q", c.logFormat)
	}
	if c.logVerbose < 0 {
		return nil, fmt.Errorf("--log-verbose must not be negative")
	}
	if c.metrics, err = server.ParseMetricsConfig(c.metricsConfig); err != nil {
		return nil, err
	}
	if c.trace, err = tracing.ParseConfig(c.traceConfig); err != nil {
		return nil, err
	}
	if c.torchIntra < 0 || c.torchIntra > libtorch.MaxThreads {
		return nil, fmt.Errorf("--torch-intra-op-threads must be 0 (libtorch's default) to %d, not %d", libtorch.MaxThreads, c.torchIntra)
	}
	for _, p := range []int{c.httpPort, c.grpcPort, c.metricsPort} {
		if p < 0 || p > 65535 {
			return nil, fmt.Errorf("port %d out of range", p)
		}
	}
	return c, nil
}

// newLogger builds the server's logger over a logging control, which the
// logging extension changes at run time.
func newLogger(c *config, w io.Writer) (*logging.Control, error) {
	return logging.New(w, logging.Settings{File: c.logFile, Info: c.logInfo, Warning: c.logWarning, Error: c.logError,
		VerboseLevel: uint32(c.logVerbose), Format: c.logFormat})
}

// loaders are the model kinds this binary serves. The two TorchScript kinds
// run through backend/instances, so both honour Triton's
// INTRA_OP_THREAD_COUNT / INTER_OP_THREAD_COUNT; ensembles run their steps
// on the models steps finds.
func loaders(steps ensemble.Models) map[string]backend.Loader {
	return map[string]backend.Loader{
		repository.BackendPytorch: torchbackend.Load,
		"ofa":                     ofa.Load,
		ensemble.Platform:         ensemble.NewLoader(steps),
		simulated.Platform:        simulated.Load,
	}
}

// predictForm is POST /predict for the ofa kind: the OFA tutorial's form
// fields as the model's inputs, its answer the RESULT JSON.
func predictForm() *server.Predict {
	return &server.Predict{
		Model: ofa.ModelName,
		Fields: []server.PredictField{
			{Name: "image", Input: ofa.InputImage, Required: true, File: true},
			{Name: "hypothesis", Input: ofa.InputHypothesis, Required: true},
			{Name: "premise", Input: ofa.InputPremise},
		},
		Output: ofa.OutputResult,
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, stop, os.Args[1:], os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "ofaserve:", err)
		}
		os.Exit(1)
	}
}

// run serves until ctx is done, then shuts down gracefully. release, called
// once shutdown starts, restores default signal handling so that a second
// signal kills the process.
func run(ctx context.Context, release func(), args []string, logOut io.Writer) error {
	c, err := parseFlags(args, logOut)
	if err != nil {
		return err
	}
	if c.logFile != "" {
		f, err := os.OpenFile(c.logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("--log-file: %w", err)
		}
		defer f.Close()
		logOut = f
	}
	logCtl, err := newLogger(c, logOut)
	if err != nil {
		return err
	}
	log := logCtl.Logger()
	if !c.strict {
		log.Warn("--strict-model-config=false: ofaserve does not auto-complete configs; every model still needs config.pbtxt")
	}
	// libtorch's threads are process-wide: set them before any model loads,
	// so that the flag wins over models' INTRA_OP_THREAD_COUNT.
	if c.torchIntra > 0 {
		if err := libtorch.SetNumThreads(c.torchIntra); err != nil {
			return fmt.Errorf("--torch-intra-op-threads: %w", err)
		}
	}
	log.Info("libtorch CPU threads", "intra_op", libtorch.NumThreads(), "inter_op", libtorch.NumInteropThreads())
	gpus := libtorch.DeviceCount()
	tracer, err := tracing.New(ctx, c.trace, log)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tracer.Close(cctx); err != nil {
			log.Warn("writing the last traces", "err", err)
		}
	}()
	// The server is built before any model loads: each version's batcher
	// observer (latency metrics, traces) comes from it.
	var srv *server.Server
	var respCache *cache.Cache
	if c.cache.Size > 0 {
		if respCache, err = cache.New(c.cache.Size); err != nil {
			return fmt.Errorf("--cache-config: %w", err)
		}
		log.Info("response cache", "cache", "local", "size", c.cache.Size)
	}
	steps := &stepModels{}
	pool := workpool.New(c.prepWorkers)
	repo, err := repository.New(repository.Options{
		Root: c.repo, Loaders: backend.WithPool(pool, loaders(steps)), Mode: c.mode,
		PollInterval: time.Duration(c.pollSecs) * time.Second, StartupModels: c.loadModels,
		GPUs: gpus, Logger: log, Cache: respCache,
		Observer: func(name string, version int64) batcher.Observer { return srv.Observer(name, version) },
	})
	if err != nil {
		return err
	}
	steps.r = repo
	opts := server.Options{MaxInputSize: c.maxInputSize, GPUMetrics: c.gpuMetrics, Predict: predictForm(),
		Metrics: &c.metrics, Tracer: tracer, Logging: logCtl, PreprocessStats: poolStats(pool)}
	c.limits.apply(&opts)
	srv, err = server.New(opts, serverRepository{repo}, log)
	if err != nil {
		return err
	}
	log.Info("starting", "model_repository", c.repo, "model_control_mode", c.mode.String(), "gpus", gpus)
	closeRepo := func() {
		cctx, cancel := context.WithTimeout(context.Background(), c.exitTimeout)
		defer cancel()
		if err := repo.Close(cctx); err != nil {
			log.Warn("unloading models", "err", err)
		}
	}
	if err := repo.Start(ctx); err != nil {
		if c.exitOnError {
			closeRepo()
			return fmt.Errorf("models failed to load (--exit-on-error=false serves the others): %w", err)
		}
		log.Error("some models failed to load", "err", err)
	}

	var lns [3]net.Listener
	for i, l := range []struct {
		on   bool
		addr string
		port int
		name string
	}{{c.allowHTTP, c.httpAddr, c.httpPort, "http"}, {c.allowGRPC, c.grpcAddr, c.grpcPort, "grpc"}, {c.allowMetrics, c.metricsAddr, c.metricsPort, "metrics"}} {
		if !l.on {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(l.addr, strconv.Itoa(l.port)))
		if err != nil {
			for _, prev := range lns {
				if prev != nil {
					_ = prev.Close()
				}
			}
			closeRepo()
			return fmt.Errorf("%s endpoint: %w", l.name, err)
		}
		lns[i] = ln
		log.Info("listening", "endpoint", l.name, "address", ln.Addr().String())
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.Background(), lns[0], lns[1], lns[2]) }()
	var serveErr error
	select {
	case <-ctx.Done():
		release()
		log.Info("shutting down: finishing in-flight and queued requests", "exit_timeout", c.exitTimeout)
	case serveErr = <-errc:
		log.Error("serving failed", "err", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), c.exitTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("server shutdown", "err", err)
	}
	if serveErr == nil {
		serveErr = <-errc
	}
	if err := repo.Close(sctx); err != nil {
		log.Warn("unloading models", "err", err)
	}
	log.Info("stopped")
	return serveErr
}

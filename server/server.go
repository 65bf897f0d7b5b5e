package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
	"github.com/ofaserve/ofaserve/logging"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
	"github.com/ofaserve/ofaserve/tracing"
)

// Repository is what the server needs from the model repository.
type Repository interface {
	// Model returns a model version; version kserve.LatestVersion (0) means
	// the latest ready version. Errors carry backend codes and Triton's
	// messages (NOT_FOUND for an unknown model or version, UNAVAILABLE for
	// one not ready).
	Model(name string, version int64) (Model, error)
	// Index lists every known model version (only ready ones if readyOnly).
	Index(readyOnly bool) []IndexEntry
	// Load loads or reloads a model (override, if not nil, replaces its
	// config); Unload unloads it. Both fail with INVALID_ARG when model
	// control is not explicit.
	Load(ctx context.Context, name string, override *modelconfig.ModelConfig) error
	Unload(ctx context.Context, name string) error
	// Ready reports whether every model the server was asked to serve at
	// start-up is ready.
	Ready() bool
}

// IndexEntry is one row of the repository index (docs/triton-batcher-and-kserve-v2.md §2.1).
type IndexEntry struct {
	Name    string
	Version int64 // 0 when no version is known
	State   string
	Reason  string
}

// Prechecker is what a Model may add to refuse a request before it is read: Precheck answers an error (the
// repository's handle: UNAVAILABLE when every level of the model's queue is full) when the model would
// refuse any request now. The inference handlers call it before they read or decode a body.
type Prechecker interface {
	Precheck() error
}

// precheck is m's Precheck, or nil when m has none.
func precheck(m Model) error {
	if p, ok := m.(Prechecker); ok {
		return p.Precheck()
	}
	return nil
}

// Model is one loaded version of a model, as the server sees it.
type Model interface {
	Name() string
	Version() int64
	Platform() string
	Config() *modelconfig.ModelConfig
	// Signature is the model's request contract: max_batch_size and the
	// declared tensors without the batch dimension.
	Signature() *backend.Signature
	Ready() bool
	// Infer validates req against the signature (Signature.Validate, with
	// Triton's messages) and runs it.
	Infer(ctx context.Context, req *backend.Request) (*backend.Response, error)
	Stats() batcher.Stats
}

// Options configure a Server. The zero value is usable.
type Options struct {
	// Name and Version are reported by server metadata ("triton" and our
	// version by default).
	Name, Version string
	// PreprocessStats, when set, reads the preprocessing pool's statistics
	// for /metrics (nv_preprocess_*).
	PreprocessStats func() PoolStats
	// MaxInputSize caps a request body, compressed and decompressed, and the
	// decoded size of one JSON tensor (default 64 MiB, as Triton).
	MaxInputSize int64
	// GPUMetrics enables the NVML gauges when NVML is present.
	GPUMetrics bool
	// Predict configures POST /predict; nil leaves the endpoint out.
	Predict *Predict
	// Metrics chooses the latency families of /metrics (--metrics-config);
	// nil is DefaultMetricsConfig.
	Metrics *MetricsConfig
	// Tracer samples and writes traces (--trace-config) and serves the
	// trace extension's settings; nil is a tracer with Triton's defaults
	// (mode triton, level OFF, no file). Its owner closes it, after
	// Shutdown.
	Tracer *tracing.Tracer
	// Logging controls the handler of the server's logger at run time (the
	// logging extension); nil leaves the extension out.
	Logging *logging.Control
	// ReadTimeout bounds reading one HTTP request, body included, and
	// IdleTimeout an idle keep-alive connection; zero is no bound.
	// WriteTimeout bounds a request from the end of its headers to the end
	// of its response, inference included, so zero (none) is the sensible
	// default: a slow legitimate inference must not be cut; queue timeouts
	// and the client's own deadline bound it instead.
	ReadTimeout, IdleTimeout, WriteTimeout time.Duration
	// GRPCMaxConcurrentStreams caps the streams (calls) one gRPC connection
	// runs at once; 0 is gRPC's default (no cap). A gRPC message larger than
	// MaxInputSize is refused with RESOURCE_EXHAUSTED before it is read.
	GRPCMaxConcurrentStreams uint32
	// TLS, when set, serves HTTP and/or gRPC over TLS.
	TLS TLSOptions
	// Restricted lists API groups that need a header (HTTP) or metadata
	// key (gRPC) with a given value (--http-restricted-api,
	// --grpc-restricted-protocol); empty is open.
	HTTPRestricted, GRPCRestricted Restrictions
	// MemoryReturnInterval is how often Serve checks whether the heap has
	// shrunk after a burst and returns the freed memory to the OS; zero
	// leaves the check off.
	MemoryReturnInterval time.Duration
}

const defaultMaxInputSize = 64 << 20

// Server serves the KServe v2 protocol over HTTP and gRPC and the metrics.
type Server struct {
	opts   Options
	repo   Repository
	log    *slog.Logger
	router *gin.Engine
	grpc   *grpc.Server
	reg    *prometheus.Registry
	gpu    *gpuCollector
	// latency holds the per-request latency distributions; nil when
	// neither summaries nor histograms are on.
	latency *latencyCollector
	tracer  *tracing.Tracer
	// httpTLS is the HTTP endpoint's TLS configuration; nil serves plain.
	httpTLS *tls.Config

	mu       sync.Mutex
	httpSrv  *http.Server
	metrics  *http.Server
	shutdown bool
}

// New builds a server over repo. logger may be nil.
func New(opts Options, repo Repository, logger *slog.Logger) (*Server, error) {
	if repo == nil {
		return nil, errors.New("server: nil repository")
	}
	if opts.Name == "" {
		opts.Name = "triton"
	}
	if opts.Version == "" {
		opts.Version = "2.50.0-ofaserve"
	}
	if opts.MaxInputSize <= 0 {
		opts.MaxInputSize = defaultMaxInputSize
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, repo: repo, log: logger, tracer: opts.Tracer}
	if s.tracer == nil {
		t, err := tracing.New(context.Background(), tracing.DefaultConfig(), logger)
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		s.tracer = t
	}
	s.router = s.newRouter()
	g, err := s.newGRPC()
	if err != nil {
		return nil, err
	}
	s.grpc = g
	if s.httpTLS, err = opts.TLS.httpTLS(); err != nil {
		return nil, err
	}
	mc := DefaultMetricsConfig()
	if opts.Metrics != nil {
		mc = *opts.Metrics
	}
	s.reg = prometheus.NewRegistry()
	if err := s.reg.Register(&modelCollector{repo: repo, counters: mc.CounterLatencies}); err != nil {
		return nil, fmt.Errorf("server: register metrics: %w", err)
	}
	if err := s.reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("server: register Go metrics: %w", err)
	}
	if err := s.reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("server: register process metrics: %w", err)
	}
	if err := s.reg.Register(&cacheCollector{repo: repo}); err != nil {
		return nil, fmt.Errorf("server: register cache metrics: %w", err)
	}
	if opts.PreprocessStats != nil {
		if err := s.reg.Register(poolCollector{stats: opts.PreprocessStats}); err != nil {
			return nil, fmt.Errorf("server: register preprocessing metrics: %w", err)
		}
	}
	if mc.SummaryLatencies || mc.HistogramLatencies {
		s.latency = &latencyCollector{cfg: mc, repo: repo, models: map[modelKey]*modelLatency{}}
		if err := s.reg.Register(s.latency); err != nil {
			return nil, fmt.Errorf("server: register latency metrics: %w", err)
		}
	}
	if opts.GPUMetrics {
		if g := newGPUCollector(logger); g != nil {
			s.gpu = g
			if err := s.reg.Register(g); err != nil {
				return nil, fmt.Errorf("server: register GPU metrics: %w", err)
			}
		}
	}
	return s, nil
}

// HTTPHandler returns the HTTP/REST handler (for tests and embedding).
func (s *Server) HTTPHandler() http.Handler { return s.router }

// GRPCServer returns the gRPC server (for tests and embedding).
func (s *Server) GRPCServer() *grpc.Server { return s.grpc }

// MetricsHandler returns the handler of the metrics listener.
func (s *Server) MetricsHandler() http.Handler { return s.metricsHandler() }

// Serve serves on the given listeners until ctx is done or Shutdown is
// called; any listener may be nil to leave that protocol off. It returns
// the first serving error, or nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, httpLn, grpcLn, metricsLn net.Listener) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return errors.New("server: already shut down")
	}
	if httpLn != nil {
		s.httpSrv = &http.Server{Handler: s.router, ReadHeaderTimeout: 30 * time.Second,
			ReadTimeout: s.opts.ReadTimeout, IdleTimeout: s.opts.IdleTimeout, WriteTimeout: s.opts.WriteTimeout,
			TLSConfig: s.httpTLS}
		if s.opts.ReadTimeout > 0 && s.opts.ReadTimeout < 30*time.Second {
			s.httpSrv.ReadHeaderTimeout = s.opts.ReadTimeout
		}
	}
	if metricsLn != nil {
		s.metrics = &http.Server{Handler: s.metricsHandler(), ReadHeaderTimeout: 30 * time.Second}
	}
	httpSrv, metricsSrv := s.httpSrv, s.metrics
	s.mu.Unlock()

	if s.opts.MemoryReturnInterval > 0 {
		mctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go newMemoryReturner(s.opts.MemoryReturnInterval).run(mctx)
	}
	errc := make(chan error, 3)
	n := 0
	if httpLn != nil {
		n++
		go func() { errc <- ignoreClosed(s.serveHTTP(httpSrv, httpLn)) }()
	}
	if grpcLn != nil {
		n++
		go func() { errc <- s.grpc.Serve(grpcLn) }()
	}
	if metricsLn != nil {
		n++
		go func() { errc <- ignoreClosed(metricsSrv.Serve(metricsLn)) }()
	}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = s.Shutdown(sctx)
	})
	defer stop()
	var first error
	for range n {
		if err := <-errc; err != nil && first == nil {
			first = err
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = s.Shutdown(sctx)
			cancel()
		}
	}
	return first
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits, up to ctx, for in-flight
// requests to finish; then it closes whatever is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	httpSrv, metricsSrv := s.httpSrv, s.metrics
	s.mu.Unlock()

	var wg sync.WaitGroup
	var errs []error
	var emu sync.Mutex
	add := func(err error) {
		if err != nil {
			emu.Lock()
			errs = append(errs, err)
			emu.Unlock()
		}
	}
	if httpSrv != nil {
		wg.Go(func() { add(httpSrv.Shutdown(ctx)) })
	}
	if metricsSrv != nil {
		wg.Go(func() { add(metricsSrv.Shutdown(ctx)) })
	}
	wg.Go(func() {
		done := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			s.grpc.Stop()
			add(ctx.Err())
		}
	})
	wg.Wait()
	return errors.Join(errs...)
}

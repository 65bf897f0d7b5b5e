package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Triton's trace timestamp names. The frontend stamps its own (HTTP_* or GRPC_*); the batcher's observation
// gives the rest.
const (
	HTTPRecvStart      = "HTTP_RECV_START"
	HTTPRecvEnd        = "HTTP_RECV_END"
	HTTPSendStart      = "HTTP_SEND_START"
	HTTPSendEnd        = "HTTP_SEND_END"
	GRPCWaitReadStart  = "GRPC_WAITREAD_START"
	GRPCWaitReadEnd    = "GRPC_WAITREAD_END"
	GRPCSendStart      = "GRPC_SEND_START"
	GRPCSendEnd        = "GRPC_SEND_END"
	RequestStart       = "REQUEST_START"
	QueueStart         = "QUEUE_START"
	ComputeStart       = "COMPUTE_START"
	ComputeInputEnd    = "COMPUTE_INPUT_END"
	ComputeOutputStart = "COMPUTE_OUTPUT_START"
	ComputeEnd         = "COMPUTE_END"
	RequestEnd         = "REQUEST_END"
)

// The tensor activities of the TENSORS level.
const (
	TensorQueueInput    = "TENSOR_QUEUE_INPUT"
	TensorBackendOutput = "TENSOR_BACKEND_OUTPUT"
)

// Tracer decides which requests are traced (the settings of the trace extension) and writes the traces
// of its mode: Triton's JSON trace file, or OpenTelemetry spans over OTLP/HTTP. It is safe for concurrent
// use; Close flushes what is left.
type Tracer struct {
	cfg      Config
	settings *settings
	anyOn    atomic.Bool // some setting's level is not OFF: the fast path when none is
	nextID   atomic.Uint64
	file     *fileSink
	otel     *otelSink
	log      *slog.Logger
	base     time.Time // the clock origin of the file's ns timestamps
}

// New starts a tracer for cfg (ParseConfig's, or DefaultConfig); in opentelemetry mode it sets up the
// OTLP/HTTP exporter, which connects only when spans are exported. logger may be nil.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Tracer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Tracer{cfg: cfg, settings: newSettings(cfg.Setting), log: logger, base: time.Now()}
	switch cfg.Mode {
	case ModeTriton:
		t.file = &fileSink{path: cfg.Setting.File, log: logger}
	case ModeOpenTelemetry:
		o, err := newOTelSink(ctx, cfg.OTel)
		if err != nil {
			return nil, fmt.Errorf("tracing: %w", err)
		}
		t.otel = o
	default:
		return nil, fmt.Errorf("tracing: unknown mode %q", cfg.Mode)
	}
	t.anyOn.Store(cfg.Setting.Level != Off)
	return t, nil
}

// Mode is the tracer's mode.
func (t *Tracer) Mode() Mode { return t.cfg.Mode }

// Setting returns the setting in force for model ("" for the global one).
func (t *Tracer) Setting(model string) Setting { return t.settings.get(model) }

// Update changes model's setting ("" for the global one) and returns the setting now in force. It refuses
// what the mode cannot do: a level in triton mode without a trace file, TENSORS in opentelemetry mode.
func (t *Tracer) Update(model string, u Update) (Setting, error) {
	if u.Set&fLevel != 0 {
		if t.cfg.Mode == ModeOpenTelemetry && u.Level&Tensors != 0 {
			return Setting{}, errTensorsOTel
		}
		if t.cfg.Mode == ModeTriton && u.Level != Off && t.cfg.Setting.File == "" {
			return Setting{}, errNoFile
		}
	}
	s := t.settings.update(model, u)
	t.anyOn.Store(t.settings.anyOn())
	return s, nil
}

// anyOn reports whether the global setting or a model's own level is not OFF.
func (s *settings) anyOn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.global.set.Level != Off {
		return true
	}
	for _, o := range s.models {
		if o.has&fLevel != 0 && o.set.Level != Off {
			return true
		}
	}
	return false
}

// Values renders a setting as the trace extension answers it (HTTP and gRPC alike): every value a list
// of strings, trace_level the only one with more than one. In opentelemetry mode log_frequency and
// trace_file give way to the exporter's settings.
func (t *Tracer) Values(s Setting) map[string][]string {
	v := map[string][]string{
		"trace_level": s.Level.Strings(),
		"trace_rate":  {strconv.FormatUint(uint64(s.Rate), 10)},
		"trace_count": {strconv.FormatInt(int64(s.Count), 10)},
		"trace_mode":  {string(t.cfg.Mode)},
	}
	if t.cfg.Mode == ModeTriton {
		v["log_frequency"] = []string{strconv.FormatUint(uint64(s.LogFrequency), 10)}
		v["trace_file"] = []string{s.File}
		return v
	}
	o := t.cfg.OTel
	v["url"] = []string{o.URL}
	v["bsp_max_queue_size"] = []string{strconv.Itoa(o.BSPMaxQueueSize)}
	v["bsp_schedule_delay"] = []string{strconv.FormatInt(o.BSPScheduleDelay.Milliseconds(), 10)}
	v["bsp_max_export_batch_size"] = []string{strconv.Itoa(o.BSPMaxExportBatchSize)}
	for _, kv := range o.Resource {
		v["resource"] = append(v["resource"], kv[0]+"="+kv[1])
	}
	return v
}

// Start samples a request to model: it returns nil when the request is not traced (the common case, and
// cheap when every level is OFF), or a Trace to stamp and Finish. carrier holds the request's headers or
// metadata; in opentelemetry mode a W3C traceparent in it makes the trace a child of the caller's span and
// is traced whatever the rate and count.
func (t *Tracer) Start(model string, version int64, requestID string, carrier propagation.TextMapCarrier) *Trace {
	if t == nil || !t.anyOn.Load() {
		return nil
	}
	var remote trace.SpanContext
	if t.otel != nil && carrier != nil {
		remote = RemoteParent(carrier)
	}
	set, ok := t.settings.sample(model, remote.IsValid())
	if !ok {
		return nil
	}
	return &Trace{tracer: t, id: t.nextID.Add(1), model: model, version: version, requestID: requestID,
		level: set.Level, logFrequency: set.LogFrequency, remote: remote}
}

// RemoteParent reads the caller's span context from a W3C traceparent (and tracestate) in carrier; the
// result is invalid when there is none or it is malformed.
func RemoteParent(carrier propagation.TextMapCarrier) trace.SpanContext {
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier))
}

// Close writes the traces still held (triton mode: to the trace file, or its next indexed part) and
// flushes and stops the OpenTelemetry exporter, within ctx.
func (t *Tracer) Close(ctx context.Context) error {
	if t.file != nil {
		return t.file.close()
	}
	return t.otel.close(ctx)
}

// Stamp is one named timestamp of a trace.
type Stamp struct {
	Name string
	At   time.Time
}

// Trace is one traced request: its timestamps, its tensors at the TENSORS level, and the traces of the
// models it ran on its behalf (ensemble steps) as children. It is safe for concurrent use; what is added
// after Finish is dropped.
type Trace struct {
	tracer       *Tracer
	id, parent   uint64
	model        string
	version      int64
	requestID    string
	level        Level
	logFrequency uint32
	remote       trace.SpanContext

	mu       sync.Mutex
	stamps   []Stamp
	tensors  []tensor
	children []*Trace
	done     bool
}

// ID is the trace's id in the trace file (Triton's trace id, counted from 1).
func (tr *Trace) ID() uint64 { return tr.id }

// Level is what this trace records.
func (tr *Trace) Level() Level { return tr.level }

// Model is the model and version the trace is for.
func (tr *Trace) Model() (string, int64) { return tr.model, tr.version }

// SetRequestID sets the request id written with the trace.
func (tr *Trace) SetRequestID(id string) {
	tr.mu.Lock()
	tr.requestID = id
	tr.mu.Unlock()
}

// Stamp records a named timestamp.
func (tr *Trace) Stamp(name string, at time.Time) {
	tr.mu.Lock()
	if !tr.done {
		tr.stamps = append(tr.stamps, Stamp{name, at})
	}
	tr.mu.Unlock()
}

// Has reports whether a timestamp of that name was recorded.
func (tr *Trace) Has(name string) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.ContainsFunc(tr.stamps, func(s Stamp) bool { return s.Name == name })
}

// Stamps returns the recorded timestamps in time order (ties in the order they were recorded).
func (tr *Trace) Stamps() []Stamp {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := slices.Clone(tr.stamps)
	slices.SortStableFunc(out, func(a, b Stamp) int { return a.At.Compare(b.At) })
	return out
}

// Child starts the trace of a model run on this request's behalf (an ensemble step): its own id, this
// trace's id as parent_id, written and exported with this trace when it finishes.
func (tr *Trace) Child(model string, version int64) *Trace {
	c := &Trace{tracer: tr.tracer, id: tr.tracer.nextID.Add(1), parent: tr.id, model: model, version: version,
		requestID: tr.requestID, level: tr.level, logFrequency: tr.logFrequency, remote: tr.remote}
	tr.mu.Lock()
	if !tr.done {
		tr.children = append(tr.children, c)
	}
	tr.mu.Unlock()
	return c
}

// Finish ends the trace: in triton mode its entries (and its children's) go to the trace file, every
// log_frequency traces or at Close; in opentelemetry mode its spans go to the exporter.
func (tr *Trace) Finish() {
	tr.mu.Lock()
	if tr.done {
		tr.mu.Unlock()
		return
	}
	tr.done = true
	children := tr.children
	tr.mu.Unlock()
	for _, c := range children {
		c.mu.Lock()
		c.done = true
		c.mu.Unlock()
	}
	t := tr.tracer
	if t.file != nil {
		t.file.add(tr.fileEntries(children), 1+len(children), tr.logFrequency)
		return
	}
	t.otel.export(tr, children)
}

type traceKey struct{}

// NewContext returns ctx carrying tr, for the layers below the frontend (the batcher's observer).
func NewContext(ctx context.Context, tr *Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, tr)
}

// FromContext returns the trace ctx carries, or nil.
func FromContext(ctx context.Context) *Trace {
	tr, _ := ctx.Value(traceKey{}).(*Trace)
	return tr
}

package tracing

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// In opentelemetry mode a trace becomes Triton's three kinds of spans (docs: Triton's trace.md,
// "OpenTelemetry trace support"): a top-level span for the frontend (its HTTP_* or GRPC_* timestamps as
// events), a model span per model that ran (REQUEST_START, QUEUE_START, REQUEST_END; an ensemble step's
// model span is a child of its ensemble's) and a compute span under it (COMPUTE_*). The spans are built
// when the trace finishes, with the recorded times, and leave through a batch span processor to the
// OTLP/HTTP exporter. The top-level span is a child of the caller's span when a traceparent came in.

// otelSink owns the SDK tracer provider.
type otelSink struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
}

func newOTelSink(ctx context.Context, cfg OTelConfig) (*otelSink, error) {
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.URL))
	if err != nil {
		return nil, fmt.Errorf("OTLP/HTTP exporter for %s: %w", cfg.URL, err)
	}
	attrs := make([]attribute.KeyValue, len(cfg.Resource))
	for i, kv := range cfg.Resource {
		attrs[i] = attribute.String(kv[0], kv[1])
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
		// Sampling is the trace extension's (rate, count, level): every span that reaches the SDK is kept.
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(exp,
			sdktrace.WithMaxQueueSize(cfg.BSPMaxQueueSize),
			sdktrace.WithBatchTimeout(cfg.BSPScheduleDelay),
			sdktrace.WithMaxExportBatchSize(cfg.BSPMaxExportBatchSize)),
	)
	return &otelSink{tp: tp, tracer: tp.Tracer("github.com/ofaserve/ofaserve/tracing")}, nil
}

func (o *otelSink) close(ctx context.Context) error {
	if err := o.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: flushing OpenTelemetry spans: %w", err)
	}
	return nil
}

func isFrontend(name string) bool {
	return strings.HasPrefix(name, "HTTP_") || strings.HasPrefix(name, "GRPC_")
}

func isCompute(name string) bool { return strings.HasPrefix(name, "COMPUTE_") }

// export builds and ends the spans of a finished trace and its children.
func (o *otelSink) export(tr *Trace, children []*Trace) {
	ctx := context.Background()
	if tr.remote.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, tr.remote)
	}
	stamps := tr.Stamps()
	if len(stamps) == 0 {
		return
	}
	var front []Stamp
	for _, s := range stamps {
		if isFrontend(s.Name) {
			front = append(front, s)
		}
	}
	first, last := stamps[0].At, stamps[len(stamps)-1].At
	ctx, root := o.tracer.Start(ctx, "InferRequest", trace.WithTimestamp(first), trace.WithSpanKind(trace.SpanKindServer))
	for _, s := range front {
		root.AddEvent(s.Name, trace.WithTimestamp(s.At))
	}
	mctx := o.modelSpans(ctx, tr, stamps)
	for _, c := range children {
		o.modelSpans(mctx, c, c.Stamps())
	}
	root.End(trace.WithTimestamp(last))
}

// modelSpans adds the model span of t (and its compute span) under ctx and returns the model span's context.
func (o *otelSink) modelSpans(ctx context.Context, t *Trace, stamps []Stamp) context.Context {
	var model, compute []Stamp
	for _, s := range stamps {
		switch {
		case isCompute(s.Name):
			compute = append(compute, s)
		case !isFrontend(s.Name):
			model = append(model, s)
		}
	}
	if len(model) == 0 && len(compute) == 0 {
		return ctx
	}
	t.mu.Lock()
	attrs := []attribute.KeyValue{
		attribute.String("model_name", t.model), attribute.Int64("model_version", t.version),
		attribute.String("request_id", t.requestID), attribute.Int64("trace_id", int64(t.id)),
	}
	if t.parent != 0 {
		attrs = append(attrs, attribute.Int64("parent_id", int64(t.parent)))
	}
	t.mu.Unlock()
	start, end := bounds(model, compute)
	mctx, span := o.tracer.Start(ctx, t.model, trace.WithTimestamp(start), trace.WithAttributes(attrs...))
	for _, s := range model {
		span.AddEvent(s.Name, trace.WithTimestamp(s.At))
	}
	if len(compute) > 0 {
		_, cs := o.tracer.Start(mctx, "compute", trace.WithTimestamp(compute[0].At))
		for _, s := range compute {
			cs.AddEvent(s.Name, trace.WithTimestamp(s.At))
		}
		cs.End(trace.WithTimestamp(compute[len(compute)-1].At))
	}
	span.End(trace.WithTimestamp(end))
	return mctx
}

// bounds is the earliest and latest time of two sorted stamp lists, either of which may be empty.
func bounds(a, b []Stamp) (start, end time.Time) {
	for _, l := range [][]Stamp{a, b} {
		if len(l) == 0 {
			continue
		}
		if start.IsZero() || l[0].At.Before(start) {
			start = l[0].At
		}
		if l[len(l)-1].At.After(end) {
			end = l[len(l)-1].At
		}
	}
	return start, end
}

package tracing

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/ofaserve/ofaserve/internal/otlptest"
)

const (
	callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan  = "00f067aa0ba902b7"
)

func newOTelTracer(t *testing.T, url string, args ...string) *Tracer {
	t.Helper()
	cfg, err := ParseConfig(append([]string{"mode=opentelemetry", "opentelemetry,url=" + url,
		"opentelemetry,bsp_schedule_delay=50", "opentelemetry,resource=service.name=ofaserve-test"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// A request that carries the caller's traceparent is exported as the caller's trace: the top-level span a
// child of the caller's span, the model span under it and the compute span under that, with Triton's
// timestamps as events; the rate does not apply to it.
func TestOpenTelemetryExport(t *testing.T) {
	rcv := otlptest.Start()
	defer rcv.Close()
	tr := newOTelTracer(t, rcv.URL, "level=TIMESTAMPS", "rate=0")
	if tr.Start("m", 1, "", propagation.HeaderCarrier(http.Header{})) != nil {
		t.Fatal("rate 0 traced a request without a propagated context")
	}
	h := http.Header{}
	h.Set("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	x := tr.Start("m", 1, "req-1", propagation.HeaderCarrier(h))
	if x == nil {
		t.Fatal("a request with a traceparent was not traced")
	}
	t0 := time.Now()
	x.Stamp(HTTPRecvStart, t0)
	for i, name := range order {
		x.Stamp(name, t0.Add(time.Duration(i+1)*time.Millisecond))
	}
	x.Stamp(HTTPSendEnd, t0.Add(10*time.Millisecond))
	x.Finish()

	spans := rcv.WaitSpans(callerTrace, 3, 10*time.Second)
	if len(spans) != 3 {
		t.Fatalf("received %d spans of the caller's trace (errors %v, all %d)", len(spans), rcv.Errors(), len(rcv.Spans()))
	}
	byName := map[string]otlptest.Span{}
	for _, s := range spans {
		byName[s.GetName()] = s
	}
	root, model, compute := byName["InferRequest"], byName["m"], byName["compute"]
	if root.Span == nil || model.Span == nil || compute.Span == nil {
		t.Fatalf("spans %v, want InferRequest, m and compute", byName)
	}
	if root.ParentSpanID() != callerSpan || model.ParentSpanID() != root.SpanID() || compute.ParentSpanID() != model.SpanID() {
		t.Fatalf("parents: root %s (want %s), model %s (want %s), compute %s (want %s)",
			root.ParentSpanID(), callerSpan, model.ParentSpanID(), root.SpanID(), compute.ParentSpanID(), model.SpanID())
	}
	if root.Resource["service.name"] != "ofaserve-test" {
		t.Errorf("resource %v", root.Resource)
	}
	events := func(s otlptest.Span) (names []string) {
		for _, e := range s.GetEvents() {
			names = append(names, e.GetName())
		}
		return names
	}
	if got := strings.Join(events(model), " "); got != "REQUEST_START QUEUE_START REQUEST_END" {
		t.Errorf("model span events %q", got)
	}
	if got := strings.Join(events(compute), " "); got != "COMPUTE_START COMPUTE_INPUT_END COMPUTE_OUTPUT_START COMPUTE_END" {
		t.Errorf("compute span events %q", got)
	}
	if got := strings.Join(events(root), " "); got != "HTTP_RECV_START HTTP_SEND_END" {
		t.Errorf("top-level span events %q", got)
	}
	if root.GetStartTimeUnixNano() != uint64(t0.UnixNano()) || compute.GetEndTimeUnixNano() != uint64(t0.Add(6*time.Millisecond).UnixNano()) {
		t.Errorf("span times are not the recorded ones")
	}
	attrs := map[string]bool{}
	for _, kv := range model.GetAttributes() {
		attrs[kv.GetKey()] = true
	}
	for _, k := range []string{"model_name", "model_version", "request_id", "trace_id"} {
		if !attrs[k] {
			t.Errorf("model span lacks attribute %s", k)
		}
	}
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Without a traceparent, a sampled request starts a trace of its own.
	tr2 := newOTelTracer(t, rcv.URL, "level=TIMESTAMPS", "rate=1")
	y := tr2.Start("m", 1, "", MetadataCarrier{"traceparent": {"garbage"}})
	if y == nil {
		t.Fatal("rate 1 did not trace")
	}
	y.Stamp(RequestStart, time.Now())
	y.Finish()
	if err := tr2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range rcv.Spans() {
		if s.TraceID() != callerTrace && s.GetName() == "m" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d model spans of a new trace after Close, want 1", n)
	}
}

func TestMetadataCarrier(t *testing.T) {
	md := MetadataCarrier{"traceparent": {"00-" + callerTrace + "-" + callerSpan + "-01"}}
	sc := RemoteParent(md)
	if !sc.IsValid() || sc.TraceID().String() != callerTrace || sc.SpanID().String() != callerSpan || !sc.IsRemote() {
		t.Fatalf("span context %+v from gRPC metadata", sc)
	}
	md.Set("TraceState", "a=b")
	if md.Get("tracestate") != "a=b" || len(md.Keys()) != 2 {
		t.Fatalf("carrier %v", md)
	}
}

// FuzzRemoteParent: whatever a client sends as traceparent, reading it never panics, and a span context
// it yields is valid.
func FuzzRemoteParent(f *testing.F) {
	f.Add("00-" + callerTrace + "-" + callerSpan + "-01")
	f.Add("00-00000000000000000000000000000000-" + callerSpan + "-01")
	f.Add("ff-" + callerTrace + "-" + callerSpan + "-01")
	f.Add("00-" + callerTrace + "-" + callerSpan + "-01-extra")
	f.Fuzz(func(t *testing.T, tp string) {
		sc := RemoteParent(MetadataCarrier{"traceparent": {tp}})
		if sc.IsValid() && (!sc.TraceID().IsValid() || !sc.SpanID().IsValid()) {
			t.Fatalf("%q gave %+v", tp, sc)
		}
	})
}

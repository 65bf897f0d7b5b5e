// Package otlptest is an in-process OTLP/HTTP trace receiver for tests: an httptest server that accepts
// what an OpenTelemetry exporter POSTs to /v1/traces (a protobuf ExportTraceServiceRequest, gzip or not),
// decodes it and keeps the spans, so a test can check what a server exported without a collector.
package otlptest

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span with the resource attributes it came with.
type Span struct {
	*tracepb.Span
	Resource map[string]string
}

// TraceID is the span's trace id in hex, as a traceparent writes it.
func (s Span) TraceID() string { return hex.EncodeToString(s.GetTraceId()) }

// SpanID is the span's id in hex.
func (s Span) SpanID() string { return hex.EncodeToString(s.GetSpanId()) }

// ParentSpanID is the span's parent id in hex ("" for a root).
func (s Span) ParentSpanID() string { return hex.EncodeToString(s.GetParentSpanId()) }

// Receiver is the OTLP/HTTP endpoint; URL is what to give the exporter.
type Receiver struct {
	URL string
	srv *httptest.Server

	mu     sync.Mutex
	spans  []Span
	errors []string
	posted chan struct{}
}

// Start starts a receiver; Close stops it.
func Start() *Receiver {
	r := &Receiver{posted: make(chan struct{}, 1)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = r.srv.URL + "/v1/traces"
	return r
}

// Close stops the receiver.
func (r *Receiver) Close() { r.srv.Close() }

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	fail := func(code int, msg string) {
		r.mu.Lock()
		r.errors = append(r.errors, msg)
		r.mu.Unlock()
		http.Error(w, msg, code)
	}
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		fail(http.StatusNotFound, req.Method+" "+req.URL.Path)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		z, err := gzip.NewReader(req.Body)
		if err != nil {
			fail(http.StatusBadRequest, err.Error())
			return
		}
		body = z
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	var msg coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &msg); err != nil {
		fail(http.StatusBadRequest, "not an ExportTraceServiceRequest: "+err.Error())
		return
	}
	r.mu.Lock()
	for _, rs := range msg.GetResourceSpans() {
		res := map[string]string{}
		for _, kv := range rs.GetResource().GetAttributes() {
			res[kv.GetKey()] = kv.GetValue().GetStringValue()
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, Span{Span: s, Resource: res})
			}
		}
	}
	r.mu.Unlock()
	select {
	case r.posted <- struct{}{}:
	default:
	}
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = io.Copy(w, bytes.NewReader(out))
}

// Spans returns every span received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Errors returns what the receiver refused (bad paths, undecodable bodies).
func (r *Receiver) Errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errors...)
}

// WaitSpans waits until at least n spans of trace traceID (hex) arrived, or limit passes, and returns them.
func (r *Receiver) WaitSpans(traceID string, n int, limit time.Duration) []Span {
	deadline := time.Now().Add(limit)
	for {
		var got []Span
		for _, s := range r.Spans() {
			if s.TraceID() == traceID {
				got = append(got, s)
			}
		}
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		select {
		case <-r.posted:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

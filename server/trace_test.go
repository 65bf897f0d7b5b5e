package server

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/ofaserve/ofaserve/internal/otlptest"
	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
	"github.com/ofaserve/ofaserve/tracing"
)

// traceServer is a server with a batched "simple" model and a tracer made from --trace-config args.
func traceServer(t *testing.T, args ...string) (*Server, *tracing.Tracer) {
	t.Helper()
	cfg, err := tracing.ParseConfig(args)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tracing.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	repo := &batchedRepo{fakeRepo: &fakeRepo{}}
	s := newTestServer(t, repo, Options{Tracer: tr})
	repo.add(t, s, simpleModel())
	return s, tr
}

func postJSON(t *testing.T, s *Server, path, body string) map[string]any {
	t.Helper()
	r := do(t, s.HTTPHandler(), "POST", path, []byte(body))
	if r.code != 200 {
		t.Fatalf("POST %s %s: %d %s", path, body, r.code, r.body)
	}
	return r.json(t)
}

// traceEntry is one object of a Triton trace file.
type traceEntry struct {
	ID         uint64 `json:"id"`
	ModelName  string `json:"model_name"`
	RequestID  string `json:"request_id"`
	Timestamps []struct {
		Name string `json:"name"`
		NS   int64  `json:"ns"`
	} `json:"timestamps"`
}

// traceFile reads a trace file into each trace's timestamps by name, and its heads.
func traceFile(t *testing.T, path string) (map[uint64]map[string]int64, map[uint64]traceEntry) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var entries []traceEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, raw)
	}
	stamps, heads := map[uint64]map[string]int64{}, map[uint64]traceEntry{}
	for _, e := range entries {
		if e.ModelName != "" {
			heads[e.ID] = e
		}
		for _, ts := range e.Timestamps {
			if stamps[e.ID] == nil {
				stamps[e.ID] = map[string]int64{}
			}
			stamps[e.ID][ts.Name] = ts.NS
		}
	}
	return stamps, heads
}

// wantOrdered checks that the named timestamps exist and do not go backwards.
func wantOrdered(t *testing.T, stamps map[string]int64, names ...string) {
	t.Helper()
	for i, n := range names {
		if _, ok := stamps[n]; !ok {
			t.Fatalf("trace lacks %s: %v", n, stamps)
		}
		if i > 0 && stamps[n] < stamps[names[i-1]] {
			t.Fatalf("%s (%d) before %s (%d)", n, stamps[n], names[i-1], stamps[names[i-1]])
		}
	}
}

var batcherStamps = []string{tracing.RequestStart, tracing.QueueStart, tracing.ComputeStart, tracing.ComputeInputEnd,
	tracing.ComputeOutputStart, tracing.ComputeEnd, tracing.RequestEnd}

// Tracing turned on by POST /v2/trace/setting writes Triton's trace file, each trace's timestamps in
// order from the frontend's receive through the batcher's to the send.
func TestTraceFileFromPostedSetting(t *testing.T) {
	file := filepath.Join(t.TempDir(), "trace.json")
	s, tr := traceServer(t, "triton,file="+file)
	got := do(t, s.HTTPHandler(), "GET", "/v2/trace/setting", nil).json(t)
	want := map[string]any{"trace_level": []any{"OFF"}, "trace_rate": "1000", "trace_count": "-1", "log_frequency": "0",
		"trace_file": file, "trace_mode": "triton"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("initial setting %v", got)
	}
	inferN(t, s, 2) // OFF: not traced
	got = postJSON(t, s, "/v2/trace/setting", `{"trace_level":["TIMESTAMPS"],"trace_rate":"1","log_frequency":"2"}`)
	if got["trace_level"].([]any)[0] != "TIMESTAMPS" || got["trace_rate"] != "1" || got["log_frequency"] != "2" {
		t.Fatalf("updated setting %v", got)
	}
	inferN(t, s, 1)
	gc, _ := grpcOver(t, s)
	if _, err := gc.ModelInfer(context.Background(), simpleGRPCRequest()); err != nil {
		t.Fatal(err)
	}
	stamps, heads := traceFile(t, file+".0")
	if len(heads) != 2 {
		t.Fatalf("%s holds %d traces, want the 2 after the setting", file+".0", len(heads))
	}
	for id, st := range stamps {
		if heads[id].ModelName != "simple" {
			t.Fatalf("head %+v", heads[id])
		}
		if _, ok := st[tracing.HTTPRecvStart]; ok {
			wantOrdered(t, st, append(append([]string{tracing.HTTPRecvStart}, batcherStamps...), tracing.HTTPSendStart, tracing.HTTPSendEnd)...)
			if heads[id].RequestID != "req-7" {
				t.Errorf("HTTP trace request_id %q", heads[id].RequestID)
			}
		} else {
			wantOrdered(t, st, append(append([]string{tracing.GRPCWaitReadStart, tracing.GRPCWaitReadEnd}, batcherStamps...), tracing.GRPCSendStart, tracing.GRPCSendEnd)...)
		}
		if d := st[tracing.ComputeInputEnd] - st[tracing.ComputeStart]; d != int64(execTiming.Input) {
			t.Errorf("COMPUTE_INPUT_END - COMPUTE_START = %d ns, want the executor's %v", d, execTiming.Input)
		}
		if d := st[tracing.ComputeEnd] - st[tracing.ComputeOutputStart]; d != int64(execTiming.Output) {
			t.Errorf("COMPUTE_END - COMPUTE_OUTPUT_START = %d ns, want the executor's %v", d, execTiming.Output)
		}
	}
	// A model's own OFF stops its traces; the rest is written at Close.
	postJSON(t, s, "/v2/models/simple/trace/setting", `{"trace_level":["OFF"]}`)
	inferN(t, s, 3)
	postJSON(t, s, "/v2/models/simple/trace/setting", `{}`)
	inferN(t, s, 1)
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, heads := traceFile(t, file+".1"); len(heads) != 1 {
		t.Fatalf("after the model's OFF and its removal: %d traces, want 1", len(heads))
	}
}

func TestTraceSettingEndpoints(t *testing.T) {
	s, _ := traceServer(t, "triton,file=/tmp/x.json", "rate=6", "level=TIMESTAMPS")
	h := s.HTTPHandler()
	m := postJSON(t, s, "/v2/models/simple/trace/setting", `{"trace_rate":"12","log_frequency":"34"}`)
	if m["trace_rate"] != "12" || m["log_frequency"] != "34" || m["trace_level"].([]any)[0] != "TIMESTAMPS" {
		t.Fatalf("model setting %v", m)
	}
	if g := do(t, h, "GET", "/v2/models/simple/versions/1/trace/setting", nil).json(t); !reflect.DeepEqual(g, m) {
		t.Fatalf("versioned path %v, want %v", g, m)
	}
	if g := postJSON(t, s, "/v2/models/simple/trace/setting", `{"trace_rate":null}`); g["trace_rate"] != "6" || g["log_frequency"] != "34" {
		t.Fatalf("cleared model rate %v", g)
	}
	for _, tc := range []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"GET", "/v2/models/nope/trace/setting", "", 400, "Request for unknown model : nope"},
		{"POST", "/v2/trace/setting", `{"trace_file":"/etc/cron.d/x"}`, 501, "trace file location can not be updated through network protocol"},
		{"POST", "/v2/trace/setting", `{"trace_rate":"x"}`, 400, "Unable to parse 'trace_rate', got: x"},
		{"POST", "/v2/trace/setting", `{"trace_level":"TIMESTAMPS"}`, 400, "'trace_level' must be an array of strings"},
		{"POST", "/v2/trace/setting", `{"trace_level":`, 400, "failed to parse the request JSON buffer"},
		{"PUT", "/v2/trace/setting", "", 405, "Method Not Allowed"},
	} {
		r := do(t, h, tc.method, tc.path, []byte(tc.body))
		if r.code != tc.code || !strings.Contains(r.errMsg(t), tc.msg) {
			t.Errorf("%s %s %s: %d %s, want %d %q", tc.method, tc.path, tc.body, r.code, r.body, tc.code, tc.msg)
		}
	}

	gc, _ := grpcOver(t, s)
	ctx := context.Background()
	resp, err := gc.TraceSetting(ctx, &pb.TraceSettingRequest{ModelName: "simple"})
	if err != nil || resp.Settings["log_frequency"].Value[0] != "34" || resp.Settings["trace_rate"].Value[0] != "6" {
		t.Fatalf("gRPC get: %v %v", resp, err)
	}
	resp, err = gc.TraceSetting(ctx, &pb.TraceSettingRequest{Settings: map[string]*pb.TraceSettingRequest_SettingValue{
		"trace_level": {Value: []string{"TIMESTAMPS", "TENSORS"}}, "trace_count": {Value: []string{"5"}}}})
	if err != nil || !reflect.DeepEqual(resp.Settings["trace_level"].Value, []string{"TIMESTAMPS", "TENSORS"}) || resp.Settings["trace_count"].Value[0] != "5" {
		t.Fatalf("gRPC update: %v %v", resp, err)
	}
	resp, err = gc.TraceSetting(ctx, &pb.TraceSettingRequest{Settings: map[string]*pb.TraceSettingRequest_SettingValue{"trace_count": {}}})
	if err != nil || resp.Settings["trace_count"].Value[0] != "-1" {
		t.Fatalf("gRPC clear: %v %v", resp, err)
	}
	_, err = gc.TraceSetting(ctx, &pb.TraceSettingRequest{ModelName: "nope"})
	wantCode(t, err, codes.InvalidArgument, "Request for unknown model : nope")
	_, err = gc.TraceSetting(ctx, &pb.TraceSettingRequest{Settings: map[string]*pb.TraceSettingRequest_SettingValue{"trace_file": {Value: []string{"x"}}}})
	wantCode(t, err, codes.Unimplemented, "trace file location can not be updated")
}

// In opentelemetry mode the caller's W3C traceparent, from HTTP headers or gRPC metadata, makes the
// exported spans part of the caller's trace.
func TestTraceOpenTelemetryPropagation(t *testing.T) {
	rcv := otlptest.Start()
	defer rcv.Close()
	s, tr := traceServer(t, "mode=opentelemetry", "opentelemetry,url="+rcv.URL, "opentelemetry,bsp_schedule_delay=20", "rate=0")
	postJSON(t, s, "/v2/trace/setting", `{"trace_level":["TIMESTAMPS"]}`)
	const httpTrace, grpcTrace = "0af7651916cd43dd8448eb211c80319c", "5bf92f3577b34da6a3ce929d0e0e4736"
	r := do(t, s.HTTPHandler(), "POST", "/v2/models/simple/infer", []byte(simpleReq), "traceparent", "00-"+httpTrace+"-b7ad6b7169203331-01")
	if r.code != 200 {
		t.Fatalf("infer %d %s", r.code, r.body)
	}
	gc, _ := grpcOver(t, s)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+grpcTrace+"-00f067aa0ba902b7-01")
	if _, err := gc.ModelInfer(ctx, simpleGRPCRequest()); err != nil {
		t.Fatal(err)
	}
	inferN(t, s, 2) // rate 0 and no context: not traced
	for _, id := range []string{httpTrace, grpcTrace} {
		spans := rcv.WaitSpans(id, 3, 10*time.Second)
		names := map[string]bool{}
		for _, sp := range spans {
			names[sp.GetName()] = true
		}
		if len(spans) != 3 || !names["InferRequest"] || !names["simple"] || !names["compute"] {
			t.Fatalf("trace %s: spans %v (receiver errors %v)", id, names, rcv.Errors())
		}
	}
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(rcv.Spans()); n != 6 {
		t.Fatalf("%d spans exported, want the 6 of the two propagated requests", n)
	}
}

// A /predict request is traced like an infer request, with the TENSORS level's inputs and output.
func TestTracePredict(t *testing.T) {
	file := filepath.Join(t.TempDir(), "trace.json")
	cfg, err := tracing.ParseConfig([]string{"triton,file=" + file, "level=TIMESTAMPS", "level=TENSORS", "rate=1"})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tracing.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	repo := &batchedRepo{fakeRepo: &fakeRepo{}}
	s := newTestServer(t, repo, Options{Tracer: tr, Predict: entailForm})
	repo.add(t, s, entailModel())
	body, ctype := form(t, "image", "IMG", "hypothesis", "a cat")
	if r := do(t, s.HTTPHandler(), "POST", "/predict", body, "Content-Type", ctype); r.code != 200 {
		t.Fatalf("predict %d %s", r.code, r.body)
	}
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	stamps, heads := traceFile(t, file)
	if len(heads) != 1 {
		t.Fatalf("%d traces", len(heads))
	}
	for _, st := range stamps {
		wantOrdered(t, st, append(append([]string{tracing.HTTPRecvStart, tracing.HTTPRecvEnd}, batcherStamps...), tracing.HTTPSendStart, tracing.HTTPSendEnd)...)
	}
	raw, _ := os.ReadFile(file)
	for _, want := range []string{`"activity":"TENSOR_QUEUE_INPUT","tensor":{"name":"HYPOTHESIS","data":"a cat","shape":"1,1","dtype":"BYTES"}`,
		`"activity":"TENSOR_BACKEND_OUTPUT","tensor":{"name":"RESULT","data":"IMG|a cat|"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("trace file lacks %s:\n%s", want, raw)
		}
	}
}

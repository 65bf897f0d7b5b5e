package e2e_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/ofaserve/ofaserve/internal/otlptest"
	"github.com/ofaserve/ofaserve/internal/testenv"
	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
)

// startWith runs another ofaserve over the test repository with "linear" loaded and extra flags.
func startWith(t *testing.T, flags ...string) *testenv.Server {
	t.Helper()
	srv, err := testenv.Start(env.bin, "/v2/health/ready", 60*time.Second, append([]string{"--model-repository=" + env.repo,
		"--model-control-mode=explicit", "--load-model=linear", "--exit-timeout-secs=10", "--allow-gpu-metrics=false"}, flags...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(stopLimit); err != nil {
			t.Errorf("ofaserve did not exit cleanly: %v\n%s", err, srv.Logs.String())
		}
	})
	return srv
}

func inferOn(t *testing.T, srv *testenv.Server, id string, hdr ...string) {
	t.Helper()
	x, y := inputs(len(id))
	r := request(t, "POST", "http://"+srv.HTTP+"/v2/models/linear/infer", inferBody(id, x, y), hdr...)
	checkJSONInfer(t, r, id, x, y)
}

func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("metrics lack %s", series)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Issue 16's points 3-5 on the real binary: the latency summaries and histograms on /metrics, a trace file
// once POST /v2/trace/setting turns tracing on, with ordered timestamps, and POST /v2/logging changing what
// the running server logs.
func TestLatencyTraceFileAndLogging(t *testing.T) {
	file := filepath.Join(t.TempDir(), "trace.json")
	srv := startWith(t, "--metrics-config=summary_latencies=true", "--metrics-config=histogram_latencies=true",
		"--trace-config=triton,file="+file)

	inferOn(t, srv, "quiet")
	if strings.Contains(srv.Logs.String(), "inference request") {
		t.Fatal("a request was logged at verbose level 0")
	}
	r := request(t, "POST", "http://"+srv.HTTP+"/v2/logging", `{"log_verbose_level":1}`)
	if r.code != 200 || !strings.Contains(string(r.body), `"log_verbose_level":1`) {
		t.Fatalf("POST /v2/logging: %d %s", r.code, r.body)
	}
	inferOn(t, srv, "loud")
	if !srv.Logs.WaitFor(`msg="inference request" model=linear version=1 id=loud`, 10*time.Second) {
		t.Fatalf("verbose level 1 did not log the request:\n%s", srv.Logs.String())
	}
	// The pipe keeps the server's order: once "loud" is here, a log of "quiet" would be too.
	if strings.Contains(srv.Logs.String(), "id=quiet") {
		t.Fatalf("a request was logged at verbose level 0:\n%s", srv.Logs.String())
	}

	r = request(t, "POST", "http://"+srv.HTTP+"/v2/trace/setting", `{"trace_level":["TIMESTAMPS"],"trace_rate":"1","log_frequency":"1"}`)
	if r.code != 200 || !strings.Contains(string(r.body), `"trace_level":["TIMESTAMPS"]`) {
		t.Fatalf("POST /v2/trace/setting: %d %s", r.code, r.body)
	}
	inferOn(t, srv, "traced")
	var raw []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if raw, err = os.ReadFile(file + ".0"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	var entries []struct {
		ID         uint64 `json:"id"`
		ModelName  string `json:"model_name"`
		RequestID  string `json:"request_id"`
		Timestamps []struct {
			Name string `json:"name"`
			NS   int64  `json:"ns"`
		} `json:"timestamps"`
	}
	if err := json.Unmarshal(raw, &entries); err != nil {
		t.Fatalf("%s.0: %v\n%s", file, err, raw)
	}
	ns := map[string]int64{}
	for _, e := range entries {
		if e.ModelName != "" && (e.ModelName != "linear" || e.RequestID != "traced") {
			t.Fatalf("trace head %+v", e)
		}
		for _, s := range e.Timestamps {
			ns[s.Name] = s.NS
		}
	}
	order := []string{"HTTP_RECV_START", "HTTP_RECV_END", "REQUEST_START", "QUEUE_START", "COMPUTE_START", "COMPUTE_INPUT_END",
		"COMPUTE_OUTPUT_START", "COMPUTE_END", "REQUEST_END", "HTTP_SEND_START", "HTTP_SEND_END"}
	for i, name := range order {
		if _, ok := ns[name]; !ok {
			t.Fatalf("trace lacks %s: %s", name, raw)
		}
		if i > 0 && ns[name] < ns[order[i-1]] {
			t.Fatalf("%s before %s: %s", name, order[i-1], raw)
		}
	}
	if d := ns["COMPUTE_END"] - ns["COMPUTE_START"]; d <= 0 {
		t.Fatalf("the forward pass took %d ns", d)
	}

	metrics := string(request(t, "GET", "http://"+srv.Metrics+"/metrics", "").body)
	success := metricValue(t, metrics, `nv_inference_request_success{model="linear",version="1"}`)
	if success != 3 {
		t.Fatalf("nv_inference_request_success = %v, want 3", success)
	}
	for _, stage := range []string{"request", "queue", "compute_input", "compute_infer", "compute_output"} {
		summary := "nv_inference_" + stage + "_summary_us"
		if c := metricValue(t, metrics, summary+`_count{model="linear",version="1"}`); c != success {
			t.Errorf("%s_count = %v, want %v", summary, c, success)
		}
		for _, q := range []string{"0.5", "0.9", "0.95", "0.99", "0.999"} {
			metricValue(t, metrics, summary+`{model="linear",version="1",quantile="`+q+`"}`)
		}
		hist := "nv_inference_" + stage + "_histogram_ms"
		if c := metricValue(t, metrics, hist+`_bucket{model="linear",version="1",le="+Inf"}`); c != success {
			t.Errorf("%s +Inf bucket = %v, want %v", hist, c, success)
		}
	}
	if s, c := metricValue(t, metrics, `nv_inference_queue_summary_us_sum{model="linear",version="1"}`),
		metricValue(t, metrics, `nv_inference_queue_duration_us{model="linear",version="1"}`); c-s < 0 || c-s > success {
		t.Errorf("queue summary sum %v, counter %v", s, c)
	}
}

// In opentelemetry mode the real binary exports, over OTLP/HTTP, the spans of a request that carries the
// caller's W3C traceparent, in the caller's trace: from HTTP headers and from gRPC metadata.
func TestOpenTelemetryExport(t *testing.T) {
	rcv := otlptest.Start()
	defer rcv.Close()
	srv := startWith(t, "--trace-config=mode=opentelemetry", "--trace-config=opentelemetry,url="+rcv.URL,
		"--trace-config=opentelemetry,bsp_schedule_delay=100", "--trace-config=rate=0")
	r := request(t, "POST", "http://"+srv.HTTP+"/v2/trace/setting", `{"trace_level":["TIMESTAMPS"]}`)
	if r.code != 200 || !strings.Contains(string(r.body), `"trace_mode":"opentelemetry"`) || !strings.Contains(string(r.body), rcv.URL) {
		t.Fatalf("POST /v2/trace/setting: %d %s", r.code, r.body)
	}
	const httpTrace, grpcTrace = "0af7651916cd43dd8448eb211c80319c", "4bf92f3577b34da6a3ce929d0e0e4736"
	inferOn(t, srv, "otel-http", "traceparent", "00-"+httpTrace+"-b7ad6b7169203331-01")
	conn, err := grpc.NewClient(srv.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	x, y := inputs(3)
	ctx := metadata.AppendToOutgoingContext(rpcCtx(t), "traceparent", "00-"+grpcTrace+"-00f067aa0ba902b7-01")
	if _, err := pb.NewGRPCInferenceServiceClient(conn).ModelInfer(ctx, grpcInferRequest("linear", "otel-grpc", x, y, false)); err != nil {
		t.Fatal(err)
	}
	for id, parent := range map[string]string{httpTrace: "b7ad6b7169203331", grpcTrace: "00f067aa0ba902b7"} {
		spans := rcv.WaitSpans(id, 3, 20*time.Second)
		names := map[string]otlptest.Span{}
		for _, s := range spans {
			names[s.GetName()] = s
		}
		root := names["InferRequest"]
		if len(spans) != 3 || root.Span == nil || names["linear"].Span == nil || names["compute"].Span == nil {
			t.Fatalf("trace %s: %d spans %v (receiver errors %v)\n%s", id, len(spans), names, rcv.Errors(), srv.Logs.String())
		}
		if root.ParentSpanID() != parent || root.Resource["service.name"] != "triton-inference-server" {
			t.Errorf("trace %s: top-level span's parent %s (want the caller's %s), resource %v", id, root.ParentSpanID(), parent, root.Resource)
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/backend/workpool"
	"github.com/ofaserve/ofaserve/internal/testenv"
	"github.com/ofaserve/ofaserve/libtorch"
	"github.com/ofaserve/ofaserve/repository"
	"github.com/ofaserve/ofaserve/tracing"
)

func TestParseObservabilityFlags(t *testing.T) {
	c, err := parseFlags([]string{"--model-repository=/m", "--metrics-config=summary_latencies=true", "--metrics-config", "histogram_latencies=true",
		"--trace-config=triton,file=/tmp/t.json", "--trace-config=level=TIMESTAMPS", "--trace-config=rate=1",
		"--log-format=ISO8601", "--log-info=false", "--log-verbose=2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.metrics.SummaryLatencies || !c.metrics.HistogramLatencies || !c.metrics.CounterLatencies {
		t.Errorf("metrics config %+v", c.metrics)
	}
	if c.trace.Setting.File != "/tmp/t.json" || c.trace.Setting.Level != tracing.Timestamps || c.trace.Setting.Rate != 1 {
		t.Errorf("trace config %+v", c.trace)
	}
	lc, err := newLogger(c, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s := lc.Settings(); s.Format != "text" || s.Info || !s.Warning || !s.Error || s.VerboseLevel != 2 {
		t.Errorf("log settings %+v", s)
	}
}

func TestParseFlags(t *testing.T) {
	c, err := parseFlags([]string{"--model-repository=/m", "--model-control-mode=explicit", "--load-model=a", "--load-model", "b", "--exit-timeout-secs=5"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.cache.Size != 0 {
		t.Errorf("a response cache without --cache-config: %+v", c.cache)
	}
	if c, err := parseFlags([]string{"--model-repository=/m", "--cache-config", "local,size=1048576"}, io.Discard); err != nil || c.cache.Size != 1048576 {
		t.Errorf("--cache-config local,size=1048576: %+v, %v", c, err)
	}
	if c.mode != repository.ModeExplicit || strings.Join(c.loadModels, ",") != "a,b" || c.exitTimeout != 5*time.Second ||
		c.httpPort != 8000 || c.grpcPort != 8001 || c.metricsPort != 8002 || c.maxInputSize != 64<<20 || c.torchIntra != 0 {
		t.Errorf("parsed %+v", c)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{nil, "--model-repository is required"},
		{[]string{"--model-repository=/m", "--model-control-mode=sometimes"}, "invalid model control mode"},
		{[]string{"--model-repository=/m", "--load-model=a"}, "needs --model-control-mode=explicit"},
		{[]string{"--model-repository=/m", "--http-port=70000"}, "out of range"},
		{[]string{"--model-repository=/m", "--no-such-flag"}, "not defined"},
		{[]string{"--model-repository=/m", "--log-format=xml"}, "--log-format"},
		{[]string{"--model-repository=/m", "--torch-intra-op-threads=-1"}, "--torch-intra-op-threads"},
		{[]string{"--model-repository=/m", "--torch-intra-op-threads=100000"}, "--torch-intra-op-threads"},
		{[]string{"--model-repository=/m", "--torch-intra-op-threads=two"}, "invalid value"},
		{[]string{"--model-repository=/m", "--metrics-config=summary_latencies=maybe"}, "--metrics-config \"summary_latencies=maybe\""},
		{[]string{"--model-repository=/m", "--trace-config=level=TIMESTAMPS"}, "triton,file=PATH"},
		{[]string{"--model-repository=/m", "--trace-config=mode=zipkin"}, "mode must be triton or opentelemetry"},
		{[]string{"--model-repository=/m", "--log-verbose=-1"}, "--log-verbose must not be negative"},
		{[]string{"--model-repository=/m", "--cache-config=redis,host=x"}, "cache 'redis' is not available"},
		{[]string{"--model-repository=/m", "--cache-config=local,size=0"}, "size must be a positive number of bytes"},
	} {
		if _, err := parseFlags(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%v: got %v, want %q", tc.args, err, tc.msg)
		}
	}
}

// TestServeInferAndShutdown runs the whole binary's wiring in-process on
// loopback: a TorchScript model exported now, one inference over HTTP, and a
// graceful shutdown when the context ends.
func TestServeInferAndShutdown(t *testing.T) {
	root := t.TempDir()
	modelDir := filepath.Join(root, "pair", "1")
	if err := os.MkdirAll(modelDir, 0o755); err != nil {
		t.Fatal(err)
	}
	export := t.TempDir()
	if out, err := exec.Command(testenv.Python(), filepath.Join("..", "..", "backend", "libtorch", "testdata", "make_models.py"), export).CombinedOutput(); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	if err := os.Rename(filepath.Join(export, "pair.pt"), filepath.Join(modelDir, "model.pt")); err != nil {
		t.Fatal(err)
	}
	cfg := `platform: "pytorch_libtorch" max_batch_size: 4
input [{ name: "INPUT__0" data_type: TYPE_FP32 dims: [4] }, { name: "INPUT__1" data_type: TYPE_FP32 dims: [4] }]
output [{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [4] }, { name: "OUTPUT__1" data_type: TYPE_FP32 dims: [1] }]
dynamic_batching { }
parameters { key: "INTRA_OP_THREAD_COUNT" value: { string_value: "2" } }`
	if err := os.WriteFile(filepath.Join(root, "pair", "config.pbtxt"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	ports, err := testenv.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	httpPort := ports[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testenv.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, func() {}, []string{"--model-repository=" + root, "--http-address=127.0.0.1",
			fmt.Sprintf("--http-port=%d", httpPort), "--grpc-address=127.0.0.1", "--grpc-port=0",
			"--metrics-address=127.0.0.1", "--metrics-port=0", "--exit-timeout-secs=5", "--allow-gpu-metrics=false",
			"--torch-intra-op-threads=1"}, &logs)
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	if err := testenv.WaitReady(base+"/v2/health/ready", 30*time.Second, done); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}

	body := `{"inputs":[{"name":"INPUT__0","shape":[1,4],"datatype":"FP32","data":[1,0,0,0]},
	{"name":"INPUT__1","shape":[1,4],"datatype":"FP32","data":[0,0,0,1]}],"outputs":[{"name":"OUTPUT__0"}]}`
	resp, err := http.Post(base+"/v2/models/pair/infer", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var out struct {
		Outputs []struct {
			Name string    `json:"name"`
			Data []float64 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(data, &out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("infer: %d %s (%v)", resp.StatusCode, data, err)
	}
	// a = e0, b = e3: out0 = row 0 of W + b = [-0.5, -0.4, -0.3, -0.2] + [0, 0, 0, 1].
	want := []float64{-0.5, -0.4, -0.3, 0.8}
	if len(out.Outputs) != 1 || out.Outputs[0].Name != "OUTPUT__0" || len(out.Outputs[0].Data) != 4 {
		t.Fatalf("outputs %s", data)
	}
	for i, w := range want {
		if d := out.Outputs[0].Data[i] - w; d > 1e-5 || d < -1e-5 {
			t.Fatalf("OUTPUT__0 = %v, want %v", out.Outputs[0].Data, want)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("server did not stop")
	}
	if !strings.Contains(logs.String(), "shutting down") || !strings.Contains(logs.String(), "model unloaded") {
		t.Errorf("logs lack the shutdown sequence:\n%s", logs.String())
	}
	// The flag set libtorch's threads before the model loaded; the model's INTRA_OP_THREAD_COUNT was
	// logged and ignored.
	if n := libtorch.NumThreads(); n != 1 {
		t.Errorf("--torch-intra-op-threads=1, but libtorch uses %d intra-op threads", n)
	}
	for _, want := range []string{"intra_op=1", "INTRA_OP_THREAD_COUNT asked=2"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
}

func TestPoolStats(t *testing.T) {
	p := workpool.New(3)
	if err := p.Do(context.Background(), "m", func() {}); err != nil {
		t.Fatal(err)
	}
	if st := poolStats(p)(); st.Workers != 3 || st.Jobs != 1 || st.Busy != 0 || st.Waiting != 0 {
		t.Fatalf("poolStats = %+v, want 3 workers, 1 job, none busy or waiting", st)
	}
}

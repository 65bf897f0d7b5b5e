// Package e2e_test runs a real ofaserve process on 127.0.0.1, serving a
// TorchScript model exported at test time, and talks to it from outside:
// HTTP, gRPC, metrics, batching, repository control, graceful shutdown, and
// third-party clients (grpcurl through reflection, and
// github.com/sunhailin-Leo/triton-service-go as its own program).
package e2e_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/internal/testenv"
	"github.com/ofaserve/ofaserve/test/e2e/linear"
)

const modelConfig = `platform: "pytorch_libtorch"
max_batch_size: 16
input [{ name: "INPUT__0" data_type: TYPE_FP32 dims: [8] }, { name: "INPUT__1" data_type: TYPE_FP32 dims: [8] }]
output [{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [4] }, { name: "OUTPUT__1" data_type: TYPE_FP32 dims: [1] }]
dynamic_batching { max_queue_delay_microseconds: 100000 }
`

// env is what TestMain prepared: binaries, the model repository and the
// running server.
var env struct {
	bin, client, repo string
	srv               *testenv.Server
}

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	tmp, err := os.MkdirTemp("", "ofaserve-e2e-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	if env.bin, err = testenv.Build(tmp, "./cmd/ofaserve"); err != nil {
		return 0, err
	}
	if env.client, err = testenv.Build(tmp, "./test/clients/tritonservicego"); err != nil {
		return 0, err
	}
	py := testenv.Python()
	env.repo = filepath.Join(tmp, "models")
	for name, cfg := range map[string]string{"linear": modelConfig, "linear_b": modelConfig, "linear_limited": limitedConfig} {
		dir := filepath.Join(env.repo, name, "1")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return 0, err
		}
		if b, err := exec.Command(py, filepath.Join("testdata", "make_linear.py"), filepath.Join(dir, "model.pt")).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("export with %s: %v\n%s", py, err, b)
		}
		if err := os.WriteFile(filepath.Join(env.repo, name, "config.pbtxt"), []byte(cfg), 0o644); err != nil {
			return 0, err
		}
	}
	env.srv, err = startServer()
	if err != nil {
		return 0, err
	}
	code := m.Run()
	if err := env.srv.Stop(stopLimit); err != nil {
		fmt.Fprintf(os.Stderr, "ofaserve did not exit cleanly: %v\n%s", err, env.srv.Logs.String())
		if code == 0 {
			code = 1
		}
	}
	return code, nil
}

// stopLimit is how long a server may take to exit after SIGTERM.
const stopLimit = 30 * time.Second

// startServer starts ofaserve in explicit mode with "linear" and
// "linear_limited" loaded and waits until it is ready.
func startServer() (*testenv.Server, error) {
	return testenv.Start(env.bin, "/v2/health/ready", 60*time.Second, "--model-repository="+env.repo,
		"--model-control-mode=explicit", "--load-model=linear", "--load-model=linear_limited", "--exit-timeout-secs=10", "--allow-gpu-metrics=false")
}

func inputs(seed int) (x, y []float32) {
	x, y = make([]float32, 8), make([]float32, 8)
	for i := range 8 {
		x[i] = float32(seed%7) + float32(i)*0.5
		y[i] = float32(i%3) - float32(seed%5)*0.25
	}
	return x, y
}

func jsonNums(v []float32) string {
	s := make([]string, len(v))
	for i, f := range v {
		s[i] = strconv.FormatFloat(float64(f), 'g', -1, 32)
	}
	return "[" + strings.Join(s, ",") + "]"
}

func inferBody(id string, x, y []float32) string {
	return `{"id":"` + id + `","inputs":[{"name":"INPUT__0","shape":[1,8],"datatype":"FP32","data":` + jsonNums(x) +
		`},{"name":"INPUT__1","shape":[1,8],"datatype":"FP32","data":` + jsonNums(y) + `}]}`
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func request(t *testing.T, method, url, body string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func httpURL(path string) string { return "http://" + env.srv.HTTP + path }

type inferResponse struct {
	ID           string `json:"id"`
	ModelName    string `json:"model_name"`
	ModelVersion string `json:"model_version"`
	Outputs      []struct {
		Name     string    `json:"name"`
		Datatype string    `json:"datatype"`
		Shape    []int64   `json:"shape"`
		Data     []float64 `json:"data"`
	} `json:"outputs"`
}

func checkJSONInfer(t *testing.T, r response, id string, x, y []float32) {
	t.Helper()
	checkJSONInferModel(t, r, "linear", id, x, y)
}

// checkJSONInferModel is checkJSONInfer for a copy of the linear model
// served under another name.
func checkJSONInferModel(t *testing.T, r response, model, id string, x, y []float32) {
	t.Helper()
	if r.code != 200 {
		t.Fatalf("infer: %d %s", r.code, r.body)
	}
	var ir inferResponse
	if err := json.Unmarshal(r.body, &ir); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	if ir.ID != id || ir.ModelName != model || ir.ModelVersion != "1" || len(ir.Outputs) != 2 {
		t.Fatalf("response %s", r.body)
	}
	o0, o1 := linear.Expected(x, y)
	if ir.Outputs[0].Name != "OUTPUT__0" || fmt.Sprint(ir.Outputs[0].Shape) != "[1 4]" || len(ir.Outputs[0].Data) != 4 {
		t.Fatalf("OUTPUT__0 = %+v", ir.Outputs[0])
	}
	for j := range 4 {
		if !linear.Near(ir.Outputs[0].Data[j], o0[j]) {
			t.Errorf("%s: OUTPUT__0[%d] = %v, want %v", id, j, ir.Outputs[0].Data[j], o0[j])
		}
	}
	if len(ir.Outputs[1].Data) != 1 || !linear.Near(ir.Outputs[1].Data[0], o1) {
		t.Errorf("%s: OUTPUT__1 = %v, want %v", id, ir.Outputs[1].Data, o1)
	}
}

func TestHealthAndMetadata(t *testing.T) {
	for _, m := range []string{"GET", "POST"} {
		for _, p := range []string{"/v2/health/live", "/v2/health/ready"} {
			if r := request(t, m, httpURL(p), ""); r.code != 200 || len(r.body) != 0 {
				t.Errorf("%s %s = %d %q", m, p, r.code, r.body)
			}
		}
		r := request(t, m, httpURL("/v2"), "")
		if r.code != 200 || !bytes.Contains(r.body, []byte(`"extensions"`)) {
			t.Errorf("%s /v2 = %d %s", m, r.code, r.body)
		}
	}
	r := request(t, "GET", httpURL("/v2/models/linear"), "")
	var md struct {
		Name     string   `json:"name"`
		Versions []string `json:"versions"`
		Platform string   `json:"platform"`
		Inputs   []struct {
			Name, Datatype string
			Shape          []int64
		} `json:"inputs"`
	}
	if err := json.Unmarshal(r.body, &md); err != nil || r.code != 200 || md.Platform != "pytorch_libtorch" ||
		fmt.Sprint(md.Versions) != "[1]" || len(md.Inputs) != 2 || fmt.Sprint(md.Inputs[0].Shape) != "[-1 8]" || md.Inputs[0].Datatype != "FP32" {
		t.Errorf("model metadata = %d %s", r.code, r.body)
	}
	if r := request(t, "GET", httpURL("/v2/models/linear/versions/1/ready"), ""); r.code != 200 {
		t.Errorf("model ready = %d %s", r.code, r.body)
	}
	r = request(t, "GET", httpURL("/v2/models/linear/config"), "")
	var cfg struct {
		MaxBatchSize    int `json:"max_batch_size"`
		DynamicBatching struct {
			MaxQueueDelay json.Number `json:"max_queue_delay_microseconds"`
		} `json:"dynamic_batching"`
		Input []struct {
			DataType string `json:"data_type"`
		} `json:"input"`
	}
	if err := json.Unmarshal(r.body, &cfg); err != nil || cfg.MaxBatchSize != 16 || cfg.DynamicBatching.MaxQueueDelay != "100000" || cfg.Input[0].DataType != "TYPE_FP32" {
		t.Errorf("config = %d %s (%v)", r.code, r.body, err)
	}
}

func TestInferJSONAndVersioned(t *testing.T) {
	x, y := inputs(3)
	checkJSONInfer(t, request(t, "POST", httpURL("/v2/models/linear/infer"), inferBody("a1", x, y)), "a1", x, y)
	x, y = inputs(4)
	checkJSONInfer(t, request(t, "POST", httpURL("/v2/models/linear/versions/1/infer"), inferBody("a2", x, y)), "a2", x, y)
}

func TestInferBinary(t *testing.T) {
	x, y := inputs(9)
	hdr := `{"inputs":[{"name":"INPUT__0","shape":[1,8],"datatype":"FP32","parameters":{"binary_data_size":32}},` +
		`{"name":"INPUT__1","shape":[1,8],"datatype":"FP32","parameters":{"binary_data_size":32}}],` +
		`"outputs":[{"name":"OUTPUT__0","parameters":{"binary_data":true}}]}`
	body := []byte(hdr)
	for _, v := range append(append([]float32{}, x...), y...) {
		body = binary.LittleEndian.AppendUint32(body, math.Float32bits(v))
	}
	r := request(t, "POST", httpURL("/v2/models/linear/infer"), string(body), "Inference-Header-Content-Length", strconv.Itoa(len(hdr)))
	jl, err := strconv.Atoi(r.header.Get("Inference-Header-Content-Length"))
	if r.code != 200 || err != nil || len(r.body)-jl != 16 {
		t.Fatalf("binary infer: %d %v %q", r.code, r.header, r.body)
	}
	o0, _ := linear.Expected(x, y)
	for j := range 4 {
		got := math.Float32frombits(binary.LittleEndian.Uint32(r.body[jl+4*j:]))
		if !linear.Near(float64(got), o0[j]) {
			t.Errorf("binary OUTPUT__0[%d] = %v, want %v", j, got, o0[j])
		}
	}
}

func TestErrors(t *testing.T) {
	x, y := inputs(1)
	good := inferBody("e", x, y)
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		{"unknown model", "POST", "/v2/models/nope/infer", good, 404, "unknown model: 'nope'"},
		{"malformed JSON", "POST", "/v2/models/linear/infer", `{"inputs":`, 400, "failed to parse the request JSON"},
		{"wrong shape", "POST", "/v2/models/linear/infer", strings.Replace(good, `"shape":[1,8]`, `"shape":[8]`, 1), 400, "unexpected shape for input 'INPUT__0'"},
		{"batch too large", "POST", "/v2/models/linear/infer", strings.Replace(strings.Replace(good, `"shape":[1,8]`, `"shape":[17,8]`, 1), jsonNums(x), "["+strings.Repeat("1,", 135)+"1]", 1), 400, "batch-size must be <= 16"},
		{"missing input", "POST", "/v2/models/linear/infer", `{"inputs":[{"name":"INPUT__0","shape":[1,8],"datatype":"FP32","data":` + jsonNums(x) + `}]}`, 400, "missing required input(s) ['INPUT__1']"},
		{"wrong datatype", "POST", "/v2/models/linear/infer", `{"inputs":[{"name":"INPUT__0","shape":[1,8],"datatype":"INT32","data":[1,2,3,4,5,6,7,8]},{"name":"INPUT__1","shape":[1,8],"datatype":"FP32","data":` + jsonNums(y) + `}]}`, 400, "data-type is 'INT32', but model 'linear' expects 'FP32'"},
		{"unknown route", "GET", "/v2/notapi", "", 404, "Not Found"},
		{"wrong method", "GET", "/v2/models/linear/infer", "", 405, "Method Not Allowed"},
		{"stats unknown model", "GET", "/v2/models/nope/stats", "", 400, "requested model 'nope' is not available"},
		{"named repository", "POST", "/v2/repository/r/models/linear/load", "", 501, "'repository_name' specification is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := request(t, tc.method, httpURL(tc.path), tc.body)
			var e struct{ Error string }
			if err := json.Unmarshal(r.body, &e); err != nil || r.code != tc.code || !strings.Contains(e.Error, tc.msg) {
				t.Errorf("%d %s, want %d containing %q", r.code, r.body, tc.code, tc.msg)
			}
		})
	}
	// The server is unharmed.
	checkJSONInfer(t, request(t, "POST", httpURL("/v2/models/linear/infer"), good), "e", x, y)
}

// metric returns the value of one series from the metrics endpoint.
func metric(t *testing.T, series string) float64 {
	t.Helper()
	r := request(t, "GET", "http://"+env.srv.Metrics+"/metrics", "")
	for line := range strings.SplitSeq(string(r.body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("series %s not in metrics:\n%s", series, r.body)
	return 0
}

func TestBatchingVisibleFromOutside(t *testing.T) {
	const lbl = `{model="linear",version="1"}`
	count0, exec0 := metric(t, "nv_inference_count"+lbl), metric(t, "nv_inference_exec_count"+lbl)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			x, y := inputs(100 + i)
			id := "b" + strconv.Itoa(i)
			checkJSONInfer(t, request(t, "POST", httpURL("/v2/models/linear/infer"), inferBody(id, x, y)), id, x, y)
		})
	}
	wg.Wait()
	count, exec := metric(t, "nv_inference_count"+lbl)-count0, metric(t, "nv_inference_exec_count"+lbl)-exec0
	t.Logf("16 concurrent requests: %v inferences in %v executions", count, exec)
	if count != 16 || exec >= count {
		t.Errorf("nv_inference_count +%v, nv_inference_exec_count +%v: want 16 inferences in fewer executions", count, exec)
	}
	for _, r := range []string{"REJECTED", "CANCELED", "BACKEND", "OTHER"} {
		metric(t, `nv_inference_request_failure{model="linear",reason="`+r+`",version="1"}`)
	}
	r := request(t, "GET", httpURL("/v2/models/linear/stats"), "")
	var st struct {
		ModelStats []struct {
			InferenceCount uint64 `json:"inference_count"`
			ExecutionCount uint64 `json:"execution_count"`
		} `json:"model_stats"`
	}
	if err := json.Unmarshal(r.body, &st); err != nil || len(st.ModelStats) != 1 || st.ModelStats[0].ExecutionCount >= st.ModelStats[0].InferenceCount {
		t.Errorf("statistics = %s", r.body)
	}
}

func TestRepositoryLoadUnload(t *testing.T) {
	r := request(t, "POST", httpURL("/v2/repository/index"), "")
	if r.code != 200 || !bytes.Contains(r.body, []byte(`"name":"linear_b"`)) {
		t.Fatalf("index = %d %s", r.code, r.body)
	}
	if r := request(t, "GET", httpURL("/v2/models/linear_b/ready"), ""); r.code == 200 {
		t.Fatalf("linear_b ready before load")
	}
	if r := request(t, "POST", httpURL("/v2/repository/models/linear_b/load"), ""); r.code != 200 {
		t.Fatalf("load = %d %s", r.code, r.body)
	}
	x, y := inputs(5)
	r = request(t, "POST", httpURL("/v2/models/linear_b/infer"), inferBody("lb", x, y))
	if r.code != 200 {
		t.Fatalf("infer on loaded model = %d %s", r.code, r.body)
	}
	if r := request(t, "POST", httpURL("/v2/repository/models/linear_b/unload"), ""); r.code != 200 {
		t.Fatalf("unload = %d %s", r.code, r.body)
	}
	if r := request(t, "GET", httpURL("/v2/models/linear_b/ready"), ""); r.code == 200 {
		t.Errorf("linear_b ready after unload")
	}
}

// grpcurl runs the grpcurl binary scripts/dev/setup.sh installs.
func grpcurl(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := "grpcurl"
	if p, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		if c := filepath.Join(strings.TrimSpace(string(p)), "bin", "grpcurl"); fileExists(c) {
			bin = c
		}
	}
	out, err := exec.Command(bin, append([]string{"-plaintext", "-max-time", "20"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("grpcurl %v: %v\n%s", args, err, out)
	}
	return out
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestGRPCurl(t *testing.T) {
	list := string(grpcurl(t, env.srv.GRPC, "list"))
	for _, svc := range []string{"inference.GRPCInferenceService", "grpc.health.v1.Health"} {
		if !strings.Contains(list, svc) {
			t.Errorf("grpcurl list lacks %s:\n%s", svc, list)
		}
	}
	if out := grpcurl(t, env.srv.GRPC, "grpc.health.v1.Health/Check"); !bytes.Contains(out, []byte("SERVING")) {
		t.Errorf("health check = %s", out)
	}
	if out := grpcurl(t, "-d", `{"name":"linear"}`, env.srv.GRPC, "inference.GRPCInferenceService/ModelReady"); !bytes.Contains(out, []byte(`"ready": true`)) {
		t.Errorf("ModelReady = %s", out)
	}
	x, y := inputs(11)
	req := `{"model_name":"linear","id":"gc","inputs":[` +
		`{"name":"INPUT__0","datatype":"FP32","shape":[1,8],"contents":{"fp32_contents":` + jsonNums(x) + `}},` +
		`{"name":"INPUT__1","datatype":"FP32","shape":[1,8],"contents":{"fp32_contents":` + jsonNums(y) + `}}]}`
	out := grpcurl(t, "-d", req, env.srv.GRPC, "inference.GRPCInferenceService/ModelInfer")
	var resp struct {
		ID                string   `json:"id"`
		RawOutputContents [][]byte `json:"rawOutputContents"`
	}
	if err := json.Unmarshal(out, &resp); err != nil || resp.ID != "gc" || len(resp.RawOutputContents) != 2 || len(resp.RawOutputContents[0]) != 16 {
		t.Fatalf("ModelInfer via grpcurl = %s (%v)", out, err)
	}
	o0, o1 := linear.Expected(x, y)
	for j := range 4 {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(resp.RawOutputContents[0][4*j:])); !linear.Near(float64(got), o0[j]) {
			t.Errorf("OUTPUT__0[%d] = %v, want %v", j, got, o0[j])
		}
	}
	if got := math.Float32frombits(binary.LittleEndian.Uint32(resp.RawOutputContents[1])); !linear.Near(float64(got), o1) {
		t.Errorf("OUTPUT__1 = %v, want %v", got, o1)
	}
	if out := grpcurl(t, "-d", `{"name":"linear"}`, env.srv.GRPC, "inference.GRPCInferenceService/ModelConfig"); !bytes.Contains(out, []byte(`"maxBatchSize": 16`)) {
		t.Errorf("ModelConfig = %s", out)
	}
}

// TestTritonServiceGo runs the triton-service-go client program (its own
// binary, so its generated protos never meet ours) over HTTP and gRPC.
func TestTritonServiceGo(t *testing.T) {
	out, err := exec.Command(env.client, "-http", env.srv.HTTP, "-grpc", env.srv.GRPC, "-model", "linear").CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("triton-service-go client: %v", err)
	}
}

// TestGracefulShutdown starts a second server, sends a request that waits
// in the batcher (100 ms queue delay), sends SIGTERM while it waits, and
// expects the request to succeed and the process to exit cleanly.
func TestGracefulShutdown(t *testing.T) {
	s, err := startServer()
	if err != nil {
		t.Fatal(err)
	}
	x, y := inputs(42)
	res := make(chan response, 1)
	go func() {
		resp, err := http.Post("http://"+s.HTTP+"/v2/models/linear/infer", "", strings.NewReader(inferBody("sd", x, y)))
		if err != nil {
			res <- response{code: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		res <- response{code: resp.StatusCode, body: b}
	}()
	// Wait until the request is queued (pending in the batcher).
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		r, err := http.Get("http://" + s.Metrics + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if bytes.Contains(b, []byte(`nv_inference_pending_request_count{model="linear",version="1"} 1`)) {
			break
		}
	}
	if err := s.Stop(stopLimit); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, s.Logs.String())
	}
	checkJSONInfer(t, <-res, "sd", x, y)
}

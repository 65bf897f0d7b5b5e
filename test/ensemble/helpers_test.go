package ensemble_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
	"github.com/ofaserve/ofaserve/test/e2e/linear"
)

type response struct {
	code int
	body []byte
}

func post(t *testing.T, path, body string) response {
	t.Helper()
	return call(t, "POST", path, body)
}

func call(t *testing.T, method, path, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+env.srv.HTTP+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
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
	return response{resp.StatusCode, b}
}

// inputs are the seed-th pair of FP32 [8] vectors.
func inputs(seed int) (x, y []float32) {
	x, y = make([]float32, 8), make([]float32, 8)
	for i := range 8 {
		x[i] = float32(seed%7) + float32(i)*0.5
		y[i] = float32(i%3) - float32(seed%5)*0.25
	}
	return x, y
}

func nums(v []float32) string {
	s := make([]string, len(v))
	for i, f := range v {
		s[i] = strconv.FormatFloat(float64(f), 'g', -1, 32)
	}
	return "[" + strings.Join(s, ",") + "]"
}

// jsonRequest is an infer request body with FP32 [1,8] inputs named a and b.
func jsonRequest(id, a, b string, x, y []float32) string {
	return `{"id":"` + id + `","inputs":[{"name":"` + a + `","shape":[1,8],"datatype":"FP32","data":` + nums(x) +
		`},{"name":"` + b + `","shape":[1,8],"datatype":"FP32","data":` + nums(y) + `}]}`
}

type inferJSON struct {
	ID           string `json:"id"`
	ModelName    string `json:"model_name"`
	ModelVersion string `json:"model_version"`
	Outputs      []struct {
		Name  string    `json:"name"`
		Shape []int64   `json:"shape"`
		Data  []float64 `json:"data"`
	} `json:"outputs"`
}

// pipelineWant is what pipeline answers for x, y: output name -> values.
func pipelineWant(x, y []float32) map[string][]float64 {
	l4, l1 := linear.Expected(x, y)
	xp, xm := make([]float32, 8), make([]float32, 8)
	for i := range 8 {
		xp[i], xm[i] = x[i]+y[i], x[i]-y[i]
	}
	m4, m1 := linear.Expected(xp, xm)
	return map[string][]float64{
		"L4X2": {2 * l4[0], 2 * l4[1], 2 * l4[2], 2 * l4[3]},
		"L1":   {l1},
		"M4":   m4[:],
		"M1":   {m1},
	}
}

// checkPipeline compares outputs (name -> values) with pipelineWant,
// expecting them in config order.
func checkPipeline(t *testing.T, got map[string][]float64, order []string, x, y []float32) {
	t.Helper()
	if strings.Join(order, ",") != "L4X2,L1,M4,M1" {
		t.Errorf("outputs %v, want L4X2, L1, M4, M1 (config order)", order)
	}
	for name, want := range pipelineWant(x, y) {
		g := got[name]
		if len(g) != len(want) {
			t.Errorf("%s = %v, want %v", name, g, want)
			continue
		}
		for i := range want {
			if !linear.Near(g[i], want[i]) {
				t.Errorf("%s[%d] = %v, want %v", name, i, g[i], want[i])
			}
		}
	}
}

func grpcClient(t *testing.T) pb.GRPCInferenceServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(env.srv.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewGRPCInferenceServiceClient(conn)
}

func rpcCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func grpcRequest(model, id, a, b string, x, y []float32) *pb.ModelInferRequest {
	req := &pb.ModelInferRequest{ModelName: model, Id: id}
	for i, v := range [][]float32{x, y} {
		name := a
		if i == 1 {
			name = b
		}
		req.Inputs = append(req.Inputs, &pb.ModelInferRequest_InferInputTensor{Name: name, Datatype: "FP32", Shape: []int64{1, int64(len(v))}})
		raw := make([]byte, 0, 4*len(v))
		for _, f := range v {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(f))
		}
		req.RawInputContents = append(req.RawInputContents, raw)
	}
	return req
}

// grpcOutputs reads a response's FP32 outputs, name -> values, and their order.
func grpcOutputs(t *testing.T, resp *pb.ModelInferResponse) (map[string][]float64, []string) {
	t.Helper()
	out := map[string][]float64{}
	var order []string
	for i, o := range resp.GetOutputs() {
		order = append(order, o.GetName())
		var vals []float64
		if raw := resp.GetRawOutputContents(); len(raw) > i {
			for j := 0; j+4 <= len(raw[i]); j += 4 {
				vals = append(vals, float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[i][j:]))))
			}
		} else {
			for _, f := range o.GetContents().GetFp32Contents() {
				vals = append(vals, float64(f))
			}
		}
		out[o.GetName()] = vals
	}
	return out, order
}

// modelStat is one entry of the statistics extension.
type modelStat struct {
	Name           string `json:"name"`
	Version        string `json:"version"`
	InferenceCount uint64 `json:"inference_count"`
	ExecutionCount uint64 `json:"execution_count"`
	InferenceStats map[string]struct {
		Count uint64 `json:"count"`
		NS    uint64 `json:"ns"`
	} `json:"inference_stats"`
}

// stats returns the statistics of every ready model, by name.
func stats(t *testing.T) map[string]modelStat {
	t.Helper()
	r := call(t, "GET", "/v2/models/stats", "")
	var st struct {
		ModelStats []modelStat `json:"model_stats"`
	}
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatalf("stats %d: %v: %s", r.code, err, r.body)
	}
	out := map[string]modelStat{}
	for _, m := range st.ModelStats {
		out[m.Name] = m
	}
	return out
}

// metric returns the value of one series from the metrics endpoint.
func metric(t *testing.T, series string) float64 {
	t.Helper()
	req, err := http.Get("http://" + env.srv.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer req.Body.Close()
	b, _ := io.ReadAll(req.Body)
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("series %s not in metrics:\n%s", series, b)
	return 0
}

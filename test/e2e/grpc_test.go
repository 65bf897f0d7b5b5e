package e2e_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
	"github.com/ofaserve/ofaserve/test/e2e/linear"
)

// limitedConfig is the linear model with a queue of one request and a long
// batching delay, so a lone request is known to wait in the queue for
// about two seconds: a second request arriving meanwhile finds the queue
// full, and a request whose own timeout is shorter than the delay expires
// there. The default timeout is far longer than the delay, so a request
// without its own timeout is answered.
const limitedConfig = `platform: "pytorch_libtorch"
max_batch_size: 16
input [{ name: "INPUT__0" data_type: TYPE_FP32 dims: [8] }, { name: "INPUT__1" data_type: TYPE_FP32 dims: [8] }]
output [{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [4] }, { name: "OUTPUT__1" data_type: TYPE_FP32 dims: [1] }]
dynamic_batching {
  max_queue_delay_microseconds: 2000000
  default_queue_policy { max_queue_size: 1 timeout_action: REJECT default_timeout_microseconds: 60000000 allow_timeout_override: true }
}
`

// rpcTimeout bounds every gRPC call; generous for a loaded machine.
const rpcTimeout = 30 * time.Second

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
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	t.Cleanup(cancel)
	return ctx
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, f := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}

// grpcInferRequest asks model for x, y, as typed contents or, when raw, as
// raw_input_contents.
func grpcInferRequest(model, id string, x, y []float32, raw bool) *pb.ModelInferRequest {
	req := &pb.ModelInferRequest{ModelName: model, Id: id}
	for i, v := range [][]float32{x, y} {
		in := &pb.ModelInferRequest_InferInputTensor{Name: fmt.Sprintf("INPUT__%d", i), Datatype: "FP32", Shape: []int64{1, 8}}
		if raw {
			req.RawInputContents = append(req.RawInputContents, f32Bytes(v))
		} else {
			in.Contents = &pb.InferTensorContents{Fp32Contents: v}
		}
		req.Inputs = append(req.Inputs, in)
	}
	return req
}

// outputValues returns output i of resp, from raw_output_contents when the
// server used them, else from the typed contents.
func outputValues(t *testing.T, resp *pb.ModelInferResponse, i int) []float64 {
	t.Helper()
	var out []float64
	if raw := resp.GetRawOutputContents(); len(raw) > 0 {
		if len(raw) != len(resp.GetOutputs()) || len(raw[i])%4 != 0 {
			t.Fatalf("raw_output_contents %d entries for %d outputs", len(raw), len(resp.GetOutputs()))
		}
		for j := 0; j < len(raw[i]); j += 4 {
			out = append(out, float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[i][j:]))))
		}
		return out
	}
	for _, f := range resp.GetOutputs()[i].GetContents().GetFp32Contents() {
		out = append(out, float64(f))
	}
	return out
}

func checkGRPCInfer(t *testing.T, resp *pb.ModelInferResponse, model, id string, x, y []float32) {
	t.Helper()
	if resp.GetId() != id || resp.GetModelName() != model || resp.GetModelVersion() != "1" || len(resp.GetOutputs()) != 2 {
		t.Fatalf("response %v", resp)
	}
	o := resp.GetOutputs()
	if o[0].GetName() != "OUTPUT__0" || o[0].GetDatatype() != "FP32" || fmt.Sprint(o[0].GetShape()) != "[1 4]" ||
		o[1].GetName() != "OUTPUT__1" || fmt.Sprint(o[1].GetShape()) != "[1 1]" {
		t.Fatalf("outputs %v", o)
	}
	o0, o1 := linear.Expected(x, y)
	got0, got1 := outputValues(t, resp, 0), outputValues(t, resp, 1)
	if len(got0) != 4 || len(got1) != 1 {
		t.Fatalf("%s: output sizes %d, %d", id, len(got0), len(got1))
	}
	for j := range 4 {
		if !linear.Near(got0[j], o0[j]) {
			t.Errorf("%s: OUTPUT__0[%d] = %v, want %v", id, j, got0[j], o0[j])
		}
	}
	if !linear.Near(got1[0], o1) {
		t.Errorf("%s: OUTPUT__1 = %v, want %v", id, got1[0], o1)
	}
}

func TestGRPCHealthAndMetadata(t *testing.T) {
	c, ctx := grpcClient(t), rpcCtx(t)
	if r, err := c.ServerLive(ctx, &pb.ServerLiveRequest{}); err != nil || !r.GetLive() {
		t.Errorf("ServerLive = %v, %v", r, err)
	}
	if r, err := c.ServerReady(ctx, &pb.ServerReadyRequest{}); err != nil || !r.GetReady() {
		t.Errorf("ServerReady = %v, %v", r, err)
	}
	if r, err := c.ServerMetadata(ctx, &pb.ServerMetadataRequest{}); err != nil || r.GetName() == "" || r.GetVersion() == "" || len(r.GetExtensions()) == 0 {
		t.Errorf("ServerMetadata = %v, %v", r, err)
	}
	md, err := c.ModelMetadata(ctx, &pb.ModelMetadataRequest{Name: "linear"})
	if err != nil || md.GetName() != "linear" || md.GetPlatform() != "pytorch_libtorch" || fmt.Sprint(md.GetVersions()) != "[1]" ||
		len(md.GetInputs()) != 2 || md.GetInputs()[0].GetName() != "INPUT__0" || md.GetInputs()[0].GetDatatype() != "FP32" ||
		fmt.Sprint(md.GetInputs()[0].GetShape()) != "[-1 8]" || len(md.GetOutputs()) != 2 || fmt.Sprint(md.GetOutputs()[0].GetShape()) != "[-1 4]" {
		t.Errorf("ModelMetadata = %v, %v", md, err)
	}
	cfg, err := c.ModelConfig(ctx, &pb.ModelConfigRequest{Name: "linear"})
	if err != nil || cfg.GetConfig().GetMaxBatchSize() != 16 || len(cfg.GetConfig().GetInput()) != 2 ||
		cfg.GetConfig().GetDynamicBatching().GetMaxQueueDelayMicroseconds() != 100000 {
		t.Errorf("ModelConfig = %v, %v", cfg, err)
	}
	lc, err := c.ModelConfig(ctx, &pb.ModelConfigRequest{Name: "linear_limited"})
	if qp := lc.GetConfig().GetDynamicBatching().GetDefaultQueuePolicy(); err != nil || qp.GetMaxQueueSize() != 1 || !qp.GetAllowTimeoutOverride() {
		t.Errorf("ModelConfig(linear_limited) = %v, %v", lc, err)
	}
	for _, tc := range []struct {
		name, version string
		ready         bool
	}{{"linear", "", true}, {"linear", "1", true}, {"linear_limited", "", true}, {"linear_b", "", false}} {
		r, err := c.ModelReady(ctx, &pb.ModelReadyRequest{Name: tc.name, Version: tc.version})
		if !tc.ready && status.Code(err) == codes.NotFound {
			continue // an unloaded model may be reported as having no available versions
		}
		if err != nil || r.GetReady() != tc.ready {
			t.Errorf("ModelReady(%s, %q) = %v, %v; want %v", tc.name, tc.version, r, err, tc.ready)
		}
	}
	idx, err := c.RepositoryIndex(ctx, &pb.RepositoryIndexRequest{})
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, m := range idx.GetModels() {
		states[m.GetName()] = m.GetState()
	}
	if len(states) != 3 || states["linear"] != "READY" || states["linear_limited"] != "READY" {
		t.Errorf("RepositoryIndex = %v", idx)
	}
	ready, err := c.RepositoryIndex(ctx, &pb.RepositoryIndexRequest{Ready: true})
	for _, m := range ready.GetModels() {
		if m.GetState() != "READY" || m.GetName() == "linear_b" {
			t.Errorf("RepositoryIndex(ready) lists %v", m)
		}
	}
	if err != nil || len(ready.GetModels()) < 2 {
		t.Errorf("RepositoryIndex(ready) = %v, %v", ready, err)
	}
}

func TestGRPCInfer(t *testing.T) {
	c, ctx := grpcClient(t), rpcCtx(t)
	for _, raw := range []bool{false, true} {
		x, y := inputs(20)
		if raw {
			x, y = inputs(21)
		}
		id := fmt.Sprintf("g-raw=%v", raw)
		resp, err := c.ModelInfer(ctx, grpcInferRequest("linear", id, x, y, raw))
		if err != nil {
			t.Fatalf("ModelInfer(raw=%v): %v", raw, err)
		}
		if raw && len(resp.GetRawOutputContents()) != 2 {
			t.Errorf("raw request answered without raw_output_contents: %v", resp)
		}
		checkGRPCInfer(t, resp, "linear", id, x, y)
	}
	st, err := c.ModelStatistics(ctx, &pb.ModelStatisticsRequest{Name: "linear"})
	if err != nil || len(st.GetModelStats()) != 1 {
		t.Fatalf("ModelStatistics = %v, %v", st, err)
	}
	if s := st.GetModelStats()[0]; s.GetName() != "linear" || s.GetInferenceCount() < 2 || s.GetExecutionCount() == 0 ||
		s.GetInferenceStats().GetSuccess().GetCount() < 2 || s.GetLastInference() == 0 {
		t.Errorf("statistics of linear = %v", s)
	}
}

func TestGRPCStreamInfer(t *testing.T) {
	c, ctx := grpcClient(t), rpcCtx(t)
	stream, err := c.ModelStreamInfer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	x, y := inputs(30)
	bad := grpcInferRequest("linear", "s-bad", x, y, false)
	bad.Inputs[0].Shape = []int64{8}
	if err := stream.Send(bad); err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(grpcInferRequest("linear", "s-good", x, y, true)); err != nil {
		t.Fatal(err)
	}
	var gotBad, gotGood bool
	for range 2 {
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("stream closed: %v", err)
		}
		if r.GetErrorMessage() != "" {
			if gotBad || !strings.Contains(r.GetErrorMessage(), "unexpected shape for input 'INPUT__0'") {
				t.Errorf("error_message %q", r.GetErrorMessage())
			}
			gotBad = true
			continue
		}
		gotGood = true
		checkGRPCInfer(t, r.GetInferResponse(), "linear", "s-good", x, y)
	}
	if !gotBad || !gotGood {
		t.Fatalf("answers: bad %v, good %v", gotBad, gotGood)
	}
	// The stream is still open after the error.
	x, y = inputs(31)
	if err := stream.Send(grpcInferRequest("linear", "s-after", x, y, false)); err != nil {
		t.Fatal(err)
	}
	r, err := stream.Recv()
	if err != nil || r.GetErrorMessage() != "" {
		t.Fatalf("after the error: %v, %v", r, err)
	}
	checkGRPCInfer(t, r.GetInferResponse(), "linear", "s-after", x, y)
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != io.EOF {
		t.Errorf("after CloseSend: %v, %v; want io.EOF", r, err)
	}
}

func TestGRPCErrors(t *testing.T) {
	c, ctx := grpcClient(t), rpcCtx(t)
	x, y := inputs(40)
	badShape := grpcInferRequest("linear", "e", x, y, false)
	badShape.Inputs[0].Shape = []int64{8}
	wrongType := grpcInferRequest("linear", "e", x, y, false)
	wrongType.Inputs[0].Datatype = "INT32"
	wrongType.Inputs[0].Contents = &pb.InferTensorContents{IntContents: []int32{1, 2, 3, 4, 5, 6, 7, 8}}
	for _, tc := range []struct {
		name string
		call func() error
		code codes.Code
		msg  string
	}{
		{"unknown model infer", func() error {
			_, err := c.ModelInfer(ctx, grpcInferRequest("nope", "e", x, y, false))
			return err
		}, codes.NotFound, "unknown model: 'nope'"},
		{"unknown model metadata", func() error {
			_, err := c.ModelMetadata(ctx, &pb.ModelMetadataRequest{Name: "nope"})
			return err
		}, codes.NotFound, "nope"},
		{"bad shape", func() error { _, err := c.ModelInfer(ctx, badShape); return err }, codes.InvalidArgument, "unexpected shape for input 'INPUT__0'"},
		{"wrong datatype", func() error { _, err := c.ModelInfer(ctx, wrongType); return err }, codes.InvalidArgument, "data-type is 'INT32', but model 'linear' expects 'FP32'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if s, _ := status.FromError(err); s.Code() != tc.code || !strings.Contains(s.Message(), tc.msg) {
				t.Errorf("error %v, want %v containing %q", err, tc.code, tc.msg)
			}
		})
	}
	// The server is unharmed.
	resp, err := c.ModelInfer(ctx, grpcInferRequest("linear", "e", x, y, false))
	if err != nil {
		t.Fatal(err)
	}
	checkGRPCInfer(t, resp, "linear", "e", x, y)
}

// waitLimitedPending waits until linear_limited has n requests waiting in
// its queue, as its metrics say.
func waitLimitedPending(t *testing.T, n int) {
	t.Helper()
	want := []byte(fmt.Sprintf("nv_inference_pending_request_count{model=\"linear_limited\",version=\"1\"} %d\n", n))
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		r, err := http.Get("http://" + env.srv.Metrics + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if bytes.Contains(b, want) {
			return
		}
	}
	t.Fatalf("linear_limited never had %d pending requests", n)
}

// queueFull sends first, waits until it is queued in linear_limited (its
// 2 s batching delay holds it there), then sends second, which must find
// the queue full. second reports whether it was rejected so; when it was
// answered instead (the machine was so slow that first had already left
// the queue), the whole exchange is tried again.
func queueFull(t *testing.T, first func(), second func() (rejected bool)) {
	t.Helper()
	waitLimitedPending(t, 0)
	for try := range 3 {
		done := make(chan struct{})
		go func() { defer close(done); first() }()
		waitLimitedPending(t, 1)
		rejected := second()
		<-done
		if rejected {
			return
		}
		t.Logf("try %d: the second request was not rejected; the first had already left the queue", try)
	}
	t.Fatal("no queue-full rejection in 3 tries")
}

func TestQueueFullHTTP(t *testing.T) {
	url := httpURL("/v2/models/linear_limited/infer")
	x, y := inputs(50)
	queueFull(t, func() {
		checkJSONInferModel(t, request(t, "POST", url, inferBody("q1", x, y)), "linear_limited", "q1", x, y)
	}, func() bool {
		r := request(t, "POST", url, inferBody("q2", x, y))
		if r.code == 200 {
			checkJSONInferModel(t, r, "linear_limited", "q2", x, y)
			return false
		}
		var e struct{ Error string }
		if err := json.Unmarshal(r.body, &e); err != nil || r.code != 503 || !strings.Contains(e.Error, "Exceeds maximum queue size") {
			t.Errorf("second request = %d %s, want 503 with \"Exceeds maximum queue size\"", r.code, r.body)
		}
		return true
	})
}

func TestQueueFullGRPC(t *testing.T) {
	c := grpcClient(t)
	x, y := inputs(51)
	queueFull(t, func() {
		resp, err := c.ModelInfer(rpcCtx(t), grpcInferRequest("linear_limited", "q1", x, y, true))
		if err != nil {
			t.Errorf("first request: %v", err)
			return
		}
		checkGRPCInfer(t, resp, "linear_limited", "q1", x, y)
	}, func() bool {
		resp, err := c.ModelInfer(rpcCtx(t), grpcInferRequest("linear_limited", "q2", x, y, true))
		if err == nil {
			checkGRPCInfer(t, resp, "linear_limited", "q2", x, y)
			return false
		}
		if s, _ := status.FromError(err); s.Code() != codes.Unavailable || !strings.Contains(s.Message(), "Exceeds maximum queue size") {
			t.Errorf("second request: %v, want Unavailable with \"Exceeds maximum queue size\"", err)
		}
		return true
	})
}

// The queue timeout tests ask for 50 ms, far below linear_limited's 2 s
// batching delay, so the request expires in the queue whatever the load.

func TestQueueTimeoutHTTP(t *testing.T) {
	waitLimitedPending(t, 0)
	x, y := inputs(52)
	body := strings.Replace(inferBody("t1", x, y), `{"id":"t1",`, `{"id":"t1","parameters":{"timeout":50000},`, 1)
	r := request(t, "POST", httpURL("/v2/models/linear_limited/infer"), body)
	var e struct{ Error string }
	if err := json.Unmarshal(r.body, &e); err != nil || r.code != 503 || !strings.Contains(e.Error, "Request timeout expired") {
		t.Errorf("request with timeout 50000 = %d %s, want 503 with \"Request timeout expired\"", r.code, r.body)
	}
}

func TestQueueTimeoutGRPC(t *testing.T) {
	waitLimitedPending(t, 0)
	c := grpcClient(t)
	x, y := inputs(53)
	req := grpcInferRequest("linear_limited", "t2", x, y, false)
	req.Parameters = map[string]*pb.InferParameter{"timeout": {ParameterChoice: &pb.InferParameter_Int64Param{Int64Param: 50000}}}
	_, err := c.ModelInfer(rpcCtx(t), req)
	if s, _ := status.FromError(err); s.Code() != codes.Unavailable || !strings.Contains(s.Message(), "Request timeout expired") {
		t.Errorf("request with timeout 50000: %v, want Unavailable with \"Request timeout expired\"", err)
	}
}

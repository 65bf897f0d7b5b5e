package ensemble_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
)

func TestPipelineHTTP(t *testing.T) {
	x, y := inputs(3)
	r := post(t, "/v2/models/pipeline/infer", jsonRequest("p1", "X", "Y", x, y))
	var ir inferJSON
	if err := json.Unmarshal(r.body, &ir); err != nil || r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	if ir.ID != "p1" || ir.ModelName != "pipeline" || ir.ModelVersion != "1" {
		t.Errorf("response %s", r.body)
	}
	got, order := map[string][]float64{}, []string{}
	for _, o := range ir.Outputs {
		got[o.Name] = o.Data
		order = append(order, o.Name)
		if o.Shape[0] != 1 || len(o.Shape) != 2 {
			t.Errorf("%s has shape %v, want the batch of one", o.Name, o.Shape)
		}
	}
	checkPipeline(t, got, order, x, y)

	// Asking for one output answers that one.
	body := strings.TrimSuffix(jsonRequest("p2", "X", "Y", x, y), "}") + `,"outputs":[{"name":"M1"}]}`
	r = post(t, "/v2/models/pipeline/infer", body)
	ir = inferJSON{}
	if err := json.Unmarshal(r.body, &ir); err != nil || r.code != 200 || len(ir.Outputs) != 1 || ir.Outputs[0].Name != "M1" {
		t.Fatalf("one output: %d %s", r.code, r.body)
	}
}

func TestPipelineGRPC(t *testing.T) {
	c := grpcClient(t)
	x, y := inputs(4)
	resp, err := c.ModelInfer(rpcCtx(t), grpcRequest("pipeline", "g1", "X", "Y", x, y))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetId() != "g1" || resp.GetModelName() != "pipeline" || resp.GetModelVersion() != "1" {
		t.Errorf("response %v", resp)
	}
	got, order := grpcOutputs(t, resp)
	checkPipeline(t, got, order, x, y)
	cfg, err := c.ModelConfig(rpcCtx(t), &pb.ModelConfigRequest{Name: "pipeline"})
	if err != nil || len(cfg.GetConfig().GetEnsembleScheduling().GetStep()) != 4 || cfg.GetConfig().GetPlatform() != "ensemble" {
		t.Errorf("ModelConfig = %v, %v", cfg, err)
	}
}

// TestStatisticsListEachStep: an ensemble request counts once in the
// ensemble's statistics and once per step in each step model's.
func TestStatisticsListEachStep(t *testing.T) {
	before := stats(t)
	const n = 3
	for i := range n {
		x, y := inputs(20 + i)
		if r := post(t, "/v2/models/pipeline/infer", jsonRequest("s", "X", "Y", x, y)); r.code != 200 {
			t.Fatalf("%d %s", r.code, r.body)
		}
	}
	after := stats(t)
	for name, want := range map[string]uint64{"pipeline": n, "linear": 2 * n, "add_sub": 2 * n} {
		got := after[name].InferenceStats["success"].Count - before[name].InferenceStats["success"].Count
		if got != want {
			t.Errorf("%s: success +%d, want +%d", name, got, want)
		}
	}
	p := after["pipeline"]
	if d := p.ExecutionCount - before["pipeline"].ExecutionCount; d != n {
		t.Errorf("pipeline: execution_count +%d, want +%d (one per request)", d, n)
	}
	if p.InferenceStats["compute_infer"].NS == 0 || p.InferenceStats["compute_infer"].Count != p.InferenceStats["success"].Count {
		t.Errorf("pipeline compute_infer %+v, success %+v", p.InferenceStats["compute_infer"], p.InferenceStats["success"])
	}
	for _, name := range []string{"pipeline", "linear", "add_sub"} {
		metric(t, `nv_inference_request_success{model="`+name+`",version="1"}`)
	}
}

// TestFailingStep: inputs the step model's forward refuses fail the
// ensemble with the step model's own error and status, the ensemble and
// the step named, over HTTP and gRPC; the server then answers as before.
func TestFailingStep(t *testing.T) {
	bad := `{"inputs":[{"name":"%A","shape":[1,3],"datatype":"FP32","data":[1,2,3]},{"name":"%B","shape":[1,2],"datatype":"FP32","data":[1,2]}]}`
	direct := post(t, "/v2/models/add_sub/infer", strings.NewReplacer("%A", "INPUT0", "%B", "INPUT1").Replace(bad))
	via := post(t, "/v2/models/pair/infer", strings.NewReplacer("%A", "A", "%B", "B").Replace(bad))
	var de, ve struct{ Error string }
	if json.Unmarshal(direct.body, &de) != nil || json.Unmarshal(via.body, &ve) != nil || direct.code == 200 || de.Error == "" {
		t.Fatalf("direct %d %s; ensemble %d %s", direct.code, direct.body, via.code, via.body)
	}
	t.Logf("the ensemble answered %d %s", via.code, ve.Error)
	if want := "in ensemble 'pair', step 0 (model 'add_sub'): " + de.Error; ve.Error != want || via.code != direct.code {
		t.Errorf("ensemble error %d %q\nwant %d %q", via.code, ve.Error, direct.code, want)
	}

	c := grpcClient(t)
	req := &pb.ModelInferRequest{ModelName: "pair", Inputs: []*pb.ModelInferRequest_InferInputTensor{
		{Name: "A", Datatype: "FP32", Shape: []int64{1, 3}, Contents: &pb.InferTensorContents{Fp32Contents: []float32{1, 2, 3}}},
		{Name: "B", Datatype: "FP32", Shape: []int64{1, 2}, Contents: &pb.InferTensorContents{Fp32Contents: []float32{1, 2}}},
	}}
	_, err := c.ModelInfer(rpcCtx(t), req)
	if st, _ := status.FromError(err); st.Message() != ve.Error || st.Code() == codes.OK {
		t.Errorf("gRPC: %v, want the HTTP error %q", err, ve.Error)
	}
	x := []float32{1, 2, 3}
	req.Inputs[1] = &pb.ModelInferRequest_InferInputTensor{Name: "B", Datatype: "FP32", Shape: []int64{1, 3}, Contents: &pb.InferTensorContents{Fp32Contents: x}}
	resp, err := c.ModelInfer(rpcCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := grpcOutputs(t, resp); len(got["SUM"]) != 3 || got["SUM"][2] != 6 {
		t.Errorf("SUM after the failure = %v, want [2 4 6]", got["SUM"])
	}
}

// TestCancelledRequest: a client that gives up while its step waits in the
// step model's queue ends the ensemble request, and the step request leaves
// the queue (CANCELED in the step model, OTHER in the ensemble).
func TestCancelledRequest(t *testing.T) {
	const (
		cancelled = `nv_inference_request_failure{model="linear_slow",reason="CANCELED",version="1"}`
		other     = `nv_inference_request_failure{model="slow",reason="OTHER",version="1"}`
		pending   = `nv_inference_pending_request_count{model="linear_slow",version="1"}`
	)
	cancelled0, other0 := metric(t, cancelled), metric(t, other)
	c := grpcClient(t)
	x, y := inputs(5)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := c.ModelInfer(ctx, grpcRequest("slow", "c1", "X", "Y", x, y))
		errc <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for metric(t, pending) == 0 { // the step is in linear_slow's queue, for two seconds
		if time.Now().After(deadline) {
			t.Fatal("the step request never reached linear_slow's queue")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-errc; status.Code(err) != codes.Canceled {
		t.Fatalf("ModelInfer = %v, want Canceled", err)
	}
	for metric(t, cancelled) == cancelled0 || metric(t, other) == other0 || metric(t, pending) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after the cancel: linear_slow CANCELED %v (was %v), pending %v; slow OTHER %v (was %v)",
				metric(t, cancelled), cancelled0, metric(t, pending), metric(t, other), other0)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := metric(t, `nv_inference_request_success{model="linear_slow",version="1"}`); d != 0 {
		t.Errorf("the cancelled step ran anyway (%v successes)", d)
	}
}

// TestBatchingAcrossEnsembleAndDirect: 32 concurrent ensemble requests and
// 8 direct requests form batches in the step models: fewer executions than
// requests.
func TestBatchingAcrossEnsembleAndDirect(t *testing.T) {
	before := stats(t)
	var wg sync.WaitGroup
	errs := make(chan string, 40)
	for i := range 40 {
		wg.Go(func() {
			x, y := inputs(100 + i)
			model, a, b := "pipeline", "X", "Y"
			if i >= 32 {
				model, a, b = "linear", "INPUT__0", "INPUT__1"
			}
			if r := post(t, "/v2/models/"+model+"/infer", jsonRequest(strconv.Itoa(i), a, b, x, y)); r.code != 200 {
				errs <- string(r.body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	after := stats(t)
	for name, want := range map[string]uint64{"linear": 2*32 + 8, "add_sub": 2 * 32, "pipeline": 32} {
		reqs := after[name].InferenceStats["success"].Count - before[name].InferenceStats["success"].Count
		execs := after[name].ExecutionCount - before[name].ExecutionCount
		t.Logf("%s: %d requests in %d executions", name, reqs, execs)
		if reqs != want {
			t.Errorf("%s: %d requests, want %d", name, reqs, want)
		}
		if name != "pipeline" && execs >= reqs {
			t.Errorf("%s: %d executions for %d requests: the requests did not batch", name, execs, reqs)
		}
	}
}

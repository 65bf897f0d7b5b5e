package server

import (
	"context"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/ofaserve/ofaserve/backend"
	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
)

func grpcClient(t *testing.T, repo Repository) (pb.GRPCInferenceServiceClient, *grpc.ClientConn) {
	t.Helper()
	return grpcOver(t, newTestServer(t, repo, Options{}))
}

func wantCode(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), msg) {
		t.Errorf("got %v %q, want %v containing %q", st.Code(), st.Message(), code, msg)
	}
}

func simpleGRPCRequest() *pb.ModelInferRequest {
	a := seq(16, func(i int) int32 { return int32(i) })
	b := seq(16, func(i int) int32 { return 1 })
	return &pb.ModelInferRequest{
		ModelName: "simple", Id: "g1",
		Inputs: []*pb.ModelInferRequest_InferInputTensor{
			{Name: "INPUT0", Datatype: "INT32", Shape: []int64{1, 16}},
			{Name: "INPUT1", Datatype: "INT32", Shape: []int64{1, 16}},
		},
		RawInputContents: [][]byte{i32bytes(a), i32bytes(b)},
	}
}

func TestGRPCHealthAndMetadata(t *testing.T) {
	repo := testRepo()
	c, conn := grpcClient(t, repo)
	ctx := context.Background()
	if r, err := c.ServerLive(ctx, &pb.ServerLiveRequest{}); err != nil || !r.Live {
		t.Errorf("ServerLive = %v %v", r, err)
	}
	if r, err := c.ServerReady(ctx, &pb.ServerReadyRequest{}); err != nil || !r.Ready {
		t.Errorf("ServerReady = %v %v", r, err)
	}
	if r, err := c.ModelReady(ctx, &pb.ModelReadyRequest{Name: "simple"}); err != nil || !r.Ready {
		t.Errorf("ModelReady = %v %v", r, err)
	}
	if r, err := c.ModelReady(ctx, &pb.ModelReadyRequest{Name: "simple", Version: "2"}); err != nil || r.Ready {
		t.Errorf("ModelReady of a version not ready = %v %v", r, err)
	}
	_, err := c.ModelReady(ctx, &pb.ModelReadyRequest{Name: "nope"})
	wantCode(t, err, codes.NotFound, "unknown model")
	md, err := c.ServerMetadata(ctx, &pb.ServerMetadataRequest{})
	if err != nil || md.Name != "triton" || len(md.Extensions) == 0 {
		t.Errorf("ServerMetadata = %v %v", md, err)
	}
	mm, err := c.ModelMetadata(ctx, &pb.ModelMetadataRequest{Name: "simple", Version: "1"})
	if err != nil || mm.Name != "simple" || mm.Versions[0] != "1" || len(mm.Inputs) != 2 || backend.FormatShape(mm.Inputs[1].Shape) != "[-1,16]" {
		t.Errorf("ModelMetadata = %v %v", mm, err)
	}
	_, err = c.ModelMetadata(ctx, &pb.ModelMetadataRequest{Name: "simple", Version: "x"})
	wantCode(t, err, codes.InvalidArgument, "failed to get model version")
	cfg, err := c.ModelConfig(ctx, &pb.ModelConfigRequest{Name: "simple"})
	if err != nil || cfg.Config.GetName() != "simple" || cfg.Config.GetMaxBatchSize() != 8 {
		t.Errorf("ModelConfig = %v %v", cfg, err)
	}
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health = %v %v", h, err)
	}
	repo.notReady = true
	h, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health when not ready = %v %v", h, err)
	}
}

func TestGRPCReflection(t *testing.T) {
	_, conn := grpcClient(t, testRepo())
	st, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	if got := strings.Join(names, ","); !strings.Contains(got, "inference.GRPCInferenceService") || !strings.Contains(got, "grpc.health.v1.Health") {
		t.Errorf("reflection lists %s", got)
	}
}

func TestGRPCInferRaw(t *testing.T) {
	c, _ := grpcClient(t, testRepo())
	r, err := c.ModelInfer(context.Background(), simpleGRPCRequest())
	if err != nil {
		t.Fatal(err)
	}
	if r.ModelName != "simple" || r.ModelVersion != "1" || r.Id != "g1" || len(r.Outputs) != 2 || len(r.RawOutputContents) != 2 {
		t.Fatalf("response = %v", r)
	}
	sum, diff := i32s(r.RawOutputContents[0]), i32s(r.RawOutputContents[1])
	for i := range 16 {
		if sum[i] != int32(i+1) || diff[i] != int32(i-1) {
			t.Fatalf("outputs wrong: %v %v", sum, diff)
		}
	}
	if r.Outputs[0].Contents != nil || backend.FormatShape(r.Outputs[0].Shape) != "[1,16]" || r.Outputs[0].Datatype != "INT32" {
		t.Errorf("output tensor = %v", r.Outputs[0])
	}
}

func TestGRPCInferTyped(t *testing.T) {
	c, _ := grpcClient(t, testRepo())
	req := simpleGRPCRequest()
	req.RawInputContents = nil
	req.Inputs[0].Contents = &pb.InferTensorContents{IntContents: seq(16, func(i int) int32 { return int32(10 * i) })}
	req.Inputs[1].Contents = &pb.InferTensorContents{IntContents: seq(16, func(i int) int32 { return 3 })}
	req.Outputs = []*pb.ModelInferRequest_InferRequestedOutputTensor{{Name: "OUTPUT1"}}
	req.Parameters = map[string]*pb.InferParameter{"priority": {ParameterChoice: &pb.InferParameter_Uint64Param{Uint64Param: 1}}}
	r, err := c.ModelInfer(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Outputs) != 1 || r.Outputs[0].Name != "OUTPUT1" || i32s(r.RawOutputContents[0])[4] != 37 {
		t.Errorf("typed request: %v", r)
	}
	// Classification over gRPC takes int64_param.
	cr := &pb.ModelInferRequest{ModelName: "labels",
		Inputs:  []*pb.ModelInferRequest_InferInputTensor{{Name: "INPUT0", Datatype: "FP32", Shape: []int64{1, 4}, Contents: &pb.InferTensorContents{Fp32Contents: []float32{1, 9, 3, 2}}}},
		Outputs: []*pb.ModelInferRequest_InferRequestedOutputTensor{{Name: "OUTPUT0", Parameters: map[string]*pb.InferParameter{"classification": {ParameterChoice: &pb.InferParameter_Int64Param{Int64Param: 1}}}}}}
	r, err = c.ModelInfer(context.Background(), cr)
	if err != nil || r.Outputs[0].Datatype != "BYTES" || string(r.RawOutputContents[0][4:]) != "9.000000:1:dog" {
		t.Errorf("classification: %v %v", r, err)
	}
}

func TestGRPCInferErrors(t *testing.T) {
	c, _ := grpcClient(t, testRepo())
	ctx := context.Background()
	mk := func(f func(r *pb.ModelInferRequest)) *pb.ModelInferRequest {
		r := simpleGRPCRequest()
		f(r)
		return r
	}
	for _, tc := range []struct {
		name string
		req  *pb.ModelInferRequest
		code codes.Code
		msg  string
	}{
		{"unknown model", mk(func(r *pb.ModelInferRequest) { r.ModelName = "nope" }), codes.NotFound, "Request for unknown model: 'nope' is not found"},
		{"bad version", mk(func(r *pb.ModelInferRequest) { r.ModelVersion = "v1" }), codes.InvalidArgument, "failed to get model version"},
		{"not ready version", mk(func(r *pb.ModelInferRequest) { r.ModelVersion = "2" }), codes.Unavailable, "not at ready state"},
		{"contents with raw", mk(func(r *pb.ModelInferRequest) { r.Inputs[0].Contents = &pb.InferTensorContents{IntContents: []int32{1}} }), codes.InvalidArgument, "contents field must not be specified when using raw_input_contents for 'INPUT0' for model 'simple'"},
		{"missing raw", mk(func(r *pb.ModelInferRequest) { r.RawInputContents = r.RawInputContents[:1] }), codes.InvalidArgument, "unable to find data for input tensor 'INPUT1' for model 'simple' in request."},
		{"wrong typed field", mk(func(r *pb.ModelInferRequest) {
			r.RawInputContents = nil
			r.Inputs[0].Contents = &pb.InferTensorContents{Fp32Contents: make([]float32, 16)}
			r.Inputs[1].Contents = &pb.InferTensorContents{IntContents: make([]int32, 16)}
		}), codes.InvalidArgument, "unexpected explicit tensor data for input tensor 'INPUT0' for model 'simple' of type 'fp32', expected datatype 'INT32'"},
		{"negative dim", mk(func(r *pb.ModelInferRequest) { r.Inputs[0].Shape = []int64{-1, 16} }), codes.InvalidArgument, "All input dimensions should be specified for input 'INPUT0'"},
		{"byte size", mk(func(r *pb.ModelInferRequest) { r.RawInputContents[1] = r.RawInputContents[1][:60] }), codes.InvalidArgument, "input byte size mismatch for input 'INPUT1' for model 'simple'. Expected 64, got 60"},
		{"reserved param", mk(func(r *pb.ModelInferRequest) {
			r.Parameters = map[string]*pb.InferParameter{"triton_x": {ParameterChoice: &pb.InferParameter_BoolParam{BoolParam: true}}}
		}), codes.InvalidArgument, "reserved for Triton usage"},
		{"priority type", mk(func(r *pb.ModelInferRequest) {
			r.Parameters = map[string]*pb.InferParameter{"priority": {ParameterChoice: &pb.InferParameter_StringParam{StringParam: "high"}}}
		}), codes.InvalidArgument, "invalid value type for 'priority' parameter"},
		{"model error", &pb.ModelInferRequest{ModelName: "failing", Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "INPUT0", Datatype: "FP32", Shape: []int64{1}}}, RawInputContents: [][]byte{make([]byte, 4)}}, codes.Unavailable, "Exceeds maximum queue size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.ModelInfer(ctx, tc.req)
			wantCode(t, err, tc.code, tc.msg)
		})
	}
}

func TestGRPCStreamInfer(t *testing.T) {
	c, _ := grpcClient(t, testRepo())
	st, err := c.ModelStreamInfer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	good := simpleGRPCRequest()
	bad := simpleGRPCRequest()
	bad.Id = "bad"
	bad.RawInputContents = bad.RawInputContents[:1]
	for _, r := range []*pb.ModelInferRequest{good, bad} {
		if err := st.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	got := map[string]*pb.ModelStreamInferResponse{}
	for {
		r, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[r.GetInferResponse().GetId()] = r
	}
	if r := got["g1"]; r == nil || r.ErrorMessage != "" || i32s(r.InferResponse.RawOutputContents[0])[3] != 4 || !r.InferResponse.Parameters["triton_final_response"].GetBoolParam() {
		t.Errorf("good stream response = %v", r)
	}
	if r := got["bad"]; r == nil || !strings.Contains(r.ErrorMessage, "unable to find data for input tensor 'INPUT1'") {
		t.Errorf("bad stream response = %v", r)
	}
}

func TestGRPCStatisticsAndRepository(t *testing.T) {
	repo := testRepo()
	c, _ := grpcClient(t, repo)
	ctx := context.Background()
	st, err := c.ModelStatistics(ctx, &pb.ModelStatisticsRequest{Name: "simple"})
	if err != nil || len(st.ModelStats) != 1 || st.ModelStats[0].InferenceCount != 6 || st.ModelStats[0].ExecutionCount != 2 ||
		len(st.ModelStats[0].BatchStats) != 2 || st.ModelStats[0].InferenceStats.Success.Count != 6 {
		t.Errorf("ModelStatistics = %v %v", st, err)
	}
	all, err := c.ModelStatistics(ctx, &pb.ModelStatisticsRequest{})
	if err != nil || len(all.ModelStats) != 7 {
		t.Errorf("all statistics: %d models, %v", len(all.GetModelStats()), err)
	}
	_, err = c.ModelStatistics(ctx, &pb.ModelStatisticsRequest{Name: "nope"})
	wantCode(t, err, codes.InvalidArgument, "requested model 'nope' is not available")
	idx, err := c.RepositoryIndex(ctx, &pb.RepositoryIndexRequest{Ready: true})
	if err != nil || len(idx.Models) != 7 {
		t.Errorf("RepositoryIndex = %v %v", idx, err)
	}
	_, err = c.RepositoryModelLoad(ctx, &pb.RepositoryModelLoadRequest{ModelName: "simple"})
	wantCode(t, err, codes.InvalidArgument, "explicit model load / unload is not allowed")
	_, err = c.RepositoryModelLoad(ctx, &pb.RepositoryModelLoadRequest{RepositoryName: "r", ModelName: "simple"})
	wantCode(t, err, codes.Unimplemented, "'repository_name' specification is not supported")
	repo.explicit = true
	if _, err := c.RepositoryModelLoad(ctx, &pb.RepositoryModelLoadRequest{ModelName: "simple"}); err != nil {
		t.Errorf("load: %v", err)
	}
	if _, err := c.RepositoryModelUnload(ctx, &pb.RepositoryModelUnloadRequest{ModelName: "simple"}); err != nil {
		t.Errorf("unload: %v", err)
	}
	_, err = c.SystemSharedMemoryRegister(ctx, &pb.SystemSharedMemoryRegisterRequest{Name: "r"})
	wantCode(t, err, codes.Unimplemented, "shared memory is not supported")
	_, err = c.CudaSharedMemoryStatus(ctx, &pb.CudaSharedMemoryStatusRequest{})
	wantCode(t, err, codes.Unimplemented, "shared memory is not supported")
}

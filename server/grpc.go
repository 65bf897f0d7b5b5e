package server

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/datatype"
	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
	"github.com/ofaserve/ofaserve/repository"
)

// maxGRPCMessage is Triton's gRPC message limit in both directions.
const maxGRPCMessage = math.MaxInt32

// streamConcurrency bounds the requests of one ModelStreamInfer stream that
// run at once (they run concurrently so that the batcher can batch them).
const streamConcurrency = 256

func (s *Server) newGRPC() *grpc.Server {
	g := grpc.NewServer(
		grpc.MaxRecvMsgSize(maxGRPCMessage),
		grpc.MaxSendMsgSize(maxGRPCMessage),
		grpc.ChainUnaryInterceptor(s.recoverUnary),
		grpc.ChainStreamInterceptor(s.recoverStream),
	)
	pb.RegisterGRPCInferenceServiceServer(g, &grpcService{s: s})
	healthpb.RegisterHealthServer(g, &healthService{s: s})
	reflection.Register(g)
	return g
}

func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic in gRPC handler", "method", info.FullMethod, "panic", v)
			err = status.Error(codes.Internal, "internal error")
		}
	}()
	return h(ctx, req)
}

func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic in gRPC stream handler", "method", info.FullMethod, "panic", v)
			err = status.Error(codes.Internal, "internal error")
		}
	}()
	return h(srv, ss)
}

// healthService is grpc.health.v1: SERVING while the server is ready.
type healthService struct {
	healthpb.UnimplementedHealthServer
	s *Server
}

func (h *healthService) state() healthpb.HealthCheckResponse_ServingStatus {
	if h.s.isReady() {
		return healthpb.HealthCheckResponse_SERVING
	}
	return healthpb.HealthCheckResponse_NOT_SERVING
}

func (h *healthService) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	switch req.GetService() {
	case "", "inference.GRPCInferenceService":
		return &healthpb.HealthCheckResponse{Status: h.state()}, nil
	}
	return nil, status.Errorf(codes.NotFound, "unknown service %q", req.GetService())
}

func (h *healthService) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	switch req.GetService() {
	case "", "inference.GRPCInferenceService":
	default:
		return stream.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVICE_UNKNOWN})
	}
	last := healthpb.HealthCheckResponse_UNKNOWN
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		if st := h.state(); st != last {
			if err := stream.Send(&healthpb.HealthCheckResponse{Status: st}); err != nil {
				return err
			}
			last = st
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-t.C:
		}
	}
}

// grpcService implements inference.GRPCInferenceService.
type grpcService struct {
	pb.UnimplementedGRPCInferenceServiceServer
	s *Server
}

// grpcVersion parses a version string: "" is the latest ready version.
func grpcVersion(v string) (int64, error) {
	if v == "" {
		return -1, nil
	}
	return repository.ParseVersion(v)
}

func (g *grpcService) model(name, version string) (Model, error) {
	v, err := grpcVersion(version)
	if err != nil {
		return nil, grpcError(err)
	}
	m, err := g.s.repo.Model(name, v)
	if err != nil {
		return nil, grpcError(err)
	}
	return m, nil
}

func (g *grpcService) ServerLive(context.Context, *pb.ServerLiveRequest) (*pb.ServerLiveResponse, error) {
	return &pb.ServerLiveResponse{Live: true}, nil
}

func (g *grpcService) ServerReady(context.Context, *pb.ServerReadyRequest) (*pb.ServerReadyResponse, error) {
	return &pb.ServerReadyResponse{Ready: g.s.isReady()}, nil
}

func (g *grpcService) ModelReady(_ context.Context, r *pb.ModelReadyRequest) (*pb.ModelReadyResponse, error) {
	v, err := grpcVersion(r.GetVersion())
	if err != nil {
		return nil, grpcError(err)
	}
	m, err := g.s.repo.Model(r.GetName(), v)
	if err != nil {
		if codeOf(err) == backend.CodeUnavailable {
			return &pb.ModelReadyResponse{Ready: false}, nil
		}
		return nil, grpcError(err)
	}
	return &pb.ModelReadyResponse{Ready: m.Ready()}, nil
}

func (g *grpcService) ServerMetadata(context.Context, *pb.ServerMetadataRequest) (*pb.ServerMetadataResponse, error) {
	return &pb.ServerMetadataResponse{Name: g.s.opts.Name, Version: g.s.opts.Version, Extensions: extensions}, nil
}

func (g *grpcService) ModelMetadata(_ context.Context, r *pb.ModelMetadataRequest) (*pb.ModelMetadataResponse, error) {
	m, err := g.model(r.GetName(), r.GetVersion())
	if err != nil {
		return nil, err
	}
	md := g.s.metadata(m, r.GetVersion() != "")
	resp := &pb.ModelMetadataResponse{Name: md.Name, Versions: md.Versions, Platform: md.Platform}
	for _, t := range md.Inputs {
		resp.Inputs = append(resp.Inputs, &pb.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape})
	}
	for _, t := range md.Outputs {
		resp.Outputs = append(resp.Outputs, &pb.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape})
	}
	return resp, nil
}

func (g *grpcService) ModelConfig(_ context.Context, r *pb.ModelConfigRequest) (*pb.ModelConfigResponse, error) {
	m, err := g.model(r.GetName(), r.GetVersion())
	if err != nil {
		return nil, err
	}
	return &pb.ModelConfigResponse{Config: m.Config()}, nil
}

func (g *grpcService) ModelStatistics(_ context.Context, r *pb.ModelStatisticsRequest) (*pb.ModelStatisticsResponse, error) {
	v, err := grpcVersion(r.GetVersion())
	if err != nil {
		return nil, grpcError(err)
	}
	if r.GetName() == "" && v >= 0 {
		return nil, status.Error(codes.InvalidArgument, "a model version needs a model name")
	}
	st, err := g.s.collectStats(r.GetName(), v)
	if err != nil {
		return nil, grpcError(err)
	}
	return statsPB(st), nil
}

func (g *grpcService) RepositoryIndex(_ context.Context, r *pb.RepositoryIndexRequest) (*pb.RepositoryIndexResponse, error) {
	resp := &pb.RepositoryIndexResponse{}
	for _, e := range g.s.repo.Index(r.GetReady()) {
		mi := &pb.RepositoryIndexResponse_ModelIndex{Name: e.Name, State: e.State, Reason: e.Reason}
		if e.Version >= 0 {
			mi.Version = strconv.FormatInt(e.Version, 10)
		}
		resp.Models = append(resp.Models, mi)
	}
	return resp, nil
}

func errRepoName() error {
	return status.Error(codes.Unimplemented, "'repository_name' specification is not supported")
}

func (g *grpcService) RepositoryModelLoad(ctx context.Context, r *pb.RepositoryModelLoadRequest) (*pb.RepositoryModelLoadResponse, error) {
	if r.GetRepositoryName() != "" {
		return nil, errRepoName()
	}
	var override *modelconfig.ModelConfig
	for k, p := range r.GetParameters() {
		switch k {
		case "config":
			text, ok := p.GetParameterChoice().(*pb.ModelRepositoryParameter_StringParam)
			if !ok {
				return nil, status.Error(codes.InvalidArgument, "load parameter 'config' must be a string holding the model config in JSON")
			}
			cfg, err := repository.ConfigFromJSON([]byte(text.StringParam))
			if err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "load parameter 'config': %v", err)
			}
			override = cfg
		default:
			return nil, status.Errorf(codes.Unimplemented, "load parameter '%s' is not supported by this server", k)
		}
	}
	if err := g.s.repo.Load(ctx, r.GetModelName(), override); err != nil {
		return nil, grpcError(err)
	}
	return &pb.RepositoryModelLoadResponse{}, nil
}

func (g *grpcService) RepositoryModelUnload(ctx context.Context, r *pb.RepositoryModelUnloadRequest) (*pb.RepositoryModelUnloadResponse, error) {
	if r.GetRepositoryName() != "" {
		return nil, errRepoName()
	}
	if err := g.s.repo.Unload(ctx, r.GetModelName()); err != nil {
		return nil, grpcError(err)
	}
	return &pb.RepositoryModelUnloadResponse{}, nil
}

const noShm = "shared memory is not supported by this server; send tensors in the request"

func (g *grpcService) SystemSharedMemoryStatus(context.Context, *pb.SystemSharedMemoryStatusRequest) (*pb.SystemSharedMemoryStatusResponse, error) {
	return nil, status.Error(codes.Unimplemented, noShm)
}

func (g *grpcService) SystemSharedMemoryRegister(context.Context, *pb.SystemSharedMemoryRegisterRequest) (*pb.SystemSharedMemoryRegisterResponse, error) {
	return nil, status.Error(codes.Unimplemented, noShm)
}

func (g *grpcService) SystemSharedMemoryUnregister(context.Context, *pb.SystemSharedMemoryUnregisterRequest) (*pb.SystemSharedMemoryUnregisterResponse, error) {
	return nil, status.Error(codes.Unimplemented, noShm)
}

func (g *grpcService) CudaSharedMemoryStatus(context.Context, *pb.CudaSharedMemoryStatusRequest) (*pb.CudaSharedMemoryStatusResponse, error) {
	return nil, status.Error(codes.Unimplemented, noShm)
}

func (g *grpcService) CudaSharedMemoryRegister(context.Context, *pb.CudaSharedMemoryRegisterRequest) (*pb.CudaSharedMemoryRegisterResponse, error) {
	return nil, status.Error(codes.Unimplemented, noShm)
}

func (g *grpcService) CudaSharedMemoryUnregister(context.Context, *pb.CudaSharedMemoryUnregisterRequest) (*pb.CudaSharedMemoryUnregisterResponse, error) {
	return nil, status.Error(codes.Unimplemented, noShm)
}

func (g *grpcService) TraceSetting(context.Context, *pb.TraceSettingRequest) (*pb.TraceSettingResponse, error) {
	return nil, status.Error(codes.Unimplemented, "the trace extension is not supported by this server")
}

func (g *grpcService) LogSettings(context.Context, *pb.LogSettingsRequest) (*pb.LogSettingsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "the logging extension is not supported by this server")
}

func (g *grpcService) ModelInfer(ctx context.Context, r *pb.ModelInferRequest) (*pb.ModelInferResponse, error) {
	resp, err := g.infer(ctx, r)
	if err != nil {
		return nil, grpcError(err)
	}
	return resp, nil
}

func (g *grpcService) infer(ctx context.Context, r *pb.ModelInferRequest) (*pb.ModelInferResponse, error) {
	start := time.Now()
	v, err := grpcVersion(r.GetModelVersion())
	if err != nil {
		return nil, err
	}
	m, err := g.s.repo.Model(r.GetModelName(), v)
	if err != nil {
		return nil, err
	}
	req, outs, err := decodeGRPCInfer(r, m.Name())
	if err != nil {
		return nil, err
	}
	req.Start = start
	resp, _, err := g.s.runInfer(ctx, m, req, outs)
	if err != nil {
		return nil, err
	}
	out := &pb.ModelInferResponse{
		ModelName:         m.Name(),
		ModelVersion:      strconv.FormatInt(m.Version(), 10),
		Id:                req.ID,
		Outputs:           make([]*pb.ModelInferResponse_InferOutputTensor, len(resp.Outputs)),
		RawOutputContents: make([][]byte, len(resp.Outputs)),
	}
	for i, t := range resp.Outputs {
		out.Outputs[i] = &pb.ModelInferResponse_InferOutputTensor{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape}
		out.RawOutputContents[i] = t.Data
	}
	if len(resp.Parameters) > 0 {
		out.Parameters = make(map[string]*pb.InferParameter, len(resp.Parameters))
		for k, v := range resp.Parameters {
			out.Parameters[k] = paramPB(v)
		}
	}
	return out, nil
}

func paramPB(v any) *pb.InferParameter {
	switch x := v.(type) {
	case bool:
		return &pb.InferParameter{ParameterChoice: &pb.InferParameter_BoolParam{BoolParam: x}}
	case int:
		return &pb.InferParameter{ParameterChoice: &pb.InferParameter_Int64Param{Int64Param: int64(x)}}
	case int64:
		return &pb.InferParameter{ParameterChoice: &pb.InferParameter_Int64Param{Int64Param: x}}
	case uint64:
		return &pb.InferParameter{ParameterChoice: &pb.InferParameter_Uint64Param{Uint64Param: x}}
	case float64:
		return &pb.InferParameter{ParameterChoice: &pb.InferParameter_DoubleParam{DoubleParam: x}}
	case string:
		return &pb.InferParameter{ParameterChoice: &pb.InferParameter_StringParam{StringParam: x}}
	}
	return &pb.InferParameter{}
}

// ModelStreamInfer runs each request of the stream as it arrives
// (concurrently, so they can share batches) and answers each one; a failed
// request is answered with error_message and leaves the stream open.
func (g *grpcService) ModelStreamInfer(stream pb.GRPCInferenceService_ModelStreamInferServer) error {
	ctx := stream.Context()
	var sendMu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, streamConcurrency)
	var sendErr error
	send := func(r *pb.ModelStreamInferResponse) {
		sendMu.Lock()
		defer sendMu.Unlock()
		if sendErr == nil {
			sendErr = stream.Send(r)
		}
	}
	defer wg.Wait()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			resp, err := g.infer(ctx, req)
			if err != nil {
				send(&pb.ModelStreamInferResponse{
					ErrorMessage:  err.Error(),
					InferResponse: &pb.ModelInferResponse{Id: req.GetId(), ModelName: req.GetModelName(), ModelVersion: req.GetModelVersion()},
				})
				return
			}
			resp.Parameters = withFinal(resp.Parameters)
			send(&pb.ModelStreamInferResponse{InferResponse: resp})
		})
	}
}

func withFinal(p map[string]*pb.InferParameter) map[string]*pb.InferParameter {
	if p == nil {
		p = make(map[string]*pb.InferParameter, 1)
	}
	p["triton_final_response"] = &pb.InferParameter{ParameterChoice: &pb.InferParameter_BoolParam{BoolParam: true}}
	return p
}

// decodeGRPCInfer converts a ModelInferRequest (typed contents or
// raw_input_contents, docs/triton-batcher-and-kserve-v2.md §3.3-3.4) into a backend request.
func decodeGRPCInfer(r *pb.ModelInferRequest, model string) (*backend.Request, []outputReq, error) {
	req := &backend.Request{ID: r.GetId()}
	for k, p := range r.GetParameters() {
		if err := applyGRPCParam(req, k, p); err != nil {
			return nil, nil, err
		}
	}
	raw := r.GetRawInputContents()
	if len(raw) > 0 {
		for _, in := range r.GetInputs() {
			if in.GetContents() != nil {
				return nil, nil, invalidArg("contents field must not be specified when using raw_input_contents for '%s' for model '%s'", in.GetName(), model)
			}
		}
	}
	req.Inputs = make([]backend.Tensor, len(r.GetInputs()))
	for i, in := range r.GetInputs() {
		for k := range in.GetParameters() {
			if strings.HasPrefix(k, "shared_memory_") {
				return nil, nil, backend.Errorf(backend.CodeUnsupported, "shared memory is not supported by this server (input '%s')", in.GetName())
			}
		}
		t := &req.Inputs[i]
		t.Name, t.Datatype, t.Shape = in.GetName(), in.GetDatatype(), in.GetShape()
		switch {
		case len(raw) > 0:
			if i >= len(raw) {
				return nil, nil, invalidArg("unable to find data for input tensor '%s' for model '%s' in request.", in.GetName(), model)
			}
			t.Data = raw[i]
		case in.GetContents() != nil:
			data, err := contentsBytes(in, model)
			if err != nil {
				return nil, nil, err
			}
			t.Data = data
		default:
			return nil, nil, invalidArg("unable to find data for input tensor '%s' for model '%s' in request.", in.GetName(), model)
		}
	}
	var outs []outputReq
	for _, o := range r.GetOutputs() {
		or := outputReq{name: o.GetName()}
		for k, p := range o.GetParameters() {
			switch {
			case k == "classification":
				n, ok := p.GetParameterChoice().(*pb.InferParameter_Int64Param)
				if !ok || n.Int64Param < 0 {
					return nil, nil, invalidArg("invalid value type for 'classification' parameter, expected int64_param >= 0")
				}
				or.classCount = n.Int64Param
			case strings.HasPrefix(k, "shared_memory_"):
				return nil, nil, backend.Errorf(backend.CodeUnsupported, "shared memory is not supported by this server (output '%s')", o.GetName())
			}
		}
		outs = append(outs, or)
	}
	return req, outs, nil
}

func applyGRPCParam(req *backend.Request, k string, p *pb.InferParameter) error {
	switch k {
	case "priority", "timeout":
		var v uint64
		switch x := p.GetParameterChoice().(type) {
		case *pb.InferParameter_Int64Param:
			if x.Int64Param < 0 {
				return invalidArg("invalid value for '%s' parameter, expected a non-negative value", k)
			}
			v = uint64(x.Int64Param)
		case *pb.InferParameter_Uint64Param:
			v = x.Uint64Param
		default:
			return invalidArg("invalid value type for '%s' parameter, expected int64_param or uint64_param", k)
		}
		if k == "priority" {
			req.Priority = v
		} else {
			req.Timeout = usDuration(v)
		}
		return nil
	case "sequence_id":
		switch x := p.GetParameterChoice().(type) {
		case *pb.InferParameter_Int64Param:
			if x.Int64Param == 0 {
				return nil
			}
		case *pb.InferParameter_StringParam:
			if x.StringParam == "" {
				return nil
			}
		}
		return backend.Errorf(backend.CodeUnsupported, "sequence batching is not supported by this server (parameter 'sequence_id')")
	case "sequence_start", "sequence_end":
		if x, ok := p.GetParameterChoice().(*pb.InferParameter_BoolParam); ok && !x.BoolParam {
			return nil
		}
		return backend.Errorf(backend.CodeUnsupported, "sequence batching is not supported by this server (parameter '%s')", k)
	case "triton_enable_empty_final_response":
		if _, ok := p.GetParameterChoice().(*pb.InferParameter_BoolParam); !ok {
			return invalidArg("invalid value type for '%s' parameter, expected bool_param", k)
		}
		return nil
	case "headers":
		return invalidArg("parameter 'headers' is reserved and should not be specified")
	}
	if strings.HasPrefix(k, "triton_") {
		return invalidArg("parameter keys starting with 'triton_' are reserved for Triton usage and should not be specified.")
	}
	var v any
	switch x := p.GetParameterChoice().(type) {
	case *pb.InferParameter_BoolParam:
		v = x.BoolParam
	case *pb.InferParameter_Int64Param:
		v = x.Int64Param
	case *pb.InferParameter_StringParam:
		v = x.StringParam
	case *pb.InferParameter_DoubleParam:
		v = x.DoubleParam
	case *pb.InferParameter_Uint64Param:
		v = x.Uint64Param
	default:
		return invalidArg("invalid value type for '%s' parameter, expected bool_param, int64_param, string_param, double_param or uint64_param", k)
	}
	if req.Parameters == nil {
		req.Parameters = make(map[string]any)
	}
	req.Parameters[k] = v
	return nil
}

// contentsBytes converts typed contents into the raw layout; the filled
// field must be the one of the input's datatype.
func contentsBytes(in *pb.ModelInferRequest_InferInputTensor, model string) ([]byte, error) {
	c := in.GetContents()
	d := datatype.Parse(in.GetDatatype())
	var want string
	switch {
	case d == datatype.Bool:
		want = "bool_contents"
	case d == datatype.Int8 || d == datatype.Int16 || d == datatype.Int32:
		want = "int_contents"
	case d == datatype.Int64:
		want = "int64_contents"
	case d == datatype.Uint8 || d == datatype.Uint16 || d == datatype.Uint32:
		want = "uint_contents"
	case d == datatype.Uint64:
		want = "uint64_contents"
	case d == datatype.FP32:
		want = "fp32_contents"
	case d == datatype.FP64:
		want = "fp64_contents"
	case d == datatype.Bytes:
		want = "bytes_contents"
	}
	filled := map[string]int{
		"bool_contents": len(c.GetBoolContents()), "int_contents": len(c.GetIntContents()),
		"int64_contents": len(c.GetInt64Contents()), "uint_contents": len(c.GetUintContents()),
		"uint64_contents": len(c.GetUint64Contents()), "fp32_contents": len(c.GetFp32Contents()),
		"fp64_contents": len(c.GetFp64Contents()), "bytes_contents": len(c.GetBytesContents()),
	}
	for f, n := range filled {
		if n > 0 && f != want {
			return nil, invalidArg("unexpected explicit tensor data for input tensor '%s' for model '%s' of type '%s', expected datatype '%s'",
				in.GetName(), model, strings.TrimSuffix(f, "_contents"), in.GetDatatype())
		}
	}
	if want == "" {
		return nil, invalidArg("input '%s' of datatype '%s' cannot be sent in typed contents; use raw_input_contents", in.GetName(), in.GetDatatype())
	}
	var out []byte
	switch want {
	case "bool_contents":
		out = make([]byte, 0, len(c.GetBoolContents()))
		for _, v := range c.GetBoolContents() {
			if v {
				out = append(out, 1)
			} else {
				out = append(out, 0)
			}
		}
	case "int_contents":
		out = make([]byte, 0, len(c.GetIntContents())*d.Size())
		for _, v := range c.GetIntContents() {
			out = appendUint(out, d, uint64(int64(v)))
		}
	case "int64_contents":
		out = make([]byte, 0, 8*len(c.GetInt64Contents()))
		for _, v := range c.GetInt64Contents() {
			out = binary.LittleEndian.AppendUint64(out, uint64(v))
		}
	case "uint_contents":
		out = make([]byte, 0, len(c.GetUintContents())*d.Size())
		for _, v := range c.GetUintContents() {
			out = appendUint(out, d, uint64(v))
		}
	case "uint64_contents":
		out = make([]byte, 0, 8*len(c.GetUint64Contents()))
		for _, v := range c.GetUint64Contents() {
			out = binary.LittleEndian.AppendUint64(out, v)
		}
	case "fp32_contents":
		out = make([]byte, 0, 4*len(c.GetFp32Contents()))
		for _, v := range c.GetFp32Contents() {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
		}
	case "fp64_contents":
		out = make([]byte, 0, 8*len(c.GetFp64Contents()))
		for _, v := range c.GetFp64Contents() {
			out = binary.LittleEndian.AppendUint64(out, math.Float64bits(v))
		}
	case "bytes_contents":
		for _, v := range c.GetBytesContents() {
			out = datatype.AppendElement(out, v)
		}
	}
	return out, nil
}

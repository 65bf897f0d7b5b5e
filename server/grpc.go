package server

import (
	"context"
	"errors"
	"io"
	"math"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/ofaserve/ofaserve/backend"
	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
	"github.com/ofaserve/ofaserve/protocol/kserve"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
	"github.com/ofaserve/ofaserve/tracing"
)

// maxGRPCMessage is Triton's gRPC message limit in both directions.
const maxGRPCMessage = math.MaxInt32

// streamConcurrency bounds the requests of one ModelStreamInfer stream that
// run at once (they run concurrently so that the batcher can batch them).
const streamConcurrency = 256

func (s *Server) newGRPC() (*grpc.Server, error) {
	opts := []grpc.ServerOption{
		// A message over the HTTP body limit is refused with
		// RESOURCE_EXHAUSTED from its length prefix, before it is read.
		grpc.MaxRecvMsgSize(int(min(s.opts.MaxInputSize, maxGRPCMessage))),
		grpc.MaxSendMsgSize(maxGRPCMessage),
		grpc.ChainUnaryInterceptor(s.logUnaryFailures, s.restrictUnary, s.recoverUnary),
		grpc.ChainStreamInterceptor(s.logStreamFailures, s.restrictStream, s.recoverStream),
		grpc.StatsHandler(unreachedCalls{s}), // logs the calls that failed before the interceptors ran
	}
	if s.opts.GRPCMaxConcurrentStreams > 0 {
		opts = append(opts, grpc.MaxConcurrentStreams(s.opts.GRPCMaxConcurrentStreams))
	}
	creds, err := s.opts.TLS.grpcCredentials()
	if err != nil {
		return nil, err
	}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	g := grpc.NewServer(opts...)
	pb.RegisterGRPCInferenceServiceServer(g, &grpcService{s: s})
	healthpb.RegisterHealthServer(g, &healthService{s: s})
	reflection.Register(g)
	return g, nil
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

// grpcService implements inference.GRPCInferenceService.
type grpcService struct {
	pb.UnimplementedGRPCInferenceServiceServer
	s *Server
}

func (g *grpcService) model(name, version string) (Model, error) {
	v, err := kserve.ParseVersion(version)
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
	v, err := kserve.ParseVersion(r.GetVersion())
	if err != nil {
		return nil, grpcError(err)
	}
	m, err := g.s.repo.Model(r.GetName(), v)
	if err != nil {
		if backend.CodeOf(err) == backend.CodeUnavailable {
			return &pb.ModelReadyResponse{Ready: false}, nil
		}
		return nil, grpcError(err)
	}
	return &pb.ModelReadyResponse{Ready: m.Ready()}, nil
}

func (g *grpcService) ServerMetadata(context.Context, *pb.ServerMetadataRequest) (*pb.ServerMetadataResponse, error) {
	return &pb.ServerMetadataResponse{Name: g.s.opts.Name, Version: g.s.opts.Version, Extensions: g.s.extensions()}, nil
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
	v, err := kserve.ParseVersion(r.GetVersion())
	if err != nil {
		return nil, grpcError(err)
	}
	if r.GetName() == "" && r.GetVersion() != "" {
		return nil, status.Error(codes.InvalidArgument, "a model version needs a model name")
	}
	st, err := g.s.collectStats(r.GetName(), v, r.GetVersion() != "")
	if err != nil {
		return nil, grpcError(err)
	}
	return statsPB(st), nil
}

func (g *grpcService) RepositoryIndex(_ context.Context, r *pb.RepositoryIndexRequest) (*pb.RepositoryIndexResponse, error) {
	resp := &pb.RepositoryIndexResponse{}
	for _, e := range g.s.repo.Index(r.GetReady()) {
		mi := &pb.RepositoryIndexResponse_ModelIndex{Name: e.Name, State: e.State, Reason: e.Reason}
		if e.Version > 0 {
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
			cfg, err := modelconfig.FromJSON([]byte(text.StringParam))
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

func (g *grpcService) ModelInfer(ctx context.Context, r *pb.ModelInferRequest) (*pb.ModelInferResponse, error) {
	resp, err := g.infer(ctx, r)
	if err != nil {
		return nil, grpcError(err)
	}
	return resp, nil
}

func (g *grpcService) infer(ctx context.Context, r *pb.ModelInferRequest) (*pb.ModelInferResponse, error) {
	start := time.Now()
	v, err := kserve.ParseVersion(r.GetModelVersion())
	if err != nil {
		return nil, err
	}
	m, err := g.s.repo.Model(r.GetModelName(), v)
	if err != nil {
		return nil, err
	}
	if err := precheck(m); err != nil {
		return nil, err
	}
	req, outs, err := kserve.DecodeGRPC(r, m.Name())
	if err != nil {
		return nil, err
	}
	req.Start = time.Now() // request_start: decoded, as Triton's core starts it
	md, _ := metadata.FromIncomingContext(ctx)
	tr, ctx := g.s.traceStart(ctx, m, req, tracing.MetadataCarrier(md), tracing.GRPCWaitReadStart, tracing.GRPCWaitReadEnd, start)
	resp, _, err := g.s.runInfer(ctx, m, req, outs)
	// grpc-go sends the answer after the handler returns: the send stamps
	// mark the hand-over.
	g.s.traceEnd(tr, req, resp, tracing.GRPCSendStart, tracing.GRPCSendEnd)
	if err != nil {
		return nil, err
	}
	return kserve.EncodeGRPC(m.Name(), m.Version(), req.ID, resp), nil
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
		start := time.Now()
		wg.Go(func() {
			defer func() { <-sem }()
			resp, err := g.infer(ctx, req)
			if err != nil {
				// A failed message does not fail its stream: log it here.
				g.s.logGRPCFailure(ctx, "ModelStreamInfer", req.GetModelName(), grpcError(err), start)
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

package server

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

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

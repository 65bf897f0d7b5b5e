// Package inferencepb holds the Go code generated (scripts/dev/gen_proto.sh) from
// grpc_service.proto: the messages and service stubs of the KServe v2 /
// Triton gRPC protocol, package inference, service GRPCInferenceService.
package inferencepb

// Package grpcclient is ofabench's gRPC client for the KServe v2 / Triton
// GRPCInferenceService (docs/triton-batcher-and-kserve-v2.md §3): it turns a kserve.Request into a
// ModelInferRequest carrying raw_input_contents, sends it, and reads
// metadata, config and statistics into the same types the HTTP client
// returns, so the load generator does not care which protocol it drives.
package grpcclient

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ofaserve/ofaserve/bench/kserve"
	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
)

// Client is a connection to one server.
type Client struct {
	conn *grpc.ClientConn
	c    pb.GRPCInferenceServiceClient
}

// Dial connects (lazily) to target, "host:port", without TLS.
func Dial(target string) (*Client, error) {
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30), grpc.MaxCallSendMsgSize(1<<30)))
	if err != nil {
		return nil, fmt.Errorf("grpc dial %s: %w", target, err)
	}
	return &Client{conn: conn, c: pb.NewGRPCInferenceServiceClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Encode builds the wire message for req: every input's data goes in
// raw_input_contents, in input order (BYTES as length-prefixed elements).
func Encode(req kserve.Request) (*pb.ModelInferRequest, error) {
	m := &pb.ModelInferRequest{ModelName: req.Model, ModelVersion: req.Version}
	for i := range req.Inputs {
		t := &req.Inputs[i]
		if err := t.Validate(); err != nil {
			return nil, err
		}
		m.Inputs = append(m.Inputs, &pb.ModelInferRequest_InferInputTensor{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape})
		m.RawInputContents = append(m.RawInputContents, t.RawBytes())
	}
	for _, o := range req.Outputs {
		m.Outputs = append(m.Outputs, &pb.ModelInferRequest_InferRequestedOutputTensor{Name: o})
	}
	return m, nil
}

// Infer sends one request. The outcome's status names the gRPC code on
// failure ("gRPC Unavailable").
func (c *Client) Infer(ctx context.Context, m *pb.ModelInferRequest) kserve.Outcome {
	resp, err := c.c.ModelInfer(ctx, m)
	if err != nil {
		st, _ := status.FromError(err)
		if st.Code() == codes.DeadlineExceeded {
			return kserve.Outcome{Status: "timeout", Err: err}
		}
		return kserve.Outcome{Status: "gRPC " + st.Code().String(), Err: err}
	}
	if len(resp.GetRawOutputContents()) == 0 && len(resp.GetOutputs()) > 0 && resp.GetOutputs()[0].GetContents() == nil {
		return kserve.Outcome{Status: "bad response", Err: fmt.Errorf("response has outputs but no data")}
	}
	return kserve.Outcome{}
}

// Metadata returns the model's metadata.
func (c *Client) Metadata(ctx context.Context, model, version string) (kserve.ModelMetadata, error) {
	r, err := c.c.ModelMetadata(ctx, &pb.ModelMetadataRequest{Name: model, Version: version})
	if err != nil {
		return kserve.ModelMetadata{}, fmt.Errorf("grpc ModelMetadata %q: %w", model, err)
	}
	md := kserve.ModelMetadata{Name: r.GetName(), Versions: r.GetVersions(), Platform: r.GetPlatform()}
	for _, t := range r.GetInputs() {
		md.Inputs = append(md.Inputs, kserve.TensorMetadata{Name: t.GetName(), Datatype: t.GetDatatype(), Shape: t.GetShape()})
	}
	for _, t := range r.GetOutputs() {
		md.Outputs = append(md.Outputs, kserve.TensorMetadata{Name: t.GetName(), Datatype: t.GetDatatype(), Shape: t.GetShape()})
	}
	return md, nil
}

// Config returns the fields of the model's configuration the harness uses.
func (c *Client) Config(ctx context.Context, model, version string) (kserve.ModelConfig, error) {
	r, err := c.c.ModelConfig(ctx, &pb.ModelConfigRequest{Name: model, Version: version})
	if err != nil {
		return kserve.ModelConfig{}, fmt.Errorf("grpc ModelConfig %q: %w", model, err)
	}
	return kserve.ModelConfig{Name: r.GetConfig().GetName(), MaxBatchSize: int(r.GetConfig().GetMaxBatchSize())}, nil
}

func dur(d *pb.StatisticDuration) kserve.Duration {
	return kserve.Duration{Count: kserve.Uint(d.GetCount()), NS: kserve.Uint(d.GetNs())}
}

// Stats returns the model's statistics entry (the busiest version when
// version is "").
func (c *Client) Stats(ctx context.Context, model, version string) (kserve.ModelStats, error) {
	r, err := c.c.ModelStatistics(ctx, &pb.ModelStatisticsRequest{Name: model, Version: version})
	if err != nil {
		return kserve.ModelStats{}, fmt.Errorf("grpc ModelStatistics %q: %w", model, err)
	}
	var best *pb.ModelStatistics
	for _, s := range r.GetModelStats() {
		if s.GetName() == model && (version == "" || s.GetVersion() == version) && (best == nil || s.GetInferenceCount() > best.GetInferenceCount()) {
			best = s
		}
	}
	if best == nil {
		return kserve.ModelStats{}, fmt.Errorf("statistics have no entry for model %q version %q", model, version)
	}
	is := best.GetInferenceStats()
	out := kserve.ModelStats{
		Name: best.GetName(), Version: best.GetVersion(),
		LastInference:  kserve.Uint(best.GetLastInference()),
		InferenceCount: kserve.Uint(best.GetInferenceCount()),
		ExecutionCount: kserve.Uint(best.GetExecutionCount()),
		InferenceStats: kserve.InferStats{
			Success: dur(is.GetSuccess()), Fail: dur(is.GetFail()), Queue: dur(is.GetQueue()),
			ComputeInput: dur(is.GetComputeInput()), ComputeInfer: dur(is.GetComputeInfer()), ComputeOutput: dur(is.GetComputeOutput()),
		},
	}
	for _, b := range best.GetBatchStats() {
		out.BatchStats = append(out.BatchStats, kserve.BatchStats{
			BatchSize:    kserve.Uint(b.GetBatchSize()),
			ComputeInput: dur(b.GetComputeInput()), ComputeInfer: dur(b.GetComputeInfer()), ComputeOutput: dur(b.GetComputeOutput()),
		})
	}
	return out, nil
}

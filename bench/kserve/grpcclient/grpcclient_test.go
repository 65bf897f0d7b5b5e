package grpcclient

import (
	"bytes"
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ofaserve/ofaserve/bench/kserve"
	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
)

type fake struct {
	pb.UnimplementedGRPCInferenceServiceServer
	got *pb.ModelInferRequest
}

func (f *fake) ModelInfer(_ context.Context, r *pb.ModelInferRequest) (*pb.ModelInferResponse, error) {
	f.got = r
	if r.GetModelName() == "busy" {
		return nil, status.Error(codes.Unavailable, "queue full")
	}
	return &pb.ModelInferResponse{ModelName: r.GetModelName(), RawOutputContents: [][]byte{{0, 0, 0, 0}}}, nil
}

func (f *fake) ModelStatistics(_ context.Context, r *pb.ModelStatisticsRequest) (*pb.ModelStatisticsResponse, error) {
	d := func(c, ns uint64) *pb.StatisticDuration { return &pb.StatisticDuration{Count: c, Ns: ns} }
	return &pb.ModelStatisticsResponse{ModelStats: []*pb.ModelStatistics{
		{Name: "m", Version: "1", InferenceCount: 2},
		{Name: "m", Version: "2", InferenceCount: 7, ExecutionCount: 3,
			InferenceStats: &pb.InferStatistics{Success: d(5, 500), Queue: d(5, 50), ComputeInfer: d(3, 300)},
			BatchStats:     []*pb.InferBatchStatistics{{BatchSize: 4, ComputeInfer: d(1, 100)}}},
	}}, nil
}

func start(t *testing.T) (*Client, *fake) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	f := &fake{}
	pb.RegisterGRPCInferenceServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	c, err := Dial(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, f
}

func TestInferSendsRawContentsInInputOrder(t *testing.T) {
	c, f := start(t)
	req := kserve.Request{Model: "m", Version: "1", Outputs: []string{"SCORES"}, Inputs: []kserve.Tensor{
		{Name: "IMAGE", Datatype: "BYTES", Shape: []int64{1, 1}, Elems: [][]byte{[]byte("jpeg")}, Base64JSON: true},
		{Name: "IDS", Datatype: "INT64", Shape: []int64{1, 1}, Data: []byte{7, 0, 0, 0, 0, 0, 0, 0}},
	}}
	m, err := Encode(req)
	if err != nil {
		t.Fatal(err)
	}
	if o := c.Infer(context.Background(), m); o.Status != "" {
		t.Fatalf("outcome %+v", o)
	}
	g := f.got
	if g.GetModelVersion() != "1" || len(g.GetInputs()) != 2 || g.GetInputs()[1].GetName() != "IDS" || g.GetOutputs()[0].GetName() != "SCORES" {
		t.Fatalf("request %v", g)
	}
	// BYTES travel raw (not base64) with a 4-byte length, then the INT64 blob.
	if !bytes.Equal(g.GetRawInputContents()[0], []byte("\x04\x00\x00\x00jpeg")) || g.GetRawInputContents()[1][0] != 7 {
		t.Errorf("raw contents %q", g.GetRawInputContents())
	}
	m.ModelName = "busy"
	if o := c.Infer(context.Background(), m); o.Status != "gRPC Unavailable" {
		t.Errorf("status %q, want gRPC Unavailable", o.Status)
	}
	if _, err := Encode(kserve.Request{Inputs: []kserve.Tensor{{Name: "X", Datatype: "FP32", Shape: []int64{2}, Data: make([]byte, 4)}}}); err == nil {
		t.Error("a short buffer must be refused")
	}
}

func TestStatsConverts(t *testing.T) {
	c, _ := start(t)
	s, err := c.Stats(context.Background(), "m", "")
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != "2" || s.InferenceCount != 7 || s.InferenceStats.Queue.NS != 50 || s.InferenceStats.ComputeInfer.Count != 3 ||
		len(s.BatchStats) != 1 || s.BatchStats[0].BatchSize != 4 || s.BatchStats[0].ComputeInfer.Count != 1 {
		t.Errorf("stats %+v", s)
	}
	if _, err := c.Stats(context.Background(), "other", ""); err == nil {
		t.Error("unknown model must fail")
	}
}

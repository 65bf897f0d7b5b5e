package server

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
)

// batchedModel is a fake model that runs through a real batcher whose Observer is the server's, as a
// repository-loaded model's does: the per-request path of latency metrics and traces, without torch.
type batchedModel struct {
	*fakeModel
	b *batcher.Batcher[*backend.Request, *backend.Response]
}

func (m *batchedModel) Infer(ctx context.Context, req *backend.Request) (*backend.Response, error) {
	if err := m.Signature().Validate(req); err != nil {
		return nil, err
	}
	return m.b.Submit(ctx, batcher.Item[*backend.Request]{Value: req, Size: 1, Start: req.Start})
}

func (m *batchedModel) Stats() batcher.Stats { return m.b.Stats() }

// grpcOver serves s's gRPC service over an in-memory listener and returns a client of it.
func grpcOver(t *testing.T, s *Server) (pb.GRPCInferenceServiceClient, *grpc.ClientConn) {
	t.Helper()
	ln := bufconn.Listen(1 << 20)
	go func() { _ = s.GRPCServer().Serve(ln) }()
	t.Cleanup(s.GRPCServer().Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewGRPCInferenceServiceClient(conn), conn
}

// execTiming is what the batched models report per batch.
var execTiming = batcher.Timing{Input: 100 * time.Microsecond, Infer: time.Millisecond, Output: 200 * time.Microsecond}

// batchedRepo serves batched models over a fakeRepo's index.
type batchedRepo struct {
	*fakeRepo
	mu      sync.Mutex
	batched map[string]*batchedModel
}

func (r *batchedRepo) Model(name string, version int64) (Model, error) {
	r.mu.Lock()
	m := r.batched[name]
	r.mu.Unlock()
	if m != nil {
		return m, nil
	}
	return r.fakeRepo.Model(name, version)
}

// add loads fm behind a batcher observed by s, as the repository would (s.Observer per loaded version).
// A model whose infer fails fails its whole batch.
func (r *batchedRepo) add(t *testing.T, s *Server, fm *fakeModel) *batchedModel {
	t.Helper()
	cfg := batcher.Config{MaxBatchSize: 8, MaxQueueDelay: 2 * time.Millisecond, Instances: 1, Observer: s.Observer(fm.name, fm.version)}
	b, err := batcher.New(cfg, func(_ context.Context, _ int, reqs []*backend.Request) ([]*backend.Response, batcher.Timing, error) {
		time.Sleep(2 * time.Millisecond)
		out := make([]*backend.Response, len(reqs))
		for i, req := range reqs {
			resp, err := fm.infer(req)
			if err != nil {
				return nil, batcher.Timing{}, err
			}
			out[i] = resp
		}
		return out, execTiming, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop(context.Background()) })
	m := &batchedModel{fakeModel: fm, b: b}
	r.fakeRepo.add(fm)
	r.mu.Lock()
	if r.batched == nil {
		r.batched = map[string]*batchedModel{}
	}
	r.batched[fm.name] = m
	r.mu.Unlock()
	return m
}

// scrape parses /metrics.
func scrape(t *testing.T, s *Server) map[string]*dto.MetricFamily {
	t.Helper()
	r := do(t, s.MetricsHandler(), "GET", "/metrics", nil)
	if r.code != 200 {
		t.Fatalf("metrics: %d %s", r.code, r.body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(r.body)))
	if err != nil {
		t.Fatalf("metrics do not parse: %v\n%s", err, r.body)
	}
	return fams
}

// series returns the family's metric with labels model=name, version="1", or nil.
func series(fams map[string]*dto.MetricFamily, family, name string) *dto.Metric {
	f := fams[family]
	if f == nil {
		return nil
	}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["model"] == name && labels["version"] == "1" && len(labels) == 2 {
			return m
		}
	}
	return nil
}

// inferN sends n simple requests at once over HTTP.
func inferN(t *testing.T, s *Server, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if r := do(t, s.HTTPHandler(), "POST", "/v2/models/simple/infer", []byte(simpleReq)); r.code != 200 {
				t.Errorf("infer: %d %s", r.code, r.body)
			}
		})
	}
	wg.Wait()
}

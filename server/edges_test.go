package server

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
)

func TestParseRestrictions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		want   Restrictions
		err    string
	}{
		{"none", nil, Restrictions{}, ""},
		{"one group", []string{"model-repository:admin-key=s3cret"}, Restrictions{"model-repository": {"admin-key", "s3cret"}}, ""},
		{"two groups", []string{"model-repository,logging:k=v"}, Restrictions{"model-repository": {"k", "v"}, "logging": {"k", "v"}}, ""},
		{"two flags", []string{"inference:a=1", "trace:b=2"}, Restrictions{"inference": {"a", "1"}, "trace": {"b", "2"}}, ""},
		{"value with =", []string{"health:k=a=b"}, Restrictions{"health": {"k", "a=b"}}, ""},
		{"unknown group", []string{"models:k=v"}, nil, `unknown API group "models"`},
		{"twice", []string{"inference:a=1", "inference:b=2"}, nil, `"inference" is restricted more than once`},
		{"no key", []string{"inference"}, nil, "want <api-group>"},
		{"empty key", []string{"inference:=v"}, nil, "want <api-group>"},
	} {
		got, err := ParseRestrictions("http-restricted-api", tc.values)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("%s: = %v %v, want %v", tc.name, got, err, tc.want)
			continue
		}
		for g, r := range tc.want {
			if got[g] != r {
				t.Errorf("%s: group %s = %v, want %v", tc.name, g, got[g], r)
			}
		}
	}
}

func TestHTTPRestrictedAPI(t *testing.T) {
	rs, err := ParseRestrictions("http-restricted-api", []string{"model-repository:admin-key=s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	repo := testRepo()
	repo.explicit = true
	h := newTestServer(t, repo, Options{HTTPRestricted: rs}).HTTPHandler()
	for _, tc := range []struct {
		name, path string
		hdr        []string
		code       int
	}{
		{"no header", "/v2/repository/models/simple/load", nil, 403},
		{"wrong value", "/v2/repository/models/simple/unload", []string{"admin-key", "nope"}, 403},
		{"index without header", "/v2/repository/index", nil, 403},
		{"right header", "/v2/repository/models/simple/load", []string{"Admin-Key", "s3cret"}, 200},
		{"other group open", "/v2/models/simple/infer", nil, 200},
	} {
		body := []byte(nil)
		if strings.HasSuffix(tc.path, "/infer") {
			body = []byte(simpleReq)
		}
		r := do(t, h, "POST", tc.path, body, tc.hdr...)
		if r.code != tc.code {
			t.Errorf("%s: %s = %d %s, want %d", tc.name, tc.path, r.code, r.body, tc.code)
			continue
		}
		if tc.code == 403 {
			if msg := r.errMsg(t); !strings.Contains(msg, "'model-repository'") || !strings.Contains(msg, "header 'admin-key'") {
				t.Errorf("%s: message %q does not name the group and header", tc.name, msg)
			}
		}
	}
}

func TestGRPCRestrictedProtocol(t *testing.T) {
	rs, err := ParseRestrictions("grpc-restricted-protocol", []string{"inference,model-repository:admin-key=s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := grpcOver(t, newTestServer(t, testRepo(), Options{GRPCRestricted: rs}))
	ctx := context.Background()
	_, err = c.ModelInfer(ctx, simpleGRPCRequest())
	wantCode(t, err, codes.PermissionDenied, "API group 'inference' is restricted: the request needs header 'admin-key'")
	_, err = c.RepositoryIndex(metadata.AppendToOutgoingContext(ctx, "admin-key", "wrong"), &pb.RepositoryIndexRequest{})
	wantCode(t, err, codes.PermissionDenied, "'model-repository'")
	if _, err := c.ModelInfer(metadata.AppendToOutgoingContext(ctx, "admin-key", "s3cret"), simpleGRPCRequest()); err != nil {
		t.Errorf("infer with the key: %v", err)
	}
	if r, err := c.ServerLive(ctx, &pb.ServerLiveRequest{}); err != nil || !r.Live {
		t.Errorf("health is not restricted: %v %v", r, err)
	}
}

func TestGRPCGroups(t *testing.T) {
	for m, want := range map[string]string{
		"/inference.GRPCInferenceService/ModelInfer":                "inference",
		"/inference.GRPCInferenceService/ModelStreamInfer":          "inference",
		"/inference.GRPCInferenceService/RepositoryModelLoad":       "model-repository",
		"/inference.GRPCInferenceService/CudaSharedMemoryRegister":  "shared-memory",
		"/inference.GRPCInferenceService/ModelReady":                "health",
		"/grpc.health.v1.Health/Check":                              "health",
		"/inference.GRPCInferenceService/LogSettings":               "logging",
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": "",
	} {
		if got := grpcGroup(m); got != want {
			t.Errorf("grpcGroup(%s) = %q, want %q", m, got, want)
		}
	}
}

// TestFailureLogLines checks that a failed request leaves one line at the
// default level (info on), naming model, status, reason and latency, and a
// good one none.
func TestFailureLogLines(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s, err := New(Options{}, testRepo(), logger)
	if err != nil {
		t.Fatal(err)
	}
	h := s.HTTPHandler()
	if r := do(t, h, "POST", "/v2/models/simple/infer", []byte(simpleReq)); r.code != 200 {
		t.Fatalf("good request = %d %s", r.code, r.body)
	}
	if buf.Len() != 0 {
		t.Fatalf("a good request logged: %s", buf.String())
	}
	for _, tc := range []struct {
		path, body string
		hdr        []string
		want       []string
	}{
		{"/v2/models/simple/infer", simpleReq, []string{"Content-Encoding", "br"}, []string{"model=simple", "status=415", "unsupported Content-Encoding 'br'"}},
		{"/v2/models/nope/infer", simpleReq, nil, []string{"model=nope", "status=404", "unknown model"}},
	} {
		buf.Reset()
		do(t, h, "POST", tc.path, []byte(tc.body), tc.hdr...)
		line := buf.String()
		if strings.Count(line, "\n") != 1 {
			t.Errorf("%s: want one line, got %q", tc.path, line)
		}
		for _, w := range append(tc.want, "request failed", "latency=", "level=INFO") {
			if !strings.Contains(line, w) {
				t.Errorf("%s: log line %q lacks %q", tc.path, line, w)
			}
		}
	}
	buf.Reset()
	c, _ := grpcOver(t, s)
	_, err = c.ModelInfer(context.Background(), &pb.ModelInferRequest{ModelName: "nope"})
	wantCode(t, err, codes.NotFound, "")
	for _, w := range []string{"request failed", "protocol=grpc", "method=ModelInfer", "model=nope", "code=NotFound", "latency="} {
		if !strings.Contains(buf.String(), w) {
			t.Errorf("gRPC log %q lacks %q", buf.String(), w)
		}
	}
	// A failed message of a stream is logged though the stream goes on.
	buf.Reset()
	st, err := c.ModelStreamInfer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&pb.ModelInferRequest{ModelName: "gone"}); err != nil {
		t.Fatal(err)
	}
	if r, err := st.Recv(); err != nil || r.GetErrorMessage() == "" {
		t.Fatalf("stream answer = %v %v", r, err)
	}
	_ = st.CloseSend()
	for _, w := range []string{"method=ModelStreamInfer", "model=gone", "code=NotFound"} {
		if !strings.Contains(buf.String(), w) {
			t.Errorf("gRPC stream log %q lacks %q", buf.String(), w)
		}
	}
}

// TestGRPCMessageCap checks that a gRPC message over MaxInputSize is
// refused with RESOURCE_EXHAUSTED and one under it served, and that the
// refusal, which grpc-go makes before any interceptor runs, is logged once,
// as a failure the interceptors see is.
func TestGRPCMessageCap(t *testing.T) {
	buf := &logBuf{}
	logger := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s, err := New(Options{MaxInputSize: 4096, GRPCMaxConcurrentStreams: 4}, testRepo(), logger)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := grpcOver(t, s)
	req := simpleGRPCRequest()
	if _, err := c.ModelInfer(context.Background(), req); err != nil {
		t.Fatalf("small request: %v", err)
	}
	if got := buf.take(); got != "" {
		t.Fatalf("a good call logged: %s", got)
	}
	// waitLog takes what was logged until it holds want (the stats handler logs after the status is sent).
	waitLog := func(want string) string {
		got := ""
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(got, want) && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
			got += buf.take()
		}
		return got
	}
	req.RawInputContents[0] = make([]byte, 8192)
	_, err = c.ModelInfer(context.Background(), req)
	wantCode(t, err, codes.ResourceExhausted, "larger than max")
	line := waitLog("\n")
	for _, w := range []string{"request failed", "protocol=grpc", "method=ModelInfer", "code=ResourceExhausted", "larger than max", "latency="} {
		if !strings.Contains(line, w) {
			t.Errorf("log %q lacks %q", line, w)
		}
	}
	// A failure the interceptors see is logged by them alone.
	_, err = c.ModelInfer(context.Background(), &pb.ModelInferRequest{ModelName: "nope"})
	wantCode(t, err, codes.NotFound, "")
	got := waitLog("code=NotFound")
	time.Sleep(50 * time.Millisecond) // room for a second line, if the stats handler wrote one
	if got += buf.take(); strings.Count(got, "\n") != 1 {
		t.Fatalf("want one line for a failed call, got %q", got)
	}
}

func TestGRPCSharedMemoryRefused(t *testing.T) {
	c, _ := grpcClient(t, testRepo())
	req := simpleGRPCRequest()
	req.Inputs[1].Parameters = map[string]*pb.InferParameter{"shared_memory_region": {ParameterChoice: &pb.InferParameter_StringParam{StringParam: "r"}}}
	_, err := c.ModelInfer(context.Background(), req)
	wantCode(t, err, codes.InvalidArgument, "shared memory is not supported by this server: input 'INPUT1' sets parameter 'shared_memory_region'")
}

func TestGoAndProcessMetrics(t *testing.T) {
	h := newTestServer(t, testRepo(), Options{}).MetricsHandler()
	r := do(t, h, "GET", "/metrics", nil)
	for _, w := range []string{"\ngo_goroutines ", "\ngo_memstats_heap_inuse_bytes ", "\nprocess_resident_memory_bytes ", "\nprocess_open_fds "} {
		if !bytes.Contains(r.body, []byte(w)) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(w))
		}
	}
}

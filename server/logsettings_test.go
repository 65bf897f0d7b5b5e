package server

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/ofaserve/ofaserve/logging"
	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
)

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }

func (l *logBuf) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	l.b.Reset()
	return s
}

func loggingServer(t *testing.T) (*Server, *logBuf) {
	t.Helper()
	out := &logBuf{}
	lc, err := logging.New(out, logging.Settings{Info: true, Warning: true, Error: true, Format: "text"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Logging: lc}, testRepo(), lc.Logger())
	if err != nil {
		t.Fatal(err)
	}
	return s, out
}

// POST /v2/logging changes what the running server logs: at log_verbose_level 1 each inference request
// is logged, in the format asked for, and back at 0 it is not.
func TestLoggingChangesWhatTheServerLogs(t *testing.T) {
	s, out := loggingServer(t)
	h := s.HTTPHandler()
	got := do(t, h, "GET", "/v2/logging", nil).json(t)
	want := map[string]any{"log_file": "", "log_info": true, "log_warning": true, "log_error": true, "log_verbose_level": 0.0, "log_format": "text"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("initial settings %v", got)
	}
	infer := func() {
		if r := do(t, h, "POST", "/v2/models/simple/infer", []byte(simpleReq)); r.code != 200 {
			t.Fatalf("infer %d %s", r.code, r.body)
		}
	}
	infer()
	if l := out.take(); strings.Contains(l, "inference request") {
		t.Fatalf("logged at verbose level 0: %s", l)
	}
	got = postJSON(t, s, "/v2/logging", `{"log_verbose_level":1}`)
	if got["log_verbose_level"] != 1.0 || got["log_info"] != true {
		t.Fatalf("after POST: %v", got)
	}
	infer()
	if l := out.take(); !strings.Contains(l, `msg="inference request" model=simple version=1 id=req-7`) {
		t.Fatalf("verbose level 1 did not log the request: %q", l)
	}
	postJSON(t, s, "/v2/logging", `{"log_format":"json"}`)
	infer()
	if l := out.take(); !strings.Contains(l, `"msg":"inference request","model":"simple"`) {
		t.Fatalf("json format: %q", l)
	}
	postJSON(t, s, "/v2/logging", `{"log_verbose_level":0,"log_format":"default"}`)
	infer()
	if l := out.take(); l != "" {
		t.Fatalf("logged after returning to verbose level 0: %q", l)
	}
	for _, tc := range []struct {
		body string
		code int
		msg  string
	}{
		{`{"log_file":"/tmp/other.log"}`, 501, "log file location can not be updated through network protocol"},
		{`{"log_info":"no"}`, 400, "'log_info' must be a boolean"},
		{`{"log_verbose_level":-1}`, 400, "'log_verbose_level' must be an integer"},
		{`{"log_format":"xml"}`, 400, "invalid argument for log_format, got: xml"},
		{`{"log_colour":true}`, 400, "unknown log setting 'log_colour'"},
		{`[`, 400, "failed to parse the request JSON buffer"},
	} {
		r := do(t, h, "POST", "/v2/logging", []byte(tc.body))
		if r.code != tc.code || !strings.Contains(r.errMsg(t), tc.msg) {
			t.Errorf("%s: %d %s, want %d %q", tc.body, r.code, r.body, tc.code, tc.msg)
		}
	}
	if r := do(t, h, "DELETE", "/v2/logging", nil); r.code != 405 {
		t.Errorf("DELETE /v2/logging = %d", r.code)
	}
}

func TestLoggingGRPC(t *testing.T) {
	s, out := loggingServer(t)
	gc, _ := grpcOver(t, s)
	ctx := context.Background()
	resp, err := gc.LogSettings(ctx, &pb.LogSettingsRequest{Settings: map[string]*pb.LogSettingsRequest_SettingValue{
		"log_info": {ParameterChoice: &pb.LogSettingsRequest_SettingValue_BoolParam{BoolParam: false}},
	}})
	if err != nil || resp.Settings["log_info"].GetBoolParam() || !resp.Settings["log_error"].GetBoolParam() || resp.Settings["log_format"].GetStringParam() != "text" {
		t.Fatalf("gRPC update: %v %v", resp, err)
	}
	s.log.Info("an info record")
	s.log.Error("an error record")
	if l := out.take(); strings.Contains(l, "an info record") || !strings.Contains(l, "an error record") {
		t.Fatalf("log_info=false over gRPC: %q", l)
	}
	_, err = gc.LogSettings(ctx, &pb.LogSettingsRequest{Settings: map[string]*pb.LogSettingsRequest_SettingValue{
		"log_verbose_level": {ParameterChoice: &pb.LogSettingsRequest_SettingValue_StringParam{StringParam: "3"}},
	}})
	wantCode(t, err, codes.InvalidArgument, "'log_verbose_level' must be an integer")
	md, err := gc.ServerMetadata(ctx, &pb.ServerMetadataRequest{})
	if err != nil || !strings.Contains(strings.Join(md.Extensions, " "), "trace logging") {
		t.Fatalf("extensions %v %v", md.GetExtensions(), err)
	}
	// Without a logging control the extension is absent and the endpoint says so.
	plain := newTestServer(t, testRepo(), Options{})
	if r := do(t, plain.HTTPHandler(), "GET", "/v2/logging", nil); r.code != 503 || !strings.Contains(r.errMsg(t), "does not support dynamic logging") {
		t.Fatalf("no control: %d %s", r.code, r.body)
	}
	if strings.Contains(string(do(t, plain.HTTPHandler(), "GET", "/v2", nil).body), "logging") {
		t.Fatal("logging listed without a control")
	}
}

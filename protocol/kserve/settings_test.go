package kserve

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
)

func TestDecodeSettings(t *testing.T) {
	got, err := DecodeSettings([]byte(`{"trace_level":["TIMESTAMPS","TENSORS"],"trace_rate":"1","trace_count":null,"log_info":false,"log_verbose_level":2}`))
	want := map[string]any{"trace_level": []string{"TIMESTAMPS", "TENSORS"}, "trace_rate": "1", "trace_count": nil,
		"log_info": false, "log_verbose_level": json.Number("2")}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%#v, %v", got, err)
	}
	if got, err := DecodeSettings([]byte("  ")); err != nil || len(got) != 0 {
		t.Fatalf("empty body: %v, %v", got, err)
	}
	for body, msg := range map[string]string{
		`[1]`:                    "failed to parse the request JSON buffer",
		`{"a":`:                  "failed to parse the request JSON buffer",
		`null`:                   "must be an object of settings",
		`{"trace_level":[1]}`:    "setting 'trace_level' must be an array of strings",
		`{"trace_rate":{"a":1}}`: "setting 'trace_rate' must be a string, a number",
	} {
		if _, err := DecodeSettings([]byte(body)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want an error containing %q", body, err, msg)
		}
	}
}

func TestSettingsGRPC(t *testing.T) {
	tr := TraceSettingsFromGRPC(map[string]*pb.TraceSettingRequest_SettingValue{
		"trace_level": {Value: []string{"TIMESTAMPS"}}, "trace_rate": {},
	})
	if !reflect.DeepEqual(tr, map[string]any{"trace_level": []string{"TIMESTAMPS"}, "trace_rate": nil}) {
		t.Fatalf("trace settings %#v", tr)
	}
	lg := LogSettingsFromGRPC(map[string]*pb.LogSettingsRequest_SettingValue{
		"log_info":          {ParameterChoice: &pb.LogSettingsRequest_SettingValue_BoolParam{BoolParam: true}},
		"log_verbose_level": {ParameterChoice: &pb.LogSettingsRequest_SettingValue_Uint32Param{Uint32Param: 4}},
		"log_format":        {ParameterChoice: &pb.LogSettingsRequest_SettingValue_StringParam{StringParam: "json"}},
		"log_error":         {},
	})
	if !reflect.DeepEqual(lg, map[string]any{"log_info": true, "log_verbose_level": json.Number("4"), "log_format": "json", "log_error": nil}) {
		t.Fatalf("log settings %#v", lg)
	}
	vals := map[string][]string{"trace_level": {"OFF"}, "trace_rate": {"5"}, "resource": {"a=b", "c=d"}}
	if j := TraceSettingsJSON(vals); !reflect.DeepEqual(j, map[string]any{"trace_level": []string{"OFF"}, "trace_rate": "5", "resource": []string{"a=b", "c=d"}}) {
		t.Fatalf("trace JSON %#v", j)
	}
	if g := TraceSettingsGRPC(vals); len(g.Settings) != 3 || g.Settings["trace_rate"].Value[0] != "5" {
		t.Fatalf("trace gRPC %v", g)
	}
	ls := LogSettings{Info: true, VerboseLevel: 2, Format: "text"}
	if b, _ := json.Marshal(ls.JSON()); string(b) != `{"log_error":false,"log_file":"","log_format":"text","log_info":true,"log_verbose_level":2,"log_warning":false}` {
		t.Fatalf("log JSON %s", b)
	}
	if g := ls.GRPC(); g.Settings["log_verbose_level"].GetUint32Param() != 2 || !g.Settings["log_info"].GetBoolParam() || g.Settings["log_format"].GetStringParam() != "text" {
		t.Fatalf("log gRPC %v", g)
	}
}

// FuzzDecodeSettings feeds arbitrary bodies to the settings decoder: it refuses or returns only the value
// kinds the settings packages read.
func FuzzDecodeSettings(f *testing.F) {
	f.Add([]byte(`{"trace_level":["TIMESTAMPS"],"trace_rate":"1","trace_count":null}`))
	f.Add([]byte(`{"log_info":true,"log_verbose_level":1e400,"log_format":"json"}`))
	f.Add([]byte(`{"a":[null]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := DecodeSettings(body)
		if err != nil {
			return
		}
		for k, v := range m {
			switch v.(type) {
			case nil, bool, string, json.Number, []string:
			default:
				t.Fatalf("setting %q decoded as %T", k, v)
			}
		}
	})
}

package kserve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
)

// The bodies of the trace extension (POST /v2[/models/{m}]/trace/setting, gRPC TraceSetting) and the
// logging extension (POST /v2/logging, gRPC LogSettings) are flat objects of named settings. Both frontends
// decode them into one map for the package that owns the settings (tracing, logging), whose values are nil
// (JSON null, or an empty gRPC value list: clear or leave the setting), a bool, a string, a json.Number, or a
// []string (a JSON array of strings, or a gRPC value list).

// DecodeSettings reads the JSON body of a trace-setting or logging request. An empty body is no settings.
func DecodeSettings(body []byte) (map[string]any, error) {
	out := map[string]any{}
	if len(bytes.TrimSpace(body)) == 0 {
		return out, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("failed to parse the request JSON buffer: %w", err)
	}
	if raw == nil {
		return nil, errors.New("the request JSON must be an object of settings")
	}
	for name, r := range raw {
		d := json.NewDecoder(bytes.NewReader(r))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return nil, fmt.Errorf("setting '%s': %w", name, err)
		}
		switch x := v.(type) {
		case nil, bool, string, json.Number:
			out[name] = x
		case []any:
			list := make([]string, len(x))
			for i, e := range x {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("setting '%s' must be an array of strings", name)
				}
				list[i] = s
			}
			out[name] = list
		default:
			return nil, fmt.Errorf("setting '%s' must be a string, a number, a boolean, an array of strings or null", name)
		}
	}
	return out, nil
}

// TraceSettingsFromGRPC is a TraceSettingRequest's settings in DecodeSettings' form.
func TraceSettingsFromGRPC(in map[string]*pb.TraceSettingRequest_SettingValue) map[string]any {
	out := make(map[string]any, len(in))
	for name, v := range in {
		if len(v.GetValue()) == 0 {
			out[name] = nil
			continue
		}
		out[name] = append([]string(nil), v.GetValue()...)
	}
	return out
}

// TraceSettingsJSON is a trace setting response for HTTP: trace_level (and any setting with several
// values) an array, every other value a string.
func TraceSettingsJSON(values map[string][]string) map[string]any {
	out := make(map[string]any, len(values))
	for name, v := range values {
		if name == "trace_level" || len(v) != 1 {
			out[name] = v
			continue
		}
		out[name] = v[0]
	}
	return out
}

// TraceSettingsGRPC is a trace setting response for gRPC.
func TraceSettingsGRPC(values map[string][]string) *pb.TraceSettingResponse {
	resp := &pb.TraceSettingResponse{Settings: make(map[string]*pb.TraceSettingResponse_SettingValue, len(values))}
	for name, v := range values {
		resp.Settings[name] = &pb.TraceSettingResponse_SettingValue{Value: v}
	}
	return resp
}

// LogSettingsFromGRPC is a LogSettingsRequest's settings in DecodeSettings' form (a uint32 as a
// json.Number).
func LogSettingsFromGRPC(in map[string]*pb.LogSettingsRequest_SettingValue) map[string]any {
	out := make(map[string]any, len(in))
	for name, v := range in {
		switch p := v.GetParameterChoice().(type) {
		case *pb.LogSettingsRequest_SettingValue_BoolParam:
			out[name] = p.BoolParam
		case *pb.LogSettingsRequest_SettingValue_Uint32Param:
			out[name] = json.Number(strconv.FormatUint(uint64(p.Uint32Param), 10))
		case *pb.LogSettingsRequest_SettingValue_StringParam:
			out[name] = p.StringParam
		default:
			out[name] = nil
		}
	}
	return out
}

// LogSettings is the logging extension's answer, the same for HTTP (as JSON) and gRPC.
type LogSettings struct {
	File                 string
	Info, Warning, Error bool
	VerboseLevel         uint32
	Format               string
}

// JSON is the HTTP answer: {"log_file","log_info","log_warning","log_error","log_verbose_level","log_format"}.
func (s LogSettings) JSON() map[string]any {
	return map[string]any{"log_file": s.File, "log_info": s.Info, "log_warning": s.Warning, "log_error": s.Error,
		"log_verbose_level": s.VerboseLevel, "log_format": s.Format}
}

// GRPC is the gRPC answer.
func (s LogSettings) GRPC() *pb.LogSettingsResponse {
	str := func(v string) *pb.LogSettingsResponse_SettingValue {
		return &pb.LogSettingsResponse_SettingValue{ParameterChoice: &pb.LogSettingsResponse_SettingValue_StringParam{StringParam: v}}
	}
	boolean := func(v bool) *pb.LogSettingsResponse_SettingValue {
		return &pb.LogSettingsResponse_SettingValue{ParameterChoice: &pb.LogSettingsResponse_SettingValue_BoolParam{BoolParam: v}}
	}
	return &pb.LogSettingsResponse{Settings: map[string]*pb.LogSettingsResponse_SettingValue{
		"log_file": str(s.File), "log_info": boolean(s.Info), "log_warning": boolean(s.Warning), "log_error": boolean(s.Error),
		"log_verbose_level": {ParameterChoice: &pb.LogSettingsResponse_SettingValue_Uint32Param{Uint32Param: s.VerboseLevel}},
		"log_format":        str(s.Format),
	}}
}

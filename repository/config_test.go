package repository

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

const linearConfig = `
name: "linear"
platform: "pytorch_libtorch"
max_batch_size: 16
input [
  { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "INPUT__1" data_type: TYPE_FP32 dims: [ -1 ] allow_ragged_batch: false }
]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 2 ] } ]
dynamic_batching {
  preferred_batch_size: [ 8, 4, 8 ]
  max_queue_delay_microseconds: 100000
  default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 5000 max_queue_size: 7 }
}
instance_group [ { kind: KIND_CPU count: 2 } ]
parameters { key: "k" value: { string_value: "v" } }
`

func mustParse(t *testing.T, text string) *modelconfig.ModelConfig {
	t.Helper()
	cfg, err := ParseConfig("m/config.pbtxt", []byte(text))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	return cfg
}

func TestParseConfigRejectsUnknownAndMalformed(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"unknown top-level field", `name: "m" sequence_batching {}`, "sequence_batching"},
		{"unknown nested field", `input [{ name: "a" data_type: TYPE_FP32 dims: [1] is_shape_tensor: true }]`, "is_shape_tensor"},
		{"bad enum", `input [{ name: "a" data_type: TYPE_FP33 dims: [1] }]`, "TYPE_FP33"},
		{"bad number", `max_batch_size: "eight"`, "max_batch_size"},
		{"int32 overflow", `max_batch_size: 4294967296`, "max_batch_size"},
		{"syntax", `input [ { name: "a" `, "m/config.pbtxt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("m/config.pbtxt", []byte(tc.text))
			if err == nil {
				t.Fatal("no error")
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.File != "m/config.pbtxt" {
				t.Fatalf("error %v does not name the file", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestNormalizeFillsTritonDefaults(t *testing.T) {
	cfg := mustParse(t, `
platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "x" data_type: TYPE_INT64 dims: [ 3 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]
dynamic_batching { }
`)
	if err := Normalize("m/config.pbtxt", "m", cfg, 0); err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "m" || cfg.Backend != "pytorch" || cfg.DefaultModelFilename != "model.pt" {
		t.Errorf("name/backend/filename = %q/%q/%q", cfg.Name, cfg.Backend, cfg.DefaultModelFilename)
	}
	if got := cfg.GetVersionPolicy().GetLatest().GetNumVersions(); got != 1 {
		t.Errorf("version policy latest = %d, want 1", got)
	}
	if got := cfg.GetDynamicBatching().GetPreferredBatchSize(); len(got) != 1 || got[0] != 8 {
		t.Errorf("preferred = %v, want [8]", got)
	}
	g := cfg.InstanceGroup
	if len(g) != 1 || g[0].Kind != modelconfig.ModelInstanceGroup_KIND_CPU || g[0].Count != 1 || g[0].Name != "m_0" {
		t.Errorf("instance groups = %v", g)
	}

	gpu := mustParse(t, `backend: "pytorch" input [{name: "x" data_type: TYPE_FP32 dims: [1]}] output [{name: "y" data_type: TYPE_FP32 dims: [1]}]
instance_group [{ kind: KIND_GPU count: 2 }, { count: 1 gpus: [1] }]`)
	if err := Normalize("f", "m", gpu, 2); err != nil {
		t.Fatal(err)
	}
	if gpu.Platform != PlatformLibtorch {
		t.Errorf("platform = %q", gpu.Platform)
	}
	if g := gpu.InstanceGroup[0]; len(g.Gpus) != 2 || g.Kind != modelconfig.ModelInstanceGroup_KIND_GPU {
		t.Errorf("group 0 = %v, want all GPUs", g)
	}
	if g := gpu.InstanceGroup[1]; g.Kind != modelconfig.ModelInstanceGroup_KIND_GPU {
		t.Errorf("KIND_AUTO with gpus should become KIND_GPU, got %v", g.Kind)
	}
	if n := instanceCount(gpu); n != 5 {
		t.Errorf("instanceCount = %d, want 2*2+1", n)
	}
}

func TestNormalizeRejectsInvalidValues(t *testing.T) {
	base := `platform: "pytorch_libtorch" `
	io := `input [{name: "x" data_type: TYPE_FP32 dims: [4]}] output [{name: "y" data_type: TYPE_FP32 dims: [2]}] `
	for _, tc := range []struct{ name, text, field, msg string }{
		{"negative max batch", base + io + `max_batch_size: -1`, "max_batch_size", "'max_batch_size' must be non-negative value"},
		{"no platform", io, "platform", "must specify 'platform' or 'backend'"},
		{"other platform", `platform: "onnxruntime_onnx" ` + io, "platform", "unsupported platform"},
		{"platform/backend clash", base + `backend: "ofa" ` + io, "backend", "does not match platform"},
		{"name mismatch", base + `name: "other" ` + io, "name", "does not match its directory"},
		{"no input", base + `output [{name: "y" data_type: TYPE_FP32 dims: [2]}]`, "input", "at least one input"},
		{"no output", base + `input [{name: "x" data_type: TYPE_FP32 dims: [4]}]`, "output", "at least one output"},
		{"no data type", base + `input [{name: "x" dims: [4]}] output [{name: "y" data_type: TYPE_FP32 dims: [2]}]`, "input[0].data_type", "valid data_type"},
		{"no dims", base + `input [{name: "x" data_type: TYPE_FP32}] output [{name: "y" data_type: TYPE_FP32 dims: [2]}]`, "input[0].dims", "must specify 'dims'"},
		{"zero dim", base + `input [{name: "x" data_type: TYPE_FP32 dims: [0]}] output [{name: "y" data_type: TYPE_FP32 dims: [2]}]`, "input[0].dims", ">= 1, or -1"},
		{"duplicate input", base + `input [{name: "x" data_type: TYPE_FP32 dims: [1]}, {name: "x" data_type: TYPE_FP32 dims: [1]}] output [{name: "y" data_type: TYPE_FP32 dims: [2]}]`, "input[1].name", "duplicate input name 'x'"},
		{"unnamed output", base + `input [{name: "x" data_type: TYPE_FP32 dims: [1]}] output [{data_type: TYPE_FP32 dims: [2]}]`, "output[0].name", "must have a name"},
		{"reshape count", base + `input [{name: "x" data_type: TYPE_FP32 dims: [4] reshape {shape: [3]}}] output [{name: "y" data_type: TYPE_FP32 dims: [2]}]`, "input[0].reshape.shape", "different element count"},
		{"label path", base + `input [{name: "x" data_type: TYPE_FP32 dims: [1]}] output [{name: "y" data_type: TYPE_FP32 dims: [2] label_filename: "../x"}]`, "output[0].label_filename", "plain file name"},
		{"model file path", base + io + `default_model_filename: "../../etc/passwd"`, "default_model_filename", "plain file name"},
		{"cpu with gpus", base + io + `instance_group [{kind: KIND_CPU gpus: [0]}]`, "instance_group[0].gpus", "specifies one or more GPUs"},
		{"gpu without gpus", base + io + `instance_group [{kind: KIND_GPU}]`, "instance_group[0].kind", "no GPUs are available"},
		{"negative count", base + io + `instance_group [{count: -2}]`, "instance_group[0].count", "count >= 1"},
		{"preferred zero", base + io + `max_batch_size: 4 dynamic_batching {preferred_batch_size: [0]}`, "dynamic_batching.preferred_batch_size", "preferred size must be positive"},
		{"preferred too big", base + io + `max_batch_size: 4 dynamic_batching {preferred_batch_size: [8]}`, "dynamic_batching.preferred_batch_size", "preferred size must be <= max batch size"},
		{"default level range", base + io + `max_batch_size: 4 dynamic_batching {priority_levels: 2 default_priority_level: 3}`, "dynamic_batching.default_priority_level", "default priority level must be in range [1, 2]"},
		{"ordering with levels", base + io + `max_batch_size: 4 dynamic_batching {preserve_ordering: true priority_levels: 2 default_priority_level: 1}`, "dynamic_batching.preserve_ordering", "Only one priority level"},
		{"ordering with delay", base + io + `max_batch_size: 4 dynamic_batching {preserve_ordering: true default_queue_policy {timeout_action: DELAY default_timeout_microseconds: 10}}`, "timeout_action", "DELAY"},
		{"policy level range", base + io + `max_batch_size: 4 dynamic_batching {priority_levels: 2 default_priority_level: 1 priority_queue_policy {key: 3 value: {}}}`, "dynamic_batching.priority_queue_policy", "range [1, 2]"},
		{"latest zero", base + io + `version_policy {latest {num_versions: 0}}`, "version_policy.latest.num_versions", "greater than 0"},
		{"specific empty", base + io + `version_policy {specific {}}`, "version_policy.specific.versions", "at least one version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustParse(t, tc.text)
			err := Normalize("m/config.pbtxt", "m", cfg, 0)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a ConfigError", err)
			}
			if ce.File != "m/config.pbtxt" || !strings.Contains(ce.Field, tc.field) || !strings.Contains(ce.Msg, tc.msg) {
				t.Fatalf("got file %q field %q msg %q; want field %q msg %q", ce.File, ce.Field, ce.Msg, tc.field, tc.msg)
			}
		})
	}
}

func TestConfigJSONIsTritonShaped(t *testing.T) {
	cfg := mustParse(t, linearConfig)
	if err := Normalize("linear/config.pbtxt", "linear", cfg, 0); err != nil {
		t.Fatal(err)
	}
	data, err := modelconfig.ToJSON(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("invalid JSON %s: %v", data, err)
	}
	db := got["dynamic_batching"].(map[string]any)
	if v, ok := db["max_queue_delay_microseconds"].(json.Number); !ok || v.String() != "100000" {
		t.Errorf("max_queue_delay_microseconds = %#v, want the number 100000", db["max_queue_delay_microseconds"])
	}
	if v, ok := db["priority_levels"].(json.Number); !ok || v.String() != "0" {
		t.Errorf("priority_levels = %#v, want the number 0 (defaults printed)", db["priority_levels"])
	}
	pol := db["default_queue_policy"].(map[string]any)
	if pol["timeout_action"] != "DELAY" || pol["allow_timeout_override"] != false {
		t.Errorf("queue policy = %v", pol)
	}
	if p := db["preferred_batch_size"].([]any); len(p) != 2 || p[0].(json.Number).String() != "4" || p[1].(json.Number).String() != "8" {
		t.Errorf("preferred_batch_size = %v, want sorted unique [4 8]", p)
	}
	in := got["input"].([]any)[1].(map[string]any)
	if in["data_type"] != "TYPE_FP32" || in["format"] != "FORMAT_NONE" || in["optional"] != false {
		t.Errorf("input[1] = %v", in)
	}
	if d := in["dims"].([]any); len(d) != 1 || d[0].(json.Number).String() != "-1" {
		t.Errorf("dims = %v, want the number -1", d)
	}
	if _, ok := in["reshape"]; ok {
		t.Errorf("unset reshape should be left out: %v", in)
	}
	if g := got["instance_group"].([]any)[0].(map[string]any); g["kind"] != "KIND_CPU" || g["count"].(json.Number).String() != "2" {
		t.Errorf("instance_group = %v", g)
	}
	if vp := got["version_policy"].(map[string]any)["latest"].(map[string]any); vp["num_versions"].(json.Number).String() != "1" {
		t.Errorf("version_policy = %v", vp)
	}
	if p := got["parameters"].(map[string]any)["k"].(map[string]any); p["string_value"] != "v" {
		t.Errorf("parameters = %v", got["parameters"])
	}
	if got["default_model_filename"] != "model.pt" || got["platform"] != "pytorch_libtorch" || got["backend"] != "pytorch" {
		t.Errorf("top level = %v", got)
	}
	// And it parses back into the same config.
	back, err := modelconfig.FromJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := modelconfig.ToJSON(back)
	if string(again) != string(data) {
		t.Errorf("round trip differs:\n%s\n%s", data, again)
	}
}

// FuzzParseConfig feeds arbitrary text through parsing, normalization and
// JSON rendering: none of them may panic, and whatever normalizes must
// render as valid JSON.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(linearConfig))
	f.Add([]byte(`max_batch_size: -3 input [{name: "x"}]`))
	f.Add([]byte(`dynamic_batching { priority_queue_policy { key: 0 value: {} } }`))
	f.Add([]byte(`version_policy { specific { versions: [ -1, 0 ] } }`))
	f.Add([]byte("\x00\xff{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig("f", data)
		if err != nil {
			return
		}
		if err := Normalize("f", "m", cfg, 1); err != nil {
			return
		}
		out, err := modelconfig.ToJSON(cfg)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON: %s", out)
		}
	})
}

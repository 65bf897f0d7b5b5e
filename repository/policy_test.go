package repository

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
)

func param(k, v string) string {
	return `parameters { key: "` + k + `" value { string_value: "` + v + `" } } `
}

// TestBatchingPolicyFromConfig: batching_policy and adaptive_queue_bound_microseconds choose the batcher's
// policy per model; bad values are refused at load naming the parameter.
func TestBatchingPolicyFromConfig(t *testing.T) {
	base := `platform: "pytorch_libtorch" max_batch_size: 8 dynamic_batching {} ` +
		`input [{name: "x" data_type: TYPE_FP32 dims: [4]}] output [{name: "y" data_type: TYPE_FP32 dims: [2]}] `
	for _, tc := range []struct {
		name, params string
		policy       batcher.Policy
		bound        time.Duration
		err          string
	}{
		{"default is triton", "", batcher.Triton, 0, ""},
		{"triton", param("batching_policy", "triton"), batcher.Triton, 0, ""},
		{"adaptive", param("batching_policy", "adaptive"), batcher.Adaptive, 0, ""},
		{"adaptive with bound", param("batching_policy", "adaptive") + param("adaptive_queue_bound_microseconds", "5000"), batcher.Adaptive, 5 * time.Millisecond, ""},
		{"unknown policy", param("batching_policy", "greedy"), 0, 0, "'batching_policy' must be 'triton' or 'adaptive', got 'greedy'"},
		{"bound not a number", param("batching_policy", "adaptive") + param("adaptive_queue_bound_microseconds", "5ms"), 0, 0, "'adaptive_queue_bound_microseconds' must be an integer"},
		{"negative bound", param("batching_policy", "adaptive") + param("adaptive_queue_bound_microseconds", "-1"), 0, 0, "'adaptive_queue_bound_microseconds' must be an integer"},
		{"bound without adaptive", param("adaptive_queue_bound_microseconds", "100"), 0, 0, "needs 'batching_policy' \"adaptive\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustParse(t, base+tc.params)
			err := Normalize("m/config.pbtxt", "m", cfg, 0)
			if tc.err != "" {
				var ce *ConfigError
				if !errors.As(err, &ce) || ce.Field != "parameters" || !strings.Contains(ce.Msg, tc.err) {
					t.Fatalf("got %v, want a ConfigError on parameters containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			bc := backend.BatcherConfig(cfg, 1)
			if bc.Policy != tc.policy || bc.AdaptiveQueueBound != tc.bound {
				t.Fatalf("policy %v bound %v, want %v %v", bc.Policy, bc.AdaptiveQueueBound, tc.policy, tc.bound)
			}
			if err := bc.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestNormalizeSimulatedPlatform: platform "simulated" is a kind of its own.
func TestNormalizeSimulatedPlatform(t *testing.T) {
	cfg := mustParse(t, `platform: "simulated" input [{name: "x" data_type: TYPE_FP32 dims: [4]}] output [{name: "y" data_type: TYPE_FP32 dims: [2]}]`)
	if err := Normalize("m/config.pbtxt", "m", cfg, 0); err != nil {
		t.Fatal(err)
	}
	if Kind(cfg) != PlatformSimulated {
		t.Fatalf("kind %q", Kind(cfg))
	}
	bad := mustParse(t, `platform: "simulated" backend: "ofa" input [{name: "x" data_type: TYPE_FP32 dims: [4]}] output [{name: "y" data_type: TYPE_FP32 dims: [2]}]`)
	if err := Normalize("m/config.pbtxt", "m", bad, 0); err == nil {
		t.Fatal("platform simulated with a backend was accepted")
	}
}

package kserve

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// TensorMetadata is one input or output in model metadata (docs/triton-batcher-and-kserve-v2.md §2.2).
type TensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// ModelMetadata is GET /v2/models/{m}.
type ModelMetadata struct {
	Name     string           `json:"name"`
	Versions []string         `json:"versions"`
	Platform string           `json:"platform"`
	Inputs   []TensorMetadata `json:"inputs"`
	Outputs  []TensorMetadata `json:"outputs"`
}

// ModelConfig is the part of GET /v2/models/{m}/config that the harness uses.
type ModelConfig struct {
	Name         string `json:"name"`
	MaxBatchSize int    `json:"max_batch_size"`
	Platform     string `json:"platform"`
	// Parameters are the config's string parameters (a simulated model's device profile).
	Parameters map[string]struct {
		StringValue string `json:"string_value"`
	} `json:"parameters"`
}

// Duration is a statistics counter pair {count, ns}.
type Duration struct {
	Count Uint `json:"count"`
	NS    Uint `json:"ns"`
}

// InferStats is inference_stats (docs/triton-batcher-and-kserve-v2.md §2.11).
type InferStats struct {
	Success       Duration `json:"success"`
	Fail          Duration `json:"fail"`
	Queue         Duration `json:"queue"`
	ComputeInput  Duration `json:"compute_input"`
	ComputeInfer  Duration `json:"compute_infer"`
	ComputeOutput Duration `json:"compute_output"`
}

// BatchStats is one batch_stats entry: executions at one batch size.
type BatchStats struct {
	BatchSize     Uint     `json:"batch_size"`
	ComputeInput  Duration `json:"compute_input"`
	ComputeInfer  Duration `json:"compute_infer"`
	ComputeOutput Duration `json:"compute_output"`
}

// ModelStats is one model_stats entry.
type ModelStats struct {
	Name           string       `json:"name"`
	Version        string       `json:"version"`
	LastInference  Uint         `json:"last_inference"`
	InferenceCount Uint         `json:"inference_count"`
	ExecutionCount Uint         `json:"execution_count"`
	InferenceStats InferStats   `json:"inference_stats"`
	BatchStats     []BatchStats `json:"batch_stats"`
}

// Uint is a uint64 counter that decodes from a JSON number or from a string
// of digits (protobuf's JSON mapping writes uint64 as a string).
type Uint uint64

// UnmarshalJSON implements json.Unmarshaler.
func (u *Uint) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("counter %s: %w", b, err)
	}
	*u = Uint(v)
	return nil
}

// StatsDoc is the body of GET /v2/models/{m}/stats.
type StatsDoc struct {
	ModelStats []ModelStats `json:"model_stats"`
}

// ParseStats decodes a statistics document and returns the entry for model
// (and version, when not ""); with several versions and none requested it
// returns the one with the most inferences.
func ParseStats(body []byte, model, version string) (ModelStats, error) {
	var doc StatsDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return ModelStats{}, fmt.Errorf("decoding statistics: %w", err)
	}
	var best *ModelStats
	for i := range doc.ModelStats {
		s := &doc.ModelStats[i]
		if s.Name != model || (version != "" && s.Version != version) {
			continue
		}
		if best == nil || s.InferenceCount > best.InferenceCount {
			best = s
		}
	}
	if best == nil {
		return ModelStats{}, fmt.Errorf("statistics have no entry for model %q version %q", model, version)
	}
	return *best, nil
}

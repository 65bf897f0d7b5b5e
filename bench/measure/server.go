package measure

import (
	"fmt"
	"time"

	"github.com/ofaserve/ofaserve/bench/kserve"
)

// ServerSplit is the server's view of a window: the statistics extension's
// counters differenced between the window's start and end (docs/triton-batcher-and-kserve-v2.md §6.4).
type ServerSplit struct {
	Requests   uint64 `json:"requests"`   // Δ inference_stats.success.count
	Inferences uint64 `json:"inferences"` // Δ inference_count
	Executions uint64 `json:"executions"` // Δ execution_count
	Failures   uint64 `json:"failures"`   // Δ inference_stats.fail.count

	AvgRequest    time.Duration `json:"avg_request_ns"`
	Queue         time.Duration `json:"queue_ns"`
	ComputeInput  time.Duration `json:"compute_input_ns"`
	ComputeInfer  time.Duration `json:"compute_infer_ns"`
	ComputeOutput time.Duration `json:"compute_output_ns"`
	// Overhead is AvgRequest − Queue − compute, floored at 0.
	Overhead time.Duration `json:"overhead_ns"`

	// BatchSizes maps a batch size to the number of executions at that size
	// in the window (Δ batch_stats[*].compute_infer.count).
	BatchSizes map[uint64]uint64 `json:"batch_sizes,omitempty"`
}

// AvgBatch is inferences per execution, 0 when nothing ran.
func (s *ServerSplit) AvgBatch() float64 {
	if s == nil || s.Executions == 0 {
		return 0
	}
	return float64(s.Inferences) / float64(s.Executions)
}

func sub(after, before kserve.Uint, what string) (uint64, error) {
	if after < before {
		return 0, fmt.Errorf("server counter %s went backwards (%d -> %d): was the server restarted?", what, before, after)
	}
	return uint64(after - before), nil
}

func avgDelta(after, before kserve.Duration, what string) (time.Duration, error) {
	c, err := sub(after.Count, before.Count, what+".count")
	if err != nil {
		return 0, err
	}
	ns, err := sub(after.NS, before.NS, what+".ns")
	if err != nil {
		return 0, err
	}
	if c == 0 {
		return 0, nil
	}
	return time.Duration(ns / c), nil
}

// Diff differences two statistics snapshots of the same model.
func Diff(before, after kserve.ModelStats) (*ServerSplit, error) {
	if before.Name != after.Name || before.Version != after.Version {
		return nil, fmt.Errorf("statistics of %s/%s and %s/%s cannot be differenced", before.Name, before.Version, after.Name, after.Version)
	}
	var s ServerSplit
	var err error
	bi, ai := before.InferenceStats, after.InferenceStats
	if s.Requests, err = sub(ai.Success.Count, bi.Success.Count, "success.count"); err != nil {
		return nil, err
	}
	if s.Failures, err = sub(ai.Fail.Count, bi.Fail.Count, "fail.count"); err != nil {
		return nil, err
	}
	if s.Inferences, err = sub(after.InferenceCount, before.InferenceCount, "inference_count"); err != nil {
		return nil, err
	}
	if s.Executions, err = sub(after.ExecutionCount, before.ExecutionCount, "execution_count"); err != nil {
		return nil, err
	}
	if s.AvgRequest, err = avgDelta(ai.Success, bi.Success, "success"); err != nil {
		return nil, err
	}
	if s.Queue, err = avgDelta(ai.Queue, bi.Queue, "queue"); err != nil {
		return nil, err
	}
	if s.ComputeInput, err = avgDelta(ai.ComputeInput, bi.ComputeInput, "compute_input"); err != nil {
		return nil, err
	}
	if s.ComputeInfer, err = avgDelta(ai.ComputeInfer, bi.ComputeInfer, "compute_infer"); err != nil {
		return nil, err
	}
	if s.ComputeOutput, err = avgDelta(ai.ComputeOutput, bi.ComputeOutput, "compute_output"); err != nil {
		return nil, err
	}
	if o := s.AvgRequest - s.Queue - s.ComputeInput - s.ComputeInfer - s.ComputeOutput; o > 0 {
		s.Overhead = o
	}
	prev := map[kserve.Uint]kserve.Uint{}
	for _, b := range before.BatchStats {
		prev[b.BatchSize] = b.ComputeInfer.Count
	}
	for _, b := range after.BatchStats {
		d, err := sub(b.ComputeInfer.Count, prev[b.BatchSize], fmt.Sprintf("batch_stats[%d].compute_infer.count", b.BatchSize))
		if err != nil {
			return nil, err
		}
		if d == 0 {
			continue
		}
		if s.BatchSizes == nil {
			s.BatchSizes = map[uint64]uint64{}
		}
		s.BatchSizes[uint64(b.BatchSize)] = d
	}
	return &s, nil
}

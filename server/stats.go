package server

import (
	"sort"
	"strconv"
	"time"

	"github.com/ofaserve/ofaserve/batcher"
	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
)

// modelStats is one model version's statistics.
type modelStats struct {
	name    string
	version int64
	st      batcher.Stats
}

// collectStats gathers statistics for all ready models (name ""), all ready
// versions of one model (versioned false) or one version (docs/triton-batcher-and-kserve-v2.md §2.11).
func (s *Server) collectStats(name string, version int64, versioned bool) ([]modelStats, error) {
	var out []modelStats
	if name != "" && versioned {
		m, err := s.repo.Model(name, version)
		if err != nil || !m.Ready() {
			return nil, invalidArg("requested model version is not available for model '%s'", name)
		}
		return []modelStats{{m.Name(), m.Version(), m.Stats()}}, nil
	}
	for _, e := range s.repo.Index(true) {
		if e.Version <= 0 || (name != "" && e.Name != name) {
			continue
		}
		m, err := s.repo.Model(e.Name, e.Version)
		if err != nil || !m.Ready() {
			continue
		}
		out = append(out, modelStats{m.Name(), m.Version(), m.Stats()})
	}
	if name != "" && len(out) == 0 {
		return nil, invalidArg("requested model '%s' is not available", name)
	}
	return out, nil
}

type durJSON struct {
	Count uint64 `json:"count"`
	NS    uint64 `json:"ns"`
}

func dur(d batcher.Duration) durJSON { return durJSON{d.Count, uint64(d.Total)} }

type inferStatsJSON struct {
	Success       durJSON `json:"success"`
	Fail          durJSON `json:"fail"`
	Queue         durJSON `json:"queue"`
	ComputeInput  durJSON `json:"compute_input"`
	ComputeInfer  durJSON `json:"compute_infer"`
	ComputeOutput durJSON `json:"compute_output"`
	CacheHit      durJSON `json:"cache_hit"`
	CacheMiss     durJSON `json:"cache_miss"`
}

type batchStatsJSON struct {
	BatchSize     uint64  `json:"batch_size"`
	ComputeInput  durJSON `json:"compute_input"`
	ComputeInfer  durJSON `json:"compute_infer"`
	ComputeOutput durJSON `json:"compute_output"`
}

type modelStatJSON struct {
	Name           string              `json:"name"`
	Version        string              `json:"version"`
	LastInference  uint64              `json:"last_inference"`
	InferenceCount uint64              `json:"inference_count"`
	ExecutionCount uint64              `json:"execution_count"`
	InferenceStats inferStatsJSON      `json:"inference_stats"`
	ResponseStats  map[string]struct{} `json:"response_stats"`
	BatchStats     []batchStatsJSON    `json:"batch_stats"`
	MemoryUsage    []struct{}          `json:"memory_usage"`
}

func lastInferenceMS(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixMilli())
}

func batchSizes(st batcher.Stats) []int {
	sizes := make([]int, 0, len(st.Batches))
	for b := range st.Batches {
		sizes = append(sizes, b)
	}
	sort.Ints(sizes)
	return sizes
}

func statsJSON(all []modelStats) map[string]any {
	out := make([]modelStatJSON, 0, len(all))
	for _, ms := range all {
		st := ms.st
		j := modelStatJSON{
			Name: ms.name, Version: strconv.FormatInt(ms.version, 10),
			LastInference: lastInferenceMS(st.LastInference), InferenceCount: st.InferenceCount, ExecutionCount: st.ExecutionCount,
			InferenceStats: inferStatsJSON{
				Success: dur(st.Success), Fail: dur(st.Fail), Queue: dur(st.Queue),
				ComputeInput: dur(st.ComputeInput), ComputeInfer: dur(st.ComputeInfer), ComputeOutput: dur(st.ComputeOutput),
				CacheHit: dur(st.CacheHit), CacheMiss: dur(st.CacheMiss),
			},
			ResponseStats: map[string]struct{}{}, BatchStats: []batchStatsJSON{}, MemoryUsage: []struct{}{},
		}
		for _, b := range batchSizes(st) {
			bs := st.Batches[b]
			j.BatchStats = append(j.BatchStats, batchStatsJSON{
				BatchSize:     uint64(b),
				ComputeInput:  durJSON{bs.Executions, uint64(bs.ComputeInput)},
				ComputeInfer:  durJSON{bs.Executions, uint64(bs.ComputeInfer)},
				ComputeOutput: durJSON{bs.Executions, uint64(bs.ComputeOutput)},
			})
		}
		out = append(out, j)
	}
	return map[string]any{"model_stats": out}
}

func durPB(d batcher.Duration) *pb.StatisticDuration {
	return &pb.StatisticDuration{Count: d.Count, Ns: uint64(d.Total)}
}

func statsPB(all []modelStats) *pb.ModelStatisticsResponse {
	resp := &pb.ModelStatisticsResponse{}
	for _, ms := range all {
		st := ms.st
		p := &pb.ModelStatistics{
			Name: ms.name, Version: strconv.FormatInt(ms.version, 10),
			LastInference: lastInferenceMS(st.LastInference), InferenceCount: st.InferenceCount, ExecutionCount: st.ExecutionCount,
			InferenceStats: &pb.InferStatistics{
				Success: durPB(st.Success), Fail: durPB(st.Fail), Queue: durPB(st.Queue),
				ComputeInput: durPB(st.ComputeInput), ComputeInfer: durPB(st.ComputeInfer), ComputeOutput: durPB(st.ComputeOutput),
				CacheHit: durPB(st.CacheHit), CacheMiss: durPB(st.CacheMiss),
			},
		}
		for _, b := range batchSizes(st) {
			bs := st.Batches[b]
			p.BatchStats = append(p.BatchStats, &pb.InferBatchStatistics{
				BatchSize:     uint64(b),
				ComputeInput:  &pb.StatisticDuration{Count: bs.Executions, Ns: uint64(bs.ComputeInput)},
				ComputeInfer:  &pb.StatisticDuration{Count: bs.Executions, Ns: uint64(bs.ComputeInfer)},
				ComputeOutput: &pb.StatisticDuration{Count: bs.Executions, Ns: uint64(bs.ComputeOutput)},
			})
		}
		resp.ModelStats = append(resp.ModelStats, p)
	}
	return resp
}

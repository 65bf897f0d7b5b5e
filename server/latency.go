package server

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ofaserve/ofaserve/batcher"
)

// The latency distributions of --metrics-config summary_latencies / histogram_latencies: one summary and
// one histogram per stage and model version, fed per request by the model's batcher Observer
// (Server.Observer) rather than read from the cumulative statistics at scrape time.

// stage is one latency stage: its summary (Triton's name, µs) and histogram (ofaserve's, ms, named in
// Triton's style after nv_inference_first_response_histogram_ms).
type stage struct{ summary, histogram, what string }

// stages are in the order of stageDurations.
var stages = [...]stage{
	{"nv_inference_request_summary_us", "nv_inference_request_histogram_ms", "end-to-end inference request duration"},
	{"nv_inference_queue_summary_us", "nv_inference_queue_histogram_ms", "inference queuing duration"},
	{"nv_inference_compute_input_summary_us", "nv_inference_compute_input_histogram_ms", "compute input duration"},
	{"nv_inference_compute_infer_summary_us", "nv_inference_compute_infer_histogram_ms", "compute inference duration"},
	{"nv_inference_compute_output_summary_us", "nv_inference_compute_output_histogram_ms", "compute output duration"},
}

// stageDurations are a request's durations per stage, as Stats counts them.
func stageDurations(t *batcher.Times) [len(stages)]time.Duration {
	return [...]time.Duration{t.Request(), t.Queue(), t.ComputeInput, t.ComputeInfer, t.ComputeOutput}
}

// Triton's summaries are prometheus-cpp's: a 60 s sliding window in 5 age buckets.
const (
	summaryMaxAge     = 60 * time.Second
	summaryAgeBuckets = 5
)

// modelLatency is one model version's summaries and histograms (nil when that kind is off).
type modelLatency struct {
	summaries  [len(stages)]prometheus.Summary
	histograms [len(stages)]prometheus.Histogram
}

func newModelLatency(cfg *MetricsConfig, name string, version int64) *modelLatency {
	labels := prometheus.Labels{"model": name, "version": strconv.FormatInt(version, 10)}
	ml := &modelLatency{}
	for i, st := range stages {
		if cfg.SummaryLatencies {
			obj := make(map[float64]float64, len(cfg.SummaryQuantiles))
			for _, q := range cfg.SummaryQuantiles {
				obj[q.Q] = q.Err
			}
			ml.summaries[i] = prometheus.NewSummary(prometheus.SummaryOpts{
				Name: st.summary, Help: "Summary of " + st.what + " in microseconds", ConstLabels: labels,
				Objectives: obj, MaxAge: summaryMaxAge, AgeBuckets: summaryAgeBuckets,
			})
		}
		if cfg.HistogramLatencies {
			ml.histograms[i] = prometheus.NewHistogram(prometheus.HistogramOpts{
				Name: st.histogram, Help: "Histogram of " + st.what + " in milliseconds", ConstLabels: labels,
				Buckets: cfg.HistogramBuckets,
			})
		}
	}
	return ml
}

// observe adds one successful request (failed ones are left out, as the success counters leave them out, so
// that a summary's _count and _sum match nv_inference_request_success and the duration counters). Like
// Triton's counters, a summary adds whole microseconds, truncated per request.
func (ml *modelLatency) observe(t *batcher.Times) {
	if t.Failed {
		return
	}
	for i, d := range stageDurations(t) {
		if s := ml.summaries[i]; s != nil {
			s.Observe(float64(d / time.Microsecond))
		}
		if h := ml.histograms[i]; h != nil {
			h.Observe(float64(d) / float64(time.Millisecond))
		}
	}
}

func (ml *modelLatency) collect(ch chan<- prometheus.Metric) {
	for i := range stages {
		if s := ml.summaries[i]; s != nil {
			s.Collect(ch)
		}
		if h := ml.histograms[i]; h != nil {
			h.Collect(ch)
		}
	}
}

type modelKey struct {
	name    string
	version int64
}

// latencyCollector exports the distributions of the model versions that are ready now; a version that
// unloads stops being exported, and one that loads again starts afresh (Observer is asked again).
type latencyCollector struct {
	cfg  MetricsConfig
	repo Repository

	mu     sync.Mutex
	models map[modelKey]*modelLatency
}

func (lc *latencyCollector) forModel(name string, version int64) *modelLatency {
	ml := newModelLatency(&lc.cfg, name, version)
	lc.mu.Lock()
	lc.models[modelKey{name, version}] = ml
	lc.mu.Unlock()
	return ml
}

// Describe describes nothing: the families are per model version, known only once models load, so the
// registry treats this as an unchecked collector.
func (lc *latencyCollector) Describe(chan<- *prometheus.Desc) {}

func (lc *latencyCollector) Collect(ch chan<- prometheus.Metric) {
	for _, e := range lc.repo.Index(true) {
		lc.mu.Lock()
		ml := lc.models[modelKey{e.Name, e.Version}]
		lc.mu.Unlock()
		if ml != nil {
			ml.collect(ch)
		}
	}
}

// Observer returns the batcher observer for a model version that is loading (repository.Options.Observer
// calls it once per load): it feeds the version's latency summaries and histograms when --metrics-config
// enables them, and the request's trace when it has one.
func (s *Server) Observer(name string, version int64) batcher.Observer {
	var ml *modelLatency
	if s.latency != nil {
		ml = s.latency.forModel(name, version)
	}
	return func(ctx context.Context, t batcher.Times) {
		if ml != nil {
			ml.observe(&t)
		}
		s.observeTrace(ctx, name, version, &t)
	}
}

package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
)

// failReasons are the reason labels of nv_inference_request_failure; every
// ready model exports all four, zero or not.
var failReasons = [...]batcher.FailReason{batcher.FailRejected, batcher.FailCanceled, batcher.FailBackend, batcher.FailOther}

var (
	modelLabels = []string{"model", "version"}

	descSuccess = prometheus.NewDesc("nv_inference_request_success",
		"Number of successful inference requests, all batch sizes", modelLabels, nil)
	descFailure = prometheus.NewDesc("nv_inference_request_failure",
		"Number of failed inference requests, all batch sizes", append(modelLabels, "reason"), nil)
	descCount = prometheus.NewDesc("nv_inference_count",
		"Number of inferences performed (does not include cached requests)", modelLabels, nil)
	descExec = prometheus.NewDesc("nv_inference_exec_count",
		"Number of model executions performed (does not include cached requests)", modelLabels, nil)
	descPending = prometheus.NewDesc("nv_inference_pending_request_count",
		"Instantaneous number of pending requests awaiting execution per-model.", modelLabels, nil)
	descReqDur = prometheus.NewDesc("nv_inference_request_duration_us",
		"Cumulative inference request duration in microseconds (includes cached requests)", modelLabels, nil)
	descQueue = prometheus.NewDesc("nv_inference_queue_duration_us",
		"Cumulative inference queuing duration in microseconds (includes cached requests)", modelLabels, nil)
	descCIn = prometheus.NewDesc("nv_inference_compute_input_duration_us",
		"Cumulative compute input duration in microseconds (does not include cached requests)", modelLabels, nil)
	descCInfer = prometheus.NewDesc("nv_inference_compute_infer_duration_us",
		"Cumulative compute inference duration in microseconds (does not include cached requests)", modelLabels, nil)
	descCOut = prometheus.NewDesc("nv_inference_compute_output_duration_us",
		"Cumulative inference compute output duration in microseconds (does not include cached requests)", modelLabels, nil)
	descLoad = prometheus.NewDesc("nv_model_load_duration_secs",
		"Model load time in seconds, warm-up included", modelLabels, nil)
	descBisect = prometheus.NewDesc("nv_inference_batch_bisect_total",
		"Number of batches that failed whole and were re-run in halves to find the requests at fault", modelLabels, nil)
	descBisectRuns = prometheus.NewDesc("nv_inference_batch_bisect_runs_total",
		"Number of extra model executions those bisections made", modelLabels, nil)
	descAlone = prometheus.NewDesc("nv_inference_request_failed_alone_total",
		"Number of requests that failed on their own after a bisection (guilty: blamed with a 400; else a 500)",
		append(modelLabels, "blame"), nil)
	descWarmup = prometheus.NewDesc("nv_model_warmup_duration_secs",
		"Model warm-up time in seconds (model_warmup samples and the model kind's own warm-up)", modelLabels, nil)
	descAdDecisions = prometheus.NewDesc("nv_batcher_adaptive_decisions_total",
		"Number of times the adaptive batching policy weighed whether a batch leaves now", modelLabels, nil)
	descAdWaits = prometheus.NewDesc("nv_batcher_adaptive_waits_total",
		"Number of those decisions that held the batch back for requests expected to come", modelLabels, nil)
	descAdCost = prometheus.NewDesc("nv_batcher_adaptive_cost_us",
		"The execution cost the adaptive policy learned, t(b, L) = fixed + b*per_sample + L*per_token, in microseconds",
		append(modelLabels, "term"), nil)
)

// loadTimer is a Model that says how long it took to load and to warm up before it was READY (the
// repository's models do); the collector exports those as gauges.
type loadTimer interface {
	LoadDuration() time.Duration
	WarmupDuration() time.Duration
}

// bisecter is a Model whose kind bisects failed batches (backend.BisectStatser; the repository's models
// forward it); the collector exports its counts.
type bisecter interface {
	BisectStats() backend.BisectStats
}

// modelCollector reads every ready model's batcher statistics at scrape
// time, so the metrics and the statistics extension share one source.
// With counters off (--metrics-config counter_latencies=false) the five
// cumulative latency counters are left out.
type modelCollector struct {
	repo     Repository
	counters bool
}

func (mc *modelCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSuccess, descFailure, descCount, descExec, descPending, descLoad, descWarmup,
		descBisect, descBisectRuns, descAlone, descAdDecisions, descAdWaits, descAdCost} {
		ch <- d
	}
	if mc.counters {
		for _, d := range []*prometheus.Desc{descReqDur, descQueue, descCIn, descCInfer, descCOut} {
			ch <- d
		}
	}
}

func (mc *modelCollector) Collect(ch chan<- prometheus.Metric) {
	for _, e := range mc.repo.Index(true) {
		if e.Version <= 0 {
			continue
		}
		m, err := mc.repo.Model(e.Name, e.Version)
		if err != nil || !m.Ready() {
			continue
		}
		st := m.Stats()
		name, ver := m.Name(), strconv.FormatInt(m.Version(), 10)
		counter := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, name, ver)
		}
		us := func(d time.Duration) float64 { return float64(d / time.Microsecond) }
		counter(descSuccess, float64(st.Success.Count))
		for _, r := range failReasons {
			ch <- prometheus.MustNewConstMetric(descFailure, prometheus.CounterValue, float64(st.Failures[r]), name, ver, string(r))
		}
		counter(descCount, float64(st.InferenceCount))
		counter(descExec, float64(st.ExecutionCount))
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(st.Pending), name, ver)
		if a := st.Adaptive; a.Enabled {
			counter(descAdDecisions, float64(a.Decisions))
			counter(descAdWaits, float64(a.Waits))
			for _, t := range []struct {
				term string
				v    time.Duration
			}{{"fixed", a.Fixed}, {"per_sample", a.PerSample}, {"per_token", a.PerToken}} {
				ch <- prometheus.MustNewConstMetric(descAdCost, prometheus.GaugeValue, float64(t.v)/float64(time.Microsecond), name, ver, t.term)
			}
		}
		if b, ok := m.(bisecter); ok {
			bs := b.BisectStats()
			counter(descBisect, float64(bs.Batches))
			counter(descBisectRuns, float64(bs.Runs))
			ch <- prometheus.MustNewConstMetric(descAlone, prometheus.CounterValue, float64(bs.Guilty), name, ver, "guilty")
			ch <- prometheus.MustNewConstMetric(descAlone, prometheus.CounterValue, float64(bs.Alone-bs.Guilty), name, ver, "model")
		}
		if !mc.counters {
			continue
		}
		counter(descReqDur, us(st.Success.Total))
		counter(descQueue, us(st.Queue.Total))
		counter(descCIn, us(st.ComputeInput.Total))
		counter(descCInfer, us(st.ComputeInfer.Total))
		counter(descCOut, us(st.ComputeOutput.Total))
		if lt, ok := m.(loadTimer); ok {
			ch <- prometheus.MustNewConstMetric(descLoad, prometheus.GaugeValue, lt.LoadDuration().Seconds(), name, ver)
			ch <- prometheus.MustNewConstMetric(descWarmup, prometheus.GaugeValue, lt.WarmupDuration().Seconds(), name, ver)
		}
	}
}

// metricsHandler serves GET /metrics (a trailing slash is allowed); other
// methods get 405 and other paths 404.
func (s *Server) metricsHandler() http.Handler {
	prom := promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" && r.URL.Path != "/metrics/" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"Not Found"}`))
			return
		}
		if r.Method != http.MethodGet {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMethodNotAllowed)
			_, _ = w.Write([]byte(`{"error":"Method Not Allowed"}`))
			return
		}
		// Triton serves the plain text format; ask promhttp for it.
		r.Header.Set("Accept", "text/plain")
		r.Header.Del("Accept-Encoding")
		prom.ServeHTTP(w, r)
	})
}

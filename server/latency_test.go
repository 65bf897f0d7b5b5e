package server

import (
	"context"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
)

func metricsServer(t *testing.T, args ...string) (*Server, *batchedRepo) {
	t.Helper()
	cfg, err := ParseMetricsConfig(args)
	if err != nil {
		t.Fatal(err)
	}
	repo := &batchedRepo{fakeRepo: &fakeRepo{}}
	s := newTestServer(t, repo, Options{Metrics: &cfg})
	repo.add(t, s, simpleModel())
	return s, repo
}

// With summaries and histograms on, /metrics exposes Triton's five summary families and the five
// histograms, per model version, fed per request: each _count is nv_inference_request_success, each
// summary _sum is its duration counter (within the per-request truncation to µs), and the compute
// histograms hold exactly the executor's reported times.
func TestLatencySummariesAndHistograms(t *testing.T) {
	s, _ := metricsServer(t, "summary_latencies=true", "histogram_latencies=true", "histogram_buckets_ms=0.15,1,5,1000")
	const n = 20
	inferN(t, s, n)
	fams := scrape(t, s)
	success := series(fams, "nv_inference_request_success", "simple").GetCounter().GetValue()
	if success != n {
		t.Fatalf("nv_inference_request_success = %v, want %d", success, n)
	}
	counters := []string{"nv_inference_request_duration_us", "nv_inference_queue_duration_us", "nv_inference_compute_input_duration_us",
		"nv_inference_compute_infer_duration_us", "nv_inference_compute_output_duration_us"}
	for i, st := range stages {
		m := series(fams, st.summary, "simple")
		if m == nil || fams[st.summary].GetType() != dto.MetricType_SUMMARY {
			t.Fatalf("%s: no summary for simple/1 (%v)", st.summary, fams[st.summary])
		}
		sum := m.GetSummary()
		var qs []float64
		for _, q := range sum.GetQuantile() {
			qs = append(qs, q.GetQuantile())
		}
		if !reflect.DeepEqual(qs, []float64{0.5, 0.9, 0.95, 0.99, 0.999}) {
			t.Errorf("%s quantiles %v, want Triton's defaults", st.summary, qs)
		}
		if sum.GetSampleCount() != n {
			t.Errorf("%s_count = %d, want nv_inference_request_success %d", st.summary, sum.GetSampleCount(), n)
		}
		counter := series(fams, counters[i], "simple").GetCounter().GetValue()
		if d := counter - sum.GetSampleSum(); d < 0 || d > n {
			t.Errorf("%s_sum = %v, %s = %v: want equal within %d µs of truncation", st.summary, sum.GetSampleSum(), counters[i], counter, n)
		}
		h := series(fams, st.histogram, "simple")
		if h == nil || fams[st.histogram].GetType() != dto.MetricType_HISTOGRAM {
			t.Fatalf("%s: no histogram for simple/1", st.histogram)
		}
		var bounds []float64
		for _, b := range h.GetHistogram().GetBucket() {
			bounds = append(bounds, b.GetUpperBound())
		}
		if !reflect.DeepEqual(bounds, []float64{0.15, 1, 5, 1000, math.Inf(1)}) || h.GetHistogram().GetSampleCount() != n {
			t.Errorf("%s: bounds %v count %d", st.histogram, bounds, h.GetHistogram().GetSampleCount())
		}
	}
	// The executor reports 0.1 ms input, 1 ms infer and 0.2 ms output per batch: every request lands in the
	// bucket of its own stage, and the sums are exact.
	for name, want := range map[string]struct {
		sum     float64
		buckets []uint64
	}{
		"nv_inference_compute_input_histogram_ms":  {0.1 * n, []uint64{n, n, n, n, n}},
		"nv_inference_compute_infer_histogram_ms":  {1.0 * n, []uint64{0, n, n, n, n}},
		"nv_inference_compute_output_histogram_ms": {0.2 * n, []uint64{0, n, n, n, n}},
	} {
		h := series(fams, name, "simple").GetHistogram()
		var got []uint64
		for _, b := range h.GetBucket() {
			got = append(got, b.GetCumulativeCount())
		}
		if math.Abs(h.GetSampleSum()-want.sum) > 1e-9 || !slices.Equal(got, want.buckets) {
			t.Errorf("%s: sum %v buckets %v, want %v %v", name, h.GetSampleSum(), got, want.sum, want.buckets)
		}
	}
}

func TestLatencyMetricsConfig(t *testing.T) {
	s, _ := metricsServer(t) // Triton's default: counters only
	inferN(t, s, 2)
	fams := scrape(t, s)
	for name := range fams {
		if strings.Contains(name, "_summary_") || strings.Contains(name, "_histogram_") {
			t.Errorf("%s exported without --metrics-config asking for it", name)
		}
	}
	if series(fams, "nv_inference_request_duration_us", "simple") == nil {
		t.Error("the duration counters are missing by default")
	}

	s, repo := metricsServer(t, "counter_latencies=false", "summary_latencies=true", "summary_quantiles=0.5:0.05,0.99:0.001")
	failing := identityModel("failing_batch", "FP32", []int64{1}, 8)
	failing.infer = func(*backend.Request) (*backend.Response, error) {
		return nil, backend.Errorf(backend.CodeInternal, "boom")
	}
	repo.add(t, s, failing)
	inferN(t, s, 3)
	body := `{"inputs":[{"name":"INPUT0","shape":[1,1],"datatype":"FP32","data":[1]}]}`
	if r := do(t, s.HTTPHandler(), "POST", "/v2/models/failing_batch/infer", []byte(body)); r.code == 200 {
		t.Fatal("the failing model answered")
	}
	fams = scrape(t, s)
	if fams["nv_inference_request_duration_us"] != nil || fams["nv_inference_request_success"] == nil {
		t.Error("counter_latencies=false must drop the duration counters and keep the counts")
	}
	q := series(fams, "nv_inference_queue_summary_us", "simple").GetSummary()
	if len(q.GetQuantile()) != 2 || q.GetQuantile()[0].GetQuantile() != 0.5 || q.GetQuantile()[1].GetQuantile() != 0.99 || q.GetSampleCount() != 3 {
		t.Errorf("queue summary %v: want quantiles 0.5 and 0.99 over 3 requests", q)
	}
	if f := series(fams, "nv_inference_request_summary_us", "failing_batch"); f.GetSummary().GetSampleCount() != 0 {
		t.Errorf("a failed request was observed: %v", f)
	}
	// A version that is not ready is not exported; loading it again starts afresh.
	repo.fakeRepo.models["simple"][1].notReady = true
	if series(scrape(t, s), "nv_inference_queue_summary_us", "simple") != nil {
		t.Error("an unloaded version's summaries are still exported")
	}
	repo.fakeRepo.models["simple"][1].notReady = false
	s.Observer("simple", 1)
	if c := series(scrape(t, s), "nv_inference_queue_summary_us", "simple").GetSummary().GetSampleCount(); c != 0 {
		t.Errorf("a reloaded version's summary counts %d old requests", c)
	}
}

func TestParseMetricsConfig(t *testing.T) {
	got, err := ParseMetricsConfig([]string{",summary_latencies=true", "summary_quantiles=0.5:0.05, 0.9:0.01", "histogram_latencies=1",
		"histogram_buckets_ms=1,10", "counter_latencies=false"})
	want := MetricsConfig{SummaryLatencies: true, SummaryQuantiles: []Quantile{{0.5, 0.05}, {0.9, 0.01}},
		HistogramLatencies: true, HistogramBuckets: []float64{1, 10}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%+v %v", got, err)
	}
	if got, err := ParseMetricsConfig(nil); err != nil || !reflect.DeepEqual(got, DefaultMetricsConfig()) {
		t.Fatalf("no values: %+v %v", got, err)
	}
	for _, tc := range []struct{ arg, msg string }{
		{"summary_latencies", "want setting=value"},
		{"summary_latencies=yes", "summary_latencies must be true or false"},
		{"gpu,summary_latencies=true", `unknown metrics group "gpu"`},
		{"colour=red", `unknown setting "colour"`},
		{"summary_quantiles=0.5", "has no ':'"},
		{"summary_quantiles=1.5:0.1", "must be a quantile in (0, 1)"},
		{"summary_quantiles=0.5:1", "an error in [0, 1)"},
		{"summary_quantiles=0.5:0.1,0.5:0.01", "quantile 0.5 given twice"},
		{"summary_quantiles=", "has no ':'"},
		{"histogram_buckets_ms=0", "not a positive number"},
		{"histogram_buckets_ms=1,+Inf", "not a positive number"},
		{"histogram_buckets_ms=NaN", "not a positive number"},
		{"histogram_buckets_ms=5,1", "bounds must increase"},
		{"histogram_buckets_ms=", "not a positive number"},
	} {
		if _, err := ParseMetricsConfig([]string{tc.arg}); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: %v, want an error containing %q", tc.arg, err, tc.msg)
		}
	}
}

// FuzzParseMetricsConfig: a --metrics-config value is refused or gives a configuration the Prometheus
// client accepts (it panics on bad objectives or buckets).
func FuzzParseMetricsConfig(f *testing.F) {
	for _, s := range []string{"summary_quantiles=0.5:0.05,0.9:0.01", "histogram_buckets_ms=0.1,1,10", ",counter_latencies=false", "a,b=c=d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		cfg, err := ParseMetricsConfig([]string{"summary_latencies=true", "histogram_latencies=true", arg})
		if err != nil {
			return
		}
		newModelLatency(&cfg, "m", 1) // panics on what Prometheus refuses
		for i := 1; i < len(cfg.HistogramBuckets); i++ {
			if !(cfg.HistogramBuckets[i] > cfg.HistogramBuckets[i-1]) {
				t.Fatalf("buckets %v", cfg.HistogramBuckets)
			}
		}
	})
}

// BenchmarkObserver is the per-request cost of Server.Observer on the batcher's hot path: Triton's default
// (counters only: the observer has nothing to feed), and with the five summaries and five histograms on.
// Compare the two in the same run.
//
//	go test -run '^$' -bench Observer -benchmem ./server/
func BenchmarkObserver(b *testing.B) {
	now := time.Now()
	t := batcher.Times{RequestStart: now, QueueStart: now.Add(time.Microsecond), ComputeStart: now.Add(300 * time.Microsecond),
		ComputeInputEnd: now.Add(400 * time.Microsecond), ComputeOutputStart: now.Add(1400 * time.Microsecond),
		ComputeEnd: now.Add(1600 * time.Microsecond), RequestEnd: now.Add(1700 * time.Microsecond),
		ComputeInput: 100 * time.Microsecond, ComputeInfer: time.Millisecond, ComputeOutput: 200 * time.Microsecond, Size: 1, BatchSize: 8}
	for _, tc := range []struct {
		name string
		args []string
	}{{"counters", nil}, {"summaries+histograms", []string{"summary_latencies=true", "histogram_latencies=true"}}} {
		b.Run(tc.name, func(b *testing.B) {
			cfg, err := ParseMetricsConfig(tc.args)
			if err != nil {
				b.Fatal(err)
			}
			s, err := New(Options{Metrics: &cfg}, &fakeRepo{}, nil)
			if err != nil {
				b.Fatal(err)
			}
			obs := s.Observer("m", 1)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				obs(ctx, t)
			}
		})
	}
}

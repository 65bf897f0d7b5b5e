package server

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// MetricsConfig is what tritonserver's --metrics-config chooses: which latency families /metrics exports
// (docs/triton-batcher-and-kserve-v2.md §4.3). The zero value is not Triton's default; use
// DefaultMetricsConfig or ParseMetricsConfig.
type MetricsConfig struct {
	// CounterLatencies exports the cumulative nv_inference_*_duration_us counters (default on).
	CounterLatencies bool
	// SummaryLatencies exports the nv_inference_*_summary_us summaries (default off).
	SummaryLatencies bool
	// SummaryQuantiles are the summaries' quantiles and their allowed errors.
	SummaryQuantiles []Quantile
	// HistogramLatencies exports the nv_inference_*_histogram_ms histograms (default off).
	HistogramLatencies bool
	// HistogramBuckets are the histograms' upper bounds in milliseconds, increasing.
	HistogramBuckets []float64
}

// Quantile is one summary quantile and the error allowed in its estimate.
type Quantile struct{ Q, Err float64 }

// DefaultMetricsConfig is Triton's: counters on, summaries and histograms off, the summary quantiles of
// Triton's core (0.5, 0.9, 0.95, 0.99, 0.999) and ofaserve's histogram buckets (0.1 ms to 10 s).
func DefaultMetricsConfig() MetricsConfig {
	return MetricsConfig{
		CounterLatencies: true,
		SummaryQuantiles: []Quantile{{0.5, 0.05}, {0.9, 0.01}, {0.95, 0.001}, {0.99, 0.001}, {0.999, 0.001}},
		HistogramBuckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000},
	}
}

// ParseMetricsConfig reads --metrics-config values over DefaultMetricsConfig, in order. Each value is
// "setting=value", or "group,setting=value" with the global group "" only, as tritonserver spells them:
//
//	counter_latencies=true|false
//	summary_latencies=true|false
//	summary_quantiles=<q>:<error>,<q>:<error>,...   (0 < q < 1, 0 <= error < 1)
//	histogram_latencies=true|false
//	histogram_buckets_ms=<ms>,<ms>,...              (ofaserve's: increasing positive upper bounds)
//
// Unlike Triton, which logs and skips a malformed quantile, it refuses every malformed or unknown setting.
func ParseMetricsConfig(values []string) (MetricsConfig, error) {
	c := DefaultMetricsConfig()
	for _, v := range values {
		if err := c.set(v); err != nil {
			return MetricsConfig{}, fmt.Errorf("--metrics-config %q: %w", v, err)
		}
	}
	return c, nil
}

func (c *MetricsConfig) set(arg string) error {
	eq := strings.IndexByte(arg, '=')
	if eq < 0 {
		return fmt.Errorf("want setting=value")
	}
	key, val := arg[:eq], arg[eq+1:]
	// A comma before the '=' separates a group; the value may hold commas of its own.
	if i := strings.IndexByte(key, ','); i >= 0 {
		if group := key[:i]; group != "" {
			return fmt.Errorf("unknown metrics group %q (only global settings exist)", group)
		}
		key = key[i+1:]
	}
	switch key {
	case "counter_latencies", "summary_latencies", "histogram_latencies":
		b, err := strconv.ParseBool(val)
		if err != nil {
			return fmt.Errorf("%s must be true or false, not %q", key, val)
		}
		switch key {
		case "counter_latencies":
			c.CounterLatencies = b
		case "summary_latencies":
			c.SummaryLatencies = b
		default:
			c.HistogramLatencies = b
		}
	case "summary_quantiles":
		q, err := parseQuantiles(val)
		if err != nil {
			return err
		}
		c.SummaryQuantiles = q
	case "histogram_buckets_ms":
		b, err := parseBuckets(val)
		if err != nil {
			return err
		}
		c.HistogramBuckets = b
	default:
		return fmt.Errorf("unknown setting %q (counter_latencies, summary_latencies, summary_quantiles, histogram_latencies, histogram_buckets_ms)", key)
	}
	return nil
}

// parseQuantiles reads "<q>:<error>,..." (Triton's summary_quantiles).
func parseQuantiles(s string) ([]Quantile, error) {
	var out []Quantile
	for _, pair := range strings.Split(s, ",") {
		qs, es, ok := strings.Cut(strings.TrimSpace(pair), ":")
		if !ok {
			return nil, fmt.Errorf("summary_quantiles: %q has no ':' (want <quantile>:<error>)", pair)
		}
		q, err1 := strconv.ParseFloat(qs, 64)
		e, err2 := strconv.ParseFloat(es, 64)
		if err1 != nil || err2 != nil || !(q > 0 && q < 1) || !(e >= 0 && e < 1) {
			return nil, fmt.Errorf("summary_quantiles: %q must be a quantile in (0, 1) and an error in [0, 1)", pair)
		}
		if slices.ContainsFunc(out, func(x Quantile) bool { return x.Q == q }) {
			return nil, fmt.Errorf("summary_quantiles: quantile %v given twice", q)
		}
		out = append(out, Quantile{q, e})
	}
	return out, nil
}

// parseBuckets reads increasing positive finite upper bounds "<ms>,<ms>,...".
func parseBuckets(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		b, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || !(b > 0) || math.IsInf(b, 0) {
			return nil, fmt.Errorf("histogram_buckets_ms: %q is not a positive number of milliseconds", f)
		}
		if len(out) > 0 && b <= out[len(out)-1] {
			return nil, fmt.Errorf("histogram_buckets_ms: bounds must increase (%v after %v)", b, out[len(out)-1])
		}
		out = append(out, b)
	}
	return out, nil
}

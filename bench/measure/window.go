// Package measure turns a stream of timed requests into perf_analyzer's
// figures (docs/triton-batcher-and-kserve-v2.md §6): it drives load (a closed loop of N outstanding requests,
// or an open loop at a constant or Poisson rate), cuts the run into time
// windows, keeps only requests that start and end inside a window, computes
// throughput and nearest-rank percentiles, differences the server's
// statistics across each window, and repeats windows until three in a row
// agree within the stability percentage. It does not know the protocol: a
// request is a function that returns a kserve.Outcome.
package measure

import (
	"math"
	"sort"
	"time"
)

// Record is one finished request. Start and End are offsets from the run's
// epoch (monotonic).
type Record struct {
	Start, End time.Duration
	Send, Recv time.Duration
	Status     string // "" for success
}

// Percentile returns the p-th percentile of sorted latencies with
// perf_analyzer's nearest-rank rule: index = floor(p/100*(n-1) + 0.5).
// It returns 0 for no samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	idx := int(math.Floor(p/100*float64(n-1) + 0.5))
	if idx < 0 {
		idx = 0
	}
	if idx >= n {
		idx = n - 1
	}
	return sorted[idx]
}

// Window is what one measurement window (or several merged) measured.
type Window struct {
	Start    time.Duration `json:"start_ns"`
	Duration time.Duration `json:"duration_ns"`
	// Requests counts successful requests that started and ended inside the
	// window; throughput and latencies use only these.
	Requests   int     `json:"requests"`
	Inferences int     `json:"inferences"`
	Throughput float64 `json:"throughput_infer_per_sec"`
	// SendRate is requests sent per second (any outcome, started in window).
	SendRate float64 `json:"send_rate"`

	AvgLatency time.Duration `json:"avg_latency_ns"`
	StdLatency time.Duration `json:"std_latency_ns"`
	P50        time.Duration `json:"p50_ns"`
	P90        time.Duration `json:"p90_ns"`
	P95        time.Duration `json:"p95_ns"`
	P99        time.Duration `json:"p99_ns"`
	// Extra holds the --percentile value when it is not one of the above.
	Extra    time.Duration  `json:"extra_percentile_ns,omitempty"`
	AvgSend  time.Duration  `json:"avg_client_send_ns"`
	AvgRecv  time.Duration  `json:"avg_client_recv_ns"`
	Errors   map[string]int `json:"errors,omitempty"`
	Server   *ServerSplit   `json:"server,omitempty"`
	ServerEr string         `json:"server_stats_error,omitempty"`
}

// Summarize computes the client-side figures of the window [start, end) over
// recs. batch is the batch size of every request; extraPct, when > 0, is an
// additional percentile to compute. Errors count failed requests that ended
// inside the window, by status.
func Summarize(recs []Record, start, end time.Duration, batch int, extraPct float64) Window {
	w := Window{Start: start, Duration: end - start}
	lat := make([]time.Duration, 0, len(recs))
	var send, recv time.Duration
	sent := 0
	for _, r := range recs {
		if r.Start >= start && r.Start < end {
			sent++
		}
		if r.Status != "" {
			if r.End >= start && r.End < end {
				if w.Errors == nil {
					w.Errors = map[string]int{}
				}
				w.Errors[r.Status]++
			}
			continue
		}
		if r.Start < start || r.End > end {
			continue
		}
		lat = append(lat, r.End-r.Start)
		send += r.Send
		recv += r.Recv
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	w.Requests = len(lat)
	w.Inferences = len(lat) * batch
	secs := w.Duration.Seconds()
	if secs > 0 {
		w.Throughput = float64(w.Inferences) / secs
		w.SendRate = float64(sent) / secs
	}
	if n := len(lat); n > 0 {
		var sum float64
		for _, l := range lat {
			sum += float64(l)
		}
		mean := sum / float64(n)
		var sq float64
		for _, l := range lat {
			d := float64(l) - mean
			sq += d * d
		}
		w.AvgLatency = time.Duration(mean)
		w.StdLatency = time.Duration(math.Sqrt(sq / float64(n)))
		w.P50 = Percentile(lat, 50)
		w.P90 = Percentile(lat, 90)
		w.P95 = Percentile(lat, 95)
		w.P99 = Percentile(lat, 99)
		if extraPct > 0 {
			w.Extra = Percentile(lat, extraPct)
		}
		w.AvgSend = send / time.Duration(n)
		w.AvgRecv = recv / time.Duration(n)
	}
	return w
}

// StabilityLatency is the latency the stability rule compares: the average,
// or the --percentile value when one was asked for.
func (w *Window) StabilityLatency(pct float64) time.Duration {
	if pct > 0 {
		return w.Extra
	}
	return w.AvgLatency
}

// Stable reports whether the last three windows agree: for both throughput
// and latency, max/min over them stays within 1+pct/100, where pct is
// --stability-percentage. A window with no completed request is never
// stable. latencyPct selects the latency as in StabilityLatency.
func Stable(ws []Window, pct, latencyPct float64) bool {
	if len(ws) < 3 {
		return false
	}
	last := ws[len(ws)-3:]
	minT, maxT := math.Inf(1), 0.0
	minL, maxL := math.Inf(1), 0.0
	for i := range last {
		t := last[i].Throughput
		l := float64(last[i].StabilityLatency(latencyPct))
		if last[i].Requests == 0 || t <= 0 || l <= 0 {
			return false
		}
		minT, maxT = math.Min(minT, t), math.Max(maxT, t)
		minL, maxL = math.Min(minL, l), math.Max(maxL, l)
	}
	lim := 1 + pct/100
	return maxT/minT <= lim && maxL/minL <= lim
}

// Package report writes ofabench results: the JSON document that keeps
// every window, perf_analyzer's CSV (one row per level, sorted by
// throughput, values in microseconds), and a PNG of p99 latency against
// throughput with one curve per labelled run, merged from any number of
// JSON results.
package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strconv"
	"time"

	"github.com/ofaserve/ofaserve/bench/measure"
)

// Result is one ofabench run: its configuration and its levels.
type Result struct {
	Label    string          `json:"label"`
	Target   string          `json:"target"`
	Protocol string          `json:"protocol"` // http or grpc
	Format   string          `json:"input_tensor_format"`
	Model    string          `json:"model"`
	Batch    int             `json:"batch_size"`
	Workload string          `json:"workload"`
	Settings Settings        `json:"settings"`
	Machine  Machine         `json:"machine"`
	Started  time.Time       `json:"started"`
	Levels   []measure.Level `json:"levels"`
	// Device is set when the model is simulated: the device's cost, for device efficiency.
	Device *Device `json:"simulated_device,omitempty"`
}

// Settings records the measurement rules of a run.
type Settings struct {
	IntervalMS   int64   `json:"measurement_interval_ms"`
	StabilityPct float64 `json:"stability_percentage"`
	MaxTrials    int     `json:"max_trials"`
	Percentile   float64 `json:"percentile,omitempty"`
	Distribution string  `json:"request_distribution,omitempty"`
}

// Machine describes where the client ran.
type Machine struct {
	OS    string `json:"os"`
	Arch  string `json:"arch"`
	CPUs  int    `json:"cpus"`
	Go    string `json:"go"`
	Host  string `json:"host,omitempty"`
	Extra string `json:"extra,omitempty"`
}

// ThisMachine describes the machine the harness runs on.
func ThisMachine() Machine {
	h, _ := os.Hostname()
	return Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), Go: runtime.Version(), Host: h}
}

// WriteJSON writes r as indented JSON.
func WriteJSON(w io.Writer, r *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("writing JSON result: %w", err)
	}
	return nil
}

// ReadJSON reads a result written by WriteJSON.
func ReadJSON(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading result: %w", err)
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("reading result %s: %w", path, err)
	}
	return &r, nil
}

// CSVColumns are perf_analyzer's CSV columns, in its order.
var CSVColumns = []string{
	"Concurrency", "Inferences/Second", "Client Send", "Network+Server Send/Recv",
	"Server Queue", "Server Compute Input", "Server Compute Infer", "Server Compute Output",
	"Client Recv", "p50 latency", "p90 latency", "p95 latency", "p99 latency",
}

// VerboseColumns are appended with --verbose-csv.
var VerboseColumns = []string{
	"Avg latency", "Server Overhead", "Avg Batch", "Errors", "Stable",
}

func us(d time.Duration) string { return strconv.FormatInt(d.Microseconds(), 10) }

// WriteCSV writes one row per level, sorted by increasing throughput. The
// first column is "Request Rate" when the levels are request rates.
func WriteCSV(w io.Writer, levels []measure.Level, verbose bool) error {
	cols := append([]string(nil), CSVColumns...)
	if len(levels) > 0 && levels[0].Mode == "request_rate" {
		cols[0] = "Request Rate"
	}
	if verbose {
		cols = append(cols, VerboseColumns...)
	}
	sorted := append([]measure.Level(nil), levels...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Result.Throughput < sorted[j].Result.Throughput })
	cw := csv.NewWriter(w)
	if err := cw.Write(cols); err != nil {
		return err
	}
	for _, l := range sorted {
		r := l.Result
		var queue, cin, cinf, cout, over time.Duration
		if s := r.Server; s != nil {
			queue, cin, cinf, cout, over = s.Queue, s.ComputeInput, s.ComputeInfer, s.ComputeOutput, s.Overhead
		}
		netw := r.AvgLatency - r.AvgSend - r.AvgRecv - (queue + cin + cinf + cout)
		if netw < 0 {
			netw = 0
		}
		row := []string{
			strconv.FormatFloat(l.Value, 'g', -1, 64),
			strconv.FormatFloat(r.Throughput, 'f', 2, 64),
			us(r.AvgSend), us(netw), us(queue), us(cin), us(cinf), us(cout), us(r.AvgRecv),
			us(r.P50), us(r.P90), us(r.P95), us(r.P99),
		}
		if verbose {
			errs := 0
			for _, n := range r.Errors {
				errs += n
			}
			row = append(row, us(r.AvgLatency), us(over), strconv.FormatFloat(r.Server.AvgBatch(), 'f', 2, 64),
				strconv.Itoa(errs), strconv.FormatBool(l.Stable))
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

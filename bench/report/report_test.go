package report

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/bench/measure"
)

func level(mode string, v, thr float64, p99 time.Duration, srv *measure.ServerSplit) measure.Level {
	return measure.Level{Mode: mode, Value: v, Stable: true, Result: measure.Window{
		Requests: 10, Throughput: thr, AvgLatency: 10 * time.Millisecond,
		AvgSend: 100 * time.Microsecond, AvgRecv: 200 * time.Microsecond,
		P50: 9 * time.Millisecond, P90: 11 * time.Millisecond, P95: 12 * time.Millisecond, P99: p99, Server: srv,
		Errors: map[string]int{"HTTP 503": 2},
	}}
}

func TestCSVColumnsAndOrder(t *testing.T) {
	srv := &measure.ServerSplit{Queue: time.Millisecond, ComputeInput: 500 * time.Microsecond, ComputeInfer: 6 * time.Millisecond,
		ComputeOutput: 100 * time.Microsecond, Overhead: 50 * time.Microsecond, Inferences: 8, Executions: 2}
	levels := []measure.Level{
		level("concurrency", 4, 300, 20*time.Millisecond, srv),
		level("concurrency", 1, 100.5, 12*time.Millisecond, nil),
	}
	var buf bytes.Buffer
	if err := WriteCSV(&buf, levels, false); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	wantHead := "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input," +
		"Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency"
	if strings.Join(rows[0], ",") != wantHead {
		t.Errorf("header %q", rows[0])
	}
	// Sorted by throughput: concurrency 1 first.
	if rows[1][0] != "1" || rows[2][0] != "4" {
		t.Errorf("rows not sorted by throughput: %v", rows)
	}
	// Network = 10000 - 100 - 200 - (1000+500+6000+100) = 2100 us.
	want := []string{"4", "300.00", "100", "2100", "1000", "500", "6000", "100", "200", "9000", "11000", "12000", "20000"}
	if strings.Join(rows[2], ",") != strings.Join(want, ",") {
		t.Errorf("row %v, want %v", rows[2], want)
	}
	// Without server stats the network column is the whole remaining time.
	if rows[1][3] != "9700" {
		t.Errorf("network without server stats %q, want 9700", rows[1][3])
	}

	buf.Reset()
	rate := []measure.Level{level("request_rate", 50, 49, 15*time.Millisecond, srv)}
	if err := WriteCSV(&buf, rate, true); err != nil {
		t.Fatal(err)
	}
	rows, _ = csv.NewReader(&buf).ReadAll()
	if rows[0][0] != "Request Rate" || len(rows[0]) != len(CSVColumns)+len(VerboseColumns) {
		t.Errorf("verbose header %v", rows[0])
	}
	if got := rows[1][len(CSVColumns):]; strings.Join(got, ",") != "10000,50,4.00,2,true" {
		t.Errorf("verbose columns %v", got)
	}
}

func TestJSONRoundTripAndPlot(t *testing.T) {
	dir := t.TempDir()
	a := &Result{Label: "dynamic", Levels: []measure.Level{level("concurrency", 1, 100, 10*time.Millisecond, nil), level("concurrency", 2, 180, 14*time.Millisecond, nil)}}
	b := &Result{Label: "mbs1", Levels: []measure.Level{level("concurrency", 1, 90, 11*time.Millisecond, nil)}}
	c := &Result{Label: "dynamic", Levels: []measure.Level{level("concurrency", 4, 150, 30*time.Millisecond, nil)}}
	var paths []string
	for i, r := range []*Result{a, b, c} {
		p := filepath.Join(dir, string(rune('a'+i))+".json")
		f, _ := os.Create(p)
		if err := WriteJSON(f, r); err != nil {
			t.Fatal(err)
		}
		f.Close()
		paths = append(paths, p)
	}
	var rs []*Result
	for _, p := range paths {
		r, err := ReadJSON(p)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	if rs[0].Levels[1].Result.P99 != 14*time.Millisecond {
		t.Errorf("round trip lost p99: %v", rs[0].Levels[1].Result.P99)
	}
	labels, curves := Curves(rs)
	if len(labels) != 2 || len(curves["dynamic"]) != 3 || len(curves["mbs1"]) != 1 {
		t.Fatalf("labels %v curves %v", labels, curves)
	}
	// Ordered by load (1, 2, 4), not by throughput (100, 180, 150).
	d := curves["dynamic"]
	if d[0].Throughput != 100 || d[1].Throughput != 180 || d[2].Throughput != 150 || d[2].P99ms != 30 || d[2].Load != 4 {
		t.Errorf("merged curve not ordered by load: %v", d)
	}
	png := filepath.Join(dir, "p.png")
	if err := PlotPNG(png, "t", rs); err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(png)
	if err != nil || !bytes.HasPrefix(img, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("not a PNG (%v)", err)
	}
	if err := PlotPNG(png, "t", nil); err == nil {
		t.Error("plotting nothing should fail")
	}
}

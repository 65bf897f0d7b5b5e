package measure

import (
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/bench/kserve"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentileNearestRank(t *testing.T) {
	// 10 samples 1..10 ms: idx = floor(p/100*9 + 0.5).
	var s []time.Duration
	for i := 1; i <= 10; i++ {
		s = append(s, ms(i))
	}
	cases := []struct {
		p    float64
		want time.Duration
	}{
		{0, ms(1)},
		{50, ms(6)},  // 4.5+0.5 = 5.0 -> idx 5
		{90, ms(9)},  // 8.1+0.5 = 8.6 -> idx 8
		{95, ms(10)}, // 8.55+0.5 = 9.05 -> idx 9
		{99, ms(10)},
		{100, ms(10)},
		{10, ms(2)}, // 0.9+0.5 = 1.4 -> idx 1
	}
	for _, c := range cases {
		if got := Percentile(s, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("empty percentile should be 0")
	}
	if got := Percentile([]time.Duration{ms(7)}, 99); got != ms(7) {
		t.Errorf("single sample p99 = %v", got)
	}
	// 101 samples 0..100: p99 -> idx floor(99+0.5) = 99.
	s = s[:0]
	for i := 0; i <= 100; i++ {
		s = append(s, ms(i))
	}
	if got := Percentile(s, 99); got != ms(99) {
		t.Errorf("p99 of 0..100 = %v, want 99ms", got)
	}
}

func TestSummarizeCountsOnlyRequestsInsideWindow(t *testing.T) {
	recs := []Record{
		{Start: ms(5), End: ms(15)},                            // starts before: not valid
		{Start: ms(10), End: ms(20), Send: ms(1), Recv: ms(2)}, // valid, 10ms
		{Start: ms(30), End: ms(60), Send: ms(3), Recv: ms(4)}, // valid, 30ms
		{Start: ms(100), End: ms(120)},                         // ends after window
		{Start: ms(40), End: ms(50), Status: "HTTP 503"},       // error inside
		{Start: ms(40), End: ms(150), Status: "timeout"},       // error ends outside
	}
	w := Summarize(recs, ms(10), ms(110), 4, 0)
	if w.Requests != 2 || w.Inferences != 8 {
		t.Fatalf("requests %d inferences %d, want 2 and 8", w.Requests, w.Inferences)
	}
	if want := 8 / 0.1; w.Throughput < want-1e-9 || w.Throughput > want+1e-9 {
		t.Errorf("throughput %v, want %v", w.Throughput, want)
	}
	if w.AvgLatency != ms(20) || w.StdLatency != ms(10) {
		t.Errorf("avg %v std %v, want 20ms 10ms", w.AvgLatency, w.StdLatency)
	}
	if w.P50 != ms(30) || w.P99 != ms(30) {
		t.Errorf("p50 %v p99 %v", w.P50, w.P99)
	}
	if w.AvgSend != ms(2) || w.AvgRecv != ms(3) {
		t.Errorf("send %v recv %v", w.AvgSend, w.AvgRecv)
	}
	if len(w.Errors) != 1 || w.Errors["HTTP 503"] != 1 {
		t.Errorf("errors %v", w.Errors)
	}
	// sent in window: starts at 10,30,100,40,40 -> 5
	if want := 5 / 0.1; w.SendRate < want-1e-9 || w.SendRate > want+1e-9 {
		t.Errorf("send rate %v want %v", w.SendRate, want)
	}
}

func win(thr float64, lat time.Duration) Window {
	return Window{Requests: 10, Throughput: thr, AvgLatency: lat, Extra: lat * 2}
}

func TestStable(t *testing.T) {
	cases := []struct {
		name string
		ws   []Window
		pct  float64
		want bool
	}{
		{"fewer than three", []Window{win(100, ms(10)), win(100, ms(10))}, 10, false},
		{"identical", []Window{win(100, ms(10)), win(100, ms(10)), win(100, ms(10))}, 10, true},
		{"throughput spread 10% ok", []Window{win(100, ms(10)), win(110, ms(10)), win(105, ms(10))}, 10, true},
		{"throughput spread 11% not", []Window{win(100, ms(10)), win(111, ms(10)), win(105, ms(10))}, 10, false},
		{"latency spread 20% not", []Window{win(100, ms(10)), win(100, ms(12)), win(100, ms(10))}, 10, false},
		{"latency spread 20% ok at 25%", []Window{win(100, ms(10)), win(100, ms(12)), win(100, ms(10))}, 25, true},
		{"only last three count", []Window{win(1, ms(1)), win(100, ms(10)), win(100, ms(10)), win(100, ms(10))}, 10, true},
		{"empty window", []Window{win(100, ms(10)), {}, win(100, ms(10))}, 10, false},
	}
	for _, c := range cases {
		if got := Stable(c.ws, c.pct, 0); got != c.want {
			t.Errorf("%s: Stable = %v, want %v", c.name, got, c.want)
		}
	}
	// With --percentile the Extra latency is compared instead.
	ws := []Window{win(100, ms(10)), win(100, ms(10)), win(100, ms(10))}
	ws[1].Extra = ms(40)
	if Stable(ws, 10, 99) {
		t.Error("percentile spread should make it unstable")
	}
	if !Stable(ws, 10, 0) {
		t.Error("average latencies agree")
	}
}

func dur(c, ns uint64) kserve.Duration {
	return kserve.Duration{Count: kserve.Uint(c), NS: kserve.Uint(ns)}
}

func TestDiff(t *testing.T) {
	before := kserve.ModelStats{Name: "m", Version: "1", InferenceCount: 10, ExecutionCount: 5,
		InferenceStats: kserve.InferStats{Success: dur(10, 1000), Queue: dur(10, 100), ComputeInput: dur(5, 50),
			ComputeInfer: dur(5, 500), ComputeOutput: dur(5, 50)},
		BatchStats: []kserve.BatchStats{{BatchSize: 1, ComputeInfer: dur(3, 0)}, {BatchSize: 4, ComputeInfer: dur(2, 0)}},
	}
	after := before
	after.InferenceCount, after.ExecutionCount = 30, 9
	after.InferenceStats = kserve.InferStats{
		Success: dur(30, 1000+20*5000), Queue: dur(30, 100+20*1000),
		ComputeInput: dur(9, 50+4*100), ComputeInfer: dur(9, 500+4*2000), ComputeOutput: dur(9, 50+4*100),
		Fail: dur(2, 0),
	}
	after.BatchStats = []kserve.BatchStats{{BatchSize: 1, ComputeInfer: dur(3, 0)}, {BatchSize: 4, ComputeInfer: dur(6, 0)}, {BatchSize: 2, ComputeInfer: dur(1, 0)}}
	s, err := Diff(before, after)
	if err != nil {
		t.Fatal(err)
	}
	if s.Requests != 20 || s.Inferences != 20 || s.Executions != 4 || s.Failures != 2 {
		t.Errorf("counts %+v", s)
	}
	if s.AvgRequest != 5000 || s.Queue != 1000 || s.ComputeInput != 100 || s.ComputeInfer != 2000 || s.ComputeOutput != 100 {
		t.Errorf("durations %+v", s)
	}
	if s.Overhead != 5000-1000-100-2000-100 {
		t.Errorf("overhead %v", s.Overhead)
	}
	if len(s.BatchSizes) != 2 || s.BatchSizes[4] != 4 || s.BatchSizes[2] != 1 {
		t.Errorf("batch sizes %v (batch 1 had no new executions and must be absent)", s.BatchSizes)
	}
	if s.AvgBatch() != 5 {
		t.Errorf("avg batch %v", s.AvgBatch())
	}
	// Overhead floors at zero.
	after2 := after
	after2.InferenceStats.Success = dur(30, 1000+20*10)
	if s, _ := Diff(before, after2); s.Overhead != 0 {
		t.Errorf("overhead %v, want 0", s.Overhead)
	}
	// A counter going backwards is an error (server restarted).
	if _, err := Diff(after, before); err == nil {
		t.Error("backwards counters must fail")
	}
	other := after
	other.Name = "x"
	if _, err := Diff(before, other); err == nil {
		t.Error("different models must fail")
	}
}

func TestParseRange(t *testing.T) {
	cases := []struct {
		in   string
		want []float64
	}{
		{"1:64:2x", []float64{1, 2, 4, 8, 16, 32, 64}},
		{"1:50:2x", []float64{1, 2, 4, 8, 16, 32}},
		{"1:4:1", []float64{1, 2, 3, 4}},
		{"4", []float64{4}},
		{"2:6", []float64{2, 3, 4, 5, 6}},
		{"10:30:10", []float64{10, 20, 30}},
		{"0.5:1.5:0.5", []float64{0.5, 1, 1.5}},
	}
	for _, c := range cases {
		got, err := ParseRange(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("%q = %v, want %v", c.in, got, c.want)
			continue
		}
		for i := range got {
			if d := got[i] - c.want[i]; d > 1e-9 || d < -1e-9 {
				t.Errorf("%q = %v, want %v", c.in, got, c.want)
				break
			}
		}
	}
	for _, bad := range []string{"", "0", "-1", "4:2", "1:8:0", "1:8:1x", "a", "1:2:3:4", "1:100000:1"} {
		if _, err := ParseRange(bad); err == nil {
			t.Errorf("%q should fail", bad)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"1:64:2x", "1", "1:8:1", "0.1:1e3:1.01x", "5:5:5", "1:1e300:2x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vs, err := ParseRange(s)
		if err != nil {
			return
		}
		if len(vs) == 0 || len(vs) > 1000 {
			t.Fatalf("%q gave %d values", s, len(vs))
		}
		for i := 1; i < len(vs); i++ {
			if !(vs[i] > vs[i-1]) {
				t.Fatalf("%q not increasing: %v", s, vs)
			}
		}
	})
}

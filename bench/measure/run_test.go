package measure_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/bench/kserve"
	"github.com/ofaserve/ofaserve/bench/kserve/kservetest"
	"github.com/ofaserve/ofaserve/bench/measure"
	"github.com/ofaserve/ofaserve/bench/workload"
)

func settings() measure.Settings {
	return measure.Settings{Interval: 60 * time.Millisecond, StabilityPct: 50, MaxTrials: 6, Batch: 1}
}

// A closed loop of n workers never has more than n requests in flight and
// reaches n.
func TestConcurrencyKeepsNOutstanding(t *testing.T) {
	var inflight, peak atomic.Int64
	do := func(ctx context.Context, _ uint64) kserve.Outcome {
		v := inflight.Add(1)
		for {
			p := peak.Load()
			if v <= p || peak.CompareAndSwap(p, v) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		inflight.Add(-1)
		return kserve.Outcome{}
	}
	r := &measure.Runner{Settings: settings(), Do: do, Budget: measure.NewBudget(0)}
	lvl, err := r.RunConcurrency(context.Background(), 4)
	if err != nil {
		t.Fatal(err)
	}
	if peak.Load() != 4 {
		t.Errorf("peak in flight %d, want 4", peak.Load())
	}
	if lvl.Result.Requests == 0 || lvl.Trials < 1 || lvl.Trials > 6 {
		t.Errorf("level %+v", lvl)
	}
	// 4 workers × ~2 ms service: throughput is bounded by 4/2ms = 2000/s.
	if lvl.Result.Throughput > 2100 {
		t.Errorf("throughput %v exceeds the physical bound", lvl.Result.Throughput)
	}
}

func TestBudgetStopsTheRun(t *testing.T) {
	var n atomic.Int64
	do := func(ctx context.Context, _ uint64) kserve.Outcome {
		n.Add(1)
		time.Sleep(time.Millisecond)
		return kserve.Outcome{}
	}
	b := measure.NewBudget(30)
	s := settings()
	s.Interval = 2 * time.Second // the budget, not the window, must end it
	r := &measure.Runner{Settings: s, Do: do, Budget: b}
	start := time.Now()
	lvl, err := r.RunConcurrency(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if n.Load() != 30 {
		t.Errorf("sent %d requests, budget 30", n.Load())
	}
	if time.Since(start) > 1500*time.Millisecond {
		t.Errorf("run took %v; the budget should end it early", time.Since(start))
	}
	if !lvl.Truncated {
		t.Error("level should be marked truncated")
	}
	if next, _ := r.RunConcurrency(context.Background(), 2); len(next.Windows) != 0 || !next.Truncated {
		t.Error("a spent budget must skip later levels")
	}
}

func TestRequestRateIsOpenLoop(t *testing.T) {
	var n atomic.Int64
	// Service time 20 ms at 200 req/s: a closed loop of one could only do 50/s.
	do := func(ctx context.Context, _ uint64) kserve.Outcome {
		n.Add(1)
		time.Sleep(20 * time.Millisecond)
		return kserve.Outcome{}
	}
	for _, poisson := range []bool{false, true} {
		n.Store(0)
		s := settings()
		s.Interval, s.MaxTrials, s.Poisson, s.Seed = 200*time.Millisecond, 3, poisson, 7
		r := &measure.Runner{Settings: s, Do: do, Budget: measure.NewBudget(0)}
		lvl, err := r.RunRate(context.Background(), 200)
		if err != nil {
			t.Fatal(err)
		}
		sr := lvl.Result.SendRate
		if sr < 120 || sr > 300 {
			t.Errorf("poisson=%v: send rate %v, want about 200", poisson, sr)
		}
		if lvl.Result.Throughput < 100 {
			t.Errorf("poisson=%v: throughput %v, open loop should exceed a closed loop's 50/s", poisson, lvl.Result.Throughput)
		}
	}
}

// End to end against the fake server: every window gets the server-side
// split, batch sizes come from batch_stats, and injected 503s are counted.
func TestEndToEndAgainstFakeServer(t *testing.T) {
	meta := kserve.ModelMetadata{Name: "raw", Inputs: []kserve.TensorMetadata{
		{Name: "IMAGE", Datatype: "FP32", Shape: []int64{-1, 3, 4, 4}},
		{Name: "INPUT_IDS", Datatype: "INT64", Shape: []int64{-1, -1}},
	}}
	srv := kservetest.New(meta, 8)
	defer srv.Close()
	srv.Delay = time.Millisecond
	srv.FailEvery = 10
	for _, binary := range []bool{false, true} {
		c := kserve.NewHTTPClient(srv.URL, 8, 5*time.Second)
		reqs, err := workload.Raw(meta, workload.RawOptions{Batch: 2, Batching: true, Random: true,
			Shapes: map[string][]int64{"INPUT_IDS": {5}}, Count: 3})
		if err != nil {
			t.Fatal(err)
		}
		var preps []*kserve.PreparedHTTP
		for _, rq := range reqs {
			rq.BinaryOutput = binary
			p, err := c.Prepare(rq, binary)
			if err != nil {
				t.Fatal(err)
			}
			preps = append(preps, p)
		}
		s := settings()
		s.Batch = 2
		r := &measure.Runner{Settings: s, Budget: measure.NewBudget(0),
			Do: func(ctx context.Context, seq uint64) kserve.Outcome {
				return c.Infer(ctx, preps[seq%uint64(len(preps))])
			},
			Stats: func(ctx context.Context) (kserve.ModelStats, error) { return c.Stats(ctx, "raw", "") },
		}
		lvl, err := r.RunConcurrency(context.Background(), 2)
		if err != nil {
			t.Fatal(err)
		}
		res := lvl.Result
		if res.Server == nil {
			t.Fatalf("binary=%v: no server split: %s", binary, res.ServerEr)
		}
		if res.Server.ComputeInfer < time.Millisecond {
			t.Errorf("compute infer %v, fake sleeps 1ms", res.Server.ComputeInfer)
		}
		if len(res.Server.BatchSizes) != 1 || res.Server.BatchSizes[2] == 0 {
			t.Errorf("batch sizes %v, want only 2", res.Server.BatchSizes)
		}
		if res.Errors["HTTP 503"] == 0 {
			t.Errorf("errors %v, want some HTTP 503", res.Errors)
		}
		if msg := lvl.ErrorSamples["HTTP 503"]; !strings.Contains(msg, "queue full") {
			t.Errorf("error sample %q should carry the server's message", msg)
		}
		if res.Inferences != 2*res.Requests {
			t.Errorf("inferences %d for %d requests of batch 2", res.Inferences, res.Requests)
		}
		c.Close()
	}
	for _, rec := range srv.Received {
		if got := rec.Inputs["INPUT_IDS"].Shape; len(got) != 2 || got[0] != 2 || got[1] != 5 {
			t.Fatalf("INPUT_IDS shape %v, want [2 5]", got)
		}
		if len(rec.Inputs["IMAGE"].Raw) != 2*3*4*4*4 {
			t.Fatalf("IMAGE has %d bytes", len(rec.Inputs["IMAGE"].Raw))
		}
	}
}

// When no window is stable the result merges the last three windows: it must
// hold (at least) every request those windows counted, whatever the number
// of trials.
func TestUnstableResultMergesLastThreeWindows(t *testing.T) {
	var n atomic.Int64
	do := func(ctx context.Context, _ uint64) kserve.Outcome {
		// Alternate fast and slow phases so no three windows agree at 0.1%.
		if n.Add(1)%50 < 25 {
			time.Sleep(time.Millisecond)
		} else {
			time.Sleep(3 * time.Millisecond)
		}
		return kserve.Outcome{}
	}
	for _, trials := range []int{3, 4, 5} {
		s := settings()
		s.StabilityPct, s.MaxTrials, s.Interval = 0.1, trials, 50*time.Millisecond
		r := &measure.Runner{Settings: s, Do: do, Budget: measure.NewBudget(0)}
		lvl, err := r.RunConcurrency(context.Background(), 2)
		if err != nil {
			t.Fatal(err)
		}
		if lvl.Stable || len(lvl.Windows) != trials {
			t.Fatalf("trials=%d: stable=%v windows=%d", trials, lvl.Stable, len(lvl.Windows))
		}
		sum := 0
		for _, w := range lvl.Windows[trials-3:] {
			sum += w.Requests
		}
		if lvl.Result.Requests < sum {
			t.Errorf("trials=%d: merged result has %d requests, the last three windows %d", trials, lvl.Result.Requests, sum)
		}
	}
}

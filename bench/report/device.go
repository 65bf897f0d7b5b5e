package report

import (
	"fmt"
	"strconv"
	"time"

	"github.com/ofaserve/ofaserve/bench/kserve"
	"github.com/ofaserve/ofaserve/bench/measure"
)

// Device is the cost of a simulated model's device (backend/simulated: t(b, L) = Base + b·PerSample +
// L·PerToken), read from its config, and the best it can do: IdealPerSec = Batch / t(Batch) samples/s at
// its max_batch_size (L taken as 0).
//
// A run's device efficiency is what the device did over IdealPerSec: the samples the server executed in
// the window (its inference_count delta) per second of the window (Executed). The client's throughput is
// a different figure: like perf_analyzer, it counts only the requests that both started and ended inside
// the window, so a closed loop whose latency is a fair share of the window comes out low by up to latency ÷
// window (at c = 64 on t(16) = 60 ms a request waits four batches, 240 ms: 6 % of a 4 s window) although the
// device never stopped. Both are reported; the device's is the one the efficiency targets are about.
type Device struct {
	Base        time.Duration `json:"base_ns"`
	PerSample   time.Duration `json:"per_sample_ns"`
	PerToken    time.Duration `json:"per_token_ns"`
	Batch       int           `json:"batch"`
	IdealPerSec float64       `json:"ideal_samples_per_sec"`
}

// The simulated kind's parameter keys and defaults (backend/simulated; repeated here so that the client
// does not link the server's backends).
var simulatedParams = []struct {
	key string
	def time.Duration
}{
	{"simulated_base_microseconds", 20 * time.Millisecond},
	{"simulated_per_sample_microseconds", 2500 * time.Microsecond},
	{"simulated_per_token_microseconds", 0},
}

// SimulatedDevice returns the device of a model whose platform is "simulated", nil for any other model,
// and an error for a parameter that is not an integer.
func SimulatedDevice(cfg kserve.ModelConfig) (*Device, error) {
	if cfg.Platform != "simulated" {
		return nil, nil
	}
	var v [3]time.Duration
	for i, p := range simulatedParams {
		v[i] = p.def
		if s, ok := cfg.Parameters[p.key]; ok {
			us, err := strconv.ParseInt(s.StringValue, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("simulated model %s: parameter %s: %w", cfg.Name, p.key, err)
			}
			v[i] = time.Duration(us) * time.Microsecond
		}
	}
	d := &Device{Base: v[0], PerSample: v[1], PerToken: v[2], Batch: max(1, cfg.MaxBatchSize)}
	if t := d.Base + time.Duration(d.Batch)*d.PerSample; t > 0 {
		d.IdealPerSec = float64(d.Batch) / t.Seconds()
	}
	return d, nil
}

// Efficiency is a rate (samples/s) over the device's ideal; 0 without an ideal.
func (d *Device) Efficiency(throughput float64) float64 {
	if d == nil || d.IdealPerSec == 0 {
		return 0
	}
	return throughput / d.IdealPerSec
}

// Executed is the rate at which the server executed samples in w (its inference_count delta over w's
// length) and whether w carries the server's statistics to know it.
func Executed(w measure.Window) (float64, bool) {
	if w.Server == nil || w.Duration <= 0 {
		return 0, false
	}
	return float64(w.Server.Inferences) / w.Duration.Seconds(), true
}

package report

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/bench/kserve"
	"github.com/ofaserve/ofaserve/bench/measure"
)

func TestSimulatedDevice(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         *Device
		err          string
	}{
		{"not simulated", `{"name":"m","platform":"pytorch_libtorch","max_batch_size":16}`, nil, ""},
		{"defaults", `{"name":"m","platform":"simulated","max_batch_size":16}`,
			&Device{Base: 20 * time.Millisecond, PerSample: 2500 * time.Microsecond, Batch: 16, IdealPerSec: 16 / 0.060}, ""},
		{"from parameters", `{"name":"m","platform":"simulated","max_batch_size":4,"parameters":{
			"simulated_base_microseconds":{"string_value":"1000"},"simulated_per_sample_microseconds":{"string_value":"250"},
			"simulated_per_token_microseconds":{"string_value":"5"}}}`,
			&Device{Base: time.Millisecond, PerSample: 250 * time.Microsecond, PerToken: 5 * time.Microsecond, Batch: 4, IdealPerSec: 2000}, ""},
		{"bad parameter", `{"name":"m","platform":"simulated","parameters":{"simulated_base_microseconds":{"string_value":"x"}}}`, nil, "simulated_base_microseconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg kserve.ModelConfig
			if err := json.Unmarshal([]byte(tc.config), &cfg); err != nil {
				t.Fatal(err)
			}
			got, err := SimulatedDevice(cfg)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tc.want == nil) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if got == nil {
				return
			}
			if math.Abs(got.IdealPerSec-tc.want.IdealPerSec) > 1e-9 {
				t.Fatalf("ideal %v, want %v", got.IdealPerSec, tc.want.IdealPerSec)
			}
			got.IdealPerSec = tc.want.IdealPerSec
			if *got != *tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if e := got.Efficiency(got.IdealPerSec / 2); math.Abs(e-0.5) > 1e-12 {
				t.Fatalf("efficiency %v, want 0.5", e)
			}
		})
	}
}

// The device's rate comes from the server's executed samples over the window, not from the client's count:
// a window whose client saw fewer requests end inside it still shows the device's full rate.
func TestExecuted(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    measure.Window
		rate float64
		ok   bool
	}{
		{"server counted", measure.Window{Duration: 4 * time.Second, Requests: 1023, Throughput: 255.75,
			Server: &measure.ServerSplit{Inferences: 1040, Executions: 65}}, 260, true},
		{"no server statistics", measure.Window{Duration: 4 * time.Second, Throughput: 255.75}, 0, false},
		{"empty window", measure.Window{Server: &measure.ServerSplit{Inferences: 10}}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rate, ok := Executed(tc.w)
			if ok != tc.ok || math.Abs(rate-tc.rate) > 1e-9 {
				t.Fatalf("Executed = %v, %v; want %v, %v", rate, ok, tc.rate, tc.ok)
			}
		})
	}
}

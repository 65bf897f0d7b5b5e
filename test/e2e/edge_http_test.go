package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/internal/testenv"
)

// edgeModel is a simulated model (raw tensors, a 1 ms device) with issue 14's batching edge: max batch 8,
// preferred 4, a 2 s queue delay, and extra (the priority levels or a DELAY queue policy).
func edgeModel(name, extra string) string {
	return `name: "` + name + `"
platform: "simulated"
max_batch_size: 8
input [{ name: "x" data_type: TYPE_FP32 dims: [2] }]
output [{ name: "logits" data_type: TYPE_FP32 dims: [3] }]
dynamic_batching { preferred_batch_size: [4] max_queue_delay_microseconds: 2000000 ` + extra + ` }
parameters { key: "simulated_base_microseconds" value { string_value: "1000" } }
parameters { key: "simulated_per_sample_microseconds" value { string_value: "0" } }
`
}

// TestPreferredBatchLeavesAsItIsOverHTTP is issue 14's edge over HTTP against bin/ofaserve: a batch that
// reached the preferred size 4 leaves as it is, and the request left over runs after the queue delay, so the
// statistics extension's batch_stats read {4:1, 1:1}, not {5:1}. The priority scenario: bs 2 at 0, bs 1 at
// 0.1 s, bs 2 at priority 1 at 0.3 s. Its DELAY twin: a bs 1 whose DELAY timeout (50 ms) has passed, then
// two bs 2 at 0.15 s.
func TestPreferredBatchLeavesAsItIsOverHTTP(t *testing.T) {
	repo := t.TempDir()
	models := map[string]string{
		"edge_priority": edgeModel("edge_priority", "priority_levels: 2 default_priority_level: 2"),
		"edge_delay":    edgeModel("edge_delay", "default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 50000 }"),
	}
	for name, cfg := range models {
		if err := os.MkdirAll(filepath.Join(repo, name, "1"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(repo, name, "config.pbtxt"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := testenv.Start(env.bin, "/v2/health/ready", 60*time.Second, "--model-repository="+repo, "--allow-gpu-metrics=false")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Stop(stopLimit); err != nil {
			t.Errorf("exit: %v\n%s", err, s.Logs.String())
		}
	}()
	type step struct {
		at         time.Duration
		size, prio int
	}
	for _, c := range []struct {
		model string
		steps []step
	}{
		{"edge_priority", []step{{0, 2, 0}, {100 * time.Millisecond, 1, 0}, {300 * time.Millisecond, 2, 1}}},
		{"edge_delay", []step{{0, 1, 0}, {150 * time.Millisecond, 2, 0}, {150 * time.Millisecond, 2, 0}}},
	} {
		t.Run(c.model, func(t *testing.T) {
			url := "http://" + s.HTTP + "/v2/models/" + c.model
			done := make(chan error, len(c.steps))
			start := time.Now()
			for i, st := range c.steps {
				time.Sleep(time.Until(start.Add(st.at)))
				if i > 0 && st.at == c.steps[i-1].at {
					time.Sleep(20 * time.Millisecond) // keep the queue order of the steps
				}
				go func() { done <- edgeInfer(url+"/infer", st.size, st.prio) }()
			}
			for range c.steps {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			got := batchStats(t, url+"/stats")
			if len(got) != 2 || got[4] != 1 || got[1] != 1 {
				t.Fatalf("batch_stats %v, want {4:1, 1:1}", got)
			}
		})
	}
}

// edgeInfer sends one raw request of size rows (priority prio, 0 = default) and returns an error unless it
// gets 200.
func edgeInfer(url string, size, prio int) error {
	data := strings.TrimSuffix(strings.Repeat("0.5,", 2*size), ",")
	params := ""
	if prio > 0 {
		params = fmt.Sprintf(`"parameters":{"priority":%d},`, prio)
	}
	body := fmt.Sprintf(`{%s"inputs":[{"name":"x","datatype":"FP32","shape":[%d,2],"data":[%s]}]}`, params, size, data)
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("infer size %d: status %d", size, resp.StatusCode)
	}
	return nil
}

// batchStats reads the statistics extension's batch_stats: executions per batch size.
func batchStats(t *testing.T, url string) map[int]int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		ModelStats []struct {
			BatchStats []struct {
				BatchSize    int `json:"batch_size"`
				ComputeInfer struct {
					Count json.Number `json:"count"`
				} `json:"compute_infer"`
			} `json:"batch_stats"`
		} `json:"model_stats"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	out := map[int]int{}
	for _, ms := range st.ModelStats {
		for _, b := range ms.BatchStats {
			n, err := b.ComputeInfer.Count.Int64()
			if err != nil {
				t.Fatal(err)
			}
			out[b.BatchSize] += int(n)
		}
	}
	return out
}

package ensemble_test

import (
	"encoding/json"
	"os"
	"testing"
	"time"
)

// A traced ensemble request writes its own trace and one child trace per step, tied to it by parent_id,
// each step's timestamps from its model's batcher, in order.
func TestEnsembleTrace(t *testing.T) {
	if r := post(t, "/v2/models/pipeline/trace/setting", `{"trace_level":["TIMESTAMPS"],"trace_rate":"1","log_frequency":"1"}`); r.code != 200 {
		t.Fatalf("trace setting: %d %s", r.code, r.body)
	}
	defer post(t, "/v2/models/pipeline/trace/setting", `{}`) // back to the global setting (OFF)
	x, y := inputs(5)
	if r := post(t, "/v2/models/pipeline/infer", jsonRequest("traced", "X", "Y", x, y)); r.code != 200 {
		t.Fatalf("infer: %d %s", r.code, r.body)
	}
	var raw []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if raw, err = os.ReadFile(env.traceFile + ".0"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	var entries []struct {
		ID         uint64 `json:"id"`
		ModelName  string `json:"model_name"`
		ParentID   uint64 `json:"parent_id"`
		RequestID  string `json:"request_id"`
		Timestamps []struct {
			Name string `json:"name"`
			NS   int64  `json:"ns"`
		} `json:"timestamps"`
	}
	if err := json.Unmarshal(raw, &entries); err != nil {
		t.Fatalf("trace file: %v\n%s", err, raw)
	}
	var root uint64
	steps := map[uint64]string{}
	stamps := map[uint64]map[string]int64{}
	for _, e := range entries {
		switch {
		case e.ModelName == "pipeline":
			root = e.ID
		case e.ModelName != "":
			steps[e.ID] = e.ModelName
			if e.RequestID != "traced" {
				t.Errorf("step trace %d has request_id %q", e.ID, e.RequestID)
			}
		}
		for _, s := range e.Timestamps {
			if stamps[e.ID] == nil {
				stamps[e.ID] = map[string]int64{}
			}
			stamps[e.ID][s.Name] = s.NS
		}
	}
	counts := map[string]int{}
	for _, e := range entries {
		if e.ModelName != "" && e.ModelName != "pipeline" {
			counts[e.ModelName]++
			if e.ParentID != root || root == 0 {
				t.Errorf("step %s's parent_id %d, want the ensemble's %d", e.ModelName, e.ParentID, root)
			}
		}
	}
	if counts["linear"] != 2 || counts["add_sub"] != 2 {
		t.Fatalf("step traces %v, want two of linear and two of add_sub:\n%s", counts, raw)
	}
	order := []string{"REQUEST_START", "QUEUE_START", "COMPUTE_START", "COMPUTE_INPUT_END", "COMPUTE_OUTPUT_START", "COMPUTE_END", "REQUEST_END"}
	top := stamps[root]
	for id := range steps {
		st := stamps[id]
		for i, n := range order {
			if _, ok := st[n]; !ok || (i > 0 && st[n] < st[order[i-1]]) {
				t.Fatalf("step %d (%s): %s missing or out of order: %v", id, steps[id], n, st)
			}
		}
		if st["REQUEST_START"] < top["REQUEST_START"] || st["REQUEST_END"] > top["REQUEST_END"] {
			t.Errorf("step %s ran outside its ensemble's request: %v vs %v", steps[id], st, top)
		}
	}
}

package modelconfig

import (
	"strings"
	"testing"
)

func TestFromJSONRejectsUnknownFields(t *testing.T) {
	if _, err := FromJSON([]byte(`{"name":"m","sequence_batching":{}}`)); err == nil || !strings.Contains(err.Error(), "sequence_batching") {
		t.Fatalf("got %v", err)
	}
}

// TestToJSONRoundTrip: what ToJSON renders, FromJSON reads back to the same
// config; every scalar is printed, defaults included, int64 as a number.
func TestToJSONRoundTrip(t *testing.T) {
	cfg := &ModelConfig{Name: "m", Platform: "pytorch_libtorch", MaxBatchSize: 8,
		Input:            []*ModelInput{{Name: "x", DataType: DataType_TYPE_FP32, Dims: []int64{-1, 4}}},
		Output:           []*ModelOutput{{Name: "y", DataType: DataType_TYPE_STRING, Dims: []int64{1}}},
		SchedulingChoice: &ModelConfig_DynamicBatching{DynamicBatching: &ModelDynamicBatching{MaxQueueDelayMicroseconds: 100}}}
	data, err := ToJSON(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"name":"m"`, `"max_batch_size":8`, `"dims":[-1,4]`, `"data_type":"TYPE_STRING"`,
		`"max_queue_delay_microseconds":100`, `"backend":""`, `"optional":false`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("%s lacks %s", data, want)
		}
	}
	back, err := FromJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ToJSON(back)
	if err != nil || string(again) != string(data) {
		t.Errorf("round trip: %s\nthen %s (%v)", data, again, err)
	}
}

package tracing

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseUpdate(t *testing.T) {
	for _, tc := range []struct {
		in   map[string]any
		want Update
	}{
		{map[string]any{}, Update{}},
		{map[string]any{"trace_level": []string{"TIMESTAMPS", "TENSORS"}}, Update{Set: fLevel, Level: Timestamps | Tensors}},
		{map[string]any{"trace_level": []string{"OFF"}, "trace_rate": "12", "trace_count": "-1", "log_frequency": "34"},
			Update{Set: fLevel | fRate | fCount | fLogFrequency, Level: Off, Rate: 12, Count: -1, LogFrequency: 34}},
		{map[string]any{"trace_rate": []string{"7"}, "trace_count": json.Number("5")}, Update{Set: fRate | fCount, Rate: 7, Count: 5}},
		{map[string]any{"trace_rate": nil, "trace_level": nil}, Update{Clear: fRate | fLevel}},
		{map[string]any{"trace_rate": "4294967295"}, Update{Set: fRate, Rate: 4294967295}},
	} {
		got, err := ParseUpdate(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%v: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		in  map[string]any
		msg string
	}{
		{map[string]any{"trace_file": "/etc/passwd"}, "trace file location can not be updated through network protocol"},
		{map[string]any{"trace_file": nil}, "trace file location can not be updated"},
		{map[string]any{"trace_level": "TIMESTAMPS"}, "'trace_level' must be an array of strings"},
		{map[string]any{"trace_level": []string{"OFF", "TIMESTAMPS"}}, "Expect only one trace level 'OFF' is specified"},
		{map[string]any{"trace_level": []string{"LOUD"}}, "unknown trace level 'LOUD'"},
		{map[string]any{"trace_level": []string{}}, "a trace level is needed"},
		{map[string]any{"trace_rate": "often"}, "Unable to parse 'trace_rate', got: often"},
		{map[string]any{"trace_rate": "-1"}, "Unable to parse 'trace_rate', value is out of range [ 0, 4294967295 ], got: -1"},
		{map[string]any{"trace_rate": "4294967296"}, "value is out of range"},
		{map[string]any{"log_frequency": "1.5"}, "Unable to parse 'log_frequency', got: 1.5"},
		{map[string]any{"trace_count": "-2"}, "Unable to parse 'trace_count'. Expecting value >= -1, got:-2"},
		{map[string]any{"trace_count": "many"}, "Unable to parse 'trace_count', got: many"},
		{map[string]any{"trace_count": "2147483648"}, "Unable to parse 'trace_count', value is out of range [ -1, 2147483647 ]"},
		{map[string]any{"trace_rate": true}, "'trace_rate' must be a string"},
		{map[string]any{"trace_rate": []string{"1", "2"}}, "'trace_rate' must be a string"},
		{map[string]any{"trace_mode": "triton"}, "unknown trace setting 'trace_mode'"},
	} {
		if _, err := ParseUpdate(tc.in); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%v: error %v, want one containing %q", tc.in, err, tc.msg)
		}
	}
	if _, err := ParseUpdate(map[string]any{"trace_file": "x"}); !errors.Is(err, ErrFileUpdate) {
		t.Errorf("trace_file error %v is not ErrFileUpdate", err)
	}
}

// FuzzParseUpdate: settings decoded from a request never panic the parser, and an accepted update holds
// only values a setting can take.
func FuzzParseUpdate(f *testing.F) {
	f.Add("trace_rate", "12", "trace_level", "TIMESTAMPS")
	f.Add("trace_count", "-1", "log_frequency", "0")
	f.Add("trace_count", "-2", "trace_level", "OFF")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		u, err := ParseUpdate(map[string]any{k1: v1, k2: []string{v2}})
		if err != nil {
			return
		}
		if u.Count < -1 || u.Set&u.Clear != 0 || u.Level > Timestamps|Tensors {
			t.Fatalf("accepted %+v", u)
		}
	})
}

func newTestTracer(t *testing.T, initial Setting) *Tracer {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Setting = initial
	tr, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func values(t *testing.T, tr *Tracer, model string) map[string][]string {
	t.Helper()
	return tr.Values(tr.Setting(model))
}

func want(file string, level []string, rate, count, freq string) map[string][]string {
	return map[string][]string{"trace_file": {file}, "trace_level": level, "trace_rate": {rate}, "trace_count": {count},
		"log_frequency": {freq}, "trace_mode": {"triton"}}
}

func update(t *testing.T, tr *Tracer, model string, in map[string]any) map[string][]string {
	t.Helper()
	u, err := ParseUpdate(in)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tr.Update(model, u)
	if err != nil {
		t.Fatal(err)
	}
	return tr.Values(s)
}

// The settings scenarios of Triton's qa/L0_trace trace_endpoint_test.py: a model's values over the global
// ones, a global update seen by the model where it has no value of its own, clears falling back.
func TestSettingsLikeTriton(t *testing.T) {
	initial := Setting{Level: Timestamps, Rate: 1, Count: -1, File: "global_unittest.log"}
	ts := []string{"TIMESTAMPS"}
	both := []string{"TIMESTAMPS", "TENSORS"}

	tr := newTestTracer(t, initial)
	if got := values(t, tr, "simple"); !reflect.DeepEqual(got, want("global_unittest.log", ts, "1", "-1", "0")) {
		t.Fatalf("initial model setting %v", got)
	}
	if got := update(t, tr, "simple", map[string]any{"log_frequency": "7"}); !reflect.DeepEqual(got, want("global_unittest.log", ts, "1", "-1", "7")) {
		t.Fatalf("first model update %v", got)
	}
	if got := update(t, tr, "", map[string]any{"trace_level": both}); !reflect.DeepEqual(got, want("global_unittest.log", both, "1", "-1", "0")) {
		t.Fatalf("global update %v", got)
	}
	if got := values(t, tr, "simple"); !reflect.DeepEqual(got, want("global_unittest.log", both, "1", "-1", "7")) {
		t.Fatalf("model after the global update %v", got)
	}

	// test_http_clear_settings
	tr = newTestTracer(t, initial)
	update(t, tr, "simple", map[string]any{"trace_rate": "12", "log_frequency": "34"})
	update(t, tr, "", map[string]any{"trace_rate": "56", "trace_count": "78", "trace_level": []string{"OFF"}})
	if got := update(t, tr, "", map[string]any{"trace_rate": nil, "trace_count": nil}); !reflect.DeepEqual(got, want("global_unittest.log", []string{"OFF"}, "1", "-1", "0")) {
		t.Fatalf("cleared global %v", got)
	}
	if got := values(t, tr, "simple"); !reflect.DeepEqual(got, want("global_unittest.log", []string{"OFF"}, "12", "-1", "34")) {
		t.Fatalf("model after the global clear %v", got)
	}
	if got := update(t, tr, "simple", map[string]any{"trace_rate": nil, "trace_level": nil}); !reflect.DeepEqual(got, want("global_unittest.log", []string{"OFF"}, "1", "-1", "34")) {
		t.Fatalf("cleared model %v", got)
	}
	// An empty update of a model removes all of its values.
	if got := update(t, tr, "simple", map[string]any{}); !reflect.DeepEqual(got, want("global_unittest.log", []string{"OFF"}, "1", "-1", "0")) {
		t.Fatalf("model after an empty update %v", got)
	}
}

func TestUpdateRefusals(t *testing.T) {
	tr := newTestTracer(t, Setting{Rate: 1, Count: -1})
	if _, err := tr.Update("", Update{Set: fLevel, Level: Timestamps}); err == nil || !strings.Contains(err.Error(), "triton,file=PATH") {
		t.Fatalf("turning tracing on without a file: %v", err)
	}
}

func sampled(tr *Tracer, model string, n int) (traced []int) {
	for i := 1; i <= n; i++ {
		if t := tr.Start(model, 1, "", nil); t != nil {
			traced = append(traced, i)
		}
	}
	return traced
}

// One request in trace_rate is traced, the rate-th first; trace_count counts down to 0 and then stops
// tracing; a model with its own rate keeps its own count of requests seen; OFF traces nothing.
func TestSampling(t *testing.T) {
	tr := newTestTracer(t, Setting{Level: Timestamps, Rate: 3, Count: -1, File: t.TempDir() + "/t.json"})
	if got := sampled(tr, "a", 9); !reflect.DeepEqual(got, []int{3, 6, 9}) {
		t.Fatalf("rate 3 traced requests %v", got)
	}
	update(t, tr, "", map[string]any{"trace_rate": "1", "trace_count": "2"})
	if got := sampled(tr, "a", 5); !reflect.DeepEqual(got, []int{1, 2}) {
		t.Fatalf("count 2 traced requests %v", got)
	}
	if got := values(t, tr, "a")["trace_count"]; got[0] != "0" {
		t.Fatalf("trace_count after the count ran out = %v, want 0", got)
	}
	update(t, tr, "", map[string]any{"trace_count": "-1"})
	update(t, tr, "b", map[string]any{"trace_rate": "2"})
	if got := sampled(tr, "b", 4); !reflect.DeepEqual(got, []int{2, 4}) {
		t.Fatalf("model b at its own rate 2 traced %v", got)
	}
	if got := sampled(tr, "a", 2); !reflect.DeepEqual(got, []int{1, 2}) {
		t.Fatalf("model a at the global rate 1 traced %v", got)
	}
	update(t, tr, "b", map[string]any{"trace_level": []string{"OFF"}})
	if got := sampled(tr, "b", 4); len(got) != 0 {
		t.Fatalf("model b traced %v at level OFF", got)
	}
	update(t, tr, "", map[string]any{"trace_level": []string{"OFF"}})
	if tr.anyOn.Load() || len(sampled(tr, "a", 3)) != 0 {
		t.Fatal("requests traced with every level OFF")
	}
	update(t, tr, "b", map[string]any{"trace_level": []string{"TIMESTAMPS"}})
	if !tr.anyOn.Load() || len(sampled(tr, "b", 2)) != 1 || len(sampled(tr, "a", 2)) != 0 {
		t.Fatal("a model's own level does not decide its sampling")
	}
}

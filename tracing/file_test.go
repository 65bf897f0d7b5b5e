package tracing

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// entry is one object of a trace file, as Triton's trace_summary.py reads it.
type entry struct {
	ID           uint64 `json:"id"`
	ModelName    string `json:"model_name"`
	ModelVersion int64  `json:"model_version"`
	RequestID    string `json:"request_id"`
	ParentID     uint64 `json:"parent_id"`
	Timestamps   []struct {
		Name string `json:"name"`
		NS   int64  `json:"ns"`
	} `json:"timestamps"`
	Activity string `json:"activity"`
	Tensor   struct {
		Name, Data, Shape, Dtype string
	} `json:"tensor"`
}

func readTraceFile(t *testing.T, path string) []entry {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []entry
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s is not a JSON array of trace objects: %v\n%s", path, err, raw)
	}
	return out
}

var order = []string{RequestStart, QueueStart, ComputeStart, ComputeInputEnd, ComputeOutputStart, ComputeEnd, RequestEnd}

// traceOne records a request's timestamps the way the server does, a millisecond apart, out of order.
func traceOne(tr *Tracer, model, id string) *Trace {
	x := tr.Start(model, 2, id, nil)
	if x == nil {
		return nil
	}
	t0 := time.Now()
	for i := len(order) - 1; i >= 0; i-- {
		x.Stamp(order[i], t0.Add(time.Duration(i)*time.Millisecond))
	}
	x.Stamp(HTTPRecvStart, t0.Add(-time.Millisecond))
	return x
}

func TestTraceFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "trace.json")
	tr := newTestTracer(t, Setting{Level: Timestamps, Rate: 1, Count: -1, File: file})
	for i := range 3 {
		traceOne(tr, "simple", string(rune('a'+i))).Finish()
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("log_frequency 0 wrote the file before Close: %v", err)
	}
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	entries := readTraceFile(t, file)
	heads := map[uint64]entry{}
	stamps := map[uint64][]string{}
	ns := map[uint64][]int64{}
	for _, e := range entries {
		if e.ModelName != "" {
			heads[e.ID] = e
		}
		for _, s := range e.Timestamps {
			stamps[e.ID] = append(stamps[e.ID], s.Name)
			ns[e.ID] = append(ns[e.ID], s.NS)
		}
	}
	if len(heads) != 3 {
		t.Fatalf("%d traces in the file, want 3: %+v", len(heads), entries)
	}
	for id, h := range heads {
		if h.ModelName != "simple" || h.ModelVersion != 2 || h.ParentID != 0 {
			t.Errorf("head %+v", h)
		}
		want := append([]string{HTTPRecvStart}, order...)
		if len(stamps[id]) != len(want) {
			t.Fatalf("trace %d stamps %v, want %v", id, stamps[id], want)
		}
		for i := range want {
			if stamps[id][i] != want[i] {
				t.Fatalf("trace %d stamps %v, want %v (time order)", id, stamps[id], want)
			}
			if i > 0 && ns[id][i]-ns[id][i-1] != int64(time.Millisecond) {
				t.Fatalf("trace %d ns %v: want 1 ms apart", id, ns[id])
			}
		}
	}
}

// With log_frequency N every N traces go to file.<i>, the rest to the next index at Close; a finished
// trace takes nothing more.
func TestTraceFileLogFrequency(t *testing.T) {
	file := filepath.Join(t.TempDir(), "t.json")
	tr := newTestTracer(t, Setting{Level: Timestamps, Rate: 1, Count: -1, LogFrequency: 2, File: file})
	var last *Trace
	for i := range 5 {
		last = traceOne(tr, "m", string(rune('a'+i)))
		last.Finish()
	}
	last.Stamp("LATE", time.Now())
	last.Finish()
	for i, n := range []int{2, 2} {
		if got := len(readTraceFile(t, file+"."+string(rune('0'+i)))) / 9; got != n {
			t.Errorf("%s.%d holds %d traces, want %d", file, i, got, n)
		}
	}
	if _, err := os.Stat(file + ".2"); !os.IsNotExist(err) {
		t.Fatal("the fifth trace was written before Close")
	}
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := readTraceFile(t, file+".2"); len(got) != 9 {
		t.Fatalf("%s.2 holds %d objects, want the last trace's 9 (nothing after Finish)", file, len(got))
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatal("indexed traces also wrote the bare file")
	}
}

func TestTraceTensorsAndChildren(t *testing.T) {
	file := filepath.Join(t.TempDir(), "t.json")
	tr := newTestTracer(t, Setting{Level: Timestamps | Tensors, Rate: 1, Count: -1, File: file})
	x := tr.Start("ens", 1, "req-7", nil)
	f32 := make([]byte, 8)
	binary.LittleEndian.PutUint32(f32, math.Float32bits(0.5))
	binary.LittleEndian.PutUint32(f32[4:], math.Float32bits(-2))
	x.Tensor(TensorQueueInput, "IN", "FP32", []int64{1, 2}, f32)
	x.Tensor(TensorBackendOutput, "OUT", "BYTES", []int64{2}, []byte{2, 0, 0, 0, 'h', 'i', 1, 0, 0, 0, '!'})
	c := x.Child("step", 3)
	c.Stamp(ComputeStart, time.Now())
	x.Stamp(RequestStart, time.Now())
	x.Finish()
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var sawChild bool
	tensors := map[string]entry{}
	for _, e := range readTraceFile(t, file) {
		if e.ModelName == "step" {
			sawChild = e.ParentID == x.ID() && e.ID == c.ID() && e.RequestID == "req-7" && e.ModelVersion == 3
		}
		if e.Activity != "" {
			tensors[e.Tensor.Name] = e
		}
	}
	if !sawChild {
		t.Error("the child trace is missing or not tied to its parent")
	}
	if in := tensors["IN"]; in.Activity != TensorQueueInput || in.Tensor.Data != "0.5,-2" || in.Tensor.Shape != "1,2" || in.Tensor.Dtype != "FP32" {
		t.Errorf("input tensor %+v", in)
	}
	if out := tensors["OUT"]; out.Activity != TensorBackendOutput || out.Tensor.Data != "hi,!" {
		t.Errorf("output tensor %+v", out)
	}
}

func TestFormatData(t *testing.T) {
	le := binary.LittleEndian
	for _, tc := range []struct {
		dt   string
		data []byte
		want string
	}{
		{"INT32", le.AppendUint32(le.AppendUint32(nil, 7), uint32(0xFFFFFFFF)), "7,-1"},
		{"INT64", le.AppendUint64(nil, 1<<40), "1099511627776"},
		{"UINT8", []byte{0, 255}, "0,255"},
		{"INT8", []byte{0x80}, "-128"},
		{"BOOL", []byte{1, 0}, "true,false"},
		{"FP16", le.AppendUint16(le.AppendUint16(le.AppendUint16(nil, 0x3C00), 0xC000), 0x0001), "1,-2,5.9604645e-08"},
		{"BF16", le.AppendUint16(nil, 0x3FC0), "1.5"},
		{"FP64", le.AppendUint64(nil, math.Float64bits(0.1)), "0.1"},
		{"UINT16", le.AppendUint16(nil, 65535), "65535"},
		{"INT32", []byte{1, 0, 0, 0, 9}, "1"},                // a trailing partial element is left out
		{"BYTES", []byte{9, 0, 0, 0, 'x'}, ""},               // a length past the data stops the walk
		{"BYTES", []byte{0, 0, 0, 0, 1, 0, 0, 0, 'y'}, ",y"}, // an empty element
		{"COMPLEX", []byte{1, 2}, ""},
	} {
		if got := FormatData(tc.dt, tc.data); got != tc.want {
			t.Errorf("FormatData(%s, %v) = %q, want %q", tc.dt, tc.data, got, tc.want)
		}
	}
}

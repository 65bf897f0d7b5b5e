package libtorch

import (
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"testing"

	"github.com/ofaserve/ofaserve/backend"
)

// TestOnlyTheGuiltyFail: fail.pt fails any batch whose sum is negative. Two requests of -1000 among six
// good ones share one batch; the bisection gives the six their results and the two a 400 with the
// module's message, and counts it.
func TestOnlyTheGuiltyFail(t *testing.T) {
	m := load(t, "fail", `
platform: "pytorch_libtorch" default_model_filename: "fail.pt" max_batch_size: 8
input [{ name: "x" data_type: TYPE_FP32 dims: [ 2 ] }]
output [{ name: "y" data_type: TYPE_FP32 dims: [ 2 ] }]
dynamic_batching { max_queue_delay_microseconds: 2000000 }`)
	bad := map[int]bool{2: true, 5: true}
	errs := make([]error, 8)
	outs := make([][]float32, 8)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			x := f32(float32(i), 1)
			if bad[i] {
				x = f32(-1000, -1000)
			}
			resp, err := m.infer(context.Background(), &backend.Request{Inputs: []backend.Tensor{
				{Name: "x", Datatype: "FP32", Shape: []int64{1, 2}, Data: x}}})
			errs[i] = err
			if err == nil {
				outs[i] = floats(resp.Outputs[0].Data)
			}
		})
	}
	wg.Wait()
	for i := range 8 {
		switch {
		case bad[i]:
			if backend.CodeOf(errs[i]) != backend.CodeInvalidArg || !strings.Contains(errs[i].Error(), "negative sum") ||
				!strings.Contains(errs[i].Error(), "failed on its own") {
				t.Errorf("bad %d: %v (%v), want INVALID_ARG naming the module's error", i, errs[i], backend.CodeOf(errs[i]))
			}
		case errs[i] != nil:
			t.Errorf("good %d failed: %v", i, errs[i])
		case !near(outs[i], []float32{3 * float32(i), 3}):
			t.Errorf("good %d: %v", i, outs[i])
		}
	}
	st := m.BisectStats()
	if st.Batches != 1 || st.Guilty != 2 || st.Alone != 2 || st.Runs < 4 {
		t.Errorf("bisect stats %+v, want one batch, 2 guilty", st)
	}
	if es := m.Stats().ExecutionCount; es != 1 {
		t.Errorf("%d executions: the eight did not share one batch", es)
	}
}

// seqLimits is seq.pt (row sums of ids) with a value range and a length limit on its ids.
func seqLimits(dt string) string {
	return `backend: "pytorch" default_model_filename: "seq.pt" max_batch_size: 8
input [{ name: "ids" data_type: ` + dt + ` dims: [ -1 ] }]
output [{ name: "total" data_type: TYPE_FP32 dims: [ 1 ] }]
parameters { key: "value_range:ids" value: { string_value: "0, 100" } }
parameters { key: "max_length:ids" value: { string_value: "5" } }`
}

func i32(vs ...int32) []byte {
	b := make([]byte, 0, 4*len(vs))
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	return b
}

// TestInputLimits: requests breaking value_range:/max_length: are refused with a 400 naming the input, the
// value and its element (or the dimension) and the limit, before they reach the module; the rest run.
func TestInputLimits(t *testing.T) {
	m64 := load(t, "seq64", seqLimits("TYPE_INT64"))
	m32 := load(t, "seq32", seqLimits("TYPE_INT32"))
	for _, tc := range []struct {
		name  string
		m     testModel
		dt    string
		shape []int64
		data  []byte
		msg   string // "" -> success
	}{
		{"in range", m64, "INT64", []int64{1, 3}, i64(0, 50, 99), ""},
		{"at the upper bound", m64, "INT64", []int64{1, 3}, i64(1, 100, 2), "value 100 at element 1 is outside the model's range [0, 100) (parameter value_range:ids)"},
		{"huge", m64, "INT64", []int64{1, 2}, i64(1, 1e9), "value 1000000000 at element 1"},
		{"negative", m64, "INT64", []int64{1, 2}, i64(-5, 1), "value -5 at element 0"},
		{"second row", m64, "INT64", []int64{2, 2}, i64(1, 2, 3, 400), "value 400 at element 3"},
		{"too long", m64, "INT64", []int64{1, 6}, i64(1, 1, 1, 1, 1, 1), "input 'ids' of model 'seq64': dimension 1 is 6, over the model's limit 5 (parameter max_length:ids)"},
		{"longest allowed", m64, "INT64", []int64{1, 5}, i64(1, 1, 1, 1, 1), ""},
		{"int32 in range", m32, "INT32", []int64{1, 2}, i32(3, 99), ""},
		{"int32 negative", m32, "INT32", []int64{1, 2}, i32(3, -1), "value -1 at element 1"},
		{"int32 over", m32, "INT32", []int64{1, 2}, i32(1<<30, 0), "value 1073741824 at element 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.m.infer(context.Background(), &backend.Request{Inputs: []backend.Tensor{
				{Name: "ids", Datatype: tc.dt, Shape: tc.shape, Data: tc.data}}})
			if tc.msg == "" {
				if err != nil || len(resp.Outputs) != 1 {
					t.Fatalf("got %v", err)
				}
				return
			}
			if backend.CodeOf(err) != backend.CodeInvalidArg || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v (%v), want INVALID_ARG with %q", err, backend.CodeOf(err), tc.msg)
			}
		})
	}
	if st := m64.Stats(); st.ExecutionCount != 2 {
		t.Errorf("%d executions, want 2: refused requests must not reach the module", st.ExecutionCount)
	}
}

func TestInputLimitLoadErrors(t *testing.T) {
	base := `backend: "pytorch" default_model_filename: "seq.pt" max_batch_size: 8
output [{ name: "total" data_type: TYPE_FP32 dims: [ 1 ] }]
`
	for _, tc := range []struct{ name, config, msg string }{
		{"float range", `input [{ name: "ids" data_type: TYPE_FP32 dims: [ -1 ] }]
parameters { key: "value_range:ids" value: { string_value: "0,10" } }`, "input 'ids' is FP32; a value range needs an integer input"},
		{"unknown input", `input [{ name: "ids" data_type: TYPE_INT64 dims: [ -1 ] }]
parameters { key: "value_range:tokens" value: { string_value: "0,10" } }`, "parameter 'value_range:tokens' names no input"},
		{"empty range", `input [{ name: "ids" data_type: TYPE_INT64 dims: [ -1 ] }]
parameters { key: "value_range:ids" value: { string_value: "10,10" } }`, "want \"lo,hi\" with lo < hi"},
		{"one bound", `input [{ name: "ids" data_type: TYPE_INT64 dims: [ -1 ] }]
parameters { key: "value_range:ids" value: { string_value: "10" } }`, "want \"lo,hi\""},
		{"fixed dims", `input [{ name: "ids" data_type: TYPE_INT64 dims: [ 4 ] }]
parameters { key: "max_length:ids" value: { string_value: "3" } }`, "has no variable (-1) dim"},
		{"zero length", `input [{ name: "ids" data_type: TYPE_INT64 dims: [ -1 ] }]
parameters { key: "max_length:ids" value: { string_value: "0" } }`, "want a positive length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tryLoad("seq", base+tc.config)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %q", err, tc.msg)
			}
		})
	}
}

// TestOutOfRange decodes every integer datatype, signed where it is.
func TestOutOfRange(t *testing.T) {
	for _, tc := range []struct {
		dt   string
		data []byte
		at   int
		v    int64
		bad  bool
	}{
		{"INT8", []byte{1, 0xff}, 1, -1, true},
		{"UINT8", []byte{1, 0xff}, 1, 255, true},
		{"UINT8", []byte{1, 9}, 0, 0, false},
		{"INT16", []byte{1, 0, 0, 0x80}, 1, -32768, true},
		{"INT32", i32(5, 10), 1, 10, true},
		{"INT64", i64(9, -9), 1, -9, true},
		{"INT64", nil, 0, 0, false},
	} {
		at, v, bad := outOfRange(tc.dt, tc.data, 0, 10)
		if at != tc.at || v != tc.v || bad != tc.bad {
			t.Errorf("%s %v: %d %d %v, want %d %d %v", tc.dt, tc.data, at, v, bad, tc.at, tc.v, tc.bad)
		}
	}
}

// TestAllFailAloneFailsTheBatch: when every request of a batch fails on its own the batch fails as a whole
// (a 500 saying the model is probably at fault), so that warm-up, which runs batches outside the
// batcher, sees the failure.
func TestAllFailAloneFailsTheBatch(t *testing.T) {
	m := load(t, "fail", `
platform: "pytorch_libtorch" default_model_filename: "fail.pt" max_batch_size: 8
input [{ name: "x" data_type: TYPE_FP32 dims: [ 2 ] }]
output [{ name: "y" data_type: TYPE_FP32 dims: [ 2 ] }]`)
	var batch []*prepared
	for range 3 {
		p, _, err := m.prepare(&backend.Request{Inputs: []backend.Tensor{
			{Name: "x", Datatype: "FP32", Shape: []int64{1, 2}, Data: f32(-1, -1)}}})
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, p)
	}
	res, _, err := m.exec(context.Background(), 0, batch)
	if err == nil || backend.CodeOf(err) != backend.CodeInternal || !strings.Contains(err.Error(), "model or its device is probably at fault") {
		t.Fatalf("got %v %v, want the batch to fail with INTERNAL", res, err)
	}
	if st := m.BisectStats(); st.Batches != 1 || st.Alone != 3 || st.Guilty != 0 {
		t.Errorf("bisect stats %+v", st)
	}
}

// FuzzOutOfRange: on any bytes and range, outOfRange never panics and finds exactly the first element a
// plain decode finds outside [lo, hi).
func FuzzOutOfRange(f *testing.F) {
	f.Add(uint8(3), []byte{1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, int64(0), int64(100))
	f.Add(uint8(0), []byte{0x80, 7}, int64(-1), int64(8))
	f.Fuzz(func(t *testing.T, kind uint8, data []byte, lo, hi int64) {
		dts := []string{"INT8", "UINT8", "INT16", "INT32", "INT64"}
		dt := dts[int(kind)%len(dts)]
		w, _ := intWidth(dt)
		at, v, bad := outOfRange(dt, data, lo, hi)
		wantBad := false
		for i := 0; i+w <= len(data); i += w {
			var x int64
			switch w {
			case 1:
				x = int64(data[i])
				if dt == "INT8" && x > 127 {
					x -= 256
				}
			case 2:
				x = int64(int16(uint16(data[i]) | uint16(data[i+1])<<8))
			case 4:
				x = int64(int32(binary.LittleEndian.Uint32(data[i:])))
			default:
				x = int64(binary.LittleEndian.Uint64(data[i:]))
			}
			if x < lo || x >= hi {
				wantBad = true
				if !bad || at != i/w || v != x {
					t.Fatalf("%s %x [%d,%d): got %d %d %v, want %d %d", dt, data, lo, hi, at, v, bad, i/w, x)
				}
				break
			}
		}
		if bad != wantBad {
			t.Fatalf("%s %x [%d,%d): bad %v", dt, data, lo, hi, bad)
		}
	})
}

package simulated

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/backend/ofa"
	"github.com/ofaserve/ofaserve/backend/ofa/ofatest"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
	"github.com/ofaserve/ofaserve/repository"
)

func params(kv ...string) map[string]*modelconfig.ModelParameter {
	m := map[string]*modelconfig.ModelParameter{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = &modelconfig.ModelParameter{StringValue: kv[i+1]}
	}
	return m
}

func TestReadProfile(t *testing.T) {
	for _, tc := range []struct {
		name string
		kv   []string
		want Profile
		err  string
	}{
		{"defaults", nil, DefaultProfile, ""},
		{"all set", []string{ParamBase, "1000", ParamPerSample, "200", ParamPerToken, "3", "other", "x"},
			Profile{Base: time.Millisecond, PerSample: 200 * time.Microsecond, PerToken: 3 * time.Microsecond}, ""},
		{"zero allowed", []string{ParamBase, "0"}, Profile{PerSample: DefaultProfile.PerSample}, ""},
		{"negative", []string{ParamPerSample, "-5"}, Profile{}, "'simulated_per_sample_microseconds' must be an integer"},
		{"not a number", []string{ParamBase, "20ms"}, Profile{}, "'simulated_base_microseconds' must be an integer"},
		{"unknown key", []string{"simulated_jitter", "1"}, Profile{}, "unknown parameter 'simulated_jitter'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadProfile(params(tc.kv...))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v %v, want %+v", got, err, tc.want)
			}
		})
	}
	if d := DefaultProfile.Time(16, 0); d != 60*time.Millisecond {
		t.Fatalf("t(16) = %v, want 60ms", d)
	}
	if d := (Profile{Base: 1, PerSample: 10, PerToken: 100}).Time(2, 3); d != 321 {
		t.Fatalf("t(2,3) = %d, want 321", d)
	}
}

// fakeSleep records every wait and returns at once (or the context's error).
type fakeSleep struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (f *fakeSleep) sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	f.waits = append(f.waits, d)
	f.mu.Unlock()
	return ctx.Err()
}

func loadText(t *testing.T, dir, text string, sleep SleepFunc) (*Model, backend.Signature) {
	t.Helper()
	cfg, err := repository.ParseConfig("config.pbtxt", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := repository.Normalize("config.pbtxt", "sim", cfg, 0); err != nil {
		t.Fatal(err)
	}
	sig := backend.SignatureOf("sim", cfg)
	m, err := LoadWith(context.Background(), backend.LoadSpec{Name: "sim", Version: 1, ModelDir: dir,
		VersionDir: filepath.Join(dir, "1"), Config: cfg, Signature: sig}, sleep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m, sig
}

const rawConfig = `platform: "simulated" max_batch_size: 8
input [{name: "x" data_type: TYPE_FP32 dims: [2]}]
output [{name: "logits" data_type: TYPE_FP32 dims: [3]}]
parameters { key: "simulated_base_microseconds" value { string_value: "1000" } }
parameters { key: "simulated_per_sample_microseconds" value { string_value: "100" } }`

func floats(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b, _ = binary.Append(b, binary.LittleEndian, v)
	}
	return b
}

// TestRawTensorsTiming: a raw batch of 3 waits a + 3c and answers [3, 3] logits that depend on each row only.
func TestRawTensorsTiming(t *testing.T) {
	var fs fakeSleep
	m, sig := loadText(t, t.TempDir(), rawConfig, fs.sleep)
	req := &backend.Request{Inputs: []backend.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{3, 2}, Data: floats(1, 2, 3, 4, 1, 2)}}}
	if err := sig.Validate(req); err != nil {
		t.Fatal(err)
	}
	resp, err := m.Infer(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs.waits) != 1 || fs.waits[0] != time.Millisecond+300*time.Microsecond {
		t.Fatalf("waits %v, want [1.3ms]", fs.waits)
	}
	out := resp.Outputs[0]
	if out.Name != "logits" || len(out.Shape) != 2 || out.Shape[0] != 3 || out.Shape[1] != 3 || len(out.Data) != 36 {
		t.Fatalf("output %s %v %d bytes", out.Name, out.Shape, len(out.Data))
	}
	if !bytes.Equal(out.Data[:12], out.Data[24:]) || bytes.Equal(out.Data[:12], out.Data[12:24]) {
		t.Fatal("rows 0 and 2 (same input) should match and row 1 differ")
	}
	again, err := m.Infer(context.Background(), req)
	if err != nil || !bytes.Equal(again.Outputs[0].Data, out.Data) {
		t.Fatalf("second answer differs (%v)", err)
	}
}

func TestRawConfigRefused(t *testing.T) {
	for _, tc := range []struct{ name, text, err string }{
		{"int output", strings.Replace(rawConfig, `output [{name: "logits" data_type: TYPE_FP32`, `output [{name: "logits" data_type: TYPE_INT64`, 1), "must be TYPE_FP32"},
		{"variable dims", strings.Replace(rawConfig, `dims: [3]`, `dims: [-1]`, 1), "fixed dims"},
		{"bad profile", rawConfig + ` parameters { key: "simulated_per_token_microseconds" value { string_value: "x" } }`, "simulated_per_token_microseconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := repository.ParseConfig("config.pbtxt", []byte(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			if err := repository.Normalize("config.pbtxt", "sim", cfg, 0); err != nil {
				t.Fatal(err)
			}
			_, err = LoadWith(context.Background(), backend.LoadSpec{Name: "sim", Config: cfg}, TimerSleep)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}

// TestTimerSleepHonoursContext: the device's wait ends with its context.
func TestTimerSleepHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := TimerSleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("a cancelled wait did not return")
	}
	if err := TimerSleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

// TestOFAInputs: with the ofa kind's inputs the request is decoded and tokenized for real, the wait is
// a + b·c + L·d with L the prompt's token count, and the answer has the ofa kind's outputs.
func TestOFAInputs(t *testing.T) {
	src, err := ofatest.Export()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ofa_meta.json", "vocab.json", "merges.txt"} {
		b, err := os.ReadFile(filepath.Join(src, ofa.ModelName, "1", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "1", f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := `platform: "simulated" max_batch_size: 4
input [{ name: "IMAGE" data_type: TYPE_STRING dims: [1] }, { name: "HYPOTHESIS" data_type: TYPE_STRING dims: [1] }]
output [{ name: "RESULT" data_type: TYPE_STRING dims: [1] }, { name: "SCORES" data_type: TYPE_FP32 dims: [3] }]
parameters { key: "simulated_per_token_microseconds" value { string_value: "7" } }`
	var fs fakeSleep
	m, sig := loadText(t, dir, text, fs.sleep)
	var img bytes.Buffer
	pic := image.NewRGBA(image.Rect(0, 0, 40, 30))
	pic.Set(3, 4, color.RGBA{R: 200, A: 255})
	if err := png.Encode(&img, pic); err != nil {
		t.Fatal(err)
	}
	bt := func(name string, elems ...[]byte) backend.Tensor {
		var data []byte
		for _, e := range elems {
			data = binary.LittleEndian.AppendUint32(data, uint32(len(e)))
			data = append(data, e...)
		}
		return backend.Tensor{Name: name, Datatype: "BYTES", Shape: []int64{int64(len(elems)), 1}, Data: data}
	}
	req := &backend.Request{Inputs: []backend.Tensor{bt("IMAGE", img.Bytes(), img.Bytes()), bt("HYPOTHESIS", []byte("a cat"), []byte("a red dot"))}}
	if err := sig.Validate(req); err != nil {
		t.Fatal(err)
	}
	resp, err := m.Infer(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	it, err := m.prepare(req)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultProfile.Base + 2*DefaultProfile.PerSample + time.Duration(it.length)*7*time.Microsecond
	if it.length < 3 || len(fs.waits) != 1 || fs.waits[0] != want {
		t.Fatalf("waits %v, want [%v] (L = %d)", fs.waits, want, it.length)
	}
	if len(resp.Outputs) != 2 || resp.Outputs[1].Name != "SCORES" || len(resp.Outputs[1].Data) != 2*3*4 {
		t.Fatalf("outputs %+v", resp.Outputs)
	}
	if !strings.Contains(string(resp.Outputs[0].Data), `"all_scores"`) {
		t.Fatalf("RESULT %q", resp.Outputs[0].Data)
	}
	bad := &backend.Request{Inputs: []backend.Tensor{bt("IMAGE", []byte("not an image")), bt("HYPOTHESIS", []byte("x"))}}
	if _, err := m.Infer(context.Background(), bad); backend.CodeOf(err) != backend.CodeInvalidArg || len(fs.waits) != 1 {
		t.Fatalf("bad image: %v, %d waits", err, len(fs.waits))
	}
}

// TestRawUnbatched: with max_batch_size 0 a raw input's first dim is not a batch: one unit, outputs of the
// declared dims.
func TestRawUnbatched(t *testing.T) {
	var fs fakeSleep
	m, sig := loadText(t, t.TempDir(), strings.Replace(rawConfig, "max_batch_size: 8", "max_batch_size: 0", 1), fs.sleep)
	req := &backend.Request{Inputs: []backend.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{2}, Data: floats(1, 2)}}}
	if err := sig.Validate(req); err != nil {
		t.Fatal(err)
	}
	resp, err := m.Infer(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if out := resp.Outputs[0]; len(out.Shape) != 1 || out.Shape[0] != 3 || len(out.Data) != 12 {
		t.Fatalf("output %v %d bytes", out.Shape, len(out.Data))
	}
	if len(fs.waits) != 1 || fs.waits[0] != time.Millisecond+100*time.Microsecond {
		t.Fatalf("waits %v, want [1.1ms]", fs.waits)
	}
}

package kserve

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/protocol/datatype"
)

func f32(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func TestEncodeJSON(t *testing.T) {
	req := Request{Model: "m", Inputs: []Tensor{
		{Name: "A", Datatype: "FP32", Shape: []int64{1, 2}, Data: f32(1.5, -2)},
		{Name: "B", Datatype: "INT64", Shape: []int64{2}, Data: binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 7), uint64(0xFFFFFFFFFFFFFFFF))},
		{Name: "IMAGE", Datatype: "BYTES", Shape: []int64{1}, Elems: [][]byte{{0xff, 0x00, 'x'}}, Base64JSON: true},
		{Name: "H", Datatype: "BYTES", Shape: []int64{1}, Elems: [][]byte{[]byte(`a "q"`)}},
	}, Outputs: []string{"SCORES"}}
	body, hl, err := EncodeHTTP(req, false)
	if err != nil {
		t.Fatal(err)
	}
	if hl != -1 {
		t.Errorf("header length %d, want -1 for pure JSON", hl)
	}
	want := `{"inputs":[{"name":"A","shape":[1,2],"datatype":"FP32","data":[1.5,-2]},` +
		`{"name":"B","shape":[2],"datatype":"INT64","data":[7,-1]},` +
		`{"name":"IMAGE","shape":[1],"datatype":"BYTES","data":["/wB4"]},` +
		`{"name":"H","shape":[1],"datatype":"BYTES","data":["a \"q\""]}],` +
		`"outputs":[{"name":"SCORES"}]}`
	if string(body) != want {
		t.Errorf("body\n got %s\nwant %s", body, want)
	}
}

func TestEncodeBinaryFraming(t *testing.T) {
	req := Request{Model: "m", BinaryOutput: true, Inputs: []Tensor{
		{Name: "A", Datatype: "UINT32", Shape: []int64{2, 2}, Data: make([]byte, 16)},
		{Name: "S", Datatype: "BYTES", Shape: []int64{2}, Elems: [][]byte{[]byte("ab"), {}}},
		{Name: "C", Datatype: "BOOL", Shape: []int64{3}, Data: []byte{1, 0, 1}},
	}}
	body, hl, err := EncodeHTTP(req, true)
	if err != nil {
		t.Fatal(err)
	}
	head := `{"parameters":{"binary_data_output":true},"inputs":[` +
		`{"name":"A","shape":[2,2],"datatype":"UINT32","parameters":{"binary_data_size":16}},` +
		`{"name":"S","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":10}},` +
		`{"name":"C","shape":[3],"datatype":"BOOL","parameters":{"binary_data_size":3}}]}`
	if hl != len(head) || string(body[:hl]) != head {
		t.Fatalf("header (%d)\n got %s\nwant %s", hl, body[:hl], head)
	}
	blobs := append(make([]byte, 16), 2, 0, 0, 0, 'a', 'b', 0, 0, 0, 0, 1, 0, 1)
	if !bytes.Equal(body[hl:], blobs) {
		t.Errorf("blobs % x, want % x", body[hl:], blobs)
	}
}

func TestEncodeRejects(t *testing.T) {
	bad := []Tensor{
		{Name: "A", Datatype: "FP32", Shape: []int64{3}, Data: make([]byte, 8)},
		{Name: "A", Datatype: "BYTES", Shape: []int64{2}, Elems: [][]byte{{}}},
		{Name: "A", Datatype: "NOPE", Shape: []int64{1}, Data: make([]byte, 4)},
		{Name: "A", Datatype: "FP32", Shape: []int64{-1}},
	}
	for _, b := range bad {
		if _, _, err := EncodeHTTP(Request{Inputs: []Tensor{b}}, true); err == nil {
			t.Errorf("%+v should be rejected", b)
		}
	}
	if _, _, err := EncodeHTTP(Request{Inputs: []Tensor{{Name: "H", Datatype: "FP16", Shape: []int64{1}, Data: []byte{0, 0x3c}}}}, false); err == nil {
		t.Error("FP16 in JSON should be rejected")
	}
}

func TestDecodeHTTPResponse(t *testing.T) {
	head := `{"model_name":"m","model_version":"1","outputs":[{"name":"L","datatype":"BYTES","shape":[1],"data":["yes"]},` +
		`{"name":"S","datatype":"FP32","shape":[1,3],"parameters":{"binary_data_size":12}}]}`
	body := append([]byte(head), f32(0.1, 0.2, 0.7)...)
	_, err := DecodeHTTPResponse(body, "")
	if err == nil {
		t.Fatal("binary data without the header length must fail")
	}
	r, err := DecodeHTTPResponse(body, itoa(len(head)))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Outputs) != 2 || !bytes.Equal(r.Outputs[1].Raw, f32(0.1, 0.2, 0.7)) || string(r.Outputs[0].Data) != `["yes"]` {
		t.Errorf("decoded %+v", r)
	}
	for _, hl := range []string{"x", "-1", itoa(len(body) + 1), itoa(len(head) - 3)} {
		if _, err := DecodeHTTPResponse(body, hl); err == nil {
			t.Errorf("header length %q should fail", hl)
		}
	}
	if _, err := DecodeHTTPResponse(append(body, 0), itoa(len(head))); err == nil {
		t.Error("trailing bytes should fail")
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func FuzzDecodeHTTPResponse(f *testing.F) {
	f.Add([]byte(`{"outputs":[{"name":"S","parameters":{"binary_data_size":4}}]}abcd`), "62")
	f.Add([]byte(`{"outputs":[]}`), "")
	f.Add([]byte(`{"outputs":[{"parameters":{"binary_data_size":-1}}]}`), "50")
	f.Fuzz(func(t *testing.T, body []byte, hl string) {
		r, err := DecodeHTTPResponse(body, hl)
		if err != nil {
			return
		}
		total := 0
		for _, o := range r.Outputs {
			total += len(o.Raw)
		}
		if total > len(body) {
			t.Fatalf("outputs hold %d bytes of a %d-byte body", total, len(body))
		}
	})
}

// FuzzRawBytes: a BYTES tensor holding the elements of any well-formed
// payload encodes back to that payload.
func FuzzRawBytes(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 'a'})
	f.Add([]byte{255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		els, err := datatype.Split(b)
		if err != nil {
			return
		}
		tt := Tensor{Datatype: "BYTES", Elems: els}
		if !bytes.Equal(tt.RawBytes(), b) {
			t.Fatal("datatype.Split and RawBytes do not round-trip")
		}
	})
}

func TestParseStats(t *testing.T) {
	doc := `{"model_stats":[
	 {"name":"m","version":"1","inference_count":5,"execution_count":2,
	  "inference_stats":{"success":{"count":5,"ns":500},"queue":{"count":"5","ns":"50"}},
	  "batch_stats":[{"batch_size":"4","compute_infer":{"count":1,"ns":10}}]},
	 {"name":"m","version":"2","inference_count":9},
	 {"name":"other","version":"1","inference_count":99}]}`
	s, err := ParseStats([]byte(doc), "m", "1")
	if err != nil {
		t.Fatal(err)
	}
	if s.InferenceCount != 5 || s.InferenceStats.Queue.NS != 50 || s.BatchStats[0].BatchSize != 4 || s.BatchStats[0].ComputeInfer.Count != 1 {
		t.Errorf("parsed %+v", s)
	}
	if s, _ := ParseStats([]byte(doc), "m", ""); s.Version != "2" {
		t.Errorf("no version: picked %q, want the busiest (2)", s.Version)
	}
	if _, err := ParseStats([]byte(doc), "nope", ""); err == nil {
		t.Error("unknown model should fail")
	}
	if _, err := ParseStats([]byte(`{"model_stats":[{"name":"m","inference_count":-1}]}`), "m", ""); err == nil {
		t.Error("negative counter should fail")
	}
}

func FuzzParseStats(f *testing.F) {
	f.Add([]byte(`{"model_stats":[{"name":"m","version":"1","inference_count":"3"}]}`))
	f.Add([]byte(`{"model_stats":[{"name":"m","inference_stats":{"success":{"count":1,"ns":2}}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseStats(b, "m", "")
	})
}

func TestCheckLoopback(t *testing.T) {
	ctx := context.Background()
	for _, ok := range []string{"127.0.0.1:8000", "localhost:1", "[::1]:8001", "127.1.2.3"} {
		if err := CheckLoopback(ctx, ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"10.0.0.1:8000", "8.8.8.8", "[2001:db8::1]:80", ""} {
		if err := CheckLoopback(ctx, bad); err == nil {
			t.Errorf("%q should be refused", bad)
		}
	}
}

func TestBaseURL(t *testing.T) {
	b, hp, err := BaseURL("127.0.0.1:8000")
	if err != nil || b != "http://127.0.0.1:8000" || hp != "127.0.0.1:8000" {
		t.Errorf("%q %q %v", b, hp, err)
	}
	if _, _, err := BaseURL("https://x"); err == nil {
		t.Error("https should be refused")
	}
}

func TestHTTPClientStatusAndTiming(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/infer") && r.Header.Get(HeaderLength) != "":
			w.WriteHeader(503)
			_, _ = w.Write([]byte(`{"error":"queue full"}`))
		case strings.HasSuffix(r.URL.Path, "/infer"):
			time.Sleep(5 * time.Millisecond)
			_, _ = w.Write([]byte(`{"model_name":"m","model_version":"1","outputs":[]}`))
		case strings.HasSuffix(r.URL.Path, "/config"):
			_, _ = w.Write([]byte(`{"name":"m","max_batch_size":4}`))
		default:
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()
	c := NewHTTPClient(srv.URL, 2, time.Second)
	defer c.Close()
	req := Request{Model: "m", Inputs: []Tensor{{Name: "A", Datatype: "INT32", Shape: []int64{1}, Data: make([]byte, 4)}}}
	p, _ := c.Prepare(req, false)
	if o := c.Infer(context.Background(), p); o.Status != "" || o.Err != nil {
		t.Errorf("JSON request: %+v", o)
	}
	pb, _ := c.Prepare(req, true)
	if o := c.Infer(context.Background(), pb); o.Status != "HTTP 503" || !strings.Contains(o.Err.Error(), "queue full") {
		t.Errorf("binary request: %+v", o)
	}
	cfg, err := c.Config(context.Background(), "m", "")
	if err != nil || cfg.MaxBatchSize != 4 {
		t.Errorf("config %+v %v", cfg, err)
	}
	if _, err := c.Metadata(context.Background(), "m", ""); err == nil {
		t.Error("404 metadata should fail")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if o := c.Infer(ctx, p); o.Status != "timeout" {
		t.Errorf("deadline: status %q", o.Status)
	}
}

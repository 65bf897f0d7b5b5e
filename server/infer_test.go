package server

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/binary"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/backend"
)

func TestInferJSON(t *testing.T) {
	h := newTestServer(t, testRepo(), Options{}).HTTPHandler()
	for _, p := range []string{"/v2/models/simple/infer", "/v2/models/simple/versions/1/infer"} {
		r := do(t, h, "POST", p, []byte(simpleReq))
		if r.code != 200 {
			t.Fatalf("%s = %d %s", p, r.code, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" || r.header.Get("Inference-Header-Content-Length") != "" {
			t.Errorf("content-type %q, header length %q", ct, r.header.Get("Inference-Header-Content-Length"))
		}
		var resp struct {
			ID           string `json:"id"`
			ModelName    string `json:"model_name"`
			ModelVersion string `json:"model_version"`
			Outputs      []struct {
				Name     string  `json:"name"`
				Datatype string  `json:"datatype"`
				Shape    []int64 `json:"shape"`
				Data     []int32 `json:"data"`
			} `json:"outputs"`
		}
		if err := json.Unmarshal(r.body, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.ID != "req-7" || resp.ModelName != "simple" || resp.ModelVersion != "1" || len(resp.Outputs) != 2 {
			t.Fatalf("response = %s", r.body)
		}
		for i := range 16 {
			if resp.Outputs[0].Data[i] != int32(i+1) || resp.Outputs[1].Data[i] != int32(i-1) {
				t.Fatalf("outputs wrong at %d: %s", i, r.body)
			}
		}
		if resp.Outputs[0].Name != "OUTPUT0" || resp.Outputs[0].Datatype != "INT32" || backend.FormatShape(resp.Outputs[0].Shape) != "[1,16]" {
			t.Errorf("output 0 = %+v", resp.Outputs[0])
		}
	}
}

func TestInferNoIDNoEcho(t *testing.T) {
	h := newTestServer(t, testRepo(), Options{}).HTTPHandler()
	body := strings.Replace(simpleReq, `"id":"req-7",`, "", 1)
	r := do(t, h, "POST", "/v2/models/simple/infer", []byte(body))
	if v := r.json(t); r.code != 200 || v["id"] != nil {
		t.Errorf("response without a request id = %d %s", r.code, r.body)
	}
}

func TestInferParametersReachModel(t *testing.T) {
	repo := testRepo()
	h := newTestServer(t, repo, Options{}).HTTPHandler()
	body := strings.Replace(simpleReq, `"id":"req-7",`, `"id":"x","parameters":{"priority":2,"timeout":1500,"custom":"v","n":12345678901234567},`, 1)
	r := do(t, h, "POST", "/v2/models/simple/infer", []byte(body))
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	m, _ := repo.Model("simple", 1)
	last := m.(*fakeModel).lastRequest()
	if last.Priority != 2 || last.Timeout != 1500*time.Microsecond || last.Parameters["custom"] != "v" || last.Parameters["n"] != int64(12345678901234567) {
		t.Errorf("request seen by model: priority %d timeout %v params %v", last.Priority, last.Timeout, last.Parameters)
	}
	if last.Start.IsZero() {
		t.Error("request Start not set")
	}
}

// binaryBody frames a JSON header and blobs for the binary extension.
func binaryBody(header string, blobs ...[]byte) ([]byte, string) {
	b := []byte(header)
	for _, x := range blobs {
		b = append(b, x...)
	}
	return b, strconv.Itoa(len(header))
}

func seq(n int, f func(i int) int32) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func TestInferBinary(t *testing.T) {
	h := newTestServer(t, testRepo(), Options{}).HTTPHandler()
	a := seq(16, func(i int) int32 { return int32(i * 3) })
	b := seq(16, func(i int) int32 { return 2 })
	hdr := `{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"INT32","parameters":{"binary_data_size":64}},` +
		`{"name":"INPUT1","shape":[1,16],"datatype":"INT32","parameters":{"binary_data_size":64}}],` +
		`"outputs":[{"name":"OUTPUT0","parameters":{"binary_data":true}},{"name":"OUTPUT1"}]}`
	body, hl := binaryBody(hdr, i32bytes(a), i32bytes(b))
	r := do(t, h, "POST", "/v2/models/simple/infer", body, "Inference-Header-Content-Length", hl)
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	if r.header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("content-type %q", r.header.Get("Content-Type"))
	}
	jl, err := strconv.Atoi(r.header.Get("Inference-Header-Content-Length"))
	if err != nil || jl > len(r.body) {
		t.Fatalf("bad Inference-Header-Content-Length %q", r.header.Get("Inference-Header-Content-Length"))
	}
	var resp struct {
		Outputs []struct {
			Name       string         `json:"name"`
			Parameters map[string]int `json:"parameters"`
			Data       []int32        `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(r.body[:jl], &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Outputs) != 2 || resp.Outputs[0].Parameters["binary_data_size"] != 64 || resp.Outputs[0].Data != nil {
		t.Fatalf("json part = %s", r.body[:jl])
	}
	// OUTPUT1 listed without binary_data: JSON (Appendix A.1).
	if len(resp.Outputs[1].Data) != 16 || resp.Outputs[1].Data[5] != 13 {
		t.Errorf("OUTPUT1 = %+v", resp.Outputs[1])
	}
	got := i32s(r.body[jl:])
	if len(got) != 16 || got[5] != 17 {
		t.Errorf("binary OUTPUT0 = %v", got)
	}
}

func TestBinaryDataOutputQuirk(t *testing.T) {
	h := newTestServer(t, testRepo(), Options{}).HTTPHandler()
	// binary_data_output applies to unlisted outputs only: with no outputs
	// list, everything comes back binary.
	body := strings.Replace(simpleReq, `"id":"req-7",`, `"parameters":{"binary_data_output":true},`, 1)
	r := do(t, h, "POST", "/v2/models/simple/infer", []byte(body))
	jl, _ := strconv.Atoi(r.header.Get("Inference-Header-Content-Length"))
	if r.code != 200 || jl == 0 || len(r.body)-jl != 128 {
		t.Fatalf("binary_data_output, no list: %d, json %d of %d bytes: %s", r.code, jl, len(r.body), r.body)
	}
	// Listed outputs without binary_data come back as JSON.
	body = strings.Replace(simpleReq, `"id":"req-7",`, `"parameters":{"binary_data_output":true},"outputs":[{"name":"OUTPUT0","parameters":{"binary_data":false}},{"name":"OUTPUT1"}],`, 1)
	r = do(t, h, "POST", "/v2/models/simple/infer", []byte(body))
	if r.code != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("listed outputs: %d %q %s", r.code, r.header.Get("Content-Type"), r.body)
	}
}

func TestInferRawBinary(t *testing.T) {
	h := newTestServer(t, testRepo(), Options{}).HTTPHandler()
	for _, n := range []int{16} {
		data := f32bytes(make([]float32, n))
		for i := range n {
			binary.LittleEndian.PutUint32(data[4*i:], uint32(i)<<20)
		}
		r := do(t, h, "POST", "/v2/models/identity_fp32/infer", data, "Inference-Header-Content-Length", "0")
		jl, _ := strconv.Atoi(r.header.Get("Inference-Header-Content-Length"))
		if r.code != 200 || !bytes.Equal(r.body[jl:], data) {
			t.Fatalf("raw binary: %d %s", r.code, r.body)
		}
	}
	// BYTES [1]: the server adds the length prefix.
	r := do(t, h, "POST", "/v2/models/strings/infer", []byte("427"), "Inference-Header-Content-Length", "0")
	jl, _ := strconv.Atoi(r.header.Get("Inference-Header-Content-Length"))
	if r.code != 200 || !bytes.Equal(r.body[jl:], []byte{3, 0, 0, 0, '4', '2', '7'}) {
		t.Fatalf("raw BYTES: %d %q", r.code, r.body)
	}
	// Variable dims: more than one -1 cannot be deduced.
	r = do(t, h, "POST", "/v2/models/multi/infer", make([]byte, 8), "Inference-Header-Content-Length", "0")
	if r.code != 400 || !strings.Contains(r.errMsg(t), "more than one variable-sized dimension") {
		t.Errorf("multi-variable raw: %d %s", r.code, r.body)
	}
	r = do(t, h, "POST", "/v2/models/simple/infer", make([]byte, 64), "Inference-Header-Content-Length", "0")
	if r.code != 400 || !strings.Contains(r.errMsg(t), "Raw request must only have 1 input") {
		t.Errorf("raw to a two-input model: %d %s", r.code, r.body)
	}
}

func TestInferBytesJSON(t *testing.T) {
	h := newTestServer(t, testRepo(), Options{}).HTTPHandler()
	r := do(t, h, "POST", "/v2/models/strings/infer", []byte(`{"inputs":[{"name":"INPUT0","shape":[1],"datatype":"BYTES","data":["h\"é\u0001"]}]}`))
	v := r.json(t)
	outs, _ := v["outputs"].([]any)
	if r.code != 200 || len(outs) != 1 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	data := outs[0].(map[string]any)["data"].([]any)
	if data[0] != "h\"é\u0001" {
		t.Errorf("BYTES round trip = %q", data[0])
	}
}

func TestCompression(t *testing.T) {
	h := newTestServer(t, testRepo(), Options{}).HTTPHandler()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(simpleReq))
	zw.Close()
	var zl bytes.Buffer
	dw := zlib.NewWriter(&zl)
	dw.Write([]byte(simpleReq))
	dw.Close()
	for enc, body := range map[string][]byte{"gzip": gz.Bytes(), "deflate": zl.Bytes()} {
		r := do(t, h, "POST", "/v2/models/simple/infer", body, "Content-Encoding", enc)
		if v := r.json(t); r.code != 200 || v["id"] != "req-7" {
			t.Errorf("%s request: %d %s", enc, r.code, r.body)
		}
	}
	r := do(t, h, "POST", "/v2/models/simple/infer", []byte(simpleReq), "Accept-Encoding", "deflate;q=0.5, gzip;q=0.9, br")
	if r.code != 200 || r.header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip response: %d %v", r.code, r.header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if !bytes.Contains(plain, []byte(`"model_name":"simple"`)) {
		t.Errorf("decompressed response = %s", plain)
	}
	r = do(t, h, "POST", "/v2/models/simple/infer", []byte(simpleReq), "Accept-Encoding", "deflate")
	if r.header.Get("Content-Encoding") != "deflate" {
		t.Fatalf("deflate response: %v", r.header)
	}
	zr2, err := zlib.NewReader(bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if plain, _ := io.ReadAll(zr2); !bytes.Contains(plain, []byte(`"OUTPUT1"`)) {
		t.Errorf("deflate response = %s", plain)
	}
	r = do(t, h, "POST", "/v2/models/simple/infer", []byte(simpleReq), "Content-Encoding", "br")
	if r.code != 415 || r.header.Get("Accept-Encoding") != "gzip, deflate" || !strings.Contains(r.errMsg(t), "unsupported Content-Encoding 'br': supported are identity, gzip") {
		t.Errorf("unsupported encoding: %d %v %s", r.code, r.header, r.body)
	}
	r = do(t, h, "POST", "/v2/models/simple/infer", []byte("not gzip"), "Content-Encoding", "gzip")
	if r.code != 400 {
		t.Errorf("corrupt gzip: %d %s", r.code, r.body)
	}
}

func TestClassification(t *testing.T) {
	h := newTestServer(t, testRepo(), Options{}).HTTPHandler()
	body := `{"inputs":[{"name":"INPUT0","shape":[2,4],"datatype":"FP32","data":[0.1,0.7,0.5,0.2, 3,2,1,4]}],
	  "outputs":[{"name":"OUTPUT0","parameters":{"classification":2}}]}`
	r := do(t, h, "POST", "/v2/models/labels/infer", []byte(body))
	var resp struct {
		Outputs []struct {
			Datatype string   `json:"datatype"`
			Shape    []int64  `json:"shape"`
			Data     []string `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(r.body, &resp); err != nil || r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	o := resp.Outputs[0]
	want := []string{"0.700000:1:dog", "0.500000:2:bird", "4.000000:3:fish", "3.000000:0:cat"}
	if o.Datatype != "BYTES" || backend.FormatShape(o.Shape) != "[2,2]" || strings.Join(o.Data, " ") != strings.Join(want, " ") {
		t.Errorf("classification = %+v, want BYTES [2,2] %v", o, want)
	}
	// BYTES outputs cannot be classified.
	r = do(t, h, "POST", "/v2/models/strings/infer", []byte(`{"inputs":[{"name":"INPUT0","shape":[1],"datatype":"BYTES","data":["a"]}],"outputs":[{"name":"OUTPUT0","parameters":{"classification":1}}]}`))
	if r.code != 400 || !strings.Contains(r.errMsg(t), "class result not available") {
		t.Errorf("classification of BYTES: %d %s", r.code, r.body)
	}
}

func TestInferErrors(t *testing.T) {
	h := newTestServer(t, testRepo(), Options{MaxInputSize: 4096}).HTTPHandler()
	in := func(shape, dt, data string) string {
		return `{"inputs":[{"name":"INPUT0","shape":` + shape + `,"datatype":"` + dt + `","data":` + data + `},` +
			`{"name":"INPUT1","shape":[1,16],"datatype":"INT32","data":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}]}`
	}
	sixteen := "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]"
	deep := func(n int) string { return strings.Repeat("[", n) + "1" + strings.Repeat("]", n) }
	for _, tc := range []struct {
		name, model, body string
		hdr               []string // {"auto", blob}: binary framing with blob after the JSON
		code              int
		msg               string
	}{
		{"malformed JSON", "simple", `{"inputs":[`, nil, 400, "failed to parse the request JSON"},
		{"id not a string", "simple", `{"id":5,"inputs":[]}`, nil, 400, "'id'"},
		{"no inputs", "simple", `{"inputs":[]}`, nil, 400, "no inputs"},
		{"unknown input", "simple", strings.Replace(in("[1,16]", "INT32", sixteen), `"INPUT0"`, `"INPUTX"`, 1), nil, 400, "unexpected inference input 'INPUTX' for model 'simple'"},
		{"duplicate input", "simple", strings.Replace(in("[1,16]", "INT32", sixteen), `"INPUT1"`, `"INPUT0"`, 1), nil, 400, "input 'INPUT0' already exists in request"},
		{"missing input", "simple", `{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"INT32","data":` + sixteen + `}]}`, nil, 400, "expected 2 inputs but got 1 inputs for model 'simple'"},
		{"wrong datatype", "simple", in("[1,16]", "INT64", sixteen), nil, 400, "inference input 'INPUT0' data-type is 'INT64', but model 'simple' expects 'INT32'"},
		{"invalid datatype", "simple", in("[1,16]", "INT33", sixteen), nil, 400, "invalid datatype 'INT33'"},
		{"wrong shape", "simple", in("[1,15]", "INT32", "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]"), nil, 400, "unexpected shape for input 'INPUT0' for model 'simple'. Expected [-1,16], got [1,15]"},
		{"negative dim", "simple", in("[-1,16]", "INT32", sixteen), nil, 400, "'shape'"},
		{"batch too large", "simple", in("[9,16]", "INT32", "["+strings.Repeat("0,", 143)+"0]"), nil, 400, "inference request batch-size must be <= 8 for 'simple'"},
		{"batch mismatch", "simple", in("[2,16]", "INT32", "["+strings.Repeat("0,", 31)+"0]"), nil, 400, "input 'INPUT1' batch size does not match other inputs for 'simple'"},
		{"too few elements", "simple", in("[1,16]", "INT32", "[1,2]"), nil, 400, "shape does not match"},
		{"too many elements", "simple", in("[1,16]", "INT32", "["+strings.Repeat("0,", 16)+"0]"), nil, 400, "shape does not match"},
		{"float for int", "simple", in("[1,16]", "INT32", "[1.5"+strings.Repeat(",0", 15)+"]"), nil, 400, "not a valid INT32"},
		{"string for int", "simple", in("[1,16]", "INT32", `["a"`+strings.Repeat(",0", 15)+"]"), nil, 400, "expected integer elements"},
		{"int out of range", "simple", in("[1,16]", "INT32", "[4294967296"+strings.Repeat(",0", 15)+"]"), nil, 400, "not a valid INT32"},
		{"depth 120", "identity_fp32", `{"inputs":[{"name":"INPUT0","shape":[1,1],"datatype":"FP32","data":` + deep(120) + `}]}`, nil, 400, "JSON nesting depth exceeds maximum allowed limit (100)"},
		{"FP16 in JSON", "identity_fp16", `{"inputs":[{"name":"INPUT0","shape":[4],"datatype":"FP16","data":[1,2,3,4]}]}`, nil, 400, "receiving FP16 data via JSON is not supported"},
		{"data and binary", "identity_fp32", `{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"FP32","data":[1],"parameters":{"binary_data_size":64}}]}`, []string{"auto", strings.Repeat("x", 64)}, 400, "Input must set only one of the following fields"},
		{"binary without header", "identity_fp32", `{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"FP32","parameters":{"binary_data_size":64}}]}`, nil, 400, "must specify valid 'Infer-Header-Content-Length'"},
		{"header not int", "identity_fp32", `{}`, []string{"Inference-Header-Content-Length", "abc"}, 400, "Unable to parse Inference-Header-Content-Length, got: abc"},
		{"header out of range", "identity_fp32", `{}`, []string{"Inference-Header-Content-Length", "99999999999"}, 400, "out of range"},
		{"header beyond body", "identity_fp32", `{}`, []string{"Inference-Header-Content-Length", "9999"}, 400, "inference header size should be in range (0, 2), got: 9999"},
		{"binary short", "identity_fp32", `{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"FP32","parameters":{"binary_data_size":64}}]}`, []string{"auto", "abcd"}, 400, "unexpected size for input 'INPUT0', expecting 60 additional bytes for model 'identity_fp32'"},
		{"binary extra", "identity_fp32", `{"inputs":[{"name":"INPUT0","shape":[1,1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}`, []string{"auto", "abcdefgh"}, 400, "unexpected additional input data for model 'identity_fp32'"},
		{"binary byte size mismatch", "identity_fp32", `{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"FP32","parameters":{"binary_data_size":4}}]}`, []string{"auto", "abcd"}, 400, "input byte size mismatch for input 'INPUT0' for model 'identity_fp32'. Expected 64, got 4"},
		{"unknown output", "simple", strings.Replace(in("[1,16]", "INT32", sixteen), `]}]}`, `]}],"outputs":[{"name":"OUT9"}]}`, 1), nil, 400, "unexpected inference output 'OUT9' for model 'simple'"},
		{"duplicate output", "simple", strings.Replace(in("[1,16]", "INT32", sixteen), `]}]}`, `]}],"outputs":[{"name":"OUTPUT0"},{"name":"OUTPUT0"}]}`, 1), nil, 400, "output 'OUTPUT0' already exists in request"},
		{"reserved parameter", "simple", `{"parameters":{"triton_x":1},"inputs":[]}`, nil, 400, "reserved for Triton usage"},
		{"shared memory", "identity_fp32", `{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"FP32","parameters":{"shared_memory_region":"r"}}]}`, nil, 400, "shared memory is not supported by this server: input 'INPUT0' sets parameter 'shared_memory_region'"},
		{"bare string data", "identity_fp32", `{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"FP32","data":"1,2,3"}]}`, nil, 400, "'data' of input 'INPUT0' must be a JSON array"},
		{"bad version", "identity_fp32/versions/abc", `{}`, nil, 400, "failed to get model version from specified version string 'abc'"},
		{"body too large", "identity_fp32", `{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"FP32","data":[` + strings.Repeat("1,", 3000) + `1]}]}`, nil, 413, "exceeds the maximum allowed input size"},
		{"JSON tensor too large", "multi", `{"inputs":[{"name":"INPUT0","shape":[100000,100000],"datatype":"FP32","data":[1]}]}`, nil, 400, "exceeds the maximum allowed value"},
		{"unknown model", "nope", simpleReq, nil, 404, "Request for unknown model: 'nope' is not found"},
		{"model error", "failing", `{"inputs":[{"name":"INPUT0","shape":[1],"datatype":"FP32","data":[1]}]}`, nil, 503, "Exceeds maximum queue size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, hdr := []byte(tc.body), tc.hdr
			if len(hdr) == 2 && hdr[0] == "auto" {
				body, hdr = append(body, hdr[1]...), []string{"Inference-Header-Content-Length", strconv.Itoa(len(tc.body))}
			}
			r := do(t, h, "POST", "/v2/models/"+tc.model+"/infer", body, hdr...)
			if r.code != tc.code {
				t.Fatalf("status %d, want %d: %s", r.code, tc.code, r.body)
			}
			if msg := r.errMsg(t); !strings.Contains(msg, tc.msg) {
				t.Errorf("error %q does not contain %q", msg, tc.msg)
			}
		})
	}
	// Depth 50 is within the limit.
	r := do(t, h, "POST", "/v2/models/identity_fp32/infer", []byte(`{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"FP32","data":`+strings.Repeat("[", 50)+"1"+strings.Repeat(",1", 15)+strings.Repeat("]", 50)+`}]}`))
	if r.code != 200 {
		t.Errorf("depth 50: %d %s", r.code, r.body)
	}
}

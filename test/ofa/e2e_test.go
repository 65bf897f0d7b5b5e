package ofa_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
)

const tol = 1e-4

var client = &http.Client{Timeout: 60 * time.Second}

// input is one KServe v2 JSON input tensor.
type input struct {
	Name     string   `json:"name"`
	Shape    []int64  `json:"shape"`
	Datatype string   `json:"datatype"`
	Data     []string `json:"data"`
}

// inferBody is a JSON request for items (images base64-encoded); all
// items must agree on having a premise.
func inferBody(items []refCase, outputs ...string) []byte {
	n := int64(len(items))
	img := input{Name: "IMAGE", Shape: []int64{n}, Datatype: "BYTES"}
	hyp := input{Name: "HYPOTHESIS", Shape: []int64{n}, Datatype: "BYTES"}
	prem := input{Name: "PREMISE", Shape: []int64{n}, Datatype: "BYTES"}
	for _, c := range items {
		img.Data = append(img.Data, base64.StdEncoding.EncodeToString(env.images[c.Image]))
		hyp.Data = append(hyp.Data, c.Hypothesis)
		if c.Premise != nil {
			prem.Data = append(prem.Data, *c.Premise)
		}
	}
	req := map[string]any{"inputs": []input{img, hyp}}
	if items[0].Premise != nil {
		req["inputs"] = []input{img, prem, hyp}
	}
	if len(outputs) > 0 {
		var outs []map[string]string
		for _, o := range outputs {
			outs = append(outs, map[string]string{"name": o})
		}
		req["outputs"] = outs
	}
	b, _ := json.Marshal(req)
	return b
}

// reply is a KServe v2 JSON response.
type reply struct {
	Outputs []struct {
		Name     string          `json:"name"`
		Datatype string          `json:"datatype"`
		Shape    []int64         `json:"shape"`
		Data     json.RawMessage `json:"data"`
	} `json:"outputs"`
	Error string `json:"error"`
}

func post(t testing.TB, path, ctype string, body []byte, header map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", env.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// infer posts a JSON request and returns SCORES rows, LABEL and RESULT
// elements (nil when not returned).
func infer(t testing.TB, body []byte, header map[string]string) (scores [][3]float64, labels, results []string) {
	t.Helper()
	code, b := post(t, "/v2/models/ofa_entailment/infer", "application/json", body, header)
	if code != http.StatusOK {
		t.Fatalf("infer: HTTP %d: %s", code, b)
	}
	return parseReply(t, b)
}

func parseReply(t testing.TB, b []byte) (scores [][3]float64, labels, results []string) {
	t.Helper()
	var r reply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("response %s: %v", b, err)
	}
	for _, o := range r.Outputs {
		switch o.Name {
		case "SCORES":
			var flat []float64
			if err := json.Unmarshal(o.Data, &flat); err != nil || o.Datatype != "FP32" || len(o.Shape) != 2 || o.Shape[1] != 3 || len(flat) != int(o.Shape[0])*3 {
				t.Fatalf("SCORES %s %v %s: %v", o.Datatype, o.Shape, o.Data, err)
			}
			for i := 0; i < len(flat); i += 3 {
				scores = append(scores, [3]float64{flat[i], flat[i+1], flat[i+2]})
			}
		case "LABEL":
			if err := json.Unmarshal(o.Data, &labels); err != nil {
				t.Fatal(err)
			}
		case "RESULT":
			if err := json.Unmarshal(o.Data, &results); err != nil {
				t.Fatal(err)
			}
		}
	}
	return scores, labels, results
}

func near(got [3]float64, want []float64, eps float64) bool {
	for k := range got {
		if math.Abs(got[k]-want[k]) > eps {
			return false
		}
	}
	return true
}

// result is the RESULT JSON.
type result struct {
	Label      string             `json:"label"`
	Confidence float64            `json:"confidence"`
	AllScores  map[string]float64 `json:"all_scores"`
}

// checkResult checks a RESULT document against the reference case.
func checkResult(t testing.TB, js string, c refCase) {
	t.Helper()
	var r result
	dec := json.NewDecoder(strings.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("RESULT %q: %v", js, err)
	}
	if r.Label != c.Label {
		t.Errorf("RESULT label %q, reference %q", r.Label, c.Label)
	}
	got := [3]float64{r.AllScores["entailment"], r.AllScores["contradiction"], r.AllScores["neutral"]}
	if len(r.AllScores) != 3 || !near(got, c.Probabilities, tol) {
		t.Errorf("RESULT all_scores %v, reference %v", r.AllScores, c.Probabilities)
	}
	if best := max(got[0], got[1], got[2]); r.Confidence != best {
		t.Errorf("RESULT confidence %v, want the top score %v", r.Confidence, best)
	}
}

type statsSnapshot struct{ executions, inferences uint64 }

func stats(t testing.TB) statsSnapshot {
	t.Helper()
	resp, err := client.Get(env.base + "/v2/models/ofa_entailment/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		ModelStats []struct {
			InferenceCount uint64 `json:"inference_count"`
			ExecutionCount uint64 `json:"execution_count"`
		} `json:"model_stats"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || len(s.ModelStats) != 1 {
		t.Fatalf("stats: %v %+v", err, s)
	}
	return statsSnapshot{s.ModelStats[0].ExecutionCount, s.ModelStats[0].InferenceCount}
}

// TestScoresMatchReference: every image × prompt case, sent 16 at a time
// concurrently (different text lengths, with and without premise), gets the
// reference's probabilities; each wave of 16 is batched.
func TestScoresMatchReference(t *testing.T) {
	for start := 0; start < len(env.cases); start += 16 {
		wave := env.cases[start:min(start+16, len(env.cases))]
		before := stats(t)
		var wg sync.WaitGroup
		for i, c := range wave {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sc, labels, results := infer(t, inferBody([]refCase{c}), nil)
				if len(sc) != 1 || len(labels) != 1 || len(results) != 1 {
					t.Errorf("case %d: %d scores, %d labels, %d results", start+i, len(sc), len(labels), len(results))
					return
				}
				if !near(sc[0], c.Probabilities, tol) {
					t.Errorf("case %d (%s, %q): SCORES %v, reference %v", start+i, c.Image, c.Hypothesis, sc[0], c.Probabilities)
				}
				if labels[0] != c.Label {
					t.Errorf("case %d: LABEL %q, reference %q", start+i, labels[0], c.Label)
				}
				checkResult(t, results[0], c)
			}()
		}
		wg.Wait()
		after := stats(t)
		n := uint64(len(wave))
		t.Logf("wave of %d concurrent requests: %d executions", n, after.executions-before.executions)
		if after.inferences-before.inferences != n {
			t.Errorf("inference_count grew by %d, want %d", after.inferences-before.inferences, n)
		}
		if n == 16 && after.executions-before.executions >= n {
			t.Errorf("16 concurrent requests ran in %d executions; want them batched", after.executions-before.executions)
		}
	}
}

// TestMultiImageRequest: one request carrying 3 images (shape [3]).
func TestMultiImageRequest(t *testing.T) {
	var items []refCase
	for _, c := range env.cases {
		if c.Premise == nil && len(items) < 3 {
			items = append(items, c)
		}
	}
	sc, labels, _ := infer(t, inferBody(items, "SCORES", "LABEL"), nil)
	if len(sc) != 3 || len(labels) != 3 {
		t.Fatalf("%d scores, %d labels for 3 images", len(sc), len(labels))
	}
	for i, c := range items {
		if !near(sc[i], c.Probabilities, tol) || labels[i] != c.Label {
			t.Errorf("image %d: %v %q, reference %v %q", i, sc[i], labels[i], c.Probabilities, c.Label)
		}
	}
}

// binaryBody is a binary-extension request whose BYTES inputs carry raw
// bytes (name -> one element each).
func binaryBody(names []string, elems [][]byte) ([]byte, map[string]string) {
	var inputs []map[string]any
	var tail []byte
	for i, name := range names {
		var e []byte
		e = binary.LittleEndian.AppendUint32(e, uint32(len(elems[i])))
		e = append(e, elems[i]...)
		inputs = append(inputs, map[string]any{"name": name, "shape": []int64{1, 1}, "datatype": "BYTES",
			"parameters": map[string]any{"binary_data_size": len(e)}})
		tail = append(tail, e...)
	}
	hdr, _ := json.Marshal(map[string]any{"inputs": inputs})
	return append(hdr, tail...), map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(hdr))}
}

// TestBinaryExtension: the image file's raw bytes in the binary extension.
func TestBinaryExtension(t *testing.T) {
	c := env.cases[1] // with premise
	body, hdr := binaryBody([]string{"IMAGE", "HYPOTHESIS", "PREMISE"}, [][]byte{env.images[c.Image], []byte(c.Hypothesis), []byte(*c.Premise)})
	code, b := post(t, "/v2/models/ofa_entailment/infer", "application/octet-stream", body, hdr)
	if code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", code, b)
	}
	sc, _, results := parseReply(t, b)
	if len(sc) != 1 || !near(sc[0], c.Probabilities, tol) {
		t.Errorf("SCORES %v, reference %v", sc, c.Probabilities)
	}
	checkResult(t, results[0], c)
}

// tutorialBody is the OFA/Triton tutorial's request, byte for byte in its
// layout: IMAGE as a base64 string with shape [1], then PREMISE, then
// HYPOTHESIS.
func tutorialBody(img []byte, premise, hypothesis string) string {
	return `{"inputs":[{"name":"IMAGE","shape":[1],"datatype":"BYTES","data":["` + base64.StdEncoding.EncodeToString(img) +
		`"]},{"name":"PREMISE","shape":[1],"datatype":"BYTES","data":["` + premise +
		`"]},{"name":"HYPOTHESIS","shape":[1],"datatype":"BYTES","data":["` + hypothesis + `"]}]}`
}

// TestTutorialCurl: the tutorial's curl request works unchanged — no
// Content-Type of its own, so curl -d sends form-urlencoded.
func TestTutorialCurl(t *testing.T) {
	var c refCase
	for _, x := range env.cases {
		if x.Premise != nil && !strings.ContainsAny(*x.Premise+x.Hypothesis, `"\`) {
			c = x
			break
		}
	}
	body := tutorialBody(env.images[c.Image], *c.Premise, c.Hypothesis)
	check := func(name string, b []byte) {
		sc, labels, results := parseReply(t, b)
		if len(sc) != 1 || !near(sc[0], c.Probabilities, tol) || len(labels) != 1 || labels[0] != c.Label {
			t.Errorf("%s: SCORES %v LABEL %v, reference %v %q", name, sc, labels, c.Probabilities, c.Label)
		}
		if len(results) == 1 {
			checkResult(t, results[0], c)
		} else {
			t.Errorf("%s: %d RESULT elements", name, len(results))
		}
	}
	code, b := post(t, "/v2/models/ofa_entailment/infer", "application/x-www-form-urlencoded", []byte(body), nil)
	if code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", code, b)
	}
	check("net/http", b)
	if curl, err := exec.LookPath("curl"); err == nil {
		url := strings.TrimPrefix(env.base, "http://") + "/v2/models/ofa_entailment/infer"
		out, err := exec.Command(curl, "-sS", "-X", "POST", url, "-d", body).Output()
		if err != nil {
			t.Fatalf("curl: %v", err)
		}
		check("curl", out)
	}
}

// multipartBody builds a /predict form.
func multipartBody(t testing.TB, fields map[string]string, image []byte) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if image != nil {
		fw, err := w.CreateFormFile("image", "photo.jpg")
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(image)
	}
	for k, v := range fields {
		if err := w.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	return buf.Bytes(), w.FormDataContentType()
}

// TestPredict: POST /predict answers with the RESULT JSON itself.
func TestPredict(t *testing.T) {
	for _, c := range env.cases[:2] {
		fields := map[string]string{"hypothesis": c.Hypothesis}
		if c.Premise != nil {
			fields["premise"] = *c.Premise
		}
		body, ctype := multipartBody(t, fields, env.images[c.Image])
		code, b := post(t, "/predict", ctype, body, nil)
		if code != http.StatusOK {
			t.Fatalf("/predict: HTTP %d: %s", code, b)
		}
		checkResult(t, string(b), c)
	}
	c := env.cases[0]
	bad := []struct {
		name   string
		fields map[string]string
		image  []byte
		status int
		want   string
	}{
		{"no hypothesis", map[string]string{}, env.images[c.Image], 400, "form field 'hypothesis' is required"},
		{"no image", map[string]string{"hypothesis": "x"}, nil, 400, "form field 'image' is required"},
		{"unknown model", map[string]string{"hypothesis": "x", "model": "nope"}, env.images[c.Image], 404, "nope"},
		{"bad image", map[string]string{"hypothesis": "x"}, []byte("not an image!"), 400, "IMAGE[0]: unsupported image format"},
		{"extra field", map[string]string{"hypothesis": "x", "text": "y"}, env.images[c.Image], 400, "unexpected form field 'text'"},
	}
	for _, tt := range bad {
		body, ctype := multipartBody(t, tt.fields, tt.image)
		code, b := post(t, "/predict", ctype, body, nil)
		var e struct{ Error string }
		if code != tt.status || json.Unmarshal(b, &e) != nil || !strings.Contains(e.Error, tt.want) {
			t.Errorf("%s: HTTP %d %s; want %d with an error containing %q", tt.name, code, b, tt.status, tt.want)
		}
	}
	if code, b := post(t, "/predict", "application/json", []byte(`{}`), nil); code != 400 || !strings.Contains(string(b), "multipart/form-data") {
		t.Errorf("JSON body to /predict: HTTP %d %s", code, b)
	}
}

// TestGRPC: one request over gRPC gets the reference's SCORES.
func TestGRPC(t *testing.T) {
	c := env.cases[1]
	conn, err := grpc.NewClient(env.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	elem := func(b []byte) []byte { return append(binary.LittleEndian.AppendUint32(nil, uint32(len(b))), b...) }
	req := &pb.ModelInferRequest{
		ModelName: "ofa_entailment",
		Inputs: []*pb.ModelInferRequest_InferInputTensor{
			{Name: "IMAGE", Datatype: "BYTES", Shape: []int64{1, 1}},
			{Name: "HYPOTHESIS", Datatype: "BYTES", Shape: []int64{1, 1}},
			{Name: "PREMISE", Datatype: "BYTES", Shape: []int64{1, 1}},
		},
		Outputs:          []*pb.ModelInferRequest_InferRequestedOutputTensor{{Name: "SCORES"}, {Name: "LABEL"}},
		RawInputContents: [][]byte{elem(env.images[c.Image]), elem([]byte(c.Hypothesis)), elem([]byte(*c.Premise))},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := pb.NewGRPCInferenceServiceClient(conn).ModelInfer(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Outputs) != 2 || len(resp.RawOutputContents) != 2 || resp.Outputs[0].Name != "LABEL" || resp.Outputs[1].Name != "SCORES" {
		t.Fatalf("outputs %v", resp.Outputs)
	}
	raw := resp.RawOutputContents[1]
	if len(raw) != 12 {
		t.Fatalf("SCORES holds %d bytes", len(raw))
	}
	var got [3]float64
	for k := range got {
		got[k] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[k*4:])))
	}
	if !near(got, c.Probabilities, tol) {
		t.Errorf("gRPC SCORES %v, reference %v", got, c.Probabilities)
	}
	if label := string(resp.RawOutputContents[0][4:]); label != c.Label {
		t.Errorf("gRPC LABEL %q, reference %q", label, c.Label)
	}
}

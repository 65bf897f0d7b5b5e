package ocrofa_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
)

type output struct {
	Name     string          `json:"name"`
	Datatype string          `json:"datatype"`
	Shape    []int64         `json:"shape"`
	Raw      json.RawMessage `json:"data"`
	Data     []string        `json:"-"` // the elements of a BYTES output
}

func post(t testing.TB, model, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(env.http+"/v2/models/"+model+"/infer", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// bytesInputs is a JSON infer body of BYTES [1] inputs, name -> element.
func bytesInputs(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		v, _ := json.Marshal(kv[i+1])
		parts = append(parts, `{"name":"`+kv[i]+`","shape":[1],"datatype":"BYTES","data":[`+string(v)+`]}`)
	}
	return `{"inputs":[` + strings.Join(parts, ",") + `]}`
}

func outputs(t testing.TB, code int, body []byte) map[string]output {
	t.Helper()
	var r struct{ Outputs []output }
	if err := json.Unmarshal(body, &r); err != nil || code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	out := map[string]output{}
	for _, o := range r.Outputs {
		if o.Datatype == "BYTES" {
			if err := json.Unmarshal(o.Raw, &o.Data); err != nil {
				t.Fatalf("%s: %v", o.Name, err)
			}
		}
		out[o.Name] = o
	}
	return out
}

func TestOCRThenOFA(t *testing.T) {
	const text = "a red sign that says stop"
	img := photo(1, text)
	hyp := "the sign says stop."
	code, body := post(t, "ocr_then_ofa", bytesInputs("IMAGE", base64.StdEncoding.EncodeToString(img), "HYPOTHESIS", hyp))
	got := outputs(t, code, body)
	var order []string
	var r struct{ Outputs []output }
	_ = json.Unmarshal(body, &r)
	for _, o := range r.Outputs {
		order = append(order, o.Name)
	}
	if !slices.Equal(order, []string{"TEXT", "RESULT", "LABEL"}) {
		t.Errorf("outputs %v, want TEXT, RESULT, LABEL", order)
	}
	if tx := got["TEXT"]; len(tx.Data) != 1 || tx.Data[0] != text || tx.Datatype != "BYTES" {
		t.Errorf("TEXT = %+v, want the image's text %q", tx, text)
	}
	// The pipeline's answer is OFA's for the image, its text as premise and
	// the hypothesis.
	dcode, dbody := post(t, "ofa_entailment", bytesInputs("IMAGE", base64.StdEncoding.EncodeToString(img), "PREMISE", text, "HYPOTHESIS", hyp))
	direct := outputs(t, dcode, dbody)
	for _, name := range []string{"RESULT", "LABEL"} {
		if !slices.Equal(got[name].Data, direct[name].Data) || len(got[name].Data) != 1 {
			t.Errorf("%s = %v, want OFA's own answer %v", name, got[name].Data, direct[name].Data)
		}
	}
	var result struct {
		Label     string             `json:"label"`
		AllScores map[string]float64 `json:"all_scores"`
	}
	if err := json.Unmarshal([]byte(got["RESULT"].Data[0]), &result); err != nil || len(result.AllScores) != 3 || result.Label != got["LABEL"].Data[0] {
		t.Errorf("RESULT %q: %v", got["RESULT"].Data, err)
	}

	// gRPC, with the image's raw bytes.
	resp, err := grpcClient(t).ModelInfer(rpcCtx(t), grpcBytesRequest("ocr_then_ofa", "IMAGE", img, "HYPOTHESIS", []byte(hyp)))
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range resp.GetOutputs() {
		want := got[o.GetName()].Data[0]
		if elem := bytesElement(resp.GetRawOutputContents()[i]); elem != want {
			t.Errorf("gRPC %s = %q, want %q", o.GetName(), elem, want)
		}
	}
}

// TestOCRStepFails: an image the first step cannot read fails the pipeline
// with that step's error and status, the ensemble and the step named.
func TestOCRStepFails(t *testing.T) {
	img := photo(2, "")
	code, body := post(t, "ocr_then_ofa", bytesInputs("IMAGE", base64.StdEncoding.EncodeToString(img), "HYPOTHESIS", "anything."))
	want := "in ensemble 'ocr_then_ofa', step 0 (model 'ocr'): ocr_standin: IMAGE[0]: the image holds no text"
	var e struct{ Error string }
	if err := json.Unmarshal(body, &e); err != nil || code != 400 || e.Error != want {
		t.Errorf("%d %s, want 400 %q", code, body, want)
	}
	_, err := grpcClient(t).ModelInfer(rpcCtx(t), grpcBytesRequest("ocr_then_ofa", "IMAGE", img, "HYPOTHESIS", []byte("anything.")))
	if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || st.Message() != want {
		t.Errorf("gRPC: %v, want InvalidArgument %q", err, want)
	}
}

// TestStepStatistics: one pipeline request counts once for the ensemble
// and once in each step model.
func TestStepStatistics(t *testing.T) {
	before := successes(t)
	code, body := post(t, "ocr_then_ofa", bytesInputs("IMAGE", base64.StdEncoding.EncodeToString(photo(3, "two cups")), "HYPOTHESIS", "there are cups."))
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	after := successes(t)
	for _, name := range []string{"ocr_then_ofa", "ocr", "ofa_entailment"} {
		if after[name]-before[name] != 1 {
			t.Errorf("%s: success +%d, want +1", name, after[name]-before[name])
		}
	}
}

// successes reads every model's success count from the statistics extension.
func successes(t testing.TB) map[string]uint64 {
	t.Helper()
	resp, err := http.Get(env.http + "/v2/models/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		ModelStats []struct {
			Name           string `json:"name"`
			InferenceStats map[string]struct {
				Count uint64 `json:"count"`
			} `json:"inference_stats"`
		} `json:"model_stats"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, m := range st.ModelStats {
		out[m.Name] = m.InferenceStats["success"].Count
	}
	return out
}

// cacheHits reads a model's cache_hit count.
func cacheHits(t testing.TB, model string) uint64 {
	t.Helper()
	resp, err := http.Get(env.http + "/v2/models/" + model + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		ModelStats []struct {
			InferenceStats map[string]struct {
				Count uint64 `json:"count"`
			} `json:"inference_stats"`
		} `json:"model_stats"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || len(st.ModelStats) != 1 {
		t.Fatalf("stats of %s: %v", model, err)
	}
	return st.ModelStats[0].InferenceStats["cache_hit"].Count
}

// TestCachedOFA: the same OFA request twice; the second is a hit with a
// byte-identical body.
func TestCachedOFA(t *testing.T) {
	body := bytesInputs("IMAGE", base64.StdEncoding.EncodeToString(photo(4, "")), "HYPOTHESIS", "a colourful picture.")
	hits := cacheHits(t, "ofa_cached")
	c1, b1 := post(t, "ofa_cached", body)
	c2, b2 := post(t, "ofa_cached", body)
	if c1 != 200 || c2 != 200 || !bytes.Equal(b1, b2) {
		t.Fatalf("%d %s\n%d %s", c1, b1, c2, b2)
	}
	if got := cacheHits(t, "ofa_cached") - hits; got != 1 {
		t.Errorf("cache_hit +%d, want +1", got)
	}
}

var benchSeq atomic.Int64

// BenchmarkResponseCache measures, over HTTP in the same run, the latency
// of a cache miss (an OFA request never asked before: a new hypothesis
// each time) and of a hit (the same request again), and reports both p50s
// and their ratio.
func BenchmarkResponseCache(b *testing.B) {
	img := base64.StdEncoding.EncodeToString(photo(5, ""))
	hit := bytesInputs("IMAGE", img, "HYPOTHESIS", "a picture of colours.")
	if code, body := post(b, "ofa_cached", hit); code != 200 {
		b.Fatalf("%d %s", code, body)
	}
	hits0 := cacheHits(b, "ofa_cached")
	var miss, hitTimes []time.Duration
	for b.Loop() {
		q := bytesInputs("IMAGE", img, "HYPOTHESIS", fmt.Sprintf("question number %d.", benchSeq.Add(1)))
		start := time.Now()
		if code, body := post(b, "ofa_cached", q); code != 200 {
			b.Fatalf("%d %s", code, body)
		}
		miss = append(miss, time.Since(start))
		start = time.Now()
		if code, body := post(b, "ofa_cached", hit); code != 200 {
			b.Fatalf("%d %s", code, body)
		}
		hitTimes = append(hitTimes, time.Since(start))
	}
	if got := cacheHits(b, "ofa_cached") - hits0; got != uint64(len(hitTimes)) {
		b.Fatalf("%d cache hits for %d repeated requests", got, len(hitTimes))
	}
	m, h := p50(miss), p50(hitTimes)
	b.ReportMetric(float64(m.Microseconds()), "miss-p50-µs")
	b.ReportMetric(float64(h.Microseconds()), "hit-p50-µs")
	b.ReportMetric(float64(m)/float64(h), "miss/hit")
}

func p50(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func grpcClient(t testing.TB) pb.GRPCInferenceServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(env.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewGRPCInferenceServiceClient(conn)
}

func rpcCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// grpcBytesRequest sends BYTES [1] inputs, name -> element, as raw contents.
func grpcBytesRequest(model string, kv ...any) *pb.ModelInferRequest {
	req := &pb.ModelInferRequest{ModelName: model}
	for i := 0; i+1 < len(kv); i += 2 {
		elem := kv[i+1].([]byte)
		req.Inputs = append(req.Inputs, &pb.ModelInferRequest_InferInputTensor{Name: kv[i].(string), Datatype: "BYTES", Shape: []int64{1}})
		req.RawInputContents = append(req.RawInputContents, append(binary.LittleEndian.AppendUint32(nil, uint32(len(elem))), elem...))
	}
	return req
}

// bytesElement is the one element of raw BYTES contents.
func bytesElement(raw []byte) string {
	if len(raw) < 4 {
		return ""
	}
	return string(raw[4 : 4+binary.LittleEndian.Uint32(raw)])
}

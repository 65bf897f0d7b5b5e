package ensemble_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ofaserve/ofaserve/test/e2e/linear"
)

// TestSameRequestTwice: the second of two identical requests is a cache
// hit in the statistics and the metrics, with a byte-identical answer, and
// the model ran once.
func TestSameRequestTwice(t *testing.T) {
	x, y := inputs(42)
	body := jsonRequest("twice", "INPUT__0", "INPUT__1", x, y)
	before := stats(t)["linear_cached"]
	first := post(t, "/v2/models/linear_cached/infer", body)
	second := post(t, "/v2/models/linear_cached/infer", body)
	if first.code != 200 || !bytes.Equal(first.body, second.body) {
		t.Fatalf("first %d %s\nsecond %d %s", first.code, first.body, second.code, second.body)
	}
	after := stats(t)["linear_cached"]
	d := func(k string) uint64 { return after.InferenceStats[k].Count - before.InferenceStats[k].Count }
	if d("cache_hit") != 1 || d("cache_miss") != 1 || d("success") != 2 || after.InferenceCount-before.InferenceCount != 1 {
		t.Errorf("cache_hit +%d, cache_miss +%d, success +%d, inference_count +%d; want 1, 1, 2, 1",
			d("cache_hit"), d("cache_miss"), d("success"), after.InferenceCount-before.InferenceCount)
	}
	if metric(t, `nv_cache_num_hits_per_model{model="linear_cached",version="1"}`) < 1 {
		t.Error("nv_cache_num_hits_per_model did not count the hit")
	}
	metric(t, `nv_cache_miss_duration_per_model{model="linear_cached",version="1"}`)

	// The encoding is the frontend's: the same inputs asked for in binary
	// are a hit too, answered in binary.
	hdr := `{"inputs":[{"name":"INPUT__0","shape":[1,8],"datatype":"FP32","data":` + nums(x) + `},` +
		`{"name":"INPUT__1","shape":[1,8],"datatype":"FP32","data":` + nums(y) + `}],` +
		`"outputs":[{"name":"OUTPUT__0","parameters":{"binary_data":true}},{"name":"OUTPUT__1","parameters":{"binary_data":true}}]}`
	resp, err := http.Post("http://"+env.srv.HTTP+"/v2/models/linear_cached/infer", "application/json", strings.NewReader(hdr))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	jl, err := strconv.Atoi(resp.Header.Get("Inference-Header-Content-Length"))
	if resp.StatusCode != 200 || err != nil || len(raw)-jl != 20 {
		t.Fatalf("binary: %d %v %q", resp.StatusCode, resp.Header, raw)
	}
	o0, _ := linear.Expected(x, y)
	for j := range 4 {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[jl+4*j:])); !linear.Near(float64(got), o0[j]) {
			t.Errorf("binary OUTPUT__0[%d] = %v, want %v", j, got, o0[j])
		}
	}
	if hits := stats(t)["linear_cached"].InferenceStats["cache_hit"].Count - before.InferenceStats["cache_hit"].Count; hits != 2 {
		t.Errorf("%d hits after the binary request, want 2", hits)
	}
}

func TestSameRequestTwiceGRPC(t *testing.T) {
	c := grpcClient(t)
	x, y := inputs(43)
	req := grpcRequest("linear_cached", "g", "INPUT__0", "INPUT__1", x, y)
	first, err := c.ModelInfer(rpcCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	before := stats(t)["linear_cached"].InferenceStats["cache_hit"].Count
	second, err := c.ModelInfer(rpcCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := proto.Marshal(first)
	b, _ := proto.Marshal(second)
	if !bytes.Equal(a, b) {
		t.Errorf("answers differ:\n%v\n%v", first, second)
	}
	if hits := stats(t)["linear_cached"].InferenceStats["cache_hit"].Count - before; hits != 1 {
		t.Errorf("cache_hit +%d, want +1", hits)
	}
}

// TestCachedEnsemble: a hit on an ensemble answers without sending
// anything to its steps (Triton's ensemble caching).
func TestCachedEnsemble(t *testing.T) {
	x, y := inputs(44)
	body := jsonRequest("e", "X", "Y", x, y)
	first := post(t, "/v2/models/pipeline_cached/infer", body)
	before := stats(t)
	second := post(t, "/v2/models/pipeline_cached/infer", body)
	after := stats(t)
	if first.code != 200 || !bytes.Equal(first.body, second.body) {
		t.Fatalf("first %d %s\nsecond %s", first.code, first.body, second.body)
	}
	for name, want := range map[string]uint64{"pipeline_cached": 1, "linear": 0, "add_sub": 0} {
		if got := after[name].InferenceStats["success"].Count - before[name].InferenceStats["success"].Count; got != want {
			t.Errorf("%s: success +%d for the second request, want +%d", name, got, want)
		}
	}
	if d := after["pipeline_cached"].InferenceStats["cache_hit"].Count - before["pipeline_cached"].InferenceStats["cache_hit"].Count; d != 1 {
		t.Errorf("pipeline_cached: cache_hit +%d, want +1", d)
	}
}

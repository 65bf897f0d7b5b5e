package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ofaserve/ofaserve/backend"
)

type httpResult struct {
	code   int
	header http.Header
	body   []byte
}

func (r httpResult) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body is not a JSON object: %v: %q", err, r.body)
	}
	return v
}

func (r httpResult) errMsg(t *testing.T) string {
	t.Helper()
	v := r.json(t)
	s, ok := v["error"].(string)
	if !ok || len(v) != 1 {
		t.Fatalf("want {\"error\":...}, got %s", r.body)
	}
	return s
}

func newTestServer(t *testing.T, repo Repository, opts Options) *Server {
	t.Helper()
	s, err := New(opts, repo, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func do(t *testing.T, h http.Handler, method, path string, body []byte, hdr ...string) httpResult {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return httpResult{w.Code, w.Header(), w.Body.Bytes()}
}

const simpleReq = `{"id":"req-7","inputs":[
 {"name":"INPUT0","shape":[1,16],"datatype":"INT32","data":[[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]]},
 {"name":"INPUT1","shape":[1,16],"datatype":"INT32","data":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}]}`

func TestHealth(t *testing.T) {
	repo := testRepo()
	h := newTestServer(t, repo, Options{}).HTTPHandler()
	for _, m := range []string{"GET", "POST"} {
		for _, p := range []string{"/v2/health/live", "/v2/health/ready"} {
			r := do(t, h, m, p, nil)
			if r.code != 200 || len(r.body) != 0 {
				t.Errorf("%s %s = %d %q, want 200 and empty body", m, p, r.code, r.body)
			}
		}
	}
	repo.notReady = true
	if r := do(t, h, "GET", "/v2/health/ready", nil); r.code != 400 || len(r.body) != 0 {
		t.Errorf("ready while not ready = %d %q, want 400 and empty body", r.code, r.body)
	}
	if r := do(t, h, "GET", "/v2/health/live", nil); r.code != 200 {
		t.Errorf("live while not ready = %d, want 200", r.code)
	}
}

func TestServerMetadata(t *testing.T) {
	h := newTestServer(t, testRepo(), Options{}).HTTPHandler()
	for _, m := range []string{"GET", "POST"} {
		r := do(t, h, m, "/v2", nil)
		v := r.json(t)
		if r.code != 200 || v["name"] != "triton" || v["version"] == "" {
			t.Fatalf("%s /v2 = %d %s", m, r.code, r.body)
		}
		ext, _ := v["extensions"].([]any)
		found := false
		for _, e := range ext {
			found = found || e == "binary_tensor_data"
		}
		if !found {
			t.Errorf("extensions %v lack binary_tensor_data", ext)
		}
	}
}

func TestModelMetadata(t *testing.T) {
	h := newTestServer(t, testRepo(), Options{}).HTTPHandler()
	r := do(t, h, "GET", "/v2/models/simple", nil)
	var md modelMeta
	if err := json.Unmarshal(r.body, &md); err != nil || r.code != 200 {
		t.Fatalf("metadata = %d %s (%v)", r.code, r.body, err)
	}
	if md.Name != "simple" || md.Platform != "pytorch_libtorch" || len(md.Versions) != 1 || md.Versions[0] != "1" {
		t.Errorf("metadata = %+v", md)
	}
	if len(md.Inputs) != 2 || md.Inputs[0].Datatype != "INT32" || backend.FormatShape(md.Inputs[0].Shape) != "[-1,16]" {
		t.Errorf("inputs = %+v, want INT32 [-1,16]", md.Inputs)
	}
	r = do(t, h, "POST", "/v2/models/strings/versions/1", nil)
	if err := json.Unmarshal(r.body, &md); err != nil || r.code != 200 || backend.FormatShape(md.Inputs[0].Shape) != "[1]" || md.Inputs[0].Datatype != "BYTES" {
		t.Errorf("versioned metadata of a non-batching model = %d %s", r.code, r.body)
	}
	r = do(t, h, "GET", "/v2/models/nope", nil)
	if r.code != 404 || !strings.Contains(r.errMsg(t), "unknown model: 'nope'") {
		t.Errorf("unknown model = %d %s", r.code, r.body)
	}
	r = do(t, h, "GET", "/v2/models/simple/versions/7", nil)
	if r.code != 404 {
		t.Errorf("unknown version = %d %s", r.code, r.body)
	}
}

func TestModelReady(t *testing.T) {
	h := newTestServer(t, testRepo(), Options{}).HTTPHandler()
	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/v2/models/simple/ready", 200, ""},
		{"/v2/models/simple/versions/1/ready", 200, ""},
		{"/v2/models/simple/versions/2/ready", 400, "Model version not ready"},
		{"/v2/models/nope/ready", 404, "unknown model"},
	} {
		r := do(t, h, "GET", tc.path, nil)
		if r.code != tc.code {
			t.Errorf("%s = %d %s, want %d", tc.path, r.code, r.body, tc.code)
			continue
		}
		if tc.msg == "" && len(r.body) != 0 {
			t.Errorf("%s: body %q, want empty", tc.path, r.body)
		}
		if tc.msg != "" && !strings.Contains(r.errMsg(t), tc.msg) {
			t.Errorf("%s: error %s, want %q", tc.path, r.body, tc.msg)
		}
	}
}

func TestModelConfig(t *testing.T) {
	h := newTestServer(t, testRepo(), Options{}).HTTPHandler()
	for _, p := range []string{"/v2/models/simple/config", "/v2/models/simple/versions/1/config"} {
		r := do(t, h, "GET", p, nil)
		v := r.json(t)
		if r.code != 200 || v["name"] != "simple" || v["max_batch_size"] != float64(8) {
			t.Errorf("%s = %d %s", p, r.code, r.body)
		}
	}
	if r := do(t, h, "GET", "/v2/models/nope/config", nil); r.code != 404 {
		t.Errorf("config of unknown model = %d", r.code)
	}
}

func TestRoutes404And405(t *testing.T) {
	h := newTestServer(t, testRepo(), Options{}).HTTPHandler()
	for _, p := range []string{"/notapi/v2", "/v2/notapi", "/v2/models/notapi/foo"} {
		r := do(t, h, "POST", p, nil)
		if r.code != 404 || r.errMsg(t) != "Not Found" {
			t.Errorf("GET %s = %d %s", p, r.code, r.body)
		}
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", "/v2/models/simple/infer"},
		{"GET", "/v2/repository/index"},
		{"POST", "/v2/models/simple/stats"},
		{"PUT", "/v2/health/live"},
	} {
		r := do(t, h, tc.method, tc.path, nil)
		if r.code != 405 || r.errMsg(t) != "Method Not Allowed" {
			t.Errorf("%s %s = %d %s", tc.method, tc.path, r.code, r.body)
		}
	}
}

func TestStatistics(t *testing.T) {
	h := newTestServer(t, testRepo(), Options{}).HTTPHandler()
	r := do(t, h, "GET", "/v2/models/simple/stats", nil)
	var st struct {
		ModelStats []struct {
			Name           string `json:"name"`
			Version        string `json:"version"`
			LastInference  uint64 `json:"last_inference"`
			InferenceCount uint64 `json:"inference_count"`
			ExecutionCount uint64 `json:"execution_count"`
			InferenceStats map[string]struct {
				Count uint64 `json:"count"`
				NS    uint64 `json:"ns"`
			} `json:"inference_stats"`
			BatchStats []struct {
				BatchSize    uint64 `json:"batch_size"`
				ComputeInfer struct {
					Count uint64 `json:"count"`
					NS    uint64 `json:"ns"`
				} `json:"compute_infer"`
			} `json:"batch_stats"`
		} `json:"model_stats"`
	}
	if err := json.Unmarshal(r.body, &st); err != nil || r.code != 200 || len(st.ModelStats) != 1 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	ms := st.ModelStats[0]
	if ms.Name != "simple" || ms.Version != "1" || ms.InferenceCount != 6 || ms.ExecutionCount != 2 || ms.LastInference != 1700000000000 {
		t.Errorf("model stats = %+v", ms)
	}
	if ms.InferenceStats["success"].Count != 6 || ms.InferenceStats["success"].NS != 600000 || ms.InferenceStats["queue"].NS != 60000 {
		t.Errorf("inference_stats = %+v", ms.InferenceStats)
	}
	if len(ms.BatchStats) != 2 || ms.BatchStats[0].BatchSize != 1 || ms.BatchStats[1].BatchSize != 5 || ms.BatchStats[1].ComputeInfer.Count != 1 || ms.BatchStats[1].ComputeInfer.NS != 250000 {
		t.Errorf("batch_stats = %+v", ms.BatchStats)
	}
	r = do(t, h, "GET", "/v2/models/stats", nil)
	if err := json.Unmarshal(r.body, &st); err != nil || r.code != 200 || len(st.ModelStats) != 7 {
		t.Errorf("all stats: %d, %d models: %s", r.code, len(st.ModelStats), r.body)
	}
	if r := do(t, h, "GET", "/v2/models/simple/versions/1/stats", nil); r.code != 200 {
		t.Errorf("versioned stats = %d", r.code)
	}
	if r := do(t, h, "GET", "/v2/models/nope/stats", nil); r.code != 400 || !strings.Contains(r.errMsg(t), "requested model 'nope' is not available") {
		t.Errorf("unknown model stats = %d %s", r.code, r.body)
	}
	if r := do(t, h, "GET", "/v2/models/simple/versions/2/stats", nil); r.code != 400 || !strings.Contains(r.errMsg(t), "requested model version is not available") {
		t.Errorf("not-ready version stats = %d %s", r.code, r.body)
	}
}

func TestRepositoryEndpoints(t *testing.T) {
	repo := testRepo()
	h := newTestServer(t, repo, Options{}).HTTPHandler()
	for _, p := range []string{"/v2/repository/index", "/v2/repository/myrepo/index"} {
		r := do(t, h, "POST", p, nil)
		var idx []map[string]string
		if err := json.Unmarshal(r.body, &idx); err != nil || r.code != 200 || len(idx) != 8 {
			t.Fatalf("%s = %d %s", p, r.code, r.body)
		}
	}
	r := do(t, h, "POST", "/v2/repository/index", []byte(`{"ready":true}`))
	var idx []map[string]string
	if err := json.Unmarshal(r.body, &idx); err != nil || len(idx) != 7 || idx[0]["state"] != "READY" || idx[0]["version"] != "1" {
		t.Errorf("ready index = %s", r.body)
	}
	if _, ok := idx[0]["reason"]; ok {
		t.Errorf("empty reason should be left out: %s", r.body)
	}
	if r := do(t, h, "POST", "/v2/repository/index", []byte(`{"ready":"yes"}`)); r.code != 400 || r.errMsg(t) != "Invalid value for 'ready': expected a boolean" {
		t.Errorf("ready not bool = %d %s", r.code, r.body)
	}
	if r := do(t, h, "POST", "/v2/repository/models/simple/load", nil); r.code != 400 || !strings.Contains(r.errMsg(t), "explicit model load / unload is not allowed") {
		t.Errorf("load in mode none = %d %s", r.code, r.body)
	}
	if r := do(t, h, "POST", "/v2/repository/r1/models/simple/load", nil); r.code != 501 || r.errMsg(t) != "'repository_name' specification is not supported" {
		t.Errorf("named repository load = %d %s", r.code, r.body)
	}
	if r := do(t, h, "POST", "/v2/repository/r1/models/simple/unload", nil); r.code != 501 {
		t.Errorf("named repository unload = %d %s", r.code, r.body)
	}
	repo.explicit = true
	if r := do(t, h, "POST", "/v2/repository/models/simple/load", nil); r.code != 200 || len(r.body) != 0 {
		t.Errorf("load = %d %s", r.code, r.body)
	}
	if r := do(t, h, "POST", "/v2/repository/models/simple/unload", []byte(`{"parameters":{"unload_dependents":true}}`)); r.code != 200 {
		t.Errorf("unload = %d %s", r.code, r.body)
	}
	if r := do(t, h, "POST", "/v2/repository/models/simple/load", []byte(`{"parameters":{"file:1/model.pt":"AAAA"}}`)); r.code != 501 {
		t.Errorf("file load parameter = %d %s", r.code, r.body)
	}
	if len(repo.loads) != 1 || repo.loads[0] != "simple" || len(repo.unloads) != 1 {
		t.Errorf("loads %v unloads %v", repo.loads, repo.unloads)
	}
}

func TestPanicIsolated(t *testing.T) {
	repo := testRepo()
	boom := identityModel("boom", "FP32", []int64{1}, 0)
	boom.infer = func(*backend.Request) (*backend.Response, error) { panic("model bug") }
	repo.add(boom)
	h := newTestServer(t, repo, Options{}).HTTPHandler()
	r := do(t, h, "POST", "/v2/models/boom/infer", []byte(`{"inputs":[{"name":"INPUT0","shape":[1],"datatype":"FP32","data":[1]}]}`))
	if r.code != 500 {
		t.Errorf("panicking model = %d %s", r.code, r.body)
	}
	if r := do(t, h, "POST", "/v2/models/simple/infer", []byte(simpleReq)); r.code != 200 {
		t.Errorf("server after a panic = %d", r.code)
	}
}

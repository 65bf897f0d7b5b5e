package server

import (
	"os"
	"strings"
	"testing"
)

func TestMetrics(t *testing.T) {
	h := newTestServer(t, testRepo(), Options{GPUMetrics: true}).MetricsHandler()
	r := do(t, h, "GET", "/metrics", nil)
	if r.code != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics = %d %v", r.code, r.header)
	}
	text := string(r.body)
	for _, want := range []string{
		`nv_inference_request_success{model="simple",version="1"} 6`,
		`nv_inference_request_failure{model="simple",reason="REJECTED",version="1"} 2`,
		`nv_inference_request_failure{model="simple",reason="CANCELED",version="1"} 0`,
		`nv_inference_request_failure{model="simple",reason="BACKEND",version="1"} 0`,
		`nv_inference_request_failure{model="simple",reason="OTHER",version="1"} 0`,
		`nv_inference_count{model="simple",version="1"} 6`,
		`nv_inference_exec_count{model="simple",version="1"} 2`,
		`nv_inference_pending_request_count{model="simple",version="1"} 3`,
		`nv_inference_request_duration_us{model="simple",version="1"} 600`,
		`nv_inference_queue_duration_us{model="simple",version="1"} 60`,
		`nv_inference_compute_infer_duration_us{model="simple",version="1"} 300`,
		`nv_inference_compute_input_duration_us{model="simple",version="1"} 0`,
		`nv_inference_compute_output_duration_us{model="simple",version="1"} 0`,
		`nv_model_load_duration_secs{model="simple",version="1"} 2.5`,
		`nv_model_warmup_duration_secs{model="simple",version="1"} 0.75`,
		"# TYPE nv_model_warmup_duration_secs gauge",
		"# TYPE nv_inference_pending_request_count gauge",
		"# TYPE nv_inference_count counter",
		// simple runs the adaptive policy; the identity models run Triton's rules and have no such lines.
		`nv_batcher_adaptive_decisions_total{model="simple",version="1"} 9`,
		`nv_batcher_adaptive_waits_total{model="simple",version="1"} 4`,
		`nv_batcher_adaptive_cost_us{model="simple",term="fixed",version="1"} 20000`,
		`nv_batcher_adaptive_cost_us{model="simple",term="per_sample",version="1"} 2500`,
		`nv_batcher_adaptive_cost_us{model="simple",term="per_token",version="1"} 1.5`,
		"# TYPE nv_batcher_adaptive_waits_total counter",
		"# TYPE nv_batcher_adaptive_cost_us gauge",
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(text, `version="2"`) {
		t.Error("a version that is not ready is exported")
	}
	if strings.Contains(text, `nv_batcher_adaptive_decisions_total{model="identity_fp32"`) {
		t.Error("a model under Triton's rules has adaptive-policy metrics")
	}
	if r := do(t, h, "GET", "/metrics/", nil); r.code != 200 {
		t.Errorf("/metrics/ = %d", r.code)
	}
	if r := do(t, h, "POST", "/metrics", nil); r.code != 405 {
		t.Errorf("POST /metrics = %d", r.code)
	}
	if r := do(t, h, "GET", "/other", nil); r.code != 404 {
		t.Errorf("GET /other = %d", r.code)
	}
}

// TestGPUMetrics needs a GPU: OFASERVE_TEST_DEVICE=cuda:N. Without one the
// GPU gauges are simply absent, which TestMetrics already exercises.
func TestGPUMetrics(t *testing.T) {
	if !strings.HasPrefix(os.Getenv("OFASERVE_TEST_DEVICE"), "cuda") {
		t.Skip("OFASERVE_TEST_DEVICE is not a cuda device")
	}
	h := newTestServer(t, testRepo(), Options{GPUMetrics: true}).MetricsHandler()
	text := string(do(t, h, "GET", "/metrics", nil).body)
	for _, fam := range []string{"nv_gpu_utilization{gpu_uuid=\"GPU-", "nv_gpu_memory_total_bytes{", "nv_gpu_memory_used_bytes{", "nv_gpu_power_usage{"} {
		if !strings.Contains(text, fam) {
			t.Errorf("metrics lack %s", fam)
		}
	}
}

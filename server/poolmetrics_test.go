package server

import (
	"strings"
	"testing"
	"time"
)

// The preprocessing pool's statistics are on /metrics when the server is given them, read at each scrape,
// and absent when it is not.
func TestPreprocessMetrics(t *testing.T) {
	st := PoolStats{Workers: 2, Busy: 1, Waiting: 3, Jobs: 40, Waited: 7, Canceled: 1, WaitTime: 1500 * time.Microsecond}
	h := newTestServer(t, testRepo(), Options{PreprocessStats: func() PoolStats { return st }}).MetricsHandler()
	text := string(do(t, h, "GET", "/metrics", nil).body)
	for _, want := range []string{
		"nv_preprocess_workers 2", "nv_preprocess_busy 1", "nv_preprocess_waiting 3", "nv_preprocess_jobs_total 40",
		"nv_preprocess_waited_total 7", "nv_preprocess_wait_duration_us 1500", "nv_preprocess_canceled_total 1",
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	st.Jobs, st.Busy = 41, 2
	text = string(do(t, h, "GET", "/metrics", nil).body)
	if !strings.Contains(text, "nv_preprocess_jobs_total 41\n") || !strings.Contains(text, "nv_preprocess_busy 2\n") {
		t.Error("a second scrape did not read the pool again")
	}
	plain := string(do(t, newTestServer(t, testRepo(), Options{}).MetricsHandler(), "GET", "/metrics", nil).body)
	if strings.Contains(plain, "nv_preprocess_") {
		t.Error("nv_preprocess_* exported without a pool")
	}
}

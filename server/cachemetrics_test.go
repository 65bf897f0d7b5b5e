package server

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/batcher"
	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// cachedModel is a fake model whose config enables response_cache.
type cachedModel struct{ *fakeModel }

func (c cachedModel) Config() *modelconfig.ModelConfig {
	cfg := c.fakeModel.Config()
	cfg.ResponseCache = &modelconfig.ModelResponseCache{Enable: true}
	return cfg
}

// cachedRepo is testRepo with a model "cached" that has cache statistics.
type cachedRepo struct{ *fakeRepo }

func (r cachedRepo) Model(name string, version int64) (Model, error) {
	m, err := r.fakeRepo.Model(name, version)
	if err == nil && name == "cached" {
		return cachedModel{m.(*fakeModel)}, nil
	}
	return m, err
}

func newCachedRepo() cachedRepo {
	r := testRepo()
	m := identityModel("cached", "FP32", []int64{4}, 4)
	m.stats = batcher.Stats{
		Success:  batcher.Duration{Count: 5, Total: 900 * time.Microsecond},
		CacheHit: batcher.Duration{Count: 3, Total: 12 * time.Microsecond}, CacheMiss: batcher.Duration{Count: 2, Total: 41500 * time.Nanosecond},
	}
	r.add(m)
	return cachedRepo{r}
}

func TestCacheMetrics(t *testing.T) {
	text := string(do(t, newTestServer(t, newCachedRepo(), Options{}).MetricsHandler(), "GET", "/metrics", nil).body)
	for _, want := range []string{
		`nv_cache_num_hits_per_model{model="cached",version="1"} 3`,
		`nv_cache_hit_duration_per_model{model="cached",version="1"} 12`,
		`nv_cache_num_misses_per_model{model="cached",version="1"} 2`,
		`nv_cache_miss_duration_per_model{model="cached",version="1"} 41`,
		"# TYPE nv_cache_num_hits_per_model counter",
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(text, `nv_cache_num_hits_per_model{model="simple"`) {
		t.Error("a model without response_cache exports cache metrics")
	}
}

func TestCacheStatistics(t *testing.T) {
	repo := newCachedRepo()
	r := do(t, newTestServer(t, repo, Options{}).HTTPHandler(), "GET", "/v2/models/cached/stats", nil)
	var st struct {
		ModelStats []struct {
			InferenceStats map[string]durJSON `json:"inference_stats"`
		} `json:"model_stats"`
	}
	if err := json.Unmarshal(r.body, &st); err != nil || len(st.ModelStats) != 1 {
		t.Fatalf("%d %s: %v", r.code, r.body, err)
	}
	is := st.ModelStats[0].InferenceStats
	if is["cache_hit"] != (durJSON{3, 12000}) || is["cache_miss"] != (durJSON{2, 41500}) {
		t.Errorf("HTTP cache_hit %+v, cache_miss %+v", is["cache_hit"], is["cache_miss"])
	}
	c, _ := grpcClient(t, repo)
	resp, err := c.ModelStatistics(context.Background(), &pb.ModelStatisticsRequest{Name: "cached"})
	if err != nil {
		t.Fatal(err)
	}
	g := resp.ModelStats[0].InferenceStats
	if g.CacheHit.Count != 3 || g.CacheHit.Ns != 12000 || g.CacheMiss.Count != 2 || g.CacheMiss.Ns != 41500 {
		t.Errorf("gRPC cache_hit %v, cache_miss %v", g.CacheHit, g.CacheMiss)
	}
}

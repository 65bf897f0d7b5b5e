package server

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Triton's per-model response cache families (core metrics.cc), exported
// for every ready model whose config enables response_cache; they stay at
// zero when the server runs without --cache-config, which its start-up log
// says.
var (
	descCacheHits = prometheus.NewDesc("nv_cache_num_hits_per_model",
		"Number of cache hits per model", modelLabels, nil)
	descCacheHitDur = prometheus.NewDesc("nv_cache_hit_duration_per_model",
		"Total cache hit duration per model, in microseconds", modelLabels, nil)
	descCacheMisses = prometheus.NewDesc("nv_cache_num_misses_per_model",
		"Number of cache misses per model", modelLabels, nil)
	descCacheMissDur = prometheus.NewDesc("nv_cache_miss_duration_per_model",
		"Total cache miss (insert+lookup) duration per model, in microseconds", modelLabels, nil)
)

// cacheCollector reads the cache counters of the models' statistics at
// scrape time, like modelCollector.
type cacheCollector struct{ repo Repository }

func (cc *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCacheHits, descCacheHitDur, descCacheMisses, descCacheMissDur} {
		ch <- d
	}
}

func (cc *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	for _, e := range cc.repo.Index(true) {
		if e.Version <= 0 {
			continue
		}
		m, err := cc.repo.Model(e.Name, e.Version)
		if err != nil || !m.Ready() || !m.Config().GetResponseCache().GetEnable() {
			continue
		}
		st := m.Stats()
		name, ver := m.Name(), strconv.FormatInt(m.Version(), 10)
		for _, c := range []struct {
			d *prometheus.Desc
			v float64
		}{
			{descCacheHits, float64(st.CacheHit.Count)},
			{descCacheHitDur, float64(st.CacheHit.Total / time.Microsecond)},
			{descCacheMisses, float64(st.CacheMiss.Count)},
			{descCacheMissDur, float64(st.CacheMiss.Total / time.Microsecond)},
		} {
			ch <- prometheus.MustNewConstMetric(c.d, prometheus.CounterValue, c.v, name, ver)
		}
	}
}

package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PoolStats is what the server's preprocessing pool (backend/workpool, adapted by the command) reports for
// /metrics: its bound, what it runs and holds now, and its cumulative counts.
type PoolStats struct {
	Workers, Busy, Waiting int
	Jobs, Waited, Canceled uint64
	WaitTime               time.Duration
}

var (
	descPoolWorkers = prometheus.NewDesc("nv_preprocess_workers",
		"Number of preprocessing workers (decoding, resizing, tokenizing), shared by every model", nil, nil)
	descPoolBusy = prometheus.NewDesc("nv_preprocess_busy",
		"Instantaneous number of preprocessing workers running a request", nil, nil)
	descPoolWaiting = prometheus.NewDesc("nv_preprocess_waiting",
		"Instantaneous number of admitted requests waiting for a preprocessing worker", nil, nil)
	descPoolJobs = prometheus.NewDesc("nv_preprocess_jobs_total",
		"Number of requests that got a preprocessing worker", nil, nil)
	descPoolWaited = prometheus.NewDesc("nv_preprocess_waited_total",
		"Number of those requests that had to wait for a worker", nil, nil)
	descPoolWaitDur = prometheus.NewDesc("nv_preprocess_wait_duration_us",
		"Cumulative time requests waited for a preprocessing worker in microseconds", nil, nil)
	descPoolCanceled = prometheus.NewDesc("nv_preprocess_canceled_total",
		"Number of requests whose context ended while they waited for a preprocessing worker", nil, nil)
)

// poolCollector reads the pool's statistics at scrape time.
type poolCollector struct{ stats func() PoolStats }

func (poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPoolWorkers, descPoolBusy, descPoolWaiting, descPoolJobs, descPoolWaited, descPoolWaitDur, descPoolCanceled} {
		ch <- d
	}
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(descPoolWorkers, st.Workers)
	gauge(descPoolBusy, st.Busy)
	gauge(descPoolWaiting, st.Waiting)
	counter(descPoolJobs, float64(st.Jobs))
	counter(descPoolWaited, float64(st.Waited))
	counter(descPoolWaitDur, float64(st.WaitTime.Microseconds()))
	counter(descPoolCanceled, float64(st.Canceled))
}

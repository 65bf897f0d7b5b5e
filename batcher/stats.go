package batcher

import (
	"maps"
	"sync"
	"time"
)

// statsRecorder accumulates Stats. The hot path adds a whole batch's worth of requests under one lock.
type statsRecorder struct {
	mu sync.Mutex
	s  Stats
}

func (r *statsRecorder) init() {
	r.s.Failures = map[FailReason]uint64{FailRejected: 0, FailCanceled: 0, FailBackend: 0, FailOther: 0}
	r.s.Batches = map[int]BatchStats{}
}

// tally is the per-request part of the statistics for a run of executed requests.
type tally struct {
	ok, units       uint64
	success, queue  time.Duration
	cin, cinf, cout time.Duration
	failed          uint64 // taken into a batch but failed: BACKEND, or OTHER for a batch stopped before it ran
	other           uint64 // of which OTHER
	failTime        time.Duration
}

// add counts one executed request answered at end (request_end).
func (t *tally) add(n interface {
	times() (start, queued, cstart time.Time, cin, cinf, cout time.Duration, units int, failed FailReason)
}, end time.Time) {
	start, queued, cstart, cin, cinf, cout, units, failed := n.times()
	if failed != "" {
		t.failed++
		if failed == FailOther {
			t.other++
		}
		t.failTime += end.Sub(start)
		return
	}
	t.ok++
	t.units += uint64(units)
	t.success += end.Sub(start)
	t.queue += cstart.Sub(queued)
	t.cin += cin
	t.cinf += cinf
	t.cout += cout
}

func (n *node[T, R]) times() (start, queued, cstart time.Time, cin, cinf, cout time.Duration, units int, failed FailReason) {
	if n.err != nil {
		failed = n.reason
	}
	return n.start, n.queued, n.cstart, n.cin, n.cinf, n.cout, n.units, failed
}

// requests adds a tally of executed requests answered at end.
func (r *statsRecorder) requests(t *tally, end time.Time) {
	r.mu.Lock()
	s := &r.s
	if t.ok > 0 {
		s.Success.Count += t.ok
		s.Success.Total += t.success
		s.Queue.Count += t.ok
		s.Queue.Total += t.queue
		s.ComputeInput.Count += t.ok
		s.ComputeInput.Total += t.cin
		s.ComputeInfer.Count += t.ok
		s.ComputeInfer.Total += t.cinf
		s.ComputeOutput.Count += t.ok
		s.ComputeOutput.Total += t.cout
		s.InferenceCount += t.units
		if end.After(s.LastInference) {
			s.LastInference = end
		}
	}
	if t.failed > 0 {
		s.Fail.Count += t.failed
		s.Fail.Total += t.failTime
		s.Failures[FailBackend] += t.failed - t.other
		s.Failures[FailOther] += t.other
	}
	r.mu.Unlock()
}

// batch counts one successful execution of a batch of the given size.
func (r *statsRecorder) batch(units int, cin, cinf, cout time.Duration) {
	r.mu.Lock()
	r.s.ExecutionCount++
	bs := r.s.Batches[units]
	bs.Executions++
	bs.ComputeInput += cin
	bs.ComputeInfer += cinf
	bs.ComputeOutput += cout
	r.s.Batches[units] = bs
	r.mu.Unlock()
}

// fail counts one request that failed without executing.
func (r *statsRecorder) fail(reason FailReason, d time.Duration, _ time.Time) {
	r.mu.Lock()
	r.s.Fail.Count++
	r.s.Fail.Total += d
	r.s.Failures[reason]++
	r.mu.Unlock()
}

func (r *statsRecorder) snapshot() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.s
	s.Failures = maps.Clone(r.s.Failures)
	s.Batches = maps.Clone(r.s.Batches)
	return s
}

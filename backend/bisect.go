package backend

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Bisection: when one forward over a whole batch fails, the batch's requests are not all guilty. Bisect
// re-runs the batch in halves, recursively, until every part either succeeds or is a single request that
// fails on its own; only those fail. Who is blamed follows from what else happened:
//
//   - a request that fails alone while another request of the batch succeeds is at fault: CodeInvalidArg
//     (400), with the module's message;
//   - when every request fails alone, the model or its device is the likely cause: CodeInternal (500),
//     saying so. A batch of one request is the same case, unless the caller vouches for the model
//     (Trusted: its previous run succeeded), in which case the lone request is blamed.
//
// A batch that fails only for its size (out of memory, say) succeeds in halves: every request then gets
// its result and nobody is blamed. The cost is bounded: at most 2n-1 runs for n requests, about
// 1+2*log2(n) for one offender.

// BisectRun runs part of a batch (a sub-slice of it, in order) and returns one result per item of part, or
// the error of the whole part.
type BisectRun[T, R any] func(ctx context.Context, part []T) ([]R, error)

// BisectOutcome is what a bisection found for one batch.
type BisectOutcome[R any] struct {
	// Results has one entry per item of the batch; the zero R where Errs has an error.
	Results []R
	// Errs has one entry per item: nil when its result is in Results, else the error it fails with (an
	// *Error whose code says whose fault it is).
	Errs []error
	// Runs counts the calls to run, the first (whole batch) included.
	Runs int
	// Bisected reports whether the whole batch failed and was split.
	Bisected bool
	// Succeeded counts the requests that got a result; Alone those that failed on their own; Guilty those
	// of them blamed with CodeInvalidArg.
	Succeeded, Alone, Guilty int
}

// Bisect runs batch with run; when the whole batch fails it finds the requests that fail on their own
// (the rules above). trusted vouches for the model when the batch is a single request. A cancelled
// context stops the bisection: the requests not yet settled fail with ctx's error (CodeCancelled or
// CodeUnavailable through CodeOf). It never returns an error of its own: every outcome is per item.
func Bisect[T, R any](ctx context.Context, batch []T, trusted bool, run BisectRun[T, R]) BisectOutcome[R] {
	out := BisectOutcome[R]{Results: make([]R, len(batch)), Errs: make([]error, len(batch))}
	if len(batch) == 0 {
		return out
	}
	alone := make([]error, len(batch)) // the raw error of each request that failed alone
	succeeded := 0
	var walk func(lo, hi int)
	walk = func(lo, hi int) {
		if err := ctx.Err(); err != nil {
			for i := lo; i < hi; i++ {
				out.Errs[i] = err
			}
			return
		}
		out.Runs++
		res, err := run(ctx, batch[lo:hi])
		if err == nil && len(res) != hi-lo {
			err = Errorf(CodeInternal, "the batch of %d requests returned %d results", hi-lo, len(res))
		}
		if err == nil {
			copy(out.Results[lo:hi], res)
			succeeded += hi - lo
			return
		}
		if ctx.Err() != nil { // the run was cut short: nobody's fault
			for i := lo; i < hi; i++ {
				out.Errs[i] = ctx.Err()
			}
			return
		}
		if hi-lo == 1 {
			alone[lo] = err
			return
		}
		if lo == 0 && hi == len(batch) {
			out.Bisected = true
		}
		mid := lo + (hi-lo)/2
		walk(lo, mid)
		walk(mid, hi)
	}
	walk(0, len(batch))
	out.Succeeded = succeeded
	for i, err := range alone {
		if err == nil {
			continue
		}
		out.Alone++
		switch {
		case succeeded > 0:
			out.Guilty++
			out.Errs[i] = &Error{Code: CodeInvalidArg, Err: err, Msg: fmt.Sprintf(
				"%s (this request failed on its own; the other requests of its batch succeeded)", Message(err))}
		case len(batch) == 1 && trusted:
			out.Guilty++
			out.Errs[i] = &Error{Code: CodeInvalidArg, Err: err, Msg: fmt.Sprintf(
				"%s (this request failed on its own; the model's recent batches succeeded)", Message(err))}
		case len(batch) == 1:
			out.Errs[i] = err
		default:
			out.Errs[i] = &Error{Code: CodeInternal, Err: err, Msg: fmt.Sprintf(
				"%s (each of the %d requests of the batch failed on its own: the model or its device is probably at fault)",
				Message(err), len(batch))}
		}
	}
	return out
}

// Message is what a client sees of err: an *Error's Msg, else err.Error().
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Msg
	}
	return err.Error()
}

// BisectStats are a model's cumulative bisection counters (exported as nv_inference_batch_bisect_total,
// nv_inference_batch_bisect_runs_total and nv_inference_request_failed_alone_total).
type BisectStats struct {
	Batches uint64 // batches that failed whole and were split
	Runs    uint64 // extra runs those bisections made
	Alone   uint64 // requests that failed on their own
	Guilty  uint64 // of those, the ones blamed with CodeInvalidArg
}

// BisectStatser is a Model that bisects failed batches and counts it.
type BisectStatser interface {
	BisectStats() BisectStats
}

// BisectCounter accumulates BisectOutcomes; safe for concurrent use.
type BisectCounter struct {
	mu sync.Mutex
	st BisectStats
}

// Add counts one batch's outcome (nothing when it did not bisect).
func (c *BisectCounter) Add(alone, guilty, runs int, bisected bool) {
	if !bisected && alone == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if bisected {
		c.st.Batches++
		c.st.Runs += uint64(runs - 1)
	}
	c.st.Alone += uint64(alone)
	c.st.Guilty += uint64(guilty)
}

// Stats returns the counts so far.
func (c *BisectCounter) Stats() BisectStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

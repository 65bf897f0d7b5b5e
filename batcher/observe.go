package batcher

import (
	"context"
	"time"
)

// This file is what the batcher tells an observer about each request it executed: Triton's trace timestamps
// (docs/triton-batcher-and-kserve-v2.md §1.11) and the durations its statistics count, one request at a time,
// so that a frontend can keep latency distributions and traces without the batcher knowing either.

// Times are one executed request's timestamps and durations. The timestamps are ordered: RequestStart <=
// QueueStart <= ComputeStart <= ComputeInputEnd <= ComputeOutputStart <= ComputeEnd <= RequestEnd.
// ComputeInputEnd is ComputeStart plus the batch's input time and ComputeOutputStart is ComputeEnd less its
// output time (clamped to keep the order); when the executor reports no Timing the whole compute counts as
// infer, so ComputeInputEnd = ComputeStart and ComputeOutputStart = ComputeEnd.
type Times struct {
	RequestStart       time.Time // request_start: Item.Start, or the time of Submit
	QueueStart         time.Time // queue_start: the request entered the queue
	ComputeStart       time.Time // its batch started executing
	ComputeInputEnd    time.Time
	ComputeOutputStart time.Time
	ComputeEnd         time.Time // its batch finished executing
	RequestEnd         time.Time // its answer was released (after earlier ones with PreserveOrdering)

	// ComputeInput, ComputeInfer and ComputeOutput are the durations Stats adds for this request: the
	// batch's Timing, or its whole compute as infer.
	ComputeInput, ComputeInfer, ComputeOutput time.Duration

	Size      int  // the request's batch units
	BatchSize int  // the units of the batch it ran in
	Failed    bool // its batch failed (Stats counts it under Fail, reason BACKEND)
}

// Request is the request's end-to-end duration as Stats counts it (RequestEnd - RequestStart).
func (t *Times) Request() time.Duration { return t.RequestEnd.Sub(t.RequestStart) }

// Queue is the request's queue duration as Stats counts it (ComputeStart - QueueStart).
func (t *Times) Queue() time.Duration { return t.ComputeStart.Sub(t.QueueStart) }

// Observer is told about every executed request, successful or failed (Times.Failed), once, in the
// instance's goroutine, after Stats counted it and just before its answer is released, with the context the
// request was submitted with (so request-scoped values such as a trace reach it). It runs on the batcher's
// hot path: it must be quick and must not block. Requests that never ran (rejected, timed out, cancelled in
// the queue, stopped) are not observed.
type Observer func(ctx context.Context, t Times)

// observe reports one executed node to the observer, if any; end is its request_end.
func (b *Batcher[T, R]) observe(n *node[T, R], end time.Time) {
	if b.cfg.Observer == nil || (n.err != nil && n.reason != FailBackend) {
		return // a batch stopped before it ran (OTHER) did not execute
	}
	inEnd := n.cstart.Add(n.cin)
	if inEnd.After(n.cend) {
		inEnd = n.cend
	}
	outStart := n.cend.Add(-n.cout)
	if outStart.Before(inEnd) {
		outStart = inEnd
	}
	if end.Before(n.cend) {
		end = n.cend
	}
	ctx := n.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	b.cfg.Observer(ctx, Times{
		RequestStart: n.start, QueueStart: n.queued, ComputeStart: n.cstart,
		ComputeInputEnd: inEnd, ComputeOutputStart: outStart, ComputeEnd: n.cend, RequestEnd: end,
		ComputeInput: n.cin, ComputeInfer: n.cinf, ComputeOutput: n.cout,
		Size: n.units, BatchSize: n.batchUnits, Failed: n.err != nil,
	})
}

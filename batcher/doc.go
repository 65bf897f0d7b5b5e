// Package batcher is one model's dynamic batcher: it coalesces concurrent requests into batches and runs
// each batch on a free model instance, following the rules of Triton's dynamic batcher so that a
// config.pbtxt's dynamic_batching block means the same thing here. It is generic over the request type T
// and the result type R, and knows nothing about HTTP, tensors or models.
//
// Its ideas are kept apart, one file each, and the last is an option.
//
// Forming a batch (queue.go). Submitted requests wait in a queue ordered by priority level (1 first),
// FIFO within a level, with requests whose DELAY timeout passed kept behind the unexpired ones of their
// level. To form a batch the queue is walked from its head, counting each request as its batch size
// (never split). The largest preferred size reached wins and leaves at once; a request that would carry
// the batch past the largest preferred size cuts it just before that request; a request with a different
// ShapeKey closes it. When no preferred size is reached the batch waits until its oldest request has
// waited MaxQueueDelay, and then leaves as large as MaxBatchSize allows; a delay of 0 sends whatever is
// there. The first request of a batch is always taken, however large.
//
// Deciding who runs it (scheduler.go, instance.go). Batches are formed only when an instance can take
// one, so a batch takes everything that arrived while the instances were busy. An instance holds two
// batches, as Triton allows two payloads per instance: the one it executes and the one staged to run
// next. Where Triton prefetches (one queue, no queue timeout, no queue size limit: a request taken into a
// batch leaves the reach of priorities, timeouts and the size limit), a running instance's free slot takes
// its next batch under the same rules, and an executor that stages (Executor, NewStaged) stacks and copies
// that batch to its device while the current one computes. A batch formed but not started still absorbs
// queued requests when its instance starts it, unless it is saturated; one formed at a preferred size
// grows only to a larger preferred size until its delay passes (Triton's walk marks that cut with a count
// of 0 and then reads it as no cut, so a batch of 4 with preferred [4] took a fifth request). An instance
// that finishes a batch starts its staged one or forms its next itself; a dispatcher goroutine hands
// batches to idle instances, waits out MaxQueueDelay and fires a timer at the nearest queue deadline, so a
// request whose timeout passes is answered (REJECT) or moved back (DELAY) at once, even while every
// instance is busy. A cancelled Submit takes its request out of the queue, freeing its place.
//
// Admitting it (admit.go). A request is admitted before it is prepared: Reserve takes a slot in its
// priority level, or refuses it at once (ErrQueueFull, ErrStopped, ErrBatchSize), so a request the queue
// would refuse costs no decode; the prepared request then takes its slot with Ticket.Submit, or gives it
// back with Ticket.Release. A level's max_queue_size counts its reserved slots with its queued requests.
// The rule for time: a request is in the queue from its admission. Its queue timeout and its queue_start
// (and so its queue time in Stats) count from Reserve, and a timeout that passed while it was prepared
// applies as it is submitted (REJECT: ErrTimeout; DELAY: behind its level's unexpired requests). Triton
// has no such step: its frontends hand the scheduler a request whose tensors are already in memory, and
// its queue timeout counts from the request's queue start, when the scheduler enqueues it; preprocessing
// that costs CPU runs as a model of its own (an ensemble step, DALI) behind its own queue. Here the model
// decodes its own images, so the slot is taken before that work, and the work counts as waiting. Stop
// drains reserved slots as it drains the queue, until its context ends. Submit is Reserve then Submit.
//
// Carrying it (batch.go). A batch's values go to the executor in queue order, and each result goes back
// to the Submit that waits for it. With PreserveOrdering every request gets a response slot when it is
// dequeued, and a response leaves only after every earlier slot's, whatever instance ran it.
//
// Observing it (observe.go). A Config.Observer is told about each executed request, once, just before its
// answer is released: Triton's trace timestamps (request, queue and compute start, compute input end and
// output start, compute and request end) and the durations Stats adds for it, with the context the request
// was submitted with. Latency distributions and traces are built from these observations by whoever passes
// the Observer; the batcher keeps none of them.
//
// The Adaptive policy (adaptive.go; Config.Policy, off by default). Triton's rules decide when a batch
// leaves from fixed numbers: a preferred size, a delay. Under a closed loop of clients that is wasteful:
// 16 clients against one instance settle into two cohorts of 8 that alternate, each batch paying the
// device's fixed cost for half a batch's work, while the other cohort is on its way back. The Adaptive
// policy ignores the preferred sizes and decides, when an instance is free, whether the batch leaves now or
// waits for requests it expects, from what the model's own runs have shown:
//
//   - The cost: t(b, L) = a + c·b + d·L is fitted online to every run's size, length (Item.Length; a
//     batch's L is its largest) and busy time by exponentially weighted least squares. a is what batching
//     amortizes.
//   - The arrivals: after each decision the batcher records what arrived, whether it waited or not; the
//     last 8 are its scenarios. A batch that has seen n arrivals since it could have left reads the
//     scenarios that saw at least n, from the point where they did, relative to its own last arrival; an
//     arrival they saw that is overdue here is given up. It never expects more than room: the most requests
//     seen in the batcher at once minus those in it now (a closed-loop client waiting for its answer sends
//     nothing); each scenario counts at most that many, and nothing while another idle instance could
//     take all that can come. A wait is weighed with what the scenarios agree on, the mean of those counts
//     less one standard error: a cohort that came after every decision counts nearly whole, arrivals that
//     merely happened to come after some do not (the best of many noisy means over Poisson arrivals would
//     otherwise pay often enough to lengthen the tail). The cap comes before the agreement: counted after
//     it, widely spread counts all read as "full" when one unit of room is left, and a trickle passed for
//     a certain unit (over HTTP at 70 % of capacity such waits held batches of 15 already long-queued
//     requests back by a few ms, where the tail is made).
//   - The value: a request that joins this batch saves what it would cost in the batches the model
//     typically runs, t(b̄)/b̄ for the recent mean batch b̄, less its marginal cost here; the wait costs
//     the device's idle time. With a linear cost, waiting w for k requests pays when w < k·a/b̄. Two
//     alternating cohorts of 8 are worth merging when the second comes within a (for 20 ms + 2.5 ms·b,
//     20 ms). Steady arrivals at a rate λ below capacity settle at b̄ = λ·a/(1 - λ·c), where no wait pays:
//     the policy waits for cohorts, not for a trickle, and never when its cost has no fixed part.
//   - The bound: no request is kept in the queue by the policy's choice longer than AdaptiveQueueBound,
//     by default MaxQueueDelay plus the learned time of one MaxBatchSize batch (the most Triton's rules
//     make a request wait behind a running batch on a loaded instance).
//
// The batch waits for the expected arrival that pays best, and looks again at each arrival; it leaves at
// once when full, when nothing more can come, or until the cost model has seen two runs. While it has seen
// one size only, the cost model takes all of the time as fixed, so the first wait is an experiment that
// teaches it the slope. Under this policy one batch at a time gathers a cohort: a running instance's free
// slot takes a batch only while no instance is idle, only on the instance predicted free first, and only
// while no other staged batch can still take queued requests; one idle instance waits for the head batch.
// It also prefetches under a queue size limit (Triton does not): the staged batch then takes queued
// requests as they come, up to max_batch_size, so max_queue_size bounds what waits beside it and not the
// batch. With 8 of 16 on t(b) = 20 ms + 2.5 ms·b and clients retrying refusals at once, Triton's rules run
// batches of 8 (195 samples/s) and this policy batches of 16 (264/s; TestQueueLimitStorm).
//
// Others decide differently. BentoML fits the same linear cost to recent batches and keeps a batch open
// while the time since the last arrival, scaled by the batch, stays under the recent average wait, and
// releases it when the wait plus the estimated run would pass its latency goal. Clipper adjusts the
// largest batch per model additively while batches meet the latency objective and cuts it by a tenth when
// one does not, with an optional short timeout for a batch to fill. Nexus reads a profiled batch latency
// and picks the largest batch whose worst case, a request that waits out one batch and then runs in its
// own, meets the objective, and drops requests that can no longer meet it. Clockwork, whose execution
// times are predictable, schedules each batch at an exact time: the largest batch that completes before
// the earliest deadline in it. All four bound size and latency; none weighs a wait for requests not yet
// here against the device time it saves, which is what the closed loop above needs, so that is the rule
// here, with their learned linear cost (BentoML) and their latency bound (Nexus, Clockwork).
//
// Stats follow Triton's statistics extension: per-request queue and compute times, executions per batch
// size, inference and execution counts, failures by reason. Submit's errors are ErrQueueFull and
// ErrTimeout (HTTP 503 in Triton), ErrStopped, ErrBatchSize, a failed batch's error (wrapped), or the
// caller's context error (wrapped).
package batcher // import "github.com/ofaserve/ofaserve/batcher"

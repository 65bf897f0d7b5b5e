// Package batcher is one model's dynamic batcher: it coalesces concurrent requests into batches and runs
// each batch on a free model instance, following the rules of Triton's dynamic batcher so that a
// config.pbtxt's dynamic_batching block means the same thing here. It is generic over the request type T
// and the result type R, and knows nothing about HTTP, tensors or models.
//
// Three ideas are kept apart, one file each.
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
// Deciding who runs it (scheduler.go). Batches are formed only when an instance is free, so a batch takes
// everything that arrived while the instances were busy. An instance that finishes a batch forms its next
// one itself; a dispatcher goroutine hands batches to idle instances, waits out MaxQueueDelay and fires a
// timer at the nearest queue deadline, so a request whose timeout passes is answered (REJECT) or moved
// back (DELAY) at once, even while every instance is busy. A batch formed but not yet started may still
// absorb queued requests. A cancelled Submit takes its request out of the queue, freeing its place.
//
// Carrying it (batch.go). A batch's values go to the ExecFunc in queue order, and each result goes back
// to the Submit that waits for it. With PreserveOrdering every request gets a response slot when it is
// dequeued, and a response leaves only after every earlier slot's, whatever instance ran it.
//
// Observing it (observe.go). A Config.Observer is told about each executed request, once, just before its
// answer is released: Triton's trace timestamps (request, queue and compute start, compute input end and
// output start, compute and request end) and the durations Stats adds for it, with the context the request
// was submitted with. Latency distributions and traces are built from these observations by whoever passes
// the Observer; the batcher keeps none of them.
//
// Stats follow Triton's statistics extension: per-request queue and compute times, executions per batch
// size, inference and execution counts, failures by reason. Submit's errors are ErrQueueFull and
// ErrTimeout (HTTP 503 in Triton), ErrStopped, ErrBatchSize, a failed batch's error (wrapped), or the
// caller's context error (wrapped).
package batcher // import "github.com/ofaserve/ofaserve/batcher"

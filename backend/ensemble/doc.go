// Package ensemble is the model kind of Triton's ensembles (platform
// "ensemble"): a pipeline of other models, declared in config.pbtxt as
// ensemble_scheduling steps, that clients see and call as one model.
//
// # The data flow
//
// An ensemble names tensors. Its own inputs and outputs are tensors, and
// every step maps its model's inputs from tensors (input_map: step input ->
// ensemble tensor) and its model's outputs to tensors (output_map: step
// output -> ensemble tensor). Each tensor is written once, by the request or
// by one step, and may be read by any number of steps, so the steps form a
// directed acyclic graph: one tensor read by two steps fans out, a step
// reading the outputs of two steps fans in.
//
//	IMAGE ──▶ ocr ──TEXT──▶ ofa ──▶ RESULT
//	  └───────────────────────▲
//
// A request runs the graph as Triton's ensemble scheduler does: a step is
// sent as soon as every tensor it reads exists (the request's inputs exist
// from the start; an optional ensemble input the request leaves out is
// simply not passed on), steps that become ready together run concurrently,
// and when every step has answered the response carries the requested
// ensemble outputs. Nothing is pruned: every step runs for every request.
//
// # Steps are ordinary requests
//
// A step is a plain request to its model through the Models it was loaded
// with: in the server, the repository's model handle, which validates it
// (backend.Signature.Validate) and queues it in that model's own dynamic
// batcher. So step requests of concurrent ensemble requests, and direct
// requests to the same model, are batched together, and the step models'
// statistics count every step request as their own. A step gets the
// ensemble request's id, priority, timeout and parameters.
//
// Shapes cross between batching and non-batching models the way Triton's
// scheduler moves them: a tensor made by a model without a batch dimension
// gets a leading 1 when a batching model reads it and its shape is exactly
// that model's dims; a batch-of-one tensor loses its batch dimension when a
// non-batching model reads it and would not fit otherwise.
//
// # Errors and cancellation
//
// The first step to fail ends the request: the other steps' requests are
// cancelled, and the client gets the step model's error, with its code,
// prefixed by the ensemble and the step ("in ensemble 'e', step 1 (model
// 'm'): ..."). A step model that is not loaded when the request reaches the
// step answers UNAVAILABLE. A cancelled ensemble request cancels its step
// requests (queued ones leave their queues) and answers CANCELLED.
//
// # Loading
//
// Load checks the graph with Triton's validation and messages (steps name a
// model and map inputs and outputs, every ensemble input is read, every
// ensemble output is written, no tensor is written twice or left unused),
// then resolves every step model through Models and checks the mapping
// against the step models' signatures (every required input mapped, no
// unknown input or output, consistent data types and shapes, max_batch_size
// no larger than a batching step model's). The repository loads an
// ensemble's step models before it (see package repository).
//
// # Statistics
//
// As in Triton, the ensemble's own statistics count each request once:
// success and failure (every failure under reason OTHER), one execution per
// request at its batch size, and queue time until its steps were sent. Its
// compute_infer is the sum of the time its steps took, queueing in the step
// models included: ofaserve's batcher does not hand a request its own
// compute split, so where Triton sums only the step models' compute times
// this counts the steps' whole time. The exact split of every step is in
// the step models' own statistics.
package ensemble

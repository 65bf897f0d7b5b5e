// Package tracing is Triton's trace extension: which inference requests are traced, the timestamps and
// tensors a trace records, and where finished traces go.
//
// Settings. A Setting says what is traced (Level: OFF, TIMESTAMPS, TENSORS), one request in how many
// (Rate), how many traces remain (Count, -1 for no limit) and how the trace file is written (File,
// LogFrequency). The global setting starts from --trace-config (ParseConfig); a model may hold values of
// its own, and takes the others from the global setting as it is now. An Update, read from a
// trace-setting request by ParseUpdate, sets or clears values: a cleared global value returns to its
// start-up value, a cleared model value falls back to the global one, and an empty update of a model drops
// all of its values. Rate and Count are sampled against the setting that holds them, so a model with its
// own rate keeps its own count of requests seen.
//
// Traces. The frontend asks Tracer.Start for each request; nil means not traced (a single atomic load when
// every level is OFF). A Trace collects named timestamps (the frontend's HTTP_* or GRPC_*, and REQUEST_START,
// QUEUE_START, COMPUTE_START, COMPUTE_INPUT_END, COMPUTE_OUTPUT_START, COMPUTE_END, REQUEST_END from the
// batcher's per-request observation, which finds the trace in the request's context: NewContext,
// FromContext), tensors at the TENSORS level, and child traces for the models run on the request's behalf.
// Finish hands it to the mode's sink.
//
// Modes. In triton mode traces are written as Triton's JSON trace file: every LogFrequency traces to
// File.0, File.1, ..., or all to File at Close when LogFrequency is 0; timestamps are nanoseconds on a
// clock that never goes backwards within a run. In opentelemetry mode each trace becomes a top-level
// span, a model span and a compute span, with the timestamps as events, exported in batches over OTLP/HTTP
// with the official Go SDK; a W3C traceparent that came with the request (HTTP headers, or gRPC metadata
// through MetadataCarrier) makes the top-level span a child of the caller's, and such a request is traced
// whatever the rate and count. The file location is set at start-up only: an update naming trace_file is
// refused, as Triton refuses it.
package tracing

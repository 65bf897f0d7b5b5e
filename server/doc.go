// Package server is ofaserve's network frontend: it speaks the KServe v2 /
// Triton inference protocol over HTTP (gin; JSON, the binary-data extension,
// gzip/deflate bodies, the classification and statistics extensions) and
// over gRPC (service inference.GRPCInferenceService, grpc.health.v1 and
// server reflection), and exports Triton's Prometheus metrics families on a
// separate listener.
//
// The server owns the protocol only. It decodes a request into a
// backend.Request (protocol/kserve), hands it to the Model it got from the
// Repository, which validates it against its signature (Triton's core
// checks, with Triton's messages: backend.Signature.Validate) and runs it,
// and encodes the backend.Response. It
// knows nothing about torch, batching or OFA: the Repository and Model
// interfaces below are all it consumes, declared here where they are used,
// besides the wire formats under protocol/ and backend's request types.
// cmd/ofaserve wires the model repository in, and configures POST /predict
// (Options.Predict) from the constants of the model kind it serves.
//
// Observability. Server.Observer is the batcher observer each model
// version gets at load (cmd/ofaserve passes it to the repository): per
// executed request it feeds the latency summaries (Triton's
// nv_inference_*_summary_us) and histograms (nv_inference_*_histogram_ms)
// that --metrics-config enables (Options.Metrics), and the request's trace
// when the tracer sampled it. The trace extension (GET/POST
// /v2[/models/{m}]/trace/setting, gRPC TraceSetting) reads and changes the
// tracer's settings (package tracing, Options.Tracer); each inference
// request is offered to the tracer once decoded, with its HTTP headers or
// gRPC metadata for a W3C traceparent, and carries its trace in its context
// to the batcher. The logging extension (GET/POST /v2/logging, gRPC
// LogSettings) changes the levels and format of the running server's
// logger (package logging, Options.Logging); at log_verbose_level > 0 every
// inference request is logged.
//
// Error statuses follow docs/triton-batcher-and-kserve-v2.md §2.8's mapping from backend.Code (see
// httpStatus and grpcCode). One deliberate difference from Triton: a
// malformed or ill-typed JSON body is a client error, so it gets 400 rather
// than Triton's 500.
package server

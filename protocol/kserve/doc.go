// Package kserve is the KServe v2 / Triton inference protocol's codec: it
// turns the bytes a client sends into a backend.Request and a
// backend.Response into the bytes it gets back, for HTTP (the JSON request
// and response, docs/triton-batcher-and-kserve-v2.md §2.3-2.5; the binary
// data extension and raw binary bodies, §2.6; the classification
// extension, §2.10) and for gRPC (ModelInferRequest and ModelInferResponse,
// §3.3-3.4). It parses version strings and says which version a request
// that names none gets, and decodes the flat setting objects of the trace
// and logging extensions (settings.go) for the packages that own them.
//
// It knows the model only by its backend.Signature (names and datatypes
// of the declared tensors, max_batch_size), holds no state, and does not
// validate a request against the model: that is backend.Signature.Validate,
// which the model does. The JSON decoder is written by hand for speed
// (envelope.go, validjson.go, jsondata.go); FuzzDecodeJSONInfer and
// FuzzBinaryFraming feed it arbitrary bytes.
package kserve

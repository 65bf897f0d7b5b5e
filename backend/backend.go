// Package backend defines what a model kind is: the protocol-level tensors a
// request carries in and out, the Model interface every kind implements
// (backend/libtorch for raw TorchScript models, backend/ofa for the OFA
// visual-entailment pipeline), a model's Signature with the one validation
// every request passes, and the status codes errors carry so the HTTP and
// gRPC frontends can map them to Triton's statuses.
//
// A request is validated once, by Signature.Validate, which the repository's
// model handle calls before a kind sees it. A Model then admits the request
// to its batcher's queue (batcher.Reserve: a full queue refuses it before any
// work), turns the protocol inputs into model tensors in the server's shared
// preprocessing pool (LoadSpec.Pool; checking only what is its own to check),
// puts the prepared request in its slot, and splits the batched output back
// into a Response (instances.Set.Run does the first three for the TorchScript
// kinds). The server knows nothing about
// torch or OFA; it only sees this package's types.
package backend

import (
	"context"
	"strconv"
	"time"

	"github.com/ofaserve/ofaserve/batcher"
)

// Tensor is a named tensor at the protocol level. Data is row-major and
// little-endian; a BYTES tensor holds, per element, a 4-byte little-endian
// length followed by that many bytes (the binary-data extension's layout).
type Tensor struct {
	Name     string
	Datatype string // "FP32", "INT64", "BYTES", ... (docs/triton-batcher-and-kserve-v2.md §2.9)
	Shape    []int64
	Data     []byte
}

// FormatShape writes a shape the way Triton's messages show it: "[1,16]".
func FormatShape(shape []int64) string {
	b := make([]byte, 0, 2+4*len(shape))
	b = append(b, '[')
	for i, d := range shape {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, d, 10)
	}
	return string(append(b, ']'))
}

// Request is one inference request after the frontend decoded it.
type Request struct {
	ID      string
	Inputs  []Tensor
	Outputs []string // requested outputs; empty means all
	// Priority is the request's priority parameter (0 = default level).
	Priority uint64
	// Timeout is the request's timeout parameter (0 = none); it may only
	// lower the queue policy's default timeout.
	Timeout time.Duration
	// Parameters are the custom request parameters.
	Parameters map[string]any
	// Start is when the frontend finished parsing the request (Triton's
	// request_start); zero means now.
	Start time.Time
}

// Response is a model's answer to one Request, outputs in model order.
type Response struct {
	Outputs    []Tensor
	Parameters map[string]any
}

// TensorSpec describes one model input or output as the model config
// declares it (without the implicit batch dimension).
type TensorSpec struct {
	Name        string
	Datatype    string
	Dims        []int64 // -1 for a variable dimension
	Optional    bool
	AllowRagged bool
	Labels      []string // classification labels for outputs, if any
}

// Prechecker is a Model that can refuse a request before it is read: Precheck answers UNAVAILABLE (queue
// full) when the model would refuse any request now, and nil when a request may be tried. Frontends call it
// before they parse a request body, so that an overloaded model costs refused clients microseconds.
type Prechecker interface {
	Precheck() error
}

// Model is one loaded version of a model.
type Model interface {
	// Infer runs one request that has passed Signature.Validate against the
	// model's signature. It blocks until the response is ready, the
	// request fails, or ctx is done.
	Infer(ctx context.Context, req *Request) (*Response, error)
	// Close stops accepting requests, finishes or fails the queued ones
	// (bounded by ctx) and releases the model's resources.
	Close(ctx context.Context) error
	// Stats returns the model's cumulative statistics (docs/triton-batcher-and-kserve-v2.md §1.11), as its
	// batcher counts them.
	Stats() batcher.Stats
}

package server

import (
	"errors"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
)

// codeOf classifies err; the batcher's sentinel errors are UNAVAILABLE
// (queue full, queue timeout, stopping) or INVALID_ARG (batch too large)
// even when a model returns them unwrapped.
func codeOf(err error) backend.Code {
	var be *backend.Error
	if errors.As(err, &be) {
		return be.Code
	}
	switch {
	case errors.Is(err, batcher.ErrQueueFull), errors.Is(err, batcher.ErrTimeout), errors.Is(err, batcher.ErrStopped):
		return backend.CodeUnavailable
	case errors.Is(err, batcher.ErrBatchSize):
		return backend.CodeInvalidArg
	}
	return backend.CodeOf(err)
}

// httpStatus maps a code to an HTTP status (docs/triton-batcher-and-kserve-v2.md §2.8).
func httpStatus(c backend.Code) int {
	switch c {
	case backend.CodeInternal:
		return http.StatusInternalServerError
	case backend.CodeNotFound:
		return http.StatusNotFound
	case backend.CodeUnavailable:
		return http.StatusServiceUnavailable
	case backend.CodeUnsupported:
		return http.StatusNotImplemented
	}
	// INVALID_ARG, ALREADY_EXISTS, CANCELLED, UNKNOWN
	return http.StatusBadRequest
}

// grpcCode maps a code to a gRPC status code (docs/triton-batcher-and-kserve-v2.md §2.8).
func grpcCode(c backend.Code) codes.Code {
	switch c {
	case backend.CodeInternal:
		return codes.Internal
	case backend.CodeInvalidArg:
		return codes.InvalidArgument
	case backend.CodeNotFound:
		return codes.NotFound
	case backend.CodeUnavailable:
		return codes.Unavailable
	case backend.CodeUnsupported:
		return codes.Unimplemented
	case backend.CodeCancelled:
		return codes.Canceled
	case backend.CodeAlreadyExists:
		return codes.AlreadyExists
	}
	return codes.Unknown
}

// grpcError turns err into a gRPC status error.
func grpcError(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(grpcCode(codeOf(err)), err.Error())
}

func invalidArg(format string, args ...any) error {
	return backend.Errorf(backend.CodeInvalidArg, format, args...)
}

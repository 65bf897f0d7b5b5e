package server

import (
	"errors"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ofaserve/ofaserve/backend"
)

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
	return status.Error(grpcCode(backend.CodeOf(err)), err.Error())
}

func invalidArg(format string, args ...any) error {
	return backend.Errorf(backend.CodeInvalidArg, format, args...)
}

// statusError gives an error an HTTP status that its backend code cannot
// say (413, 415); gRPC still maps it by its code.
type statusError struct {
	status int
	err    error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// withStatus wraps err so that HTTP answers it with status.
func withStatus(status int, err error) error { return &statusError{status: status, err: err} }

// httpStatusOf is the HTTP status of err: its statusError's, else its code's.
func httpStatusOf(err error) int {
	var se *statusError
	if errors.As(err, &se) {
		return se.status
	}
	return httpStatus(backend.CodeOf(err))
}

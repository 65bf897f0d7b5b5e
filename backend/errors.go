package backend

import (
	"context"
	"errors"
	"fmt"

	"github.com/ofaserve/ofaserve/batcher"
)

// Code classifies an error the way Triton does; frontends map it to an HTTP
// status and a gRPC code.
type Code int

// The codes a backend can return. Their HTTP mapping (docs/triton-batcher-and-kserve-v2.md §2.8):
// Internal 500, InvalidArg 400, NotFound 404, Unavailable 503,
// Unsupported 501, Cancelled 400, AlreadyExists 400, Unknown 400.
const (
	CodeInternal Code = iota
	CodeInvalidArg
	CodeNotFound
	CodeUnavailable
	CodeUnsupported
	CodeCancelled
	CodeAlreadyExists
	CodeUnknown
)

// String returns the Triton name of the code.
func (c Code) String() string {
	switch c {
	case CodeInternal:
		return "INTERNAL"
	case CodeInvalidArg:
		return "INVALID_ARG"
	case CodeNotFound:
		return "NOT_FOUND"
	case CodeUnavailable:
		return "UNAVAILABLE"
	case CodeUnsupported:
		return "UNSUPPORTED"
	case CodeCancelled:
		return "CANCELLED"
	case CodeAlreadyExists:
		return "ALREADY_EXISTS"
	default:
		return "UNKNOWN"
	}
}

// Error is an error with a Code. Msg is what the client sees.
type Error struct {
	Code Code
	Msg  string
	Err  error // optional cause, for errors.Is / errors.As
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message. A %w
// verb in format makes the wrapped error the cause.
func Errorf(code Code, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Msg: err.Error(), Err: errors.Unwrap(err)}
}

// CodeOf returns the code of err: the Code of the first *Error in its chain,
// CodeCancelled for a cancelled context, CodeUnavailable for a deadline,
// and CodeInternal otherwise.
func CodeOf(err error) Code {
	var e *Error
	switch {
	case err == nil:
		return CodeInternal
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, context.Canceled):
		return CodeCancelled
	case errors.Is(err, context.DeadlineExceeded):
		return CodeUnavailable
	default:
		return CodeInternal
	}
}

// SubmitError turns an error returned by batcher.Submit into a coded one:
// a failed batch keeps the code its executor gave it, the queue's refusals
// are UNAVAILABLE (503), an oversized request INVALID_ARG, a cancelled
// request CANCELLED, and anything else INTERNAL. The client-visible message
// stays the batcher's (Triton's) wording.
func SubmitError(err error) error {
	var be *Error
	switch {
	case errors.As(err, &be):
		return &Error{Code: be.Code, Msg: be.Msg, Err: err}
	case errors.Is(err, batcher.ErrQueueFull):
		return &Error{Code: CodeUnavailable, Msg: batcher.ErrQueueFull.Error(), Err: err}
	case errors.Is(err, batcher.ErrTimeout):
		return &Error{Code: CodeUnavailable, Msg: batcher.ErrTimeout.Error(), Err: err}
	case errors.Is(err, batcher.ErrStopped):
		return &Error{Code: CodeUnavailable, Msg: batcher.ErrStopped.Error(), Err: err}
	case errors.Is(err, batcher.ErrBatchSize):
		return &Error{Code: CodeInvalidArg, Msg: err.Error(), Err: err}
	case errors.Is(err, context.Canceled):
		return &Error{Code: CodeCancelled, Msg: "request cancelled", Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeUnavailable, Msg: "request deadline exceeded", Err: err}
	}
	return &Error{Code: CodeInternal, Msg: err.Error(), Err: err}
}

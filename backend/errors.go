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

// CodeOf returns the code of err, the one mapping of errors to codes: the
// Code of the first *Error in its chain; for the batcher's refusals, even
// unwrapped, UNAVAILABLE (queue full, queue timeout, stopping) or
// INVALID_ARG (batch too large); CodeCancelled for a cancelled context,
// CodeUnavailable for a deadline, and CodeInternal otherwise.
func CodeOf(err error) Code {
	var e *Error
	switch {
	case err == nil:
		return CodeInternal
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, batcher.ErrQueueFull), errors.Is(err, batcher.ErrTimeout), errors.Is(err, batcher.ErrStopped):
		return CodeUnavailable
	case errors.Is(err, batcher.ErrBatchSize):
		return CodeInvalidArg
	case errors.Is(err, context.Canceled):
		return CodeCancelled
	case errors.Is(err, context.DeadlineExceeded):
		return CodeUnavailable
	default:
		return CodeInternal
	}
}

// SubmitError turns an error returned by batcher.Submit into an *Error with
// CodeOf's code (a failed batch keeps the code its executor gave it) and the
// batcher's (Triton's) wording: a failed batch's message, the refusal's
// message for a full queue, an expired timeout or a stopping batcher, and
// plain words for a cancelled or expired context.
func SubmitError(err error) error {
	msg := err.Error()
	var be *Error
	switch {
	case errors.As(err, &be):
		msg = be.Msg
	case errors.Is(err, batcher.ErrQueueFull):
		msg = batcher.ErrQueueFull.Error()
	case errors.Is(err, batcher.ErrTimeout):
		msg = batcher.ErrTimeout.Error()
	case errors.Is(err, batcher.ErrStopped):
		msg = batcher.ErrStopped.Error()
	case errors.Is(err, batcher.ErrBatchSize):
	case errors.Is(err, context.Canceled):
		msg = "request cancelled"
	case errors.Is(err, context.DeadlineExceeded):
		msg = "request deadline exceeded"
	}
	return &Error{Code: CodeOf(err), Msg: msg, Err: err}
}

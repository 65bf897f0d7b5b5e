package backend

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ofaserve/ofaserve/batcher"
)

// TestCodeOfAndSubmitError: the one mapping of errors to codes, and the
// messages SubmitError gives the batcher's errors.
func TestCodeOfAndSubmitError(t *testing.T) {
	failed := Errorf(CodeInternal, "PyTorch execute failure: boom")
	for _, c := range []struct {
		err  error
		code Code
		msg  string
	}{
		{failed, CodeInternal, "PyTorch execute failure: boom"},
		{fmt.Errorf("batch: %w", failed), CodeInternal, "PyTorch execute failure: boom"},
		{Errorf(CodeInvalidArg, "bad"), CodeInvalidArg, "bad"},
		{batcher.ErrQueueFull, CodeUnavailable, "Exceeds maximum queue size"},
		{fmt.Errorf("model m: %w", batcher.ErrQueueFull), CodeUnavailable, "Exceeds maximum queue size"},
		{batcher.ErrTimeout, CodeUnavailable, "Request timeout expired"},
		{batcher.ErrStopped, CodeUnavailable, batcher.ErrStopped.Error()},
		{fmt.Errorf("%w (batch-size 9, max_batch_size 8)", batcher.ErrBatchSize), CodeInvalidArg,
			"inference request batch-size must be <= max_batch_size (batch-size 9, max_batch_size 8)"},
		{context.Canceled, CodeCancelled, "request cancelled"},
		{fmt.Errorf("wait: %w", context.DeadlineExceeded), CodeUnavailable, "request deadline exceeded"},
		{errors.New("something else"), CodeInternal, "something else"},
	} {
		if got := CodeOf(c.err); got != c.code {
			t.Errorf("CodeOf(%v) = %v, want %v", c.err, got, c.code)
		}
		se := SubmitError(c.err)
		if CodeOf(se) != c.code || se.Error() != c.msg || !errors.Is(se, c.err) {
			t.Errorf("SubmitError(%v) = %v %q, want %v %q wrapping the cause", c.err, CodeOf(se), se, c.code, c.msg)
		}
	}
	if CodeOf(nil) != CodeInternal {
		t.Error("CodeOf(nil) is not INTERNAL")
	}
}

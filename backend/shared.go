package backend

import (
	"context"
	"errors"
	"strconv"

	"github.com/ofaserve/ofaserve/batcher"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// InstanceDevices lists one device per model instance ("cpu" or "cuda:N"),
// instance groups in config order; a GPU group's instances are interleaved
// across its GPUs. A config without instance groups gets one CPU instance.
// Every model kind that runs TorchScript modules places them this way.
func InstanceDevices(cfg *modelconfig.ModelConfig) []string {
	var devs []string
	for _, g := range cfg.GetInstanceGroup() {
		count := max(1, int(g.GetCount()))
		if g.GetKind() == modelconfig.ModelInstanceGroup_KIND_GPU && len(g.GetGpus()) > 0 {
			for range count {
				for _, gpu := range g.GetGpus() {
					devs = append(devs, "cuda:"+strconv.Itoa(int(gpu)))
				}
			}
			continue
		}
		for range count {
			devs = append(devs, "cpu")
		}
	}
	if len(devs) == 0 {
		devs = []string{"cpu"}
	}
	return devs
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

// RequestedOutputs resolves a request's output names into config indices,
// in config order (all numOutputs of them when names is empty). index maps
// an output name to its config index. An unknown or repeated name is an
// INVALID_ARG error with Triton's message.
func RequestedOutputs(model string, names []string, numOutputs int, index func(name string) (int, bool)) ([]int, error) {
	if len(names) == 0 {
		all := make([]int, numOutputs)
		for i := range all {
			all[i] = i
		}
		return all, nil
	}
	want := make([]bool, numOutputs)
	for _, name := range names {
		o, ok := index(name)
		if !ok {
			return nil, Errorf(CodeInvalidArg, "unexpected inference output '%s' for model '%s'", name, model)
		}
		if want[o] {
			return nil, Errorf(CodeInvalidArg, "output '%s' already exists in request", name)
		}
		want[o] = true
	}
	var out []int
	for o, w := range want {
		if w {
			out = append(out, o)
		}
	}
	return out, nil
}

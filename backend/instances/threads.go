package instances

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/ofaserve/ofaserve/libtorch"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// Triton's pytorch backend parameters for libtorch's CPU threads, read from a
// model config's parameters as string values ("1").
const (
	// ParamIntraOpThreads sets the threads one op may use
	// (at::set_num_threads).
	ParamIntraOpThreads = "INTRA_OP_THREAD_COUNT"
	// ParamInterOpThreads sizes the pool that runs TorchScript fork tasks
	// (at::set_num_interop_threads).
	ParamInterOpThreads = "INTER_OP_THREAD_COUNT"
)

// ThreadParameters reads INTRA_OP_THREAD_COUNT and INTER_OP_THREAD_COUNT from
// a config's parameters. 0 (or an absent parameter) leaves the setting alone;
// anything but an integer from 0 to libtorch.MaxThreads is an error naming
// the parameter.
func ThreadParameters(cfg *modelconfig.ModelConfig) (intra, inter int, err error) {
	params := cfg.GetParameters()
	read := func(key string) (int, error) {
		p, ok := params[key]
		if !ok {
			return 0, nil
		}
		s := strings.TrimSpace(p.GetStringValue())
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("parameter '%s': '%s' is not an integer thread count", key, p.GetStringValue())
		}
		if n < 0 || n > libtorch.MaxThreads {
			return 0, fmt.Errorf("parameter '%s': %d threads is out of range (0 to %d; 0 keeps libtorch's setting)", key, n, libtorch.MaxThreads)
		}
		return n, nil
	}
	if intra, err = read(ParamIntraOpThreads); err != nil {
		return 0, 0, err
	}
	if inter, err = read(ParamInterOpThreads); err != nil {
		return 0, 0, err
	}
	return intra, inter, nil
}

// ApplyThreadParameters applies a model config's INTRA_OP_THREAD_COUNT and
// INTER_OP_THREAD_COUNT to libtorch. The settings are process-wide, so, as in
// Triton, the first value wins: the server's --torch-intra-op-threads or the
// first model loaded that names the parameter. A model asking for a different
// count later still loads; the request is logged and ignored. A parameter
// that is not a valid count is an error, and nothing is applied.
func ApplyThreadParameters(cfg *modelconfig.ModelConfig, log *slog.Logger) error {
	intra, inter, err := ThreadParameters(cfg)
	if err != nil {
		return err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if intra > 0 {
		switch cur := libtorch.ConfiguredNumThreads(); {
		case cur == 0:
			if err := libtorch.SetNumThreads(intra); err != nil {
				return fmt.Errorf("parameter '%s': %w", ParamIntraOpThreads, err)
			}
			log.Info("libtorch intra-op threads set (process-wide)", "threads", intra, "parameter", ParamIntraOpThreads)
		case cur != intra:
			log.Warn("libtorch intra-op threads are process-wide and already set; this model's value is ignored",
				"parameter", ParamIntraOpThreads, "asked", intra, "threads", cur)
		}
	}
	if inter > 0 {
		if err := libtorch.SetNumInteropThreads(inter); err != nil {
			if cur := libtorch.NumInteropThreads(); cur != inter {
				log.Warn("libtorch inter-op threads are process-wide and can no longer change; this model's value is ignored",
					"parameter", ParamInterOpThreads, "asked", inter, "threads", cur, "err", err)
			}
		} else {
			log.Info("libtorch inter-op threads set (process-wide)", "threads", inter, "parameter", ParamInterOpThreads)
		}
	}
	return nil
}

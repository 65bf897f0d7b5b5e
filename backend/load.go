package backend

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/ofaserve/ofaserve/batcher"
	"github.com/ofaserve/ofaserve/protocol/datatype"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// LoadSpec is everything a model kind needs to load one version of a model.
// The repository fills it from a validated, normalized config.pbtxt.
type LoadSpec struct {
	Name    string
	Version int64
	// ModelDir is <repository>/<model>; VersionDir is ModelDir/<version>.
	ModelDir, VersionDir string
	// Config is normalized (defaults filled in: instance groups with kinds,
	// counts and gpus; preferred batch sizes; default_model_filename).
	// Loaders must not modify it.
	Config *modelconfig.ModelConfig
	// Signature is Config's tensors at the protocol level (output labels
	// read from their label files): what every request the model receives
	// has been validated against.
	Signature Signature
	// GPUs is the number of usable GPUs.
	GPUs   int
	Logger *slog.Logger
	// Observer, if not nil, is the batcher observer of this model version
	// (per-request timings for latency metrics and traces); a kind that
	// batches passes it to its batcher (instances.Load does).
	Observer batcher.Observer
	// Pool, if not nil, bounds the CPU work of preparing requests (decoding, resizing, tokenizing), shared by
	// every model of the server: a kind prepares each admitted request in it (instances.Set.Run does). Nil
	// prepares in the caller's goroutine.
	Pool Pool
}

// Pool bounds the work of preparing requests; backend/workpool.Pool is the server's. Do runs job once a
// worker is free for key (the model's name), and returns nil; or returns the context's error, without running
// job, when ctx ends first. Defined here, not taken from workpool, so that packages which consume backend's
// types (the server) do not depend on the pool's implementation.
type Pool interface {
	Do(ctx context.Context, key string, job func()) error
}

// Loader loads one model version; it is how a model kind plugs into the
// repository. The returned Model serves until Close.
type Loader func(ctx context.Context, spec LoadSpec) (Model, error)

// WithPool returns loaders that load with pool as their LoadSpec.Pool.
func WithPool(pool Pool, loaders map[string]Loader) map[string]Loader {
	out := make(map[string]Loader, len(loaders))
	for kind, l := range loaders {
		out[kind] = func(ctx context.Context, spec LoadSpec) (Model, error) {
			spec.Pool = pool
			return l(ctx, spec)
		}
	}
	return out
}

// Datatype returns the protocol datatype string of a config data type
// ("FP32" for TYPE_FP32, "BYTES" for TYPE_STRING), or "" for an invalid one.
func Datatype(dt modelconfig.DataType) string {
	name, ok := modelconfig.DataType_name[int32(dt)]
	if t := datatype.FromConfig(name); ok && t != datatype.Invalid {
		return t.String()
	}
	return ""
}

// BatcherConfig translates a normalized model config into the batcher's
// configuration for a model with the given number of instances. Without
// dynamic_batching every request runs alone (preferred size 1, no delay),
// as Triton's default scheduler does; so does every request of a model
// with max_batch_size 0 (the batcher reads it as 1).
func BatcherConfig(cfg *modelconfig.ModelConfig, instances int) batcher.Config {
	bc := batcher.Config{MaxBatchSize: int(cfg.GetMaxBatchSize()), Instances: instances}
	db := cfg.GetDynamicBatching()
	if db == nil {
		if bc.MaxBatchSize > 0 {
			bc.PreferredBatchSizes = []int{1}
		}
		return bc
	}
	for _, p := range db.GetPreferredBatchSize() {
		bc.PreferredBatchSizes = append(bc.PreferredBatchSizes, int(p))
	}
	bc.MaxQueueDelay = time.Duration(db.GetMaxQueueDelayMicroseconds()) * time.Microsecond
	bc.PreserveOrdering = db.GetPreserveOrdering()
	bc.PriorityLevels = db.GetPriorityLevels()
	bc.DefaultPriorityLevel = db.GetDefaultPriorityLevel()
	bc.DefaultQueuePolicy = queuePolicy(db.GetDefaultQueuePolicy())
	bc.Policy, bc.AdaptiveQueueBound, _ = BatchingPolicy(cfg) // the repository refused a bad one at load
	if len(db.GetPriorityQueuePolicy()) > 0 {
		bc.PriorityQueuePolicy = make(map[uint64]batcher.QueuePolicy, len(db.GetPriorityQueuePolicy()))
		for level, p := range db.GetPriorityQueuePolicy() {
			bc.PriorityQueuePolicy[level] = queuePolicy(p)
		}
	}
	return bc
}

// Model config parameters that choose the batcher's policy (batcher.Policy) and its queue bound.
const (
	ParamBatchingPolicy     = "batching_policy"
	ParamAdaptiveQueueBound = "adaptive_queue_bound_microseconds"
)

// BatchingPolicy reads the batching_policy parameter ("triton", the default, or "adaptive") and
// adaptive_queue_bound_microseconds (an integer >= 0, only with "adaptive"; 0 or absent = the batcher's
// default bound), with an error naming the parameter for a value it cannot use.
func BatchingPolicy(cfg *modelconfig.ModelConfig) (batcher.Policy, time.Duration, error) {
	params := cfg.GetParameters()
	policy := batcher.Triton
	if p, ok := params[ParamBatchingPolicy]; ok {
		switch v := strings.TrimSpace(p.GetStringValue()); v {
		case "triton", "":
		case "adaptive":
			policy = batcher.Adaptive
		default:
			return 0, 0, fmt.Errorf("parameter '%s' must be 'triton' or 'adaptive', got '%s'", ParamBatchingPolicy, v)
		}
	}
	p, ok := params[ParamAdaptiveQueueBound]
	if !ok {
		return policy, 0, nil
	}
	us, err := strconv.ParseInt(strings.TrimSpace(p.GetStringValue()), 10, 64)
	switch {
	case err != nil || us < 0 || us > int64(time.Hour/time.Microsecond):
		return 0, 0, fmt.Errorf("parameter '%s' must be an integer number of microseconds in [0, 3600000000], got '%s'", ParamAdaptiveQueueBound, p.GetStringValue())
	case policy != batcher.Adaptive:
		return 0, 0, fmt.Errorf("parameter '%s' needs '%s' \"adaptive\"", ParamAdaptiveQueueBound, ParamBatchingPolicy)
	}
	return policy, time.Duration(us) * time.Microsecond, nil
}

func queuePolicy(p *modelconfig.ModelQueuePolicy) batcher.QueuePolicy {
	qp := batcher.QueuePolicy{
		DefaultTimeout:       time.Duration(p.GetDefaultTimeoutMicroseconds()) * time.Microsecond,
		AllowTimeoutOverride: p.GetAllowTimeoutOverride(),
		MaxQueueSize:         int(p.GetMaxQueueSize()),
	}
	if p.GetTimeoutAction() == modelconfig.ModelQueuePolicy_DELAY {
		qp.TimeoutAction = batcher.Delay
	}
	return qp
}

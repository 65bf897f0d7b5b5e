//lint:file-ignore ST1005 Triton's error messages are matched word for word by clients and conformance tests.

package batcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// TimeoutAction says what happens to a queued request whose queue timeout has passed
// (Triton's ModelQueuePolicy.timeout_action).
type TimeoutAction int

const (
	// Reject fails the request with ErrTimeout.
	Reject TimeoutAction = iota
	// Delay moves the request behind every unexpired request of its priority level.
	Delay
)

func (a TimeoutAction) String() string {
	switch a {
	case Reject:
		return "REJECT"
	case Delay:
		return "DELAY"
	}
	return fmt.Sprintf("TimeoutAction(%d)", int(a))
}

// QueuePolicy is the policy of one priority level (Triton's ModelQueuePolicy).
type QueuePolicy struct {
	TimeoutAction        TimeoutAction
	DefaultTimeout       time.Duration // 0 = none
	AllowTimeoutOverride bool          // a request's own timeout may lower (never raise) DefaultTimeout
	MaxQueueSize         int           // requests (not batch units), 0 = unbounded
}

// Policy decides when a batch that the queue walk has gathered leaves for its instance.
type Policy int

const (
	// Triton is the default: preferred sizes and max_queue_delay decide, as in Triton's dynamic batcher.
	Triton Policy = iota
	// Adaptive ignores the preferred sizes and lets a batch wait for more requests only when the model's
	// learned cost and the recent arrivals say the larger batch repays the idle time (see the package doc).
	Adaptive
)

func (p Policy) String() string {
	switch p {
	case Triton:
		return "triton"
	case Adaptive:
		return "adaptive"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// Config is a model's dynamic_batching block plus the two model-level fields the batcher needs.
type Config struct {
	MaxBatchSize         int   // model's max_batch_size (0 -> treated as 1)
	PreferredBatchSizes  []int // empty -> [MaxBatchSize]
	MaxQueueDelay        time.Duration
	PreserveOrdering     bool
	PriorityLevels       uint64 // 0 = one queue
	DefaultPriorityLevel uint64
	DefaultQueuePolicy   QueuePolicy
	PriorityQueuePolicy  map[uint64]QueuePolicy
	Instances            int // instance_group count, >=1 (0 is read as 1)
	// Observer, if not nil, is told about every executed request (see Observer).
	Observer Observer
	// HoldUntil is a test hook like Triton's TRITONSERVER_DELAY_SCHEDULER: no batch is dispatched until this
	// many requests are queued at once (0 = off). It holds only once: after the first release it is off.
	HoldUntil int
	// Policy is Triton (the default) or Adaptive.
	Policy Policy
	// AdaptiveQueueBound is, under the Adaptive policy, the longest a request may be kept waiting in the
	// queue by the policy's choice; 0 = MaxQueueDelay plus the learned time of one MaxBatchSize batch.
	AdaptiveQueueBound time.Duration
}

// Validate checks the configuration the way Triton's model-config validation does, with its messages.
func (c Config) Validate() error {
	if c.MaxBatchSize < 0 {
		return errors.New("'max_batch_size' must be non-negative value")
	}
	for _, p := range c.PreferredBatchSizes {
		if p <= 0 {
			return errors.New("dynamic batching preferred size must be positive")
		}
		if p > c.MaxBatchSize {
			return errors.New("dynamic batching preferred size must be <= max batch size")
		}
	}
	if c.MaxQueueDelay < 0 {
		return errors.New("dynamic batching 'max_queue_delay_microseconds' must be non-negative value")
	}
	if c.PreserveOrdering {
		if c.PriorityLevels > 1 {
			return errors.New("Only one priority level is allowed when 'preserve_ordering' is true")
		}
		bad := c.DefaultQueuePolicy.TimeoutAction == Delay && c.DefaultQueuePolicy.DefaultTimeout != 0
		for _, p := range c.PriorityQueuePolicy {
			bad = bad || (p.TimeoutAction == Delay && p.DefaultTimeout != 0)
		}
		if bad {
			return errors.New("Queue policy can not have DELAY as timeout action when 'preserve_ordering' is true")
		}
	}
	if c.PriorityLevels != 0 && (c.DefaultPriorityLevel < 1 || c.DefaultPriorityLevel > c.PriorityLevels) {
		return fmt.Errorf("default priority level must be in range [1, %d]", c.PriorityLevels)
	}
	for lvl := range c.PriorityQueuePolicy {
		if lvl < 1 || lvl > c.PriorityLevels {
			return fmt.Errorf("priority queue policy must have priority level in range [1, %d]", c.PriorityLevels)
		}
	}
	if err := c.DefaultQueuePolicy.validate(); err != nil {
		return err
	}
	for _, p := range c.PriorityQueuePolicy {
		if err := p.validate(); err != nil {
			return err
		}
	}
	if c.Instances < 0 {
		return errors.New("instance group count must be >= 1")
	}
	if c.HoldUntil < 0 {
		return errors.New("HoldUntil must be non-negative")
	}
	if c.Policy != Triton && c.Policy != Adaptive {
		return fmt.Errorf("unknown batching policy %v", c.Policy)
	}
	if c.AdaptiveQueueBound < 0 {
		return errors.New("adaptive queue bound must be non-negative")
	}
	return nil
}

// Cautions lists what in c is valid but works against batching, one sentence each, for the operator's log at
// load. Today: a max_queue_size below max_batch_size where no batch is prefetched. With a size limit Triton's
// rules form no batch ahead of a busy instance, so when an instance frees, its next batch holds what the
// queue held: at most max_queue_size requests. On a device whose cost has a fixed part, that caps throughput
// below what max_batch_size promises (t(b) = 20 ms + 2.5 ms·b with a limit of 8 and batches of 16: 8 / t(8)
// = 200 samples/s against 16 / t(16) = 267). The Adaptive policy prefetches under a size limit (prefetch),
// so it has no such caution unless priorities or queue timeouts stop prefetching.
func (c Config) Cautions() []string {
	var out []string
	check := func(where string, p QueuePolicy) {
		if p.MaxQueueSize > 0 && p.MaxQueueSize < c.MaxBatchSize && !c.prefetch() {
			out = append(out, fmt.Sprintf("%s max_queue_size %d is below max_batch_size %d: with a queue size limit no batch "+
				"is formed ahead of a busy instance, so batches hold at most %d queued requests", where, p.MaxQueueSize, c.MaxBatchSize, p.MaxQueueSize))
		}
	}
	check("default_queue_policy", c.DefaultQueuePolicy)
	levels := make([]uint64, 0, len(c.PriorityQueuePolicy))
	for l := range c.PriorityQueuePolicy {
		levels = append(levels, l)
	}
	slices.Sort(levels)
	for _, l := range levels {
		check(fmt.Sprintf("priority_queue_policy[%d]", l), c.PriorityQueuePolicy[l])
	}
	return out
}

// prefetch reports whether a batch may be handed to an instance while its previous batch runs. It is Triton's
// rule for preparing payloads ahead (docs/triton-batcher-and-kserve-v2.md §1.2): only with one queue, no queue
// timeout and no queue size limit, because a request taken into a batch leaves the queue, and with it the
// reach of priorities, timeouts and the size limit. The Adaptive policy also prefetches under a size limit:
// the limit then bounds what waits in the queue beside each instance's staged batch (at most max_batch_size
// more per instance), so that bounding the queue does not also bound the batch.
func (c Config) prefetch() bool {
	return c.PriorityLevels == 0 && c.DefaultQueuePolicy.DefaultTimeout == 0 &&
		!c.DefaultQueuePolicy.AllowTimeoutOverride && (c.DefaultQueuePolicy.MaxQueueSize == 0 || c.Policy == Adaptive)
}

func (p QueuePolicy) validate() error {
	if p.TimeoutAction != Reject && p.TimeoutAction != Delay {
		return fmt.Errorf("unknown queue policy timeout action %v", p.TimeoutAction)
	}
	if p.DefaultTimeout < 0 {
		return errors.New("queue policy 'default_timeout_microseconds' must be non-negative value")
	}
	if p.MaxQueueSize < 0 {
		return errors.New("queue policy 'max_queue_size' must be non-negative value")
	}
	return nil
}

// Item is one request as the batcher sees it.
type Item[T any] struct {
	Value    T
	Size     int           // batch units (first dim), >=1 (0 is read as 1); never split
	Priority uint64        // 0 or > levels -> default level
	Timeout  time.Duration // the request's own timeout parameter; may only lower the policy default
	// ShapeKey: requests with different keys are incompatible (docs/triton-batcher-and-kserve-v2.md §1.6, shape check / optional-input set);
	// "" when the model needs no shape check.
	ShapeKey string
	Start    time.Time // request_start set by the frontend; zero -> time of Submit
	// Length is an optional per-request length L (tokens, say) that the batch's cost grows with; a batch's L
	// is the largest of its requests'. Only the Adaptive policy's cost model reads it.
	Length int
}

// Timing is what an executor reports about one batch (docs/triton-batcher-and-kserve-v2.md §1.11); zero fields -> whole compute counted as infer.
type Timing struct{ Input, Infer, Output time.Duration }

// ExecFunc runs one batch on instance `instance` (0..Instances-1). It returns one result per item, in order.
// A per-item failure can be carried inside R; a returned error fails the whole batch.
// The batch slice is reused after ExecFunc returns: do not keep it. The returned slice is read before the
// instance's next call, so an executor may reuse it per instance.
type ExecFunc[T, R any] func(ctx context.Context, instance int, batch []T) ([]R, Timing, error)

// Run names one run of a batch on an instance.
type Run struct {
	Instance int // 0..Instances-1
	// Slot is 0 or 1. Consecutive runs of an instance alternate slots, so the run being staged never shares
	// its slot with the run executing: an executor keeps one set of staging buffers per (instance, slot).
	Slot int
	// Staged, in a Stage call, is how many leading values of the batch earlier Stage calls of this run saw.
	Staged int
}

// Executor runs batches in two steps, so that an instance's next batch is prepared while its current one
// computes (the early hand-off of the package doc). For every run, Stage is called one or more times and
// then Exec once, unless a Stage call fails:
//
//   - Stage prepares batch[r.Staged:] (stack it into host buffers, start its host-to-device copies). A run's
//     batch may grow between its Stage calls, by appending only; each call sees the batch as it stands.
//     Stage of run k+1 may run at the same time as Exec of run k on the same instance (never Exec of run
//     k+1, never another Stage). An error fails the run's batch; Exec is not called for it.
//   - Exec runs the batch, every value of which has been staged, with ExecFunc's contract.
//
// The batch slice is the batcher's: from a run's first Stage call until its Exec returns, values once
// passed never change (a later call may see more appended); it is reused afterwards.
type Executor[T, R any] interface {
	Stage(ctx context.Context, r Run, batch []T) error
	Exec(ctx context.Context, r Run, batch []T) ([]R, Timing, error)
}

// Errors a Submit can return (Submit wraps a failed batch's error and a cancelled request's ctx.Err()).
var (
	ErrQueueFull = errors.New("Exceeds maximum queue size")
	ErrTimeout   = errors.New("Request timeout expired")
	ErrStopped   = errors.New("Server is stopping, scheduler for model has stopped accepting new inference requests")
	// ErrBatchSize is returned for a request whose own batch size exceeds max_batch_size.
	ErrBatchSize = errors.New("inference request batch-size must be <= max_batch_size")
)

// Duration is a count of requests and their summed time.
type Duration struct {
	Count uint64
	Total time.Duration
}

// BatchStats is what one batch size has cost so far: executions and their summed compute times.
type BatchStats struct {
	Executions                                uint64
	ComputeInput, ComputeInfer, ComputeOutput time.Duration
}

// FailReason is the reason label of nv_inference_request_failure.
type FailReason string

const (
	FailRejected FailReason = "REJECTED"
	FailCanceled FailReason = "CANCELED"
	FailBackend  FailReason = "BACKEND"
	FailOther    FailReason = "OTHER"
)

// Stats are a model's cumulative statistics with Triton's semantics (docs/triton-batcher-and-kserve-v2.md §1.11).
type Stats struct {
	Success, Fail, Queue, ComputeInput, ComputeInfer, ComputeOutput Duration // per request
	CacheHit, CacheMiss                                             Duration // the response cache's: the batcher leaves them zero
	Failures                                                        map[FailReason]uint64
	InferenceCount                                                  uint64 // sum of batch units of successful requests
	ExecutionCount                                                  uint64 // batches
	LastInference                                                   time.Time
	Batches                                                         map[int]BatchStats // keyed by batch size (units)
	Pending                                                         int                // queued, not yet executing
	Adaptive                                                        AdaptiveStats      // the Adaptive policy's; zero under Triton's rules
}

// AdaptiveStats are what the Adaptive policy decided and learned, for an operator to see how often it holds
// a batch back and what it believes the device costs.
type AdaptiveStats struct {
	Enabled   bool   // the model runs the Adaptive policy
	Decisions uint64 // times the rule weighed whether a batch leaves now (a batch that waits is weighed again)
	Waits     uint64 // of those, the times it chose to wait
	// The learned cost t(b, L) = Fixed + b·PerSample + L·PerToken; zero until the model knows it.
	Fixed, PerSample, PerToken time.Duration
}

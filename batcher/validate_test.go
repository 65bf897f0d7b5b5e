package batcher

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	delayPol := QueuePolicy{TimeoutAction: Delay, DefaultTimeout: time.Second}
	cases := []struct {
		name string
		cfg  Config
		want string // "" = valid
	}{
		{"zero config", Config{}, ""},
		{"typical", Config{MaxBatchSize: 16, PreferredBatchSizes: []int{4, 8, 16}, MaxQueueDelay: time.Millisecond, Instances: 2}, ""},
		{"negative max batch", Config{MaxBatchSize: -1}, "'max_batch_size' must be non-negative value"},
		{"preferred zero", Config{MaxBatchSize: 8, PreferredBatchSizes: []int{0}}, "dynamic batching preferred size must be positive"},
		{"preferred negative", Config{MaxBatchSize: 8, PreferredBatchSizes: []int{-2}}, "dynamic batching preferred size must be positive"},
		{"preferred above max", Config{MaxBatchSize: 8, PreferredBatchSizes: []int{4, 9}}, "dynamic batching preferred size must be <= max batch size"},
		{"preferred with max 0", Config{PreferredBatchSizes: []int{1}}, "dynamic batching preferred size must be <= max batch size"},
		{"duplicates are fine", Config{MaxBatchSize: 8, PreferredBatchSizes: []int{4, 4, 2}}, ""},
		{"ordering with levels", Config{MaxBatchSize: 8, PreserveOrdering: true, PriorityLevels: 2, DefaultPriorityLevel: 1}, "Only one priority level is allowed when 'preserve_ordering' is true"},
		{"ordering with one level", Config{MaxBatchSize: 8, PreserveOrdering: true, PriorityLevels: 1, DefaultPriorityLevel: 1}, ""},
		{"ordering with DELAY default", Config{MaxBatchSize: 8, PreserveOrdering: true, DefaultQueuePolicy: delayPol}, "Queue policy can not have DELAY as timeout action when 'preserve_ordering' is true"},
		{"ordering with DELAY but no timeout", Config{MaxBatchSize: 8, PreserveOrdering: true, DefaultQueuePolicy: QueuePolicy{TimeoutAction: Delay}}, ""},
		{"ordering with DELAY per level", Config{MaxBatchSize: 8, PreserveOrdering: true, PriorityLevels: 1, DefaultPriorityLevel: 1, PriorityQueuePolicy: map[uint64]QueuePolicy{1: delayPol}}, "Queue policy can not have DELAY as timeout action when 'preserve_ordering' is true"},
		{"default level 0 with levels", Config{MaxBatchSize: 8, PriorityLevels: 3}, "default priority level must be in range [1, 3]"},
		{"default level above", Config{MaxBatchSize: 8, PriorityLevels: 3, DefaultPriorityLevel: 4}, "default priority level must be in range [1, 3]"},
		{"max levels", Config{MaxBatchSize: 8, PriorityLevels: math.MaxUint64, DefaultPriorityLevel: 1<<32 + 1}, ""},
		{"policy level 0", Config{MaxBatchSize: 8, PriorityLevels: 2, DefaultPriorityLevel: 1, PriorityQueuePolicy: map[uint64]QueuePolicy{0: {}}}, "priority queue policy must have priority level in range [1, 2]"},
		{"policy level above", Config{MaxBatchSize: 8, PriorityLevels: 2, DefaultPriorityLevel: 1, PriorityQueuePolicy: map[uint64]QueuePolicy{3: {}}}, "priority queue policy must have priority level in range [1, 2]"},
		{"policy without levels", Config{MaxBatchSize: 8, PriorityQueuePolicy: map[uint64]QueuePolicy{1: {}}}, "priority queue policy must have priority level in range [1, 0]"},
		{"unknown action", Config{DefaultQueuePolicy: QueuePolicy{TimeoutAction: 7}}, "unknown queue policy timeout action TimeoutAction(7)"},
		{"negative timeout", Config{DefaultQueuePolicy: QueuePolicy{DefaultTimeout: -1}}, "queue policy 'default_timeout_microseconds' must be non-negative value"},
		{"negative queue size", Config{DefaultQueuePolicy: QueuePolicy{MaxQueueSize: -1}}, "queue policy 'max_queue_size' must be non-negative value"},
		{"negative delay", Config{MaxQueueDelay: -1}, "dynamic batching 'max_queue_delay_microseconds' must be non-negative value"},
		{"negative instances", Config{Instances: -1}, "instance group count must be >= 1"},
		{"negative hold", Config{HoldUntil: -1}, "HoldUntil must be non-negative"},
		{"adaptive", Config{MaxBatchSize: 16, Policy: Adaptive, AdaptiveQueueBound: 50 * time.Millisecond}, ""},
		{"unknown policy", Config{Policy: 2}, "unknown batching policy Policy(2)"},
		{"negative adaptive bound", Config{Policy: Adaptive, AdaptiveQueueBound: -1}, "adaptive queue bound must be non-negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected error %q", err)
			case c.want != "" && (err == nil || err.Error() != c.want):
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestConfigCautions(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"no limit", Config{MaxBatchSize: 16}, nil},
		{"limit at max_batch_size", Config{MaxBatchSize: 16, DefaultQueuePolicy: QueuePolicy{MaxQueueSize: 16}}, nil},
		{"limit below", Config{MaxBatchSize: 16, DefaultQueuePolicy: QueuePolicy{MaxQueueSize: 8}},
			[]string{"default_queue_policy max_queue_size 8 is below max_batch_size 16"}},
		{"limit below, adaptive: it prefetches", Config{MaxBatchSize: 16, Policy: Adaptive, DefaultQueuePolicy: QueuePolicy{MaxQueueSize: 8}}, nil},
		{"limit below, adaptive with a queue timeout: no prefetch", Config{MaxBatchSize: 16, Policy: Adaptive,
			DefaultQueuePolicy: QueuePolicy{MaxQueueSize: 8, DefaultTimeout: time.Second}},
			[]string{"default_queue_policy max_queue_size 8 is below max_batch_size 16"}},
		{"priority levels, in order", Config{MaxBatchSize: 4, PriorityLevels: 3, DefaultPriorityLevel: 1,
			PriorityQueuePolicy: map[uint64]QueuePolicy{3: {MaxQueueSize: 2}, 2: {MaxQueueSize: 4}, 1: {MaxQueueSize: 1}}},
			[]string{"priority_queue_policy[1] max_queue_size 1", "priority_queue_policy[3] max_queue_size 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.cfg.Cautions()
			if len(got) != len(tc.want) {
				t.Fatalf("Cautions() = %q, want %d matching %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) || !strings.Contains(got[i], "batches hold at most") {
					t.Errorf("caution %d = %q, want it to start %q", i, got[i], w)
				}
			}
		})
	}
}

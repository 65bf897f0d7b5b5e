package batcher

import (
	"context"
	"errors"
	"testing"
)

// Precheck refuses only when every level a request could name is full; a level without max_queue_size, or one
// not yet used, lets the request through to Reserve.
func TestPrecheck(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		cfg     Config
		reserve []uint64 // priorities to reserve one slot each, in order
		full    bool
	}{
		{"unbounded", Config{MaxBatchSize: 4, Instances: 1}, []uint64{0, 0, 0}, false},
		{"one level with room", Config{MaxBatchSize: 4, Instances: 1, DefaultQueuePolicy: QueuePolicy{MaxQueueSize: 2}}, []uint64{0}, false},
		{"one level full", Config{MaxBatchSize: 4, Instances: 1, DefaultQueuePolicy: QueuePolicy{MaxQueueSize: 2}}, []uint64{0, 0}, true},
		{"two levels, one full", Config{MaxBatchSize: 4, Instances: 1, PriorityLevels: 2, DefaultPriorityLevel: 2,
			DefaultQueuePolicy: QueuePolicy{MaxQueueSize: 1}}, []uint64{2}, false},
		{"two levels, both full", Config{MaxBatchSize: 4, Instances: 1, PriorityLevels: 2, DefaultPriorityLevel: 2,
			DefaultQueuePolicy: QueuePolicy{MaxQueueSize: 1}}, []uint64{2, 1}, true},
		{"two levels, the other unbounded", Config{MaxBatchSize: 4, Instances: 1, PriorityLevels: 2, DefaultPriorityLevel: 2,
			DefaultQueuePolicy: QueuePolicy{MaxQueueSize: 1}, PriorityQueuePolicy: map[uint64]QueuePolicy{1: {}}}, []uint64{2, 1}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := mustNew(t, c.cfg, &fakeModel{})
			var held []*Ticket[req, int]
			for _, p := range c.reserve {
				tk, err := b.Reserve(ctx, Slot{Size: 1, Priority: p})
				if err != nil {
					t.Fatalf("Reserve(priority %d): %v", p, err)
				}
				held = append(held, tk)
			}
			err := b.Precheck()
			if full := errors.Is(err, ErrQueueFull); full != c.full || (err != nil && !full) {
				t.Fatalf("Precheck: %v, want full=%v", err, c.full)
			}
			want := uint64(0)
			if c.full {
				want = 1
			}
			if got := b.Stats().Failures[FailRejected]; got != want {
				t.Fatalf("%d refusals counted, want %d", got, want)
			}
			for _, tk := range held {
				tk.Release()
			}
			if err := b.Precheck(); err != nil {
				t.Fatalf("Precheck with every slot released: %v", err)
			}
		})
	}
}

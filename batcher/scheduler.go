package batcher

import (
	"context"
	"errors"
)

// Batcher is one model's dynamic batcher and its instance workers.
type Batcher[T, R any] struct {
	cfg  Config
	exec ExecFunc[T, R]
}

// New validates cfg and starts the batcher's goroutines.
func New[T, R any](cfg Config, exec ExecFunc[T, R]) (*Batcher[T, R], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Batcher[T, R]{cfg: cfg, exec: exec}, nil
}

// Submit queues it and waits for its result, its rejection, or ctx (a cancelled ctx removes the request
// from the queue if it has not started).
func (b *Batcher[T, R]) Submit(ctx context.Context, it Item[T]) (R, error) {
	var zero R
	return zero, errors.New("batcher: not implemented yet")
}

// Stop stops accepting, then drains queued requests until ctx is done; whatever is still queued then
// fails with ErrStopped.
func (b *Batcher[T, R]) Stop(ctx context.Context) error { return nil }

// Stats returns a copy of the cumulative statistics.
func (b *Batcher[T, R]) Stats() Stats { return Stats{} }

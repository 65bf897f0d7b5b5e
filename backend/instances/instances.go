// Package instances owns what every TorchScript model kind runs the same way: libtorch's CPU threads as
// Triton's pytorch backend parameters ask (INTRA_OP_THREAD_COUNT, INTER_OP_THREAD_COUNT), one module per
// instance device of the model config (instance_group), the dynamic batcher that feeds those instances
// prepared requests, and the answers to Submit, Stats and Close. A kind (backend/libtorch, backend/ofa) keeps only
// what is its own: how a request is validated and prepared, and how a batch becomes one forward call.
package instances

import (
	"context"
	"fmt"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
	"github.com/ofaserve/ofaserve/libtorch"
)

// Set is a model's instances: Modules[i] runs on Devices[i] and executes the batches the batcher hands to
// instance i.
type Set[P, R any] struct {
	Modules []*libtorch.Module
	Devices []string
	b       *batcher.Batcher[P, R]
	exec    batcher.ExecFunc[P, R]
	pool    backend.Pool // LoadSpec.Pool
	name    string       // the pool's key
}

// Load applies the config's thread parameters (ApplyThreadParameters), loads file once per instance
// device of the config (Devices) with opts (its Device is set per instance), lets check inspect the first
// module (nil: no check), and starts the batcher with exec and the spec's Observer. On any failure every
// module loaded so far is closed.
func Load[P, R any](ctx context.Context, spec backend.LoadSpec, file string, opts libtorch.Options,
	check func(*libtorch.Module) error, exec batcher.ExecFunc[P, R]) (*Set[P, R], error) {
	return load(ctx, spec, file, opts, check, exec, func(cfg batcher.Config) (*batcher.Batcher[P, R], error) {
		return batcher.New(cfg, exec)
	})
}

// LoadStaged is Load for a kind whose executor stages each batch before it runs (batcher.Executor): the
// batcher hands an instance its next batch to stage while the current one computes, where Triton's rules
// allow it (batcher.NewStaged). RunOn stages and runs a batch in one go.
func LoadStaged[P, R any](ctx context.Context, spec backend.LoadSpec, file string, opts libtorch.Options,
	check func(*libtorch.Module) error, e batcher.Executor[P, R]) (*Set[P, R], error) {
	exec := func(ctx context.Context, inst int, batch []P) ([]R, batcher.Timing, error) {
		r := batcher.Run{Instance: inst}
		if err := e.Stage(ctx, r, batch); err != nil {
			return nil, batcher.Timing{}, err
		}
		return e.Exec(ctx, r, batch)
	}
	return load(ctx, spec, file, opts, check, exec, func(cfg batcher.Config) (*batcher.Batcher[P, R], error) {
		return batcher.NewStaged(cfg, e)
	})
}

func load[P, R any](ctx context.Context, spec backend.LoadSpec, file string, opts libtorch.Options,
	check func(*libtorch.Module) error, exec batcher.ExecFunc[P, R],
	start func(batcher.Config) (*batcher.Batcher[P, R], error)) (*Set[P, R], error) {
	cfg := spec.Config
	if err := ApplyThreadParameters(cfg, spec.Logger); err != nil {
		return nil, err
	}
	s := &Set[P, R]{Devices: Devices(cfg), exec: exec, pool: spec.Pool, name: spec.Name}
	for _, dev := range s.Devices {
		if err := ctx.Err(); err != nil {
			s.closeModules()
			return nil, err
		}
		o := opts
		o.Device = dev
		mod, err := libtorch.Load(file, o)
		if err != nil {
			s.closeModules()
			return nil, fmt.Errorf("load %s on %s: %w", file, dev, err)
		}
		s.Modules = append(s.Modules, mod)
	}
	if check != nil {
		if err := check(s.Modules[0]); err != nil {
			s.closeModules()
			return nil, err
		}
	}
	bc := backend.BatcherConfig(cfg, len(s.Modules))
	bc.Observer = spec.Observer
	b, err := start(bc)
	if err != nil {
		s.closeModules()
		return nil, err
	}
	s.b = b
	return s, nil
}

// Submit queues one prepared request and waits for its result; errors carry backend codes
// (backend.SubmitError).
func (s *Set[P, R]) Submit(ctx context.Context, it batcher.Item[P]) (R, error) {
	res, err := s.b.Submit(ctx, it)
	if err != nil {
		var zero R
		return zero, backend.SubmitError(err)
	}
	return res, nil
}

// Run admits a request of slot to the queue, then prepares it in the server's preprocessing pool, then puts
// the prepared item in its slot and waits for its result. A request the queue refuses (full, stopping) is
// refused before prepare runs; one whose ctx ends while it waits for a worker gives its slot back and
// returns at once; one prepare refuses gives its slot back with prepare's error. The item's Size, Priority,
// Timeout and Start are the slot's. Errors carry backend codes (backend.SubmitError).
func (s *Set[P, R]) Run(ctx context.Context, slot batcher.Slot, prepare func() (batcher.Item[P], error)) (R, error) {
	return RunIn(ctx, s.b, s.pool, s.name, slot, prepare)
}

// RunIn is Run for any kind's batcher b, preparing in pool under key (the model's name): a kind without
// per-instance modules (the simulated one) admits its requests the same way.
func RunIn[P, R any](ctx context.Context, b *batcher.Batcher[P, R], pool backend.Pool, key string, slot batcher.Slot, prepare func() (batcher.Item[P], error)) (R, error) {
	var zero R
	t, err := b.Reserve(ctx, slot)
	if err != nil {
		return zero, backend.SubmitError(err)
	}
	defer t.Release()
	var it batcher.Item[P]
	var perr error
	if pool == nil {
		it, perr = prepare()
	} else if err := pool.Do(ctx, key, func() { it, perr = prepare() }); err != nil {
		return zero, backend.SubmitError(err)
	}
	if perr != nil {
		return zero, perr
	}
	res, err := t.Submit(ctx, it)
	if err != nil {
		return zero, backend.SubmitError(err)
	}
	return res, nil
}

// Precheck answers the batcher's Precheck with backend codes: UNAVAILABLE when every level of the queue is
// full, so the request would be refused whatever it holds.
func (s *Set[P, R]) Precheck() error {
	if err := s.b.Precheck(); err != nil {
		return backend.SubmitError(err)
	}
	return nil
}

// Stats returns the batcher's statistics.
func (s *Set[P, R]) Stats() batcher.Stats { return s.b.Stats() }

// Close stops accepting requests, lets queued ones finish (bounded by ctx) and releases the modules.
func (s *Set[P, R]) Close(ctx context.Context) error {
	err := s.b.Stop(ctx)
	s.closeModules()
	return err
}

func (s *Set[P, R]) closeModules() {
	for _, mod := range s.Modules {
		_ = mod.Close()
	}
}

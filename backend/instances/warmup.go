package instances

import (
	"context"
	"fmt"

	"github.com/ofaserve/ofaserve/backend"
)

// RunOn runs one batch on instance inst directly, outside the batcher: the warm-up path. It may only be
// called before the model serves (backend.Warmer's contract), while no batch runs on that instance.
func (s *Set[P, R]) RunOn(ctx context.Context, inst int, batch []P) ([]R, error) {
	if inst < 0 || inst >= len(s.Modules) {
		return nil, fmt.Errorf("instance %d of %d", inst, len(s.Modules))
	}
	res, _, err := s.exec(ctx, inst, batch)
	if err != nil {
		return nil, err
	}
	if len(res) != len(batch) {
		return nil, fmt.Errorf("instance %d returned %d results for %d requests", inst, len(res), len(batch))
	}
	return res, nil
}

// WarmSamples runs the config's model_warmup samples as Triton does: in order, each Count times, on every
// instance (sample by sample, then instance by instance). prepare turns a sample's request into the
// kind's prepared value, afresh for every run (an executor may consume it). The first failure stops the
// warm-up with an error naming the sample and the instance.
func WarmSamples[P, R any](ctx context.Context, s *Set[P, R], samples []backend.WarmupSample, prepare func(*backend.Request) (P, error)) error {
	for _, smp := range samples {
		for k := range max(1, smp.Count) {
			for inst := range s.Modules {
				if err := ctx.Err(); err != nil {
					return err
				}
				p, err := prepare(smp.Request)
				if err == nil {
					_, err = s.RunOn(ctx, inst, []P{p})
				}
				if err != nil {
					return fmt.Errorf("warm-up sample '%s' (run %d of %d) on instance %d (%s): %w", smp.Name, k+1, max(1, smp.Count), inst, s.Devices[inst], err)
				}
			}
		}
	}
	return nil
}

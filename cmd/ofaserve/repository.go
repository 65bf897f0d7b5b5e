package main

import (
	"context"
	"errors"
	"time"

	"github.com/ofaserve/ofaserve/backend/ensemble"
	"github.com/ofaserve/ofaserve/backend/workpool"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
	"github.com/ofaserve/ofaserve/repository"
	"github.com/ofaserve/ofaserve/server"
)

// serverRepository is the model repository as the server consumes it
// (server.Repository): the wiring between the two packages, which know
// nothing of each other.
type serverRepository struct{ r *repository.Repository }

func (a serverRepository) Model(name string, version int64) (server.Model, error) {
	m, err := a.r.Model(name, version)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (a serverRepository) Index(readyOnly bool) []server.IndexEntry {
	in := a.r.Index(readyOnly)
	out := make([]server.IndexEntry, len(in))
	for i, e := range in {
		out[i] = server.IndexEntry{Name: e.Name, Version: e.Version, State: e.State.String(), Reason: e.Reason}
	}
	return out
}

func (a serverRepository) Load(ctx context.Context, name string, override *modelconfig.ModelConfig) error {
	return a.r.Load(ctx, name, override)
}

func (a serverRepository) Unload(ctx context.Context, name string) error {
	return a.r.Unload(ctx, name)
}

func (a serverRepository) Ready() bool { return a.r.Ready() }

// The server exports nv_model_load_duration_secs and nv_model_warmup_duration_secs from these methods
// of the repository's models.
var _ interface {
	LoadDuration() time.Duration
	WarmupDuration() time.Duration
} = (*repository.Model)(nil)

// stepModels is the model repository as ensembles reach their step models
// (ensemble.Models). The repository needs the ensemble loader before it
// exists, so r is set right after repository.New, before any model loads.
type stepModels struct{ r *repository.Repository }

func (s *stepModels) Model(name string, version int64) (ensemble.Step, error) {
	if s.r == nil {
		return nil, errors.New("ofaserve: ensemble step models looked up before the repository exists")
	}
	m, err := s.r.Model(name, version)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// poolStats adapts the preprocessing pool's statistics to the server's (the server does not import workpool).
func poolStats(p *workpool.Pool) func() server.PoolStats {
	return func() server.PoolStats {
		st := p.Stats()
		return server.PoolStats{Workers: st.Workers, Busy: st.Busy, Waiting: st.Waiting, Jobs: st.Jobs,
			Waited: st.Waited, Canceled: st.Canceled, WaitTime: st.WaitTime}
	}
}

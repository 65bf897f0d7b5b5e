package server

import (
	"context"

	"github.com/ofaserve/ofaserve/protocol/modelconfig"
	"github.com/ofaserve/ofaserve/repository"
)

// FromRepository adapts a *repository.Repository to the Repository the
// server consumes.
func FromRepository(r *repository.Repository) Repository { return repoAdapter{r} }

type repoAdapter struct{ r *repository.Repository }

func (a repoAdapter) Model(name string, version int64) (Model, error) {
	if version < 0 {
		version = 0 // the repository's "latest ready"
	}
	m, err := a.r.Model(name, version)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (a repoAdapter) Index(readyOnly bool) []IndexEntry {
	in := a.r.Index(readyOnly)
	out := make([]IndexEntry, len(in))
	for i, e := range in {
		out[i] = IndexEntry{Name: e.Name, Version: e.Version, State: e.State.String(), Reason: e.Reason}
	}
	return out
}

func (a repoAdapter) Load(ctx context.Context, name string, override *modelconfig.ModelConfig) error {
	return a.r.Load(ctx, name, override)
}

func (a repoAdapter) Unload(ctx context.Context, name string) error { return a.r.Unload(ctx, name) }

func (a repoAdapter) Ready() bool { return a.r.Ready() }

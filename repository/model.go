package repository

import (
	"context"
	"sync"
	"time"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
	"github.com/ofaserve/ofaserve/repository/cache"
)

// State is the readiness state of a model version.
type State int

// The states of a model version, as Triton names them.
const (
	StateUnknown State = iota
	StateReady
	StateUnavailable
	StateLoading
	StateUnloading
)

func (s State) String() string {
	switch s {
	case StateReady:
		return "READY"
	case StateUnavailable:
		return "UNAVAILABLE"
	case StateLoading:
		return "LOADING"
	case StateUnloading:
		return "UNLOADING"
	default:
		return "UNKNOWN"
	}
}

// Model is one version of a model. Its methods are safe for concurrent use.
type Model struct {
	name      string
	version   int64
	cfg       *modelconfig.ModelConfig
	sig       backend.Signature
	impl      backend.Model
	cache     *cache.Cache // nil: answers are not cached
	load      uint64       // this load's number, which the cache keys carry
	cstats    cacheStats
	closeOnce sync.Once
	closeErr  error
	loadDur   time.Duration // from the loader's start to READY, warm-up included
	warmDur   time.Duration // the warm-up alone

	mu     sync.RWMutex
	state  State
	reason string
}

// Name returns the model's name.
func (m *Model) Name() string { return m.name }

// Version returns the version number.
func (m *Model) Version() int64 { return m.version }

// Config returns the normalized config. Callers must not modify it.
func (m *Model) Config() *modelconfig.ModelConfig { return m.cfg }

// Platform returns the config's platform, or else its backend (what model
// metadata reports).
func (m *Model) Platform() string {
	if m.cfg.Platform != "" {
		return m.cfg.Platform
	}
	return m.cfg.Backend
}

// Signature returns what every request is validated against: the name,
// max_batch_size and declared tensors (without the batch dimension).
// Callers must not modify it.
func (m *Model) Signature() *backend.Signature { return &m.sig }

// State returns the version's state and, for UNAVAILABLE, the reason.
func (m *Model) State() (State, string) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.state, m.reason
}

// LoadDuration is how long the version took to load, from the start of its kind's loader until READY
// (warm-up included); 0 for a version that never loaded.
func (m *Model) LoadDuration() time.Duration { return m.loadDur }

// WarmupDuration is how long the version's warm-up took (backend.Warmer, or the model_warmup samples
// run through Infer); 0 for a version that never loaded.
func (m *Model) WarmupDuration() time.Duration { return m.warmDur }

// Ready reports whether the version is READY.
func (m *Model) Ready() bool {
	st, _ := m.State()
	return st == StateReady
}

func (m *Model) setState(s State, reason string) {
	m.mu.Lock()
	m.state, m.reason = s, reason
	m.mu.Unlock()
}

// Infer validates req against the signature (backend.Signature.Validate:
// the one validation every request passes, whichever frontend decoded it)
// and runs it on this version. A version that is no longer ready answers
// UNAVAILABLE.
func (m *Model) Infer(ctx context.Context, req *backend.Request) (*backend.Response, error) {
	if err := m.sig.Validate(req); err != nil {
		return nil, err
	}
	if !m.Ready() || m.impl == nil {
		return nil, m.notReady()
	}
	if m.cache != nil {
		return m.cached(ctx, req)
	}
	return m.impl.Infer(ctx, req)
}

// Precheck tells whether the version would refuse any request now, before the request is read: UNAVAILABLE
// when it is not ready or its kind's queue is full at every level (backend.Prechecker), nil otherwise. A
// version with a response cache always lets requests through: a hit needs no queue.
func (m *Model) Precheck() error {
	if !m.Ready() || m.impl == nil {
		return m.notReady()
	}
	if p, ok := m.impl.(backend.Prechecker); ok && m.cache == nil {
		return p.Precheck()
	}
	return nil
}

// notReady is Triton's answer to a request for a version that is not ready.
func (m *Model) notReady() error {
	return backend.Errorf(backend.CodeUnavailable, "Request for unknown model: '%s' version %d is not at ready state", m.name, m.version)
}

// cached answers a validated request through the response cache
// (cachestats.go counts what it did).
func (m *Model) cached(ctx context.Context, req *backend.Request) (*backend.Response, error) {
	start := req.Start
	lookup := time.Now()
	if start.IsZero() {
		start = lookup
	}
	key := cache.KeyOf(m.name, m.version, m.load, req, len(m.sig.Outputs))
	hashed := time.Since(lookup)
	resp, out, err := m.cache.Do(ctx, key, m.load, func(ctx context.Context) (*backend.Response, error) {
		return m.impl.Infer(ctx, req)
	})
	m.cstats.record(start, lookup, hashed, out, err)
	if err != nil && !out.Computed {
		err = backend.SubmitError(err) // gave up waiting for an identical request
	}
	return resp, err
}

// Stats returns the version's cumulative statistics: its model kind's,
// with the response cache's hits and misses added.
func (m *Model) Stats() batcher.Stats {
	if m.impl == nil {
		return batcher.Stats{}
	}
	st := m.impl.Stats()
	if m.cache != nil {
		m.cstats.addTo(&st)
	}
	return st
}

// BisectStats returns the model kind's counts of failed batches it bisected (backend.BisectStatser);
// zero for a kind that does not bisect.
func (m *Model) BisectStats() backend.BisectStats {
	if b, ok := m.impl.(backend.BisectStatser); ok {
		return b.BisectStats()
	}
	return backend.BisectStats{}
}

// close unloads the version: UNLOADING while its queue drains, then
// UNAVAILABLE "unloaded".
// Closing twice is harmless; a version that never loaded keeps its reason.
func (m *Model) close(ctx context.Context) error {
	m.closeOnce.Do(func() {
		if m.impl == nil {
			return
		}
		m.setState(StateUnloading, "")
		m.closeErr = m.impl.Close(ctx)
		if m.cache != nil {
			m.cache.Drop(m.load)
		}
		m.setState(StateUnavailable, "unloaded")
	})
	return m.closeErr
}

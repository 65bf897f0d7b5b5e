// Package repository owns the model repository on disk: a folder with one
// sub-folder per model, each holding Triton's config.pbtxt and numbered
// version folders (<root>/<model>/config.pbtxt, <root>/<model>/<n>/model.pt).
//
// A Repository reads and validates the configs (the subset of Triton's
// ModelConfig in package modelconfig), picks the versions the version policy
// serves, loads each through the Loader registered for the model's kind
// (platform pytorch_libtorch / backend "pytorch", "ofa", ...), and tracks
// every version's state (UNKNOWN, LOADING, READY, UNLOADING, UNAVAILABLE with
// a reason). Model control follows tritonserver: "none" loads everything at
// start, "explicit" loads only the start-up list and then what Load asks
// for, "poll" loads everything and rescans the folder periodically.
//
// An ensemble (platform "ensemble", the kind in backend/ensemble) depends on
// the models its steps run: those load first, and an ensemble whose step
// models cannot serve is not loaded (depend.go says exactly when).
//
// The server sees loaded versions as *Model handles. A handle's Infer is
// where every request is validated (backend.Signature.Validate) before the
// model kind sees it; a model whose config enables response_cache is then
// answered through the server's response cache (package cache) when the
// repository was given one, and its statistics count the hits and misses
// as Triton's do. Lookup errors carry backend codes and Triton's messages.
package repository

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
	"github.com/ofaserve/ofaserve/protocol/kserve"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
	"github.com/ofaserve/ofaserve/repository/cache"
)

// ControlMode is tritonserver's --model-control-mode.
type ControlMode int

// The model control modes.
const (
	ModeNone ControlMode = iota
	ModeExplicit
	ModePoll
)

func (m ControlMode) String() string {
	switch m {
	case ModeExplicit:
		return "explicit"
	case ModePoll:
		return "poll"
	default:
		return "none"
	}
}

// ParseControlMode parses "none", "explicit" or "poll".
func ParseControlMode(s string) (ControlMode, error) {
	switch s {
	case "none":
		return ModeNone, nil
	case "explicit":
		return ModeExplicit, nil
	case "poll":
		return ModePoll, nil
	}
	return ModeNone, fmt.Errorf("invalid model control mode %q (want none, explicit or poll)", s)
}

// Options configure a Repository.
type Options struct {
	// Root is the repository folder.
	Root string
	// Loaders maps a model kind (Kind of its config: the backend name, or
	// "pytorch" for platform pytorch_libtorch) to its loader.
	Loaders map[string]backend.Loader
	// Mode is the model control mode.
	Mode ControlMode
	// PollInterval is how often ModePoll rescans Root (default 15 s).
	PollInterval time.Duration
	// StartupModels are the models ModeExplicit loads at Start ("*" = all).
	StartupModels []string
	// GPUs is the number of usable GPUs; it decides KIND_AUTO groups and
	// the default gpus of KIND_GPU groups.
	GPUs int
	// Logger receives load and unload events; nil discards them.
	Logger *slog.Logger
	// Cache is the server's response cache, used by the models whose
	// config enables response_cache; nil: no model's answers are cached.
	Cache *cache.Cache
	// Observer, if not nil, gives each model version it loads the batcher
	// observer that model's kind passes to its batcher
	// (backend.LoadSpec.Observer): called once per load, so a reloaded
	// version starts afresh, as its statistics do.
	Observer func(name string, version int64) batcher.Observer
}

// IndexEntry is one row of the repository index (docs/triton-batcher-and-kserve-v2.md §2.1).
type IndexEntry struct {
	Name    string
	Version int64 // kserve.LatestVersion (0) when no version is known
	State   State
	Reason  string
}

// Repository is a model repository and the models loaded from it. Its
// methods are safe for concurrent use.
type Repository struct {
	opts Options
	log  *slog.Logger

	// opMu serializes load, unload and poll operations.
	opMu sync.Mutex
	// loads numbers every version load, for the response cache's keys.
	loads atomic.Uint64

	mu      sync.RWMutex
	models  map[string]*entry
	started []string // models Start loaded, for Ready
	closed  bool

	stopPoll context.CancelFunc
	pollDone chan struct{}
}

// entry is one model name and every version the repository knows of it.
type entry struct {
	versions    map[int64]*Model
	fingerprint string // of the files last loaded, for polling
	reason      string // why the model has no versions (a config error)
}

// New returns a repository over opts.Root. It loads nothing until Start.
func New(opts Options) (*Repository, error) {
	if opts.Root == "" {
		return nil, errors.New("repository: no model repository path")
	}
	st, err := os.Stat(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("repository: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("repository: %s is not a directory", opts.Root)
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 15 * time.Second
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Repository{opts: opts, log: logger, models: map[string]*entry{}}, nil
}

// Start loads the models the control mode asks for at start-up and, in
// ModePoll, starts rescanning the folder. It returns the models that failed
// to load, joined; the others are served regardless (tritonserver exits on
// such an error unless --exit-on-error=false: the caller decides).
func (r *Repository) Start(ctx context.Context) error {
	var names []string
	switch r.opts.Mode {
	case ModeExplicit:
		for _, n := range r.opts.StartupModels {
			if n == "*" {
				all, err := r.scan()
				if err != nil {
					return err
				}
				names = append(names, all...)
			} else {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		names = slices.Compact(names)
	default:
		all, err := r.scan()
		if err != nil {
			return err
		}
		names = all
	}
	var errs []error
	r.opMu.Lock()
	failed := r.loadAll(ctx, r.planLoad(names, nil, true), nil)
	r.opMu.Unlock()
	for _, n := range slices.Sorted(maps.Keys(failed)) {
		errs = append(errs, failed[n])
	}
	r.mu.Lock()
	r.started = names
	r.mu.Unlock()
	if r.opts.Mode == ModePoll {
		pctx, cancel := context.WithCancel(context.Background())
		r.stopPoll = cancel
		r.pollDone = make(chan struct{})
		go r.pollLoop(pctx)
	}
	return errors.Join(errs...)
}

// Ready reports whether every model loaded at start-up still has a ready
// version (the server's readiness).
func (r *Repository) Ready() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return false
	}
	for _, n := range r.started {
		e := r.models[n]
		if e == nil || latestReady(e) == nil {
			return false
		}
	}
	return true
}

// scan lists the model folders under Root: every sub-folder whose name does
// not start with a dot.
func (r *Repository) scan() ([]string, error) {
	ents, err := os.ReadDir(r.opts.Root)
	if err != nil {
		return nil, fmt.Errorf("repository: %w", err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if e.IsDir() {
			names = append(names, e.Name())
			continue
		}
		if e.Type()&os.ModeSymlink != 0 {
			if st, err := os.Stat(filepath.Join(r.opts.Root, e.Name())); err == nil && st.IsDir() {
				names = append(names, e.Name())
			}
		}
	}
	return names, nil
}

// Model returns a version of a model: version kserve.LatestVersion (0)
// means the highest ready version. Errors: NOT_FOUND for an unknown model or version, or a model
// with no ready version; UNAVAILABLE for a version that is not ready.
func (r *Repository) Model(name string, version int64) (*Model, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e := r.models[name]
	if e == nil || len(e.versions) == 0 {
		return nil, backend.Errorf(backend.CodeNotFound, "Request for unknown model: '%s' is not found", name)
	}
	if version == kserve.LatestVersion {
		if m := latestReady(e); m != nil {
			return m, nil
		}
		return nil, backend.Errorf(backend.CodeNotFound, "Request for unknown model: '%s' has no available versions", name)
	}
	m := e.versions[version]
	if m == nil {
		return nil, backend.Errorf(backend.CodeNotFound, "Request for unknown model: '%s' version %d is not found", name, version)
	}
	if st, _ := m.State(); st != StateReady {
		return nil, backend.Errorf(backend.CodeUnavailable, "Request for unknown model: '%s' version %d is not at ready state", name, version)
	}
	return m, nil
}

func latestReady(e *entry) *Model {
	var best *Model
	for v, m := range e.versions {
		if st, _ := m.State(); st == StateReady && (best == nil || v > best.version) {
			best = m
		}
	}
	return best
}

// Index lists the models in the repository folder and every version the
// repository knows, sorted by name and version. A model folder never loaded
// appears once, with no version (kserve.LatestVersion) and state UNKNOWN. With readyOnly, only
// ready versions are listed.
func (r *Repository) Index(readyOnly bool) []IndexEntry {
	var names []string
	if !readyOnly { // only the full index lists folders never loaded
		names, _ = r.scan() // an unreadable root still lists the known models
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []IndexEntry
	for n, e := range r.models {
		if len(e.versions) == 0 && !readyOnly {
			out = append(out, IndexEntry{Name: n, Version: kserve.LatestVersion, State: StateUnavailable, Reason: e.reason})
		}
		for _, m := range e.versions {
			st, reason := m.State()
			if readyOnly && st != StateReady {
				continue
			}
			out = append(out, IndexEntry{Name: n, Version: m.version, State: st, Reason: reason})
		}
	}
	if !readyOnly {
		for _, n := range names {
			if r.models[n] == nil {
				out = append(out, IndexEntry{Name: n, Version: kserve.LatestVersion, State: StateUnknown})
			}
		}
	}
	slices.SortFunc(out, func(a, b IndexEntry) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return int(a.Version - b.Version)
	})
	return out
}

// errControl answers load/unload when model control is not explicit: the
// client's fault (INVALID_ARG, HTTP 400), named with the mode; Triton's
// wording ("...not allowed if polling is enabled") is kept as its prefix.
func (r *Repository) errControl() error {
	return backend.Errorf(backend.CodeInvalidArg,
		"explicit model load / unload is not allowed if polling is enabled: model control mode is '%s'; start the server with --model-control-mode=explicit", r.opts.Mode)
}

// Load loads (or reloads) a model in ModeExplicit. override, if not nil,
// replaces the model's config.pbtxt (Triton's "config" load parameter). The
// new versions are loaded before the old ones are unloaded, so a reload
// never leaves the model without a ready version. A model that fails to
// load reports INVALID_ARG with the reason.
func (r *Repository) Load(ctx context.Context, name string, override *modelconfig.ModelConfig) error {
	if r.opts.Mode != ModeExplicit {
		return r.errControl()
	}
	return r.load(ctx, name, override)
}

// Unload unloads every version of a model in ModeExplicit, letting queued
// and in-flight requests finish (bounded by ctx). Unloading a model that is
// not loaded succeeds.
func (r *Repository) Unload(ctx context.Context, name string) error {
	if r.opts.Mode != ModeExplicit {
		return r.errControl()
	}
	r.opMu.Lock()
	defer r.opMu.Unlock()
	return r.unloadLocked(ctx, name, false)
}

// Close stops polling and unloads every model, letting queued and in-flight
// requests finish until ctx is done.
func (r *Repository) Close(ctx context.Context) error {
	if r.stopPoll != nil {
		r.stopPoll()
		<-r.pollDone
	}
	r.opMu.Lock()
	defer r.opMu.Unlock()
	r.mu.Lock()
	r.closed = true
	names := make([]string, 0, len(r.models))
	for n := range r.models {
		names = append(names, n)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, n := range names {
		wg.Go(func() { errs[i] = r.unloadLocked(ctx, n, false) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// unloadLocked unloads every version of name; with forget it also drops the
// model from the index (its folder is gone). Callers hold opMu.
func (r *Repository) unloadLocked(ctx context.Context, name string, forget bool) error {
	r.mu.Lock()
	e := r.models[name]
	if e == nil {
		r.mu.Unlock()
		return nil
	}
	// The handles stay listed (UNAVAILABLE "unloaded") unless the model's
	// folder is gone.
	versions := e.versions
	e.fingerprint = ""
	if forget {
		delete(r.models, name)
	}
	r.mu.Unlock()
	err := r.closeVersions(ctx, versions)
	r.log.Info("model unloaded", "model", name)
	return err
}

// closeVersions closes the given versions concurrently.
func (r *Repository) closeVersions(ctx context.Context, versions map[int64]*Model) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, m := range versions {
		wg.Go(func() {
			if err := m.close(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("unload %s version %d: %w", m.name, m.version, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

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
// The server sees loaded versions as *Model handles. Lookup errors carry
// backend codes and Triton's messages.
package repository

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/batcher"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
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
}

// IndexEntry is one row of the repository index (docs/triton-batcher-and-kserve-v2.md §2.1).
type IndexEntry struct {
	Name    string
	Version int64 // -1 when no version is known
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
	for _, n := range names {
		if err := r.load(ctx, n, nil); err != nil {
			errs = append(errs, err)
		}
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

// Model returns a version of a model: version ≤ 0 means the highest ready
// version. Errors: NOT_FOUND for an unknown model or version, or a model
// with no ready version; UNAVAILABLE for a version that is not ready.
func (r *Repository) Model(name string, version int64) (*Model, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e := r.models[name]
	if e == nil || len(e.versions) == 0 {
		return nil, backend.Errorf(backend.CodeNotFound, "Request for unknown model: '%s' is not found", name)
	}
	if version <= 0 {
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

// ParseVersion parses a protocol version string: "" means the latest (0).
func ParseVersion(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, backend.Errorf(backend.CodeInvalidArg, "failed to get model version from specified version string '%s' (value must be a non-negative integer)", s)
	}
	return v, nil
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
// appears once, with version -1 and state UNKNOWN. With readyOnly, only
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
			out = append(out, IndexEntry{Name: n, Version: -1, State: StateUnavailable, Reason: e.reason})
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
				out = append(out, IndexEntry{Name: n, Version: -1, State: StateUnknown})
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

// errControl is Triton's answer to load/unload when model control is not
// explicit (its wording mentions polling whatever the mode).
func errControl() error {
	return backend.Errorf(backend.CodeUnavailable, "explicit model load / unload is not allowed if polling is enabled")
}

// Load loads (or reloads) a model in ModeExplicit. override, if not nil,
// replaces the model's config.pbtxt (Triton's "config" load parameter). The
// new versions are loaded before the old ones are unloaded, so a reload
// never leaves the model without a ready version. A model that fails to
// load reports INVALID_ARG with the reason.
func (r *Repository) Load(ctx context.Context, name string, override *modelconfig.ModelConfig) error {
	if r.opts.Mode != ModeExplicit {
		return errControl()
	}
	return r.load(ctx, name, override)
}

// Unload unloads every version of a model in ModeExplicit, letting queued
// and in-flight requests finish (bounded by ctx). Unloading a model that is
// not loaded succeeds.
func (r *Repository) Unload(ctx context.Context, name string) error {
	if r.opts.Mode != ModeExplicit {
		return errControl()
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

// load reads, validates and loads the versions of one model, replacing any
// loaded before. On a config error nothing that was loaded is touched.
func (r *Repository) load(ctx context.Context, name string, override *modelconfig.ModelConfig) error {
	r.opMu.Lock()
	defer r.opMu.Unlock()
	r.mu.RLock()
	closed := r.closed
	r.mu.RUnlock()
	if closed {
		return backend.Errorf(backend.CodeUnavailable, "failed to load '%s': the model repository is shutting down", name)
	}
	fail := func(err error) error {
		r.log.Error("model load failed", "model", name, "err", err)
		return backend.Errorf(backend.CodeInvalidArg, "failed to load '%s': %w", name, err)
	}
	if !validModelName(name) {
		return fail(errors.New("invalid model name"))
	}
	dir := filepath.Join(r.opts.Root, name)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fail(fmt.Errorf("no model folder '%s' in the model repository", name))
	}
	fp := fingerprint(dir)
	cfg, versions, err := r.prepare(dir, name, override)
	if err != nil {
		// A model whose config cannot be used is listed as unavailable
		// (keeping any versions still being served).
		r.mu.Lock()
		e := r.models[name]
		if e == nil {
			e = &entry{versions: map[int64]*Model{}}
			r.models[name] = e
		}
		e.fingerprint = fp
		e.reason = err.Error()
		r.mu.Unlock()
		return fail(err)
	}

	// The tensors (and their label files) are the same for every version:
	// read them once.
	inputs, outputs, specErr := tensorSpecs(dir, cfg)

	// Load every selected version; the new ones only become visible once
	// loaded, and replace the old set in one step.
	fresh := map[int64]*Model{}
	var errs []error
	for _, v := range versions {
		pre := v.err
		if pre == nil {
			pre = specErr
		}
		m := r.loadVersion(ctx, dir, name, v.version, pre, cfg, inputs, outputs)
		fresh[v.version] = m
		if st, reason := m.State(); st != StateReady {
			errs = append(errs, fmt.Errorf("version %d is at %s state: %s", v.version, st, reason))
		}
	}
	r.mu.Lock()
	e := r.models[name]
	if e == nil {
		e = &entry{}
		r.models[name] = e
	}
	old := e.versions
	e.versions = fresh
	e.fingerprint = fp
	e.reason = ""
	if override != nil {
		e.fingerprint = "" // a poll would not know the override
	}
	r.mu.Unlock()
	if err := r.closeVersions(ctx, old); err != nil {
		r.log.Warn("closing replaced model versions", "model", name, "err", err)
	}
	if len(errs) > 0 {
		return fail(errors.Join(errs...))
	}
	return nil
}

type versionChoice struct {
	version int64
	err     error // why this version cannot be loaded (e.g. folder missing)
}

// prepare reads and normalizes the config of the model in dir and picks the
// versions its policy serves.
func (r *Repository) prepare(dir, name string, override *modelconfig.ModelConfig) (*modelconfig.ModelConfig, []versionChoice, error) {
	file := filepath.Join(dir, ConfigFile)
	var cfg *modelconfig.ModelConfig
	if override != nil {
		cfg = cloneConfig(override)
		file = "load request config"
	} else {
		c, err := ReadConfig(dir)
		if err != nil {
			return nil, nil, err
		}
		cfg = c
	}
	if err := Normalize(file, name, cfg, r.opts.GPUs); err != nil {
		return nil, nil, err
	}
	kind := Kind(cfg)
	if _, ok := r.opts.Loaders[kind]; !ok {
		field := "backend"
		if cfg.Backend == "" {
			field = "platform"
		}
		known := make([]string, 0, len(r.opts.Loaders))
		for k := range r.opts.Loaders {
			known = append(known, k)
		}
		slices.Sort(known)
		return nil, nil, &ConfigError{File: file, Field: field, Msg: fmt.Sprintf("unsupported model kind '%s' (this server has: %s)", kind, strings.Join(known, ", "))}
	}
	if err := backend.BatcherConfig(cfg, instanceCount(cfg)).Validate(); err != nil {
		return nil, nil, &ConfigError{File: file, Field: "dynamic_batching", Msg: err.Error()}
	}
	available, err := versionDirs(dir)
	if err != nil {
		return nil, nil, err
	}
	var chosen []versionChoice
	switch p := cfg.VersionPolicy.PolicyChoice.(type) {
	case *modelconfig.ModelVersionPolicy_All_:
		for _, v := range available {
			chosen = append(chosen, versionChoice{version: v})
		}
	case *modelconfig.ModelVersionPolicy_Specific_:
		for _, v := range p.Specific.Versions {
			c := versionChoice{version: v}
			if !slices.Contains(available, v) {
				c.err = fmt.Errorf("version folder %s not found", filepath.Join(dir, strconv.FormatInt(v, 10)))
			}
			chosen = append(chosen, c)
		}
	case *modelconfig.ModelVersionPolicy_Latest_:
		n := int(p.Latest.NumVersions)
		start := max(0, len(available)-n)
		for _, v := range available[start:] {
			chosen = append(chosen, versionChoice{version: v})
		}
	}
	if len(chosen) == 0 {
		return nil, nil, fmt.Errorf("at least one version must be available under the version policy of model '%s' (no numbered version folders in %s)", name, dir)
	}
	return cfg, chosen, nil
}

// instanceCount is the total number of instances a normalized config asks for.
func instanceCount(cfg *modelconfig.ModelConfig) int {
	n := 0
	for _, g := range cfg.InstanceGroup {
		if g.Kind == modelconfig.ModelInstanceGroup_KIND_GPU {
			n += int(g.Count) * len(g.Gpus)
		} else {
			n += int(g.Count)
		}
	}
	return max(n, 1)
}

// versionDirs returns the numeric version folders of a model folder in
// ascending order. Names that are not positive decimal integers, or that
// start with 0, are ignored, as Triton does.
func versionDirs(dir string) ([]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read model folder: %w", err)
	}
	var vs []int64
	for _, e := range ents {
		n := e.Name()
		if n == "" || n[0] < '1' || n[0] > '9' {
			continue
		}
		v, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			continue
		}
		if st, err := os.Stat(filepath.Join(dir, n)); err != nil || !st.IsDir() {
			continue
		}
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs, nil
}

// loadVersion loads one version and returns its handle in state READY, or
// UNAVAILABLE with the reason (pre, if not nil, fails it before loading).
func (r *Repository) loadVersion(ctx context.Context, dir, name string, version int64, pre error, cfg *modelconfig.ModelConfig, inputs, outputs []backend.TensorSpec) *Model {
	m := &Model{name: name, version: version, cfg: cfg, state: StateLoading}
	fail := func(err error) *Model {
		m.setState(StateUnavailable, err.Error())
		r.log.Error("model version failed to load", "model", name, "version", version, "err", err)
		return m
	}
	if pre != nil {
		return fail(pre)
	}
	m.inputs, m.outputs = inputs, outputs
	spec := backend.LoadSpec{
		Name: name, Version: version,
		ModelDir: dir, VersionDir: filepath.Join(dir, strconv.FormatInt(version, 10)),
		Config: cfg, Inputs: inputs, Outputs: outputs, GPUs: r.opts.GPUs,
		Logger: r.log.With("model", name, "version", version),
	}
	start := time.Now()
	impl, err := r.opts.Loaders[Kind(cfg)](ctx, spec)
	if err != nil {
		return fail(err)
	}
	if impl == nil {
		return fail(errors.New("loader returned no model"))
	}
	m.impl = impl
	m.setState(StateReady, "")
	r.log.Info("model loaded", "model", name, "version", version, "kind", Kind(cfg), "duration", time.Since(start))
	return m
}

// tensorSpecs converts a normalized config's tensors to the protocol view,
// reading output labels from their files in the model folder.
func tensorSpecs(dir string, cfg *modelconfig.ModelConfig) (inputs, outputs []backend.TensorSpec, err error) {
	for _, in := range cfg.Input {
		inputs = append(inputs, backend.TensorSpec{
			Name: in.Name, Datatype: backend.Datatype(in.DataType), Dims: slices.Clone(in.Dims),
			Optional: in.Optional, AllowRagged: in.AllowRaggedBatch,
		})
	}
	for _, out := range cfg.Output {
		spec := backend.TensorSpec{Name: out.Name, Datatype: backend.Datatype(out.DataType), Dims: slices.Clone(out.Dims)}
		if out.LabelFilename != "" {
			data, err := os.ReadFile(filepath.Join(dir, out.LabelFilename))
			if err != nil {
				return nil, nil, fmt.Errorf("output '%s' label_filename: %w", out.Name, err)
			}
			for _, l := range strings.Split(strings.TrimRight(string(data), "\r\n"), "\n") {
				spec.Labels = append(spec.Labels, strings.TrimRight(l, "\r"))
			}
		}
		outputs = append(outputs, spec)
	}
	return inputs, outputs, nil
}

func validModelName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.HasPrefix(name, ".") &&
		!strings.ContainsAny(name, `/\`) && !strings.ContainsRune(name, 0)
}

// fingerprint summarizes what a reload depends on: the config file and the
// names, sizes and modification times of everything in the version folders.
func fingerprint(dir string) string {
	var b strings.Builder
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() && rel != "." && strings.Count(rel, string(filepath.Separator)) >= 2 {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		fmt.Fprintf(&b, "%s|%d|%d\n", rel, info.Size(), info.ModTime().UnixNano())
		return nil
	})
	return b.String()
}

// pollLoop rescans the repository every PollInterval until ctx is done.
func (r *Repository) pollLoop(ctx context.Context) {
	defer close(r.pollDone)
	t := time.NewTicker(r.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.Poll(ctx)
		}
	}
}

// Poll rescans the repository once: it loads new models, reloads models
// whose config or version folders changed, and unloads models whose folder
// is gone. ModePoll calls it every PollInterval; tests call it directly.
func (r *Repository) Poll(ctx context.Context) {
	names, err := r.scan()
	if err != nil {
		r.log.Error("poll model repository", "err", err)
		return
	}
	// The folders are walked before taking the lock, so that a slow file
	// system does not hold up model lookups behind a waiting writer.
	fps := make(map[string]string, len(names))
	for _, n := range names {
		fps[n] = fingerprint(filepath.Join(r.opts.Root, n))
	}
	r.mu.RLock()
	var gone, changed []string
	for _, n := range names {
		e := r.models[n]
		if e == nil || e.fingerprint != fps[n] {
			changed = append(changed, n)
		}
	}
	for n := range r.models {
		if _, ok := fps[n]; !ok {
			gone = append(gone, n)
		}
	}
	r.mu.RUnlock()
	for _, n := range gone {
		r.opMu.Lock()
		if err := r.unloadLocked(ctx, n, true); err != nil {
			r.log.Warn("unload removed model", "model", n, "err", err)
		}
		r.opMu.Unlock()
	}
	for _, n := range changed {
		if ctx.Err() != nil {
			return
		}
		_ = r.load(ctx, n, nil) // failures are logged and kept in the index
	}
}

// Model is one version of a model. Its methods are safe for concurrent use.
type Model struct {
	name            string
	version         int64
	cfg             *modelconfig.ModelConfig
	inputs, outputs []backend.TensorSpec
	impl            backend.Model
	closeOnce       sync.Once
	closeErr        error

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

// Inputs returns the declared inputs (without the batch dimension).
func (m *Model) Inputs() []backend.TensorSpec { return m.inputs }

// Outputs returns the declared outputs (without the batch dimension).
func (m *Model) Outputs() []backend.TensorSpec { return m.outputs }

// MaxBatchSize returns max_batch_size (0: the model does not batch).
func (m *Model) MaxBatchSize() int { return int(m.cfg.MaxBatchSize) }

// State returns the version's state and, for UNAVAILABLE, the reason.
func (m *Model) State() (State, string) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.state, m.reason
}

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

// Infer runs one request on this version. A version that is no longer ready
// answers UNAVAILABLE.
func (m *Model) Infer(ctx context.Context, req *backend.Request) (*backend.Response, error) {
	if !m.Ready() || m.impl == nil {
		return nil, backend.Errorf(backend.CodeUnavailable, "Request for unknown model: '%s' version %d is not at ready state", m.name, m.version)
	}
	return m.impl.Infer(ctx, req)
}

// Stats returns the version's cumulative statistics.
func (m *Model) Stats() batcher.Stats {
	if m.impl == nil {
		return batcher.Stats{}
	}
	return m.impl.Stats()
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
		m.setState(StateUnavailable, "unloaded")
	})
	return m.closeErr
}

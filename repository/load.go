package repository

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// load loads name (its config replaced by override, if not nil) after the
// step models it depends on, loading those that have no ready version
// first (depend.go).
func (r *Repository) load(ctx context.Context, name string, override *modelconfig.ModelConfig) error {
	r.opMu.Lock()
	defer r.opMu.Unlock()
	overrides := map[string]*modelconfig.ModelConfig{}
	if override != nil {
		overrides[name] = override
	}
	return r.loadAll(ctx, r.planLoad([]string{name}, overrides, true), overrides)[name]
}

// loadLocked reads, validates and loads the versions of one model,
// replacing any loaded before; depErr, if not nil, is why its dependencies
// keep it from loading. On a config or dependency error nothing that was
// loaded is touched. Callers hold opMu.
func (r *Repository) loadLocked(ctx context.Context, name string, override *modelconfig.ModelConfig, depErr error) error {
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
	if err == nil && depErr != nil {
		err = depErr
	}
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

	// The signature (and its label files) is the same for every version:
	// read it once.
	sig, specErr := signature(dir, name, cfg)

	// Load every selected version; the new ones only become visible once
	// loaded, and replace the old set in one step.
	fresh := map[int64]*Model{}
	var errs []error
	for _, v := range versions {
		pre := v.err
		if pre == nil {
			pre = specErr
		}
		m := r.loadVersion(ctx, dir, name, v.version, pre, cfg, sig)
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
func (r *Repository) loadVersion(ctx context.Context, dir, name string, version int64, pre error, cfg *modelconfig.ModelConfig, sig backend.Signature) *Model {
	m := &Model{name: name, version: version, cfg: cfg, state: StateLoading}
	fail := func(err error) *Model {
		m.setState(StateUnavailable, err.Error())
		r.log.Error("model version failed to load", "model", name, "version", version, "err", err)
		return m
	}
	if pre != nil {
		return fail(pre)
	}
	m.sig = sig
	spec := backend.LoadSpec{
		Name: name, Version: version,
		ModelDir: dir, VersionDir: filepath.Join(dir, strconv.FormatInt(version, 10)),
		Config: cfg, Signature: sig, GPUs: r.opts.GPUs,
		Logger: r.log.With("model", name, "version", version),
	}
	if r.opts.Observer != nil {
		spec.Observer = r.opts.Observer(name, version)
	}
	// The warm-up samples are read before the load, so a bad one costs no load.
	samples, err := warmupSamples(dir, cfg, sig)
	if err != nil {
		return fail(err)
	}
	start := time.Now()
	impl, err := r.opts.Loaders[Kind(cfg)](ctx, spec)
	if err != nil {
		return fail(err)
	}
	if impl == nil {
		return fail(errors.New("loader returned no model"))
	}
	// Not READY before the warm-up ends: the version is not visible until loadVersion returns.
	warm, err := warmup(ctx, impl, samples)
	if err != nil {
		_ = impl.Close(ctx)
		return fail(fmt.Errorf("warm-up failed after %v: %w", warm.Round(time.Millisecond), err))
	}
	m.impl = impl
	m.loadDur, m.warmDur = time.Since(start), warm
	if cfg.GetResponseCache().GetEnable() {
		if r.opts.Cache != nil {
			m.cache, m.load = r.opts.Cache, r.loads.Add(1)
		} else {
			r.log.Warn("response_cache is enabled in the config but the server has no response cache (--cache-config): answers are not cached", "model", name, "version", version)
		}
	}
	for _, c := range backend.BatcherConfig(cfg, 1).Cautions() {
		r.log.Warn("dynamic_batching works against batching", "model", name, "version", version, "detail", c)
	}
	m.setState(StateReady, "")
	r.log.Info("model loaded", "model", name, "version", version, "kind", Kind(cfg), "duration", m.loadDur,
		"warmup", warm, "warmup_samples", len(samples))
	return m
}

// signature reads a normalized config's signature, with the output labels
// from their files in the model folder.
func signature(dir, name string, cfg *modelconfig.ModelConfig) (backend.Signature, error) {
	sig := backend.SignatureOf(name, cfg)
	for i, out := range cfg.Output {
		if out.LabelFilename == "" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, out.LabelFilename))
		if err != nil {
			return sig, fmt.Errorf("output '%s' label_filename: %w", out.Name, err)
		}
		for _, l := range strings.Split(strings.TrimRight(string(data), "\r\n"), "\n") {
			sig.Outputs[i].Labels = append(sig.Outputs[i].Labels, strings.TrimRight(l, "\r"))
		}
	}
	return sig, nil
}

func validModelName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.HasPrefix(name, ".") &&
		!strings.ContainsAny(name, `/\`) && !strings.ContainsRune(name, 0)
}

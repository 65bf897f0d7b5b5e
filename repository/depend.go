//lint:file-ignore ST1005 Triton's dependency messages are kept word for word.

package repository

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// An ensemble (platform "ensemble") depends on the models its steps run,
// and the repository loads them first, as Triton's model repository manager
// does:
//
//   - Start, Load and Poll load the models they are asked for in dependency
//     order: every step model before the ensemble. Start and Load also load
//     the step models that have no ready version (explicit mode: loading an
//     ensemble loads its steps); a step model that is already ready is left
//     as it is.
//   - An ensemble whose step model has no folder, failed to load, or lacks
//     the version a step names is not loaded: it is listed UNAVAILABLE with
//     Triton's reason ("ensemble 'e' depends on 'm' which has no loaded
//     version. Model 'm' loading failed with error: ..."). Ensembles that
//     depend on each other in a circle are not loaded either.
//   - Unloading or reloading a step model later leaves the ensemble as it
//     is; the ensemble looks its step models up per request, so it runs
//     the new version, or answers UNAVAILABLE while the step model has no
//     ready version.

// stepRef is a model an ensemble's steps run; version 0 is the latest.
type stepRef struct {
	name    string
	version int64
}

// dependencies lists the models cfg's ensemble steps run, sorted, each
// (name, version) once; nil for a model that is not an ensemble.
func dependencies(cfg *modelconfig.ModelConfig) []stepRef {
	var refs []stepRef
	for _, s := range cfg.GetEnsembleScheduling().GetStep() {
		ref := stepRef{name: s.GetModelName(), version: max(s.GetModelVersion(), 0)}
		if ref.name != "" && !slices.Contains(refs, ref) {
			refs = append(refs, ref)
		}
	}
	slices.SortFunc(refs, func(a, b stepRef) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return int(a.version - b.version)
	})
	return refs
}

// loadPlan is what loadAll loads, in order.
type loadPlan struct {
	order []string
	deps  map[string][]stepRef
	cycle map[string]error // models in a dependency circle
}

// planLoad orders names so that every model comes after the models it
// depends on. With pull, the step models that exist in the folder and have
// no ready version join the plan, transitively. override replaces the
// config of the model it is keyed by.
func (r *Repository) planLoad(names []string, override map[string]*modelconfig.ModelConfig, pull bool) loadPlan {
	p := loadPlan{deps: map[string][]stepRef{}, cycle: map[string]error{}}
	want := map[string]bool{}
	var add func(name string)
	add = func(name string) {
		if want[name] {
			return
		}
		want[name] = true
		cfg := override[name]
		if cfg == nil {
			c, err := ReadConfig(filepath.Join(r.opts.Root, name))
			if err != nil {
				return // load reports it
			}
			cfg = c
		}
		p.deps[name] = dependencies(cfg)
		if !pull {
			return
		}
		for _, d := range p.deps[name] {
			if r.hasFolder(d.name) && !r.ready(d.name) {
				add(d.name)
			}
		}
	}
	for _, n := range names {
		add(n)
	}
	all := make([]string, 0, len(want))
	for n := range want {
		all = append(all, n)
	}
	slices.Sort(all)
	// Depth-first: a model is placed once everything it depends on is.
	const (
		unseen = iota
		visiting
		placed
	)
	state := map[string]int{}
	var stack []string
	var visit func(n string)
	visit = func(n string) {
		switch state[n] {
		case placed:
			return
		case visiting:
			i := slices.Index(stack, n)
			err := fmt.Errorf("circular dependency between ensembles: %s -> ... -> %s -> %s", n, stack[len(stack)-1], n)
			for _, m := range stack[i:] {
				p.cycle[m] = err
			}
			return
		}
		state[n] = visiting
		stack = append(stack, n)
		for _, d := range p.deps[n] {
			if want[d.name] {
				visit(d.name)
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = placed
		p.order = append(p.order, n)
	}
	for _, n := range all {
		visit(n)
	}
	return p
}

// loadAll loads the models of p in order and returns the errors of those
// that failed, keyed by name. Callers hold opMu.
func (r *Repository) loadAll(ctx context.Context, p loadPlan, override map[string]*modelconfig.ModelConfig) map[string]error {
	failed := map[string]error{}
	for _, n := range p.order {
		if ctx.Err() != nil {
			failed[n] = backend.Errorf(backend.CodeUnavailable, "failed to load '%s': %v", n, ctx.Err())
			continue
		}
		depErr := p.cycle[n]
		if depErr == nil {
			depErr = r.dependencyError(n, p.deps[n], failed)
		}
		if err := r.loadLocked(ctx, n, override[n], depErr); err != nil {
			failed[n] = err
		}
	}
	return failed
}

// dependencyError says why ensemble name cannot load with its step models
// as they are now (Triton's messages), or returns nil. failed holds the
// load errors of this round.
func (r *Repository) dependencyError(name string, refs []stepRef, failed map[string]error) error {
	var missing []string
	for _, ref := range refs {
		if !r.hasFolder(ref.name) && !r.known(ref.name) && !slices.Contains(missing, ref.name) {
			missing = append(missing, ref.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("ensemble %s contains models that are not available or ambiguous: %s", name, strings.Join(missing, ", "))
	}
	for _, ref := range refs {
		if err := failed[ref.name]; err != nil {
			return fmt.Errorf("ensemble '%s' depends on '%s' which has no loaded version. Model '%s' loading failed with error: %s", name, ref.name, ref.name, reasonOf(err))
		}
		if !r.ready(ref.name) {
			return fmt.Errorf("ensemble '%s' depends on '%s' which has no loaded version.", name, ref.name)
		}
		if ref.version > 0 {
			if m, err := r.Model(ref.name, ref.version); err != nil || !m.Ready() {
				return fmt.Errorf("ensemble '%s' depends on '%s' whose required version %d is not loaded.", name, ref.name, ref.version)
			}
		}
	}
	return nil
}

// reasonOf strips load's "failed to load 'm': " from a load error.
func reasonOf(err error) string {
	var be *backend.Error
	if errors.As(err, &be) && be.Err != nil {
		return be.Err.Error()
	}
	return err.Error()
}

// hasFolder reports whether the repository folder holds a model folder name.
func (r *Repository) hasFolder(name string) bool {
	if !validModelName(name) {
		return false
	}
	st, err := os.Stat(filepath.Join(r.opts.Root, name))
	return err == nil && st.IsDir()
}

// known reports whether the repository has an entry for name.
func (r *Repository) known(name string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.models[name] != nil
}

// ready reports whether name has a ready version.
func (r *Repository) ready(name string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e := r.models[name]
	return e != nil && latestReady(e) != nil
}

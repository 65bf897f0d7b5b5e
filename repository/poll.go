package repository

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

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
	if len(changed) > 0 && ctx.Err() == nil {
		r.opMu.Lock()
		_ = r.loadAll(ctx, r.planLoad(changed, nil, false), nil) // failures are logged and kept in the index
		r.opMu.Unlock()
	}
}

// Package ofatest provides what tests of the ofa model kind need: a small
// OFA model exported by the repository's own exporter (scripts/export_ofa.py
// --random-init --config micro: the real architecture at 64×64 px with
// seeded random weights), and a private copy of it to edit. The repository
// root and the Python interpreter come from internal/testenv.
//
// Exports are cached under os.TempDir(), keyed by the exporter's arguments
// and sources, so test binaries share one export and a changed exporter
// makes a new one. Callers must treat the cached repository as read-only
// (copy it to change a config).
package ofatest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ofaserve/ofaserve/internal/testenv"
)

// ExportArgs are the exporter arguments of the test model.
var ExportArgs = []string{"--random-init", "--config", "micro", "--seed", "1", "--quiet"}

// Export returns a model repository holding ofa_entailment (backend ofa)
// and ofa_entailment_raw exported with ExportArgs, exporting it first when
// the cache has none for the current exporter sources.
func Export() (string, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	key, err := sourceKey(root)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(os.TempDir(), "ofaserve-ofatest-"+key)
	if complete(dir) {
		return dir, nil
	}
	tmp, err := os.MkdirTemp(os.TempDir(), "ofaserve-ofatest-export-*")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "repo")
	cmd := exec.Command(testenv.Python(), append([]string{filepath.Join(root, "scripts", "export_ofa.py")}, append(ExportArgs, "--out", out)...)...)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("ofatest: export_ofa.py %s: %w\n%s", strings.Join(ExportArgs, " "), err, msg)
	}
	if err := os.Rename(out, dir); err != nil {
		// Another test binary may have finished the same export first.
		if complete(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("ofatest: %w", err)
	}
	return dir, nil
}

func complete(dir string) bool {
	for _, f := range []string{"ofa_entailment/config.pbtxt", "ofa_entailment/1/model.pt", "ofa_entailment/1/ofa_meta.json",
		"ofa_entailment/1/vocab.json", "ofa_entailment/1/merges.txt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return false
		}
	}
	return true
}

// sourceKey hashes the export arguments and the exporter's sources.
func sourceKey(root string) (string, error) {
	files, err := filepath.Glob(filepath.Join(root, "scripts", "ofa", "*.py"))
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	files = append([]string{filepath.Join(root, "scripts", "export_ofa.py")}, files...)
	h := sha256.New()
	fmt.Fprintln(h, strings.Join(ExportArgs, " "))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// CopyRepo makes a private copy of a repository's model folder (files
// hard-linked where possible, config.pbtxt always copied so it can be
// rewritten) under dst, and returns dst/<model>.
func CopyRepo(src, dst, model string) (string, error) {
	from := filepath.Join(src, model)
	to := filepath.Join(dst, model)
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		target := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if d.Name() != "config.pbtxt" && os.Link(path, target) == nil {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	return to, err
}

// Package arch_test checks the arrows of docs/ARCHITECTURE.md against the
// real import graph (go list), so that a dependency against them fails a
// test instead of waiting for a reviewer.
package arch_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/ofaserve/ofaserve/internal/testenv"
)

const module = "github.com/ofaserve/ofaserve/"

// deps maps every package of the module (without the module prefix) to the
// module's packages it depends on, directly or not (tests excluded).
func deps(t *testing.T) map[string][]string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	graph := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		graph[pkg] = nil
		for _, d := range fields[1:] {
			if strings.HasPrefix(d, module) {
				graph[pkg] = append(graph[pkg], strings.TrimPrefix(d, module))
			}
		}
	}
	return graph
}

func under(pkg string, roots ...string) bool {
	for _, r := range roots {
		if pkg == r || strings.HasPrefix(pkg, r+"/") {
			return true
		}
	}
	return false
}

func TestArrowsPointOneWay(t *testing.T) {
	graph := deps(t)
	if len(graph) < 20 || graph["server"] == nil {
		t.Fatalf("go list found %d packages: %v", len(graph), graph)
	}
	for pkg, ds := range graph {
		for _, d := range ds {
			switch {
			case under(pkg, "backend", "batcher", "preprocess", "libtorch", "protocol") && under(d, "repository", "server", "cmd"):
				t.Errorf("%s depends on %s: the lower layers never reach up", pkg, d)
			case under(pkg, "batcher", "libtorch") && !under(d, "internal"):
				t.Errorf("%s depends on %s: it imports none of the others", pkg, d)
			case under(pkg, "preprocess") && !under(d, "preprocess"):
				t.Errorf("%s depends on %s: preprocessing imports none of the others", pkg, d)
			case pkg == "server" && (under(d, "repository", "cmd") || strings.HasPrefix(d, "backend/")):
				t.Errorf("server depends on %s: it consumes its own interfaces, protocol/ and backend's types", d)
			case under(pkg, "repository") && under(d, "server", "cmd", "backend/libtorch", "backend/ofa"):
				t.Errorf("%s depends on %s: the repository knows no frontend and no kind by name", pkg, d)
			}
		}
	}
}

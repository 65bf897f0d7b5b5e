// Package ocrofa_test serves the "extract text, then ask OFA" ensemble of
// docs/ensembles.md, exactly as docs/examples/ocr_then_ofa configures it, in
// process: the repository with the ofa kind (a freshly exported micro OFA),
// the ensemble kind and the OCR stand-in (standin_test.go: not OCR, a test
// kind), behind the real HTTP and gRPC frontends. It checks the pipeline's
// answers against direct requests to OFA, a failing first step, the
// statistics of each step, and measures the response cache's hit latency
// against a miss (BenchmarkResponseCache).
package ocrofa_test

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/backend/ensemble"
	"github.com/ofaserve/ofaserve/backend/ofa"
	"github.com/ofaserve/ofaserve/backend/ofa/ofatest"
	"github.com/ofaserve/ofaserve/internal/testenv"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
	"github.com/ofaserve/ofaserve/repository"
	"github.com/ofaserve/ofaserve/repository/cache"
	"github.com/ofaserve/ofaserve/server"
)

// env is what TestMain set up.
var env struct {
	http string // base URL
	grpc string // address
}

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/ocrofa:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return 0, err
	}
	tmp, err := os.MkdirTemp("", "ofaserve-ocrofa-*")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	exported, err := ofatest.Export()
	if err != nil {
		return 0, err
	}
	repo := filepath.Join(tmp, "repo")
	if _, err := ofatest.CopyRepo(exported, repo, "ofa_entailment"); err != nil {
		return 0, err
	}
	// ofa_cached: the same model with the response cache on, for the benchmark.
	cached, err := ofatest.CopyRepo(exported, filepath.Join(tmp, "cached"), "ofa_entailment")
	if err == nil {
		err = os.Rename(cached, filepath.Join(repo, "ofa_cached"))
	}
	if err == nil {
		err = rewriteConfig(filepath.Join(repo, "ofa_cached", "config.pbtxt"), `name: "ofa_entailment"`, `name: "ofa_cached"`, "\nresponse_cache { enable: true }\n")
	}
	if err != nil {
		return 0, err
	}
	// The docs' example, as it is.
	for _, name := range []string{"ocr_then_ofa", "ocr"} {
		cfg, err := os.ReadFile(filepath.Join(root, "docs", "examples", "ocr_then_ofa", name, "config.pbtxt"))
		if err == nil {
			err = os.MkdirAll(filepath.Join(repo, name, "1"), 0o755)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(repo, name, "config.pbtxt"), cfg, 0o644)
		}
		if err != nil {
			return 0, err
		}
	}

	c, err := cache.New(16 << 20)
	if err != nil {
		return 0, err
	}
	steps := &stepModels{}
	r, err := repository.New(repository.Options{Root: repo, Mode: repository.ModeNone, Cache: c, Loaders: map[string]backend.Loader{
		"ofa": ofa.Load, ensemble.Platform: ensemble.NewLoader(steps), standinKind: loadStandin,
	}})
	if err != nil {
		return 0, err
	}
	steps.r = r
	if err := r.Start(context.Background()); err != nil {
		return 0, err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = r.Close(ctx)
	}()
	srv, err := server.New(server.Options{}, serverRepo{r}, nil)
	if err != nil {
		return 0, err
	}
	hs := httptest.NewServer(srv.HTTPHandler())
	defer hs.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	go func() { _ = srv.GRPCServer().Serve(ln) }()
	defer srv.GRPCServer().Stop()
	env.http, env.grpc = hs.URL, ln.Addr().String()
	return m.Run(), nil
}

func rewriteConfig(file, old, replacement, appendix string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	s := string(data)
	if !strings.Contains(s, old) {
		return fmt.Errorf("%s: no %q to replace", file, old)
	}
	return os.WriteFile(file, []byte(strings.Replace(s, old, replacement, 1)+appendix), 0o644)
}

// stepModels and serverRepo wire the repository to the ensemble kind and
// to the server, as cmd/ofaserve does.
type stepModels struct{ r *repository.Repository }

func (s *stepModels) Model(name string, version int64) (ensemble.Step, error) {
	m, err := s.r.Model(name, version)
	if err != nil {
		return nil, err
	}
	return m, nil
}

type serverRepo struct{ r *repository.Repository }

func (a serverRepo) Model(name string, version int64) (server.Model, error) {
	m, err := a.r.Model(name, version)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (a serverRepo) Index(readyOnly bool) []server.IndexEntry {
	var out []server.IndexEntry
	for _, e := range a.r.Index(readyOnly) {
		out = append(out, server.IndexEntry{Name: e.Name, Version: e.Version, State: e.State.String(), Reason: e.Reason})
	}
	return out
}

func (a serverRepo) Load(ctx context.Context, name string, cfg *modelconfig.ModelConfig) error {
	return a.r.Load(ctx, name, cfg)
}

func (a serverRepo) Unload(ctx context.Context, name string) error { return a.r.Unload(ctx, name) }

func (a serverRepo) Ready() bool { return a.r.Ready() }

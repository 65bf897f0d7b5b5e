// Package ofa_test runs ofaserve end to end for the OFA model kind: it
// builds the real binary, serves a freshly exported (random-init, micro)
// ofa_entailment (and the same module as ofa_entailment_raw, kind
// pytorch_libtorch) on loopback ports, and checks what clients get over HTTP
// (KServe v2 JSON and binary extension, /predict, the tutorial's curl
// request) and gRPC against the Python reference pipeline (PIL + the
// exporter's eager module) run on the same photos and prompts.
package ofa_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/backend/ofa/ofatest"
	"github.com/ofaserve/ofaserve/internal/testenv"
)

// env is what TestMain set up.
var env struct {
	base     string // http://127.0.0.1:port
	grpcAddr string
	metrics  string // http://127.0.0.1:port/metrics
	logs     *testenv.SyncBuffer
	cases    []refCase
	images   map[string][]byte // file name -> bytes
}

// refCase is one line of cases.json (testdata/make_cases.py).
type refCase struct {
	Image         string    `json:"image"`
	Hypothesis    string    `json:"hypothesis"`
	Premise       *string   `json:"premise"`
	Probabilities []float64 `json:"probabilities"`
	Label         string    `json:"label"`
}

// queueDelay is the test config's max_queue_delay: long enough that
// concurrent requests reliably meet in one batch on a loaded 2-core machine.
const queueDelay = 50 * time.Millisecond

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/ofa:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return 0, err
	}
	if _, err := os.Stat(filepath.Join(root, "build", "libofatorch.so")); err != nil {
		return 0, fmt.Errorf("build/libofatorch.so is missing: run `make shim` (%w)", err)
	}
	tmp, err := os.MkdirTemp("", "ofaserve-e2e-*")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)

	// The binary, the model and the reference cases.
	bin, err := testenv.Build(tmp, "./cmd/ofaserve")
	if err != nil {
		return 0, err
	}
	exported, err := ofatest.Export()
	if err != nil {
		return 0, err
	}
	repo := filepath.Join(tmp, "repo")
	modelDir, err := ofatest.CopyRepo(exported, repo, "ofa_entailment")
	if err != nil {
		return 0, err
	}
	// The same module as a raw pytorch_libtorch model, so that tests can put
	// both kinds side by side.
	if _, err := ofatest.CopyRepo(exported, repo, "ofa_entailment_raw"); err != nil {
		return 0, err
	}
	cfgFile := filepath.Join(modelDir, "config.pbtxt")
	cfg, err := os.ReadFile(cfgFile)
	if err != nil {
		return 0, err
	}
	delay := "max_queue_delay_microseconds: " + strconv.Itoa(int(queueDelay/time.Microsecond))
	patched := strings.Replace(string(cfg), "max_queue_delay_microseconds: 2000", delay, 1)
	if patched == string(cfg) {
		return 0, fmt.Errorf("%s: no max_queue_delay_microseconds: 2000 to raise", cfgFile)
	}
	if err := os.WriteFile(cfgFile, []byte(patched+warmupConfig), 0o644); err != nil {
		return 0, err
	}
	casesDir := filepath.Join(tmp, "cases")
	mk := exec.Command(testenv.Python(), filepath.Join("testdata", "make_cases.py"), exported, casesDir)
	if out, err := mk.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("make_cases.py: %w\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(casesDir, "cases.json"))
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(data, &env.cases); err != nil || len(env.cases) < 16 {
		return 0, fmt.Errorf("cases.json: %v (%d cases, want >= 16)", err, len(env.cases))
	}
	if err := writeWarmupFiles(modelDir, filepath.Join(casesDir, env.cases[0].Image)); err != nil {
		return 0, err
	}
	env.images = map[string][]byte{}
	for _, c := range env.cases {
		if env.images[c.Image] == nil {
			if env.images[c.Image], err = os.ReadFile(filepath.Join(casesDir, c.Image)); err != nil {
				return 0, err
			}
		}
	}

	// The server, on loopback ports.
	srv, err := testenv.Start(bin, "/v2/models/ofa_entailment/ready", 90*time.Second,
		"--model-repository="+repo, "--exit-timeout-secs=5")
	if err != nil {
		return 0, err
	}
	defer func() { _ = srv.Stop(10 * time.Second) }()
	env.base = "http://" + srv.HTTP
	env.grpcAddr = srv.GRPC
	env.metrics = "http://" + srv.Metrics + "/metrics"
	env.logs = srv.Logs
	return m.Run(), nil
}

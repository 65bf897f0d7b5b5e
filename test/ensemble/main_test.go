// Package ensemble_test runs a real ofaserve process serving ensembles and
// the response cache on loopback, and talks to it over HTTP and gRPC: an
// ensemble of the two fixture TorchScript models "linear" and "add_sub"
// that fans out and back in, a step that fails, a cancelled request,
// ensemble and direct requests batched together in the step models, and
// the same request answered twice, the second time from the cache.
package ensemble_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/internal/testenv"
)

// queueDelay is the step models' max_queue_delay: long enough that
// concurrent requests meet in one batch on a loaded 2-core machine.
const queueDelay = "50000"

const linearConfig = `platform: "pytorch_libtorch"
max_batch_size: 16
input [{ name: "INPUT__0" data_type: TYPE_FP32 dims: [8] }, { name: "INPUT__1" data_type: TYPE_FP32 dims: [8] }]
output [{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [4] }, { name: "OUTPUT__1" data_type: TYPE_FP32 dims: [1] }]
dynamic_batching { max_queue_delay_microseconds: ` + queueDelay + ` }
`

const addSubConfig = `platform: "pytorch_libtorch"
max_batch_size: 16
input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [-1] }, { name: "INPUT1" data_type: TYPE_FP32 dims: [-1] }]
output [{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [-1] }, { name: "OUTPUT1" data_type: TYPE_FP32 dims: [-1] }]
dynamic_batching { max_queue_delay_microseconds: ` + queueDelay + ` }
`

// pipelineConfig fans out and back in over the two fixture models:
//
//	X,Y ─▶ linear  ─L4,L1──▶ add_sub(L4,L4) ─L4X2
//	X,Y ─▶ add_sub ─XPY,XMY─▶ linear(XPY,XMY) ─M4,M1
//
// so L4X2 = 2·linear(x,y)[0], L1 = linear(x,y)[1], M4, M1 = linear(x+y, x−y).
const pipelineConfig = `platform: "ensemble"
max_batch_size: 16
input [{ name: "X" data_type: TYPE_FP32 dims: [8] }, { name: "Y" data_type: TYPE_FP32 dims: [8] }]
output [{ name: "L4X2" data_type: TYPE_FP32 dims: [-1] }, { name: "L1" data_type: TYPE_FP32 dims: [1] },
        { name: "M4" data_type: TYPE_FP32 dims: [4] }, { name: "M1" data_type: TYPE_FP32 dims: [1] }]
ensemble_scheduling { step [
  { model_name: "linear" model_version: -1
    input_map { key: "INPUT__0" value: "X" } input_map { key: "INPUT__1" value: "Y" }
    output_map { key: "OUTPUT__0" value: "L4" } output_map { key: "OUTPUT__1" value: "L1" } },
  { model_name: "add_sub" model_version: -1
    input_map { key: "INPUT0" value: "X" } input_map { key: "INPUT1" value: "Y" }
    output_map { key: "OUTPUT0" value: "XPY" } output_map { key: "OUTPUT1" value: "XMY" } },
  { model_name: "add_sub" model_version: -1
    input_map { key: "INPUT0" value: "L4" } input_map { key: "INPUT1" value: "L4" }
    output_map { key: "OUTPUT0" value: "L4X2" } },
  { model_name: "linear" model_version: 1
    input_map { key: "INPUT__0" value: "XPY" } input_map { key: "INPUT__1" value: "XMY" }
    output_map { key: "OUTPUT__0" value: "M4" } output_map { key: "OUTPUT__1" value: "M1" } }
] }
`

// slowLinearConfig is linear with a two-second batching delay: a lone
// request is known to wait in its queue, where a cancellation finds it.
const slowLinearConfig = `platform: "pytorch_libtorch"
max_batch_size: 16
input [{ name: "INPUT__0" data_type: TYPE_FP32 dims: [8] }, { name: "INPUT__1" data_type: TYPE_FP32 dims: [8] }]
output [{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [4] }, { name: "OUTPUT__1" data_type: TYPE_FP32 dims: [1] }]
dynamic_batching { max_queue_delay_microseconds: 2000000 }
`

// slowConfig is an ensemble of one step on linear_slow.
const slowConfig = `platform: "ensemble"
max_batch_size: 16
input [{ name: "X" data_type: TYPE_FP32 dims: [8] }, { name: "Y" data_type: TYPE_FP32 dims: [8] }]
output [{ name: "OUT" data_type: TYPE_FP32 dims: [4] }]
ensemble_scheduling { step [
  { model_name: "linear_slow" model_version: -1
    input_map { key: "INPUT__0" value: "X" } input_map { key: "INPUT__1" value: "Y" } output_map { key: "OUTPUT__0" value: "OUT" } }
] }
`

// pairConfig is add_sub behind an ensemble with inputs of any length: two
// lengths that differ make the step's forward fail.
const pairConfig = `platform: "ensemble"
max_batch_size: 16
input [{ name: "A" data_type: TYPE_FP32 dims: [-1] }, { name: "B" data_type: TYPE_FP32 dims: [-1] }]
output [{ name: "SUM" data_type: TYPE_FP32 dims: [-1] }]
ensemble_scheduling { step [
  { model_name: "add_sub" model_version: -1
    input_map { key: "INPUT0" value: "A" } input_map { key: "INPUT1" value: "B" } output_map { key: "OUTPUT0" value: "SUM" } }
] }
`

// env is what TestMain prepared.
var env struct {
	srv       *testenv.Server
	traceFile string // the server's --trace-config triton,file
}

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/ensemble setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	tmp, err := os.MkdirTemp("", "ofaserve-ensemble-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	bin, err := testenv.Build(tmp, "./cmd/ofaserve")
	if err != nil {
		return 0, err
	}
	repo := filepath.Join(tmp, "models")
	models := []struct{ name, config, script string }{
		{"linear", linearConfig, filepath.Join("..", "e2e", "testdata", "make_linear.py")},
		{"add_sub", addSubConfig, filepath.Join("testdata", "make_add_sub.py")},
		{"linear_cached", linearConfig + "response_cache { enable: true }\n", filepath.Join("..", "e2e", "testdata", "make_linear.py")},
		{"pipeline", pipelineConfig, ""},
		{"pipeline_cached", pipelineConfig + "response_cache { enable: true }\n", ""},
		{"pair", pairConfig, ""},
		{"linear_slow", slowLinearConfig, filepath.Join("..", "e2e", "testdata", "make_linear.py")},
		{"slow", slowConfig, ""},
	}
	for _, mdl := range models {
		dir := filepath.Join(repo, mdl.name, "1") // an ensemble has an empty version folder, as in Triton
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return 0, err
		}
		if mdl.script != "" {
			if b, err := exec.Command(testenv.Python(), mdl.script, filepath.Join(dir, "model.pt")).CombinedOutput(); err != nil {
				return 0, fmt.Errorf("export %s: %v\n%s", mdl.name, err, b)
			}
		}
		if err := os.WriteFile(filepath.Join(repo, mdl.name, "config.pbtxt"), []byte(mdl.config), 0o644); err != nil {
			return 0, err
		}
	}
	// Explicit mode, loading only ensembles and the cached model: the
	// ensembles' step models load because the ensembles need them.
	env.traceFile = filepath.Join(tmp, "trace.json")
	env.srv, err = testenv.Start(bin, "/v2/health/ready", 60*time.Second, "--model-repository="+repo, "--trace-config=triton,file="+env.traceFile,
		"--model-control-mode=explicit", "--load-model=pipeline", "--load-model=pipeline_cached", "--load-model=pair", "--load-model=slow",
		"--load-model=linear_cached", "--cache-config=local,size=1048576", "--exit-timeout-secs=10", "--allow-gpu-metrics=false")
	if err != nil {
		return 0, err
	}
	code := m.Run()
	if err := env.srv.Stop(30 * time.Second); err != nil {
		fmt.Fprintf(os.Stderr, "ofaserve did not exit cleanly: %v\n%s", err, env.srv.Logs.String())
		if code == 0 {
			code = 1
		}
	}
	return code, nil
}

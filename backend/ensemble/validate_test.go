package ensemble

import (
	"testing"

	"github.com/ofaserve/ofaserve/backend"
)

// ensembleIO is the head of most test configs: a batching ensemble of two
// FP32 [4] inputs and one output.
const ensembleIO = `name: "ens" platform: "ensemble" max_batch_size: 8
input [{ name: "X" data_type: TYPE_FP32 dims: [4] }, { name: "Y" data_type: TYPE_FP32 dims: [4] }]
output [{ name: "OUT" data_type: TYPE_FP32 dims: [4] }]
`

// TestLoadRefuses checks every refusal of Load with Triton's messages
// (model_config_utils.cc ValidateEnsembleSchedulingConfig, ensemble_utils.cc
// ValidateEnsembleConfig).
func TestLoadRefuses(t *testing.T) {
	models := fakeModels{"a": newAddSub("a", 8), "small": newAddSub("small", 2), "nobatch": newAddSub("nobatch", 0)}
	step := func(model, in, out string) string {
		return `{ model_name: "` + model + `" model_version: -1 ` + in + ` ` + out + ` }`
	}
	xy := `input_map { key: "INPUT0" value: "X" } input_map { key: "INPUT1" value: "Y" }`
	toOut := `output_map { key: "OUTPUT0" value: "OUT" }`
	for _, c := range []struct {
		name, cfg, want string
	}{
		{"no scheduling", ensembleIO, "ensemble scheduling must be set for ensemble ens whose platform is ensemble"},
		{"no steps", ensembleIO + `ensemble_scheduling { }`, "must specify 'step' for ensemble 'ens'"},
		{"no model name", ensembleIO + `ensemble_scheduling { step [` + step("", xy, toOut) + `] }`,
			"must specify 'model_name' in step 0 of ensemble 'ens'"},
		{"no input map", ensembleIO + `ensemble_scheduling { step [` + step("a", "", toOut) + `] }`,
			"must specify 'input_map' in step 0 of ensemble 'ens'"},
		{"no output map", ensembleIO + `ensemble_scheduling { step [` + step("a", xy, "") + `] }`,
			"must specify 'output_map' in step 0 of ensemble 'ens'"},
		{"tensor written twice", ensembleIO + `ensemble_scheduling { step [` + step("a", xy, toOut) + `,` + step("a", xy, toOut) + `] }`,
			"ensemble tensor 'OUT' can appear in an output map only once for ensemble 'ens' step 1"},
		{"input written", ensembleIO + `ensemble_scheduling { step [` + step("a", xy, `output_map { key: "OUTPUT0" value: "X" }`) + `] }`,
			"ensemble tensor 'X' is an input of ensemble 'ens' and cannot appear in an output map (step 0)"},
		{"input not used", ensembleIO + `ensemble_scheduling { step [` + step("a", `input_map { key: "INPUT0" value: "X" } input_map { key: "INPUT1" value: "X" }`, toOut) + `] }`,
			"ensemble input 'Y' for ensemble ens' is not used"},
		{"output not used", ensembleIO + `ensemble_scheduling { step [` + step("a", xy, `output_map { key: "OUTPUT0" value: "T" }`) + `] }`,
			"ensemble output 'OUT' for ensemble ens' is not used"},
		{"output not written", ensembleIO + `ensemble_scheduling { step [` +
			step("a", xy, `output_map { key: "OUTPUT0" value: "T" }`) + `,` +
			step("a", `input_map { key: "INPUT0" value: "T" } input_map { key: "INPUT1" value: "GHOST" }`, toOut) + `] }`,
			"output 'OUT' for ensemble 'ens' is not written: at least one of its depending tensors, 'GHOST', is not connected"},
		{"cycle between steps", ensembleIO + `ensemble_scheduling { step [` +
			step("a", `input_map { key: "INPUT0" value: "X" } input_map { key: "INPUT1" value: "B" }`, `output_map { key: "OUTPUT0" value: "A" }`) + `,` +
			step("a", `input_map { key: "INPUT0" value: "A" } input_map { key: "INPUT1" value: "Y" }`, `output_map { key: "OUTPUT0" value: "B" } output_map { key: "OUTPUT1" value: "OUT" }`) + `] }`,
			"output 'OUT' for ensemble 'ens' is not written: at least one of its depending tensors, 'B', is not connected"},
		{"unused tensor", ensembleIO + `ensemble_scheduling { step [` + step("a", xy, toOut+` output_map { key: "OUTPUT1" value: "SPARE" }`) + `] }`,
			"ensemble tensor 'SPARE' is unused in ensemble 'ens'"},
		{"bad version", ensembleIO + `ensemble_scheduling { step [{ model_name: "a" model_version: -2 ` + xy + ` ` + toOut + ` }] }`,
			"step 0 of ensemble 'ens' has model_version -2: it must be -1 (the latest) or a version number"},
		{"step model missing", ensembleIO + `ensemble_scheduling { step [` + step("ghost", xy, toOut) + `] }`,
			"ensemble 'ens' depends on 'ghost' which has no loaded version: Request for unknown model: 'ghost' is not found"},
		{"step batches less", ensembleIO + `ensemble_scheduling { step [` + step("small", xy, toOut) + `] }`,
			"ensemble ens allows maximum batch size 8, but it contains model small which only allows maximum batch size to be 2"},
		{"unknown step input", ensembleIO + `ensemble_scheduling { step [` + step("a", xy+` input_map { key: "INPUT9" value: "X" }`, toOut) + `] }`,
			"in ensemble ens, ensemble tensor X is mapping to non-existing input INPUT9 in model a"},
		{"required input not mapped", `name: "ens" platform: "ensemble" max_batch_size: 8
input [{ name: "X" data_type: TYPE_FP32 dims: [4] }]
output [{ name: "OUT" data_type: TYPE_FP32 dims: [4] }]
ensemble_scheduling { step [` + step("a", `input_map { key: "INPUT0" value: "X" }`, toOut) + `] }`,
			"in ensemble ens, input INPUT1 in model a is not mapped to any ensemble tensors"},
		{"unknown step output", ensembleIO + `ensemble_scheduling { step [` + step("a", xy, `output_map { key: "OUTPUT7" value: "OUT" }`) + `] }`,
			"in ensemble ens, ensemble tensor OUT is mapped from non-existing output OUTPUT7 in model a"},
		{"data type", `name: "ens" platform: "ensemble" max_batch_size: 8
input [{ name: "X" data_type: TYPE_INT64 dims: [4] }, { name: "Y" data_type: TYPE_FP32 dims: [4] }]
output [{ name: "OUT" data_type: TYPE_FP32 dims: [4] }]
ensemble_scheduling { step [` + step("a", xy, toOut) + `] }`,
			"in ensemble ens, ensemble tensor X: inconsistent data type: TYPE_INT64 is inferred from model ens while TYPE_FP32 is inferred from model a"},
		{"shape", `name: "ens" platform: "ensemble" max_batch_size: 8
input [{ name: "X" data_type: TYPE_FP32 dims: [5] }, { name: "Y" data_type: TYPE_FP32 dims: [4] }]
output [{ name: "OUT" data_type: TYPE_FP32 dims: [4] }]
ensemble_scheduling { step [` + step("a", xy, toOut) + `] }`,
			"in ensemble ens, ensemble tensor X: inconsistent shape: [-1,5] is inferred from model ens while [-1,4] is inferred from model a"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := load(t, c.cfg, models); err == nil {
				t.Fatalf("loaded; want %q", c.want)
			} else if err.Error() != c.want {
				t.Errorf("error\n got %q\nwant %q", err, c.want)
			} else if backend.CodeOf(err) != backend.CodeInvalidArg {
				t.Errorf("code %v, want INVALID_ARG", backend.CodeOf(err))
			}
		})
	}
}

// TestLoadAccepts covers the mappings Triton allows: an optional step input
// left unmapped, step outputs left unmapped, a non-batching step model in a
// batching ensemble whose full shapes agree, and an ensemble tensor read by
// several steps.
func TestLoadAccepts(t *testing.T) {
	opt := newAddSub("opt", 8)
	opt.sig.Inputs[1].Optional = true
	nobatch := newAddSub("nobatch", 0)
	nobatch.sig.Inputs[0].Dims = []int64{-1, 4}
	nobatch.sig.Inputs[1].Dims = []int64{-1, 4}
	nobatch.sig.Outputs[0].Dims = []int64{-1, 4}
	models := fakeModels{"a": newAddSub("a", 8), "opt": opt, "nobatch": nobatch}
	for name, cfg := range map[string]string{
		"optional step input": ensembleIO + `ensemble_scheduling { step [
			{ model_name: "opt" model_version: -1 input_map { key: "INPUT0" value: "X" } output_map { key: "OUTPUT0" value: "T" } },
			{ model_name: "a" model_version: 1 input_map { key: "INPUT0" value: "T" } input_map { key: "INPUT1" value: "Y" } output_map { key: "OUTPUT0" value: "OUT" } }] }`,
		"non-batching step": ensembleIO + `ensemble_scheduling { step [
			{ model_name: "nobatch" model_version: -1 input_map { key: "INPUT0" value: "X" } input_map { key: "INPUT1" value: "Y" } output_map { key: "OUTPUT0" value: "OUT" } }] }`,
		"fan-out": ensembleIO + `ensemble_scheduling { step [
			{ model_name: "a" model_version: -1 input_map { key: "INPUT0" value: "X" } input_map { key: "INPUT1" value: "X" } output_map { key: "OUTPUT0" value: "T" } },
			{ model_name: "a" model_version: -1 input_map { key: "INPUT0" value: "T" } input_map { key: "INPUT1" value: "Y" } output_map { key: "OUTPUT0" value: "OUT" } }] }`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := load(t, cfg, models); err != nil {
				t.Fatal(err)
			}
		})
	}
}

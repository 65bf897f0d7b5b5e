//lint:file-ignore ST1005 Triton's validation messages are kept word for word.

package ensemble

import (
	"slices"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// tensorInfo is what is known of an ensemble tensor: its data type and
// dims, and the model they were inferred from.
type tensorInfo struct {
	model    string
	datatype string // "FP32", "BYTES", ...
	dims     []int64
	full     []int64 // dims with the batch dimension (-1) when the model batches
}

func newInfo(model string, batching bool, datatype string, dims []int64) tensorInfo {
	ti := tensorInfo{model: model, datatype: datatype, dims: dims}
	if batching {
		ti.full = append([]int64{-1}, dims...)
	} else {
		ti.full = dims
	}
	return ti
}

// checkMapping checks the plan against its step models' signatures with
// Triton's checks and messages (core ensemble_utils.cc
// ValidateEnsembleConfig): a batching step model allows at least the
// ensemble's max_batch_size, every required step input is mapped, no map
// names an input or output the step model lacks, and every tensor has one
// data type and consistent shapes wherever it is used. sigs[i] is step i's
// model signature.
func (p *plan) checkMapping(cfg *modelconfig.ModelConfig, sigs []*backend.Signature) error {
	name := p.name
	tensors := map[string]tensorInfo{}
	for _, in := range cfg.GetInput() {
		dims := in.GetDims()
		if rs := in.GetReshape(); rs != nil {
			dims = rs.GetShape()
		}
		tensors[in.GetName()] = newInfo(name, p.batching, backend.Datatype(in.GetDataType()), dims)
	}
	for _, out := range cfg.GetOutput() {
		tensors[out.GetName()] = newInfo(name, p.batching, backend.Datatype(out.GetDataType()), p.outDims[out.GetName()])
	}
	use := func(tensor string, ti tensorInfo) error {
		have, ok := tensors[tensor]
		if !ok {
			tensors[tensor] = ti
			return nil
		}
		return consistent(name, tensor, have, ti)
	}
	for i, st := range p.steps {
		sig := sigs[i]
		if sig.MaxBatchSize != 0 && sig.MaxBatchSize < int(cfg.GetMaxBatchSize()) {
			return invalid("ensemble %s allows maximum batch size %d, but it contains model %s which only allows maximum batch size to be %d",
				name, cfg.GetMaxBatchSize(), st.model, sig.MaxBatchSize)
		}
		batching := sig.MaxBatchSize > 0
		for _, b := range st.inputs {
			if specOf(sig.Inputs, b.model) == nil {
				return invalid("in ensemble %s, ensemble tensor %s is mapping to non-existing input %s in model %s", name, b.tensor, b.model, st.model)
			}
		}
		for _, in := range sig.Inputs {
			j := slices.IndexFunc(st.inputs, func(b binding) bool { return b.model == in.Name })
			if j < 0 {
				if in.Optional {
					continue
				}
				return invalid("in ensemble %s, input %s in model %s is not mapped to any ensemble tensors", name, in.Name, st.model)
			}
			if err := use(st.inputs[j].tensor, newInfo(st.model, batching, in.Datatype, in.Dims)); err != nil {
				return err
			}
		}
		for _, b := range st.outputs {
			out := specOf(sig.Outputs, b.model)
			if out == nil {
				return invalid("in ensemble %s, ensemble tensor %s is mapped from non-existing output %s in model %s", name, b.tensor, b.model, st.model)
			}
			if err := use(b.tensor, newInfo(st.model, batching, out.Datatype, out.Dims)); err != nil {
				return err
			}
		}
	}
	return nil
}

// consistent reports whether two uses of one tensor agree: the same data
// type, and dims that match with -1 as a wildcard, compared with and
// without the batch dimension (so a non-batching model's [-1,d] meets a
// batching model's [d]).
func consistent(ensemble, tensor string, a, b tensorInfo) error {
	if a.datatype != b.datatype {
		return invalid("in ensemble %s, ensemble tensor %s: inconsistent data type: %s is inferred from model %s while %s is inferred from model %s",
			ensemble, tensor, configType(a.datatype), a.model, configType(b.datatype), b.model)
	}
	if !dimsMatch(a.dims, b.dims) && !dimsMatch(a.full, b.full) {
		return invalid("in ensemble %s, ensemble tensor %s: inconsistent shape: %s is inferred from model %s while %s is inferred from model %s",
			ensemble, tensor, backend.FormatShape(a.full), a.model, backend.FormatShape(b.full), b.model)
	}
	return nil
}

// dimsMatch compares dims of the same length, -1 matching anything.
func dimsMatch(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && a[i] != -1 && b[i] != -1 {
			return false
		}
	}
	return true
}

// configType is a protocol datatype's config name, as Triton's messages
// print it ("TYPE_FP32", "TYPE_STRING" for BYTES).
func configType(dt string) string {
	if dt == "BYTES" {
		return "TYPE_STRING"
	}
	return "TYPE_" + dt
}

func specOf(specs []backend.TensorSpec, name string) *backend.TensorSpec {
	for i := range specs {
		if specs[i].Name == name {
			return &specs[i]
		}
	}
	return nil
}

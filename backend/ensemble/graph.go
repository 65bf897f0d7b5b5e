//lint:file-ignore ST1005 Triton's validation messages are kept word for word.

package ensemble

import (
	"fmt"
	"slices"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// binding maps one input or output of a step's model to an ensemble tensor.
type binding struct {
	model  string // the step model's tensor name
	tensor string // the ensemble tensor name
}

// step is one ensemble step as a request runs it.
type step struct {
	model   string
	version int64 // 0 = latest
	inputs  []binding
	outputs []binding
	reads   []string // distinct tensors the step reads
}

// plan is an ensemble's graph, checked: the steps, who reads each tensor,
// and the ensemble's own tensors.
type plan struct {
	name     string
	batching bool
	steps    []step
	inputs   []string        // ensemble inputs, config order
	optional map[string]bool // optional ensemble inputs
	outputs  []string        // ensemble outputs, config order
	outDims  map[string][]int64
	readers  map[string][]int // tensor -> steps that read it
}

// sortedBindings returns a map's bindings sorted by the model's tensor name,
// so that a step's requests list their tensors in a stable order.
func sortedBindings(m map[string]string) []binding {
	out := make([]binding, 0, len(m))
	for k, v := range m {
		out = append(out, binding{model: k, tensor: v})
	}
	slices.SortFunc(out, func(a, b binding) int {
		if a.model < b.model {
			return -1
		}
		if a.model > b.model {
			return 1
		}
		return 0
	})
	return out
}

// newPlan checks an ensemble config's graph on its own, before any step
// model is looked at, with Triton's checks and messages (core
// model_config_utils.cc ValidateEnsembleSchedulingConfig), and builds the
// plan a request runs.
func newPlan(cfg *modelconfig.ModelConfig) (*plan, error) {
	name := cfg.GetName()
	es := cfg.GetEnsembleScheduling()
	if es == nil {
		return nil, invalid("ensemble scheduling must be set for ensemble %s whose platform is ensemble", name)
	}
	if len(es.GetStep()) == 0 {
		return nil, invalid("must specify 'step' for ensemble '%s'", name)
	}
	p := &plan{name: name, batching: cfg.GetMaxBatchSize() > 0, optional: map[string]bool{},
		outDims: map[string][]int64{}, readers: map[string][]int{}}
	isInput := map[string]bool{}
	for _, in := range cfg.GetInput() {
		p.inputs = append(p.inputs, in.GetName())
		isInput[in.GetName()] = true
		if in.GetOptional() {
			p.optional[in.GetName()] = true
		}
	}
	for _, out := range cfg.GetOutput() {
		p.outputs = append(p.outputs, out.GetName())
		dims := out.GetDims()
		if rs := out.GetReshape(); rs != nil {
			dims = rs.GetShape()
		}
		p.outDims[out.GetName()] = dims
	}

	writer := map[string]int{} // tensor -> the step that writes it
	for i, s := range es.GetStep() {
		if s.GetModelName() == "" {
			return nil, invalid("must specify 'model_name' in step %d of ensemble '%s'", i, name)
		}
		if len(s.GetInputMap()) == 0 {
			return nil, invalid("must specify 'input_map' in step %d of ensemble '%s'", i, name)
		}
		if len(s.GetOutputMap()) == 0 {
			return nil, invalid("must specify 'output_map' in step %d of ensemble '%s'", i, name)
		}
		v := s.GetModelVersion()
		if v < -1 {
			return nil, invalid("step %d of ensemble '%s' has model_version %d: it must be -1 (the latest) or a version number", i, name, v)
		}
		st := step{model: s.GetModelName(), version: max(v, 0), inputs: sortedBindings(s.GetInputMap()), outputs: sortedBindings(s.GetOutputMap())}
		for _, b := range st.outputs {
			if _, dup := writer[b.tensor]; dup {
				return nil, invalid("ensemble tensor '%s' can appear in an output map only once for ensemble '%s' step %d", b.tensor, name, i)
			}
			if isInput[b.tensor] {
				return nil, invalid("ensemble tensor '%s' is an input of ensemble '%s' and cannot appear in an output map (step %d)", b.tensor, name, i)
			}
			writer[b.tensor] = i
		}
		for _, b := range st.inputs {
			if !slices.Contains(st.reads, b.tensor) {
				st.reads = append(st.reads, b.tensor)
				p.readers[b.tensor] = append(p.readers[b.tensor], i)
			}
		}
		p.steps = append(p.steps, st)
	}

	// The data flow: run the graph from the ensemble inputs, as a request
	// will, and see what is reached.
	for _, in := range p.inputs {
		if len(p.readers[in]) == 0 {
			// Triton's message has this unbalanced quote; clients that match it keep matching.
			return nil, invalid("ensemble input '%s' for ensemble %s' is not used", in, name)
		}
	}
	ready := p.reach()
	outputs := map[string]bool{}
	for _, out := range p.outputs {
		_, written := writer[out]
		if !written && len(p.readers[out]) == 0 {
			return nil, invalid("ensemble output '%s' for ensemble %s' is not used", out, name)
		}
		if !ready[out] {
			msg := fmt.Sprintf("output '%s' for ensemble '%s' is not written", out, name)
			if src := p.unconnected(out, writer, ready); src != out {
				msg += fmt.Sprintf(": at least one of its depending tensors, '%s', is not connected", src)
			}
			return nil, invalid("%s", msg)
		}
		outputs[out] = true
	}
	for _, t := range p.tensors(writer) {
		if !outputs[t] && (!ready[t] || len(p.readers[t]) == 0) {
			return nil, invalid("ensemble tensor '%s' is unused in ensemble '%s'", t, name)
		}
	}
	return p, nil
}

// reach returns the tensors a request makes: its inputs, then the outputs
// of every step whose inputs are all made.
func (p *plan) reach() map[string]bool {
	ready := map[string]bool{}
	for _, in := range p.inputs {
		ready[in] = true
	}
	done := make([]bool, len(p.steps))
	for progress := true; progress; {
		progress = false
		for i, s := range p.steps {
			if done[i] || !allIn(s.reads, ready) {
				continue
			}
			done[i], progress = true, true
			for _, b := range s.outputs {
				ready[b.tensor] = true
			}
		}
	}
	return ready
}

// unconnected walks back from a tensor that is not made to the first tensor
// on its way that no one makes (Triton's hint for "is not written").
func (p *plan) unconnected(t string, writer map[string]int, ready map[string]bool) string {
	seen := map[string]bool{t: true}
	for {
		w, ok := writer[t]
		if !ok {
			return t
		}
		next := ""
		for _, r := range p.steps[w].reads {
			if !ready[r] && !seen[r] {
				next = r
				break
			}
		}
		if next == "" {
			return t
		}
		seen[next] = true
		t = next
	}
}

// tensors lists every tensor the steps read or write, sorted.
func (p *plan) tensors(writer map[string]int) []string {
	var all []string
	for t := range writer {
		all = append(all, t)
	}
	for t := range p.readers {
		if _, ok := writer[t]; !ok {
			all = append(all, t)
		}
	}
	slices.Sort(all)
	return all
}

func allIn(names []string, set map[string]bool) bool {
	for _, n := range names {
		if !set[n] {
			return false
		}
	}
	return true
}

func invalid(format string, args ...any) error {
	return backend.Errorf(backend.CodeInvalidArg, format, args...)
}

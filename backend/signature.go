package backend

// RequestedOutputs resolves a request's output names into config indices,
// in config order (all numOutputs of them when names is empty). index maps
// an output name to its config index. An unknown or repeated name is an
// INVALID_ARG error with Triton's message.
func RequestedOutputs(model string, names []string, numOutputs int, index func(name string) (int, bool)) ([]int, error) {
	if len(names) == 0 {
		all := make([]int, numOutputs)
		for i := range all {
			all[i] = i
		}
		return all, nil
	}
	want := make([]bool, numOutputs)
	for _, name := range names {
		o, ok := index(name)
		if !ok {
			return nil, Errorf(CodeInvalidArg, "unexpected inference output '%s' for model '%s'", name, model)
		}
		if want[o] {
			return nil, Errorf(CodeInvalidArg, "output '%s' already exists in request", name)
		}
		want[o] = true
	}
	var out []int
	for o, w := range want {
		if w {
			out = append(out, o)
		}
	}
	return out, nil
}

package libtorch

import (
	"fmt"
	"strconv"
	"strings"

	torch "github.com/ofaserve/ofaserve/libtorch"
)

// bind assigns forward positions to the config's inputs and outputs and
// checks them against the module's arity.
func (m *Model) bind(mod *torch.Module) error {
	args := forwardArgs(mod.Schema())
	byName := len(args) > 0
	for _, in := range m.inputs {
		if indexOf(args, in.name) < 0 {
			byName = false
		}
	}
	switch {
	case byName:
		for i := range m.inputs {
			m.inputs[i].pos = indexOf(args, m.inputs[i].name)
		}
	case allIndexed(m.inputs):
		for i := range m.inputs {
			m.inputs[i].pos, _ = nameIndex(m.inputs[i].name)
		}
	default:
		for i := range m.inputs {
			m.inputs[i].pos = i
		}
	}
	if err := checkPositions("input", m.inputs); err != nil {
		return err
	}
	if allIndexed(m.outputs) {
		for i := range m.outputs {
			m.outputs[i].pos, _ = nameIndex(m.outputs[i].name)
		}
	} else {
		for i := range m.outputs {
			m.outputs[i].pos = i
		}
	}
	if err := checkPositions("output", m.outputs); err != nil {
		return err
	}
	lo, hi := mod.NumInputs()
	if len(m.inputs) > hi {
		return fmt.Errorf("the config declares %d inputs but %s takes at most %d", len(m.inputs), mod.Schema(), hi)
	}
	// Optional inputs can only be left off at the end of forward's
	// arguments, and the required ones must cover what forward needs.
	required := 0
	for i := range m.inputs {
		if !m.inputs[i].optional {
			required = max(required, m.inputs[i].pos+1)
		}
	}
	if required < lo {
		return fmt.Errorf("%s needs at least %d inputs but the config requires only %d", mod.Schema(), lo, required)
	}
	for _, in := range m.inputs {
		if in.optional && in.pos < required {
			return fmt.Errorf("optional input '%s' is argument %d of forward, before required arguments; only trailing arguments can be optional", in.name, in.pos)
		}
	}
	return nil
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// nameIndex parses the <name>__<index> convention.
func nameIndex(name string) (int, bool) {
	i := strings.LastIndex(name, "__")
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(name[i+2:])
	if err != nil || n < 0 || n > 1<<16 {
		return 0, false
	}
	return n, true
}

func allIndexed(ts []tensorSpec) bool {
	for _, t := range ts {
		if _, ok := nameIndex(t.name); !ok {
			return false
		}
	}
	return len(ts) > 0
}

// checkPositions requires the positions to be 0..n-1, each once.
func checkPositions(kind string, ts []tensorSpec) error {
	seen := make([]string, len(ts))
	for _, t := range ts {
		if t.pos < 0 || t.pos >= len(ts) {
			return fmt.Errorf("%s '%s' maps to position %d, but the config has %d %ss (positions must be 0..%d)", kind, t.name, t.pos, len(ts), kind, len(ts)-1)
		}
		if seen[t.pos] != "" {
			return fmt.Errorf("%ss '%s' and '%s' both map to position %d", kind, seen[t.pos], t.name, t.pos)
		}
		seen[t.pos] = t.name
	}
	return nil
}

// forwardArgs returns the argument names of a forward schema such as
// "forward(__torch__.M self, Tensor x, Tensor? y=None) -> Tensor",
// without self.
func forwardArgs(schema string) []string {
	open := strings.IndexByte(schema, '(')
	if open < 0 {
		return nil
	}
	var args []string
	depth, start := 0, open+1
	for i := open + 1; i < len(schema); i++ {
		switch schema[i] {
		case '(', '[':
			depth++
		case ']':
			depth--
		case ')':
			if depth == 0 {
				args = append(args, argName(schema[start:i]))
				i = len(schema)
				continue
			}
			depth--
		case ',':
			if depth == 0 {
				args = append(args, argName(schema[start:i]))
				start = i + 1
			}
		}
	}
	if len(args) > 0 && args[0] == "self" {
		args = args[1:]
	}
	return args
}

func argName(decl string) string {
	decl = strings.TrimSpace(decl)
	if i := strings.IndexByte(decl, '='); i >= 0 {
		decl = strings.TrimSpace(decl[:i])
	}
	if i := strings.LastIndexAny(decl, " \t"); i >= 0 {
		decl = decl[i+1:]
	}
	return decl
}

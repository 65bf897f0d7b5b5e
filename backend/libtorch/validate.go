package libtorch

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/ofaserve/ofaserve/backend"
	"github.com/ofaserve/ofaserve/protocol/modelconfig"
)

// Per-input limits a config can declare, so that a request a module would fail on (an embedding index out
// of range, a sequence longer than the position table) is refused on its own, with a 400, before it joins
// a batch and fails it (models/README.md, "Input limits"):
//
//	parameters { key: "value_range:INPUT_IDS" value: { string_value: "0,50265" } }  # every element in [0, 50265)
//	parameters { key: "max_length:INPUT_IDS" value: { string_value: "1024" } }      # every -1 dim at most 1024
const (
	paramValueRange = "value_range:"
	paramMaxLength  = "max_length:"
)

// inputLimit is what a request's input must satisfy beyond its config dims.
type inputLimit struct {
	input     int // config input index
	hasRange  bool
	lo, hi    int64 // elements in [lo, hi)
	maxLength int64 // 0: none; else every variable dim <= maxLength
}

// parseLimits reads the value_range:/max_length: parameters of cfg against the resolved inputs. A
// parameter naming no input, a range on a non-integer input, a length on an input without a variable dim
// or a malformed value fails the load.
func parseLimits(cfg *modelconfig.ModelConfig, inputs []tensorSpec, inIndex map[string]int) ([]inputLimit, error) {
	byInput := map[int]*inputLimit{}
	var order []int
	get := func(name, key string) (*inputLimit, error) {
		i, ok := inIndex[name]
		if !ok {
			return nil, fmt.Errorf("parameter '%s' names no input of the model", key)
		}
		l := byInput[i]
		if l == nil {
			l = &inputLimit{input: i}
			byInput[i] = l
			order = append(order, i)
		}
		return l, nil
	}
	for key, p := range cfg.GetParameters() {
		v := strings.TrimSpace(p.GetStringValue())
		switch {
		case strings.HasPrefix(key, paramValueRange):
			l, err := get(strings.TrimPrefix(key, paramValueRange), key)
			if err != nil {
				return nil, err
			}
			if _, ok := intWidth(inputs[l.input].datatype); !ok {
				return nil, fmt.Errorf("parameter '%s': input '%s' is %s; a value range needs an integer input", key, inputs[l.input].name, inputs[l.input].datatype)
			}
			los, his, ok := strings.Cut(v, ",")
			lo, err1 := strconv.ParseInt(strings.TrimSpace(los), 10, 64)
			hi, err2 := strconv.ParseInt(strings.TrimSpace(his), 10, 64)
			if !ok || err1 != nil || err2 != nil || lo >= hi {
				return nil, fmt.Errorf("parameter '%s' is %q; want \"lo,hi\" with lo < hi (elements in [lo, hi))", key, v)
			}
			l.hasRange, l.lo, l.hi = true, lo, hi
		case strings.HasPrefix(key, paramMaxLength):
			l, err := get(strings.TrimPrefix(key, paramMaxLength), key)
			if err != nil {
				return nil, err
			}
			if !inputs[l.input].variable {
				return nil, fmt.Errorf("parameter '%s': input '%s' has no variable (-1) dim to bound", key, inputs[l.input].name)
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("parameter '%s' is %q; want a positive length", key, v)
			}
			l.maxLength = n
		}
	}
	out := make([]inputLimit, 0, len(order))
	for _, i := range order {
		out = append(out, *byInput[i])
	}
	return out, nil
}

// intWidth is the byte width of an integer protocol datatype.
func intWidth(dt string) (int, bool) {
	switch dt {
	case "INT8", "UINT8":
		return 1, true
	case "INT16":
		return 2, true
	case "INT32":
		return 4, true
	case "INT64":
		return 8, true
	}
	return 0, false
}

// checkLimits refuses a prepared request whose inputs break the model's limits, naming the input, the bad
// value and where it is, and the limit. Lengths are checked first: they cost nothing.
func (m *Model) checkLimits(p *prepared) error {
	for _, l := range m.limits {
		if !p.present[l.input] {
			continue
		}
		spec := &m.inputs[l.input]
		t := p.inputs[l.input]
		if l.maxLength > 0 {
			dims := t.Shape
			off := 0
			if m.maxBatch > 0 {
				dims, off = dims[1:], 1
			}
			for k, d := range spec.dims {
				if d == -1 && k < len(dims) && dims[k] > l.maxLength {
					return backend.Errorf(backend.CodeInvalidArg,
						"input '%s' of model '%s': dimension %d is %d, over the model's limit %d (parameter %s%s)",
						spec.name, m.name, k+off, dims[k], l.maxLength, paramMaxLength, spec.name)
				}
			}
		}
		if l.hasRange {
			if i, v, bad := outOfRange(t.Datatype, t.Data, l.lo, l.hi); bad {
				return backend.Errorf(backend.CodeInvalidArg,
					"input '%s' of model '%s': value %d at element %d is outside the model's range [%d, %d) (parameter %s%s)",
					spec.name, m.name, v, i, l.lo, l.hi, paramValueRange, spec.name)
			}
		}
	}
	return nil
}

// outOfRange finds the first element of little-endian integer data outside [lo, hi).
func outOfRange(dt string, data []byte, lo, hi int64) (int, int64, bool) {
	w, _ := intWidth(dt)
	for i := 0; i+w <= len(data); i += w {
		var v int64
		switch dt {
		case "INT8":
			v = int64(int8(data[i]))
		case "UINT8":
			v = int64(data[i])
		case "INT16":
			v = int64(int16(binary.LittleEndian.Uint16(data[i:])))
		case "INT32":
			v = int64(int32(binary.LittleEndian.Uint32(data[i:])))
		default:
			v = int64(binary.LittleEndian.Uint64(data[i:]))
		}
		if v < lo || v >= hi {
			return i / w, v, true
		}
	}
	return 0, 0, false
}

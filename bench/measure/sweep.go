package measure

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseRange parses perf_analyzer's "start[:end[:step]]" range. A step
// ending in "x" multiplies ("1:64:2x" gives 1 2 4 ... 64); otherwise it adds
// ("1:8:1"). The end is included when a step lands on it. At most 1000
// values are produced.
func ParseRange(s string) ([]float64, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) > 3 || parts[0] == "" {
		return nil, fmt.Errorf("range %q: want start[:end[:step]]", s)
	}
	num := func(p, what string) (float64, error) {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("range %q: bad %s %q", s, what, p)
		}
		return v, nil
	}
	start, err := num(parts[0], "start")
	if err != nil {
		return nil, err
	}
	if start <= 0 {
		return nil, fmt.Errorf("range %q: start must be > 0", s)
	}
	end := start
	if len(parts) > 1 {
		if end, err = num(parts[1], "end"); err != nil {
			return nil, err
		}
	}
	if end < start {
		return nil, fmt.Errorf("range %q: end %v is below start %v", s, end, start)
	}
	step, mult := 1.0, false
	if len(parts) > 2 {
		p := parts[2]
		if strings.HasSuffix(p, "x") {
			mult, p = true, strings.TrimSuffix(p, "x")
		}
		if step, err = num(p, "step"); err != nil {
			return nil, err
		}
		if (mult && step <= 1) || (!mult && step <= 0) {
			return nil, fmt.Errorf("range %q: step must grow the value", s)
		}
	}
	const eps = 1e-9
	var out []float64
	for v := start; v <= end*(1+eps); {
		out = append(out, v)
		if len(out) > 1000 {
			return nil, fmt.Errorf("range %q has more than 1000 values", s)
		}
		if mult {
			v *= step
		} else {
			v += step
		}
	}
	return out, nil
}

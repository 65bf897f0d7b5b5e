package chaos

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/ofaserve/ofaserve/bench/measure"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// P returns the p-th percentile of ds (nearest rank, as ofabench; 0 for none).
func P(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return measure.Percentile(s, p)
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

// below builds a figure "value < target" for durations.
func below(name string, v, target time.Duration) Figure {
	return Figure{Name: name, Value: ms(v), Target: "< " + ms(target), Met: v < target}
}

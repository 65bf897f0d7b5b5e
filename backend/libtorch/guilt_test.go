package libtorch

import "testing"

// A lone failing request is blamed on its input only while the model has given results within its last
// vouchWindow executions, so that bad requests in a row get the same answer and a broken model stops being
// trusted.
func TestGuiltTrusted(t *testing.T) {
	for _, c := range []struct {
		name      string
		succeeded []int // each execution's successful requests, in order
		want      bool
	}{
		{"fresh model", nil, false},
		{"never succeeded", []int{0, 0}, false},
		{"last succeeded", []int{3}, true},
		{"two failures after a success", []int{3, 0, 0}, true},
		{"window-1 failures", []int{1, 0, 0, 0, 0, 0, 0, 0}, true},
		{"window failures", []int{1, 0, 0, 0, 0, 0, 0, 0, 0}, false},
		{"a success resets", []int{1, 0, 0, 0, 0, 0, 0, 0, 0, 2}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var g guilt
			for _, n := range c.succeeded {
				g.record(n)
			}
			if got := g.trusted(); got != c.want {
				t.Fatalf("trusted after %v = %v, want %v", c.succeeded, got, c.want)
			}
		})
	}
}

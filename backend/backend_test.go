package backend

import "testing"

func TestFormatShape(t *testing.T) {
	for _, c := range []struct {
		shape []int64
		want  string
	}{
		{nil, "[]"},
		{[]int64{1}, "[1]"},
		{[]int64{-1, 16}, "[-1,16]"},
		{[]int64{2, 3, 224, 224}, "[2,3,224,224]"},
		{[]int64{1 << 40, 0}, "[1099511627776,0]"},
	} {
		if got := FormatShape(c.shape); got != c.want {
			t.Errorf("FormatShape(%v) = %q, want %q", c.shape, got, c.want)
		}
	}
}

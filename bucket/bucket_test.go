package bucket

import (
	"slices"
	"strings"
	"testing"
)

func TestPick(t *testing.T) {
	s, err := New([]int{1, 2, 4, 8, 16}, []int{16, 32, 64})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		b, l int
		want Shape
		ok   bool
	}{
		{1, 1, Shape{1, 16}, true},
		{1, 16, Shape{1, 16}, true},
		{2, 17, Shape{2, 32}, true},
		{3, 33, Shape{4, 64}, true},
		{5, 64, Shape{8, 64}, true},
		{16, 10, Shape{16, 16}, true},
		{17, 10, Shape{}, false},
		{4, 65, Shape{}, false},
	} {
		got, ok := s.Pick(c.b, c.l)
		if got != c.want || ok != c.ok {
			t.Errorf("Pick(%d, %d) = %v, %v; want %v, %v", c.b, c.l, got, ok, c.want, c.ok)
		}
	}
	shapes := s.Shapes()
	if len(shapes) != 15 || shapes[0] != (Shape{16, 64}) || shapes[14] != (Shape{1, 16}) {
		t.Errorf("Shapes() = %v, want 15 buckets from 16x64 down to 1x16", shapes)
	}
	// Every bucket is what Pick answers for its own shape.
	for _, sh := range shapes {
		if got, ok := s.Pick(sh.Batch, sh.Length); !ok || got != sh {
			t.Errorf("Pick(%v) = %v, %v", sh, got, ok)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	many := make([]int, MaxSizes+1)
	for i := range many {
		many[i] = i + 1
	}
	for _, c := range []struct {
		batch, length []int
		want          string
	}{
		{nil, []int{8}, "batch sizes: empty list"},
		{[]int{1, 2}, []int{8, 8}, "lengths: [8 8] is not strictly ascending"},
		{[]int{0, 2}, []int{8}, "value 0 is below 1"},
		{[]int{4, 2}, []int{8}, "not strictly ascending"},
		{many, []int{8}, "33 values, at most 32"},
	} {
		if _, err := New(c.batch, c.length); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%v, %v) = %v, want %q", c.batch, c.length, err, c.want)
		}
	}
}

func TestParseList(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
		err  string
	}{
		{"1,2,4,8,16", []int{1, 2, 4, 8, 16}, ""},
		{" 16 , 32 ", []int{16, 32}, ""},
		{"", nil, "empty list"},
		{"1,,2", nil, `"" in "1,,2" is not a size`},
		{"1,two", nil, `"two" in "1,two" is not a size`},
		{"8,4", nil, "not strictly ascending"},
		{"-1", nil, "below 1"},
		{"99999999999999999999", nil, "is not a size"},
	} {
		got, err := ParseList(c.in)
		if c.err == "" {
			if err != nil || !slices.Equal(got, c.want) {
				t.Errorf("ParseList(%q) = %v, %v; want %v", c.in, got, err, c.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("ParseList(%q) = %v, %v; want an error containing %q", c.in, got, err, c.err)
		}
	}
}

func TestPadIDs(t *testing.T) {
	rows := [][]int64{{0, 5, 6, 2}, {0, 7, 2}}
	got, err := PadIDs(nil, rows, Shape{4, 5}, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{
		0, 5, 6, 2, 1,
		0, 7, 2, 1, 1,
		1, 1, 1, 1, 1,
		1, 1, 1, 1, 1,
	}
	if !slices.Equal(got, want) {
		t.Errorf("PadIDs = %v, want %v", got, want)
	}
	// dst is reused, and stale values never survive.
	dst := make([]int64, 0, 64)
	for i := range dst[:cap(dst)] {
		dst[:cap(dst)][i] = 99
	}
	again, err := PadIDs(dst, rows, Shape{4, 5}, 1)
	if err != nil || !slices.Equal(again, want) || &again[0] != &dst[:1][0] {
		t.Errorf("PadIDs into a buffer: %v, %v (reused %v)", again, err, err == nil && &again[0] == &dst[:1][0])
	}
	for _, c := range []struct {
		sh   Shape
		want string
	}{
		{Shape{1, 5}, "2 rows do not fit bucket 1x5"},
		{Shape{2, 3}, "row 0 has 4 ids, bucket 2x3 holds 3"},
		{Shape{0, 3}, "invalid shape 0x3"},
	} {
		if _, err := PadIDs(nil, rows, c.sh, 1); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("PadIDs into %v: %v, want %q", c.sh, err, c.want)
		}
	}
}

func TestPadRows(t *testing.T) {
	buf := []byte{1, 2, 3, 4, 5, 6}
	got, err := PadRows(buf, 2, 3, 4)
	if err != nil || !slices.Equal(got, []byte{1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0}) {
		t.Errorf("PadRows grown = %v, %v", got, err)
	}
	// Capacity reused, and the added rows are zeroed even when the memory held something.
	big := make([]byte, 6, 12)
	copy(big[:12], []byte{1, 2, 3, 4, 5, 6, 9, 9, 9, 9, 9, 9})
	got, err = PadRows(big, 2, 3, 4)
	if err != nil || !slices.Equal(got, []byte{1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0}) || &got[0] != &big[0] {
		t.Errorf("PadRows in place = %v, %v", got, err)
	}
	for _, c := range []struct{ n, row, batch int }{{3, 3, 4}, {2, 3, 1}, {2, 0, 4}} {
		if _, err := PadRows(buf, c.n, c.row, c.batch); err == nil || !strings.Contains(err.Error(), "cannot pad 6 bytes") {
			t.Errorf("PadRows(%d rows of %d to %d): %v", c.n, c.row, c.batch, err)
		}
	}
}

// ParseList reads config text: any input is an error or a valid list, never a panic.
func FuzzParseList(f *testing.F) {
	for _, s := range []string{"1,2,4,8,16", " 16 , 32 ", "", ",", "1,1", "-5", "0x10", "9999999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseList(s)
		if err != nil {
			return
		}
		if _, err := New(v, v); err != nil {
			t.Fatalf("ParseList(%q) = %v, which New refuses: %v", s, v, err)
		}
	})
}

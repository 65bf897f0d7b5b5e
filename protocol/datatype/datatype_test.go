package datatype

import (
	"bytes"
	"strings"
	"testing"
)

// The table of docs/triton-batcher-and-kserve-v2.md §2.9: name, element size in bytes (0: variable), and
// whether it is an (unsigned) integer.
var spec = []struct {
	name       string
	t          Type
	size       int
	isInt, uns bool
}{
	{"BOOL", Bool, 1, false, false},
	{"UINT8", Uint8, 1, true, true},
	{"UINT16", Uint16, 2, true, true},
	{"UINT32", Uint32, 4, true, true},
	{"UINT64", Uint64, 8, true, true},
	{"INT8", Int8, 1, true, false},
	{"INT16", Int16, 2, true, false},
	{"INT32", Int32, 4, true, false},
	{"INT64", Int64, 8, true, false},
	{"FP16", FP16, 2, false, false},
	{"FP32", FP32, 4, false, false},
	{"FP64", FP64, 8, false, false},
	{"BF16", BF16, 2, false, false},
	{"BYTES", Bytes, 0, false, false},
}

func TestTypes(t *testing.T) {
	for _, c := range spec {
		got := Parse(c.name)
		if got != c.t || got.String() != c.name || got.Size() != c.size || got.IsInt() != c.isInt || got.IsUint() != c.uns {
			t.Errorf("%s: Parse = %v (size %d, int %v, uint %v), want %v (size %d, int %v, uint %v)",
				c.name, got, got.Size(), got.IsInt(), got.IsUint(), c.t, c.size, c.isInt, c.uns)
		}
	}
	for _, bad := range []string{"", "fp32", "FP8", "STRING", "TYPE_FP32", "INVALID"} {
		if got := Parse(bad); got != Invalid || got.Size() != 0 {
			t.Errorf("Parse(%q) = %v (size %d), want INVALID", bad, got, got.Size())
		}
	}
	if s := Type(200).String(); s != "INVALID" {
		t.Errorf("Type(200) = %q", s)
	}
}

func TestFromConfig(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Type
	}{
		{"TYPE_FP32", FP32}, {"FP32", FP32}, {"TYPE_BOOL", Bool}, {"TYPE_BF16", BF16}, {"TYPE_UINT64", Uint64},
		{"TYPE_STRING", Bytes}, {"STRING", Bytes}, {"BYTES", Bytes},
		{"TYPE_INVALID", Invalid}, {"TYPE_", Invalid}, {"", Invalid}, {"TYPE_TYPE_FP32", Invalid},
	} {
		if got := FromConfig(c.in); got != c.want {
			t.Errorf("FromConfig(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestAppendElement(t *testing.T) {
	got := AppendElement(AppendElement([]byte("x"), []byte("ab")), nil)
	want := []byte{'x', 2, 0, 0, 0, 'a', 'b', 0, 0, 0, 0}
	if !bytes.Equal(got, want) {
		t.Errorf("AppendElement = % x, want % x", got, want)
	}
	long := bytes.Repeat([]byte{7}, 0x10203)
	if got := AppendElement(nil, long); !bytes.Equal(got[:4], []byte{3, 2, 1, 0}) || len(got) != 4+len(long) {
		t.Errorf("length prefix of a 0x10203-byte element = % x", got[:4])
	}
}

func TestSplit(t *testing.T) {
	els, err := Split([]byte{1, 0, 0, 0, 'a', 0, 0, 0, 0})
	if err != nil || len(els) != 2 || string(els[0]) != "a" || len(els[1]) != 0 {
		t.Errorf("got %q %v", els, err)
	}
	if cap(els[0]) != 1 {
		t.Errorf("element capacity %d, want 1", cap(els[0]))
	}
	if els, err := Split(nil); err != nil || len(els) != 0 {
		t.Errorf("Split(nil) = %q, %v", els, err)
	}
	for _, c := range []struct {
		data []byte
		msg  string
	}{
		{[]byte{1, 0}, "a length prefix is cut short"},
		{[]byte{1, 0, 0, 0, 'a', 1}, "a length prefix is cut short"},
		{[]byte{5, 0, 0, 0, 'a'}, "element 0 declares 5 bytes, 1 are left"},
		{[]byte{0, 0, 0, 0, 255, 255, 255, 255}, "element 1 declares 4294967295 bytes, 0 are left"},
	} {
		if _, err := Split(c.data); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Split(% x) = %v, want an error containing %q", c.data, err, c.msg)
		}
	}
}

func TestElementsStopsEarly(t *testing.T) {
	data := AppendElement(AppendElement(nil, []byte("a")), []byte("b"))
	n := 0
	for range Elements(append(data, 9)) { // malformed after two elements
		n++
		break
	}
	if n != 1 {
		t.Errorf("%d iterations after break", n)
	}
}

// FuzzSplit: whatever Split accepts, AppendElement writes back byte for
// byte; whatever it rejects, Elements yields the same error last.
func FuzzSplit(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 'a'})
	f.Add([]byte{255, 255, 255, 255})
	f.Add([]byte{0, 0, 0, 0, 2, 0, 0, 0, 'h', 'i', 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		els, err := Split(b)
		if err != nil {
			var last error
			for _, e := range Elements(b) {
				last = e
			}
			if last == nil || last.Error() != err.Error() {
				t.Fatalf("Split error %v, Elements ended with %v", err, last)
			}
			return
		}
		var re []byte
		for _, e := range els {
			re = AppendElement(re, e)
		}
		if !bytes.Equal(re, b) {
			t.Fatal("Split and AppendElement do not round-trip")
		}
	})
}

func TestElementCount(t *testing.T) {
	for _, c := range []struct {
		dims     []int64
		n        int64
		variable int
		ok       bool
	}{
		{nil, 1, 0, true},
		{[]int64{2, 3, 4}, 24, 0, true},
		{[]int64{0, 7}, 0, 0, true},
		{[]int64{-1, 16}, 16, 1, true},
		{[]int64{-1, 3, -1}, 3, 2, true},
		{[]int64{2, -2}, 0, 0, false},
		{[]int64{1 << 32, 1 << 31}, 0, 0, false},
		{[]int64{1 << 32, 0, 1 << 32}, 0, 0, true},
	} {
		n, v, ok := ElementCount(c.dims)
		if ok != c.ok || ok && (n != c.n || v != c.variable) {
			t.Errorf("ElementCount(%v) = %d, %d, %v; want %d, %d, %v", c.dims, n, v, ok, c.n, c.variable, c.ok)
		}
	}
}

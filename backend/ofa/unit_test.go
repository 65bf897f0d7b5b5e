package ofa

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"testing"
)

func TestBase64Text(t *testing.T) {
	jpeg := []byte{0xff, 0xd8, 0xff, 0xe0, 'J', 'F', 'I', 'F'}
	tests := []struct {
		in   string
		ok   bool
		want string // decoded
	}{
		{string(jpeg), false, ""},
		{"GIF89a\x01\x00\x01\x00", false, ""},
		{"", false, ""},
		{"  \n", false, ""},
		{"aGVsbG8=", true, "hello"},
		{"aGVsbG8", true, "hello"},
		{" aGVs\r\nbG8=\n", true, "hello"},
		{"data:image/png;base64,aGVsbG8=", true, "hello"},
		{"DATA:image/png;base64,aGVsbG8=", true, "hello"},
		{"data:image/png,aGVsbG8=", false, ""},
		{base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe}), true, "\xfb\xff\xfe"},
		{base64.StdEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe}), true, "\xfb\xff\xfe"},
		{"hello world!", false, ""},
	}
	m := &Model{}
	for _, tt := range tests {
		data, _, err := m.imageBytes([]byte(tt.in))
		_, isText := base64Text([]byte(tt.in))
		if isText != tt.ok {
			t.Errorf("base64Text(%q) = %v, want %v", tt.in, isText, tt.ok)
			continue
		}
		if !tt.ok {
			if err != nil || string(data) != tt.in {
				t.Errorf("imageBytes(%q) = %q, %v; want the input back", tt.in, data, err)
			}
			continue
		}
		if err != nil || string(data) != tt.want {
			t.Errorf("imageBytes(%q) = %q, %v; want %q", tt.in, data, err, tt.want)
		}
	}
	for _, in := range []string{"abcde", "aGV=sbG8", "a"} {
		if _, _, err := m.imageBytes([]byte(in)); err == nil {
			t.Errorf("imageBytes(%q): no error for invalid base64", in)
		}
	}
}

func TestSplitBytes(t *testing.T) {
	enc := func(elems ...string) []byte {
		var b []byte
		for _, e := range elems {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(e)))
			b = append(b, e...)
		}
		return b
	}
	got, err := splitBytes(enc("a", "", "xyz"), 3)
	if err != nil || len(got) != 3 || string(got[0]) != "a" || len(got[1]) != 0 || string(got[2]) != "xyz" {
		t.Errorf("splitBytes = %q, %v", got, err)
	}
	for _, tt := range []struct {
		data []byte
		n    int
	}{
		{enc("a", "b"), 1}, {enc("a"), 2}, {enc("a")[:3], 1}, {[]byte{1, 2}, 1}, {append(enc("a"), 0, 0), 1},
		{[]byte{0xff, 0xff, 0xff, 0xff}, 1}, {nil, 1},
	} {
		if _, err := splitBytes(tt.data, tt.n); err == nil {
			t.Errorf("splitBytes(%v, %d): no error", tt.data, tt.n)
		}
	}
}

func TestSoftmaxAndResult(t *testing.T) {
	p := softmax([3]float64{2, 1, 0.1})
	want := []float64{0.6590011388859679, 0.2424329707047139, 0.09856589040931818} // e^x / sum, by hand
	for k := range p {
		if math.Abs(float64(p[k])-want[k]) > 1e-7 {
			t.Errorf("softmax[%d] = %v, want %v", k, p[k], want[k])
		}
	}
	if q := softmax([3]float64{1000, 1000, -1000}); q[0] != 0.5 || q[1] != 0.5 || q[2] != 0 {
		t.Errorf("softmax of large logits = %v", q)
	}
	if argmax([3]float32{0.2, 0.5, 0.3}) != 1 || argmax([3]float32{float32(math.NaN()), 0.1, 0.2}) != 2 {
		t.Error("argmax")
	}
	m := &Model{labels: [3]string{"entailment", "contradiction", "ne\"utral"}}
	for i, l := range m.labels {
		m.labelsJS[i], _ = json.Marshal(l)
	}
	js := m.appendResult(nil, [3]float32{0.25, 0.125, 0.625})
	var r struct {
		Label      string             `json:"label"`
		Confidence float64            `json:"confidence"`
		AllScores  map[string]float64 `json:"all_scores"`
	}
	if err := json.Unmarshal(js, &r); err != nil || r.Label != "ne\"utral" || r.Confidence != 0.625 || r.AllScores["contradiction"] != 0.125 {
		t.Errorf("RESULT %s -> %+v, %v", js, r, err)
	}
	if js := m.appendResult(nil, [3]float32{float32(math.NaN()), 0.5, 0.5}); !json.Valid(js) {
		t.Errorf("RESULT with NaN is not JSON: %s", js)
	}
}

// FuzzSplitBytes: any data and count either splits into exactly n
// elements that re-encode to data, or errors; never panics.
func FuzzSplitBytes(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 'a'}, 1)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0}, 2)
	f.Add([]byte{255, 255, 255, 255}, 1)
	f.Fuzz(func(t *testing.T, data []byte, n int) {
		if n < 0 || n > 1<<16 {
			return
		}
		elems, err := splitBytes(data, n)
		if err != nil {
			return
		}
		var re []byte
		for _, e := range elems {
			re = binary.LittleEndian.AppendUint32(re, uint32(len(e)))
			re = append(re, e...)
		}
		if len(elems) != n || !bytes.Equal(re, data) {
			t.Fatalf("splitBytes(%v, %d) = %q", data, n, elems)
		}
	})
}

// FuzzImageBytes: the IMAGE rule never panics, decodes base64 of anything
// back to it, and passes non-base64 input through unchanged.
func FuzzImageBytes(f *testing.F) {
	f.Add([]byte("aGVsbG8="))
	f.Add([]byte{0xff, 0xd8, 0xff})
	f.Add([]byte("data:;base64,"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m := &Model{}
		data, _, err := m.imageBytes(in)
		if _, isText := base64Text(in); !isText && (err != nil || !bytes.Equal(data, in)) {
			t.Fatalf("non-base64 %q changed: %q %v", in, data, err)
		}
		enc := base64.StdEncoding.EncodeToString(in)
		if len(in) > 0 {
			data, _, err := m.imageBytes([]byte(enc))
			if err != nil || !bytes.Equal(data, in) {
				t.Fatalf("base64 of %q decoded to %q, %v", in, data, err)
			}
		}
	})
}

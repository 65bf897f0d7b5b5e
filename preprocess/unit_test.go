package preprocess

import (
	"encoding/binary"
	"math"
	"testing"
)

// Worked examples from docs/pil-preprocessing.md §1.6 (numbers PIL produced).
func TestResizeSpecExamples(t *testing.T) {
	row := func(r []uint8) *RGB {
		img := &RGB{len(r), 1, make([]uint8, 3*len(r))}
		for i, v := range r {
			img.Pix[3*i] = v
		}
		return img
	}
	tests := []struct {
		name  string
		in    []uint8
		out   int
		want  []uint8
		coeff [][]int32
	}{
		{"down 8->3", []uint8{10, 200, 30, 255, 0, 128, 90, 250}, 3, []uint8{104},
			[][]int32{{1357984, 1678094, 1096189, 261175, -104842, -91194, -3102},
				{-113649, 59548, 732425, 1418827, 1418827, 732425, 59548, -113649}}},
		{"up 4->7", []uint8{10, 200, 30, 255}, 7, []uint8{0, 74, 197, 113, 35, 181, 255},
			[][]int32{{4527025, -332721}, {2927401, 1427046, -160142}, {189853, 4133307, -128856},
				{-262144, 2359296, 2359296, -262144}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := precompute(len(tt.in), tt.out)
			for i, want := range tt.coeff {
				got := c.k[i*c.stride : i*c.stride+int(c.n[i])]
				if len(got) != len(want) {
					t.Fatalf("output %d: %d taps %v, want %v", i, len(got), got, want)
				}
				for j := range want {
					if got[j] != want[j] {
						t.Fatalf("output %d: coefficients %v, want %v", i, got, want)
					}
				}
			}
			out, err := row(tt.in).Resize(tt.out, 1)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tt.want {
				if out.Pix[3*i] != want {
					t.Errorf("pixel %d = %d, want %d", i, out.Pix[3*i], want)
				}
			}
		})
	}
}

func TestResizeRejectsBadSizes(t *testing.T) {
	img := &RGB{2, 2, make([]uint8, 12)}
	for _, s := range [][2]int{{0, 1}, {1, -1}, {1 << 20, 1}} {
		if _, err := img.Resize(s[0], s[1]); err == nil {
			t.Errorf("Resize(%d, %d) succeeded", s[0], s[1])
		}
	}
	if _, err := (&RGB{4, 4, make([]uint8, 3)}).Resize(2, 2); err == nil {
		t.Error("Resize of an image with a short Pix succeeded")
	}
}

// §4: reference bit patterns of ToTensor + Normalize(0.5, 0.5).
func TestNormalizeBits(t *testing.T) {
	want := map[int]uint32{0: 0xbf800000, 1: 0xbf7dfdfe, 64: 0xbefefefe, 127: 0xbb808080, 128: 0x3b808100, 255: 0x3f800000}
	l := OFANormalize.lut()
	for k, bits := range want {
		for c := 0; c < 3; c++ {
			if got := math.Float32bits(l[c][k]); got != bits {
				t.Errorf("k=%d channel %d: %#x, want %#x", k, c, got, bits)
			}
		}
	}
	img := &RGB{2, 1, []uint8{0, 1, 64, 127, 128, 255}}
	got := ToCHW(img, OFANormalize, nil)
	order := []int{0, 127, 1, 128, 64, 255} // CHW: R plane, G plane, B plane
	for i, k := range order {
		if math.Float32bits(got[i]) != want[k] {
			t.Errorf("ToCHW[%d] = %v, want value for %d", i, got[i], k)
		}
	}
}

// §2.3: PIL's CMYK JPEG result is round(c*k/255) of the library's samples.
func TestCMYKExhaustive(t *testing.T) {
	for c := 0; c < 256; c++ {
		for k := 0; k < 256; k++ {
			var dst [3]uint8
			cmykToRGB(dst[:], []uint8{uint8(c), uint8(c), uint8(c), uint8(k)})
			want := uint8(math.Round(float64(c*k) / 255))
			if dst[0] != want {
				t.Fatalf("c=%d k=%d: %d, want %d", c, k, dst[0], want)
			}
		}
	}
}

// exifBlock builds a TIFF/EXIF block with IFD0 holding the given entries.
func exifBlock(bigEndian bool, prefix bool, entries ...[12]byte) []byte {
	b := []byte("II*\x00\x08\x00\x00\x00")
	b = binary.LittleEndian.AppendUint16(b, uint16(len(entries)))
	if bigEndian {
		b = []byte("MM\x00*\x00\x00\x00\x08")
		b = binary.BigEndian.AppendUint16(b, uint16(len(entries)))
	}
	for _, e := range entries {
		b = append(b, e[:]...)
	}
	b = append(b, 0, 0, 0, 0)
	if prefix {
		b = append([]byte("Exif\x00\x00"), b...)
	}
	return b
}

func entry(bigEndian bool, tag, typ uint16, count uint32, val uint32) (e [12]byte) {
	var bo binary.ByteOrder = binary.LittleEndian
	if bigEndian {
		bo = binary.BigEndian
	}
	bo.PutUint16(e[0:], tag)
	bo.PutUint16(e[2:], typ)
	bo.PutUint32(e[4:], count)
	switch typ {
	case 3, 8:
		bo.PutUint16(e[8:], uint16(val))
	case 1, 6:
		e[8] = byte(val)
	default:
		bo.PutUint32(e[8:], val)
	}
	return e
}

func TestExifOrientation(t *testing.T) {
	for _, be := range []bool{false, true} {
		for _, pre := range []bool{false, true} {
			tests := []struct {
				name    string
				b       []byte
				want    int
				present bool
			}{
				{"short", exifBlock(be, pre, entry(be, 0x010F, 2, 4, 0), entry(be, 0x0112, 3, 1, 6)), 6, true},
				{"long", exifBlock(be, pre, entry(be, 0x0112, 4, 1, 8)), 8, true},
				{"byte", exifBlock(be, pre, entry(be, 0x0112, 1, 1, 3)), 3, true},
				{"last wins", exifBlock(be, pre, entry(be, 0x0112, 3, 1, 6), entry(be, 0x0112, 3, 1, 5)), 5, true},
				{"tuple", exifBlock(be, pre, entry(be, 0x0112, 3, 2, 6)), 0, true},
				{"absent", exifBlock(be, pre, entry(be, 0x0110, 3, 1, 6)), 0, false},
				{"no entries", exifBlock(be, pre), 0, false},
			}
			for _, tt := range tests {
				o, p := exifOrientation(tt.b)
				if o != tt.want || p != tt.present {
					t.Errorf("be=%v prefix=%v %s: (%d, %v), want (%d, %v)", be, pre, tt.name, o, p, tt.want, tt.present)
				}
			}
		}
	}
	// Truncated directory: the entries read before the cut still count.
	b := exifBlock(false, false, entry(false, 0x0112, 3, 1, 7), entry(false, 0x0110, 3, 1, 1))
	b[8] = 5 // claims 5 entries
	if o, _ := exifOrientation(b); o != 7 {
		t.Errorf("truncated directory: orientation %d, want 7", o)
	}
	for _, bad := range [][]byte{nil, []byte("Exif\x00\x00"), []byte("XX*\x00\x08\x00\x00\x00"), []byte("II*\x00\xff\xff\xff\xff")} {
		if o, p := exifOrientation(bad); o != 0 || p {
			t.Errorf("%q: (%d, %v)", bad, o, p)
		}
	}
}

func TestXMPOrientation(t *testing.T) {
	for s, want := range map[string]int{
		`<rdf:Description tiff:Orientation="6"/>`:          6,
		`<tiff:Orientation>3</tiff:Orientation>`:           3,
		`<rdf:Description exif:Orientation="6"/>`:          0,
		`<x tiff:Orientation="8" y tiff:Orientation="2"/>`: 8,
	} {
		if got, _ := xmpOrientation([]byte(s)); got != want {
			t.Errorf("%s: %d, want %d", s, got, want)
		}
	}
}

func TestTransposeSmall(t *testing.T) {
	// 3x2 image with pixel values 1..6 (R only), rows [1 2 3], [4 5 6].
	src := make([]uint8, 18)
	for i := 0; i < 6; i++ {
		src[3*i] = uint8(i + 1)
	}
	want := map[int][]uint8{
		2: {3, 2, 1, 6, 5, 4},
		3: {6, 5, 4, 3, 2, 1},
		4: {4, 5, 6, 1, 2, 3},
		5: {1, 4, 2, 5, 3, 6},
		6: {4, 1, 5, 2, 6, 3},
		7: {6, 3, 5, 2, 4, 1},
		8: {3, 6, 2, 5, 1, 4},
	}
	for o, w := range want {
		dst := make([]uint8, 18)
		nw, nh, ok := transposeInto(dst, src, 3, 2, o)
		if !ok || nw*nh != 6 || (o >= 5) != (nw == 2) {
			t.Fatalf("orientation %d: %dx%d ok=%v", o, nw, nh, ok)
		}
		for i := range w {
			if dst[3*i] != w[i] {
				t.Errorf("orientation %d: got %v, want %v", o, []uint8{dst[0], dst[3], dst[6], dst[9], dst[12], dst[15]}, w)
				break
			}
		}
	}
	for _, o := range []int{0, 1, 9, -1} {
		if _, _, ok := transposeInto(nil, src, 3, 2, o); ok {
			t.Errorf("orientation %d transposed", o)
		}
	}
}

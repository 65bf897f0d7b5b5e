package preprocess

import (
	"bytes"
	"errors"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"
)

func probeImage(t testing.TB, f Format, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 0x80
	}
	var buf bytes.Buffer
	var err error
	switch f {
	case JPEG:
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 50})
	case PNG:
		err = png.Encode(&buf, img)
	case GIF:
		err = gif.Encode(&buf, img, &gif.Options{NumColors: 2})
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// patchJPEGSize rewrites the frame header's dimensions: a small file that claims to be w×h.
func patchJPEGSize(t testing.TB, b []byte, w, h int) []byte {
	t.Helper()
	b = bytes.Clone(b)
	for p := 2; p+9 < len(b); {
		m, n := b[p+1], int(b[p+2])<<8|int(b[p+3])
		if m == 0xC0 || m == 0xC2 {
			b[p+5], b[p+6], b[p+7], b[p+8] = byte(h>>8), byte(h), byte(w>>8), byte(w)
			return b
		}
		p += 2 + n
	}
	t.Fatal("no SOF in the test JPEG")
	return nil
}

func TestProbe(t *testing.T) {
	small := probeImage(t, JPEG, 64, 48)
	tests := []struct {
		name string
		data []byte
		want Size
		err  error
	}{
		{"jpeg", small, Size{JPEG, 64, 48}, nil},
		{"jpeg claiming 8000x8000", patchJPEGSize(t, small, 8000, 8000), Size{JPEG, 8000, 8000}, nil},
		{"png", probeImage(t, PNG, 30, 20), Size{PNG, 30, 20}, nil},
		{"png header only", probeImage(t, PNG, 30, 20)[:24], Size{PNG, 30, 20}, nil},
		{"gif", probeImage(t, GIF, 7, 9), Size{GIF, 7, 9}, nil},
		{"jpeg cut in its header", small[:10], Size{}, ErrCorrupt},
		{"png cut", probeImage(t, PNG, 30, 20)[:20], Size{}, ErrCorrupt},
		{"text", []byte("hello"), Size{}, ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Probe(tt.data)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Probe: %v, want %v", err, tt.err)
			}
			if tt.err == nil && got != tt.want {
				t.Fatalf("Probe = %+v, want %+v", got, tt.want)
			}
		})
	}
	// The patched file is refused by the decode's own limit check too, before it allocates its pixels.
	if _, err := DecodeRGB(patchJPEGSize(t, small, 8000, 8000), Limits{MaxPixels: 1 << 20}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("DecodeRGB of the 8000x8000 header under a 1 Mpx limit: %v", err)
	}
}

func FuzzProbe(f *testing.F) {
	f.Add(probeImage(f, JPEG, 8, 8))
	f.Add(probeImage(f, PNG, 8, 8))
	f.Add(probeImage(f, GIF, 8, 8))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Probe(data)
		if err == nil && (s.Width <= 0 || s.Height <= 0) {
			t.Fatalf("Probe accepted %+v", s)
		}
	})
}

package preprocess

import (
	"bytes"
	"math"
	"testing"
)

// fuzzLimits keep the fuzzer from spending its time on legitimately huge images.
var fuzzLimits = Limits{MaxBytes: 1 << 20, MaxPixels: 1 << 20}

func FuzzDecodeRGB(f *testing.F) {
	for _, b := range encoded(f) {
		f.Add(b)
	}
	for _, b := range bombs() {
		f.Add(b)
	}
	// A JPEG with an EXIF orientation, and a PNG with an eXIf chunk.
	j := encoded(f)["jpeg"]
	app1 := append([]byte{0xFF, 0xE1, 0, 0}, exifBlock(true, true, entry(true, 0x0112, 3, 1, 6))...)
	app1[2], app1[3] = byte((len(app1)-2)>>8), byte(len(app1)-2)
	f.Add(append(append(append([]byte(nil), j[:2]...), app1...), j[2:]...))
	p := encoded(f)["png"]
	ex := pngChunk("eXIf", exifBlock(false, false, entry(false, 0x0112, 3, 1, 8)))
	f.Add(append(append(append([]byte(nil), p[:33]...), ex...), p[33:]...))
	f.Add([]byte("RIFF\x1a\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := DecodeRGB(data, fuzzLimits)
		if err != nil {
			return
		}
		if img.Width <= 0 || img.Height <= 0 || len(img.Pix) != 3*img.Width*img.Height {
			t.Fatalf("bad image %dx%d with %d bytes", img.Width, img.Height, len(img.Pix))
		}
		out, err := Prepare(data, Options{Width: 7, Height: 5, Norm: OFANormalize, Limits: fuzzLimits}, nil)
		if err != nil || len(out) != 3*7*5 {
			t.Fatalf("Prepare after a successful decode: %d floats, %v", len(out), err)
		}
		pix, err := PrepareUint8(data, Options{Width: 7, Height: 5, Limits: fuzzLimits}, nil)
		if err != nil || len(pix) != 3*7*5 {
			t.Fatalf("PrepareUint8 after a successful decode: %d bytes, %v", len(pix), err)
		}
		for i, v := range ToCHW(&RGB{Width: 7, Height: 5, Pix: pix}, OFANormalize, nil) {
			if math.Float32bits(v) != math.Float32bits(out[i]) {
				t.Fatalf("element %d: PrepareUint8 then ToCHW gives %v, Prepare %v", i, v, out[i])
			}
		}
	})
}

func FuzzExifOrientation(f *testing.F) {
	f.Add(exifBlock(false, true, entry(false, 0x0112, 3, 1, 6)))
	f.Add(exifBlock(true, false, entry(true, 0x010F, 2, 4, 0), entry(true, 0x0112, 4, 1, 3)))
	f.Add([]byte("MM\x00*\xff\xff\xff\xf0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, present := exifOrientation(b)
		if !present && o != 0 {
			t.Fatalf("orientation %d without a tag", o)
		}
		xmpOrientation(b)
	})
}

func FuzzPNGMeta(f *testing.F) {
	f.Add(encoded(f)["png"])
	f.Add(append([]byte("\x89PNG\r\n\x1a\n"), pngChunk("zTXt", []byte("Raw profile type exif\x00\x00x\x9c"))...))
	f.Fuzz(func(t *testing.T, b []byte) {
		parsePNGMeta(b)
		parseGIFMeta(b)
		webpExif(b)
		parseJPEGHeader(b)
	})
}

// The resampler on arbitrary small sizes: no panic, right size, and a
// constant image stays constant (the weights are normalised).
func FuzzResize(f *testing.F) {
	f.Add(uint8(8), uint8(1), uint8(3), uint8(1), uint8(77))
	f.Add(uint8(1), uint8(1), uint8(5), uint8(3), uint8(0))
	f.Add(uint8(200), uint8(3), uint8(1), uint8(250), uint8(255))
	f.Fuzz(func(t *testing.T, w, h, ow, oh, v uint8) {
		if w == 0 || h == 0 || ow == 0 || oh == 0 {
			return
		}
		src := &RGB{int(w), int(h), bytes.Repeat([]byte{v}, 3*int(w)*int(h))}
		out, err := src.Resize(int(ow), int(oh))
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range out.Pix {
			if p != v {
				t.Fatalf("%dx%d -> %dx%d of constant %d: sample %d = %d", w, h, ow, oh, v, i, p)
			}
		}
	})
}

// FuzzResampleSIMD checks that resample.c's vector paths give what its plain
// C gives, on images of every small shape (one row, an odd number of rows,
// fewer pixels than taps, 255 -> 1) filled with noise from seed.
func FuzzResampleSIMD(f *testing.F) {
	f.Add(uint8(8), uint8(1), uint8(3), uint8(1), uint32(77))
	f.Add(uint8(1), uint8(1), uint8(5), uint8(3), uint32(0))
	f.Add(uint8(200), uint8(3), uint8(1), uint8(250), uint32(5))
	f.Add(uint8(255), uint8(255), uint8(1), uint8(1), uint32(9))
	f.Add(uint8(64), uint8(7), uint8(17), uint8(3), uint32(1))
	f.Add(uint8(5), uint8(4), uint8(13), uint8(4), uint32(3)) // upscaled: many outputs read the last pixel
	f.Fuzz(func(t *testing.T, w, h, ow, oh uint8, seed uint32) {
		if w == 0 || h == 0 || ow == 0 || oh == 0 {
			return
		}
		src := RGB{int(w), int(h), noise(3*int(w)*int(h), seed)}
		if got, want := resampled(src, int(ow), int(oh), true), resampled(src, int(ow), int(oh), false); !bytes.Equal(got, want) {
			maxd, n := diffBytes(got, want)
			t.Fatalf("%dx%d -> %dx%d: %d samples differ between the vector and plain passes (max %d levels)", w, h, ow, oh, n, maxd)
		}
	})
}

// resampled is resamplePasses gathered into one image.
func resampled(src RGB, w, h int, simd bool) []uint8 {
	out := make([]uint8, 3*w*h)
	var tmp, scratch []uint8
	var acc []int32
	resamplePasses(src, w, h, &tmp, &acc, &scratch, simd, func(y int, row []uint8) {
		copy(out[3*w*y:], row)
	})
	return out
}

// noise is n bytes of xorshift32 from seed (never 0).
func noise(n int, seed uint32) []uint8 {
	x := seed | 1
	out := make([]uint8, n)
	for i := range out {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		out[i] = uint8(x >> 24)
	}
	return out
}

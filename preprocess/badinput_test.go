package preprocess

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/image/bmp"
)

// testImage is a small image with some structure.
func testImage(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.SetNRGBA(x, y, color.NRGBA{uint8(x * 7), uint8(y * 5), uint8(x * y), 200})
		}
	}
	return m
}

// encoded returns small valid files of each format, made with Go's encoders.
func encoded(t testing.TB) map[string][]byte {
	t.Helper()
	m := testImage(23, 17)
	out := map[string][]byte{}
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	out["png"] = append([]byte(nil), b.Bytes()...)
	b.Reset()
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	out["jpeg"] = append([]byte(nil), b.Bytes()...)
	b.Reset()
	if err := gif.Encode(&b, m, nil); err != nil {
		t.Fatal(err)
	}
	out["gif"] = append([]byte(nil), b.Bytes()...)
	b.Reset()
	if err := bmp.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	out["bmp"] = append([]byte(nil), b.Bytes()...)
	return out
}

func pngChunk(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(append([]byte(typ), data...)))
}

// Headers that claim 50000×50000 pixels, with little or no pixel data.
func bombs() map[string][]byte {
	ihdr := binary.BigEndian.AppendUint32(nil, 50000)
	ihdr = binary.BigEndian.AppendUint32(ihdr, 50000)
	ihdr = append(ihdr, 8, 2, 0, 0, 0)
	pngBomb := append([]byte("\x89PNG\r\n\x1a\n"), pngChunk("IHDR", ihdr)...)
	pngBomb = append(pngBomb, pngChunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})...)
	pngBomb = append(pngBomb, pngChunk("IEND", nil)...)

	// SOI, SOF0 (8-bit, 50000x50000, 3 components), SOS, EOI.
	jpegBomb := []byte{0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0xC3, 0x50, 0xC3, 0x50, 0x03,
		0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01,
		0xFF, 0xDA, 0x00, 0x0C, 0x03, 0x01, 0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3F, 0x00, 0xFF, 0xD9}

	gifBomb := []byte("GIF89a\x50\xc3\x50\xc3\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00;")

	bmpBomb := make([]byte, 54)
	copy(bmpBomb, "BM")
	binary.LittleEndian.PutUint32(bmpBomb[10:], 54)
	binary.LittleEndian.PutUint32(bmpBomb[14:], 40)
	binary.LittleEndian.PutUint32(bmpBomb[18:], 50000)
	binary.LittleEndian.PutUint32(bmpBomb[22:], 50000)
	binary.LittleEndian.PutUint16(bmpBomb[26:], 1)
	binary.LittleEndian.PutUint16(bmpBomb[28:], 24)

	// Lossless WebP: VP8L header with 14-bit width-1 / height-1 = 16383 -> 16384x16384.
	vp8l := []byte{0x2f, 0xff, 0xff, 0xff, 0x0f, 0x00}
	webpBomb := append([]byte("RIFF\x00\x00\x00\x00WEBPVP8L"), binary.LittleEndian.AppendUint32(nil, uint32(len(vp8l)))...)
	webpBomb = append(webpBomb, vp8l...)
	binary.LittleEndian.PutUint32(webpBomb[4:], uint32(len(webpBomb)-8))
	return map[string][]byte{"PNG": pngBomb, "JPEG": jpegBomb, "GIF": gifBomb, "BMP": bmpBomb, "WebP": webpBomb}
}

func TestDecompressionBombs(t *testing.T) {
	for name, data := range bombs() {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := DecodeRGB(data, Limits{})
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err = %v, want ErrTooLarge", err)
			}
			dims := "50000x50000"
			if name == "WebP" {
				dims = "16384x16384"
			}
			if !strings.HasPrefix(err.Error(), "image too large: "+dims+" exceeds") {
				t.Errorf("error %q does not name the size", err)
			}
			if a := after.TotalAlloc - before.TotalAlloc; a > 1<<20 {
				t.Errorf("allocated %d bytes before refusing", a)
			}
			// A raised limit lets the header through; the missing data is then the error.
			if name != "WebP" {
				_, err = DecodeRGB(data, Limits{MaxPixels: 40000 * 40000})
				if !errors.Is(err, ErrTooLarge) {
					t.Errorf("custom limit: err = %v", err)
				}
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	enc := encoded(t)
	tiff := []byte("II*\x00\x08\x00\x00\x00\x00\x00")
	corruptPNG := append([]byte(nil), enc["png"]...)
	for i := 40; i < len(corruptPNG)-20; i++ {
		corruptPNG[i] ^= 0x55
	}
	corruptJPEG := append([]byte(nil), enc["jpeg"][:30]...)
	corruptJPEG = append(corruptJPEG, bytes.Repeat([]byte{0x12, 0x34}, 100)...)
	tests := []struct {
		name   string
		data   []byte
		lim    Limits
		is     error
		prefix string
	}{
		{"empty", nil, Limits{}, ErrEmpty, "image: empty input"},
		{"text", []byte("hello, this is not an image"), Limits{}, ErrUnsupported, "unsupported image format: unrecognised data"},
		{"tiff", tiff, Limits{}, ErrUnsupported, "unsupported image format: TIFF"},
		{"truncated png", enc["png"][:len(enc["png"])/2], Limits{}, ErrCorrupt, "image: decoding PNG: "},
		{"truncated jpeg", enc["jpeg"][:len(enc["jpeg"])*2/3], Limits{}, ErrCorrupt, "image: decoding JPEG: "},
		{"jpeg header only", enc["jpeg"][:20], Limits{}, ErrCorrupt, "image: decoding JPEG: "},
		{"truncated gif", enc["gif"][:len(enc["gif"])/2], Limits{}, ErrCorrupt, "image: decoding GIF: "},
		{"truncated bmp", enc["bmp"][:len(enc["bmp"])/2], Limits{}, ErrCorrupt, "image: decoding BMP: "},
		{"corrupt png", corruptPNG, Limits{}, ErrCorrupt, "image: decoding PNG: "},
		{"corrupt jpeg", corruptJPEG, Limits{}, ErrCorrupt, "image: decoding JPEG: "},
		{"riff not webp", []byte("RIFF\x04\x00\x00\x00WEBPVP8 "), Limits{}, ErrCorrupt, "image: decoding WebP: "},
		{"too many bytes", enc["png"], Limits{MaxBytes: 100}, ErrTooLarge, "image too large: "},
		{"format not allowed", enc["png"], Limits{Formats: []Format{JPEG}}, ErrUnsupported, "unsupported image format: PNG is not allowed"},
		{"too many pixels", enc["png"], Limits{MaxPixels: 100}, ErrTooLarge, "image too large: 23x17 exceeds the limit of 100 pixels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeRGB(tt.data, tt.lim)
			if !errors.Is(err, tt.is) {
				t.Fatalf("err = %v, want %v", err, tt.is)
			}
			if !strings.HasPrefix(err.Error(), tt.prefix) {
				t.Errorf("error %q, want prefix %q", err, tt.prefix)
			}
			if _, err := Prepare(tt.data, Options{Width: 8, Height: 8, Norm: OFANormalize, Limits: tt.lim}, nil); !errors.Is(err, tt.is) {
				t.Errorf("Prepare: err = %v, want %v", err, tt.is)
			}
		})
	}
}

// PIL refuses skimage's truncated.jpg ("image file is truncated"); so must we.
func TestTruncatedPhoto(t *testing.T) {
	p := "/usr/lib/python3/dist-packages/skimage/data/truncated.jpg"
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (python3-skimage is installed by scripts/dev/setup.sh)", err)
	}
	if _, err := DecodeRGB(data, Limits{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("err = %v, want a truncation error", err)
	}
}

// Every prefix of a valid file is an error, never a panic and never a picture.
func TestPrefixes(t *testing.T) {
	for name, data := range encoded(t) {
		for n := 0; n < len(data)-1; n += 1 + n/16 {
			if name == "bmp" && n >= len(data)-1 {
				continue
			}
			if _, err := DecodeRGB(data[:n], Limits{}); err == nil {
				t.Errorf("%s: prefix of %d/%d bytes decoded without error", name, n, len(data))
			}
		}
		if _, err := DecodeRGB(data, Limits{}); err != nil {
			t.Errorf("%s: full file: %v", name, err)
		}
	}
}

func TestOptionsValidated(t *testing.T) {
	data := encoded(t)["png"]
	for _, o := range []Options{
		{Width: 0, Height: 10, Norm: OFANormalize},
		{Width: 10, Height: 10, Norm: Normalize{Mean: [3]float32{0.5, 0.5, 0.5}}},
	} {
		if _, err := Prepare(data, o, nil); err == nil {
			t.Errorf("Prepare(%+v) succeeded", o)
		}
	}
}

// PrepareUint8 refuses what Prepare refuses (except a bad std, which it never
// uses), allocating nothing for a refused input.
func TestPrepareUint8Refusals(t *testing.T) {
	enc := encoded(t)
	for _, tt := range []struct {
		name string
		data []byte
		opt  Options
		is   error
	}{
		{"empty", nil, Options{Width: 8, Height: 8}, ErrEmpty},
		{"garbage", []byte("not an image at all"), Options{Width: 8, Height: 8}, ErrUnsupported},
		{"too many pixels", enc["png"], Options{Width: 8, Height: 8, Limits: Limits{MaxPixels: 100}}, ErrTooLarge},
	} {
		dst := make([]uint8, 0, 1)
		out, err := PrepareUint8(tt.data, tt.opt, dst)
		if !errors.Is(err, tt.is) || out != nil {
			t.Errorf("%s: PrepareUint8 = %d bytes, %v; want nil, %v", tt.name, len(out), err, tt.is)
		}
	}
	if _, err := PrepareUint8(enc["png"], Options{Width: 0, Height: 8}, nil); err == nil || !strings.Contains(err.Error(), "invalid target size") {
		t.Errorf("zero width: %v, want an invalid target size", err)
	}
	// Norm is not used, so a zero std is no error here.
	out, err := PrepareUint8(enc["png"], Options{Width: 5, Height: 3}, nil)
	if err != nil || len(out) != 45 {
		t.Errorf("PrepareUint8 with a zero Normalize: %d bytes, %v", len(out), err)
	}
}

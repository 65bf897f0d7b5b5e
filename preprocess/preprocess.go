package preprocess

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Errors returned by this package wrap one of these, so callers can classify
// them with errors.Is (all of them are the client's fault: HTTP 400).
var (
	// ErrEmpty: the input has no bytes.
	ErrEmpty = errors.New("image: empty input")
	// ErrTooLarge: the encoded size or the pixel count exceeds Limits.
	ErrTooLarge = errors.New("image too large")
	// ErrUnsupported: the format is not recognised, not decodable here, or not allowed.
	ErrUnsupported = errors.New("unsupported image format")
	// ErrCorrupt: the data claims a known format but cannot be decoded.
	ErrCorrupt = errors.New("image: corrupt data")
)

// Format names an image container format.
type Format string

// The formats DecodeRGB decodes.
const (
	JPEG Format = "JPEG"
	PNG  Format = "PNG"
	WebP Format = "WebP"
	BMP  Format = "BMP"
	GIF  Format = "GIF"
)

// AllFormats lists every format DecodeRGB can decode.
var AllFormats = []Format{JPEG, PNG, WebP, BMP, GIF}

// Defaults used for zero fields of Limits.
const (
	DefaultMaxBytes  = 32 << 20    // 32 MiB of encoded data
	DefaultMaxPixels = 8192 * 8192 // 67,108,864 pixels (about 200 MB as RGB)
)

// Limits bound what DecodeRGB accepts. They are checked before the image is
// decoded: the byte size first, then the format, then width × height as read
// from the file header, so a decompression bomb is refused without allocating
// its pixels. Zero fields take the defaults; negative fields mean no limit.
type Limits struct {
	MaxBytes  int      // encoded size in bytes (default DefaultMaxBytes)
	MaxPixels int64    // width × height (default DefaultMaxPixels)
	Formats   []Format // allowed formats (nil: AllFormats)
}

func (l Limits) maxBytes() int {
	if l.MaxBytes == 0 {
		return DefaultMaxBytes
	}
	return l.MaxBytes
}

func (l Limits) maxPixels() int64 {
	if l.MaxPixels == 0 {
		return DefaultMaxPixels
	}
	return l.MaxPixels
}

func (l Limits) allows(f Format) bool {
	if l.Formats == nil {
		return true
	}
	for _, g := range l.Formats {
		if strings.EqualFold(string(g), string(f)) {
			return true
		}
	}
	return false
}

// checkBytes applies the size limit.
func (l Limits) checkBytes(n int) error {
	if n == 0 {
		return ErrEmpty
	}
	if m := l.maxBytes(); m > 0 && n > m {
		return fmt.Errorf("%w: %d bytes exceeds the limit of %d bytes", ErrTooLarge, n, m)
	}
	return nil
}

// checkSize applies the pixel limit to the dimensions read from a header.
func (l Limits) checkSize(f Format, w, h int) error {
	if w <= 0 || h <= 0 {
		return corrupt(f, fmt.Errorf("invalid dimensions %dx%d", w, h))
	}
	if m := l.maxPixels(); m > 0 && int64(w)*int64(h) > m {
		return fmt.Errorf("%w: %dx%d exceeds the limit of %d pixels", ErrTooLarge, w, h, m)
	}
	return nil
}

// sniff identifies the container format from the first bytes. For formats we
// recognise but do not decode it returns their name and ok == false.
func sniff(b []byte) (f Format, name string, ok bool) {
	switch {
	case len(b) >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF:
		return JPEG, "JPEG", true
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return PNG, "PNG", true
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return GIF, "GIF", true
	case len(b) >= 12 && string(b[0:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return WebP, "WebP", true
	case bytes.HasPrefix(b, []byte("BM")):
		return BMP, "BMP", true
	}
	// Known formats we do not decode, named so the error says what was sent.
	switch {
	case bytes.HasPrefix(b, []byte("II*\x00")), bytes.HasPrefix(b, []byte("MM\x00*")),
		bytes.HasPrefix(b, []byte("II+\x00")), bytes.HasPrefix(b, []byte("MM\x00+")):
		return "", "TIFF", false
	case len(b) >= 12 && string(b[4:8]) == "ftyp":
		brand := string(b[8:12])
		switch {
		case strings.HasPrefix(brand, "avi"):
			return "", "AVIF", false
		case strings.HasPrefix(brand, "hei"), strings.HasPrefix(brand, "mif1"), strings.HasPrefix(brand, "hev"):
			return "", "HEIF", false
		}
		return "", "ISO media (" + sanitize(b[8:12]) + ")", false
	case bytes.HasPrefix(b, []byte("\x00\x00\x00\x0cjP  ")), bytes.HasPrefix(b, []byte("\xff\x4f\xff\x51")):
		return "", "JPEG 2000", false
	case bytes.HasPrefix(b, []byte("\x00\x00\x01\x00")):
		return "", "ICO", false
	case bytes.HasPrefix(b, []byte("%PDF")):
		return "", "PDF", false
	case bytes.HasPrefix(b, []byte("8BPS")):
		return "", "PSD", false
	case bytes.HasPrefix(b, []byte("<svg")), bytes.HasPrefix(b, []byte("<?xml")):
		return "", "SVG/XML", false
	case bytes.HasPrefix(b, []byte{0xFF, 0x0A}), bytes.HasPrefix(b, []byte("\x00\x00\x00\x0cJXL ")):
		return "", "JPEG XL", false
	}
	return "", "", false
}

// sanitize makes a few header bytes printable for an error message.
func sanitize(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		if c >= 0x20 && c < 0x7f {
			sb.WriteByte(c)
		} else {
			fmt.Fprintf(&sb, "\\x%02x", c)
		}
	}
	return sb.String()
}

func unsupported(b []byte, name string) error {
	if name != "" {
		return fmt.Errorf("%w: %s (supported: JPEG, PNG, WebP, BMP, GIF)", ErrUnsupported, name)
	}
	n := len(b)
	if n > 8 {
		n = 8
	}
	return fmt.Errorf("%w: unrecognised data starting with %q (supported: JPEG, PNG, WebP, BMP, GIF)",
		ErrUnsupported, sanitize(b[:n]))
}

// decodeError reads "image: decoding FORMAT: cause" and matches ErrCorrupt and cause.
type decodeError struct {
	format Format
	err    error
}

func (e *decodeError) Error() string {
	return "image: decoding " + string(e.format) + ": " + e.err.Error()
}
func (e *decodeError) Unwrap() []error { return []error{ErrCorrupt, e.err} }

// corrupt wraps a decoder error as "image: decoding FORMAT: ...".
func corrupt(f Format, err error) error { return &decodeError{f, err} }

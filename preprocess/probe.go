package preprocess

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"

	"golang.org/x/image/bmp"
	"golang.org/x/image/webp"
)

// Size is what an image's header says: its format and dimensions.
type Size struct {
	Format        Format
	Width, Height int
}

// Pixels is Width × Height.
func (s Size) Pixels() int64 { return int64(s.Width) * int64(s.Height) }

// Probe reads an image's format and dimensions from its header, without decoding it and without allocating
// anything proportional to the image: the JPEG marker segments up to the frame header, PNG's IHDR, GIF's
// logical screen, the WebP and BMP headers. It is what a caller checks a budget with before it commits to
// the decode (DecodeRGB checks the same dimensions against Limits). data may be a prefix of the file that
// holds the header. A file that is not an image, or whose header is cut short, is an error (ErrUnsupported
// or ErrCorrupt); the decode would refuse it with a fuller message.
func Probe(data []byte) (Size, error) {
	f, name, ok := sniff(data)
	if !ok {
		return Size{}, unsupported(data, name)
	}
	s := Size{Format: f}
	switch f {
	case JPEG:
		h, err := parseJPEGHeader(data)
		if err != nil {
			return s, corrupt(JPEG, err)
		}
		s.Width, s.Height = h.width, h.height
	case PNG:
		// The signature, then IHDR first: length 13, type, width, height.
		if len(data) < 24 || string(data[12:16]) != "IHDR" {
			return s, corrupt(PNG, errors.New("no IHDR chunk first"))
		}
		s.Width, s.Height = int(binary.BigEndian.Uint32(data[16:])), int(binary.BigEndian.Uint32(data[20:]))
	case GIF:
		if len(data) < 10 {
			return s, corrupt(GIF, errors.New("short header"))
		}
		s.Width, s.Height = int(binary.LittleEndian.Uint16(data[6:])), int(binary.LittleEndian.Uint16(data[8:]))
	case BMP, WebP:
		var cfg image.Config
		var err error
		if f == BMP {
			cfg, err = bmp.DecodeConfig(bytes.NewReader(data))
		} else {
			cfg, err = webp.DecodeConfig(bytes.NewReader(data))
		}
		if err != nil {
			return s, corrupt(f, err)
		}
		s.Width, s.Height = cfg.Width, cfg.Height
	}
	if s.Width <= 0 || s.Height <= 0 {
		return s, corrupt(f, fmt.Errorf("invalid dimensions %dx%d", s.Width, s.Height))
	}
	return s, nil
}

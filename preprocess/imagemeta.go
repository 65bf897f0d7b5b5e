package preprocess

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"strings"
)

// pngMeta is what PIL's PNG plugin knows and Go's decoder hides.
type pngMeta struct {
	width, height int
	depth         int
	colorType     int
	plteCount     int    // entries in PLTE; later indices are grey in PIL
	exif          []byte // eXIf chunk
	rawExif       []byte // a "Raw profile type exif" text chunk, decoded (used without eXIf)
	xmp           []byte // iTXt "XML:com.adobe.xmp"
}

// maxTextChunk bounds the inflated size of a compressed text chunk we read
// (Pillow's MAX_TEXT_CHUNK is 1 MB as well).
const maxTextChunk = 1 << 20

// parsePNGMeta walks the chunks. Chunk CRCs are left to image/png.
func parsePNGMeta(b []byte) (pngMeta, error) {
	var m pngMeta
	p := 8
	sawIHDR := false
	for p+8 <= len(b) {
		n := int64(binary.BigEndian.Uint32(b[p:]))
		typ := string(b[p+4 : p+8])
		start := int64(p + 8)
		end := start + n
		if n > int64(len(b)) || end > int64(len(b)) {
			if !sawIHDR {
				return m, errors.New("truncated chunk " + sanitize([]byte(typ)))
			}
			break // image/png reports truncation of what matters
		}
		d := b[start:end]
		switch typ {
		case "IHDR":
			if len(d) < 13 {
				return m, errors.New("short IHDR chunk")
			}
			m.width = int(binary.BigEndian.Uint32(d[0:]))
			m.height = int(binary.BigEndian.Uint32(d[4:]))
			m.depth, m.colorType = int(d[8]), int(d[9])
			sawIHDR = true
		case "PLTE":
			m.plteCount = len(d) / 3
		case "eXIf":
			m.exif = d
		case "tEXt", "zTXt", "iTXt":
			key, text, ok := pngText(typ, d)
			if !ok {
				break
			}
			switch key {
			case "Raw profile type exif":
				m.rawExif = rawProfileExif(text)
			case "XML:com.adobe.xmp":
				if typ == "iTXt" {
					m.xmp = text
				}
			}
		case "IEND":
			p = len(b)
			continue
		}
		if !sawIHDR {
			return m, errors.New("first chunk is not IHDR")
		}
		p = int(end) + 4
	}
	if !sawIHDR {
		return m, errors.New("no IHDR chunk")
	}
	return m, nil
}

// pngText decodes a tEXt, zTXt or iTXt chunk into keyword and text.
func pngText(typ string, d []byte) (key string, text []byte, ok bool) {
	i := bytes.IndexByte(d, 0)
	if i < 0 {
		return "", nil, false
	}
	key, rest := string(d[:i]), d[i+1:]
	switch typ {
	case "tEXt":
		return key, rest, true
	case "zTXt":
		if len(rest) < 1 || rest[0] != 0 {
			return "", nil, false
		}
		t, err := inflateLimited(rest[1:])
		return key, t, err == nil
	default: // iTXt: flag, method, language\0, translated keyword\0, text
		if len(rest) < 2 {
			return "", nil, false
		}
		compressed, method := rest[0], rest[1]
		rest = rest[2:]
		for k := 0; k < 2; k++ {
			j := bytes.IndexByte(rest, 0)
			if j < 0 {
				return "", nil, false
			}
			rest = rest[j+1:]
		}
		if compressed == 0 {
			return key, rest, true
		}
		if method != 0 {
			return "", nil, false
		}
		t, err := inflateLimited(rest)
		return key, t, err == nil
	}
}

func inflateLimited(z []byte) ([]byte, error) {
	r, err := zlib.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, maxTextChunk+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxTextChunk {
		return nil, errors.New("text chunk too large")
	}
	return out, nil
}

// rawProfileExif decodes ImageMagick's "Raw profile type exif" text the way
// Pillow does: drop the first three lines, join the rest, decode hex.
func rawProfileExif(text []byte) []byte {
	lines := strings.Split(string(text), "\n")
	if len(lines) <= 3 {
		return nil
	}
	h := strings.Join(lines[3:], "")
	h = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' {
			return -1
		}
		return r
	}, h)
	e, err := hex.DecodeString(h)
	if err != nil {
		return nil
	}
	return e
}

// gifMeta is the first frame's setup, read the way PIL's GifImagePlugin does.
type gifMeta struct {
	width, height int    // logical screen
	palette       []byte // the frame's palette (local, else global), RGB triplets; nil: greyscale
	transparent   int    // transparency index of frame 0, -1 if none
}

func parseGIFMeta(b []byte) (gifMeta, error) {
	m := gifMeta{transparent: -1}
	if len(b) < 13 {
		return m, errors.New("short header")
	}
	m.width = int(binary.LittleEndian.Uint16(b[6:]))
	m.height = int(binary.LittleEndian.Uint16(b[8:]))
	flags := b[10]
	p := 13
	var global []byte
	if flags&0x80 != 0 {
		n := 3 << (flags&7 + 1)
		if p+n > len(b) {
			return m, errors.New("truncated global colour table")
		}
		global = b[p : p+n]
		p += n
	}
	// subBlocks skips data sub-blocks from p and returns the first one.
	subBlocks := func() ([]byte, bool) {
		var first []byte
		seen := false
		for p < len(b) {
			n := int(b[p])
			p++
			if n == 0 {
				return first, true
			}
			if p+n > len(b) {
				return first, false
			}
			if !seen {
				first, seen = b[p:p+n], true
			}
			p += n
		}
		return first, false
	}
	for p < len(b) {
		c := b[p]
		p++
		switch c {
		case '!':
			if p >= len(b) {
				return m, errors.New("truncated extension")
			}
			label := b[p]
			p++
			blk, ok := subBlocks()
			if !ok {
				return m, errors.New("truncated extension")
			}
			if label == 0xF9 && len(blk) >= 4 && blk[0]&1 != 0 {
				m.transparent = int(blk[3])
			}
		case ',':
			if p+9 > len(b) {
				return m, errors.New("truncated image descriptor")
			}
			fl := b[p+8]
			p += 9
			m.palette = global
			if fl&0x80 != 0 {
				n := 3 << (fl&7 + 1)
				if p+n > len(b) {
					return m, errors.New("truncated local colour table")
				}
				m.palette = b[p : p+n]
			}
			return m, nil
		case ';':
			return m, errors.New("no image in file")
		}
	}
	return m, errors.New("no image in file")
}

// webpExif returns the EXIF chunk of an extended (VP8X) WebP file, which is
// where libwebp's demuxer (used by PIL) finds it.
func webpExif(b []byte) []byte {
	if len(b) < 20 || string(b[12:16]) != "VP8X" {
		return nil
	}
	p := 12
	for p+8 <= len(b) {
		n := int(binary.LittleEndian.Uint32(b[p+4:]))
		if n < 0 || p+8+n > len(b) || p+8+n < p {
			return nil
		}
		if string(b[p:p+4]) == "EXIF" {
			return b[p+8 : p+8+n]
		}
		p += 8 + n + n&1
	}
	return nil
}

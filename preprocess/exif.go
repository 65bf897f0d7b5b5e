package preprocess

import (
	"bytes"
	"encoding/binary"
	"regexp"
)

// exifOrientation returns the value of tag 0x0112 (Orientation) in IFD0 of an
// EXIF block, the way Pillow 9.4's Image.getexif() reads it: an optional
// "Exif\0\0" prefix, a TIFF header ("II*\0" or "MM\0*"), IFD0 at the offset
// the header names; the last entry with the tag wins; entries after a
// truncation are lost but those before it are kept; a value that is not a
// single integer is no orientation (0). present reports whether the tag
// exists at all (Pillow's XMP fallback only runs when it does not).
//
// The input comes from outside: every offset is bounds-checked.
func exifOrientation(b []byte) (orientation int, present bool) {
	b = bytes.TrimPrefix(b, []byte("Exif\x00\x00"))
	if len(b) < 8 {
		return 0, false
	}
	var bo binary.ByteOrder
	switch string(b[:4]) {
	case "II*\x00":
		bo = binary.LittleEndian
	case "MM\x00*":
		bo = binary.BigEndian
	default:
		return 0, false
	}
	off := uint64(bo.Uint32(b[4:8]))
	if off+2 > uint64(len(b)) {
		return 0, false
	}
	n := int(bo.Uint16(b[off:]))
	p := off + 2
	for i := 0; i < n; i++ {
		if p+12 > uint64(len(b)) {
			break // truncated directory: keep what was read (Pillow warns and stops)
		}
		e := b[p : p+12]
		p += 12
		if bo.Uint16(e[0:2]) != 0x0112 {
			continue
		}
		typ, count, val := bo.Uint16(e[2:4]), bo.Uint32(e[4:8]), e[8:12]
		orientation, present = 0, true
		if count != 1 {
			continue // a tuple is not an orientation; a later entry may still set one
		}
		switch typ {
		case 1: // BYTE
			orientation = int(val[0])
		case 6: // SBYTE
			orientation = int(int8(val[0]))
		case 3: // SHORT
			orientation = int(bo.Uint16(val))
		case 8: // SSHORT
			orientation = int(int16(bo.Uint16(val)))
		case 4: // LONG
			orientation = int(bo.Uint32(val))
		case 9: // SLONG
			orientation = int(int32(bo.Uint32(val)))
		default:
			present = false // Pillow skips entries of unknown type
		}
	}
	return orientation, present
}

// xmpOrientation is Pillow's fallback when EXIF has no orientation: a regular
// expression over the PNG iTXt "XML:com.adobe.xmp" text.
var xmpOrientationRE = regexp.MustCompile(`tiff:Orientation(="|>)([0-9])`)

func xmpOrientation(xmp []byte) (int, bool) {
	m := xmpOrientationRE.FindSubmatch(xmp)
	if m == nil {
		return 0, false
	}
	return int(m[2][0] - '0'), true
}

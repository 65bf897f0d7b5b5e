package preprocess

/*
// libturbojpeg is linked statically so the server binary carries its JPEG decoder to GPU boxes that lack it.
#cgo LDFLAGS: -l:libturbojpeg.a
#include <stdio.h>
#include <stdlib.h>
#include <turbojpeg.h>

// ofa_tj_decode decodes a whole JPEG at scale 1/1 into dst with the library's
// defaults, which are PIL's: accurate integer IDCT (JDCT_ISLOW), fancy chroma
// upsampling, block smoothing for progressive files. A libjpeg warning still
// yields a decoded image (PIL ignores warnings too); *warning reports it.
// Returns 0 on success, -1 on a fatal error with its message copied to msg.
static int ofa_tj_decode(const unsigned char *buf, unsigned long size, unsigned char *dst,
                         int width, int height, int pf, int *warning, char *msg, int msglen) {
	tjhandle h = tjInitDecompress();
	if (h == NULL) {
		snprintf(msg, msglen, "%s", tjGetErrorStr2(NULL));
		return -1;
	}
	*warning = 0;
	int rc = tjDecompress2(h, buf, size, dst, width, 0, height, pf, 0);
	if (rc != 0) {
		if (tjGetErrorCode(h) == TJERR_WARNING) {
			*warning = 1;
			rc = 0;
		} else {
			snprintf(msg, msglen, "%s", tjGetErrorStr2(h));
		}
	}
	tjDestroy(h);
	return rc;
}
*/
import "C"

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"
)

// jpegHeader is what we read from the markers before SOS.
type jpegHeader struct {
	width, height int
	components    int
	precision     int
	exif          []byte // first APP1 starting with "Exif\0" (Pillow keeps the first)
	sos           int    // offset of the first SOS marker
}

var errNoSOF = errors.New("no frame header (SOF) before the scan")

// parseJPEGHeader walks the marker segments up to the first SOS. It allocates
// nothing proportional to the image.
func parseJPEGHeader(b []byte) (jpegHeader, error) {
	var h jpegHeader
	p := 2 // after SOI
	sawSOF := false
	for {
		// Skip to the next marker, allowing fill bytes (0xFF runs).
		for p < len(b) && b[p] != 0xFF {
			p++ // garbage between segments: libjpeg warns and resyncs
		}
		for p < len(b) && b[p] == 0xFF {
			p++
		}
		if p >= len(b) {
			return h, errors.New("truncated data in the header")
		}
		m := b[p]
		p++
		switch {
		case m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01:
			continue // markers without a length
		case m == 0xD9:
			return h, errors.New("end of image before any scan")
		}
		if p+2 > len(b) {
			return h, errors.New("truncated data in the header")
		}
		segLen := int(binary.BigEndian.Uint16(b[p:]))
		if segLen < 2 {
			return h, fmt.Errorf("marker 0x%02X: invalid segment length %d", m, segLen)
		}
		if p+segLen > len(b) {
			return h, fmt.Errorf("truncated data: marker 0x%02X segment of %d bytes runs past the end", m, segLen)
		}
		seg := b[p+2 : p+segLen]
		switch {
		case m == 0xDA:
			if !sawSOF {
				return h, errNoSOF
			}
			h.sos = p - 2
			return h, nil
		case m == 0xE1 && h.exif == nil && bytes.HasPrefix(seg, []byte("Exif\x00")):
			h.exif = seg
		case m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC:
			if len(seg) < 6 {
				return h, errors.New("short frame header (SOF)")
			}
			if !sawSOF {
				h.precision = int(seg[0])
				h.height = int(binary.BigEndian.Uint16(seg[1:]))
				h.width = int(binary.BigEndian.Uint16(seg[3:]))
				h.components = int(seg[5])
				sawSOF = true
			}
		}
		p += segLen
	}
}

// checkJPEG reads the header and validates what PIL would refuse.
func checkJPEG(b []byte, lim Limits) (jpegHeader, error) {
	h, err := parseJPEGHeader(b)
	if err != nil {
		return h, corrupt(JPEG, err)
	}
	if h.height == 0 {
		return h, corrupt(JPEG, errors.New("height 0 (DNL marker) is not supported"))
	}
	if err := lim.checkSize(JPEG, h.width, h.height); err != nil {
		return h, err
	}
	if h.precision != 8 {
		return h, corrupt(JPEG, fmt.Errorf("%d-bit samples are not supported", h.precision))
	}
	switch h.components {
	case 1, 3, 4:
	default:
		return h, corrupt(JPEG, fmt.Errorf("%d colour components are not supported", h.components))
	}
	return h, nil
}

// decodeJPEG decodes into dst (len ≥ 3*w*h; it also needs 4*w*h for CMYK
// files, given as scratch) and converts to RGB as PIL's convert("RGB").
func decodeJPEG(b []byte, h jpegHeader, dst []uint8, scratch func(n int) []uint8) error {
	w, ht := h.width, h.height
	if h.components == 4 {
		cmyk := scratch(4 * w * ht)
		if err := tjDecode(b, cmyk, w, ht, C.TJPF_CMYK, h.sos); err != nil {
			return err
		}
		cmykToRGB(dst[:3*w*ht], cmyk)
		return nil
	}
	// One component (greyscale) is replicated by libjpeg, which equals PIL's L -> RGB.
	return tjDecode(b, dst[:3*w*ht], w, ht, C.TJPF_RGB, h.sos)
}

func tjDecode(b, dst []uint8, w, h int, pf C.int, sos int) error {
	var warning C.int
	var msg [256]C.char
	rc := C.ofa_tj_decode((*C.uchar)(unsafe.Pointer(&b[0])), C.ulong(len(b)),
		(*C.uchar)(unsafe.Pointer(&dst[0])), C.int(w), C.int(h), pf, &warning, &msg[0], C.int(len(msg)))
	if rc != 0 {
		return corrupt(JPEG, errors.New(C.GoString(&msg[0])))
	}
	// libjpeg pads a file that ends early with grey and only warns; PIL refuses
	// it ("image file is truncated"). The entropy-coded data cannot contain an
	// unescaped EOI, so a missing EOI after the first scan means truncation.
	if warning != 0 && !bytes.Contains(b[sos:], []byte{0xFF, 0xD9}) {
		return corrupt(JPEG, errors.New("truncated data (no end-of-image marker)"))
	}
	return nil
}

// cmykToRGB applies PIL's rules for CMYK JPEGs: JpegImagePlugin always unpacks
// with rawmode "CMYK;I" (inverting libjpeg's samples), then cmyk2rgb computes
// R = clip(nk - MULDIV255(C, nk)) with nk = 255 - K. With PIL's C = 255 - c
// and K = 255 - k for library samples c, k, that is round(c*k/255), computed
// here with PIL's own integer formula.
func cmykToRGB(dst, cmyk []uint8) {
	n := len(cmyk) / 4
	dst = dst[:3*n]
	for i := 0; i < n; i++ {
		s := cmyk[4*i : 4*i+4 : 4*i+4]
		nk := 255 - (255 - int32(s[3])) // = k
		d := dst[3*i : 3*i+3 : 3*i+3]
		d[0] = cmykChannel(255-int32(s[0]), nk)
		d[1] = cmykChannel(255-int32(s[1]), nk)
		d[2] = cmykChannel(255-int32(s[2]), nk)
	}
}

// cmykChannel is Convert.c's clip(nk - MULDIV255(c, nk)).
func cmykChannel(c, nk int32) uint8 {
	t := c*nk + 128
	v := nk - ((t>>8)+t)>>8
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

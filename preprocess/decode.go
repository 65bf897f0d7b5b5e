package preprocess

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/png"

	"golang.org/x/image/bmp"
	"golang.org/x/image/webp"
)

// RGB is an 8-bit RGB image, rows top to bottom, pixels packed R, G, B
// (stride 3*Width, len(Pix) == 3*Width*Height).
type RGB struct {
	Width, Height int
	Pix           []uint8
}

// DecodeRGB decodes an encoded image, applies its EXIF orientation and
// converts it to RGB exactly as Pillow's
// ImageOps.exif_transpose(Image.open(f)).convert("RGB") does.
// The limits are checked before decoding (see Limits).
func DecodeRGB(data []byte, lim Limits) (*RGB, error) {
	var s scratch
	img, err := decodeRGB(data, lim, &s)
	if err != nil {
		return nil, err
	}
	// img.Pix aliases one of the scratch buffers, which are ours alone here.
	return &img, nil
}

// scratch holds reusable buffers for one decode; see the pool in prepare.go.
type scratch struct {
	a, b, c, row []uint8
}

// grow returns (*s)[:n], reallocating when the capacity is short.
func grow(s *[]uint8, n int) []uint8 {
	if cap(*s) < n {
		*s = make([]uint8, n)
	}
	return (*s)[:n]
}

// decodeRGB does DecodeRGB's work with its buffers taken from s; the result
// aliases s.a or s.b.
func decodeRGB(data []byte, lim Limits, s *scratch) (RGB, error) {
	if err := lim.checkBytes(len(data)); err != nil {
		return RGB{}, err
	}
	f, name, ok := sniff(data)
	if !ok {
		return RGB{}, unsupported(data, name)
	}
	if !lim.allows(f) {
		return RGB{}, fmt.Errorf("%w: %s is not allowed here", ErrUnsupported, f)
	}
	var (
		img  RGB
		exif []byte
		xmp  []byte
		err  error
	)
	switch f {
	case JPEG:
		var h jpegHeader
		if h, err = checkJPEG(data, lim); err != nil {
			return RGB{}, err
		}
		img = RGB{h.width, h.height, grow(&s.a, 3*h.width*h.height)}
		if err = decodeJPEG(data, h, img.Pix, func(n int) []uint8 { return grow(&s.b, n) }); err != nil {
			return RGB{}, err
		}
		exif = h.exif
	case PNG:
		var m pngMeta
		if m, err = parsePNGMeta(data); err != nil {
			return RGB{}, corrupt(PNG, err)
		}
		if err = lim.checkSize(PNG, m.width, m.height); err != nil {
			return RGB{}, err
		}
		var gi image.Image
		if gi, err = png.Decode(bytes.NewReader(data)); err != nil {
			return RGB{}, corrupt(PNG, err)
		}
		if img, err = pngToRGB(gi, m, &s.a); err != nil {
			return RGB{}, corrupt(PNG, err)
		}
		exif, xmp = m.exif, m.xmp
		if exif == nil {
			exif = m.rawExif
		}
	case GIF:
		var m gifMeta
		if m, err = parseGIFMeta(data); err != nil {
			return RGB{}, corrupt(GIF, err)
		}
		if err = lim.checkSize(GIF, m.width, m.height); err != nil {
			return RGB{}, err
		}
		var gi image.Image
		if gi, err = gif.Decode(bytes.NewReader(data)); err != nil {
			return RGB{}, corrupt(GIF, err)
		}
		if img, err = gifToRGB(gi, m, &s.a); err != nil {
			return RGB{}, corrupt(GIF, err)
		}
	case BMP:
		var sz Size // the header, read as Probe reads it for a budget
		if sz, err = Probe(data); err != nil {
			return RGB{}, err
		}
		if err = lim.checkSize(BMP, sz.Width, sz.Height); err != nil {
			return RGB{}, err
		}
		var gi image.Image
		if gi, err = bmp.Decode(bytes.NewReader(data)); err != nil {
			return RGB{}, corrupt(BMP, err)
		}
		if img, err = goImageToRGB(gi, &s.a); err != nil {
			return RGB{}, corrupt(BMP, err)
		}
	case WebP:
		var sz Size // the header, read as Probe reads it for a budget
		if sz, err = Probe(data); err != nil {
			return RGB{}, err
		}
		if err = lim.checkSize(WebP, sz.Width, sz.Height); err != nil {
			return RGB{}, err
		}
		var gi image.Image
		if gi, err = webp.Decode(bytes.NewReader(data)); err != nil {
			return RGB{}, corrupt(WebP, err)
		}
		if img, err = goImageToRGB(gi, &s.a); err != nil {
			return RGB{}, corrupt(WebP, err)
		}
		exif = webpExif(data)
	}

	o, present := 0, false
	if exif != nil {
		o, present = exifOrientation(exif)
	}
	if !present && xmp != nil {
		o, _ = xmpOrientation(xmp)
	}
	dst := grow(&s.b, len(img.Pix))
	if w, h, ok := transposeInto(dst, img.Pix, img.Width, img.Height, o); ok {
		img = RGB{w, h, dst}
	}
	return img, nil
}

// pngToRGB converts what image/png returns, using the header facts PIL sees.
func pngToRGB(gi image.Image, m pngMeta, buf *[]uint8) (RGB, error) {
	b := gi.Bounds()
	w, h := b.Dx(), b.Dy()
	switch im := gi.(type) {
	case *image.Gray16:
		// PIL opens 16-bit greyscale as mode I and convert("RGB") clamps to
		// 255: it does not scale (docs/pil-preprocessing.md §2.2).
		return gray16Clamp(im.Pix, im.Stride, 2, w, h, buf), nil
	case *image.NRGBA64:
		if m.colorType == 0 { // 16-bit grey with tRNS: still mode I in PIL
			return gray16Clamp(im.Pix, im.Stride, 8, w, h, buf), nil
		}
	case *image.Paletted:
		return palettedToRGB(im, m.plteCount, buf), nil
	}
	return goImageToRGB(gi, buf)
}

// gray16Clamp reads big-endian 16-bit grey samples every step bytes and
// clamps them to 255, replicated into R, G, B.
func gray16Clamp(pix []uint8, stride, step, w, h int, buf *[]uint8) RGB {
	out := grow(buf, 3*w*h)
	for y := 0; y < h; y++ {
		row := pix[y*stride : y*stride+step*w]
		o := out[3*w*y : 3*w*(y+1)]
		for x := 0; x < w; x++ {
			v := uint8(255)
			if row[step*x] == 0 {
				v = row[step*x+1]
			}
			o[3*x], o[3*x+1], o[3*x+2] = v, v, v
		}
	}
	return RGB{w, h, out}
}

// paletteRGB returns entry i of a palette, as PIL keeps it: entries past the
// file's palette length (n) are PIL's default grey ramp, (i, i, i).
func paletteRGB(pal color.Palette, n int) (lut [256][3]uint8) {
	for i := 0; i < 256; i++ {
		v := uint8(i)
		lut[i] = [3]uint8{v, v, v}
		if i >= n || i >= len(pal) {
			continue
		}
		switch c := pal[i].(type) {
		case color.NRGBA:
			lut[i] = [3]uint8{c.R, c.G, c.B}
		case color.RGBA:
			if c.A == 0xff {
				lut[i] = [3]uint8{c.R, c.G, c.B}
			} else {
				nc := color.NRGBAModel.Convert(c).(color.NRGBA)
				lut[i] = [3]uint8{nc.R, nc.G, nc.B}
			}
		default:
			nc := color.NRGBAModel.Convert(c).(color.NRGBA)
			lut[i] = [3]uint8{nc.R, nc.G, nc.B}
		}
	}
	return lut
}

func palettedToRGB(im *image.Paletted, n int, buf *[]uint8) RGB {
	lut := paletteRGB(im.Palette, n)
	b := im.Bounds()
	w, h := b.Dx(), b.Dy()
	out := grow(buf, 3*w*h)
	for y := 0; y < h; y++ {
		row := im.Pix[y*im.Stride : y*im.Stride+w]
		o := out[3*w*y : 3*w*(y+1)]
		for x, i := range row {
			c := &lut[i]
			o[3*x], o[3*x+1], o[3*x+2] = c[0], c[1], c[2]
		}
	}
	return RGB{w, h, out}
}

// gifToRGB builds PIL's first frame: a screen-sized canvas filled with the
// transparency index (else 0), the frame's indices pasted at its offset, then
// the palette applied (the transparent entry keeps its colour; alpha is dropped).
func gifToRGB(gi image.Image, m gifMeta, buf *[]uint8) (RGB, error) {
	pi, ok := gi.(*image.Paletted)
	if !ok {
		return RGB{}, fmt.Errorf("unexpected frame type %T", gi)
	}
	r := pi.Bounds()
	if !r.In(image.Rect(0, 0, m.width, m.height)) {
		return RGB{}, errors.New("first frame lies outside the logical screen")
	}
	var lut [256][3]uint8
	for i := range lut {
		v := uint8(i)
		lut[i] = [3]uint8{v, v, v}
		if 3*i+2 < len(m.palette) {
			lut[i] = [3]uint8{m.palette[3*i], m.palette[3*i+1], m.palette[3*i+2]}
		}
	}
	fill := 0
	if m.transparent >= 0 {
		fill = m.transparent
	}
	w, h := m.width, m.height
	out := grow(buf, 3*w*h)
	fc := lut[fill]
	for i := 0; i+2 < len(out); i += 3 {
		out[i], out[i+1], out[i+2] = fc[0], fc[1], fc[2]
	}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		row := pi.Pix[(y-r.Min.Y)*pi.Stride : (y-r.Min.Y)*pi.Stride+r.Dx()]
		o := out[3*(w*y+r.Min.X) : 3*(w*y+r.Max.X)]
		for x, i := range row {
			c := &lut[i]
			o[3*x], o[3*x+1], o[3*x+2] = c[0], c[1], c[2]
		}
	}
	return RGB{w, h, out}, nil
}

// goImageToRGB converts the other image types Go's decoders return. Alpha is
// dropped without compositing (PIL's RGBA/LA -> RGB); 16-bit colour keeps the
// high byte (PIL's unpackers for 16-bit RGB/RGBA PNG).
func goImageToRGB(gi image.Image, buf *[]uint8) (RGB, error) {
	b := gi.Bounds()
	w, h := b.Dx(), b.Dy()
	// pix4 copies R, G, B from 4-samples-per-pixel rows of sample size ss bytes
	// (big-endian when ss == 2, so the first byte is the high byte).
	pix4 := func(pix []uint8, stride, ss int) RGB {
		out := grow(buf, 3*w*h)
		for y := 0; y < h; y++ {
			row := pix[y*stride : y*stride+4*ss*w]
			o := out[3*w*y : 3*w*(y+1)]
			for x := 0; x < w; x++ {
				s := row[4*ss*x:]
				o[3*x], o[3*x+1], o[3*x+2] = s[0], s[ss], s[2*ss]
			}
		}
		return RGB{w, h, out}
	}
	switch im := gi.(type) {
	case *image.NRGBA:
		return pix4(im.Pix, im.Stride, 1), nil
	case *image.RGBA: // only produced here for opaque pixels (alpha 0xff)
		return pix4(im.Pix, im.Stride, 1), nil
	case *image.NRGBA64:
		return pix4(im.Pix, im.Stride, 2), nil
	case *image.RGBA64:
		return pix4(im.Pix, im.Stride, 2), nil
	case *image.Gray:
		out := grow(buf, 3*w*h)
		for y := 0; y < h; y++ {
			row := im.Pix[y*im.Stride : y*im.Stride+w]
			o := out[3*w*y : 3*w*(y+1)]
			for x, v := range row {
				o[3*x], o[3*x+1], o[3*x+2] = v, v, v
			}
		}
		return RGB{w, h, out}, nil
	case *image.Paletted:
		return palettedToRGB(im, len(im.Palette), buf), nil
	case *image.YCbCr:
		return webpYCbCrToRGB(im, buf)
	case *image.NYCbCrA:
		return webpYCbCrToRGB(&im.YCbCr, buf)
	}
	return RGB{}, fmt.Errorf("unexpected decoded image type %T", gi)
}

package chaos

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
)

// UniformJPEG encodes a w×h JPEG of one grey level. Every 8×8 block of a
// uniform image has the same DC value and no AC terms, so the file is a few
// bits per block (8000×8000: under 1 MB) while its header claims the full
// size: the "small file, huge decode" probe of issue 15 item 3, built with
// the standard encoder so that it is a valid image and not a truncated one.
func UniformJPEG(w, h int) ([]byte, error) {
	if w <= 0 || h <= 0 || w > 65535 || h > 65535 {
		return nil, fmt.Errorf("JPEG size %dx%d: each side must be 1..65535", w, h)
	}
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 128
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 50}); err != nil {
		return nil, fmt.Errorf("encoding %dx%d JPEG: %w", w, h, err)
	}
	return buf.Bytes(), nil
}

// PhotoJPEG encodes a w×h colour JPEG with gradients (seeded by k), a
// stand-in for a photo in good requests.
func PhotoJPEG(w, h, k int) ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x*(k+1) + y), uint8(y*2 + 40*k), uint8((x + y) / 3), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		return nil, fmt.Errorf("encoding %dx%d JPEG: %w", w, h, err)
	}
	return buf.Bytes(), nil
}

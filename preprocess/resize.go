package preprocess

/*
#cgo CFLAGS: -O3
#include "resample.h"
*/
import "C"

import (
	"fmt"
	"math"
	"unsafe"
)

// This file is Pillow's BICUBIC resampler (libImaging/Resample.c), rewritten:
// Keys' cubic with a = -0.5 and support 2 scaled by the downscale factor,
// float64 weights normalised per output pixel and quantised to Q22 fixed
// point, a horizontal pass then a vertical pass, each rounding and clipping to
// 8 bits. See docs/pil-preprocessing.md §1 for the derivation. The weights are
// computed here; the passes that apply them are resample.c's.

const precisionBits = 32 - 8 - 2 // 22

// cubic is the bicubic kernel with a = -0.5, in Pillow's operation order.
// Every product that feeds an addition is wrapped in float64() so the Go
// compiler cannot fuse it into an FMA, which would round differently.
func cubic(x float64) float64 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return float64(float64(float64((a+2)*x)-(a+3))*x)*x + 1
	}
	if x < 2 {
		return float64(float64(float64(float64(x-5)*x)+8)*x-4) * a
	}
	return 0
}

// axisCoeffs are the taps of one axis: output i reads n[i] source samples from
// min[i] on, with Q22 weights k[i*stride : i*stride+n[i]].
type axisCoeffs struct {
	min, n []int32
	k      []int32
	stride int
}

// precompute is Resample.c's precompute_coeffs + normalize_coeffs_8bpc for the
// default box (0, inSize).
func precompute(inSize, outSize int) axisCoeffs {
	scale := float64(inSize) / float64(outSize)
	filterscale := scale
	if filterscale < 1 {
		filterscale = 1
	}
	support := 2.0 * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	ss := 1.0 / filterscale
	c := axisCoeffs{
		min:    make([]int32, outSize),
		n:      make([]int32, outSize),
		k:      make([]int32, outSize*ksize),
		stride: ksize,
	}
	w := make([]float64, ksize)
	for xx := 0; xx < outSize; xx++ {
		center := float64(float64(xx)+0.5) * scale
		xmin := int(center - support + 0.5) // C (int) cast truncates toward zero
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		n := xmax - xmin
		if n > ksize { // cannot happen (|center ± support| rounding), but keep memory safe
			n = ksize
		}
		ww := 0.0
		for i := 0; i < n; i++ {
			v := cubic(float64((float64(i+xmin)-center)+0.5) * ss)
			w[i] = v
			ww += v
		}
		k := c.k[xx*ksize : xx*ksize+n]
		for i := 0; i < n; i++ {
			v := w[i]
			if ww != 0 {
				v /= ww
			}
			// Round half away from zero, as (int)(0.5 + w * (1 << 22)) with the
			// sign handled like Pillow (the product by 2^22 is exact).
			if v < 0 {
				k[i] = int32(float64(v*(1<<precisionBits)) - 0.5)
			} else {
				k[i] = int32(float64(v*(1<<precisionBits)) + 0.5)
			}
		}
		c.min[xx], c.n[xx] = int32(xmin), int32(n)
	}
	return c
}

// resample runs Pillow's two passes from src to a w×h image and hands each
// finished output row, top to bottom, to emit. tmp, acc and out are scratch:
// the horizontal pass's rows, the vertical pass's sums, the output image. The
// passes are resample.c's (one call each, whatever the size).
func resample(src RGB, w, h int, tmp *[]uint8, acc *[]int32, out *[]uint8, emit func(y int, row []uint8)) {
	resamplePasses(src, w, h, tmp, acc, out, true, emit)
}

// resamplePasses is resample with resample.c's vector paths allowed (simd) or
// not: the results are the same, which the tests check.
func resamplePasses(src RGB, w, h int, tmp *[]uint8, acc *[]int32, out *[]uint8, simd bool, emit func(y int, row []uint8)) {
	vec := C.int(0)
	if simd {
		vec = 1
	}
	needH := w != src.Width
	needV := h != src.Height
	if !needH && !needV {
		for y := 0; y < h; y++ {
			emit(y, src.Pix[3*w*y:3*w*(y+1)])
		}
		return
	}
	var cv axisCoeffs
	rows := src.Pix
	y0, y1 := 0, h // the source rows the vertical pass reads (all of them when it does not run)
	if needV {
		cv = precompute(src.Height, h)
		y0, y1 = int(cv.min[0]), int(cv.min[h-1]+cv.n[h-1])
		for i := range cv.min {
			cv.min[i] -= int32(y0)
		}
	}
	if needH {
		ch := precompute(src.Width, w)
		dst := tmp
		if !needV {
			dst = out
		}
		rows = grow(dst, 3*w*(y1-y0))
		C.ofa_resample_h(u8p(src.Pix[3*src.Width*y0:]), C.size_t(3*src.Width), C.int(y1-y0), C.int(src.Width),
			u8p(rows), C.size_t(3*w), C.int(w), i32p(ch.min), i32p(ch.n), i32p(ch.k), C.int(ch.stride), vec)
	}
	if needV {
		res := grow(out, 3*w*h)
		if cap(*acc) < 3*w {
			*acc = make([]int32, 3*w)
		}
		C.ofa_resample_v(u8p(rows), C.size_t(3*w), u8p(res), C.size_t(3*w), C.int(3*w), C.int(h),
			i32p(cv.min), i32p(cv.n), i32p(cv.k), C.int(cv.stride), i32p(*acc), vec)
		rows = res
	}
	for y := 0; y < h; y++ {
		emit(y, rows[3*w*y:3*w*(y+1)])
	}
}

// u8p and i32p pass a non-empty Go slice's first element to C.
func u8p(b []uint8) *C.uint8_t  { return (*C.uint8_t)(unsafe.Pointer(&b[0])) }
func i32p(b []int32) *C.int32_t { return (*C.int32_t)(unsafe.Pointer(&b[0])) }

// Resize returns the image resampled to w×h exactly as Pillow's
// Image.resize((w, h), Image.BICUBIC) does for an RGB image. Sizes must be
// positive.
func (img *RGB) Resize(w, h int) (*RGB, error) {
	if err := checkTarget(w, h); err != nil {
		return nil, err
	}
	if img.Width <= 0 || img.Height <= 0 || len(img.Pix) < 3*img.Width*img.Height {
		return nil, fmt.Errorf("preprocess: invalid source image %dx%d with %d bytes", img.Width, img.Height, len(img.Pix))
	}
	out := &RGB{Width: w, Height: h, Pix: make([]uint8, 3*w*h)}
	var tmp, row []uint8
	var acc []int32
	resample(*img, w, h, &tmp, &acc, &row, func(y int, r []uint8) {
		copy(out.Pix[3*w*y:3*w*(y+1)], r)
	})
	return out, nil
}

// maxTarget bounds a resize target (a model input, not a photo).
const maxTarget = 1 << 14

func checkTarget(w, h int) error {
	if w <= 0 || h <= 0 || w > maxTarget || h > maxTarget {
		return fmt.Errorf("preprocess: invalid target size %dx%d (each side must be in 1..%d)", w, h, maxTarget)
	}
	return nil
}

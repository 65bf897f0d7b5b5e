package preprocess

import (
	"fmt"
	"math"
)

// This file is Pillow's BICUBIC resampler (libImaging/Resample.c), rewritten:
// Keys' cubic with a = -0.5 and support 2 scaled by the downscale factor,
// float64 weights normalised per output pixel and quantised to Q22 fixed
// point, a horizontal pass then a vertical pass, each rounding and clipping to
// 8 bits. See docs/pil-preprocessing.md §1 for the derivation.

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
	min, n []int
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
		min:    make([]int, outSize),
		n:      make([]int, outSize),
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
		c.min[xx], c.n[xx] = xmin, n
	}
	return c
}

// clip8 turns a Q22 accumulator (with the 1<<21 rounding bias added) into a byte.
func clip8(acc int32) uint8 {
	v := acc >> precisionBits
	if uint32(v) > 255 {
		if v < 0 {
			return 0
		}
		return 255
	}
	return uint8(v)
}

// padded returns the coefficients laid out for the horizontal pass's fast
// path: every output reads exactly stride source pixels from min[i], the real
// taps placed at their offset and zeros around them (adding p*0 changes no
// sum, so the result is identical). Needs inSize >= stride.
func (c *axisCoeffs) padded(inSize int) axisCoeffs {
	p := axisCoeffs{min: make([]int, len(c.min)), n: make([]int, len(c.n)), k: make([]int32, len(c.k)), stride: c.stride}
	for i := range c.min {
		s := c.min[i]
		if s > inSize-c.stride {
			s = inSize - c.stride
		}
		off := c.min[i] - s
		copy(p.k[i*c.stride+off:], c.k[i*c.stride:i*c.stride+c.n[i]])
		p.min[i], p.n[i] = s, c.stride
	}
	return p
}

// horizontalRow resamples one packed-RGB row.
func horizontalRow(dst, src []uint8, c *axisCoeffs) {
	switch {
	case c.stride == 5 && c.n[0] == 5:
		horizontalRowN(dst, src, c, 5)
		return
	case c.stride == 7 && c.n[0] == 7:
		horizontalRowN(dst, src, c, 7)
		return
	}
	for xx := range c.min {
		n := c.n[xx]
		k := c.k[xx*c.stride : xx*c.stride+n]
		p := src[3*c.min[xx] : 3*(c.min[xx]+n)]
		r, g, b := int32(1<<(precisionBits-1)), int32(1<<(precisionBits-1)), int32(1<<(precisionBits-1))
		for i, kv := range k {
			q := p[3*i : 3*i+3 : 3*i+3]
			r += int32(q[0]) * kv
			g += int32(q[1]) * kv
			b += int32(q[2]) * kv
		}
		d := dst[3*xx : 3*xx+3 : 3*xx+3]
		d[0], d[1], d[2] = clip8(r), clip8(g), clip8(b)
	}
}

// horizontalRowN is the unrolled fast path over padded coefficients with
// exactly n (5 or 7: upscaling, and downscaling by up to 1.5) taps each.
func horizontalRowN(dst, src []uint8, c *axisCoeffs, n int) {
	const half = int32(1 << (precisionBits - 1))
	for xx, m := range c.min {
		if n == 5 {
			k := c.k[xx*5 : xx*5+5 : xx*5+5]
			p := src[3*m : 3*m+15 : 3*m+15]
			k0, k1, k2, k3, k4 := k[0], k[1], k[2], k[3], k[4]
			r := half + int32(p[0])*k0 + int32(p[3])*k1 + int32(p[6])*k2 + int32(p[9])*k3 + int32(p[12])*k4
			g := half + int32(p[1])*k0 + int32(p[4])*k1 + int32(p[7])*k2 + int32(p[10])*k3 + int32(p[13])*k4
			b := half + int32(p[2])*k0 + int32(p[5])*k1 + int32(p[8])*k2 + int32(p[11])*k3 + int32(p[14])*k4
			d := dst[3*xx : 3*xx+3 : 3*xx+3]
			d[0], d[1], d[2] = clip8(r), clip8(g), clip8(b)
			continue
		}
		k := c.k[xx*7 : xx*7+7 : xx*7+7]
		p := src[3*m : 3*m+21 : 3*m+21]
		k0, k1, k2, k3, k4, k5, k6 := k[0], k[1], k[2], k[3], k[4], k[5], k[6]
		r := half + int32(p[0])*k0 + int32(p[3])*k1 + int32(p[6])*k2 + int32(p[9])*k3 + int32(p[12])*k4 + int32(p[15])*k5 + int32(p[18])*k6
		g := half + int32(p[1])*k0 + int32(p[4])*k1 + int32(p[7])*k2 + int32(p[10])*k3 + int32(p[13])*k4 + int32(p[16])*k5 + int32(p[19])*k6
		b := half + int32(p[2])*k0 + int32(p[5])*k1 + int32(p[8])*k2 + int32(p[11])*k3 + int32(p[14])*k4 + int32(p[17])*k5 + int32(p[20])*k6
		d := dst[3*xx : 3*xx+3 : 3*xx+3]
		d[0], d[1], d[2] = clip8(r), clip8(g), clip8(b)
	}
}

// verticalRow computes output row yy from the rows of src (stride bytes each).
func verticalRow(dst, src []uint8, stride int, c *axisCoeffs, yy int, acc []int32) {
	n := c.n[yy]
	k := c.k[yy*c.stride : yy*c.stride+n]
	base := c.min[yy]
	acc = acc[:len(dst)]
	for i := range acc {
		acc[i] = 1 << (precisionBits - 1)
	}
	for i, kv := range k {
		row := src[(base+i)*stride : (base+i)*stride+len(dst)]
		row = row[:len(acc)]
		for j, p := range row {
			acc[j] += int32(p) * kv
		}
	}
	for j, a := range acc {
		dst[j] = clip8(a)
	}
}

// resample runs Pillow's two passes from src to a w×h image and hands each
// finished output row, top to bottom, to emit. tmp and acc are scratch.
func resample(src RGB, w, h int, tmp *[]uint8, acc *[]int32, row *[]uint8, emit func(y int, row []uint8)) {
	needH := w != src.Width
	needV := h != src.Height
	var ch, cv axisCoeffs
	if needH {
		ch = precompute(src.Width, w)
		if (ch.stride == 5 || ch.stride == 7) && src.Width >= ch.stride {
			ch = ch.padded(src.Width)
		}
	}
	if needV {
		cv = precompute(src.Height, h)
	}
	switch {
	case !needH && !needV:
		for y := 0; y < h; y++ {
			emit(y, src.Pix[3*w*y:3*w*(y+1)])
		}
	case needH && !needV:
		out := grow(row, 3*w)
		for y := 0; y < h; y++ {
			horizontalRow(out, src.Pix[3*src.Width*y:3*src.Width*(y+1)], &ch)
			emit(y, out)
		}
	default:
		mid, midW := src.Pix, src.Width
		if needH {
			// Only the source rows the vertical pass reads.
			y0 := cv.min[0]
			y1 := cv.min[h-1] + cv.n[h-1]
			mid = grow(tmp, 3*w*(y1-y0))
			for y := y0; y < y1; y++ {
				horizontalRow(mid[3*w*(y-y0):3*w*(y-y0+1)], src.Pix[3*src.Width*y:3*src.Width*(y+1)], &ch)
			}
			for i := range cv.min {
				cv.min[i] -= y0
			}
			midW = w
		}
		out := grow(row, 3*midW)
		if cap(*acc) < 3*midW {
			*acc = make([]int32, 3*midW)
		}
		for y := 0; y < h; y++ {
			verticalRow(out, mid, 3*midW, &cv, y, *acc)
			emit(y, out)
		}
	}
}

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

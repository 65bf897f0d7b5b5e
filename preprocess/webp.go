package preprocess

import (
	"fmt"
	"image"
)

// webpYCbCrToRGB converts a lossy WebP frame (4:2:0 YUV planes from
// x/image/webp's VP8 decoder) to RGB the way libwebp does by default, which is
// what PIL gets: "fancy" chroma upsampling (each chroma sample weighted
// 9:3:3:1 with its neighbours, computed with libwebp's integer shortcuts) and
// libwebp's 14-bit fixed-point BT.601 conversion.
func webpYCbCrToRGB(im *image.YCbCr, buf *[]uint8) (RGB, error) {
	if im.SubsampleRatio != image.YCbCrSubsampleRatio420 {
		return RGB{}, fmt.Errorf("unexpected WebP chroma subsampling %v", im.SubsampleRatio)
	}
	b := im.Bounds()
	w, h := b.Dx(), b.Dy()
	out := grow(buf, 3*w*h)
	yrow := func(y int) []uint8 { return im.Y[y*im.YStride : y*im.YStride+w] }
	cw := (w + 1) / 2
	urow := func(y int) []uint8 { return im.Cb[y*im.CStride : y*im.CStride+cw] }
	vrow := func(y int) []uint8 { return im.Cr[y*im.CStride : y*im.CStride+cw] }
	orow := func(y int) []uint8 { return out[3*w*y : 3*w*(y+1)] }

	// Row 0 uses chroma row 0 for both neighbours.
	upsamplePair(yrow(0), nil, urow(0), vrow(0), urow(0), vrow(0), orow(0), nil, w)
	// Rows 2k-1 and 2k use chroma rows k-1 (top) and k (current).
	y := 1
	for ; y+1 < h; y += 2 {
		k := (y + 1) / 2
		upsamplePair(yrow(y), yrow(y+1), urow(k-1), vrow(k-1), urow(k), vrow(k), orow(y), orow(y+1), w)
	}
	if y < h { // even height: the last row uses the last chroma row for both
		k := (h - 1) / 2
		upsamplePair(yrow(y), nil, urow(k), vrow(k), urow(k), vrow(k), orow(y), nil, w)
	}
	return RGB{w, h, out}, nil
}

// upsamplePair is libwebp's UpsampleRgbLinePair: two luma rows (bottom may be
// nil) between chroma rows top (t*) and current (c*).
func upsamplePair(topY, botY, tu, tv, cu, cv, topDst, botDst []uint8, n int) {
	last := (n - 1) >> 1
	tlU, tlV := int32(tu[0]), int32(tv[0])
	lU, lV := int32(cu[0]), int32(cv[0])
	yuvToRGB(topY[0], (3*tlU+lU+2)>>2, (3*tlV+lV+2)>>2, topDst[0:3])
	if botY != nil {
		yuvToRGB(botY[0], (3*lU+tlU+2)>>2, (3*lV+tlV+2)>>2, botDst[0:3])
	}
	for x := 1; x <= last; x++ {
		tU, tV := int32(tu[x]), int32(tv[x])
		U, V := int32(cu[x]), int32(cv[x])
		avgU := tlU + tU + lU + U + 8
		avgV := tlV + tV + lV + V + 8
		d12U, d12V := (avgU+2*(tU+lU))>>3, (avgV+2*(tV+lV))>>3
		d03U, d03V := (avgU+2*(tlU+U))>>3, (avgV+2*(tlV+V))>>3
		i0, i1 := 2*x-1, 2*x
		yuvToRGB(topY[i0], (d12U+tlU)>>1, (d12V+tlV)>>1, topDst[3*i0:3*i0+3])
		yuvToRGB(topY[i1], (d03U+tU)>>1, (d03V+tV)>>1, topDst[3*i1:3*i1+3])
		if botY != nil {
			yuvToRGB(botY[i0], (d03U+lU)>>1, (d03V+lV)>>1, botDst[3*i0:3*i0+3])
			yuvToRGB(botY[i1], (d12U+U)>>1, (d12V+V)>>1, botDst[3*i1:3*i1+3])
		}
		tlU, tlV, lU, lV = tU, tV, U, V
	}
	if n&1 == 0 {
		i := n - 1
		yuvToRGB(topY[i], (3*tlU+lU+2)>>2, (3*tlV+lV+2)>>2, topDst[3*i:3*i+3])
		if botY != nil {
			yuvToRGB(botY[i], (3*lU+tlU+2)>>2, (3*lV+tlV+2)>>2, botDst[3*i:3*i+3])
		}
	}
}

// yuvToRGB is libwebp's VP8YuvToRgb (yuv.h, YUV_FIX2 = 6).
func yuvToRGB(y uint8, u, v int32, dst []uint8) {
	yy := multHi(int32(y), 19077)
	dst[0] = clip8webp(yy + multHi(v, 26149) - 14234)
	dst[1] = clip8webp(yy - multHi(u, 6419) - multHi(v, 13320) + 8708)
	dst[2] = clip8webp(yy + multHi(u, 33050) - 17685)
}

func multHi(v, c int32) int32 { return (v * c) >> 8 }

func clip8webp(v int32) uint8 {
	const mask = (256 << 6) - 1
	if v&^mask == 0 {
		return uint8(v >> 6)
	}
	if v < 0 {
		return 0
	}
	return 255
}

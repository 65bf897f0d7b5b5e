// resample.h: the two passes of Pillow's 8-bit resampler (libImaging/Resample.c ImagingResampleHorizontal_8bpc
// and ImagingResampleVertical_8bpc for packed RGB), in C because they are most of a request's host time.
//
// Conventions, for every function here:
//   - Images are packed 8-bit RGB, rows top to bottom, `stride` bytes from one row's start to the next.
//   - Coefficients are what resize.go's precompute computes: output i reads `n[i]` source samples from
//     `min[i]` on, with Q22 fixed-point weights `k[i*kstride .. i*kstride + n[i])`. Each sum starts at
//     1 << 21 (rounding), adds sample * weight in int32, and is shifted right by 22 and clipped to 0..255,
//     exactly as Pillow does: the results are Pillow's bit for bit on every CPU, whichever path runs.
//   - The caller owns every buffer and guarantees its size; nothing allocates, nothing fails, nothing keeps
//     a pointer after it returns. Loads and stores stay inside the rows the arguments describe.
//   - With `simd` nonzero, on x86-64 with AVX2 (checked at run time), the horizontal pass computes two rows
//     at once and the vertical pass is vectorized by the compiler for AVX2; otherwise, and elsewhere, the
//     same arithmetic runs as plain C (the tests compare the two).
#ifndef OFASERVE_RESAMPLE_H
#define OFASERVE_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

// ofa_resample_h resamples `rows` rows of `in_w` pixels (src, src_stride) to `out_w` pixels each (dst,
// dst_stride) with the coefficients (xmin, xn, k, kstride) of that axis.
void ofa_resample_h(const uint8_t *src, size_t src_stride, int rows, int in_w, uint8_t *dst, size_t dst_stride,
                    int out_w, const int32_t *xmin, const int32_t *xn, const int32_t *k, int kstride, int simd);

// ofa_resample_v computes `out_h` output rows of `width` bytes (3 per pixel) into dst (dst_stride) from the
// rows of src (src_stride) with the coefficients (ymin, yn, k, kstride) of that axis; acc is scratch for
// `width` sums.
void ofa_resample_v(const uint8_t *src, size_t src_stride, uint8_t *dst, size_t dst_stride, int width, int out_h,
                    const int32_t *ymin, const int32_t *yn, const int32_t *k, int kstride, int32_t *acc,
                    int simd);

#endif

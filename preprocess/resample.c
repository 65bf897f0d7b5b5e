// resample.c: the passes declared in resample.h. Read the conventions there first.
#include "resample.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define OFA_X86 1
#endif

#define OFA_PRECISION_BITS 22
#define OFA_HALF (1 << (OFA_PRECISION_BITS - 1))

static inline uint8_t clip8(int32_t acc) {
	int32_t v = acc >> OFA_PRECISION_BITS;
	return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

// pixel_h computes one output pixel of the horizontal pass from the taps at p.
static inline void pixel_h(const uint8_t *p, const int32_t *k, int n, uint8_t *d) {
	int32_t r = OFA_HALF, g = OFA_HALF, b = OFA_HALF;
	for (int i = 0; i < n; i++) {
		int32_t c = k[i];
		r += p[3 * i] * c;
		g += p[3 * i + 1] * c;
		b += p[3 * i + 2] * c;
	}
	d[0] = clip8(r);
	d[1] = clip8(g);
	d[2] = clip8(b);
}

static void rows_h(const uint8_t *src, size_t src_stride, int rows, uint8_t *dst, size_t dst_stride, int out_w,
                   const int32_t *xmin, const int32_t *xn, const int32_t *k, int kstride) {
	for (int y = 0; y < rows; y++) {
		const uint8_t *s = src + (size_t)y * src_stride;
		uint8_t *d = dst + (size_t)y * dst_stride;
		for (int x = 0; x < out_w; x++) {
			pixel_h(s + 3 * (size_t)xmin[x], k + (size_t)x * kstride, xn[x], d + 3 * (size_t)x);
		}
	}
}

// rows_v is the vertical pass. It is always inlined, so that vertical_avx2 below compiles its loops for AVX2
// (a function without a target may be inlined into one with it; the reverse is refused).
static inline __attribute__((always_inline)) void rows_v(const uint8_t *src, size_t src_stride, uint8_t *dst,
                                                         size_t dst_stride, int width, int out_h,
                                                         const int32_t *ymin, const int32_t *yn, const int32_t *k,
                                                         int kstride, int32_t *acc) {
	for (int y = 0; y < out_h; y++) {
		const int32_t *kk = k + (size_t)y * kstride;
		const uint8_t *base = src + (size_t)ymin[y] * src_stride;
		for (int j = 0; j < width; j++) acc[j] = OFA_HALF;
		for (int i = 0; i < yn[y]; i++) {
			const uint8_t *row = base + (size_t)i * src_stride;
			int32_t c = kk[i];
			for (int j = 0; j < width; j++) acc[j] += row[j] * c;
		}
		uint8_t *d = dst + (size_t)y * dst_stride;
		for (int j = 0; j < width; j++) d[j] = clip8(acc[j]);
	}
}

#ifdef OFA_X86
static inline uint32_t load32(const uint8_t *p) {
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

__attribute__((target("avx2"))) static void vertical_avx2(const uint8_t *src, size_t src_stride, uint8_t *dst,
                                                          size_t dst_stride, int width, int out_h,
                                                          const int32_t *ymin, const int32_t *yn,
                                                          const int32_t *k, int kstride, int32_t *acc) {
	rows_v(src, src_stride, dst, dst_stride, width, out_h, ymin, yn, k, kstride, acc);
}

// rows_h_avx2 computes rows y and y+1 together: one 256-bit sum holds the R, G, B (and one unused) lanes of
// an output pixel of row y in its low half and of row y+1 in its high half, so each tap is one multiply-add
// with the tap's weight in every lane. A tap is loaded as 4 bytes (its pixel and the next sample), so a
// pixel whose taps reach the row's last source pixel, and the row's last output (stored as 3 bytes), take
// the plain path; every other 4-byte load and store stays inside its row.
__attribute__((target("avx2"))) static void rows_h_avx2(const uint8_t *src, size_t src_stride, int rows, int in_w,
                                                        uint8_t *dst, size_t dst_stride, int out_w,
                                                        const int32_t *xmin, const int32_t *xn,
                                                        const int32_t *k, int kstride) {
	int y = 0;
	for (; y + 1 < rows; y += 2) {
		const uint8_t *s = src + (size_t)y * src_stride;
		uint8_t *d = dst + (size_t)y * dst_stride;
		for (int x = 0; x < out_w; x++) {
			const uint8_t *p = s + 3 * (size_t)xmin[x];
			const int32_t *kk = k + (size_t)x * kstride;
			int n = xn[x];
			if (xmin[x] + n >= in_w || x == out_w - 1) {
				pixel_h(p, kk, n, d + 3 * (size_t)x);
				pixel_h(p + src_stride, kk, n, d + dst_stride + 3 * (size_t)x);
				continue;
			}
			__m256i sum = _mm256_set1_epi32(OFA_HALF);
			for (int i = 0; i < n; i++) {
				__m128i two = _mm_insert_epi32(_mm_cvtsi32_si128((int)load32(p + 3 * i)),
				                               (int)load32(p + src_stride + 3 * i), 1);
				sum = _mm256_add_epi32(sum, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(two), _mm256_set1_epi32(kk[i])));
			}
			sum = _mm256_srai_epi32(sum, OFA_PRECISION_BITS);
			__m128i lo = _mm256_castsi256_si128(sum), hi = _mm256_extracti128_si256(sum, 1);
			// Saturating packs clip to 0..255 as clip8 does (a shifted sum is within -512..511).
			__m128i px = _mm_packus_epi16(_mm_packs_epi32(lo, hi), lo);
			uint32_t v0 = (uint32_t)_mm_cvtsi128_si32(px), v1 = (uint32_t)_mm_extract_epi32(px, 1);
			// The fourth byte lands on the next output's first byte, which is written after this one.
			memcpy(d + 3 * (size_t)x, &v0, 4);
			memcpy(d + dst_stride + 3 * (size_t)x, &v1, 4);
		}
	}
	if (y < rows) {
		rows_h(src + (size_t)y * src_stride, src_stride, rows - y, dst + (size_t)y * dst_stride, dst_stride, out_w,
		       xmin, xn, k, kstride);
	}
}

static int have_avx2(void) { return __builtin_cpu_supports("avx2"); }
#endif

void ofa_resample_h(const uint8_t *src, size_t src_stride, int rows, int in_w, uint8_t *dst, size_t dst_stride,
                    int out_w, const int32_t *xmin, const int32_t *xn, const int32_t *k, int kstride, int simd) {
#ifdef OFA_X86
	if (simd && have_avx2()) {
		rows_h_avx2(src, src_stride, rows, in_w, dst, dst_stride, out_w, xmin, xn, k, kstride);
		return;
	}
#else
	(void)simd;
#endif
	(void)in_w;
	rows_h(src, src_stride, rows, dst, dst_stride, out_w, xmin, xn, k, kstride);
}

void ofa_resample_v(const uint8_t *src, size_t src_stride, uint8_t *dst, size_t dst_stride, int width, int out_h,
                    const int32_t *ymin, const int32_t *yn, const int32_t *k, int kstride, int32_t *acc, int simd) {
#ifdef OFA_X86
	if (simd && have_avx2()) {
		vertical_avx2(src, src_stride, dst, dst_stride, width, out_h, ymin, yn, k, kstride, acc);
		return;
	}
#else
	(void)simd;
#endif
	rows_v(src, src_stride, dst, dst_stride, width, out_h, ymin, yn, k, kstride, acc);
}

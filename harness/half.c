/* half.c - row conversions f16/bf16 -> f32.
 * With F16C (f16) or AVX2 (bf16) eight values convert per instruction; the
 * tail and other CPUs use the scalar functions from half.h, whose results
 * are bit-identical (see the NaN policy there). */
#include "half.h"

#if defined(__F16C__) || defined(__AVX2__)
#include <immintrin.h>
#endif

void sb_f16_to_f32_row(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
#ifdef __F16C__
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#endif
    for (; i < n; i++) dst[i] = sb_f16_to_f32(src[i]);
}

void sb_bf16_to_f32_row(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
#ifdef __AVX2__
    for (; i + 8 <= n; i += 8) {
        __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
#endif
    for (; i < n; i++) dst[i] = sb_bf16_to_f32(src[i]);
}

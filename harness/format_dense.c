/* format_dense.c - unquantized weights: f32, f16 and bf16.
 *
 * f32 goes to CBLAS directly (from the mapped file when the checkpoint is
 * f32).  f16 and bf16 stay in their 2-byte form and are decoded tile by
 * tile inside the product, so a half-precision checkpoint costs half the
 * memory of an f32 one. */
#include "half.h"
#include "weight_format.h"

static void f32_decode_rows(const sb_linear *w, int64_t row0, int64_t n_rows, float *dst) {
    const float *src = (const float *)w->data + row0 * w->cols;
    for (int64_t i = 0; i < n_rows * w->cols; i++) dst[i] = src[i];
}

static uint64_t bits_32(const sb_linear *w) { return 32u * (uint64_t)w->rows * (uint64_t)w->cols; }
static uint64_t bits_16(const sb_linear *w) { return 16u * (uint64_t)w->rows * (uint64_t)w->cols; }

static void f16_decode_rows(const sb_linear *w, int64_t row0, int64_t n_rows, float *dst) {
    sb_f16_to_f32_row((const uint16_t *)w->data + row0 * w->cols, dst, n_rows * w->cols);
}

static void bf16_decode_rows(const sb_linear *w, int64_t row0, int64_t n_rows, float *dst) {
    sb_bf16_to_f32_row((const uint16_t *)w->data + row0 * w->cols, dst, n_rows * w->cols);
}

const sb_format sb_format_f32 = {"f32", f32_decode_rows, sb_matmul_f32_slices, bits_32};
const sb_format sb_format_f16 = {"f16", f16_decode_rows, sb_matmul_by_decoding, bits_16};
const sb_format sb_format_bf16 = {"bf16", bf16_decode_rows, sb_matmul_by_decoding, bits_16};

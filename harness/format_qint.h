/* format_qint.h - grouped integer quantization, bit-packed for real.
 *
 * W[r][c] = scale[r][g] * (q[r][c] - zero[r][g]),  g = c / group_size,
 * with q an unsigned code of b bits (1..8).  Each (row, group) pair may
 * have its own width b (mixed precision, SliM-LLM) or all share one.
 * Symmetric layers store no zeros: a group of b bits has the implied zero
 * 2^(b-1) = (maxq + 1) / 2, as in the GPTQ quantizer (METHODS.md).
 * 1-bit groups are binarized groups mu ± alpha (SliM-LLM's 1-bit groups):
 * scale = 2·alpha and a fractional zero 1/2 - mu/scale, so they need an
 * asymmetric layer (stored zeros); every other width has integer zeros.
 * group_size = cols is per-channel quantization.
 *
 * Payload: one owned allocation, 64-byte aligned, laid out as
 *
 *   offset 0             sb_qint_header (fixed size, 64-byte multiple; not counted as storage)
 *   codes_off            codes: uint64 words.  Row r's codes are one little-endian
 *                        bit stream: code c occupies bits [off_c, off_c + b) where
 *                        off_c = sum of the widths of the codes before it in the row,
 *                        bit k of the stream being bit (k % 64) of word k / 64.
 *                        Every row starts on a fresh word (the last word zero-padded),
 *                        so rows of equal length (uniform width, or mixed widths
 *                        adding up to the same words in every row) have a fixed
 *                        stride of row_words.
 *                        One zero guard word follows the last row, so the product may
 *                        read 8 bytes at any code position without leaving the array.
 *   row_off_off          only when rows differ in length: uint64 [rows], word index where row r starts
 *   scales_off           f16 [rows * n_groups], row-major (row r, group g at r*n_groups+g)
 *   zeros_off            asymmetric only: f16 [rows * n_groups], small integers, exact in f16
 *   group_bits_off       mixed only: 4-bit widths [rows * n_groups], two per byte,
 *                        entry i in the low nibble of byte i/2 when i is even, else the high
 *
 * The arrays follow each other with no gaps (each starts at an offset
 * that is a multiple of its element size because they are in order of
 * decreasing alignment).  storage_bits is exactly 8 x the bytes of these
 * arrays: codes with row padding and the guard word, row offsets, scales,
 * zeros, widths.  The header (dimensions and offsets, kept in the payload
 * only for convenience) is not counted, as the shape of a dense weight is
 * not counted either.
 *
 *   bits per weight, uniform b, cols a multiple of 64 (any b):
 *     b + 16 / group_size                (symmetric)
 *     b + 32 / group_size                (asymmetric)
 *     + 64 / (rows * cols)               (the guard word)
 *   mixed adds 4 / group_size (widths), and 64 / cols (row offsets) when
 *   rows differ in length.
 *
 * Products: decode_rows dequantizes exactly (one f32 multiply per weight:
 * scale * (q - zero), the same value the quantizer's dequantize gives).
 * Up to 4 tokens, a fused AVX2 kernel reads the packed codes directly
 * (no decoded copy of W ever exists); more tokens decode tiles of rows
 * and hand them to CBLAS (sb_matmul_by_decoding). */
#ifndef SB_FORMAT_QINT_H
#define SB_FORMAT_QINT_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "weight_format.h"

extern const sb_format sb_format_qint; /* name "qint" */

/* Builds a qint linear.
 *   codes      [rows * cols], code of W[r][c] at r*cols + c, each < 2^(its group's width)
 *   scales     [rows * n_groups], n_groups = cols / group_size; stored rounded to f16
 *              (quantize with the f16-rounded scale, see quantizer.h, so the
 *              codes are the nearest points of the grid actually stored)
 *   zeros      [rows * n_groups] integers 0..maxq held in floats (1-bit: any offset), or NULL for a
 *              symmetric layer (implied zero 2^(b-1) of each group's width b)
 *   group_bits NULL: every group has `bits` bits (1..8); else [rows * n_groups]
 *              widths in 1..8 and `bits` is ignored
 *   1-bit groups: zeros required; the group's zero is any finite value,
 *              stored rounded to f16 (round it yourself to code against it)
 * group_size must divide cols (group_size = cols: per channel).  out gets
 * fmt, rows, cols, data and owned; out->bias is NULL (copy the bias
 * yourself).  Bad arguments are SB_EINPUT errors saying which. */
int sb_qint_pack(int64_t rows, int64_t cols, int group_size, int bits, const uint8_t *group_bits,
                 const uint8_t *codes, const float *scales, const float *zeros, sb_linear *out, sb_err *err);

/* Inspecting a qint linear (tests, reports, methods that refine one). */
typedef struct sb_qint_info {
    int64_t rows, cols;
    int group_size, n_groups;
    int bits;            /* the uniform width, or 0 when widths vary per group */
    bool symmetric;      /* no zeros stored */
} sb_qint_info;

/* false when w is not a qint linear. */
bool sb_qint_info_of(const sb_linear *w, sb_qint_info *out);
unsigned sb_qint_code_at(const sb_linear *w, int64_t row, int64_t col);
int sb_qint_bits_at(const sb_linear *w, int64_t row, int group);
float sb_qint_scale_at(const sb_linear *w, int64_t row, int group);  /* the stored f16 value, widened */
float sb_qint_zero_at(const sb_linear *w, int64_t row, int group);   /* stored or implied */

/* Where the arrays of the payload lie (byte offsets from w->data; 0 for an
 * absent array), for a device backend that copies the payload as it is and
 * reads it in place. */
typedef struct sb_qint_layout {
    int64_t rows, cols, row_words;   /* row_words: uniform widths only */
    int group_size, n_groups, bits, symmetric;
    uint64_t codes_off, row_off_off, scales_off, zeros_off, group_bits_off, total_bytes;
} sb_qint_layout;

bool sb_qint_layout_of(const sb_linear *w, sb_qint_layout *out);

#endif

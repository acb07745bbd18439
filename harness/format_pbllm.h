/* format_pbllm.h - partially binarized weights (PB-LLM), packed for real.
 *
 * Each weight is either salient, kept as an 8-bit code of its row's
 * asymmetric grid, or binarized to one of two levels of its (row, group):
 *
 *   W[r][c] = scale8[r]·(q - zero8[r])            when mask[r][c] = 1 (salient)
 *           = mu[r][g] + alpha[r][g]·(2·sign - 1)   otherwise, g = c / group_size
 *
 * group_size = cols is one binarization per row (the authors' default).
 *
 * Payload: one owned allocation, 64-byte aligned:
 *
 *   offset 0        header (fixed size, not counted as storage)
 *   signs_off       uint64 [rows * row_words]: bit c % 64 of word c / 64 of row r is
 *                   the sign bit of W[r][c] (1: +alpha), 0 at salient positions;
 *                   row_words = ceil(cols / 64), the last word zero-padded
 *   mask_off        uint64 [rows * row_words]: the salient mask, the same layout
 *   row_start_off   uint32 [rows + 1]: row r's salient codes are [row_start[r], row_start[r+1])
 *   scale8_off      f16 [rows], zero8_off f16 [rows] (integers 0..255, exact in f16)
 *   alpha_off       f16 [rows * n_groups], mu_off f16 [rows * n_groups]
 *   codes_off       uint8 [n_salient]: the 8-bit codes, row-major, columns ascending
 *
 * storage_bits is exactly 8 x the bytes of these arrays:
 *   2·64·rows·row_words (signs and mask) + 32·(rows + 1) + 8·n_salient
 *   + 32·rows + 32·rows·n_groups,
 * about 2 + 8·r bits per weight for a salient fraction r (the sign bit is
 * kept at salient positions too, so the product needs no prefix counts).
 *
 * Products: decode_rows gives scale8·(q - zero8) or mu ± alpha (one f32
 * operation each, from the f16 values).  One token: a fused AVX2 kernel
 * reads the bits directly: per group alpha·(2·P - N) + mu·N with P the sum
 * of x where the sign bit is set and N the sum of x over binarized
 * positions, plus scale8·Σ (q - zero8)·x over the salient positions found
 * from the mask words.  More tokens decode tiles of rows and hand them to
 * CBLAS (sb_matmul_by_decoding). */
#ifndef SB_FORMAT_PBLLM_H
#define SB_FORMAT_PBLLM_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "weight_format.h"

extern const sb_format sb_format_pbllm; /* name "pbllm" */

/* What a partially binarized layer is made of (row-major arrays). */
typedef struct sb_pbllm_parts {
    int64_t rows, cols;
    int group_size;          /* divides cols; cols: one binarization per row */
    const uint8_t *mask;     /* [rows * cols] 1: salient */
    const uint8_t *signs;    /* [rows * cols] 1: +alpha (read where mask is 0) */
    const uint8_t *codes;    /* [rows * cols] 8-bit codes (read where mask is 1) */
    const float *scale8;     /* [rows] stored rounded to f16 */
    const float *zero8;      /* [rows] integers 0..255 */
    const float *alpha;      /* [rows * n_groups] stored rounded to f16 */
    const float *mu;         /* [rows * n_groups] stored rounded to f16 */
} sb_pbllm_parts;

/* Builds a pbllm linear; out->bias is NULL.  Bad shapes or values (a group
 * size not dividing cols, a zero8 outside 0..255, a value beyond f16) are
 * SB_EINPUT errors saying which. */
int sb_pbllm_pack(const sb_pbllm_parts *p, sb_linear *out, sb_err *err);

/* Salient weights of a pbllm linear; false when w is not one. */
bool sb_pbllm_salient_count(const sb_linear *w, uint64_t *out);

#endif

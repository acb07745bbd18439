/* quantizer.h - the min-max integer quantizer shared by the GPTQ family
 * (RTN, GPTQ, SliM-LLM, PB-LLM's salient part).  METHODS.md, "Quantizer
 * shared by the GPTQ family"; it reproduces IST-DASLab/gptq quant.py
 * (INTQuantizer.find_params with mse=False, and _quantize) in float32.
 *
 * Use:
 *     sb_quantizer q = sb_quantizer_make(bits, symmetric);
 *     sb_qparams p = sb_qparams_storable(sb_quantizer_fit(&q, w + g0, group_size));
 *     uint8_t code = sb_quantizer_code(&q, p, w[c]);      -> into sb_qint_pack
 *     float   wq   = sb_qparams_dequant(p, code);        -> what qint decodes, bit for bit
 *
 * Fitting (slice x[0..n), min-max):
 *   xmin = min(min x, 0), xmax = max(max x, 0)
 *   symmetric: xmax = max(|xmin|, xmax); xmin = -xmax only where xmin < 0
 *              (quant.py's rule: a slice with no negative value keeps xmin = 0,
 *              so its scale is xmax/maxq and codes above the middle are clipped)
 *   xmin = xmax = 0 (an all-zero slice): xmin = -1, xmax = +1, as quant.py does
 *   scale = (xmax - xmin) / maxq,  maxq = 2^bits - 1
 *   zero  = round(-xmin / scale)       (asymmetric)
 *         = (maxq + 1) / 2 = 2^(bits-1) (symmetric)
 * Every step is one float32 operation as in torch, and round() is
 * nearbyintf() under the default rounding mode: round half to even, like
 * torch.round.  (roundf would round halves away from zero and differ.)
 * NaN entries are ignored by the min/max.
 *
 * Storage: format qint keeps scales in f16.  sb_qparams_storable rounds the
 * scale to the nearest f16 (ties to even) and keeps it as a float; code the
 * weights with the storable parameters so that the codes are the nearest
 * points of the grid actually stored and Q(x) below is exactly the weight
 * the product uses (a GPTQ error feedback must see that value).  The zero
 * is fitted with the float32 scale, as in quant.py, before the rounding.
 * A scale that would underflow f16 to 0 becomes the smallest f16 subnormal
 * (2^-24) and one beyond the f16 range the largest f16 (65504).
 *
 * 1 bit (SliM-LLM's 1-bit groups): fitting binarizes instead, mu ± alpha with
 * mu = mean x and alpha = mean |x - mu|, stored as scale = 2·alpha (f16) and
 * zero = 1/2 - mu/scale (f16, fractional; format qint keeps it as is), and
 * code(x) = [x >= scale·(1/2 - zero)], the nearer of the two levels.
 *
 * Coding:   code(x) = clamp(round(x / scale) + zero, 0, maxq)
 * Dequant:  scale * (code - zero)       (exact small integers, one rounding)
 * Q(x) = dequant(code(x)). */
#ifndef SB_QUANTIZER_H
#define SB_QUANTIZER_H

#include <stdbool.h>
#include <stdint.h>

#include "quantizer_math.h" /* sb_qparams and the formulas, shared with the CUDA GPTQ kernel */

typedef struct sb_quantizer {
    int bits;          /* 1..8 (1: binarization, see above) */
    int maxq;          /* 2^bits - 1 */
    bool symmetric;
} sb_quantizer;

sb_quantizer sb_quantizer_make(int bits, bool symmetric);

/* Min-max fit on x[0..n) (one row, or one group of a row). */
sb_qparams sb_quantizer_fit(const sb_quantizer *q, const float *x, int64_t n);
/* The same from a range already found (strided slices, shrunk ranges of
 * an MSE grid search): xmin and xmax are clamped around 0 here. */
sb_qparams sb_quantizer_fit_range(const sb_quantizer *q, float xmin, float xmax);
/* The parameters as format qint stores them (scale rounded to f16). */
sb_qparams sb_qparams_storable(sb_qparams p);

uint8_t sb_quantizer_code(const sb_quantizer *q, sb_qparams p, float x);
float sb_qparams_dequant(sb_qparams p, unsigned code);
/* Q(x) = dequant(code(x)). */
float sb_quantizer_quantize(const sb_quantizer *q, sb_qparams p, float x);

#endif

/* quantizer_math.h - the formulas of the GPTQ family's min-max quantizer
 * (methods/quantizer.h documents them) as inline functions compiled both by
 * the C compiler (methods/quantizer.c) and by nvcc (the CUDA GPTQ kernel,
 * harness/cuda/gptq.cu): one copy, so the device fits, codes, rounds the
 * scale to f16 and dequantizes bit for bit as the CPU does.
 *
 * Every step is one float32 operation, rounded to nearest even; nothing
 * here is an a·b + c that a compiler could contract into an FMA, and the
 * device callers are built without contraction (-fmad=false) so a caller's
 * subtraction is not fused with dequant's product either.  Widths 2..8
 * only: the 1-bit binarization is CPU-only (methods/quantizer.c). */
#ifndef SB_QUANTIZER_MATH_H
#define SB_QUANTIZER_MATH_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "half.h"
#include "hostdev.h"

typedef struct sb_qparams {
    float scale;
    float zero;        /* an integer in 0..maxq, as a float */
} sb_qparams;

/* Parameters from a slice's range (maxq = 2^bits - 1): the range is
 * clamped around 0, made symmetric if asked, widened to [-1, 1] if empty. */
SB_HOSTDEV sb_qparams sb_qmath_fit_range(int maxq, bool symmetric, float xmin, float xmax) {
    xmin = fminf(xmin, 0.0f);
    xmax = fmaxf(xmax, 0.0f);
    if (symmetric) {
        xmax = fmaxf(fabsf(xmin), xmax);
        if (xmin < 0) xmin = -xmax;
    }
    if (xmin == 0 && xmax == 0) xmin = -1, xmax = 1;
    float fmaxq = (float)maxq;
    sb_qparams p;
    p.scale = (xmax - xmin) / fmaxq;
    p.zero = symmetric ? (fmaxq + 1) / 2 : nearbyintf(-xmin / p.scale);
    return p;
}

/* The scale as format qint stores it: the nearest f16, kept off 0 and inf. */
SB_HOSTDEV sb_qparams sb_qmath_storable(sb_qparams p) {
    const float f16_max = 65504.0f, f16_min_subnormal = 0x1p-24f;
    float a = fabsf(p.scale), s = sb_f16_to_f32(sb_f32_to_f16(fminf(a, f16_max)));
    if (s == 0) s = f16_min_subnormal;
    p.scale = copysignf(s, p.scale);
    return p;
}

/* clamp(round(x / scale) + zero, 0, maxq); NaN lands on 0. */
SB_HOSTDEV uint8_t sb_qmath_code(int maxq, sb_qparams p, float x) {
    float v = nearbyintf(x / p.scale) + p.zero;
    if (!(v >= 0)) return 0;
    return v > (float)maxq ? (uint8_t)maxq : (uint8_t)v;
}

/* scale · (code - zero): exact small integers, one rounding. */
SB_HOSTDEV float sb_qmath_dequant(sb_qparams p, unsigned code) { return p.scale * ((float)code - p.zero); }

#endif

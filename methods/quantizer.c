/* quantizer.c - min-max integer quantizer of the GPTQ family (see quantizer.h);
 * the formulas themselves are in harness/quantizer_math.h, shared with CUDA. */
#include <math.h>

#include "half.h"
#include "quantizer.h"

sb_quantizer sb_quantizer_make(int bits, bool symmetric) {
    return (sb_quantizer){.bits = bits, .maxq = (1 << bits) - 1, .symmetric = symmetric};
}

/* 1 bit: mu ± alpha with mu the mean and alpha the mean |x - mu| (the
 * least-squares alpha for the signs of x - mu), as scale = 2·alpha and the
 * fractional zero 1/2 - mu/scale, both already rounded to f16.  alpha is
 * kept above |mu|·2^-8 so that the f16 zero stays small (a constant slice). */
static sb_qparams fit_binary(const float *x, int64_t n) {
    double sum = 0, dev = 0;
    int64_t used = 0;
    for (int64_t i = 0; i < n; i++)
        if (x[i] == x[i]) sum += x[i], used++;
    float mu = used ? (float)(sum / (double)used) : 0;
    for (int64_t i = 0; i < n; i++)
        if (x[i] == x[i]) dev += fabs((double)x[i] - mu);
    float alpha = used ? (float)(dev / (double)used) : 0;
    alpha = fmaxf(alpha, fabsf(mu) * 0x1p-8f);
    sb_qparams p = sb_qparams_storable((sb_qparams){.scale = 2 * alpha, .zero = 0});
    p.zero = sb_f16_to_f32(sb_f32_to_f16(0.5f - mu / p.scale));
    return p;
}

sb_qparams sb_quantizer_fit(const sb_quantizer *q, const float *x, int64_t n) {
    if (q->bits == 1) return fit_binary(x, n);
    float xmin = 0, xmax = 0; /* starting at 0 is the clamp xmin <= 0 <= xmax */
    for (int64_t i = 0; i < n; i++) {
        if (x[i] < xmin) xmin = x[i];
        if (x[i] > xmax) xmax = x[i];
    }
    return sb_quantizer_fit_range(q, xmin, xmax);
}

sb_qparams sb_quantizer_fit_range(const sb_quantizer *q, float xmin, float xmax) {
    return sb_qmath_fit_range(q->maxq, q->symmetric, xmin, xmax);
}

sb_qparams sb_qparams_storable(sb_qparams p) { return sb_qmath_storable(p); }

uint8_t sb_quantizer_code(const sb_quantizer *q, sb_qparams p, float x) {
    if (q->bits == 1) return x >= p.scale * (0.5f - p.zero); /* the nearer of the two levels */
    return sb_qmath_code(q->maxq, p, x);
}

float sb_qparams_dequant(sb_qparams p, unsigned code) { return sb_qmath_dequant(p, code); }

float sb_quantizer_quantize(const sb_quantizer *q, sb_qparams p, float x) {
    return sb_qparams_dequant(p, sb_quantizer_code(q, p, x));
}

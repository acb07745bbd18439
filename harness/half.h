/* half.h - IEEE binary16 (f16) and bfloat16 (bf16) <-> f32 conversions.
 *
 * The scalar functions are plain bit manipulation, so they give the same
 * answer on every compiler and CPU, and on a CUDA device (SB_HOSTDEV: the
 * GPTQ kernel rounds scales to f16 with them).  The _row functions convert
 * whole rows and use F16C / AVX2 when the build enables them, because the
 * engine widens f16/bf16 weight tiles on every matrix product.
 *
 * NaN policy: f16 -> f32 returns a quiet NaN (payload kept, quiet bit set),
 * which is what the x86 F16C instruction does; making the scalar code do
 * the same keeps row and scalar results bit-identical on all 65536 inputs.
 * f32 -> f16 and f32 -> bf16 also return quiet NaNs, so a NaN whose payload
 * lives only in the dropped low bits can never turn into an infinity. */
#ifndef SB_HALF_H
#define SB_HALF_H

#include <stdint.h>
#include <string.h>

#include "hostdev.h"

SB_HOSTDEV uint32_t sb_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

SB_HOSTDEV float sb_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* f16 layout: sign(1) exponent(5, bias 15) mantissa(10).
 * f32 layout: sign(1) exponent(8, bias 127) mantissa(23). */
SB_HOSTDEV float sb_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) /* inf, or NaN made quiet (bit 22) */
        bits = 0x7f800000u | (mant << 13) | (mant ? 0x00400000u : 0);
    else if (exp != 0) /* normal: rebias the exponent 15 -> 127 */
        bits = ((exp + 112) << 23) | (mant << 13);
    else /* zero or subnormal mant * 2^-24: exact, and a normal f32, so FTZ/DAZ cannot touch it */
        bits = sb_f32_bits((float)mant * 0x1p-24f);
    return sb_bits_f32(sign | bits);
}

/* Rounds v >> shift to nearest, ties to even (shift >= 1). */
SB_HOSTDEV uint32_t sb_shift_round_even(uint32_t v, unsigned shift) {
    uint32_t r = v >> shift;
    uint32_t rem = v & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    return r + (rem > half || (rem == half && (r & 1u)));
}

SB_HOSTDEV uint16_t sb_f32_to_f16(float f) {
    uint32_t x = sb_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) /* NaN: keep the top payload bits, force quiet */
        return (uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu));
    if (x >= 0x477ff000u) /* >= 65520, halfway past the largest f16: infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (x >= 0x38800000u) /* >= 2^-14: normal; a rounding carry may bump the exponent, as it should */
        return (uint16_t)(sign | sb_shift_round_even(x - 0x38000000u, 13));
    if (x <= 0x33000000u) /* <= 2^-25, half the smallest subnormal: ties to +-0 */
        return sign;
    /* Subnormal: value / 2^-24 rounded; result 0x400 (smallest normal) is right too. */
    uint32_t mant = (x & 0x7fffffu) | 0x800000u;
    unsigned shift = 126u - (x >> 23);
    return (uint16_t)(sign | sb_shift_round_even(mant, shift));
}

/* bf16 is the top half of an f32. */
SB_HOSTDEV float sb_bf16_to_f32(uint16_t h) { return sb_bits_f32((uint32_t)h << 16); }

SB_HOSTDEV uint16_t sb_f32_to_bf16(float f) {
    uint32_t x = sb_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: truncate, force quiet */
        return (uint16_t)((x >> 16) | 0x0040u);
    /* Ties to even; the carry out of the mantissa rounds up to infinity correctly. */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* Bulk conversions; src and dst must not overlap. */
void sb_f16_to_f32_row(const uint16_t *src, float *dst, int64_t n);
void sb_bf16_to_f32_row(const uint16_t *src, float *dst, int64_t n);

#endif

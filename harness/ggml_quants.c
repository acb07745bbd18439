/* ggml_quants.c - ggml block layouts and their decoders.
 *
 * Each block type below is a struct of byte arrays only (alignment 1, no
 * padding, checked by _Static_assert), so a block can be read at any
 * address and multi-byte fields are assembled little-endian explicitly.
 * The byte map above each struct is the on-disk layout.
 *
 * Bit-exactness: every decoder forms each output with the same float
 * operations, in the same order, as the reference (llama.cpp's
 * dequantize_row_*, gguf-py's quants.py): e.g. Q4_K is (d*sc)*q - (dmin*m),
 * never a fused or re-associated form.  The build uses -std=c11, under which
 * gcc does not contract a*b+c into an FMA, so this holds as written.
 *
 * Inner loops run over 16 or 32 values with one scale, a fixed trip count
 * the compiler vectorizes. */
#include <stdint.h>
#include <string.h>

#include "ggml_quants.h"
#include "gguf.h"
#include "half.h"

#define QK 32   /* values per block of the legacy quants */
#define QK_K 256 /* values per K-quant super-block */

static float load_f16(const uint8_t p[2]) { return sb_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

static uint32_t load_u32(const uint8_t p[4]) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- 32-value blocks. Value j < 16 sits in the low nibble of qs[j],
 * value j + 16 in the high nibble of qs[j]. -------------------------- */

/* Q4_0, 18 bytes:  0-1 d (f16) | 2-17 qs[16] 4-bit q.   x = (q - 8) * d */
typedef struct { uint8_t d[2], qs[QK / 2]; } block_q4_0;

/* Q4_1, 20 bytes:  0-1 d (f16) | 2-3 m (f16) | 4-19 qs[16].   x = d*q + m */
typedef struct { uint8_t d[2], m[2], qs[QK / 2]; } block_q4_1;

/* Q5_0, 22 bytes:  0-1 d (f16) | 2-5 qh (u32 LE; bit j = 5th bit of value j)
 *                  | 6-21 qs[16] low 4 bits.   x = (q - 16) * d */
typedef struct { uint8_t d[2], qh[4], qs[QK / 2]; } block_q5_0;

/* Q5_1, 24 bytes:  0-1 d | 2-3 m | 4-7 qh | 8-23 qs[16].   x = d*q + m */
typedef struct { uint8_t d[2], m[2], qh[4], qs[QK / 2]; } block_q5_1;

/* Q8_0, 34 bytes:  0-1 d (f16) | 2-33 qs[32] int8.   x = q * d */
typedef struct { uint8_t d[2]; int8_t qs[QK]; } block_q8_0;

/* ---- 256-value super-blocks ---------------------------------------- */

/* Q2_K, 84 bytes, 16 groups of 16 values:
 *   0-15  scales[16]: group g's scale in the low nibble, its min in the high
 *   16-79 qs[64]: 2-bit q; value 128h + 32j + l (h<2, j<4, l<32) is bits
 *         2j..2j+1 of qs[32h + l]
 *   80-81 d (f16), 82-83 dmin (f16)
 *   x = (d*scale)*q - (dmin*min) */
typedef struct { uint8_t scales[QK_K / 16], qs[QK_K / 4], d[2], dmin[2]; } block_q2_k;

/* Q3_K, 110 bytes, 16 groups of 16 values:
 *   0-31   hmask[32]: value 32k + l (k<8, l<32) has its high bit at bit k of
 *          hmask[l]; a CLEAR bit means subtract 4 (q = low2 - 4)
 *   32-95  qs[64]: low 2 bits, packed like Q2_K
 *   96-107 scales[12]: sixteen 6-bit scales, biased by 32:
 *          low 4 bits of scale i: i<8 low nibble of byte i, else high nibble of byte i-8
 *          high 2 bits of scale i: bits 2*(i/4).. of byte 8 + i%4
 *   108-109 d (f16)
 *   x = (d*(scale-32)) * q */
typedef struct { uint8_t hmask[QK_K / 8], qs[QK_K / 4], scales[12], d[2]; } block_q3_k;

/* Q4_K, 144 bytes, 8 groups of 32 values:
 *   0-1 d (f16), 2-3 dmin (f16)
 *   4-15 scales[12]: eight 6-bit scales and eight 6-bit mins (get_scale_min)
 *   16-143 qs[128]: value 64c + l (l<32) is the low nibble of qs[32c + l],
 *          value 64c + 32 + l the high nibble
 *   x = (d*sc)*q - (dmin*m) */
typedef struct { uint8_t d[2], dmin[2], scales[12], qs[QK_K / 2]; } block_q4_k;

/* Q5_K, 176 bytes: Q4_K plus a fifth bit per value.
 *   0-1 d, 2-3 dmin, 4-15 scales[12] (as Q4_K)
 *   16-47 qh[32]: value 32k + l (k<8) has its 5th bit at bit k of qh[l]
 *   48-175 qs[128]: low 4 bits, as Q4_K */
typedef struct { uint8_t d[2], dmin[2], scales[12], qh[QK_K / 8], qs[QK_K / 2]; } block_q5_k;

/* Q6_K, 210 bytes, 16 groups of 16 values:
 *   0-127   ql[128]: low 4 bits; in half h (128 values), value 32j + l (j<4,
 *           l<32) is nibble j/2 (0 low, 1 high) of ql[64h + 32*(j%2) + l]
 *   128-191 qh[64]: high 2 bits; that value's are bits 2j..2j+1 of qh[32h + l]
 *   192-207 scales[16] int8, one per group
 *   208-209 d (f16)
 *   x = (d*scale) * (q - 32) */
typedef struct { uint8_t ql[QK_K / 2], qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint8_t d[2]; } block_q6_k;

_Static_assert(sizeof(block_q4_0) == 18, "Q4_0 block layout");
_Static_assert(sizeof(block_q4_1) == 20, "Q4_1 block layout");
_Static_assert(sizeof(block_q5_0) == 22, "Q5_0 block layout");
_Static_assert(sizeof(block_q5_1) == 24, "Q5_1 block layout");
_Static_assert(sizeof(block_q8_0) == 34, "Q8_0 block layout");
_Static_assert(sizeof(block_q2_k) == 84, "Q2_K block layout");
_Static_assert(sizeof(block_q3_k) == 110, "Q3_K block layout");
_Static_assert(sizeof(block_q4_k) == 144, "Q4_K block layout");
_Static_assert(sizeof(block_q5_k) == 176, "Q5_K block layout");
_Static_assert(sizeof(block_q6_k) == 210, "Q6_K block layout");

static void decode_q4_0(const void *src, float *y, int64_t nb) {
    const block_q4_0 *b = src;
    for (int64_t i = 0; i < nb; i++, y += QK) {
        float d = load_f16(b[i].d);
        for (int j = 0; j < QK / 2; j++) {
            y[j] = (float)((b[i].qs[j] & 0x0f) - 8) * d;
            y[j + QK / 2] = (float)((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void decode_q4_1(const void *src, float *y, int64_t nb) {
    const block_q4_1 *b = src;
    for (int64_t i = 0; i < nb; i++, y += QK) {
        float d = load_f16(b[i].d), m = load_f16(b[i].m);
        for (int j = 0; j < QK / 2; j++) {
            y[j] = (float)(b[i].qs[j] & 0x0f) * d + m;
            y[j + QK / 2] = (float)(b[i].qs[j] >> 4) * d + m;
        }
    }
}

/* The 5-bit values of a Q5_0/Q5_1 block, unbiased. */
static void unpack_q5(const uint8_t qh_bytes[4], const uint8_t qs[QK / 2], int q[QK]) {
    uint32_t qh = load_u32(qh_bytes);
    for (int j = 0; j < QK / 2; j++) {
        q[j] = (qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
        q[j + QK / 2] = (qs[j] >> 4) | (int)((qh >> (j + QK / 2)) & 1) << 4;
    }
}

static void decode_q5_0(const void *src, float *y, int64_t nb) {
    const block_q5_0 *b = src;
    int q[QK];
    for (int64_t i = 0; i < nb; i++, y += QK) {
        float d = load_f16(b[i].d);
        unpack_q5(b[i].qh, b[i].qs, q);
        for (int j = 0; j < QK; j++) y[j] = (float)(q[j] - 16) * d;
    }
}

static void decode_q5_1(const void *src, float *y, int64_t nb) {
    const block_q5_1 *b = src;
    int q[QK];
    for (int64_t i = 0; i < nb; i++, y += QK) {
        float d = load_f16(b[i].d), m = load_f16(b[i].m);
        unpack_q5(b[i].qh, b[i].qs, q);
        for (int j = 0; j < QK; j++) y[j] = (float)q[j] * d + m;
    }
}

static void decode_q8_0(const void *src, float *y, int64_t nb) {
    const block_q8_0 *b = src;
    for (int64_t i = 0; i < nb; i++, y += QK) {
        float d = load_f16(b[i].d);
        for (int j = 0; j < QK; j++) y[j] = (float)b[i].qs[j] * d;
    }
}

static void decode_q2_k(const void *src, float *y, int64_t nb) {
    const block_q2_k *b = src;
    for (int64_t i = 0; i < nb; i++, y += QK_K) {
        float d = load_f16(b[i].d), dmin = load_f16(b[i].dmin);
        for (int g = 0; g < 16; g++) { /* group g: values 16g..16g+15 */
            int shift = 2 * ((g / 2) % 4);
            const uint8_t *qs = b[i].qs + 32 * (g / 8) + 16 * (g % 2);
            float dl = d * (float)(b[i].scales[g] & 0x0f);
            float ml = dmin * (float)(b[i].scales[g] >> 4);
            for (int l = 0; l < 16; l++) y[16 * g + l] = dl * (float)((qs[l] >> shift) & 3) - ml;
        }
    }
}

/* Scale i (0..15) of a Q3_K block, with its bias of 32 removed. */
static int q3_k_scale(const uint8_t s[12], int i) {
    int low = i < 8 ? s[i] & 0x0f : s[i - 8] >> 4;
    int high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
    return (low | high << 4) - 32;
}

static void decode_q3_k(const void *src, float *y, int64_t nb) {
    const block_q3_k *b = src;
    for (int64_t i = 0; i < nb; i++, y += QK_K) {
        float d = load_f16(b[i].d);
        for (int g = 0; g < 16; g++) { /* group g: values 16g..16g+15 */
            int shift = 2 * ((g / 2) % 4), hbit = g / 2;
            const uint8_t *qs = b[i].qs + 32 * (g / 8) + 16 * (g % 2);
            const uint8_t *hm = b[i].hmask + 16 * (g % 2);
            float dl = d * (float)q3_k_scale(b[i].scales, g);
            for (int l = 0; l < 16; l++) {
                int q = ((qs[l] >> shift) & 3) - (((hm[l] >> hbit) & 1) ? 0 : 4);
                y[16 * g + l] = dl * (float)q;
            }
        }
    }
}

/* Scale and min of group j (0..7) of a Q4_K/Q5_K block (llama.cpp's
 * get_scale_min_k4).  Bytes 0-3 hold scales 0-3 in their low 6 bits, bytes
 * 4-7 mins 0-3; groups 4-7 take their low 4 bits from the nibbles of bytes
 * 8-11 (scale low, min high) and their top 2 bits from bits 6-7 of bytes
 * 0-3 (scale) and 4-7 (min). */
static void k4_scale_min(const uint8_t s[12], int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

static void decode_q4_k(const void *src, float *y, int64_t nb) {
    const block_q4_k *b = src;
    for (int64_t i = 0; i < nb; i++, y += QK_K) {
        float d = load_f16(b[i].d), dmin = load_f16(b[i].dmin);
        for (int j = 0; j < 8; j++) { /* group j: values 32j..32j+31 */
            int sc, m, shift = 4 * (j % 2);
            k4_scale_min(b[i].scales, j, &sc, &m);
            const uint8_t *qs = b[i].qs + 32 * (j / 2);
            float dl = d * (float)sc, ml = dmin * (float)m;
            for (int l = 0; l < 32; l++) y[32 * j + l] = dl * (float)((qs[l] >> shift) & 0x0f) - ml;
        }
    }
}

static void decode_q5_k(const void *src, float *y, int64_t nb) {
    const block_q5_k *b = src;
    for (int64_t i = 0; i < nb; i++, y += QK_K) {
        float d = load_f16(b[i].d), dmin = load_f16(b[i].dmin);
        for (int j = 0; j < 8; j++) { /* group j: values 32j..32j+31 */
            int sc, m, shift = 4 * (j % 2);
            k4_scale_min(b[i].scales, j, &sc, &m);
            const uint8_t *qs = b[i].qs + 32 * (j / 2);
            float dl = d * (float)sc, ml = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                int q = ((qs[l] >> shift) & 0x0f) | ((b[i].qh[l] >> j) & 1) << 4;
                y[32 * j + l] = dl * (float)q - ml;
            }
        }
    }
}

static void decode_q6_k(const void *src, float *y, int64_t nb) {
    const block_q6_k *b = src;
    for (int64_t i = 0; i < nb; i++, y += QK_K) {
        float d = load_f16(b[i].d);
        for (int g = 0; g < 16; g++) { /* group g: values 16g..16g+15 */
            int h = g / 8, j = (g / 2) % 4, half = g % 2;
            const uint8_t *ql = b[i].ql + 64 * h + 32 * (j % 2) + 16 * half;
            const uint8_t *qh = b[i].qh + 32 * h + 16 * half;
            int lshift = 4 * (j / 2), hshift = 2 * j;
            float dl = d * (float)b[i].scales[g];
            for (int l = 0; l < 16; l++) {
                int q = ((ql[l] >> lshift) & 0x0f) | ((qh[l] >> hshift) & 3) << 4;
                y[16 * g + l] = dl * (float)(q - 32);
            }
        }
    }
}

static void decode_f32(const void *src, float *y, int64_t n) { memcpy(y, src, (size_t)n * sizeof *y); }

/* The 16-bit types accept any src address: an odd one (possible only for a
 * caller's own buffer, never for GGUF data) is read byte by byte. */
static void decode_f16(const void *src, float *y, int64_t n) {
    if ((uintptr_t)src % 2 == 0) {
        sb_f16_to_f32_row(src, y, n);
        return;
    }
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) y[i] = load_f16(p + 2 * i);
}

static void decode_bf16(const void *src, float *y, int64_t n) {
    if ((uintptr_t)src % 2 == 0) {
        sb_bf16_to_f32_row(src, y, n);
        return;
    }
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) y[i] = sb_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
}

typedef struct {
    uint32_t type;
    int block_elems;
    void (*decode)(const void *src, float *dst, int64_t n_blocks);
} decoder_row;

static const decoder_row decoders[] = {
    {SB_GGML_F32, 1, decode_f32},       {SB_GGML_F16, 1, decode_f16},       {SB_GGML_BF16, 1, decode_bf16},
    {SB_GGML_Q4_0, QK, decode_q4_0},    {SB_GGML_Q4_1, QK, decode_q4_1},    {SB_GGML_Q5_0, QK, decode_q5_0},
    {SB_GGML_Q5_1, QK, decode_q5_1},    {SB_GGML_Q8_0, QK, decode_q8_0},    {SB_GGML_Q2_K, QK_K, decode_q2_k},
    {SB_GGML_Q3_K, QK_K, decode_q3_k},  {SB_GGML_Q4_K, QK_K, decode_q4_k},  {SB_GGML_Q5_K, QK_K, decode_q5_k},
    {SB_GGML_Q6_K, QK_K, decode_q6_k},
};

static const decoder_row *find_decoder(uint32_t type) {
    for (size_t i = 0; i < sizeof decoders / sizeof decoders[0]; i++)
        if (decoders[i].type == type) return &decoders[i];
    return NULL;
}

bool sb_ggml_can_dequantize(uint32_t type) { return find_decoder(type) != NULL; }

bool sb_ggml_dequantize(uint32_t type, const void *src, float *dst, int64_t n) {
    const decoder_row *dec = find_decoder(type);
    if (!dec || n < 0 || n % dec->block_elems != 0) return false;
    if (n > 0) dec->decode(src, dst, n / dec->block_elems);
    return true;
}

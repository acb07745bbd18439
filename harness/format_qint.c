/* format_qint.c - grouped integer weights, bit-packed (layout in format_qint.h).
 *
 * The work of a product is reading the codes, so everything here is about
 * turning 8 packed codes into 8 integer lanes cheaply:
 *   b <= 4   8 codes fit in 32 bits: broadcast them, shift lane i right by i*b, mask
 *   5..7     8 codes fit in 64 bits: the same with 64-bit lanes, then gather the
 *            low halves back into order
 *   b = 8    one byte per code: zero-extend
 * Eight codes always start on a byte boundary when the group size is a
 * multiple of 8 (every group then starts on one too); other group sizes
 * take the scalar bit reader.  (q - zero) is formed exactly in f32 (small
 * integers), so decode gives scale * (q - zero) with one rounding, and the
 * single-token kernel sums (q - zero)·x per group before one multiply by
 * the group's scale. */
#include <stdlib.h>
#include <string.h>

#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "format_qint.h"
#include "half.h"
#include "vec.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "format_qint reads its uint64 code words as bytes: little-endian only"
#endif

enum { HEADER_BYTES = 128, PAYLOAD_ALIGN = 64, MIN_BITS = 1, MAX_BITS = 8 };
/* Up to this many tokens the fused kernels run; more go to decoded tiles + CBLAS. */
enum { FUSED_MAX_TOKENS = 4 };
/* Codes decoded at a time on the 2..4-token path (a stack buffer in L1). */
enum { CHUNK_CODES = 256 };

typedef struct qint_header {
    int64_t rows, cols;
    int32_t group_size, n_groups;
    int32_t bits;            /* uniform width; 0 when widths vary per group */
    int32_t symmetric;
    int64_t row_words;       /* words per row when every row has as many; 0: row offsets */
    /* byte offsets from the start of the payload */
    uint64_t codes_off, row_off_off, scales_off, zeros_off, group_bits_off, end_off;
} qint_header;

_Static_assert(sizeof(qint_header) <= HEADER_BYTES, "qint header outgrew its slot");

/* ---- reading the layout ---- */

static const qint_header *header_of(const sb_linear *w) { return (const qint_header *)w->data; }
static const uint8_t *base_of(const qint_header *h) { return (const uint8_t *)h; }

static const uint8_t *row_codes(const qint_header *h, int64_t r) {
    const uint64_t *words = (const uint64_t *)(base_of(h) + h->codes_off);
    if (h->row_words) return (const uint8_t *)(words + r * h->row_words);
    const uint64_t *row_off = (const uint64_t *)(base_of(h) + h->row_off_off);
    return (const uint8_t *)(words + row_off[r]);
}

static int width_of(const qint_header *h, int64_t r, int g) {
    if (h->bits) return h->bits;
    int64_t i = r * h->n_groups + g;
    uint8_t byte = (base_of(h) + h->group_bits_off)[i / 2];
    return i % 2 ? byte >> 4 : byte & 0xf;
}

static float scale_of(const qint_header *h, int64_t r, int g) {
    return sb_f16_to_f32(((const uint16_t *)(base_of(h) + h->scales_off))[r * h->n_groups + g]);
}

static float zero_of(const qint_header *h, int64_t r, int g, int bits) {
    if (h->symmetric) return (float)(1 << (bits - 1));
    return sb_f16_to_f32(((const uint16_t *)(base_of(h) + h->zeros_off))[r * h->n_groups + g]);
}

/* Code at bit position pos of a row stream of b-bit codes.  Two bytes
 * hold any code (pos % 8 + b <= 15); the second may belong to the next
 * row or the guard word, which is harmless. */
static unsigned read_code(const uint8_t *row, uint64_t pos, int b) {
    unsigned v = row[pos / 8] | (unsigned)row[pos / 8 + 1] << 8;
    return (v >> (pos % 8)) & ((1u << b) - 1);
}

/* ---- unpacking 8 codes ---- */

#ifdef __AVX2__
typedef struct unpacker {
    int bits;
    __m256i shift_lo, shift_hi, mask;
} unpacker;

static unpacker unpacker_for(int b) {
    unpacker u = {.bits = b, .mask = _mm256_set1_epi32((1 << b) - 1)};
    if (b <= 4)
        u.shift_lo = _mm256_setr_epi32(0, b, 2 * b, 3 * b, 4 * b, 5 * b, 6 * b, 7 * b);
    else {
        u.shift_lo = _mm256_setr_epi64x(0, b, 2 * b, 3 * b);
        u.shift_hi = _mm256_setr_epi64x(4 * b, 5 * b, 6 * b, 7 * b);
    }
    return u;
}

/* p: the byte holding the first of 8 codes, which starts at its bit 0. */
static inline __m256i unpack_le4(const uint8_t *p, const unpacker *u) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)v), u->shift_lo), u->mask);
}

static inline __m256i unpack_le7(const uint8_t *p, const unpacker *u) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    __m256i all = _mm256_set1_epi64x((long long)v);
    __m256i lo = _mm256_srlv_epi64(all, u->shift_lo); /* codes 0..3 in the low halves */
    __m256i hi = _mm256_srlv_epi64(all, u->shift_hi); /* codes 4..7 */
    /* 32-bit lanes now hold codes 0,4,1,5,2,6,3,7; put them in order */
    __m256i mixed = _mm256_blend_epi32(lo, _mm256_slli_epi64(hi, 32), 0xaa);
    __m256i order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    return _mm256_and_si256(_mm256_permutevar8x32_epi32(mixed, order), u->mask);
}

static inline __m256i unpack_8(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)); }

/* 8 weights (q - zero) as exact floats. */
static inline __m256 codes_minus_zero(const uint8_t *p, const unpacker *u, __m256 zero) {
    __m256i q = u->bits == 8 ? unpack_8(p) : u->bits <= 4 ? unpack_le4(p, u) : unpack_le7(p, u);
    return _mm256_sub_ps(_mm256_cvtepi32_ps(q), zero);
}

/* Σ_j (q_j - zero)·x[j] over n codes (n % 8 == 0) starting at byte p.  One
 * loop per kind of unpacking so the choice is not made per 8 codes. */
static __m256 dot_codes(const uint8_t *p, int64_t n, const unpacker *u, __m256 zero, const float *x) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t j = 0, b = u->bits; /* 8 codes take b bytes */
    if (b == 8) {
        for (; j + 16 <= n; j += 16, p += 16) {
            a0 = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(unpack_8(p)), zero), _mm256_loadu_ps(x + j), a0);
            a1 = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(unpack_8(p + 8)), zero), _mm256_loadu_ps(x + j + 8), a1);
        }
    } else if (b <= 4) {
        for (; j + 16 <= n; j += 16, p += 2 * b) {
            a0 = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(unpack_le4(p, u)), zero), _mm256_loadu_ps(x + j), a0);
            a1 = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(unpack_le4(p + b, u)), zero), _mm256_loadu_ps(x + j + 8),
                                 a1);
        }
    } else {
        for (; j + 16 <= n; j += 16, p += 2 * b) {
            a0 = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(unpack_le7(p, u)), zero), _mm256_loadu_ps(x + j), a0);
            a1 = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(unpack_le7(p + b, u)), zero), _mm256_loadu_ps(x + j + 8),
                                 a1);
        }
    }
    if (j < n) a0 = _mm256_fmadd_ps(codes_minus_zero(p, u, zero), _mm256_loadu_ps(x + j), a0);
    return _mm256_add_ps(a0, a1);
}

/* out[j] = scale·(q_j - zero) for n codes (n % 8 == 0) starting at byte p. */
static void decode_codes(const uint8_t *p, int64_t n, const unpacker *u, float zero, float scale, float *out) {
    __m256 z = _mm256_set1_ps(zero), s = _mm256_set1_ps(scale);
    for (int64_t j = 0; j < n; j += 8, p += u->bits)
        _mm256_storeu_ps(out + j, _mm256_mul_ps(codes_minus_zero(p, u, z), s));
}

/* How 8 codes are unpacked; a compile-time constant in the row kernels below. */
enum { KIND_LE4, KIND_LE7, KIND_8 };

static int kind_of(int bits) { return bits == 8 ? KIND_8 : bits <= 4 ? KIND_LE4 : KIND_LE7; }

static inline __attribute__((always_inline)) __m256i unpack_kind(const uint8_t *p, const unpacker *u, int kind) {
    return kind == KIND_8 ? unpack_8(p) : kind == KIND_LE4 ? unpack_le4(p, u) : unpack_le7(p, u);
}

/* f16 -> f32 for one scale: the F16C instruction when there is one (the
 * same value as sb_f16_to_f32 for every finite input, and scales are finite). */
static inline float scale_value(uint16_t h) {
#ifdef __F16C__
    return _cvtsh_ss(h);
#else
    return sb_f16_to_f32(h);
#endif
}

static float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

/* The SIMD paths need every run of 8 codes to start on a byte. */
static bool simd_ok(const qint_header *h) {
#ifdef __AVX2__
    return h->group_size % 8 == 0;
#else
    (void)h;
    return false;
#endif
}

/* ---- decoding rows ---- */

static void decode_group_scalar(const uint8_t *row, uint64_t pos, int64_t n, int b, float zero, float scale, float *out) {
    for (int64_t j = 0; j < n; j++, pos += (uint64_t)b) out[j] = scale * ((float)read_code(row, pos, b) - zero);
}

static void decode_row(const qint_header *h, int64_t r, float *dst) {
    const uint8_t *row = row_codes(h, r);
    uint64_t pos = 0; /* bit position of the group's first code */
#ifdef __AVX2__
    unpacker units[MAX_BITS + 1];
    for (int b = MIN_BITS; b <= MAX_BITS; b++) units[b] = unpacker_for(b);
#endif
    for (int g = 0; g < h->n_groups; g++) {
        int b = width_of(h, r, g);
        float scale = scale_of(h, r, g), zero = zero_of(h, r, g, b);
        float *out = dst + (int64_t)g * h->group_size;
#ifdef __AVX2__
        if (simd_ok(h))
            decode_codes(row + pos / 8, h->group_size, &units[b], zero, scale, out);
        else
#endif
            decode_group_scalar(row, pos, h->group_size, b, zero, scale, out);
        pos += (uint64_t)b * (uint64_t)h->group_size;
    }
}

static void qint_decode_rows(const sb_linear *w, int64_t row0, int64_t n_rows, float *dst) {
    const qint_header *h = header_of(w);
    for (int64_t r = 0; r < n_rows; r++) decode_row(h, row0 + r, dst + r * h->cols);
}

static uint64_t qint_storage_bits(const sb_linear *w) {
    const qint_header *h = header_of(w);
    return 8u * (h->end_off - h->codes_off);
}

/* ---- the fused product for few tokens ---- */

#ifdef __AVX2__
typedef struct fused_job {
    const qint_header *h;
    const float *x;
    int64_t n_tok;
    float *y;
    int64_t rows_per_task;
    const float *xsum;       /* one token, uniform widths: Σ x over each group */
    const float *xperm;      /* one token, 2..4 bits: x in lane-field order (permute_for_lanes) */
    float (*row_1)(const struct fused_job *j, int64_t r);
    unpacker units[MAX_BITS + 1];
} fused_job;

/* One token, every group of width u->bits: y[r] = Σ_g scale_g·(Σ_{j∈g} q_j·x_j - zero_g·Σ_{j∈g} x_j),
 * with Σ_{j∈g} x_j precomputed once per call (xsum).  kind is a constant
 * at each call site, so the compiler keeps one unpacking per loop. */
static inline __attribute__((always_inline)) float uniform_row_1(const qint_header *h, int64_t r, const float *x,
                                                                 const float *xsum, const unpacker *u, int kind) {
    const uint8_t *p = row_codes(h, r);
    const uint16_t *scales = (const uint16_t *)(base_of(h) + h->scales_off) + r * h->n_groups;
    const uint16_t *zeros = (const uint16_t *)(base_of(h) + h->zeros_off) + r * h->n_groups;
    const float implied_zero = (float)(1 << (u->bits - 1));
    int64_t gs = h->group_size, step = u->bits; /* bytes per 8 codes */
    /* Σ_g scale_g·(Σ q·x) stays a vector (one horizontal sum per row); the
     * zero terms Σ_g scale_g·zero_g·xsum_g are a scalar beside it */
    __m256 acc = _mm256_setzero_ps();
    float zero_terms = 0;
    for (int g = 0; g < h->n_groups; g++, x += gs) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int64_t k = 0;
        for (; k + 16 <= gs; k += 16, p += 2 * step) {
            a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(unpack_kind(p, u, kind)), _mm256_loadu_ps(x + k), a0);
            a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(unpack_kind(p + step, u, kind)), _mm256_loadu_ps(x + k + 8), a1);
        }
        if (k < gs) {
            a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(unpack_kind(p, u, kind)), _mm256_loadu_ps(x + k), a0);
            p += step;
        }
        float zero = h->symmetric ? implied_zero : scale_value(zeros[g]), scale = scale_value(scales[g]);
        acc = _mm256_fmadd_ps(_mm256_add_ps(a0, a1), _mm256_set1_ps(scale), acc);
        zero_terms += scale * zero * xsum[g];
    }
    return hsum(acc) - zero_terms;
}

/* Σ_g scale_g·zero_g·xsum_g of one row, 8 groups at a time: kept out of
 * the group loop, where its loads and conversions cost as much as a chunk. */
static float zero_terms_of(const uint16_t *scales, const uint16_t *zeros, float implied_zero, const float *xsum, int n) {
    __m256 acc = _mm256_setzero_ps(), iz = _mm256_set1_ps(implied_zero);
    int g = 0;
#ifdef __F16C__
    for (; g + 8 <= n; g += 8) {
        __m256 s = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(scales + g)));
        __m256 z = zeros ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(zeros + g))) : iz;
        acc = _mm256_fmadd_ps(_mm256_mul_ps(s, z), _mm256_loadu_ps(xsum + g), acc);
    }
#endif
    float sum = hsum(acc);
    for (; g < n; g++) sum += scale_value(scales[g]) * (zeros ? scale_value(zeros[g]) : implied_zero) * xsum[g];
    return sum;
}

/* One token, 2, 3 or 4 bits: the packed bytes of a chunk of codes are
 * spread over the 8 lanes of a vector so that lane i holds codes
 * m·i .. m·i + m-1 (m = CHUNK/8 codes per lane); field f of every lane,
 * (lane >> f·b) & maxq, is then 8 codes at stride m, and the caller
 * permuted x the same way per chunk (xperm[8f + i] = x[m·i + f]).  Each 8
 * codes thus cost one shift, one and, one convert and one FMA, with no
 * per-code shuffle:
 *   4 bits  16-code chunks in 8 bytes: one widening load, a byte per lane
 *   2 bits  32-code chunks in 8 bytes: the same, four codes per byte
 *   3 bits  32-code chunks in 12 bytes: lane i needs the 12 bits at bit 12·i,
 *           i.e. bytes 1.5·i and the next, shifted by 4 in odd lanes; one
 *           16-byte broadcast load and one byte shuffle (the 4 bytes read past
 *           the chunk stay inside the row padding or the guard word). */
static inline int lane_chunk(int b) { return b == 4 ? 16 : 32; }

static inline __attribute__((always_inline)) __m256i lanes_of(const uint8_t *p, int b) {
    if (b != 3) return unpack_8(p);
    const __m256i pick = _mm256_setr_epi8(0, 1, -1, -1, 1, 2, -1, -1, 3, 4, -1, -1, 4, 5, -1, -1,  /* lanes 0..3 */
                                          6, 7, -1, -1, 7, 8, -1, -1, 9, 10, -1, -1, 10, 11, -1, -1); /* lanes 4..7 */
    return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p)), pick);
}

/* Field f of every lane as floats. */
static inline __attribute__((always_inline)) __m256 field_of(__m256i lanes, int b, int f) {
    const __m256i mask = _mm256_set1_epi32((1 << b) - 1);
    __m256i v;
    if (b == 3) /* odd lanes start 4 bits in */
        v = _mm256_srlv_epi32(lanes, _mm256_setr_epi32(3 * f, 3 * f + 4, 3 * f, 3 * f + 4, 3 * f, 3 * f + 4, 3 * f, 3 * f + 4));
    else
        v = f ? _mm256_srli_epi32(lanes, b * f) : lanes;
    if (b * (f + 1) < 8 || b == 3) v = _mm256_and_si256(v, mask); /* the top field of a byte needs no mask */
    return _mm256_cvtepi32_ps(v);
}

static inline __attribute__((always_inline)) float lanes_row_1(const fused_job *j, int64_t r, int b) {
    const qint_header *h = j->h;
    const uint8_t *p = row_codes(h, r);
    const uint16_t *scales = (const uint16_t *)(base_of(h) + h->scales_off) + r * h->n_groups;
    const uint16_t *zeros = (const uint16_t *)(base_of(h) + h->zeros_off) + r * h->n_groups;
    const float *x = j->xperm;
    const int chunk = lane_chunk(b), m = chunk / 8, bytes = chunk * b / 8;
    const float implied_zero = (float)(1 << (b - 1));
    int64_t gs = h->group_size;
    __m256 acc = _mm256_setzero_ps();
    for (int g = 0; g < h->n_groups; g++) {
        /* one accumulator per field, written out: the compiler keeps them in registers */
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
#pragma GCC unroll 4
        for (int64_t k = 0; k < gs; k += chunk, p += bytes, x += chunk) {
            __m256i lanes = lanes_of(p, b);
            a0 = _mm256_fmadd_ps(field_of(lanes, b, 0), _mm256_loadu_ps(x), a0);
            a1 = _mm256_fmadd_ps(field_of(lanes, b, 1), _mm256_loadu_ps(x + 8), a1);
            if (m == 4) {
                a2 = _mm256_fmadd_ps(field_of(lanes, b, 2), _mm256_loadu_ps(x + 16), a2);
                a3 = _mm256_fmadd_ps(field_of(lanes, b, 3), _mm256_loadu_ps(x + 24), a3);
            }
        }
        __m256 part = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
        acc = _mm256_fmadd_ps(part, _mm256_set1_ps(scale_value(scales[g])), acc);
    }
    return hsum(acc) - zero_terms_of(scales, h->symmetric ? NULL : zeros, implied_zero, j->xsum, h->n_groups);
}

static float lanes_row_2(const fused_job *j, int64_t r) { return lanes_row_1(j, r, 2); }
static float lanes_row_3(const fused_job *j, int64_t r) { return lanes_row_1(j, r, 3); }
static float lanes_row_4(const fused_job *j, int64_t r) { return lanes_row_1(j, r, 4); }

static float uniform_row_le4(const fused_job *j, int64_t r) {
    return uniform_row_1(j->h, r, j->x, j->xsum, &j->units[j->h->bits], KIND_LE4);
}
static float uniform_row_le7(const fused_job *j, int64_t r) {
    return uniform_row_1(j->h, r, j->x, j->xsum, &j->units[j->h->bits], KIND_LE7);
}
static float uniform_row_8(const fused_job *j, int64_t r) {
    return uniform_row_1(j->h, r, j->x, j->xsum, &j->units[j->h->bits], KIND_8);
}

/* One token, mixed widths: y[r] = Σ_g scale_g · Σ_{j∈g} (q_j - zero_g)·x_j, straight from the bits. */
static float fused_row_1(const fused_job *j, int64_t r) {
    const qint_header *h = j->h;
    const uint8_t *row = row_codes(h, r);
    uint64_t pos = 0;
    __m256 acc = _mm256_setzero_ps();
    for (int g = 0; g < h->n_groups; g++) {
        int b = width_of(h, r, g);
        __m256 part = dot_codes(row + pos / 8, h->group_size, &j->units[b], _mm256_set1_ps(zero_of(h, r, g, b)),
                                j->x + (int64_t)g * h->group_size);
        acc = _mm256_fmadd_ps(part, _mm256_set1_ps(scale_of(h, r, g)), acc);
        pos += (uint64_t)b * (uint64_t)h->group_size;
    }
    return hsum(acc);
}

/* 2..4 tokens: unpack a chunk of (q - zero) once into L1, then one dot
 * product per token, so the codes are read once for all tokens. */
static void fused_row_n(const fused_job *j, int64_t r) {
    const qint_header *h = j->h;
    const uint8_t *row = row_codes(h, r);
    float acc[FUSED_MAX_TOKENS] = {0};
    float chunk[CHUNK_CODES];
    uint64_t pos = 0;
    for (int g = 0; g < h->n_groups; g++) {
        int b = width_of(h, r, g);
        float zero = zero_of(h, r, g, b), part[FUSED_MAX_TOKENS] = {0};
        int64_t c0 = (int64_t)g * h->group_size;
        for (int64_t k = 0; k < h->group_size; k += CHUNK_CODES) {
            int64_t n = h->group_size - k < CHUNK_CODES ? h->group_size - k : CHUNK_CODES;
            decode_codes(row + (pos + (uint64_t)(k * b)) / 8, n, &j->units[b], zero, 1.0f, chunk);
            for (int64_t t = 0; t < j->n_tok; t++) part[t] += sb_vec_dot(chunk, j->x + t * h->cols + c0 + k, n);
        }
        float scale = scale_of(h, r, g);
        for (int64_t t = 0; t < j->n_tok; t++) acc[t] += scale * part[t];
        pos += (uint64_t)b * (uint64_t)h->group_size;
    }
    for (int64_t t = 0; t < j->n_tok; t++) j->y[t * h->rows + r] = acc[t];
}

static void fused_task(void *arg, int task, int worker) {
    (void)worker;
    const fused_job *j = arg;
    int64_t row0 = (int64_t)task * j->rows_per_task;
    int64_t row1 = row0 + j->rows_per_task < j->h->rows ? row0 + j->rows_per_task : j->h->rows;
    for (int64_t r = row0; r < row1; r++) {
        if (j->n_tok == 1)
            j->y[r] = j->row_1(j, r);
        else
            fused_row_n(j, r);
    }
}

/* x in the order of the lane fields: per chunk of 8·m columns, out[8f + i] = x[m·i + f]. */
static void permute_for_lanes(const float *x, int64_t n, int m, float *out) {
    for (int64_t c = 0; c < n; c += 8 * m)
        for (int f = 0; f < m; f++)
            for (int i = 0; i < 8; i++) out[c + 8 * f + i] = x[c + m * i + f];
}

/* One token, uniform widths: the kernel for the width, and Σ x per group
 * (and x in lane-field order for 2..4 bits) in the caller's scratch, read-only while
 * the tasks run. */
static void choose_row_kernel(fused_job *j, sb_matmul_ctx *ctx) {
    const qint_header *h = j->h;
    j->row_1 = fused_row_1;
    int64_t xsum_floats = ((int64_t)h->n_groups + 15) / 16 * 16;
    if (j->n_tok != 1 || !h->bits || ctx->scratch_floats < xsum_floats + h->cols) return;
    float *xsum = ctx->scratch;
    for (int g = 0; g < h->n_groups; g++) xsum[g] = sb_vec_sum(j->x + (int64_t)g * h->group_size, h->group_size);
    j->xsum = xsum;
    int kind = kind_of(h->bits);
    j->row_1 = kind == KIND_8 ? uniform_row_8 : kind == KIND_LE4 ? uniform_row_le4 : uniform_row_le7;
    if (h->bits >= 2 && h->bits <= 4 && h->group_size % lane_chunk(h->bits) == 0) {
        float *xperm = ctx->scratch + xsum_floats;
        permute_for_lanes(j->x, h->cols, lane_chunk(h->bits) / 8, xperm);
        j->xperm = xperm;
        j->row_1 = h->bits == 2 ? lanes_row_2 : h->bits == 3 ? lanes_row_3 : lanes_row_4;
    }
}

static void fused_matmul(const qint_header *h, const float *x, int64_t n_tok, float *y, sb_matmul_ctx *ctx) {
    fused_job j = {.h = h, .x = x, .n_tok = n_tok, .y = y};
    for (int b = MIN_BITS; b <= MAX_BITS; b++) j.units[b] = unpacker_for(b);
    choose_row_kernel(&j, ctx);
    /* several slices per thread, as for f32 decoding: memory-bound work
     * balances better in smaller pieces */
    int slices = sb_pool_threads(ctx->pool) * 4;
    int64_t per = (h->rows + slices - 1) / slices;
    j.rows_per_task = (per + 15) / 16 * 16;
    sb_pool_run(ctx->pool, fused_task, &j, (int)((h->rows + j.rows_per_task - 1) / j.rows_per_task));
}
#endif

static void qint_matmul(const sb_linear *w, const float *x, int64_t n_tok, float *y, sb_matmul_ctx *ctx) {
    const qint_header *h = header_of(w);
#ifdef __AVX2__
    if (n_tok <= FUSED_MAX_TOKENS && simd_ok(h)) {
        fused_matmul(h, x, n_tok, y, ctx);
        return;
    }
#else
    (void)h;
#endif
    sb_matmul_by_decoding(w, x, n_tok, y, ctx);
}

const sb_format sb_format_qint = {"qint", qint_decode_rows, qint_matmul, qint_storage_bits};

/* ---- packing ---- */

static int group_width(const uint8_t *group_bits, int bits, int64_t i) { return group_bits ? group_bits[i] : bits; }

static int check_widths(int64_t n, int bits, const uint8_t *group_bits, sb_err *err) {
    if (!group_bits) {
        if (bits < MIN_BITS || bits > MAX_BITS) return sb_err_set(err, SB_EINPUT, "qint: bits %d is not in 1..8", bits);
        return SB_OK;
    }
    for (int64_t i = 0; i < n; i++)
        if (group_bits[i] < MIN_BITS || group_bits[i] > MAX_BITS)
            return sb_err_set(err, SB_EINPUT, "qint: group_bits[%lld] = %d is not in 1..8", (long long)i, group_bits[i]);
    return SB_OK;
}

/* Zeros of 2..8-bit groups are integers on the code grid; a 1-bit group's
 * zero is any finite offset (a binarized group mu ± alpha is scale = 2·alpha,
 * zero = 1/2 - mu/scale), stored rounded to f16 like the scales. */
static bool zero_ok(float zero, unsigned maxq) {
    if (maxq == 1) return (sb_f32_to_f16(zero) & 0x7c00u) != 0x7c00u;
    return zero >= 0 && zero <= (float)maxq && zero == (float)(int)zero;
}

static int check_values(int64_t rows, int64_t cols, int group_size, int bits, const uint8_t *group_bits,
                        const uint8_t *codes, const float *scales, const float *zeros, sb_err *err) {
    int64_t n_groups = cols / group_size;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < n_groups; g++) {
            int64_t i = r * n_groups + g;
            unsigned maxq = (1u << group_width(group_bits, bits, i)) - 1;
            uint16_t s16 = sb_f32_to_f16(scales[i]);
            if ((s16 & 0x7c00u) == 0x7c00u)
                return sb_err_set(err, SB_EINPUT, "qint: scale[%lld] = %g is not a finite f16", (long long)i, scales[i]);
            if (zeros && !zero_ok(zeros[i], maxq))
                return sb_err_set(err, SB_EINPUT, "qint: zero[%lld] = %g is not %s", (long long)i, zeros[i],
                                  maxq == 1 ? "a finite f16 offset (1-bit group)" : "an integer in 0..maxq");
            if (!zeros && maxq == 1)
                return sb_err_set(err, SB_EINPUT, "qint: 1-bit groups need stored zeros (an asymmetric layer)");
            const uint8_t *q = codes + r * cols + g * group_size;
            for (int k = 0; k < group_size; k++)
                if (q[k] > maxq)
                    return sb_err_set(err, SB_EINPUT, "qint: code at row %lld column %lld is %d, above %u", (long long)r,
                                      (long long)(g * group_size + k), q[k], maxq);
        }
    return SB_OK;
}

/* Words of each row (row padding included). */
static int64_t row_words_of(int64_t r, int64_t n_groups, int group_size, int bits, const uint8_t *group_bits) {
    int64_t row_bits = 0;
    for (int64_t g = 0; g < n_groups; g++) row_bits += (int64_t)group_size * group_width(group_bits, bits, r * n_groups + g);
    return (row_bits + 63) / 64;
}

/* Mixed widths whose rows all take the same number of words (SliM-LLM: one
 * allocation per column group) need no row offsets: that count, else 0. */
static int64_t common_row_words(int64_t rows, int64_t n_groups, int group_size, const uint8_t *group_bits) {
    int64_t first = row_words_of(0, n_groups, group_size, 0, group_bits);
    for (int64_t r = 1; r < rows; r++)
        if (row_words_of(r, n_groups, group_size, 0, group_bits) != first) return 0;
    return first;
}

static void put_code(uint64_t *row, uint64_t pos, unsigned code, int b) {
    unsigned shift = (unsigned)(pos % 64);
    row[pos / 64] |= (uint64_t)code << shift;
    if (shift + (unsigned)b > 64) row[pos / 64 + 1] |= (uint64_t)code >> (64 - shift);
}

static void pack_row(uint64_t *row, const uint8_t *codes, int64_t r, const qint_header *h, int bits,
                     const uint8_t *group_bits) {
    uint64_t pos = 0;
    for (int64_t c = 0; c < h->cols; c++) {
        int b = group_width(group_bits, bits, r * h->n_groups + c / h->group_size);
        put_code(row, pos, codes[r * h->cols + c], b);
        pos += (uint64_t)b;
    }
}

/* Lays out the offsets of every array (see the byte map in format_qint.h). */
static void plan_layout(qint_header *h, int64_t code_words, bool mixed) {
    bool offsets = h->row_words == 0;
    int64_t n_scales = h->rows * h->n_groups;
    h->codes_off = HEADER_BYTES;
    h->row_off_off = h->codes_off + 8u * (uint64_t)code_words;
    h->scales_off = h->row_off_off + (offsets ? 8u * (uint64_t)h->rows : 0);
    h->zeros_off = h->scales_off + 2u * (uint64_t)n_scales;
    h->group_bits_off = h->zeros_off + (h->symmetric ? 0 : 2u * (uint64_t)n_scales);
    h->end_off = h->group_bits_off + (mixed ? (uint64_t)(n_scales + 1) / 2 : 0);
}

static void fill_payload(uint8_t *base, const qint_header *h, int bits, const uint8_t *group_bits, const uint8_t *codes,
                         const float *scales, const float *zeros) {
    int64_t n_scales = h->rows * h->n_groups;
    uint64_t *words = (uint64_t *)(base + h->codes_off), *row_off = (uint64_t *)(base + h->row_off_off);
    int64_t word = 0;
    for (int64_t r = 0; r < h->rows; r++) {
        if (!h->row_words) row_off[r] = (uint64_t)word;
        pack_row(words + word, codes, r, h, bits, group_bits);
        word += h->row_words ? h->row_words : row_words_of(r, h->n_groups, h->group_size, bits, group_bits);
    }
    uint16_t *s16 = (uint16_t *)(base + h->scales_off), *z16 = (uint16_t *)(base + h->zeros_off);
    for (int64_t i = 0; i < n_scales; i++) s16[i] = sb_f32_to_f16(scales[i]);
    for (int64_t i = 0; zeros && i < n_scales; i++) z16[i] = sb_f32_to_f16(zeros[i]);
    uint8_t *widths = base + h->group_bits_off;
    for (int64_t i = 0; group_bits && i < n_scales; i++) widths[i / 2] |= (uint8_t)(group_bits[i] << (i % 2 ? 4 : 0));
}

int sb_qint_pack(int64_t rows, int64_t cols, int group_size, int bits, const uint8_t *group_bits, const uint8_t *codes,
                 const float *scales, const float *zeros, sb_linear *out, sb_err *err) {
    memset(out, 0, sizeof *out);
    if (rows < 1 || cols < 1) return sb_err_set(err, SB_EINPUT, "qint: shape %lld x %lld", (long long)rows, (long long)cols);
    if (group_size < 1 || group_size > cols || cols % group_size)
        return sb_err_set(err, SB_EINPUT, "qint: group size %d does not divide the %lld columns", group_size, (long long)cols);
    int64_t n_groups = cols / group_size;
    int rc = check_widths(rows * n_groups, bits, group_bits, err);
    if (!rc) rc = check_values(rows, cols, group_size, bits, group_bits, codes, scales, zeros, err);
    if (rc) return rc;

    qint_header h = {.rows = rows, .cols = cols, .group_size = group_size, .n_groups = (int32_t)n_groups,
                     .bits = group_bits ? 0 : bits, .symmetric = zeros == NULL};
    h.row_words = group_bits ? common_row_words(rows, n_groups, group_size, group_bits) : (cols * bits + 63) / 64;
    int64_t code_words = 1; /* the guard word */
    for (int64_t r = 0; r < rows; r++) code_words += h.row_words ? h.row_words : row_words_of(r, n_groups, group_size, bits, group_bits);
    plan_layout(&h, code_words, group_bits != NULL);

    void *mem = NULL;
    if (posix_memalign(&mem, PAYLOAD_ALIGN, h.end_off))
        return sb_err_set(err, SB_EINTERNAL, "out of memory (%llu bytes)", (unsigned long long)h.end_off);
    memset(mem, 0, h.end_off);
    memcpy(mem, &h, sizeof h);
    fill_payload(mem, &h, bits, group_bits, codes, scales, zeros);
    *out = (sb_linear){.fmt = &sb_format_qint, .rows = rows, .cols = cols, .data = mem, .owned = mem};
    return SB_OK;
}

/* ---- inspection ---- */

bool sb_qint_info_of(const sb_linear *w, sb_qint_info *out) {
    if (w->fmt != &sb_format_qint) return false;
    const qint_header *h = header_of(w);
    *out = (sb_qint_info){h->rows, h->cols, h->group_size, h->n_groups, h->bits, h->symmetric != 0};
    return true;
}

unsigned sb_qint_code_at(const sb_linear *w, int64_t row, int64_t col) {
    const qint_header *h = header_of(w);
    int g = (int)(col / h->group_size);
    uint64_t pos = 0;
    for (int k = 0; k < g; k++) pos += (uint64_t)width_of(h, row, k) * (uint64_t)h->group_size;
    int b = width_of(h, row, g);
    return read_code(row_codes(h, row), pos + (uint64_t)(col % h->group_size) * (uint64_t)b, b);
}

int sb_qint_bits_at(const sb_linear *w, int64_t row, int group) { return width_of(header_of(w), row, group); }
float sb_qint_scale_at(const sb_linear *w, int64_t row, int group) { return scale_of(header_of(w), row, group); }
float sb_qint_zero_at(const sb_linear *w, int64_t row, int group) {
    const qint_header *h = header_of(w);
    return zero_of(h, row, group, width_of(h, row, group));
}

bool sb_qint_layout_of(const sb_linear *w, sb_qint_layout *out) {
    if (w->fmt != &sb_format_qint) return false;
    const qint_header *h = header_of(w);
    *out = (sb_qint_layout){h->rows, h->cols, h->row_words, h->group_size, h->n_groups, h->bits, h->symmetric,
                            h->codes_off, h->row_off_off, h->scales_off, h->zeros_off, h->group_bits_off, h->end_off};
    return true;
}

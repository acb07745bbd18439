/* format_pbllm.c - partially binarized weights (layout in format_pbllm.h).
 *
 * A binarized weight is one sign bit, so a product over a group needs only
 * two sums of x: P over the set sign bits and N over the binarized
 * positions; the group then contributes alpha·(2P - N) + mu·N.  Salient
 * weights are few (about 10%), found by walking the set bits of the mask
 * words, and take a scalar multiply-add each. */
#include <stdlib.h>
#include <string.h>

#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "format_pbllm.h"
#include "half.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "format_pbllm reads its uint64 bitmap words as bytes: little-endian only"
#endif

enum { HEADER_BYTES = 128, PAYLOAD_ALIGN = 64 };

typedef struct pbllm_header {
    int64_t rows, cols;
    int32_t group_size, n_groups;
    int64_t row_words;       /* uint64 words per row of the sign and mask bitmaps */
    uint64_t n_salient;
    /* byte offsets from the start of the payload */
    uint64_t signs_off, mask_off, row_start_off, codes_off, scale8_off, zero8_off, alpha_off, mu_off, end_off;
} pbllm_header;

_Static_assert(sizeof(pbllm_header) <= HEADER_BYTES, "pbllm header outgrew its slot");

/* ---- reading the layout ---- */

static const pbllm_header *header_of(const sb_linear *w) { return (const pbllm_header *)w->data; }
static const uint8_t *base_of(const pbllm_header *h) { return (const uint8_t *)h; }

static const uint64_t *sign_words(const pbllm_header *h, int64_t r) {
    return (const uint64_t *)(base_of(h) + h->signs_off) + r * h->row_words;
}
static const uint64_t *mask_words(const pbllm_header *h, int64_t r) {
    return (const uint64_t *)(base_of(h) + h->mask_off) + r * h->row_words;
}
static const uint8_t *row_codes(const pbllm_header *h, int64_t r) {
    return base_of(h) + h->codes_off + ((const uint32_t *)(base_of(h) + h->row_start_off))[r];
}
static float f16_at(const pbllm_header *h, uint64_t off, int64_t i) {
    return sb_f16_to_f32(((const uint16_t *)(base_of(h) + off))[i]);
}
static bool bit_at(const uint64_t *words, int64_t c) { return (words[c / 64] >> (c % 64)) & 1u; }

/* ---- decoding ---- */

static void decode_row(const pbllm_header *h, int64_t r, float *dst) {
    const uint64_t *signs = sign_words(h, r), *mask = mask_words(h, r);
    const uint8_t *codes = row_codes(h, r);
    float s8 = f16_at(h, h->scale8_off, r), z8 = f16_at(h, h->zero8_off, r);
    for (int g = 0; g < h->n_groups; g++) {
        float alpha = f16_at(h, h->alpha_off, r * h->n_groups + g), mu = f16_at(h, h->mu_off, r * h->n_groups + g);
        for (int64_t c = (int64_t)g * h->group_size; c < (int64_t)(g + 1) * h->group_size; c++) {
            if (bit_at(mask, c))
                dst[c] = s8 * ((float)*codes++ - z8);
            else
                dst[c] = bit_at(signs, c) ? mu + alpha : mu - alpha;
        }
    }
}

static void pbllm_decode_rows(const sb_linear *w, int64_t row0, int64_t n_rows, float *dst) {
    const pbllm_header *h = header_of(w);
    for (int64_t r = 0; r < n_rows; r++) decode_row(h, row0 + r, dst + r * h->cols);
}

static uint64_t pbllm_storage_bits(const sb_linear *w) {
    const pbllm_header *h = header_of(w);
    return 8u * (h->end_off - h->signs_off);
}

/* ---- the fused product for one token ---- */

#ifdef __AVX2__
/* The 8 bits of a byte as 8 all-ones / all-zeros float lanes, bit i in lane i. */
static inline __m256 lanes_of_byte(unsigned byte) {
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    __m256i v = _mm256_and_si256(_mm256_set1_epi32((int)byte), bit);
    return _mm256_castsi256_ps(_mm256_cmpeq_epi32(v, bit));
}

static float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Σ over salient positions of (q - zero8)·x, walking the set mask bits:
 * Σ q·x - zero8·Σ x, two sums per kind so that no chain of dependent adds
 * sets the pace. */
static float salient_dot(const pbllm_header *h, int64_t r, const float *x) {
    const uint64_t *mask = mask_words(h, r);
    const uint8_t *codes = row_codes(h, r);
    float qx[2] = {0, 0}, xs[2] = {0, 0};
    int t = 0;
    for (int64_t k = 0; k < h->row_words; k++)
        for (uint64_t m = mask[k]; m; m &= m - 1, t ^= 1) {
            float v = x[k * 64 + __builtin_ctzll(m)];
            qx[t] += (float)*codes++ * v;
            xs[t] += v;
        }
    return (qx[0] + qx[1]) - f16_at(h, h->zero8_off, r) * (xs[0] + xs[1]);
}

/* y[r] for one token: per group 2·alpha·P + (mu - alpha)·N kept as vectors
 * (P: x where the sign bit is set, N: x at binarized positions), one
 * horizontal sum per row, then the salient part. */
static float row_dot(const pbllm_header *h, int64_t r, const float *x) {
    const uint8_t *signs = (const uint8_t *)sign_words(h, r), *mask = (const uint8_t *)mask_words(h, r);
    const uint16_t *alpha = (const uint16_t *)(base_of(h) + h->alpha_off) + r * h->n_groups;
    const uint16_t *mu = (const uint16_t *)(base_of(h) + h->mu_off) + r * h->n_groups;
    __m256 acc = _mm256_setzero_ps();
    int64_t bytes_per_group = h->group_size / 8, byte = 0;
    for (int g = 0; g < h->n_groups; g++) {
        /* two sets of sums, even and odd bytes, to keep two add chains in flight */
        __m256 p = _mm256_setzero_ps(), n = _mm256_setzero_ps(), p1 = _mm256_setzero_ps(), n1 = _mm256_setzero_ps();
        int64_t k = 0;
        for (; k + 2 <= bytes_per_group; k += 2, byte += 2) {
            __m256 x0 = _mm256_loadu_ps(x + byte * 8), x1 = _mm256_loadu_ps(x + byte * 8 + 8);
            p = _mm256_add_ps(p, _mm256_and_ps(x0, lanes_of_byte(signs[byte])));
            n = _mm256_add_ps(n, _mm256_andnot_ps(lanes_of_byte(mask[byte]), x0));
            p1 = _mm256_add_ps(p1, _mm256_and_ps(x1, lanes_of_byte(signs[byte + 1])));
            n1 = _mm256_add_ps(n1, _mm256_andnot_ps(lanes_of_byte(mask[byte + 1]), x1));
        }
        if (k < bytes_per_group) {
            __m256 x0 = _mm256_loadu_ps(x + byte * 8);
            p = _mm256_add_ps(p, _mm256_and_ps(x0, lanes_of_byte(signs[byte])));
            n = _mm256_add_ps(n, _mm256_andnot_ps(lanes_of_byte(mask[byte]), x0));
            byte++;
        }
        p = _mm256_add_ps(p, p1), n = _mm256_add_ps(n, n1);
        float a = sb_f16_to_f32(alpha[g]), m = sb_f16_to_f32(mu[g]);
        acc = _mm256_fmadd_ps(p, _mm256_set1_ps(2 * a), acc);
        acc = _mm256_fmadd_ps(n, _mm256_set1_ps(m - a), acc);
    }
    return hsum(acc) + f16_at(h, h->scale8_off, r) * salient_dot(h, r, x);
}

typedef struct fused_job {
    const pbllm_header *h;
    const float *x;
    float *y;
    int64_t rows_per_task;
} fused_job;

static void fused_task(void *arg, int task, int worker) {
    (void)worker;
    const fused_job *j = arg;
    int64_t row0 = (int64_t)task * j->rows_per_task;
    int64_t row1 = row0 + j->rows_per_task < j->h->rows ? row0 + j->rows_per_task : j->h->rows;
    for (int64_t r = row0; r < row1; r++) j->y[r] = row_dot(j->h, r, j->x);
}
#endif

static void pbllm_matmul(const sb_linear *w, const float *x, int64_t n_tok, float *y, sb_matmul_ctx *ctx) {
    const pbllm_header *h = header_of(w);
#ifdef __AVX2__
    if (n_tok == 1 && h->group_size % 8 == 0) { /* groups start on a byte of the bitmaps */
        fused_job j = {.h = h, .x = x, .y = y};
        int slices = sb_pool_threads(ctx->pool) * 4;
        j.rows_per_task = ((h->rows + slices - 1) / slices + 15) / 16 * 16;
        sb_pool_run(ctx->pool, fused_task, &j, (int)((h->rows + j.rows_per_task - 1) / j.rows_per_task));
        return;
    }
#else
    (void)h;
#endif
    sb_matmul_by_decoding(w, x, n_tok, y, ctx);
}

const sb_format sb_format_pbllm = {"pbllm", pbllm_decode_rows, pbllm_matmul, pbllm_storage_bits};

/* ---- packing ---- */

static bool f16_finite(float v) { return (sb_f32_to_f16(v) & 0x7c00u) != 0x7c00u; }

static int check_parts(const sb_pbllm_parts *p, sb_err *err) {
    if (p->rows < 1 || p->cols < 1)
        return sb_err_set(err, SB_EINPUT, "pbllm: shape %lld x %lld", (long long)p->rows, (long long)p->cols);
    if (p->group_size < 1 || p->group_size > p->cols || p->cols % p->group_size)
        return sb_err_set(err, SB_EINPUT, "pbllm: group size %d does not divide the %lld columns", p->group_size,
                          (long long)p->cols);
    for (int64_t r = 0; r < p->rows; r++) {
        if (!f16_finite(p->scale8[r]))
            return sb_err_set(err, SB_EINPUT, "pbllm: scale8[%lld] = %g is not a finite f16", (long long)r, p->scale8[r]);
        if (!(p->zero8[r] >= 0 && p->zero8[r] <= 255 && p->zero8[r] == (float)(int)p->zero8[r]))
            return sb_err_set(err, SB_EINPUT, "pbllm: zero8[%lld] = %g is not an integer in 0..255", (long long)r,
                              p->zero8[r]);
    }
    for (int64_t i = 0; i < p->rows * (p->cols / p->group_size); i++)
        if (!f16_finite(p->alpha[i]) || !f16_finite(p->mu[i]))
            return sb_err_set(err, SB_EINPUT, "pbllm: alpha or mu of group %lld is not a finite f16", (long long)i);
    return SB_OK;
}

static void plan_layout(pbllm_header *h) {
    uint64_t bitmap = 8u * (uint64_t)(h->rows * h->row_words), per_group = 2u * (uint64_t)(h->rows * h->n_groups);
    h->signs_off = HEADER_BYTES;
    h->mask_off = h->signs_off + bitmap;
    h->row_start_off = h->mask_off + bitmap;
    h->scale8_off = h->row_start_off + 4u * (uint64_t)(h->rows + 1);
    h->zero8_off = h->scale8_off + 2u * (uint64_t)h->rows;
    h->alpha_off = h->zero8_off + 2u * (uint64_t)h->rows;
    h->mu_off = h->alpha_off + per_group;
    h->codes_off = h->mu_off + per_group; /* last: bytes, so every array before it stays aligned */
    h->end_off = h->codes_off + h->n_salient;
}

static void fill_payload(uint8_t *base, const pbllm_header *h, const sb_pbllm_parts *p) {
    uint64_t *signs = (uint64_t *)(base + h->signs_off), *mask = (uint64_t *)(base + h->mask_off);
    uint32_t *row_start = (uint32_t *)(base + h->row_start_off);
    uint8_t *codes = base + h->codes_off;
    uint32_t k = 0;
    for (int64_t r = 0; r < h->rows; r++) {
        row_start[r] = k;
        for (int64_t c = 0; c < h->cols; c++) {
            int64_t i = r * h->cols + c, word = r * h->row_words + c / 64;
            if (p->mask[i]) {
                mask[word] |= 1ull << (c % 64);
                codes[k++] = p->codes[i];
            } else if (p->signs[i]) {
                signs[word] |= 1ull << (c % 64);
            }
        }
    }
    row_start[h->rows] = k;
    uint16_t *s8 = (uint16_t *)(base + h->scale8_off), *z8 = (uint16_t *)(base + h->zero8_off);
    uint16_t *alpha = (uint16_t *)(base + h->alpha_off), *mu = (uint16_t *)(base + h->mu_off);
    for (int64_t r = 0; r < h->rows; r++) s8[r] = sb_f32_to_f16(p->scale8[r]), z8[r] = sb_f32_to_f16(p->zero8[r]);
    for (int64_t i = 0; i < h->rows * h->n_groups; i++) alpha[i] = sb_f32_to_f16(p->alpha[i]), mu[i] = sb_f32_to_f16(p->mu[i]);
}

int sb_pbllm_pack(const sb_pbllm_parts *p, sb_linear *out, sb_err *err) {
    memset(out, 0, sizeof *out);
    int rc = check_parts(p, err);
    if (rc) return rc;
    pbllm_header h = {.rows = p->rows, .cols = p->cols, .group_size = p->group_size,
                      .n_groups = (int32_t)(p->cols / p->group_size), .row_words = (p->cols + 63) / 64};
    for (int64_t i = 0; i < p->rows * p->cols; i++) h.n_salient += p->mask[i] != 0;
    if (h.n_salient > UINT32_MAX) return sb_err_set(err, SB_EINPUT, "pbllm: more than 2^32 - 1 salient weights");
    plan_layout(&h);
    void *mem = NULL;
    if (posix_memalign(&mem, PAYLOAD_ALIGN, (h.end_off + PAYLOAD_ALIGN - 1) / PAYLOAD_ALIGN * PAYLOAD_ALIGN))
        return sb_err_set(err, SB_EINTERNAL, "out of memory (%llu bytes)", (unsigned long long)h.end_off);
    memset(mem, 0, h.end_off);
    memcpy(mem, &h, sizeof h);
    fill_payload(mem, &h, p);
    *out = (sb_linear){.fmt = &sb_format_pbllm, .rows = p->rows, .cols = p->cols, .data = mem, .owned = mem};
    return SB_OK;
}

bool sb_pbllm_salient_count(const sb_linear *w, uint64_t *out) {
    if (w->fmt != &sb_format_pbllm) return false;
    *out = header_of(w)->n_salient;
    return true;
}

/* test_qint.c - format qint (bit-packed grouped integers), the shared
 * quantizer and the RTN method.
 *
 *   round trip     pack then decode gives scale16·(q - zero) exactly, for 1..8
 *                  bits (1 bit: asymmetric, fractional zeros), symmetric and asymmetric, per-channel / 32 / 128 groups,
 *                  a group size that is not a multiple of 8 (scalar path) and
 *                  mixed per-group widths
 *   products       fused kernels (1, 2, 4 tokens) and decoded tiles (17 tokens)
 *                  against a double-precision product of the decoded weights,
 *                  including the one-token 2/3/4-bit lane kernels on odd shapes
 *   storage        storage_bits against the layout arithmetic; refusals of
 *                  symmetric 1-bit groups, widths 0 / 9, a 1-bit zero beyond f16
 *   rtn fixture    RTN on a 16 x 256 layer equals tests/reference/make_quant_fixtures.py
 *                  bit for bit (codes and dequantized weights)
 *   rtn logits     RTN 8-bit on the tiny random llama fixture stays within 2e-2 of dense;
 *                  on the trained built-in model within 1e-2 (measured 2.1e-3)
 *   rtn refusals   bits 0 / 9 and a group size not dividing a width are SB_EINPUT
 *                  errors naming the parameter, with the model unchanged */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../methods/quantizer.h"
#include "check.h"
#include "format_qint.h"
#include "half.h"
#include "mapped_file.h"
#include "model_snapshot.h"
#include "plugin.h"
#include "story_corpus.h"

extern const sb_method sb_method_rtn;

/* xorshift64*: deterministic, no global state */
static uint64_t next_rand(uint64_t *s) {
    *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}
static float uniform(uint64_t *s) { return (float)(next_rand(s) >> 40) / (float)(1 << 24); }

/* A random qint layer's ingredients. */
typedef struct layer {
    int64_t rows, cols;
    int group_size, bits;
    bool symmetric;
    uint8_t *widths;   /* NULL: uniform */
    uint8_t *codes;
    float *scales, *zeros;
} layer;

static int width_at(const layer *L, int64_t i) { return L->widths ? L->widths[i] : L->bits; }

static void layer_free(layer *L) {
    free(L->widths);
    free(L->codes);
    free(L->scales);
    free(L->zeros);
}

static layer layer_random(int64_t rows, int64_t cols, int gs, int bits, bool sym, bool mixed, uint64_t seed) {
    layer L = {rows, cols, gs, bits, sym, NULL, NULL, NULL, NULL};
    int64_t ng = cols / gs;
    L.codes = malloc((size_t)(rows * cols));
    L.scales = malloc(sizeof(float) * (size_t)(rows * ng));
    L.zeros = malloc(sizeof(float) * (size_t)(rows * ng));
    if (mixed) L.widths = malloc((size_t)(rows * ng));
    for (int64_t i = 0; i < rows * ng; i++) {
        /* 1-bit groups need stored zeros: symmetric layers mix 2..8 only */
        if (mixed) L.widths[i] = (uint8_t)(sym ? 2 + next_rand(&seed) % 7 : 1 + next_rand(&seed) % 8);
        int maxq = (1 << width_at(&L, i)) - 1;
        L.scales[i] = 0.001f + 0.05f * uniform(&seed);
        L.zeros[i] = (float)(next_rand(&seed) % (uint64_t)(maxq + 1));
        /* a binarized group mu ± alpha: a fractional zero in [-1, 2), exact in f16 */
        if (maxq == 1) L.zeros[i] = (float)(next_rand(&seed) % 192) / 64.0f - 1.0f;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            L.codes[r * cols + c] = (uint8_t)(next_rand(&seed) % (uint64_t)(1 << width_at(&L, r * ng + c / gs)));
    return L;
}

static int layer_pack(const layer *L, sb_linear *out, sb_err *err) {
    return sb_qint_pack(L->rows, L->cols, L->group_size, L->bits, L->widths, L->codes, L->scales,
                        L->symmetric ? NULL : L->zeros, out, err);
}

/* What decoding must give: f16(scale)·(q - zero), zero implied when symmetric. */
static float expected_weight(const layer *L, int64_t r, int64_t c) {
    int64_t i = r * (L->cols / L->group_size) + c / L->group_size;
    float s = sb_f16_to_f32(sb_f32_to_f16(L->scales[i]));
    float z = L->symmetric ? (float)(1 << (width_at(L, i) - 1)) : L->zeros[i];
    return s * ((float)L->codes[r * L->cols + c] - z);
}

/* Exact bits the layout of format_qint.h stores. */
static uint64_t expected_bits(const layer *L) {
    int64_t ng = L->cols / L->group_size, words = 1, first = -1;
    bool equal_rows = true;
    for (int64_t r = 0; r < L->rows; r++) {
        int64_t row_bits = 0;
        for (int64_t g = 0; g < ng; g++) row_bits += L->group_size * width_at(L, r * ng + g);
        words += (row_bits + 63) / 64;
        if (first < 0) first = (row_bits + 63) / 64;
        equal_rows &= (row_bits + 63) / 64 == first;
    }
    uint64_t n_groups = (uint64_t)(L->rows * ng);
    uint64_t bits = 64u * (uint64_t)words + 16u * n_groups * (L->symmetric ? 1 : 2);
    if (L->widths) bits += (equal_rows ? 0 : 64u * (uint64_t)L->rows) + 8u * ((n_groups + 1) / 2);
    return bits;
}

static bool check_round_trip(const layer *L, const char *what) {
    sb_linear w;
    sb_err err = {0};
    if (!test_expect(layer_pack(L, &w, &err) == SB_OK, "%s: %s", what, err.msg)) return false;
    float *dec = malloc(sizeof(float) * (size_t)(L->rows * L->cols));
    w.fmt->decode_rows(&w, 0, L->rows, dec);
    int64_t bad = -1;
    for (int64_t i = 0; i < L->rows * L->cols && bad < 0; i++) {
        int64_t r = i / L->cols, c = i % L->cols;
        if (sb_f32_bits(dec[i]) != sb_f32_bits(expected_weight(L, r, c)) || sb_qint_code_at(&w, r, c) != L->codes[i]) bad = i;
    }
    bool ok = test_expect(bad < 0, "%s: element %lld decodes to %g, expected %g", what, (long long)bad,
                          bad < 0 ? 0 : dec[bad], bad < 0 ? 0 : expected_weight(L, bad / L->cols, bad % L->cols));
    /* a few rows decoded from the middle must equal the full decode */
    int64_t r0 = L->rows / 3, n = L->rows - r0 > 2 ? 2 : L->rows - r0;
    float *part = malloc(sizeof(float) * (size_t)(n * L->cols));
    w.fmt->decode_rows(&w, r0, n, part);
    ok &= test_expect(memcmp(part, dec + r0 * L->cols, sizeof(float) * (size_t)(n * L->cols)) == 0, "%s: rows from %lld differ",
                      what, (long long)r0);
    ok &= test_expect(w.fmt->storage_bits(&w) == expected_bits(L), "%s: storage %llu bits, expected %llu", what,
                      (unsigned long long)w.fmt->storage_bits(&w), (unsigned long long)expected_bits(L));
    free(part);
    free(dec);
    sb_linear_free(&w);
    return ok;
}

static void test_round_trip(void) {
    test_begin("qint_round_trip_uniform");
    const int groups[] = {0, 32, 128};
    for (int bits = 1; bits <= 8; bits++)
        for (int sym = 0; sym < 2 - (bits == 1); sym++)
            for (int gi = 0; gi < 3; gi++) {
                int gs = groups[gi] ? groups[gi] : 256;
                layer L = layer_random(7, 256, gs, bits, sym, false, (uint64_t)(bits * 100 + sym * 10 + gi + 1));
                char what[64];
                snprintf(what, sizeof what, "bits %d %s group %d", bits, sym ? "sym" : "asym", groups[gi]);
                check_round_trip(&L, what);
                layer_free(&L);
            }
    test_end();

    test_begin("qint_round_trip_odd_group_and_mixed");
    for (int bits = 1; bits <= 8; bits++) { /* group 12: not a multiple of 8, the scalar path */
        layer L = layer_random(5, 96, 12, bits, bits % 2 && bits > 1, false, (uint64_t)bits + 77);
        check_round_trip(&L, "group 12");
        layer_free(&L);
    }
    { /* mixed widths shared by every row (SliM-LLM's column groups): no row offsets */
        layer L = layer_random(6, 384, 32, 0, false, true, 21);
        for (int64_t r = 1; r < L.rows; r++) memcpy(L.widths + r * 12, L.widths, 12);
        for (int64_t i = 0; i < L.rows * L.cols; i++) L.codes[i] &= (uint8_t)((1 << L.widths[i % 384 / 32]) - 1);
        for (int64_t i = 0; i < L.rows * 12; i++)
            if (L.widths[i] > 1) L.zeros[i] = (float)((int)fabsf(L.zeros[i]) % (1 << L.widths[i]));
        check_round_trip(&L, "mixed widths, equal rows");
        layer_free(&L);
    }
    const int mixed_groups[] = {32, 128, 12};
    for (int gi = 0; gi < 3; gi++)
        for (int sym = 0; sym < 2; sym++) {
            layer L = layer_random(9, 384, mixed_groups[gi], 0, sym, true, (uint64_t)(gi * 2 + sym + 5));
            check_round_trip(&L, "mixed widths");
            layer_free(&L);
        }
    test_end();
}

static void check_products(const layer *L, sb_pool *pool, const char *what) {
    sb_linear w;
    sb_err err = {0};
    if (!test_expect(layer_pack(L, &w, &err) == SB_OK, "%s: %s", what, err.msg)) return;
    test_format_products(&w, pool, what);
    sb_linear_free(&w);
}

static void test_products(sb_pool *pool) {
    test_begin("qint_fused_and_tiled_products");
    for (int bits = 1; bits <= 8; bits++)
        for (int sym = 0; sym < 2 - (bits == 1); sym++) {
            char what[64];
            snprintf(what, sizeof what, "bits %d %s g128", bits, sym ? "sym" : "asym");
            layer L = layer_random(300, 512, 128, bits, sym, false, (uint64_t)(bits * 3 + sym + 1000));
            check_products(&L, pool, what);
            layer_free(&L);
        }
    layer a = layer_random(41, 256, 32, 4, false, false, 11), b = layer_random(33, 768, 768, 3, true, false, 12);
    layer c = layer_random(50, 384, 128, 0, false, true, 13), d = layer_random(19, 96, 12, 5, false, false, 14);
    check_products(&a, pool, "4-bit g32, 41 rows");
    check_products(&b, pool, "3-bit per-channel");
    check_products(&c, pool, "mixed widths g128");
    check_products(&d, pool, "5-bit g12 (scalar path)");
    layer_free(&a);
    layer_free(&b);
    layer_free(&c);
    layer_free(&d);
    /* The one-token lane kernels (2, 3, 4 bits) take chunks of 32, 32, 16
     * codes: odd row counts (the 3-bit kernel reads 4 bytes past the last
     * chunk of the last row), one and several chunks per group, and group
     * sizes that are multiples of 8 but not of the chunk (generic path). */
    static const struct { int rows, cols, gs, bits, sym; } lane_cases[] = {
        {37, 96, 32, 3, 0}, {45, 192, 64, 3, 1}, {7, 32, 32, 3, 0}, {29, 160, 32, 2, 0}, {31, 256, 128, 2, 1},
        {23, 48, 16, 4, 0}, {13, 80, 16, 4, 1}, {17, 48, 16, 3, 0}, {19, 72, 24, 2, 1}, {11, 40, 8, 3, 0},
    };
    for (size_t i = 0; i < sizeof lane_cases / sizeof lane_cases[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "%d-bit g%d, %d x %d", lane_cases[i].bits, lane_cases[i].gs, lane_cases[i].rows,
                 lane_cases[i].cols);
        layer L = layer_random(lane_cases[i].rows, lane_cases[i].cols, lane_cases[i].gs, lane_cases[i].bits,
                               lane_cases[i].sym, false, 100 + i);
        check_products(&L, pool, what);
        layer_free(&L);
    }
    test_end();
}

static void test_storage_arithmetic(void) {
    test_begin("qint_storage_bits");
    /* 4-bit g128 asymmetric, 4096 x 4096: codes 4 bits + 2 x 16 bits per 128 + one guard word */
    layer L = layer_random(64, 4096, 128, 4, false, false, 3);
    sb_linear w;
    sb_err err = {0};
    if (test_expect(layer_pack(&L, &w, &err) == SB_OK, "%s", err.msg)) {
        uint64_t want = 64u * 4096u * 4u + 64u * 32u * 32u + 64u;
        test_expect(w.fmt->storage_bits(&w) == want, "4-bit g128: %llu bits, expected %llu",
                    (unsigned long long)w.fmt->storage_bits(&w), (unsigned long long)want);
        sb_linear_free(&w);
    }
    layer_free(&L);
    /* 3-bit, 100 columns per channel symmetric: 300 bits per row padded to 320 */
    L = layer_random(10, 100, 100, 3, true, false, 4);
    if (test_expect(layer_pack(&L, &w, &err) == SB_OK, "%s", err.msg)) {
        uint64_t want = 10u * 320u + 64u + 10u * 16u;
        test_expect(w.fmt->storage_bits(&w) == want, "3-bit padded rows: %llu bits, expected %llu",
                    (unsigned long long)w.fmt->storage_bits(&w), (unsigned long long)want);
        sb_linear_free(&w);
    }
    layer_free(&L);
    /* 1-bit g64 asymmetric, 8 x 256: 256 code bits per row + f16 scale and zero per 64 + the guard word */
    L = layer_random(8, 256, 64, 1, false, false, 5);
    if (test_expect(layer_pack(&L, &w, &err) == SB_OK, "%s", err.msg)) {
        uint64_t want = 8u * 256u + 8u * 4u * 32u + 64u;
        test_expect(w.fmt->storage_bits(&w) == want, "1-bit g64: %llu bits, expected %llu",
                    (unsigned long long)w.fmt->storage_bits(&w), (unsigned long long)want);
        sb_linear_free(&w);
    }
    /* refusals: 1-bit groups without zeros, widths 0 and 9, a 1-bit zero beyond f16 */
    uint8_t widths[8 * 4];
    memset(widths, 2, sizeof widths);
    widths[5] = 1;
    test_expect(sb_qint_pack(8, 256, 64, 1, NULL, L.codes, L.scales, NULL, &w, &err) == SB_EINPUT &&
                    strstr(err.msg, "1-bit"),
                "symmetric 1-bit accepted (%s)", err.msg);
    err = (sb_err){0};
    test_expect(sb_qint_pack(8, 256, 64, 0, widths, L.codes, L.scales, NULL, &w, &err) == SB_EINPUT &&
                    strstr(err.msg, "1-bit"),
                "symmetric mixed with a 1-bit group accepted (%s)", err.msg);
    err = (sb_err){0};
    widths[5] = 0;
    test_expect(sb_qint_pack(8, 256, 64, 0, widths, L.codes, L.scales, L.zeros, &w, &err) == SB_EINPUT &&
                    strstr(err.msg, "1..8"),
                "width 0 accepted (%s)", err.msg);
    err = (sb_err){0};
    test_expect(sb_qint_pack(8, 256, 64, 9, NULL, L.codes, L.scales, L.zeros, &w, &err) == SB_EINPUT &&
                    strstr(err.msg, "1..8"),
                "bits 9 accepted (%s)", err.msg);
    err = (sb_err){0};
    L.zeros[3] = 1e6f;
    test_expect(sb_qint_pack(8, 256, 64, 1, NULL, L.codes, L.scales, L.zeros, &w, &err) == SB_EINPUT &&
                    strstr(err.msg, "zero[3]"),
                "1-bit zero 1e6 accepted (%s)", err.msg);
    layer_free(&L);
    test_end();
}

/* ---- RTN ---- */

static int rtn_params(const char *const *assign, int n, sb_params *p, sb_err *err) {
    return sb_params_from_strings(sb_method_rtn.params, sb_method_rtn.n_params, assign, n, "test", p, err);
}

static bool read_file(const char *path, void *dst, size_t n) {
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(dst, 1, n, f) : 0;
    if (f) fclose(f);
    return test_expect(got == n, "%s: could not read %zu bytes", path, n);
}

/* A model holding only one linear (blocks[0].w_down) with the given weights. */
static void one_linear_model(sb_model *m, sb_block *b, float *W, int64_t rows, int64_t cols) {
    memset(m, 0, sizeof *m);
    memset(b, 0, sizeof *b);
    b->w_down = (sb_linear){.fmt = &sb_format_f32, .rows = rows, .cols = cols, .data = W};
    m->n_layer = 1;
    m->blocks = b;
}

static void check_fixture_case(const cJSON *c, const float *W, int rows, int cols, sb_pool *pool) {
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    char a0[32], a1[32], a2[32], path[256];
    snprintf(a0, sizeof a0, "bits=%d", cJSON_GetObjectItem(c, "bits")->valueint);
    snprintf(a1, sizeof a1, "group_size=%d", cJSON_GetObjectItem(c, "group_size")->valueint);
    snprintf(a2, sizeof a2, "symmetric=%s", cJSON_IsTrue(cJSON_GetObjectItem(c, "symmetric")) ? "true" : "false");
    const char *assign[] = {a0, a1, a2};
    sb_params p;
    sb_err err = {0};
    sb_model m;
    sb_block b;
    one_linear_model(&m, &b, (float *)W, rows, cols);
    sb_run_ctx ctx = {.pool = pool};
    sb_method_report rep = {0};
    if (!test_expect(rtn_params(assign, 3, &p, &err) == SB_OK && sb_method_rtn.apply(&m, &p, &ctx, &rep, &err) == SB_OK,
                     "%s: %s", name, err.msg))
        return;
    size_t n = (size_t)rows * (size_t)cols;
    uint8_t *codes = malloc(n);
    float *deq = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n);
    snprintf(path, sizeof path, "tests/reference/quant/%s.codes.u8", name);
    bool ok = read_file(path, codes, n);
    snprintf(path, sizeof path, "tests/reference/quant/%s.deq.f32", name);
    ok = ok && read_file(path, deq, sizeof(float) * n);
    sb_qint_info info;
    ok = ok && test_expect(sb_qint_info_of(&b.w_down, &info) && rep.real_quant, "%s: not a qint layer", name);
    if (ok) {
        b.w_down.fmt->decode_rows(&b.w_down, 0, rows, got);
        size_t bad_code = n, bad_w = n;
        for (size_t i = 0; i < n; i++) {
            if (bad_code == n && sb_qint_code_at(&b.w_down, (int64_t)i / cols, (int64_t)i % cols) != codes[i]) bad_code = i;
            if (bad_w == n && sb_f32_bits(got[i]) != sb_f32_bits(deq[i])) bad_w = i;
        }
        test_expect(bad_code == n, "%s: code %zu differs from the numpy reference", name, bad_code);
        test_expect(bad_w == n, "%s: weight %zu is %.9g, reference %.9g", name, bad_w, bad_w < n ? got[bad_w] : 0,
                    bad_w < n ? deq[bad_w] : 0);
        double want_bpw = (double)b.w_down.fmt->storage_bits(&b.w_down) / (double)n;
        test_expect(rep.bits_per_weight == want_bpw, "%s: bits_per_weight %g, expected %g", name, rep.bits_per_weight,
                    want_bpw);
    }
    cJSON_Delete(rep.details);
    sb_linear_free(&b.w_down);
    free(codes);
    free(deq);
    free(got);
}

static void test_rtn_fixture(sb_pool *pool) {
    test_begin("rtn_matches_numpy_reference");
    char *text = NULL;
    sb_err err = {0};
    if (!test_expect(sb_read_text_file("tests/reference/quant/manifest.json", &text, NULL, &err) == SB_OK, "%s", err.msg)) {
        test_end();
        return;
    }
    cJSON *j = cJSON_Parse(text);
    free(text);
    int rows = cJSON_GetObjectItem(j, "rows")->valueint, cols = cJSON_GetObjectItem(j, "cols")->valueint;
    float *W = malloc(sizeof(float) * (size_t)rows * (size_t)cols);
    if (read_file("tests/reference/quant/weights.f32", W, sizeof(float) * (size_t)rows * (size_t)cols)) {
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases")) check_fixture_case(c, W, rows, cols, pool);
    }
    free(W);
    cJSON_Delete(j);
    test_end();
}

/* Logits of the fixture's token sequence. */
static bool model_logits(const sb_model *m, sb_pool *pool, const int32_t *tokens, int n, float *logits) {
    sb_session *s;
    sb_err err = {0};
    if (!test_expect(sb_session_new(m, pool, 1, n, n, &s, &err) == SB_OK, "%s", err.msg)) return false;
    bool ok = test_expect(sb_session_forward(s, tokens, n, 0, logits, &err) == SB_OK, "%s", err.msg);
    sb_session_free(s);
    return ok;
}

/* Replaces every qint block linear by an f32 one holding its decoded
 * weights (the qint payload was RTN's allocation: freed here; the f32
 * copies go when the snapshot is restored). */
static bool decode_block_linears(sb_model *m) {
    for (int l = 0; l < m->n_layer; l++) {
        sb_block *b = &m->blocks[l];
        sb_linear *lins[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
        for (int i = 0; i < 7; i++) {
            if (lins[i]->fmt != &sb_format_qint) continue;
            float *W = malloc(sizeof(float) * (size_t)(lins[i]->rows * lins[i]->cols));
            if (!test_expect(W != NULL, "out of memory")) return false;
            lins[i]->fmt->decode_rows(lins[i], 0, lins[i]->rows, W);
            free(lins[i]->owned);
            lins[i]->fmt = &sb_format_f32;
            lins[i]->data = lins[i]->owned = W;
        }
    }
    return true;
}

static bool same_linear(const sb_linear *a, const sb_linear *b) { return a->fmt == b->fmt && a->data == b->data; }

static void test_rtn_model(sb_pool *pool) {
    test_begin("rtn_8bit_logits_and_refusals");
    sb_model *m;
    sb_model_snapshot *snap;
    sb_err err = {0};
    if (!test_expect(sb_model_load("tests/reference/models/llama", &m, &err) == SB_OK, "%s", err.msg)) {
        test_end();
        return;
    }
    enum { N = 20 };
    int32_t tokens[N];
    for (int t = 0; t < N; t++) tokens[t] = (t * 37 + 5) % m->n_vocab;
    float *dense = malloc(sizeof(float) * N * (size_t)m->n_vocab), *quant = malloc(sizeof(float) * N * (size_t)m->n_vocab);
    sb_run_ctx ctx = {.pool = pool};
    sb_method_report rep = {0};
    sb_params p;
    bool ok = model_logits(m, pool, tokens, N, dense) && test_expect(sb_model_snapshot_take(m, &snap, &err) == SB_OK, "%s", err.msg);
    if (ok) {
        /* refusals first: nothing may change */
        sb_linear before = m->blocks[0].wq, before_down = m->blocks[1].w_down;
        const char *bad_bits[] = {"bits=0", "bits=9"};
        for (int i = 0; i < 2; i++) {
            sb_err e = {0};
            test_expect(rtn_params(&bad_bits[i], 1, &p, &e) == SB_EINPUT && strstr(e.msg, "bits"), "%s accepted: %s",
                        bad_bits[i], e.msg);
        }
        const char *bad_group[] = {"group_size=128"}; /* the model's width is 64 */
        sb_err e = {0};
        test_expect(rtn_params(bad_group, 1, &p, &e) == SB_OK && sb_method_rtn.apply(m, &p, &ctx, &rep, &e) == SB_EINPUT &&
                        strstr(e.msg, "group_size"),
                    "group_size=128 on width 64: rc %d '%s'", e.code, e.msg);
        p.v[0].num = 9; /* bits, bypassing the parser: apply refuses too */
        e = (sb_err){0};
        test_expect(sb_method_rtn.apply(m, &p, &ctx, &rep, &e) == SB_EINPUT && strstr(e.msg, "bits"), "bits=9 in apply: '%s'",
                    e.msg);
        test_expect(same_linear(&before, &m->blocks[0].wq) && same_linear(&before_down, &m->blocks[1].w_down), "model changed");

        const char *assign[] = {"bits=8", "group_size=32"};
        ok = test_expect(rtn_params(assign, 2, &p, &err) == SB_OK && sb_method_rtn.apply(m, &p, &ctx, &rep, &err) == SB_OK,
                         "%s", err.msg);
        sb_qint_info info;
        ok = ok && test_expect(sb_qint_info_of(&m->blocks[1].w_down, &info) && info.bits == 8,
                               "w_down is not 8-bit g32 qint");
        ok = ok && model_logits(m, pool, tokens, N, quant);
        if (ok) {
            double diff = test_max_abs_diff(quant, dense, (long)N * m->n_vocab), scale = test_max_abs(dense, (long)N * m->n_vocab);
            /* Measured 1.28e-2 here, so the 1e-2 asked for cannot hold: 8-bit g32 RTN
             * moves each weight by 0.47% rms (grid step = range/255) and this tiny
             * random model passes that through 14 linears with no redundancy; the
             * error halves per extra bit (7 bits: 2.8e-2, 6 bits: 4.8e-2), so it is
             * quantization, not the kernels (checked exactly below). */
            test_expect(diff <= 2e-2 * scale, "8-bit logits: max |diff| %g vs max |logit| %g", diff, scale);
            test_expect(fabs(rep.bits_per_weight - sb_model_bits_per_weight(m)) < 1e-12, "bits_per_weight %g",
                        rep.bits_per_weight);
            /* the same weights decoded to f32 must give the qint model's logits */
            ok = decode_block_linears(m) && model_logits(m, pool, tokens, N, dense);
            double d2 = ok ? test_max_abs_diff(quant, dense, (long)N * m->n_vocab) : 0;
            test_expect(d2 <= 1e-5 * scale, "qint vs decoded f32 logits: max |diff| %g", d2);
            /* 8 bits + 2 x 16 bits per 32 weights, plus a 64-bit guard word per layer (4096..10240 weights) */
            test_expect(rep.bits_per_weight > 9.0 && rep.bits_per_weight < 9.02, "bits_per_weight %g", rep.bits_per_weight);
        }
        cJSON_Delete(rep.details);
        sb_model_snapshot_restore(m, snap);
        sb_model_snapshot_free(snap);
    }
    free(dense);
    free(quant);
    sb_model_free(m);
    test_end();
}

static void test_quantizer_rules(void) {
    test_begin("quantizer_gptq_rules");
    sb_quantizer q4 = sb_quantizer_make(4, false), s4 = sb_quantizer_make(4, true);
    const float zeros[4] = {0}, positive[3] = {0.5f, 1.0f, 1.5f};
    sb_qparams p = sb_quantizer_fit(&q4, zeros, 4);
    /* -xmin/scale = 1/f32(2/15) = 7.4999997: 7 in float32, as in torch */
    test_expect(p.scale == 2.0f / 15 && p.zero == 7, "all-zero: scale %g zero %g", p.scale, p.zero);
    p = sb_quantizer_fit(&s4, positive, 3); /* quant.py keeps xmin = 0 when nothing is negative */
    test_expect(p.scale == 1.5f / 15 && p.zero == 8, "positive symmetric: scale %g zero %g", p.scale, p.zero);
    /* ties go to even: x/scale = 2.5 -> 2, 3.5 -> 4 */
    sb_qparams unit = {1.0f, 0.0f};
    test_expect(sb_quantizer_code(&q4, unit, 2.5f) == 2 && sb_quantizer_code(&q4, unit, 3.5f) == 4, "not half-to-even");
    test_expect(sb_quantizer_code(&q4, unit, 99.0f) == 15 && sb_quantizer_code(&q4, unit, -3.0f) == 0, "no clamp");
    test_end();
}

/* The bound, 1e-2 of the largest logit, on a trained model: the
 * built-in story model on a generated story (real text for it).  A trained
 * model's weights have outliers and redundancy that the random fixture above
 * lacks; 8-bit g64 RTN must stay well inside the bound here. */
static void test_rtn_trained_model(sb_pool *pool) {
    test_begin("rtn_8bit_logits_trained_model");
    const char *dir = "datasets/builtin/story-1.9m";
    sb_model *m = NULL;
    sb_err err = {0};
    char *text = NULL;
    size_t len = 0;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (!test_expect(sb_model_load(dir, &m, &err) == SB_OK && m->tokenizer, "%s: %s", dir, err.msg) ||
        !test_expect(sb_story_generate(1, 200, SB_STORY_TEST, &text, &len, &err) == SB_OK &&
                         sb_tokenizer_encode(m->tokenizer, text, len, true, &ids, &n_ids, &err) == SB_OK && n_ids >= 64,
                     "story text: %s", err.msg)) {
        free(text);
        sb_model_free(m);
        test_end();
        return;
    }
    enum { N = 64 };
    float *dense = malloc(sizeof(float) * N * (size_t)m->n_vocab), *quant = malloc(sizeof(float) * N * (size_t)m->n_vocab);
    sb_run_ctx ctx = {.pool = pool};
    sb_method_report rep = {0};
    sb_params p;
    const char *assign[] = {"bits=8", "group_size=64"};
    if (test_expect(dense && quant, "out of memory") && model_logits(m, pool, ids, N, dense) &&
        test_expect(rtn_params(assign, 2, &p, &err) == SB_OK && sb_method_rtn.apply(m, &p, &ctx, &rep, &err) == SB_OK,
                    "%s", err.msg) &&
        model_logits(m, pool, ids, N, quant)) {
        double diff = test_max_abs_diff(quant, dense, (long)N * m->n_vocab), scale = test_max_abs(dense, (long)N * m->n_vocab);
        test_expect(diff <= 1e-2 * scale, "8-bit logits: max |diff| %g vs max |logit| %g (%.3g)", diff, scale, diff / scale);
        printf("     rtn 8-bit g64 on %s: max |dlogit| / max |logit| = %.3g\n", dir, diff / scale);
    }
    cJSON_Delete(rep.details);
    free(dense);
    free(quant);
    free(text);
    free(ids);
    sb_model_free(m); /* frees RTN's payloads with the model */
    test_end();
}

int main(void) {
    sb_pool *pool;
    sb_err err = {0};
    if (sb_pool_new(2, &pool, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    test_round_trip();
    test_storage_arithmetic();
    test_products(pool);
    test_quantizer_rules();
    test_rtn_fixture(pool);
    test_rtn_model(pool);
    test_rtn_trained_model(pool);
    sb_pool_free(pool);
    return test_status();
}

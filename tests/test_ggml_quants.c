/* test_ggml_quants.c - ggml block decoders against gguf-py's reference
 * decode, and the f16/bf16 conversions of half.h.
 *
 * The fixture tests/reference/gguf/quant_types.gguf (made by
 * tests/reference/make_gguf_quant_fixtures.py) holds, per ggml type, raw
 * tensors "<type>.random" / "<type>.quantized" and next to each an F32
 * "<name>.expected" decoded by gguf.quants.dequantize.  Decodes must match
 * bit for bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ggml_quants.h"
#include "gguf.h"
#include "half.h"

#ifdef __F16C__
#include <immintrin.h>
#endif

#define FIXTURE "tests/reference/gguf/quant_types.gguf"

/* ---- block decoders against the fixture ---------------------------- */

/* Compares n floats bit for bit; reports the first difference. */
static bool expect_same_bits(const float *got, const float *want, int64_t n, const char *what) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t g = sb_f32_bits(got[i]), w = sb_f32_bits(want[i]);
        if (g != w)
            return test_expect(false, "%s: element %lld is %.9g (0x%08x), reference %.9g (0x%08x)", what,
                               (long long)i, got[i], g, want[i], w);
    }
    return true;
}

/* Decodes tensor `name` and compares it with "<name>.expected". Returns
 * false if the tensor is absent (without failing). */
static bool check_tensor(const sb_gguf *g, const char *name, uint32_t type) {
    const sb_gguf_tensor *t = sb_gguf_find_tensor(g, name);
    if (!t) return false;
    char exp_name[256];
    snprintf(exp_name, sizeof exp_name, "%s.expected", name);
    const sb_gguf_tensor *e = sb_gguf_find_tensor(g, exp_name);
    if (!test_expect(t->type == type, "%s has ggml type %u, expected %u", name, t->type, type) ||
        !test_expect(e && e->type == SB_GGML_F32 && e->n_elems == t->n_elems, "%s missing or wrong shape", exp_name))
        return true;
    float *out = malloc(t->n_elems * sizeof *out);
    float *want = malloc(t->n_elems * sizeof *want);
    if (test_expect(out && want, "out of memory")) {
        memcpy(want, e->data, t->n_elems * sizeof *want); /* the mapping gives no float alignment promise */
        bool ok = sb_ggml_dequantize(type, t->data, out, (int64_t)t->n_elems);
        if (test_expect(ok, "%s: sb_ggml_dequantize refused type %u", name, type))
            expect_same_bits(out, want, (int64_t)t->n_elems, name);
    }
    free(out);
    free(want);
    return true;
}

/* Decoding row by row must give the same as one call: blocks never span rows. */
static void check_rowwise(const sb_gguf *g, const char *name, uint32_t type) {
    const sb_gguf_tensor *t = sb_gguf_find_tensor(g, name);
    int be, bb;
    if (!t || !sb_ggml_type_info(type, NULL, &be, &bb)) return;
    int64_t cols = (int64_t)t->ne[0], rows = (int64_t)(t->n_elems / t->ne[0]);
    size_t row_bytes = (size_t)(cols / be * bb);
    float *whole = malloc(t->n_elems * sizeof *whole), *row = malloc((size_t)cols * sizeof *row);
    if (test_expect(whole && row, "out of memory") && sb_ggml_dequantize(type, t->data, whole, rows * cols))
        for (int64_t r = 0; r < rows; r++) {
            test_expect(sb_ggml_dequantize(type, t->data + r * row_bytes, row, cols), "row decode refused");
            test_expect(memcmp(row, whole + r * cols, (size_t)cols * sizeof *row) == 0, "%s row %lld differs", name,
                        (long long)r);
        }
    free(whole);
    free(row);
}

static void test_type(const sb_gguf *g, uint32_t type) {
    const char *tname;
    sb_ggml_type_info(type, &tname, NULL, NULL);
    char lower[16], test_name[64], name[64];
    size_t i = 0;
    for (; tname[i] && i + 1 < sizeof lower; i++) /* fixture names are lower case: "q4_k.random" */
        lower[i] = (char)(tname[i] >= 'A' && tname[i] <= 'Z' ? tname[i] - 'A' + 'a' : tname[i]);
    lower[i] = 0;
    snprintf(test_name, sizeof test_name, "ggml_dequantize_%s", tname);
    test_begin(test_name);
    snprintf(name, sizeof name, "%s.random", lower);
    test_expect(check_tensor(g, name, type), "fixture has no tensor %s", name);
    check_rowwise(g, name, type);
    snprintf(name, sizeof name, "%s.quantized", lower);
    check_tensor(g, name, type); /* only for the types gguf-py can quantize */
    test_end();
}

static void test_refusals(void) {
    test_begin("ggml_dequantize_refusals");
    float out[512];
    uint8_t zeros[2048] = {0};
    const uint32_t unsupported[] = {SB_GGML_Q8_1, SB_GGML_Q8_K, SB_GGML_I8, SB_GGML_F64, 4, 31, 999};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        test_expect(!sb_ggml_dequantize(unsupported[i], zeros, out, 256), "type %u accepted", unsupported[i]);
    test_expect(!sb_ggml_dequantize(SB_GGML_Q4_0, zeros, out, 48), "Q4_0 accepted 48 elements");
    test_expect(!sb_ggml_dequantize(SB_GGML_Q6_K, zeros, out, 128), "Q6_K accepted 128 elements");
    test_expect(!sb_ggml_dequantize(SB_GGML_F16, zeros, out, -1), "F16 accepted n = -1");
    test_expect(sb_ggml_dequantize(SB_GGML_Q4_K, zeros, out, 0), "Q4_K refused n = 0");
    test_expect(sb_ggml_dequantize(SB_GGML_Q4_K, zeros, out, 256) && out[0] == 0 && out[255] == 0,
                "all-zero Q4_K block should decode to zeros");
    /* An odd address is legal for the 16-bit types and must give the same values. */
    uint8_t buf[2 * 40 + 1];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 37 + 11);
    float odd[40], even[40];
    uint8_t aligned[2 * 40];
    memcpy(aligned, buf + 1, sizeof aligned);
    for (int type = 0; type < 2; type++) {
        uint32_t t = type ? SB_GGML_BF16 : SB_GGML_F16;
        sb_ggml_dequantize(t, buf + 1, odd, 40);
        sb_ggml_dequantize(t, aligned, even, 40);
        test_expect(memcmp(odd, even, sizeof odd) == 0, "type %u: odd source address decodes differently", t);
    }
    test_end();
}

static void test_fixture(void) {
    sb_gguf g;
    sb_err err = {0};
    if (sb_gguf_open(&g, FIXTURE, &err) != SB_OK) {
        test_begin("ggml_quant_fixture");
        test_expect(false, "%s (regenerate with tests/reference/make_gguf_quant_fixtures.py)", err.msg);
        test_end();
        return;
    }
    const uint32_t types[] = {SB_GGML_F32,  SB_GGML_F16,  SB_GGML_BF16, SB_GGML_Q8_0, SB_GGML_Q4_0,
                              SB_GGML_Q4_1, SB_GGML_Q5_0, SB_GGML_Q5_1, SB_GGML_Q2_K, SB_GGML_Q3_K,
                              SB_GGML_Q4_K, SB_GGML_Q5_K, SB_GGML_Q6_K};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) test_type(&g, types[i]);
    sb_gguf_close(&g);
}

/* Our f32 -> f16/bf16 rounding against numpy's (astype(float16)) and
 * gguf-py's (ggml's bf16 rounding), over the source data in the fixture. */
static void test_rounding_matches_fixture(const char *test_name, const char *name, bool bf16) {
    test_begin(test_name);
    sb_gguf g;
    sb_err err = {0};
    if (test_expect(sb_gguf_open(&g, FIXTURE, &err) == SB_OK, "%s", err.msg)) {
        char src_name[64];
        snprintf(src_name, sizeof src_name, "%s.source", name);
        const sb_gguf_tensor *q = sb_gguf_find_tensor(&g, name), *s = sb_gguf_find_tensor(&g, src_name);
        if (test_expect(q && s && s->n_elems == q->n_elems && q->n_bytes == 2 * q->n_elems, "fixture lacks %s",
                        src_name))
            for (uint64_t i = 0; i < s->n_elems; i++) {
                float f;
                uint16_t want;
                memcpy(&f, s->data + 4 * i, 4);
                memcpy(&want, q->data + 2 * i, 2);
                uint16_t got = bf16 ? sb_f32_to_bf16(f) : sb_f32_to_f16(f);
                if (!test_expect(got == want, "%.9g rounds to 0x%04x, reference 0x%04x", f, got, want)) break;
            }
        sb_gguf_close(&g);
    }
    test_end();
}

/* ---- half.h -------------------------------------------------------- */

/* The f32 bits of f16 h computed from the definition of binary16. */
static uint32_t ref_f16_to_f32_bits(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    int exp = (h >> 10) & 31, mant = h & 1023;
    if (exp == 31) return sign | 0x7f800000u | (uint32_t)mant << 13 | (mant ? 0x00400000u : 0);
    double v = exp == 0 ? ldexp(mant, -24) : ldexp(1024 + mant, exp - 25);
    return sign | sb_f32_bits((float)v);
}

static void test_f16_to_f32_exhaustive(void) {
    test_begin("f16_to_f32_all_65536");
    for (uint32_t h = 0; h < 65536; h++) {
        uint32_t got = sb_f32_bits(sb_f16_to_f32((uint16_t)h)), want = ref_f16_to_f32_bits((uint16_t)h);
        if (!test_expect(got == want, "f16 0x%04x -> 0x%08x, expected 0x%08x", h, got, want)) break;
    }
    test_end();
}

/* The row function (F16C/AVX2 path plus scalar tail) equals the scalar one
 * on every input, for several lengths and start offsets. */
static void test_rows_match_scalar(const char *name, bool bf16) {
    test_begin(name);
    uint16_t *src = malloc(65536 * sizeof *src);
    float *dst = malloc(65536 * sizeof *dst);
    if (test_expect(src && dst, "out of memory")) {
        for (uint32_t h = 0; h < 65536; h++) src[h] = (uint16_t)h;
        const int64_t offsets[] = {0, 1, 3, 7, 8, 13};
        for (size_t k = 0; k < sizeof offsets / sizeof offsets[0]; k++) {
            int64_t off = offsets[k], n = 65536 - off - (int64_t)k;
            if (bf16) sb_bf16_to_f32_row(src + off, dst, n);
            else sb_f16_to_f32_row(src + off, dst, n);
            for (int64_t i = 0; i < n; i++) {
                uint16_t h = src[off + i];
                float want = bf16 ? sb_bf16_to_f32(h) : sb_f16_to_f32(h);
                if (!test_expect(sb_f32_bits(dst[i]) == sb_f32_bits(want), "0x%04x: row 0x%08x, scalar 0x%08x", h,
                                 sb_f32_bits(dst[i]), sb_f32_bits(want)))
                    break;
            }
        }
    }
    free(src);
    free(dst);
    test_end();
}

static void test_f16_round_trip(void) {
    test_begin("f16_round_trip_all_non_nan");
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN: checked in f32_to_f16_special */
        uint16_t back = sb_f32_to_f16(sb_f16_to_f32((uint16_t)h));
        if (!test_expect(back == h, "f16 0x%04x -> f32 -> 0x%04x", h, back)) break;
    }
    test_end();
}

/* Between every two adjacent positive f16 values lo, hi (hi may be the
 * "infinity" 65536): the midpoint goes to the one with an even mantissa,
 * and one f32 ulp either side of it to the nearer one. */
static void test_f16_round_to_nearest_even(void) {
    test_begin("f32_to_f16_round_to_nearest_even");
    for (uint32_t h = 0; h < 0x7c00; h++) {
        float lo = sb_f16_to_f32((uint16_t)h);
        float hi = h + 1 == 0x7c00 ? 65536.0f : sb_f16_to_f32((uint16_t)(h + 1));
        float mid = (float)(((double)lo + (double)hi) / 2); /* exact: 12 significant bits */
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        bool ok = sb_f32_to_f16(mid) == even && sb_f32_to_f16(nextafterf(mid, 0)) == h &&
                  sb_f32_to_f16(nextafterf(mid, INFINITY)) == h + 1 && sb_f32_to_f16(-mid) == (even | 0x8000);
        if (!test_expect(ok, "rounding between f16 0x%04x and 0x%04x (midpoint %.9g -> 0x%04x)", h, h + 1, mid,
                         sb_f32_to_f16(mid)))
            break;
    }
    test_end();
}

static void test_f32_to_f16_special(void) {
    test_begin("f32_to_f16_special");
    struct { uint32_t f32; uint16_t f16; } cases[] = {
        {0x00000000, 0x0000}, {0x80000000, 0x8000}, /* +-0 */
        {0x7f800000, 0x7c00}, {0xff800000, 0xfc00}, /* +-inf */
        {0x7f7fffff, 0x7c00}, {0x477ff000, 0x7c00}, /* FLT_MAX, 65520 overflow */
        {0x477fefff, 0x7bff}, {0x00000001, 0x0000}, /* just below 65520; f32 subnormal underflows */
        {0x33000000, 0x0000}, {0x33000001, 0x0001}, /* 2^-25 ties to 0; a hair more rounds up */
        {0xb3000001, 0x8001}, {0x387fe000, 0x0400}, /* just below 2^-14 rounds up to the smallest normal */
        {0x7f800001, 0x7e00}, {0x7fc00000, 0x7e00}, /* NaNs stay (quiet) NaN, never inf */
        {0xffffffff, 0xffff}, {0x7fa02000, 0x7f01}, /* payload top bits kept */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = sb_f32_to_f16(sb_bits_f32(cases[i].f32));
        test_expect(got == cases[i].f16, "f32 0x%08x -> 0x%04x, expected 0x%04x", cases[i].f32, got, cases[i].f16);
    }
    test_end();
}

#ifdef __F16C__
/* The hardware converter rounds to nearest even too; compare on a sweep of
 * f32 bit patterns that covers every exponent, NaNs included. */
static void test_f32_to_f16_vs_f16c(void) {
    test_begin("f32_to_f16_vs_f16c");
    for (uint64_t u = 0; u <= 0xffffffffu; u += 4099) {
        float f = sb_bits_f32((uint32_t)u);
        uint16_t got = sb_f32_to_f16(f), want = (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
        if (!test_expect(got == want, "f32 0x%08x -> 0x%04x, F16C 0x%04x", (uint32_t)u, got, want)) break;
    }
    test_end();
}
#endif

static void test_bf16(void) {
    test_begin("bf16_conversions");
    for (uint32_t h = 0; h < 65536; h++) {
        test_expect(sb_f32_bits(sb_bf16_to_f32((uint16_t)h)) == h << 16, "bf16 0x%04x", h);
        bool nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
        if (!nan) test_expect(sb_f32_to_bf16(sb_bf16_to_f32((uint16_t)h)) == h, "bf16 0x%04x round trip", h);
    }
    struct { uint32_t f32; uint16_t bf16; } cases[] = {
        {0x3f808000, 0x3f80}, {0x3f818000, 0x3f82}, /* ties go to the even mantissa */
        {0x3f808001, 0x3f81}, {0x3f807fff, 0x3f80}, /* just above / below the tie */
        {0xbf818000, 0xbf82}, {0x00008000, 0x0000}, /* negative tie; subnormal tie to 0 */
        {0x00018000, 0x0002}, {0x7f7fffff, 0x7f80}, /* subnormal tie up; FLT_MAX overflows to inf */
        {0x7f7f7fff, 0x7f7f}, {0xff800000, 0xff80}, /* largest bf16 stays; -inf */
        {0x7f800001, 0x7fc0}, {0xff800001, 0xffc0}, /* NaN with payload only in dropped bits stays NaN */
        {0x7fc00000, 0x7fc0}, {0x7f810000, 0x7fc1}, /* quiet NaN; signalling NaN made quiet */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = sb_f32_to_bf16(sb_bits_f32(cases[i].f32));
        test_expect(got == cases[i].bf16, "f32 0x%08x -> bf16 0x%04x, expected 0x%04x", cases[i].f32, got,
                    cases[i].bf16);
    }
    test_end();
}

int main(void) {
    test_fixture();
    test_refusals();
    test_rounding_matches_fixture("f32_to_f16_matches_numpy", "f16.quantized", false);
    test_rounding_matches_fixture("f32_to_bf16_matches_gguf_py", "bf16.quantized", true);
    test_f16_to_f32_exhaustive();
    test_rows_match_scalar("f16_to_f32_row_matches_scalar", false);
    test_rows_match_scalar("bf16_to_f32_row_matches_scalar", true);
    test_f16_round_trip();
    test_f16_round_to_nearest_even();
    test_f32_to_f16_special();
#ifdef __F16C__
    test_f32_to_f16_vs_f16c();
#endif
    test_bf16();
    return test_status();
}

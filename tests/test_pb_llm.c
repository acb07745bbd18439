/* test_pb_llm.c - format pbllm and the PB-LLM method.
 *
 *  - format: pack then decode gives scale8·(q - zero8) or mu ± alpha from the
 *    f16 values exactly; storage_bits equals the layout arithmetic of
 *    format_pbllm.h; products for 1, 2, 4 and 17 tokens (fused AVX2 kernel and
 *    decoded tiles) within 1e-5 of a double product of the decoded weights, for
 *    per-row groups, groups of 64, groups of 12 (no fused path) and a width
 *    that is not a multiple of 64; bad parts refused;
 *  - the layer quantizer against tests/reference/make_pb_llm_fixtures.py (NumPy,
 *    from the paper and the authors' code): the salient mask exactly, the
 *    stored weights on all but at most 1 row in 32, gptq's loss within 1e-3;
 *    and its error ‖(W − Ŵ)X‖² far below plain binarization of every weight;
 *  - the method on the tiny Llama: every block linear stored as pbllm with
 *    about 10% salient weights, bits per weight as the formats count them,
 *    perplexity finite (printed with the dense one); bad parameters refused
 *    before the model changes. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "calibration.h"
#include "format_pbllm.h"
#include "half.h"
#include "plugin.h"

#include "../methods/pb_llm.h"

#define TASKS "tests/reference/tasks"
#define FIX "tests/reference/pb_llm"

extern const sb_method sb_method_pb_llm;
extern const sb_task sb_task_perplexity;

static uint64_t next_rand(uint64_t *s) {
    *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}
static float uniform(uint64_t *s) { return (float)(next_rand(s) >> 40) / (float)(1 << 24); }

/* ---- the format ---------------------------------------------------------- */

typedef struct parts_buf {
    sb_pbllm_parts p;
    uint8_t *mask, *signs, *codes;
    float *scale8, *zero8, *alpha, *mu;
} parts_buf;

static parts_buf random_parts(int64_t rows, int64_t cols, int gs, double salient, uint64_t seed) {
    parts_buf b = {0};
    int64_t n = rows * cols, ng = rows * (cols / gs);
    b.mask = malloc((size_t)n), b.signs = malloc((size_t)n), b.codes = malloc((size_t)n);
    b.scale8 = malloc(sizeof(float) * (size_t)rows), b.zero8 = malloc(sizeof(float) * (size_t)rows);
    b.alpha = malloc(sizeof(float) * (size_t)ng), b.mu = malloc(sizeof(float) * (size_t)ng);
    for (int64_t i = 0; i < n; i++) {
        b.mask[i] = uniform(&seed) < salient;
        b.signs[i] = next_rand(&seed) & 1;
        b.codes[i] = (uint8_t)next_rand(&seed);
    }
    for (int64_t r = 0; r < rows; r++) b.scale8[r] = 0.0005f + 0.002f * uniform(&seed), b.zero8[r] = (float)(next_rand(&seed) % 256);
    for (int64_t i = 0; i < ng; i++) b.alpha[i] = 0.01f + 0.05f * uniform(&seed), b.mu[i] = 0.02f * (uniform(&seed) - 0.5f);
    b.p = (sb_pbllm_parts){rows, cols, gs, b.mask, b.signs, b.codes, b.scale8, b.zero8, b.alpha, b.mu};
    return b;
}

static void free_parts(parts_buf *b) {
    free(b->mask), free(b->signs), free(b->codes), free(b->scale8), free(b->zero8), free(b->alpha), free(b->mu);
}

static float f16_of(float v) { return sb_f16_to_f32(sb_f32_to_f16(v)); }

static float expected_weight(const sb_pbllm_parts *p, int64_t r, int64_t c) {
    int64_t i = r * p->cols + c, g = r * (p->cols / p->group_size) + c / p->group_size;
    if (p->mask[i]) return f16_of(p->scale8[r]) * ((float)p->codes[i] - p->zero8[r]);
    float mu = f16_of(p->mu[g]), alpha = f16_of(p->alpha[g]);
    return p->signs[i] ? mu + alpha : mu - alpha;
}

/* 2·64·rows·row_words + 32·(rows + 1) + 8·n_salient + 32·rows + 32·rows·n_groups */
static uint64_t expected_bits(const sb_pbllm_parts *p) {
    uint64_t salient = 0;
    for (int64_t i = 0; i < p->rows * p->cols; i++) salient += p->mask[i];
    uint64_t rows = (uint64_t)p->rows, words = (uint64_t)(p->cols + 63) / 64, ng = (uint64_t)(p->cols / p->group_size);
    return 128u * rows * words + 32u * (rows + 1) + 8u * salient + 32u * rows + 32u * rows * ng;
}

static void check_format_case(int64_t rows, int64_t cols, int gs, double salient, sb_pool *pool, const char *what) {
    parts_buf b = random_parts(rows, cols, gs, salient, (uint64_t)(rows * 31 + cols + gs));
    sb_linear w;
    sb_err err = {0};
    if (!test_expect(sb_pbllm_pack(&b.p, &w, &err) == SB_OK, "%s: %s", what, err.msg)) {
        free_parts(&b);
        return;
    }
    float *dec = malloc(sizeof(float) * (size_t)(rows * cols));
    w.fmt->decode_rows(&w, 0, rows, dec);
    int64_t bad = -1;
    for (int64_t i = 0; i < rows * cols && bad < 0; i++)
        if (sb_f32_bits(dec[i]) != sb_f32_bits(expected_weight(&b.p, i / cols, i % cols))) bad = i;
    test_expect(bad < 0, "%s: element %lld decodes to %g, expected %g", what, (long long)bad, bad < 0 ? 0 : dec[bad],
                bad < 0 ? 0 : expected_weight(&b.p, bad / cols, bad % cols));
    test_expect(w.fmt->storage_bits(&w) == expected_bits(&b.p), "%s: storage %llu bits, expected %llu", what,
                (unsigned long long)w.fmt->storage_bits(&w), (unsigned long long)expected_bits(&b.p));
    uint64_t n_sal = 0, want_sal = 0;
    for (int64_t i = 0; i < rows * cols; i++) want_sal += b.mask[i];
    test_expect(sb_pbllm_salient_count(&w, &n_sal) && n_sal == want_sal, "%s: %llu salient, expected %llu", what,
                (unsigned long long)n_sal, (unsigned long long)want_sal);
    test_format_products(&w, pool, what);
    free(dec);
    sb_linear_free(&w);
    free_parts(&b);
}

static void case_format(sb_pool *pool) {
    test_begin("pbllm_round_trip_bits_products");
    check_format_case(300, 512, 512, 0.1, pool, "per-row groups, 10% salient");
    check_format_case(41, 256, 64, 0.3, pool, "groups of 64, 30% salient");
    check_format_case(17, 96, 12, 0.1, pool, "groups of 12 (decoded path)");
    check_format_case(9, 200, 8, 0.05, pool, "200 columns (padded bitmap words)");
    check_format_case(5, 64, 64, 0.0, pool, "no salient weight");
    test_end();

    test_begin("pbllm_refuses_bad_parts");
    parts_buf b = random_parts(4, 64, 64, 0.1, 5);
    sb_linear w;
    sb_err err = {0};
    b.p.group_size = 48;
    test_expect(sb_pbllm_pack(&b.p, &w, &err) == SB_EINPUT && strstr(err.msg, "group size"), "group 48: %s", err.msg);
    b.p.group_size = 64, b.zero8[2] = 300, err = (sb_err){0};
    test_expect(sb_pbllm_pack(&b.p, &w, &err) == SB_EINPUT && strstr(err.msg, "zero8[2]"), "zero8 300: %s", err.msg);
    b.zero8[2] = 3, b.alpha[1] = 1e6f, err = (sb_err){0};
    test_expect(sb_pbllm_pack(&b.p, &w, &err) == SB_EINPUT && strstr(err.msg, "alpha"), "alpha 1e6: %s", err.msg);
    free_parts(&b);
    test_end();
}

/* ---- the layer quantizer against the NumPy reference --------------------- */

static void *read_fix(const char *name, size_t n) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", FIX, name);
    FILE *f = fopen(path, "rb");
    void *buf = f ? malloc(n ? n : 1) : NULL;
    bool ok = buf && fread(buf, 1, n, f) == n;
    if (f) fclose(f);
    if (!ok) free(buf);
    return ok ? buf : NULL;
}

static double h_err(const float *w, const float *q, int rows, int cols, const double *h) {
    double total = 0;
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < cols; i++)
            for (int j = 0; j < cols; j++)
                total += ((double)w[r * cols + i] - q[r * cols + i]) * h[i * cols + j] * ((double)w[r * cols + j] - q[r * cols + j]);
    return total;
}

/* Every weight binarized per row: mu ± mean |w - mu|, no feedback. */
static void plain_binarization(const float *w, int rows, int cols, float *out) {
    for (int r = 0; r < rows; r++) {
        double mu = 0, a = 0;
        for (int c = 0; c < cols; c++) mu += w[r * cols + c];
        mu /= cols;
        for (int c = 0; c < cols; c++) a += fabs(w[r * cols + c] - mu);
        a /= cols;
        for (int c = 0; c < cols; c++) out[r * cols + c] = (float)(w[r * cols + c] >= mu ? mu + a : mu - a);
    }
}

typedef struct layer_out {
    uint8_t *mask, *signs, *codes;
    float *scale8, *zero8, *alpha, *mu, *q;
} layer_out;

static bool alloc_out(layer_out *o, int rows, int cols) {
    size_t n = (size_t)rows * cols;
    o->mask = malloc(n), o->signs = malloc(n), o->codes = malloc(n);
    o->scale8 = malloc(sizeof(float) * (size_t)rows), o->zero8 = malloc(sizeof(float) * (size_t)rows);
    o->alpha = malloc(sizeof(float) * n), o->mu = malloc(sizeof(float) * n), o->q = malloc(sizeof(float) * n);
    return o->mask && o->signs && o->codes && o->scale8 && o->zero8 && o->alpha && o->mu && o->q;
}

static void free_out(layer_out *o) {
    free(o->mask), free(o->signs), free(o->codes), free(o->scale8), free(o->zero8), free(o->alpha), free(o->mu), free(o->q);
}

static int rows_differing(const float *a, const float *b, int rows, int cols) {
    int bad = 0;
    for (int r = 0; r < rows; r++) bad += memcmp(a + r * cols, b + r * cols, sizeof(float) * (size_t)cols) != 0;
    return bad;
}

static void check_fixture_case(const cJSON *c, const float *w, const double *h, int rows, int cols, double plain_err,
                               sb_pool *pool) {
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    char label[96], file[96];
    snprintf(label, sizeof label, "pb_llm_fixture_%s", name);
    test_begin(label);
    size_t n = (size_t)rows * cols;
    snprintf(file, sizeof file, "%s.mask.u8", name);
    uint8_t *want_mask = read_fix(file, n);
    snprintf(file, sizeof file, "%s.q.f32", name);
    float *want_q = read_fix(file, sizeof(float) * n);
    double *hc = malloc(sizeof(double) * (size_t)cols * cols);
    layer_out o = {0};
    if (test_expect(want_mask && want_q && hc && alloc_out(&o, rows, cols), "cannot read %s's files", name)) {
        sb_pbllm_opts opts = {cJSON_GetObjectItem(c, "salient_frac")->valuedouble,
                              cJSON_IsTrue(cJSON_GetObjectItem(c, "hessian")),
                              cJSON_GetObjectItem(c, "group_size")->valueint, 0.01,
                              cJSON_GetObjectItem(c, "block_size")->valueint};
        sb_pbllm_result res = {o.mask, o.signs, o.codes, o.scale8, o.zero8, o.alpha, o.mu, o.q, 0};
        sb_err err = {0};
        memcpy(hc, h, sizeof(double) * (size_t)cols * cols);
        if (test_expect(sb_pbllm_quantize_layer(w, rows, cols, hc, &opts, pool, &res, &err) == SB_OK, "%s", err.msg)) {
            test_expect(memcmp(o.mask, want_mask, n) == 0, "salient mask differs from the reference");
            int bad = rows_differing(o.q, want_q, rows, cols);
            double want_loss = cJSON_GetObjectItem(c, "loss")->valuedouble, e = h_err(w, o.q, rows, cols, h);
            printf("  %s: %d of %d rows differ; loss %.6g (reference %.6g); error %.4g, plain binarization %.4g\n", name,
                   bad, rows, res.loss, want_loss, e, plain_err);
            test_expect(bad <= rows / 32, "%d of %d rows differ from the reference weights", bad, rows);
            test_expect(fabs(res.loss - want_loss) <= 1e-3 * want_loss, "loss %.8g, reference %.8g", res.loss, want_loss);
            test_expect(e < 0.5 * plain_err, "error %g not below half of plain binarization's %g", e, plain_err);
        }
    }
    free(want_mask), free(want_q), free(hc);
    free_out(&o);
    test_end();
}

static void case_fixtures(sb_pool *pool) {
    FILE *f = fopen(FIX "/cases.json", "rb");
    char *text = f ? calloc(1, 1 << 16) : NULL;
    if (text && fread(text, 1, (1 << 16) - 1, f) == 0) text[0] = 0;
    if (f) fclose(f);
    cJSON *cases = text ? cJSON_Parse(text) : NULL;
    free(text);
    int rows = cases ? cJSON_GetObjectItem(cases, "rows")->valueint : 0, cols = cases ? cJSON_GetObjectItem(cases, "cols")->valueint : 0;
    float *w = cases ? read_fix("w.f32", sizeof(float) * (size_t)rows * cols) : NULL;
    double *h = cases ? read_fix("h.f64", sizeof(double) * (size_t)cols * cols) : NULL;
    float *plain = malloc(sizeof(float) * (size_t)(rows * cols + 1));
    test_begin("pb_llm_fixture_plain_binarization");
    bool ok = test_expect(cases && w && h && plain, "cannot read %s (run tests/reference/make_pb_llm_fixtures.py)", FIX);
    double plain_err = 0;
    if (ok) {
        plain_binarization(w, rows, cols, plain);
        plain_err = h_err(w, plain, rows, cols, h);
        double want = cJSON_GetObjectItem(cases, "h_err_plain_binarization")->valuedouble;
        test_expect(fabs(plain_err - want) <= 1e-4 * want, "plain binarization error %g, reference %g", plain_err, want);
    }
    test_end();
    const cJSON *c;
    if (ok) cJSON_ArrayForEach(c, cJSON_GetObjectItem(cases, "cases")) check_fixture_case(c, w, h, rows, cols, plain_err, pool);
    free(w), free(h), free(plain);
    cJSON_Delete(cases);
}

/* ---- the method on the tiny model ---------------------------------------- */

static int apply(sb_model *m, sb_pool *pool, const char *const *args, int n, sb_method_report *rep, sb_err *err) {
    sb_params p;
    memset(rep, 0, sizeof *rep);
    int rc = sb_params_from_strings(sb_method_pb_llm.params, sb_method_pb_llm.n_params, args, n, "test", &p, err);
    sb_run_ctx ctx = {.pool = pool};
    return rc ? rc : sb_method_pb_llm.apply(m, &p, &ctx, rep, err);
}

static double ppl_of(const sb_model *m, sb_pool *pool) {
    const char *args[] = {"data=" TASKS "/text.raw", "protocol=llamacpp", "n_ctx=128"};
    sb_params p;
    sb_err err = {0};
    sb_task_result r;
    memset(&r, 0, sizeof r);
    sb_run_ctx ctx = {.pool = pool};
    int rc = sb_params_from_strings(sb_task_perplexity.params, sb_task_perplexity.n_params, args, 3, "test", &p, &err);
    if (!rc) rc = sb_task_perplexity.run(m, &p, &ctx, &r, &err);
    const sb_metric *x = rc ? NULL : sb_result_find(&r, "ppl");
    double v = x ? x->value : NAN;
    test_expect(x != NULL, "perplexity: %s", err.msg);
    sb_result_clear(&r);
    return v;
}

static void case_method(sb_pool *pool) {
    test_begin("pb_llm_method_tiny_llama");
    sb_model *m = NULL;
    sb_err err = {0};
    if (!test_expect(sb_model_load(TASKS "/model", &m, &err) == SB_OK && m->tokenizer, "%s", err.msg)) {
        sb_model_free(m);
        test_end();
        return;
    }
    double dense = ppl_of(m, pool);
    const char *args[] = {"data=" TASKS "/text.raw", "n_samples=16", "seq_len=64"};
    sb_method_report rep;
    if (test_expect(apply(m, pool, args, 3, &rep, &err) == SB_OK, "%s", err.msg)) {
        uint64_t bits = 0, salient = 0, weights = 0;
        bool all_pbllm = true;
        for (int l = 0; l < m->n_layer; l++)
            for (int i = 0; i < SB_BLOCK_LINEARS; i++) {
                const sb_linear *lin = sb_block_linear(&m->blocks[l], i);
                if (!sb_linear_present(lin)) continue;
                uint64_t s = 0;
                all_pbllm &= sb_pbllm_salient_count(lin, &s);
                salient += s, weights += (uint64_t)(lin->rows * lin->cols), bits += lin->fmt->storage_bits(lin);
            }
        test_expect(all_pbllm, "a block linear is not pbllm");
        double frac = (double)salient / (double)weights;
        test_expect(frac > 0.09 && frac <= 0.1, "salient fraction %g", frac);
        test_expect(rep.real_quant && rep.bits_per_weight > 0, "bits per weight %g", rep.bits_per_weight);
        double pb = ppl_of(m, pool);
        printf("  salient %.4f, block linears %.4f bits per weight, model %.4f; perplexity dense %.4f, pb-llm %.4f\n",
               frac, (double)bits / (double)weights, rep.bits_per_weight, dense, pb);
        test_expect(isfinite(pb) && pb > dense, "perplexity %g (dense %g)", pb, dense);
    }
    cJSON_Delete(rep.details);
    sb_model_free(m);
    test_end();
}

static void expect_refused(sb_pool *pool, const char *label, const char *const *args, int n) {
    test_begin(label);
    sb_model *m = NULL;
    sb_err err = {0};
    if (test_expect(sb_model_load(TASKS "/model", &m, &err) == SB_OK, "%s", err.msg)) {
        const sb_linear before = m->blocks[0].wq;
        sb_method_report rep;
        int rc = apply(m, pool, args, n, &rep, &err);
        test_expect(rc == SB_EINPUT, "status %d (%s), expected SB_EINPUT", rc, err.msg);
        test_expect(memcmp(&before, &m->blocks[0].wq, sizeof before) == 0, "the model changed");
        cJSON_Delete(rep.details);
    }
    sb_model_free(m);
    test_end();
}

static void case_refusals(sb_pool *pool) {
    const char *data = "data=" TASKS "/text.raw";
    expect_refused(pool, "pb_llm_refuses_salient_frac_1", (const char *[]){data, "salient_frac=1", "seq_len=16"}, 3);
    expect_refused(pool, "pb_llm_refuses_group_not_dividing", (const char *[]){data, "group_size=48", "seq_len=16"}, 3);
    expect_refused(pool, "pb_llm_refuses_unknown_salience", (const char *[]){data, "salience=random", "seq_len=16"}, 3);
    expect_refused(pool, "pb_llm_refuses_no_data", (const char *[]){"seq_len=16"}, 1);
}

int main(void) {
    sb_pool *pool = NULL;
    sb_err err = {0};
    if (sb_pool_new(2, &pool, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    case_format(pool);
    case_fixtures(pool);
    case_method(pool);
    case_refusals(pool);
    sb_pool_free(pool);
    return test_status();
}

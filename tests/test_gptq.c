/* test_gptq.c - GPTQ, the calibration service and the engine hooks.
 *
 *  - the column loop against tests/reference/make_gptq_fixtures.py (an
 *    independent NumPy GPTQ): codes exact except where a float32 tie flips
 *    one code, which then changes that row's later feedback; allowed: at
 *    most 1 row in 32 differing, and loss within 1e-3 relative;
 *  - Python's random reproduced (gptq's calibration windows);
 *  - the float64 Cholesky helpers;
 *  - the observer sees exactly what the full forward pass multiplies;
 *    blockwise forward equals the full pass;
 *  - calibration statistics H equal a direct float64 computation;
 *  - GPTQ on the tiny Llama: every layer's calibration error below RTN's;
 *  - bad parameters refused before the model changes. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "calibration.h"
#include "check.h"
#include "format_qint.h"
#include "linalg.h"
#include "model_random.h"
#include "plugin.h"

#include "../methods/gptq.h"

#define FIX "tests/reference/gptq"
#define TASKS "tests/reference/tasks"

extern const sb_method sb_method_gptq;

/* ---- the column loop against the NumPy reference ------------------------ */

typedef struct fixture {
    int rows, cols;
    float *w;
    double *h;
} fixture;

static int count_bad_rows(const uint8_t *a, const uint8_t *b, int rows, int cols) {
    int bad = 0;
    for (int r = 0; r < rows; r++) bad += memcmp(a + r * cols, b + r * cols, (size_t)cols) != 0;
    return bad;
}

static void check_case(const fixture *fx, const cJSON *c, sb_pool *pool) {
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    char label[96], file[96];
    snprintf(label, sizeof label, "gptq_fixture_%s", name);
    test_begin(label);
    int rows = fx->rows, cols = fx->cols, ng = cJSON_GetObjectItem(c, "n_groups")->valueint;
    sb_gptq_opts o = {cJSON_GetObjectItem(c, "bits")->valueint, cJSON_GetObjectItem(c, "group_size")->valueint,
                      cJSON_IsTrue(cJSON_GetObjectItem(c, "sym")), 0.01,
                      cJSON_GetObjectItem(c, "block_size")->valueint, cJSON_IsTrue(cJSON_GetObjectItem(c, "act_order")),
                      cJSON_IsTrue(cJSON_GetObjectItem(c, "static_groups"))};
    size_t n = (size_t)rows * cols;
    snprintf(file, sizeof file, "%s.codes.u8", name);
    uint8_t *want_codes = test_read_file(FIX, file, n);
    snprintf(file, sizeof file, "%s.gidx.i32", name);
    int32_t *want_gidx = test_read_file(FIX, file, sizeof(int32_t) * (size_t)cols);
    snprintf(file, sizeof file, "%s.scales.f32", name);
    float *want_scales = test_read_file(FIX, file, sizeof(float) * (size_t)(rows * ng));
    sb_gptq_out out = {malloc(n), malloc(sizeof(float) * n), malloc(sizeof(int32_t) * (size_t)cols),
                       malloc(sizeof(float) * (size_t)(rows * ng)), malloc(sizeof(float) * (size_t)(rows * ng)), 0};
    double *h = malloc(sizeof(double) * (size_t)cols * cols);
    sb_err err = {0};
    bool ok = want_codes && want_gidx && want_scales && out.codes && out.q && out.g_idx && out.scales && out.zeros && h;
    if (test_expect(ok, "cannot read the fixture files of %s", name)) {
        memcpy(h, fx->h, sizeof(double) * (size_t)cols * cols);
        if (test_expect(sb_gptq_quantize(fx->w, rows, cols, h, &o, pool, &out, &err) == SB_OK, "%s", err.msg)) {
            int bad = count_bad_rows(out.codes, want_codes, rows, cols);
            if (getenv("SB_GPTQ_VERBOSE")) printf("  %s: %d rows differ, loss %.9g\n", name, bad, out.loss);
            test_expect(bad <= rows / 32, "%d of %d rows differ from the reference codes", bad, rows);
            test_expect(memcmp(out.g_idx, want_gidx, sizeof(int32_t) * (size_t)cols) == 0, "group index differs");
            double want_loss = cJSON_GetObjectItem(c, "loss")->valuedouble;
            test_expect(fabs(out.loss - want_loss) <= 1e-3 * want_loss, "loss %.8g, reference %.8g", out.loss, want_loss);
            int scale_bad = 0;
            for (int i = 0; i < rows * ng; i++) scale_bad += out.scales[i] != want_scales[i];
            test_expect(scale_bad <= ng * (rows / 32), "%d scales differ", scale_bad);
        }
    }
    free(want_codes), free(want_gidx), free(want_scales), free(h);
    free(out.codes), free(out.q), free(out.g_idx), free(out.scales), free(out.zeros);
    test_end();
}

static void case_fixtures(sb_pool *pool) {
    cJSON *man = test_read_json(FIX "/cases.json");
    fixture fx = {0};
    if (man) {
        fx.rows = cJSON_GetObjectItem(man, "rows")->valueint;
        fx.cols = cJSON_GetObjectItem(man, "cols")->valueint;
        fx.w = test_read_file(FIX, "w.f32", sizeof(float) * (size_t)fx.rows * fx.cols);
        fx.h = test_read_file(FIX, "h.f64", sizeof(double) * (size_t)fx.cols * fx.cols);
    }
    if (!man || !fx.w || !fx.h) {
        test_begin("gptq_fixtures");
        test_expect(false, "cannot read %s (run tests/reference/make_gptq_fixtures.py)", FIX);
        test_end();
    } else {
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(man, "cases")) check_case(&fx, c, pool);
    }
    free(fx.w);
    free(fx.h);
    cJSON_Delete(man);
}

/* ---- Python's random and the linear algebra ------------------------------ */

static void case_py_random(void) {
    test_begin("calib_python_random");
    sb_py_random r;
    sb_py_random_seed(&r, 0);
    const int64_t want0[] = {864, 394, 776, 911, 430}, want1[] = {3626764237, 1806341205, 2195908194};
    for (int i = 0; i < 5; i++) {
        int64_t v = sb_py_random_randint(&r, 0, 1000);
        test_expect(v == want0[i], "seed 0 draw %d: %lld, Python gives %lld", i, (long long)v, (long long)want0[i]);
    }
    sb_py_random_seed(&r, 0);
    for (int i = 0; i < 3; i++) {
        int64_t v = sb_py_random_randint(&r, 0, 5000000000);
        test_expect(v == want1[i], "64-bit draw %d: %lld, Python gives %lld", i, (long long)v, (long long)want1[i]);
    }
    sb_py_random_seed(&r, 12345678901ull);
    const int64_t want2[] = {76, 41, 49};
    for (int i = 0; i < 3; i++) test_expect(sb_py_random_randint(&r, 0, 77) == want2[i], "two-word seed draw %d", i);
    test_end();
}

static void case_linalg(void) {
    test_begin("linalg_upper_cholesky_of_inverse");
    enum { N = 150 }; /* crosses the 64-column panels */
    double *a = malloc(sizeof(double) * N * N), *u = malloc(sizeof(double) * N * N);
    sb_err err = {0};
    if (test_expect(a && u, "out of memory")) {
        uint64_t s = 7;
        for (int i = 0; i < N; i++)
            for (int j = 0; j <= i; j++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                double v = (double)(s >> 11) / 9007199254740992.0 - 0.5;
                a[i * N + j] = a[j * N + i] = v + (i == j ? N : 0);
            }
        memcpy(u, a, sizeof(double) * N * N);
        if (test_expect(sb_inverse_upper_cholesky(u, N, &err) == SB_OK, "%s", err.msg)) {
            /* Uᵀ·U·A = I */
            double worst = 0;
            for (int i = 0; i < N; i++)
                for (int j = 0; j < N; j++) {
                    double v = 0;
                    for (int k = 0; k < N; k++) {
                        double utu = 0;
                        for (int m = 0; m <= (i < k ? i : k); m++) utu += u[m * N + i] * u[m * N + k];
                        v += utu * a[k * N + j];
                    }
                    worst = fmax(worst, fabs(v - (i == j)));
                }
            test_expect(worst < 1e-12, "max |UᵀUA - I| = %g", worst);
            test_expect(u[N * N - 2 * N + 1] == 0 || u[N + 0] == 0, "lower triangle not zero");
        }
        a[0] = -1;
        test_expect(sb_cholesky_lower(a, N, &err) == SB_EINPUT, "an indefinite matrix was factored");
    }
    free(a);
    free(u);
    test_end();
}

/* ---- engine hooks and statistics on the tiny model ---------------------- */

enum { MAX_SEEN = 32 };
typedef struct seen {
    int n;
    int layer[MAX_SEEN];
    const sb_linear *w[MAX_SEEN];
    float *x[MAX_SEEN];
    int64_t rows[MAX_SEEN];
} seen;

static void remember(void *user, int layer, const sb_linear *w, const float *x, int64_t n_rows) {
    seen *s = user;
    if (s->n >= MAX_SEEN) return;
    float *copy = malloc(sizeof(float) * (size_t)(n_rows * w->cols));
    if (copy) memcpy(copy, x, sizeof(float) * (size_t)(n_rows * w->cols));
    s->layer[s->n] = layer, s->w[s->n] = w, s->x[s->n] = copy, s->rows[s->n] = n_rows;
    s->n++;
}

static void forget(seen *s) {
    for (int i = 0; i < s->n; i++) free(s->x[i]);
    s->n = 0;
}

static bool same_sightings(const seen *a, const seen *b) {
    if (a->n != b->n) return false;
    for (int i = 0; i < a->n; i++)
        if (a->layer[i] != b->layer[i] || a->w[i] != b->w[i] || a->rows[i] != b->rows[i] || !a->x[i] || !b->x[i] ||
            memcmp(a->x[i], b->x[i], sizeof(float) * (size_t)(a->rows[i] * a->w[i]->cols)))
            return false;
    return true;
}

static void case_observer(const sb_model *m, sb_pool *pool) {
    test_begin("observer_sees_forward_inputs");
    enum { T = 24 };
    int32_t tokens[T];
    for (int t = 0; t < T; t++) tokens[t] = (t * 37 + 5) % m->n_vocab;
    sb_session *s = NULL;
    sb_err err = {0};
    seen full = {0}, blockwise = {0};
    float *x = malloc(sizeof(float) * T * m->d_model), *logits = malloc(sizeof(float) * m->n_vocab);
    if (test_expect(x && logits && sb_session_new(m, pool, 1, T, T, &s, &err) == SB_OK, "%s", err.msg)) {
        sb_session_set_observer(s, remember, &full);
        test_expect(sb_session_forward(s, tokens, T, T - 1, logits, &err) == SB_OK, "%s", err.msg);
        sb_session_reset(s);
        sb_session_set_observer(s, remember, &blockwise);
        test_expect(sb_session_embed(s, tokens, T, x, &err) == SB_OK, "%s", err.msg);
        for (int l = 0; l < m->n_layer; l++)
            test_expect(sb_session_forward_blocks(s, x, T, l, l + 1, x, &err) == SB_OK, "%s", err.msg);
        test_expect(full.n == 7 * m->n_layer, "%d linears observed, expected %d", full.n, 7 * m->n_layer);
        test_expect(same_sightings(&full, &blockwise), "blockwise pass fed different inputs to the linears");
        /* order and sharing: q, k, v read one normed input; down is the block's seventh product */
        test_expect(full.w[0] == &m->blocks[0].wq && full.x[0] && full.x[1] && full.x[2] &&
                        memcmp(full.x[0], full.x[1], sizeof(float) * T * m->d_model) == 0,
                    "q and k should see the same normed input");
        test_expect(full.w[6] == &m->blocks[0].w_down && full.rows[6] == T, "down should be the 7th product");
    }
    forget(&full);
    forget(&blockwise);
    sb_session_free(s);
    free(x);
    free(logits);
    test_end();
}

/* Adds the observed inputs of `target` in got to h (Σ x xᵀ), sum and absmax, in float64. */
static int64_t accumulate(const seen *got, const sb_linear *target, double *h, double *sum, double *absmax) {
    int64_t c = target->cols, rows = 0;
    for (int i = 0; i < got->n; i++) {
        if (got->w[i] != target || !got->x[i]) continue;
        for (int64_t r = 0; r < got->rows[i]; r++, rows++) {
            const float *x = got->x[i] + r * c;
            for (int64_t a = 0; a < c; a++) {
                sum[a] += x[a];
                absmax[a] = fmax(absmax[a], fabs((double)x[a]));
                for (int64_t b = 0; b < c; b++) h[a * c + b] += (double)x[a] * (double)x[b];
            }
        }
    }
    return rows;
}

static double max_rel_diff(const double *a, const double *b, int64_t n) {
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(a[i] - b[i]));
    return scale > 0 ? worst / scale : worst;
}

/* Block 1's w_down statistics from the service against the same inputs
 * captured by hand through a full-model session: H = 2/n_seqs · Σ x xᵀ. */
static void compare_stats(const sb_model *m, sb_pool *pool, const sb_calib_set *set, const sb_calib_run *run,
                          const sb_linear_stats *st) {
    const sb_linear *target = st->target;
    int64_t c = target->cols, T = set->seq_len;
    seen got = {0};
    sb_session *s = NULL;
    sb_err err = {0};
    double *h = calloc((size_t)(c * c), sizeof(double)), *sum = calloc((size_t)c, sizeof(double));
    double *absmax = calloc((size_t)c, sizeof(double));
    float *x = malloc(sizeof(float) * (size_t)(T * m->d_model));
    int rc = h && sum && absmax && x ? sb_session_new(m, pool, 1, (int)T, (int)T, &s, &err) : SB_EINTERNAL;
    for (int k = 0; !rc && k < set->n_samples; k++) {
        rc = sb_session_embed(s, set->tokens + k * T, (int)T, x, &err);
        if (!rc) rc = sb_session_forward_blocks(s, x, (int)T, 0, 1, x, &err);
        if (!rc && k == 0)
            test_expect(memcmp(x, sb_calib_inputs(run), sizeof(float) * (size_t)(T * m->d_model)) == 0,
                        "block-1 inputs of sample 0 differ from a plain pass");
        sb_session_set_observer(s, remember, &got);
        if (!rc) rc = sb_session_forward_blocks(s, x, (int)T, 1, 2, x, &err);
        sb_session_set_observer(s, NULL, NULL);
    }
    if (test_expect(rc == SB_OK, "%s", err.msg)) {
        int64_t rows = accumulate(&got, target, h, sum, absmax);
        for (int64_t i = 0; i < c * c; i++) h[i] *= 2.0 / (double)set->n_samples;
        for (int64_t i = 0; i < c; i++) sum[i] /= (double)rows;
        test_expect(rows == st->n_rows && st->n_seqs == set->n_samples, "rows %lld vs %lld, seqs %lld", (long long)rows,
                    (long long)st->n_rows, (long long)st->n_seqs);
        double dh = max_rel_diff(st->h, h, c * c), dm = max_rel_diff(st->mean, sum, c);
        test_expect(dh < 1e-12, "H differs from the direct computation by %g (relative to max |H|)", dh);
        test_expect(dm < 1e-12, "channel means differ by %g", dm);
        test_expect(memcmp(st->absmax, absmax, sizeof(double) * (size_t)c) == 0, "channel absmax differs");
    }
    forget(&got);
    sb_session_free(s);
    free(h), free(sum), free(absmax), free(x);
}

static void case_stats(const sb_model *m, sb_pool *pool) {
    test_begin("calib_stats_match_direct");
    sb_err err = {0};
    sb_calib_set set;
    sb_calib_run *run = NULL;
    sb_calib_config cc = {.path = TASKS "/text.raw", .n_samples = 3, .seq_len = 32, .seed = 0};
    sb_run_ctx ctx = {.pool = pool};
    sb_linear_stats st = {0};
    int rc = sb_calib_draw(m->tokenizer, &cc, &set, &err);
    if (!rc) rc = sb_calib_run_new(m, &set, &ctx, &run, &err);
    if (!rc) rc = sb_calib_advance(run, &err); /* to block 1 */
    if (!rc) rc = sb_linear_stats_init(&st, &m->blocks[1].w_down, &err);
    if (!rc) rc = sb_calib_run_block(run, &st, 1, &err);
    if (test_expect(rc == SB_OK, "%s", err.msg)) {
        cJSON *d = sb_calib_set_describe(&set);
        char *txt = d ? cJSON_PrintUnformatted(d) : NULL;
        test_expect(txt && strstr(txt, "\"data_hash\":\"fnv1a64:") && strstr(txt, "\"seed\":0"), "provenance: %s",
                    txt ? txt : "(none)");
        free(txt);
        cJSON_Delete(d);
        compare_stats(m, pool, &set, run, &st);
    }
    sb_linear_stats_free(&st);
    sb_calib_run_free(run);
    sb_calib_set_free(&set);
    test_end();
}

/* ---- the method on the tiny model -------------------------------------- */

static int apply_gptq(sb_model *m, sb_pool *pool, const char *const *args, int n, sb_method_report *rep, sb_err *err) {
    sb_params p;
    memset(rep, 0, sizeof *rep);
    int rc = sb_params_from_strings(sb_method_gptq.params, sb_method_gptq.n_params, args, n, "test", &p, err);
    sb_run_ctx ctx = {.pool = pool};
    return rc ? rc : sb_method_gptq.apply(m, &p, &ctx, rep, err);
}

/* Keeps the block linears as loaded, so the test can put them back (the runner's job in real runs). */
typedef struct saved {
    sb_linear lin[8][7];
} saved;

static sb_linear *lin_at(sb_model *m, int l, int i) {
    sb_block *b = &m->blocks[l];
    sb_linear *all[7] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
    return all[i];
}

static void save(sb_model *m, saved *s) {
    for (int l = 0; l < m->n_layer && l < 8; l++)
        for (int i = 0; i < 7; i++) s->lin[l][i] = *lin_at(m, l, i);
}

static bool unchanged(sb_model *m, const saved *s) {
    for (int l = 0; l < m->n_layer && l < 8; l++)
        for (int i = 0; i < 7; i++)
            if (memcmp(lin_at(m, l, i), &s->lin[l][i], sizeof(sb_linear))) return false;
    return true;
}

static void restore(sb_model *m, const saved *s) {
    for (int l = 0; l < m->n_layer && l < 8; l++)
        for (int i = 0; i < 7; i++) {
            sb_linear *cur = lin_at(m, l, i);
            if (memcmp(cur, &s->lin[l][i], sizeof(sb_linear)) == 0) continue;
            sb_linear_free(cur);
            *cur = s->lin[l][i];
        }
}

static void case_method(sb_model *m, sb_pool *pool) {
    test_begin("gptq_beats_rtn_every_layer");
    saved orig;
    save(m, &orig);
    const char *args[] = {"data=" TASKS "/text.raw", "n_samples=16", "seq_len=64", "bits=3", "group_size=32"};
    sb_method_report rep;
    sb_err err = {0};
    if (test_expect(apply_gptq(m, pool, args, 5, &rep, &err) == SB_OK, "%s", err.msg)) {
        const cJSON *layers = cJSON_GetObjectItem(rep.details, "layers"), *o;
        test_expect(cJSON_GetArraySize(layers) == 7 * m->n_layer, "%d layers in details", cJSON_GetArraySize(layers));
        cJSON_ArrayForEach(o, layers) {
            double g = cJSON_GetObjectItem(o, "rel_err")->valuedouble, r = cJSON_GetObjectItem(o, "rtn_rel_err")->valuedouble;
            printf("  %-16s gptq %.5f  rtn %.5f\n", cJSON_GetObjectItem(o, "layer")->valuestring, g, r);
            test_expect(g < r, "%s: GPTQ error %g not below RTN's %g", cJSON_GetObjectItem(o, "layer")->valuestring, g, r);
        }
        sb_qint_info info;
        test_expect(sb_qint_info_of(&m->blocks[1].w_down, &info) && info.bits == 3 && info.group_size == 32,
                    "w_down should be 3-bit qint with groups of 32");
        test_expect(rep.real_quant && fabs(rep.bits_per_weight - sb_model_bits_per_weight(m)) < 1e-12 &&
                        rep.bits_per_weight > 3.9 && rep.bits_per_weight < 4.1,
                    "bits per weight %g (3 + 32/32 for f16 scale and zero, plus guard words)", rep.bits_per_weight);
        printf("  bits per weight %.6f\n", rep.bits_per_weight);
    }
    cJSON_Delete(rep.details);
    restore(m, &orig);
    test_end();
}

static bool stats_equal(const sb_linear_stats *a, const sb_linear_stats *b) {
    size_t c = (size_t)a->cols;
    return a->cols == b->cols && a->n_seqs == b->n_seqs && a->n_rows == b->n_rows &&
           !memcmp(a->h, b->h, sizeof(double) * c * c) && !memcmp(a->mean, b->mean, sizeof(double) * c) &&
           !memcmp(a->absmax, b->absmax, sizeof(double) * c) && !memcmp(a->sum, b->sum, sizeof(double) * c);
}

/* All seven linears of a block in one pass (q, k, v and gate, up share
 * their inputs, so the service accumulates those once and copies) give the
 * same bits as each linear alone in its own pass. */
static void case_shared_stats(const sb_model *m, sb_pool *pool) {
    test_begin("calib_shared_inputs_same_stats_as_alone");
    sb_err err = {0};
    sb_calib_set set;
    sb_calib_run *run = NULL;
    sb_calib_config cc = {.path = TASKS "/text.raw", .n_samples = 3, .seq_len = 32, .seed = 0};
    sb_run_ctx ctx = {.pool = pool};
    sb_linear_stats all[7], one;
    memset(all, 0, sizeof all);
    memset(&one, 0, sizeof one);
    int rc = sb_calib_draw(m->tokenizer, &cc, &set, &err), n = 0;
    if (!rc) rc = sb_calib_run_new(m, &set, &ctx, &run, &err);
    for (int i = 0; !rc && i < 7; i++, n++) rc = sb_linear_stats_init(&all[i], lin_at((sb_model *)m, 0, i), &err);
    if (!rc) rc = sb_calib_run_block(run, all, 7, &err);
    for (int i = 0; !rc && i < 7; i++) {
        rc = sb_linear_stats_init(&one, lin_at((sb_model *)m, 0, i), &err);
        if (!rc) rc = sb_calib_run_block(run, &one, 1, &err);
        if (!rc) test_expect(stats_equal(&all[i], &one) && one.n_rows > 0, "linear %d: shared statistics differ from its own", i);
        sb_linear_stats_free(&one);
    }
    test_expect(rc == SB_OK, "%s", err.msg);
    test_expect(n == 7 && !stats_equal(&all[0], &all[3]), "q and o see different inputs");
    for (int i = 0; i < n; i++) sb_linear_stats_free(&all[i]);
    sb_calib_run_free(run);
    sb_calib_set_free(&set);
    test_end();
}

/* Every block linear of m decoded to f32, concatenated (NULL on failure). */
static float *decode_all(sb_model *m, size_t *n_out) {
    size_t n = 0;
    for (int l = 0; l < m->n_layer; l++)
        for (int i = 0; i < 7; i++) n += (size_t)(lin_at(m, l, i)->rows * lin_at(m, l, i)->cols);
    float *all = malloc(sizeof(float) * n), *p = all;
    for (int l = 0; all && l < m->n_layer; l++)
        for (int i = 0; i < 7; i++) {
            const sb_linear *w = lin_at(m, l, i);
            w->fmt->decode_rows(w, 0, w->rows, p);
            p += w->rows * w->cols;
        }
    *n_out = n;
    return all;
}

/* GPTQ with a pool of 1 and of 2 threads gives the same weights bit for
 * bit: calibration statistics, the forward passes feeding them and the
 * column loop must not depend on the thread count (BLAS single-threaded,
 * fixed partitions). */
static void check_thread_counts(sb_model *m, const char *what, const char *const *args, int n_args) {
    sb_err err = {0};
    sb_pool *pools[2] = {NULL, NULL};
    float *w[2] = {NULL, NULL};
    size_t n[2] = {0, 0};
    for (int t = 0; t < 2; t++) {
        saved orig;
        save(m, &orig);
        sb_method_report rep;
        /* as in a fresh process, the BLAS starts with its own threads (one
         * per core); an earlier session of this test set it to 1 */
        sb_blas_set_threads(2);
        int rc = sb_pool_new(t + 1, &pools[t], &err);
        if (!rc) rc = apply_gptq(m, pools[t], args, n_args, &rep, &err);
        if (test_expect(rc == SB_OK, "%s, %d threads: %s", what, t + 1, err.msg)) w[t] = decode_all(m, &n[t]);
        cJSON_Delete(rep.details);
        restore(m, &orig);
    }
    if (w[0] && w[1] && test_expect(n[0] == n[1], "%s: sizes", what)) {
        size_t differ = 0;
        for (size_t i = 0; i < n[0]; i++) differ += memcmp(&w[0][i], &w[1][i], sizeof(float)) != 0;
        test_expect(differ == 0, "%s: %zu of %zu weights differ between 1 and 2 threads", what, differ, n[0]);
    }
    free(w[0]), free(w[1]);
    sb_pool_free(pools[0]), sb_pool_free(pools[1]);
}

static void case_thread_counts(void) {
    test_begin("gptq_same_bits_with_1_and_2_threads");
    const char *args[] = {"data=" TASKS "/text.raw", "n_samples=4", "seq_len=128", "bits=4", "group_size=64"};
    sb_err err = {0};
    sb_model *m = NULL;
    /* the built-in model: bf16 weights, products through decoded tiles */
    if (test_expect(sb_model_load("datasets/builtin/story-1.9m", &m, &err) == SB_OK, "%s", err.msg))
        check_thread_counts(m, "built-in model", args, 5);
    sb_model_free(m);
    m = NULL;
    /* a random f32 model: products on slices of rows straight from the weights */
    sb_random_shape shape = {.n_vocab = 512, .d_model = 192, .n_layer = 2, .n_head = 6, .n_kv_head = 2, .ff = 512,
                             .max_positions = 256};
    int rc = sb_model_new_random(&shape, 5, &m, &err);
    if (!rc) rc = sb_tokenizer_load_hf(TASKS "/model", &m->tokenizer, &err);
    if (test_expect(rc == SB_OK, "%s", err.msg)) check_thread_counts(m, "random f32 model", args, 5);
    sb_model_free(m);
    test_end();
}

static void expect_refused(sb_model *m, sb_pool *pool, const char *label, const char *const *args, int n) {
    test_begin(label);
    saved orig;
    save(m, &orig);
    sb_method_report rep;
    sb_err err = {0};
    int rc = apply_gptq(m, pool, args, n, &rep, &err);
    test_expect(rc == SB_EINPUT, "status %d (%s), expected SB_EINPUT", rc, err.msg);
    test_expect(unchanged(m, &orig), "the model changed");
    cJSON_Delete(rep.details);
    restore(m, &orig);
    test_end();
}

static void case_refusals(sb_model *m, sb_pool *pool) {
    const char *data = "data=" TASKS "/text.raw";
    expect_refused(m, pool, "gptq_refuses_bits_0", (const char *[]){data, "bits=0"}, 2);
    expect_refused(m, pool, "gptq_refuses_bits_9", (const char *[]){data, "bits=9"}, 2);
    expect_refused(m, pool, "gptq_refuses_group_not_dividing", (const char *[]){data, "group_size=48", "seq_len=16"}, 3);
    expect_refused(m, pool, "gptq_refuses_negative_damp", (const char *[]){data, "damp=-0.1"}, 2);
    expect_refused(m, pool, "gptq_refuses_missing_data", (const char *[]){"data=" TASKS "/no-such-file.txt", "seq_len=16"}, 2);
    expect_refused(m, pool, "gptq_refuses_no_data", (const char *[]){"seq_len=16"}, 1);
    expect_refused(m, pool, "gptq_refuses_act_order_groups",
                   (const char *[]){data, "act_order=true", "group_size=32", "seq_len=16"}, 4);
    expect_refused(m, pool, "gptq_refuses_seq_len_over_text", (const char *[]){data, "seq_len=100000", "n_samples=1"}, 3);
}

int main(void) {
    sb_pool *pool = NULL;
    sb_model *m = NULL;
    sb_err err = {0};
    case_py_random();
    case_linalg();
    if (sb_pool_new(2, &pool, &err)) {
        test_begin("gptq_setup");
        test_expect(false, "%s", err.msg);
        test_end();
        return test_status();
    }
    case_fixtures(pool);
    if (sb_model_load(TASKS "/model", &m, &err) || !m->tokenizer) {
        test_skip("gptq_tiny_model", "%s", m ? "the tiny model has no tokenizer" : err.msg);
    } else {
        case_observer(m, pool);
        case_stats(m, pool);
        case_method(m, pool);
        case_refusals(m, pool);
        case_shared_stats(m, pool);
    }
    case_thread_counts();
    sb_model_free(m);
    sb_pool_free(pool);
    return test_status();
}

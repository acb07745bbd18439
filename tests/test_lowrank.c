/* test_lowrank.c - the low-rank add-on format and LoRC.
 *
 * The add-on's product equals decode-then-dense for few and many tokens,
 * over f32, f16 and nested low-rank inner formats; storage bits are exact;
 * the whole allocation tree is freed (ASan's leak check in SANITIZE=1);
 * the truncated SVD meets Eckart-Young (residual² = Σ_{i>r} σ_i², with σ
 * from an independent Jacobi in this file); LoRC at full rank gives back
 * the original weights and at rank r lowers ‖W − Ŵ‖_F below ‖W − W_c‖_F. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "format_lowrank.h"
#include "half.h"
#include "model_random.h"
#include "plugin.h"

extern const sb_method sb_method_lorc;

static uint64_t rng_state = 12345;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 11) / 4503599627370496.0 - 1.0);
}

static float *random_floats(int64_t n) {
    float *v = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; v && i < n; i++) v[i] = frand();
    return v;
}

static sb_linear f32_linear(int64_t rows, int64_t cols, bool bias) {
    float *w = random_floats(rows * cols);
    sb_linear l = {.fmt = &sb_format_f32, .rows = rows, .cols = cols, .data = w, .owned = w};
    if (bias) l.bias = random_floats(rows);
    return l;
}

static sb_linear f16_linear(int64_t rows, int64_t cols) {
    uint16_t *w = malloc(sizeof(uint16_t) * (size_t)(rows * cols));
    for (int64_t i = 0; i < rows * cols; i++) w[i] = sb_f32_to_f16(frand());
    return (sb_linear){.fmt = &sb_format_f16, .rows = rows, .cols = cols, .data = w, .owned = w};
}

/* Wraps *w (in place) with random factors of the given rank. */
static int wrap_random(sb_linear *w, int rank, sb_err *err) {
    float *B = random_floats(w->rows * rank), *A = random_floats(rank * w->cols);
    int rc = sb_lowrank_wrap(w, rank, B, A, w, err);
    free(B);
    free(A);
    return rc;
}

typedef struct {
    sb_pool *pool;
    sb_matmul_ctx mm;
} engine;

static void engine_init(engine *e, int threads, int64_t max_cols) {
    sb_err err = {0};
    sb_pool_new(threads, &e->pool, &err);
    e->mm.pool = e->pool;
    e->mm.scratch_floats = sb_matmul_scratch_floats(max_cols, threads);
    e->mm.scratch = malloc(sizeof(float) * (size_t)e->mm.scratch_floats);
}

static void engine_free(engine *e) {
    free(e->mm.scratch);
    sb_pool_free(e->pool);
}

/* max |y - y_ref| / max |y_ref| of the forward over n_tok tokens against
 * the dense product with the decoded weight, in double. */
static double product_error(const sb_linear *w, int64_t n_tok, engine *e) {
    float *x = random_floats(n_tok * w->cols), *y = malloc(sizeof(float) * (size_t)(n_tok * w->rows));
    float *dense = malloc(sizeof(float) * (size_t)(w->rows * w->cols));
    float *ref = malloc(sizeof(float) * (size_t)(n_tok * w->rows));
    w->fmt->decode_rows(w, 0, w->rows, dense);
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t r = 0; r < w->rows; r++) {
            double s = w->bias ? w->bias[r] : 0;
            for (int64_t c = 0; c < w->cols; c++) s += (double)dense[r * w->cols + c] * x[t * w->cols + c];
            ref[t * w->rows + r] = (float)s;
        }
    sb_linear_forward(w, x, n_tok, y, &e->mm);
    double diff = test_max_abs_diff(y, ref, (long)(n_tok * w->rows)), scale = test_max_abs(ref, (long)(n_tok * w->rows));
    free(x);
    free(y);
    free(dense);
    free(ref);
    return diff / scale;
}

/* decode_rows of the add-on = inner rows + B·A, checked in double. */
static double decode_error(const sb_linear *w) {
    const sb_linear *in = sb_lowrank_inner(w);
    int rank = sb_lowrank_rank(w);
    const float *B = sb_lowrank_b(w), *A = sb_lowrank_a(w);
    float *got = malloc(sizeof(float) * (size_t)(w->rows * w->cols)), *base = malloc(sizeof(float) * (size_t)(w->rows * w->cols));
    w->fmt->decode_rows(w, 0, w->rows, got);
    in->fmt->decode_rows(in, 0, in->rows, base);
    double worst = 0;
    for (int64_t r = 0; r < w->rows; r++)
        for (int64_t c = 0; c < w->cols; c++) {
            double s = base[r * w->cols + c];
            for (int k = 0; k < rank; k++) s += (double)B[r * rank + k] * A[(int64_t)k * w->cols + c];
            worst = fmax(worst, fabs(s - got[r * w->cols + c]) / (fabs(s) + 1));
        }
    free(got);
    free(base);
    return worst;
}

static void check_products(const char *name, sb_linear *w, engine *e) {
    test_begin(name);
    test_expect(decode_error(w) <= 1e-5, "decode_rows != inner + B·A (%g)", decode_error(w));
    const int64_t tokens[] = {1, 3, 5, 37, 300};
    for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++) {
        double rel = product_error(w, tokens[i], e);
        test_expect(rel <= 1e-5, "%lld tokens: relative error %g", (long long)tokens[i], rel);
    }
    test_end();
}

static void test_product_and_bits(void) {
    sb_err err = {0};
    engine e;
    engine_init(&e, 4, 200);
    sb_linear w = f32_linear(70, 45, true);
    float *bias = w.bias;
    int rc = wrap_random(&w, 6, &err);
    test_begin("lowrank_wrap_f32");
    test_expect(rc == 0, "wrap: %s", err.msg);
    test_expect(w.fmt == &sb_format_lowrank && w.bias == bias && sb_lowrank_inner(&w)->bias == NULL,
                "the wrapper must carry the bias, the inner none");
    test_expect(sb_linear_storage_bits(&w) == 32ull * 70 * 45 + 32ull * 6 * (70 + 45) + 32ull * 70,
                "storage bits %llu", (unsigned long long)sb_linear_storage_bits(&w));
    test_end();
    check_products("lowrank_product_f32_inner", &w, &e);

    rc = wrap_random(&w, 3, &err); /* nested: (W + B1·A1) + B2·A2 */
    test_begin("lowrank_nested_bits");
    test_expect(rc == 0 && sb_linear_storage_bits(&w) == 32ull * 70 * 45 + 32ull * 9 * (70 + 45) + 32ull * 70,
                "nested storage bits %llu", (unsigned long long)sb_linear_storage_bits(&w));
    test_end();
    check_products("lowrank_product_nested", &w, &e);
    sb_linear_free(&w);

    sb_linear h = f16_linear(200, 64); /* decoded tile by tile: shares the session scratch */
    rc = wrap_random(&h, 17, &err);
    test_begin("lowrank_f16_bits");
    test_expect(rc == 0 && sb_linear_storage_bits(&h) == 16ull * 200 * 64 + 32ull * 17 * (200 + 64),
                "f16 storage bits %llu", (unsigned long long)sb_linear_storage_bits(&h));
    test_end();
    check_products("lowrank_product_f16_inner", &h, &e);
    sb_linear_free(&h);
    engine_free(&e);
}

static void test_wrap_refusals(void) {
    sb_err err = {0};
    sb_linear w = f32_linear(8, 5, false);
    float f[64] = {0};
    test_begin("lowrank_wrap_refuses_bad_rank");
    test_expect(sb_lowrank_wrap(&w, 6, f, f, &w, &err) == SB_EINPUT && strstr(err.msg, "rank"), "rank 6 > 5: %s", err.msg);
    test_expect(sb_lowrank_wrap(&w, 0, f, f, &w, &err) == SB_EINPUT, "rank 0 accepted");
    test_expect(w.fmt == &sb_format_f32 && w.owned, "a refused wrap must leave the linear alone");
    test_end();
    sb_linear_free(&w);
}

/* Eigenvalues of the symmetric g [n, n] (destroyed) by cyclic Jacobi, descending. */
static void eigenvalues(double *g, int n, double *lambda) {
    for (int sweep = 0; sweep < 60; sweep++)
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                double gpq = g[p * n + q];
                if (fabs(gpq) < 1e-300) continue;
                double th = (g[q * n + q] - g[p * n + p]) / (2 * gpq);
                double t = (th >= 0 ? 1 : -1) / (fabs(th) + sqrt(th * th + 1)), c = 1 / sqrt(t * t + 1), s = t * c;
                for (int r = 0; r < n; r++) {
                    double a = g[r * n + p], b = g[r * n + q];
                    g[r * n + p] = c * a - s * b, g[r * n + q] = s * a + c * b;
                }
                for (int r = 0; r < n; r++) {
                    double a = g[p * n + r], b = g[q * n + r];
                    g[p * n + r] = c * a - s * b, g[q * n + r] = s * a + c * b;
                }
            }
    for (int i = 0; i < n; i++) lambda[i] = g[i * n + i];
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (lambda[j] > lambda[i]) {
                double t = lambda[i];
                lambda[i] = lambda[j], lambda[j] = t;
            }
}

/* ‖delta − B·A‖_F² in double. */
static double residual2(const double *delta, int64_t rows, int64_t cols, int rank, const float *B, const float *A) {
    double sum = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            double s = delta[r * cols + c];
            for (int k = 0; k < rank; k++) s -= (double)B[r * rank + k] * A[(int64_t)k * cols + c];
            sum += s * s;
        }
    return sum;
}

static void test_eckart_young(void) {
    enum { R = 40, C = 25 };
    double *delta = malloc(sizeof(double) * R * C), *gram = calloc(C * C, sizeof(double)), lambda[C];
    for (int i = 0; i < R * C; i++) delta[i] = frand();
    for (int i = 0; i < C; i++) /* a decaying spectrum, as a quantization error's is not: both matter */
        for (int r = 0; r < R; r++) delta[r * C + i] *= 1.0 / (1 + 0.3 * i);
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++)
            for (int r = 0; r < R; r++) gram[i * C + j] += delta[r * C + i] * delta[r * C + j];
    eigenvalues(gram, C, lambda);
    float *B = malloc(sizeof(float) * R * C), *A = malloc(sizeof(float) * C * C);
    test_begin("lowrank_truncated_svd_is_optimal");
    const int ranks[] = {1, 4, 10, 24, 25};
    for (size_t i = 0; i < sizeof ranks / sizeof ranks[0]; i++) {
        int r = ranks[i];
        sb_err err = {0};
        int rc = sb_lowrank_factorize(delta, R, C, r, B, A, &err);
        double tail = 0, total = 0;
        for (int k = 0; k < C; k++) total += lambda[k], tail += k >= r ? lambda[k] : 0;
        double got = residual2(delta, R, C, r, B, A);
        test_expect(rc == 0 && fabs(got - tail) <= 1e-5 * total, "rank %d: residual² %.9g, Eckart-Young %.9g", r, got,
                    tail);
    }
    test_end();
    free(delta);
    free(gram);
    free(B);
    free(A);
}

/* ---- LoRC on a random model ------------------------------------------- */

static sb_linear *block_linear(sb_block *b, int i) {
    sb_linear *all[7] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
    return all[i];
}

/* A new f32 copy of w rounded to a coarse grid: the stand-in W_c. */
static void round_linear(sb_linear *w, float step) {
    float *d = malloc(sizeof(float) * (size_t)(w->rows * w->cols));
    w->fmt->decode_rows(w, 0, w->rows, d);
    for (int64_t i = 0; i < w->rows * w->cols; i++) d[i] = step * roundf(d[i] / step);
    *w = (sb_linear){.fmt = &sb_format_f32, .rows = w->rows, .cols = w->cols, .data = d, .owned = d};
}

static double frob2_diff(const sb_linear *a, const sb_linear *b) {
    float *x = malloc(sizeof(float) * (size_t)(a->rows * a->cols)), *y = malloc(sizeof(float) * (size_t)(a->rows * a->cols));
    a->fmt->decode_rows(a, 0, a->rows, x);
    b->fmt->decode_rows(b, 0, b->rows, y);
    double s = 0;
    for (int64_t i = 0; i < a->rows * a->cols; i++) s += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    free(x);
    free(y);
    return s;
}

typedef struct {
    sb_model *m;
    sb_model ref;      /* the model as built: its own copies of the block structs */
} lorc_fixture;

/* A random model whose linears (but block 0's wq) are replaced by rounded copies. */
static int fixture_new(lorc_fixture *f, sb_err *err) {
    sb_random_shape shape = {.n_vocab = 64, .d_model = 32, .n_layer = 2, .n_head = 4, .n_kv_head = 4, .ff = 48,
                             .max_positions = 64};
    int rc = sb_model_new_random(&shape, 7, &f->m, err);
    if (rc) return rc;
    f->ref = *f->m;
    f->ref.blocks = malloc(sizeof(sb_block) * (size_t)f->m->n_layer);
    memcpy(f->ref.blocks, f->m->blocks, sizeof(sb_block) * (size_t)f->m->n_layer);
    for (int l = 0; l < f->m->n_layer; l++)
        for (int i = 0; i < 7; i++)
            if (block_linear(&f->m->blocks[l], i)->fmt && !(l == 0 && i == 0)) round_linear(block_linear(&f->m->blocks[l], i), 0.05f);
    return SB_OK;
}

/* The model frees what it holds now (wrappers and the rounded copies);
 * the original payloads are only in the reference's block copies. */
static void fixture_free(lorc_fixture *f) {
    for (int l = 0; l < f->m->n_layer; l++)
        for (int i = 0; i < 7; i++) {
            sb_linear *orig = block_linear(&f->ref.blocks[l], i);
            if (orig->owned != block_linear(&f->m->blocks[l], i)->owned) sb_linear_free(orig);
        }
    free(f->ref.blocks);
    sb_model_free(f->m);
}

static int run_lorc(lorc_fixture *f, const char *rank, bool with_ref, sb_method_report *rep, sb_err *err) {
    const char *args[] = {rank};
    sb_params p;
    memset(rep, 0, sizeof *rep);
    int rc = sb_params_from_strings(sb_method_lorc.params, sb_method_lorc.n_params, args, 1, "test", &p, err);
    sb_run_ctx ctx = {.reference = with_ref ? &f->ref : NULL};
    return rc ? rc : sb_method_lorc.apply(f->m, &p, &ctx, rep, err);
}

static void test_lorc_full_rank(void) {
    lorc_fixture f;
    sb_err err = {0};
    sb_method_report rep;
    test_begin("lorc_full_rank_gives_back_w");
    int rc = fixture_new(&f, &err);
    if (!rc) rc = run_lorc(&f, "rank=32", true, &rep, &err);
    test_expect(rc == 0, "lorc: %s", err.msg);
    const cJSON *n = cJSON_GetObjectItem(rep.details, "linears_unchanged");
    test_expect(n && n->valueint == 1, "block 0 wq was not changed and must be left alone");
    for (int l = 0; !rc && l < f.m->n_layer; l++)
        for (int i = 0; i < 7; i++) {
            const sb_linear *w = block_linear(&f.m->blocks[l], i), *orig = block_linear(&f.ref.blocks[l], i);
            float *a = malloc(sizeof(float) * (size_t)(w->rows * w->cols)), *b = malloc(sizeof(float) * (size_t)(w->rows * w->cols));
            w->fmt->decode_rows(w, 0, w->rows, a);
            orig->fmt->decode_rows(orig, 0, orig->rows, b);
            double diff = test_max_abs_diff(a, b, (long)(w->rows * w->cols));
            test_expect(diff <= 1e-4, "block %d linear %d: max |Ŵ - W| = %g", l, i, diff);
            test_expect((l == 0 && i == 0) == (w->fmt != &sb_format_lowrank), "block %d linear %d: wrapped?", l, i);
            free(a);
            free(b);
        }
    test_end();
    cJSON_Delete(rep.details);
    fixture_free(&f);
}

static void test_lorc_low_rank(void) {
    lorc_fixture f;
    sb_err err = {0};
    sb_method_report rep;
    test_begin("lorc_rank_4_lowers_the_error");
    int rc = fixture_new(&f, &err);
    double before[2][7] = {{0}};
    for (int l = 0; !rc && l < 2; l++)
        for (int i = 0; i < 7; i++) before[l][i] = frob2_diff(block_linear(&f.m->blocks[l], i), block_linear(&f.ref.blocks[l], i));
    if (!rc) rc = run_lorc(&f, "rank=4", true, &rep, &err);
    test_expect(rc == 0, "lorc: %s", err.msg);
    uint64_t bits = 0;
    for (int l = 0; !rc && l < 2; l++)
        for (int i = 0; i < 7; i++) {
            const sb_linear *w = block_linear(&f.m->blocks[l], i);
            double after = frob2_diff(w, block_linear(&f.ref.blocks[l], i));
            if (l == 0 && i == 0) continue;
            test_expect(after < before[l][i], "block %d linear %d: ‖W-Ŵ‖² %g not below ‖W-W_c‖² %g", l, i, after, before[l][i]);
            bits += sb_linear_storage_bits(w) - 32ull * (uint64_t)(w->rows * w->cols) - 32ull * 4 * (uint64_t)(w->rows + w->cols);
        }
    test_expect(bits == 0, "storage bits: W_c's plus 32·r·(rows+cols) exactly");
    test_end();
    cJSON_Delete(rep.details);
    fixture_free(&f);
}

static void test_lorc_refusals(void) {
    lorc_fixture f;
    sb_err err = {0};
    sb_method_report rep;
    test_begin("lorc_refusals");
    int rc = fixture_new(&f, &err);
    test_expect(rc == 0, "fixture: %s", err.msg);
    rc = run_lorc(&f, "rank=33", true, &rep, &err);
    test_expect(rc == SB_EINPUT && strstr(err.msg, "rank=33"), "rank above min(rows, cols): %s", err.msg);
    memset(&err, 0, sizeof err);
    rc = run_lorc(&f, "rank=4", false, &rep, &err);
    test_expect(rc == SB_EINPUT && strstr(err.msg, "reference"), "without a reference: %s", err.msg);
    test_expect(block_linear(&f.m->blocks[1], 3)->fmt == &sb_format_f32, "a refused run must change nothing");
    test_end();
    fixture_free(&f);
}

int main(void) {
    test_product_and_bits();
    test_wrap_refusals();
    test_eckart_young();
    test_lorc_full_rank();
    test_lorc_low_rank();
    test_lorc_refusals();
    return test_status();
}

/* test_cuda_gptq.c - GPTQ on the CUDA device against GPTQ on the CPU.
 *
 * Built without CUDA, or run where no device answers, it prints one SKIP
 * line saying which and exits 0.  On a GPU machine (a few seconds, data in
 * the tree only):
 *  - the column loop, sb_gptq_quantize_cuda against sb_gptq_quantize on
 *    the same W and H: the fixtures of test_gptq.c (tests/reference/gptq)
 *    and random layers (4-bit g128 and 3-bit per-channel, symmetric or
 *    not, act_order with static groups, dynamic groups across block
 *    boundaries, dead inputs, rows and blocks that fill no whole warp).
 *    "Up to ties": every code equal except at most 0.1% that differ by
 *    exactly one step; the group index equal; per-channel and static
 *    parameters equal, dynamic ones equal except at most 1% of the groups
 *    (a scale at an f16 rounding midpoint), which then differ by one f16
 *    step; dequantized weights equal (1e-6 relative) where code and
 *    parameters are; the loss within 1e-4 relative;
 *  - a damped H that is not positive definite: SB_EINPUT on both;
 *  - the device Hessian accumulator against the CPU's statistics, over
 *    chunks of rows (1e-12 relative to max |H|);
 *  - calibration of the tiny Llama with a CUDA context: each linear's H
 *    within 1e-12 of the CPU's, the channel statistics bit for bit;
 *  - the gptq method with a CUDA context on the tiny Llama: 99% of the
 *    weights equal to the CPU run's, every layer's calibration error
 *    within 2% of the CPU's, the details saying where it ran. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_cuda.h"
#include "blas.h"
#include "calibration.h"
#include "check.h"
#include "hessian_device.h"
#include "mapped_file.h"
#include "plugin.h"

#include "../methods/gptq.h"

#define FIX "tests/reference/gptq"
#define TASKS "tests/reference/tasks"

extern const sb_method sb_method_gptq;

/* ---- one layer on both ---------------------------------------------------- */

typedef struct layer_out {
    sb_gptq_out o;
    int n_groups;
} layer_out;

static bool out_alloc(layer_out *l, int rows, int cols, int n_groups) {
    size_t n = (size_t)rows * (size_t)cols, np = (size_t)rows * (size_t)n_groups;
    l->n_groups = n_groups;
    l->o = (sb_gptq_out){malloc(n), malloc(sizeof(float) * n), malloc(sizeof(int32_t) * (size_t)cols),
                         malloc(sizeof(float) * np), malloc(sizeof(float) * np), 0};
    return l->o.codes && l->o.q && l->o.g_idx && l->o.scales && l->o.zeros;
}

static void out_free(layer_out *l) {
    free(l->o.codes), free(l->o.q), free(l->o.g_idx), free(l->o.scales), free(l->o.zeros);
}

/* Parameter sets that differ; each must be a near-tie: one f16 step of the
 * scale (2^-10 relative at most) and the zero within one. */
static int params_differ(const layer_out *a, const layer_out *b, int rows, int *far) {
    int n = 0;
    for (int i = 0; i < rows * a->n_groups; i++) {
        float sa = a->o.scales[i], sb = b->o.scales[i], za = a->o.zeros[i], zb = b->o.zeros[i];
        if (sa == sb && za == zb) continue;
        n++;
        *far += fabsf(sa - sb) > 0x1p-10f * fabsf(sa) || fabsf(za - zb) > 1;
    }
    return n;
}

/* Both results "up to ties" (see the header). */
static void expect_same_up_to_ties(const char *name, const layer_out *cpu, const layer_out *dev, int rows, int cols,
                                   bool dynamic) {
    int far_params = 0, pdiff = params_differ(cpu, dev, rows, &far_params);
    int groups = rows * cpu->n_groups;
    long differ = 0, far = 0, q_bad = 0, n = (long)rows * cols;
    for (long i = 0; i < n; i++) {
        int ca = cpu->o.codes[i], cb = dev->o.codes[i];
        int g = cpu->o.g_idx[i % cols];
        long p = (i / cols) * cpu->n_groups + g;
        bool same_params = cpu->o.scales[p] == dev->o.scales[p] && cpu->o.zeros[p] == dev->o.zeros[p];
        if (ca != cb) differ++, far += abs(ca - cb) != 1;
        else if (same_params && fabsf(cpu->o.q[i] - dev->o.q[i]) > 1e-6f * fabsf(cpu->o.q[i])) q_bad++;
    }
    if (getenv("SB_GPTQ_VERBOSE"))
        printf("  %s: %ld of %ld codes differ, %d of %d parameter sets, loss %.9g vs %.9g\n", name, differ, n, pdiff,
               groups, cpu->o.loss, dev->o.loss);
    test_expect(memcmp(cpu->o.g_idx, dev->o.g_idx, sizeof(int32_t) * (size_t)cols) == 0, "%s: group index differs",
                name);
    test_expect(differ * 1000 <= n && far == 0, "%s: %ld of %ld codes differ, %ld by more than one step", name, differ,
                n, far);
    test_expect(dynamic ? pdiff * 100 <= groups && far_params == 0 : pdiff == 0,
                "%s: %d of %d parameter sets differ (%d by more than one f16 step)", name, pdiff, groups, far_params);
    test_expect(q_bad == 0, "%s: %ld weights with equal codes and parameters dequantize differently", name, q_bad);
    test_expect(fabs(cpu->o.loss - dev->o.loss) <= 1e-4 * fabs(cpu->o.loss), "%s: loss %.9g on the CPU, %.9g on CUDA",
                name, cpu->o.loss, dev->o.loss);
}

/* Runs w, h through both and compares; h is not changed. */
static void compare_layer(sb_cuda_ctx *dev, sb_pool *pool, const char *name, const float *w, const double *h, int rows,
                          int cols, const sb_gptq_opts *o) {
    char label[128];
    snprintf(label, sizeof label, "cuda_gptq_%s", name);
    test_begin(label);
    int ng = o->group_size > 0 ? cols / o->group_size : 1;
    layer_out a, b;
    bool ok_a = out_alloc(&a, rows, cols, ng), ok_b = out_alloc(&b, rows, cols, ng);
    double *ha = malloc(sizeof(double) * (size_t)cols * cols), *hb = malloc(sizeof(double) * (size_t)cols * cols);
    bool ok = ok_a && ok_b && ha && hb;
    sb_err err = {0};
    if (test_expect(ok, "out of memory")) {
        memcpy(ha, h, sizeof(double) * (size_t)cols * cols);
        memcpy(hb, h, sizeof(double) * (size_t)cols * cols);
        ok = test_expect(sb_gptq_quantize(w, rows, cols, ha, o, pool, &a.o, &err) == SB_OK, "CPU: %s", err.msg) &&
             test_expect(sb_gptq_quantize_cuda(dev, w, rows, cols, hb, o, &b.o, &err) == SB_OK, "CUDA: %s", err.msg);
        if (ok) expect_same_up_to_ties(name, &a, &b, rows, cols, o->group_size > 0 && !o->static_groups);
    }
    out_free(&a), out_free(&b);
    free(ha), free(hb);
    test_end();
}

/* ---- the fixtures of test_gptq.c ------------------------------------------- */

static sb_gptq_opts case_opts(const cJSON *c) {
    return (sb_gptq_opts){cJSON_GetObjectItem(c, "bits")->valueint, cJSON_GetObjectItem(c, "group_size")->valueint,
                          cJSON_IsTrue(cJSON_GetObjectItem(c, "sym")), 0.01,
                          cJSON_GetObjectItem(c, "block_size")->valueint,
                          cJSON_IsTrue(cJSON_GetObjectItem(c, "act_order")),
                          cJSON_IsTrue(cJSON_GetObjectItem(c, "static_groups"))};
}

static void fixture_cases(sb_cuda_ctx *dev, sb_pool *pool) {
    cJSON *man = test_read_json(FIX "/cases.json");
    int rows = man ? cJSON_GetObjectItem(man, "rows")->valueint : 0, cols = man ? cJSON_GetObjectItem(man, "cols")->valueint : 0;
    float *w = man ? test_read_file(FIX, "w.f32", sizeof(float) * (size_t)rows * cols) : NULL;
    double *h = man ? test_read_file(FIX, "h.f64", sizeof(double) * (size_t)cols * cols) : NULL;
    if (!w || !h) {
        test_begin("cuda_gptq_fixtures");
        test_expect(false, "cannot read %s", FIX);
        test_end();
    } else {
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(man, "cases")) {
            sb_gptq_opts o = case_opts(c);
            char name[96];
            snprintf(name, sizeof name, "fixture_%s", cJSON_GetObjectItem(c, "name")->valuestring);
            compare_layer(dev, pool, name, w, h, rows, cols, &o);
        }
    }
    free(w), free(h);
    cJSON_Delete(man);
}

/* ---- random layers ----------------------------------------------------------- */

static double uniform(uint64_t *s) { /* in [-1, 1) */
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 4503599627370496.0 - 1.0;
}

/* H = 2/N · XᵀX from N correlated inputs with uneven channel scales;
 * channel `dead` (if >= 0) never fires. */
static double *random_hessian(int cols, int dead, uint64_t seed) {
    enum { N = 1024, MIX = 8 };
    double *x = malloc(sizeof(double) * (size_t)N * cols), *h = malloc(sizeof(double) * (size_t)cols * cols);
    if (!x || !h) {
        free(x), free(h);
        return NULL;
    }
    for (int t = 0; t < N; t++) {
        double common[MIX];
        for (int k = 0; k < MIX; k++) common[k] = uniform(&seed);
        for (int c = 0; c < cols; c++) {
            double scale = 0.2 + (double)(c % 13) / 6.0;
            x[(size_t)t * cols + c] = c == dead ? 0 : scale * (uniform(&seed) + 0.7 * common[c % MIX]);
        }
    }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, cols, N, 2.0 / N, x, cols, 0.0, h, cols);
    for (int i = 0; i < cols; i++)
        for (int j = 0; j < i; j++) h[(size_t)i * cols + j] = h[(size_t)j * cols + i];
    free(x);
    return h;
}

static float *random_weights(int rows, int cols, uint64_t seed) {
    float *w = malloc(sizeof(float) * (size_t)rows * cols);
    for (long i = 0; w && i < (long)rows * cols; i++) {
        double v = uniform(&seed);
        w[i] = (float)(v * v * v * 0.5 + 0.02 * uniform(&seed)); /* heavy-ish tails, as trained weights */
    }
    return w;
}

typedef struct random_case {
    const char *name;
    int rows, cols, dead;
    sb_gptq_opts o; /* bits, group_size, sym, damp, block_size, act_order, static_groups */
} random_case;

static void random_cases(sb_cuda_ctx *dev, sb_pool *pool) {
    static const random_case cases[] = {
        {"4b_g128", 192, 512, 7, {4, 128, false, 0.01, 128, false, false}},
        {"4b_g128_sym", 192, 512, -1, {4, 128, true, 0.01, 128, false, false}},
        {"3b_per_channel", 192, 384, 5, {3, -1, false, 0.01, 128, false, false}},
        {"3b_per_channel_sym", 192, 384, -1, {3, 0, true, 0.01, 128, false, false}},
        {"4b_g128_act_order_static", 192, 512, 3, {4, 128, false, 0.01, 128, true, true}},
        {"3b_per_channel_act_order", 130, 384, 11, {3, -1, true, 0.01, 128, true, false}},
        {"3b_g64_blocks_of_96", 161, 384, -1, {3, 64, false, 0.01, 96, false, false}},
        {"4b_g32_act_order_dynamic", 96, 256, -1, {4, 32, false, 0.01, 64, true, false}},
        {"8b_per_channel_blocks_of_100", 33, 200, 0, {8, -1, false, 0.05, 100, false, false}},
        {"2b_g64_static", 128, 256, -1, {2, 64, false, 0.01, 128, false, true}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const random_case *c = &cases[i];
        float *w = random_weights(c->rows, c->cols, 1000 + i);
        double *h = random_hessian(c->cols, c->dead, 77 + i);
        if (w && h) compare_layer(dev, pool, c->name, w, h, c->rows, c->cols, &c->o);
        free(w), free(h);
    }
}

/* H = -I damped stays negative: cuSOLVER's potrf refuses it as the CPU's Cholesky does. */
static void not_positive_definite_case(sb_cuda_ctx *dev, sb_pool *pool) {
    test_begin("cuda_gptq_not_positive_definite");
    enum { R = 8, C = 32 };
    float w[R * C];
    double h[2][C * C];
    memset(h, 0, sizeof h);
    for (int i = 0; i < R * C; i++) w[i] = (float)(i % 7) - 3;
    for (int i = 0; i < C; i++) h[0][i * C + i] = h[1][i * C + i] = -1;
    sb_gptq_opts o = {4, -1, false, 0.01, 128, false, false};
    layer_out out;
    sb_err cpu = {0}, cuda = {0};
    if (test_expect(out_alloc(&out, R, C, 1), "out of memory")) {
        int rc = sb_gptq_quantize(w, R, C, h[0], &o, pool, &out.o, &cpu);
        test_expect(rc == SB_EINPUT && strstr(cpu.msg, "not positive definite"), "CPU: status %d: %s", rc, cpu.msg);
        rc = sb_gptq_quantize_cuda(dev, w, R, C, h[1], &o, &out.o, &cuda);
        test_expect(rc == SB_EINPUT && strstr(cuda.msg, "not positive definite"), "CUDA: status %d: %s", rc, cuda.msg);
    }
    out_free(&out);
    test_end();
}

/* ---- Hessians on the device ----------------------------------------------- */

static double max_rel_diff(const double *a, const double *b, long n) {
    double worst = 0, scale = 0;
    for (long i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (long i = 0; i < n; i++) worst = fmax(worst, fabs(a[i] - b[i]));
    return scale > 0 ? worst / scale : worst;
}

/* Three sequences, one longer than the device's 4096-row chunk. */
static void hessian_case(sb_cuda_ctx *dev) {
    test_begin("cuda_hessian_accumulator");
    enum { C = 48 };
    static const int rows[] = {100, 4500, 7};
    sb_linear target = {.rows = 1, .cols = C};
    sb_linear_stats st;
    memset(&st, 0, sizeof st);
    sb_hessian_device *dh = NULL;
    sb_err err = {0};
    float *x = malloc(sizeof(float) * 4500 * C);
    double *got = malloc(sizeof(double) * C * C);
    int rc = x && got ? sb_linear_stats_init(&st, &target, &err) : SB_EINTERNAL;
    if (!rc) rc = sb_hessian_device_new(dev, C, &dh, &err);
    uint64_t seed = 5;
    for (int s = 0; !rc && s < 3; s++) {
        for (long i = 0; i < (long)rows[s] * C; i++) x[i] = (float)uniform(&seed) * (1 + (float)(i % C) / 8);
        double keep = (double)st.n_seqs / (double)(st.n_seqs + 1), add = 2.0 / (double)(st.n_seqs + 1);
        sb_linear_stats_add(&st, x, rows[s]);
        rc = sb_hessian_device_add(dh, x, rows[s], keep, add, &err);
    }
    if (!rc) rc = sb_hessian_device_get(dh, got, &err);
    if (test_expect(rc == SB_OK, "%s", err.msg)) {
        double d = max_rel_diff(got, st.h, C * C);
        test_expect(d < 1e-12, "device H differs from the CPU's by %g (relative to max |H|)", d);
        bool symmetric = true;
        for (int i = 0; i < C; i++)
            for (int j = 0; j < C; j++) symmetric &= got[i * C + j] == got[j * C + i];
        test_expect(symmetric, "device H is not symmetric");
    }
    sb_hessian_device_free(dh);
    sb_linear_stats_free(&st);
    free(x), free(got);
    test_end();
}

static sb_run_ctx cuda_ctx(sb_cuda_ctx *dev, sb_pool *pool) {
    return (sb_run_ctx){.pool = pool, .backend = {SB_BACKEND_CUDA, 0, false}, .cuda = dev};
}

/* Block 0's seven linears, one pass each way. */
static void calibration_case(sb_model *m, sb_cuda_ctx *dev, sb_pool *pool) {
    test_begin("cuda_calibration_hessians");
    sb_err err = {0};
    sb_calib_set set;
    memset(&set, 0, sizeof set);
    sb_calib_config cc = {.path = TASKS "/text.raw", .n_samples = 3, .seq_len = 32, .seed = 0};
    sb_run_ctx on_cpu = {.pool = pool}, on_dev = cuda_ctx(dev, pool);
    const sb_run_ctx *ctxs[2] = {&on_cpu, &on_dev};
    sb_calib_run *run[2] = {NULL, NULL};
    sb_linear_stats st[2][SB_BLOCK_LINEARS];
    memset(st, 0, sizeof st);
    int rc = sb_calib_draw(m->tokenizer, &cc, &set, &err);
    for (int k = 0; !rc && k < 2; k++) {
        rc = sb_calib_run_new(m, &set, ctxs[k], &run[k], &err);
        for (int i = 0; !rc && i < SB_BLOCK_LINEARS; i++)
            rc = sb_linear_stats_init(&st[k][i], sb_block_linear(&m->blocks[0], i), &err);
        if (!rc) rc = sb_calib_run_block(run[k], st[k], SB_BLOCK_LINEARS, &err);
    }
    if (test_expect(rc == SB_OK, "%s", err.msg))
        for (int i = 0; i < SB_BLOCK_LINEARS; i++) {
            const sb_linear_stats *a = &st[0][i], *b = &st[1][i];
            long c = a->cols;
            double d = max_rel_diff(b->h, a->h, c * c);
            test_expect(d < 1e-12, "%s: H differs by %g", sb_block_linear_names[i], d);
            test_expect(a->n_seqs == b->n_seqs && a->n_rows == b->n_rows &&
                            !memcmp(a->mean, b->mean, sizeof(double) * (size_t)c) &&
                            !memcmp(a->absmax, b->absmax, sizeof(double) * (size_t)c),
                        "%s: channel statistics differ", sb_block_linear_names[i]);
        }
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < SB_BLOCK_LINEARS; i++) sb_linear_stats_free(&st[k][i]);
        sb_calib_run_free(run[k]);
    }
    sb_calib_set_free(&set);
    test_end();
}

/* ---- the method ------------------------------------------------------------- */

/* Every block linear of m decoded to f32, concatenated (NULL on failure). */
static float *decode_all(sb_model *m, size_t *n_out) {
    size_t n = 0;
    for (int l = 0; l < m->n_layer; l++)
        for (int i = 0; i < SB_BLOCK_LINEARS; i++) {
            const sb_linear *w = sb_block_linear(&m->blocks[l], i);
            n += (size_t)(w->rows * w->cols);
        }
    float *all = malloc(sizeof(float) * n), *p = all;
    for (int l = 0; all && l < m->n_layer; l++)
        for (int i = 0; i < SB_BLOCK_LINEARS; i++) {
            const sb_linear *w = sb_block_linear(&m->blocks[l], i);
            w->fmt->decode_rows(w, 0, w->rows, p);
            p += w->rows * w->cols;
        }
    *n_out = n;
    return all;
}

/* gptq on a fresh copy of the tiny model: its weights and report. */
static int run_method(const sb_run_ctx *ctx, float **w, size_t *n, sb_method_report *rep, sb_err *err) {
    static const char *const args[] = {"data=" TASKS "/text.raw", "n_samples=8", "seq_len=64", "bits=4",
                                       "group_size=32"};
    sb_model *m = NULL;
    sb_params p;
    memset(rep, 0, sizeof *rep);
    int rc = sb_model_load(TASKS "/model", &m, err);
    if (!rc) rc = sb_params_from_strings(sb_method_gptq.params, sb_method_gptq.n_params, args, 5, "test", &p, err);
    if (!rc) rc = sb_method_gptq.apply(m, &p, ctx, rep, err);
    if (!rc && !(*w = decode_all(m, n))) rc = sb_err_set(err, SB_EINTERNAL, "out of memory");
    sb_model_free(m);
    return rc;
}

static void method_case(sb_cuda_ctx *dev, sb_pool *pool) {
    test_begin("cuda_gptq_method_tiny_llama");
    sb_run_ctx on_cpu = {.pool = pool}, on_dev = cuda_ctx(dev, pool);
    sb_method_report ra, rb;
    float *wa = NULL, *wb = NULL;
    size_t na = 0, nb = 0;
    sb_err err = {0};
    bool ok = test_expect(run_method(&on_cpu, &wa, &na, &ra, &err) == SB_OK, "CPU: %s", err.msg) &&
              test_expect(run_method(&on_dev, &wb, &nb, &rb, &err) == SB_OK, "CUDA: %s", err.msg) &&
              test_expect(na == nb, "sizes differ");
    if (ok) {
        size_t differ = 0;
        for (size_t i = 0; i < na; i++) differ += wa[i] != wb[i];
        test_expect(differ * 100 <= na, "%zu of %zu weights differ", differ, na);
        const cJSON *la = cJSON_GetObjectItem(ra.details, "layers"), *lb = cJSON_GetObjectItem(rb.details, "layers");
        test_expect(cJSON_GetArraySize(la) == cJSON_GetArraySize(lb), "layer counts differ");
        for (int i = 0; i < cJSON_GetArraySize(la) && i < cJSON_GetArraySize(lb); i++) {
            double ea = cJSON_GetObjectItem(cJSON_GetArrayItem(la, i), "rel_err")->valuedouble;
            double eb = cJSON_GetObjectItem(cJSON_GetArrayItem(lb, i), "rel_err")->valuedouble;
            test_expect(fabs(ea - eb) <= 0.02 * ea, "layer %d: calibration error %g on the CPU, %g on CUDA", i, ea, eb);
        }
        const cJSON *where = cJSON_GetObjectItem(rb.details, "computed_on");
        test_expect(cJSON_IsString(where) && !strcmp(where->valuestring, "cuda:0") &&
                        !cJSON_GetObjectItem(ra.details, "computed_on"),
                    "details do not say where the column loop ran");
        if (getenv("SB_GPTQ_VERBOSE")) printf("  %zu of %zu weights differ\n", differ, na);
    }
    cJSON_Delete(ra.details), cJSON_Delete(rb.details);
    free(wa), free(wb);
    test_end();
}

int main(void) {
    if (!sb_backend_cuda_built()) {
        test_skip("cuda_gptq", "built without CUDA (make CUDA=1 builds the backend)");
        return 0;
    }
    sb_err err = {0};
    if (sb_cuda_device_count(&err) == 0) {
        test_skip("cuda_gptq", "%s", err.msg);
        return 0;
    }
    sb_cuda_ctx *dev = NULL;
    sb_pool *pool = NULL;
    sb_model *m = NULL;
    if (sb_pool_new(2, &pool, &err) || sb_cuda_ctx_new(0, &dev, &err)) {
        test_begin("cuda_gptq_open");
        test_expect(false, "%s", err.msg);
        test_end();
        sb_pool_free(pool);
        return test_status();
    }
    fixture_cases(dev, pool);
    random_cases(dev, pool);
    not_positive_definite_case(dev, pool);
    hessian_case(dev);
    if (sb_model_load(TASKS "/model", &m, &err) || !m->tokenizer) {
        test_begin("cuda_gptq_tiny_model");
        test_expect(false, "%s", m ? "the tiny model has no tokenizer" : err.msg);
        test_end();
    } else {
        calibration_case(m, dev, pool);
        method_case(dev, pool);
    }
    sb_model_free(m);
    sb_cuda_ctx_free(dev);
    sb_pool_free(pool);
    return test_status();
}

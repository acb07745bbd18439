/* test_sparse.c - the csr and n:m formats and the magnitude method.
 *
 *   round trip     pack then decode gives the dense matrix exactly: csr with
 *                  16- and 32-bit indices (an empty row, a full row), n:m for
 *                  2:4, 1:4, 4:8, 2:6 (3-bit positions) and 16:32, with groups
 *                  holding fewer than n non-zeros; an over-full group refused
 *   products       fused kernels (1, 2, 4 tokens) and decoded tiles (17 tokens)
 *                  against a double-precision product of the decoded weights
 *   storage        storage_bits against the layout arithmetic
 *   magnitude      exact sparsity (global: the k smallest |w| of the whole model
 *                  removed; layer: k per layer), N:M holds in every group and
 *                  keeps the largest, 0 % gives the dense logits exactly,
 *                  perplexity grows with sparsity on the tasks fixture,
 *                  bad parameters refused (naming them) with the model unchanged */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "format_sparse.h"
#include "model_snapshot.h"
#include "plugin.h"

extern const sb_method sb_method_magnitude;
extern const sb_task sb_task_perplexity;

/* xorshift64*: deterministic, no global state */
static uint64_t next_rand(uint64_t *s) {
    *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}
static float uniform(uint64_t *s) { return (float)(next_rand(s) >> 40) / (float)(1 << 24); }

/* Random [rows, cols] with about `zeros` of it 0; row 1 all zero, row 2 full. */
static float *random_sparse(int64_t rows, int64_t cols, double zeros, uint64_t seed) {
    float *w = malloc(sizeof(float) * (size_t)(rows * cols));
    if (!w) return NULL;
    for (int64_t i = 0; i < rows * cols; i++) {
        float v = 2 * uniform(&seed) - 1;
        w[i] = uniform(&seed) < zeros ? 0 : v;
    }
    for (int64_t c = 0; rows > 2 && c < cols; c++) w[cols + c] = 0, w[2 * cols + c] = 0.5f + (float)c * 1e-3f;
    return w;
}

/* Random [rows, cols] obeying n:m: each group keeps n random positions,
 * and every third group one fewer (padding with stored zeros). */
static float *random_nm(int64_t rows, int64_t cols, int n, int m, uint64_t seed) {
    float *w = calloc((size_t)(rows * cols), sizeof(float));
    if (!w) return NULL;
    for (int64_t g = 0; g < rows * cols / m; g++) {
        int keep = g % 3 == 0 ? n - 1 : n;
        for (int k = 0; k < keep;) {
            int pos = (int)(next_rand(&seed) % (uint64_t)m);
            if (w[g * m + pos] != 0) continue;
            w[g * m + pos] = 2 * uniform(&seed) - 1 + 1e-3f; /* never exactly 0 */
            if (w[g * m + pos] != 0) k++;
        }
    }
    return w;
}

static bool decodes_to(const sb_linear *w, const float *dense, const char *what) {
    float *got = malloc(sizeof(float) * (size_t)(w->rows * w->cols));
    if (!test_expect(got != NULL, "out of memory")) return false;
    w->fmt->decode_rows(w, 0, w->rows, got);
    int64_t bad = -1;
    for (int64_t i = 0; i < w->rows * w->cols && bad < 0; i++)
        if (got[i] != dense[i]) bad = i;
    /* and a middle slice of rows, decoded on its own */
    if (bad < 0 && w->rows > 3) {
        w->fmt->decode_rows(w, 1, 2, got);
        for (int64_t i = 0; i < 2 * w->cols && bad < 0; i++)
            if (got[i] != dense[w->cols + i]) bad = w->cols + i;
    }
    free(got);
    return test_expect(bad < 0, "%s: weight %lld differs after decoding", what, (long long)bad);
}

static uint64_t count_nonzero(const float *w, int64_t n) {
    uint64_t k = 0;
    for (int64_t i = 0; i < n; i++) k += w[i] != 0;
    return k;
}

/* ---- formats ----------------------------------------------------------- */

static void check_csr(int64_t rows, int64_t cols, double zeros, sb_pool *pool, bool products);
static void check_nm(int64_t rows, int64_t cols, int n, int m, sb_pool *pool, bool products);

static void test_round_trip(void) {
    test_begin("sparse_round_trip");
    check_csr(37, 100, 0.5, NULL, false);
    check_csr(5, 70000, 0.9, NULL, false); /* 32-bit column indices */
    check_csr(4, 8, 1.0, NULL, false);     /* all zero but the full row */
    const int nm[][2] = {{2, 4}, {1, 4}, {4, 8}, {2, 6}, {16, 32}};
    for (size_t k = 0; k < sizeof nm / sizeof nm[0]; k++) check_nm(9, 96, nm[k][0], nm[k][1], NULL, false);
    check_nm(3, 20, 2, 4, NULL, false); /* 2:4 with a tail of 4 inputs after the 16-wide steps */
    /* an over-full group and bad shapes are refused */
    float full[8] = {1, 2, 3, 0, 1, 0, 0, 0};
    sb_linear w;
    sb_err err = {0};
    test_expect(sb_sparse_pack_nm(1, 8, 2, 4, full, &w, &err) == SB_EINPUT && strstr(err.msg, "group 0"),
                "3 non-zeros in a 2:4 group accepted: '%s'", err.msg);
    err = (sb_err){0};
    test_expect(sb_sparse_pack_nm(1, 6, 2, 4, full, &w, &err) == SB_EINPUT, "m = 4 not dividing 6 accepted");
    err = (sb_err){0};
    test_expect(sb_sparse_pack_nm(1, 8, 4, 4, full, &w, &err) == SB_EINPUT, "n = m accepted");
    test_end();
}

static void check_csr(int64_t rows, int64_t cols, double zeros, sb_pool *pool, bool products) {
    char what[64];
    snprintf(what, sizeof what, "csr %lldx%lld", (long long)rows, (long long)cols);
    float *dense = random_sparse(rows, cols, zeros, (uint64_t)(rows * 7919 + cols));
    sb_linear w;
    sb_err err = {0};
    if (test_expect(dense != NULL, "out of memory") &&
        test_expect(sb_sparse_pack_csr(rows, cols, dense, &w, &err) == SB_OK, "%s: %s", what, err.msg)) {
        uint64_t nnz = count_nonzero(dense, rows * cols), stored = 0;
        test_expect(w.fmt == &sb_format_csr && sb_sparse_stored_values(&w, &stored) && stored == nnz,
                    "%s: %llu stored, %llu non-zeros", what, (unsigned long long)stored, (unsigned long long)nnz);
        if (products) test_format_products(&w, pool, what);
        else decodes_to(&w, dense, what);
        sb_linear_free(&w);
    }
    free(dense);
}

static void check_nm(int64_t rows, int64_t cols, int n, int m, sb_pool *pool, bool products) {
    char what[64];
    snprintf(what, sizeof what, "%d:%d %lldx%lld", n, m, (long long)rows, (long long)cols);
    float *dense = random_nm(rows, cols, n, m, (uint64_t)(n * 131 + m));
    sb_linear w;
    sb_err err = {0};
    if (test_expect(dense != NULL, "out of memory") &&
        test_expect(sb_sparse_pack_nm(rows, cols, n, m, dense, &w, &err) == SB_OK, "%s: %s", what, err.msg)) {
        int gn = 0, gm = 0;
        test_expect(sb_sparse_nm_of(&w, &gn, &gm) && gn == n && gm == m, "%s: reports %d:%d", what, gn, gm);
        if (products) test_format_products(&w, pool, what);
        else decodes_to(&w, dense, what);
        sb_linear_free(&w);
    }
    free(dense);
}

static void test_products(sb_pool *pool) {
    test_begin("sparse_fused_and_tiled_products");
    check_csr(300, 576, 0.5, pool, true);
    check_csr(70, 1000, 0.2, pool, true);
    check_csr(20, 70000, 0.95, pool, true);
    check_nm(300, 576, 2, 4, pool, true);
    check_nm(64, 100, 2, 4, pool, true); /* tail after the 16-wide steps */
    check_nm(64, 96, 4, 8, pool, true);
    check_nm(64, 96, 2, 6, pool, true);
    test_end();
}

static void test_storage(void) {
    test_begin("sparse_storage_bits");
    float *dense = random_sparse(37, 100, 0.5, 5);
    sb_linear w;
    sb_err err = {0};
    if (test_expect(dense && sb_sparse_pack_csr(37, 100, dense, &w, &err) == SB_OK, "%s", err.msg)) {
        uint64_t nnz = count_nonzero(dense, 3700);
        test_expect(w.fmt->storage_bits(&w) == 32 * 38 + 48 * nnz, "csr: %llu bits, expected %llu",
                    (unsigned long long)w.fmt->storage_bits(&w), (unsigned long long)(32 * 38 + 48 * nnz));
        sb_linear_free(&w);
    }
    free(dense);
    dense = random_sparse(3, 70000, 0.9, 6);
    if (test_expect(dense && sb_sparse_pack_csr(3, 70000, dense, &w, &err) == SB_OK, "%s", err.msg)) {
        uint64_t nnz = count_nonzero(dense, 210000);
        test_expect(w.fmt->storage_bits(&w) == 32 * 4 + 64 * nnz, "csr wide: %llu bits", (unsigned long long)w.fmt->storage_bits(&w));
        sb_linear_free(&w);
    }
    free(dense);
    /* 2:4 on 576 inputs: 288 f32 values and 288 x 2 bits = 72 bytes of positions per row: 17 bits per weight */
    dense = random_nm(10, 576, 2, 4, 7);
    if (test_expect(dense && sb_sparse_pack_nm(10, 576, 2, 4, dense, &w, &err) == SB_OK, "%s", err.msg)) {
        test_expect(w.fmt->storage_bits(&w) == 10 * (288 * 32 + 72 * 8) && w.fmt->storage_bits(&w) == 17 * 5760,
                    "2:4: %llu bits", (unsigned long long)w.fmt->storage_bits(&w));
        sb_linear_free(&w);
    }
    free(dense);
    /* 2:6 on 36 inputs: 12 values, 12 x 3 bits = 36 bits -> 5 bytes per row */
    dense = random_nm(4, 36, 2, 6, 8);
    if (test_expect(dense && sb_sparse_pack_nm(4, 36, 2, 6, dense, &w, &err) == SB_OK, "%s", err.msg)) {
        test_expect(w.fmt->storage_bits(&w) == 4 * (12 * 32 + 5 * 8), "2:6: %llu bits", (unsigned long long)w.fmt->storage_bits(&w));
        sb_linear_free(&w);
    }
    free(dense);
    test_end();
}

/* ---- the magnitude method ---------------------------------------------- */

static int prune(sb_model *m, sb_pool *pool, const char *const *assign, int n, sb_method_report *rep, sb_err *err) {
    sb_params p;
    sb_run_ctx ctx = {.pool = pool};
    memset(rep, 0, sizeof *rep);
    int rc = sb_params_from_strings(sb_method_magnitude.params, sb_method_magnitude.n_params, assign, n, "test", &p, err);
    return rc ? rc : sb_method_magnitude.apply(m, &p, &ctx, rep, err);
}

static void block_linears(const sb_model *m, int l, const sb_linear *out[7]) {
    const sb_block *b = &m->blocks[l];
    const sb_linear *lins[7] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
    memcpy(out, lins, sizeof lins);
}

/* Every block linear decoded, in model order, into one array. */
static float *all_weights(const sb_model *m, int64_t *n_out) {
    int64_t n = 0;
    for (int l = 0; l < m->n_layer; l++) {
        const sb_linear *lins[7];
        block_linears(m, l, lins);
        for (int i = 0; i < 7; i++) n += lins[i]->fmt ? lins[i]->rows * lins[i]->cols : 0;
    }
    float *w = malloc(sizeof(float) * (size_t)n), *at = w;
    for (int l = 0; w && l < m->n_layer; l++) {
        const sb_linear *lins[7];
        block_linears(m, l, lins);
        for (int i = 0; i < 7; i++)
            if (lins[i]->fmt) lins[i]->fmt->decode_rows(lins[i], 0, lins[i]->rows, at), at += lins[i]->rows * lins[i]->cols;
    }
    *n_out = n;
    return w;
}

/* The removed weights are zero and no kept |w| is below a removed one. */
static void check_smallest_removed(const float *before, const float *after, int64_t n, const char *what) {
    float max_removed = 0, min_kept = INFINITY;
    int64_t changed = 0;
    for (int64_t i = 0; i < n; i++) {
        if (after[i] == 0 && before[i] != 0) max_removed = fmaxf(max_removed, fabsf(before[i]));
        else if (after[i] != 0) min_kept = fminf(min_kept, fabsf(before[i]));
        changed += after[i] != 0 && after[i] != before[i];
    }
    test_expect(changed == 0, "%s: %lld kept weights changed", what, (long long)changed);
    test_expect(max_removed <= min_kept, "%s: removed |w| up to %g but kept %g", what, max_removed, min_kept);
}

static void check_global(sb_model *m, sb_pool *pool, const float *before, int64_t n, double s, const char *format) {
    char sp[32], fm[32], what[64];
    snprintf(sp, sizeof sp, "sparsity=%g", s);
    snprintf(fm, sizeof fm, "format=%s", format);
    snprintf(what, sizeof what, "global %g %s", s, format);
    const char *assign[] = {sp, fm};
    sb_method_report rep;
    sb_err err = {0};
    if (!test_expect(prune(m, pool, assign, 2, &rep, &err) == SB_OK, "%s: %s", what, err.msg)) return;
    int64_t n2;
    float *after = all_weights(m, &n2);
    uint64_t k = (uint64_t)llround(s * (double)n), zeros = (uint64_t)n - count_nonzero(after, n);
    test_expect(zeros == k, "%s: %llu zeros, expected %llu", what,
                (unsigned long long)zeros, (unsigned long long)k);
    test_expect(rep.params_removed == k, "%s: params_removed %llu", what, (unsigned long long)rep.params_removed);
    test_expect(rep.real_quant == (strcmp(format, "dense") != 0), "%s: real_quant %d", what, rep.real_quant);
    check_smallest_removed(before, after, n, what);
    const sb_linear *q = &m->blocks[0].wq;
    test_expect(strcmp(q->fmt->name, strcmp(format, "dense") == 0 ? "f32" : "csr") == 0, "%s: stored as %s", what, q->fmt->name);
    /* csr: 48 bits per kept weight plus 32 per row pointer */
    if (strcmp(format, "csr") == 0)
        test_expect(rep.bits_per_weight < 48 * (1 - s) + 1.1 && rep.bits_per_weight > 48 * (1 - s), "%s: %g bits per weight",
                    what, rep.bits_per_weight);
    cJSON_Delete(rep.details);
    free(after);
}

static void check_per_layer(sb_model *m, sb_pool *pool, double s) {
    char sp[32];
    snprintf(sp, sizeof sp, "sparsity=%g", s);
    const char *assign[] = {sp, "scope=layer"};
    sb_method_report rep;
    sb_err err = {0};
    if (!test_expect(prune(m, pool, assign, 2, &rep, &err) == SB_OK, "layer: %s", err.msg)) return;
    uint64_t total = 0;
    for (int l = 0; l < m->n_layer; l++) {
        const sb_linear *lins[7];
        block_linears(m, l, lins);
        for (int i = 0; i < 7; i++) {
            if (!lins[i]->fmt) continue;
            int64_t n = lins[i]->rows * lins[i]->cols;
            float *w = malloc(sizeof(float) * (size_t)n);
            if (!test_expect(w != NULL, "out of memory")) return;
            lins[i]->fmt->decode_rows(lins[i], 0, lins[i]->rows, w);
            uint64_t k = (uint64_t)llround(s * (double)n), zeros = (uint64_t)n - count_nonzero(w, n);
            test_expect(zeros == k, "layer %d linear %d: %llu zeros, expected %llu", l, i, (unsigned long long)zeros,
                        (unsigned long long)k);
            total += k;
            free(w);
        }
    }
    test_expect(rep.params_removed == total, "layer: params_removed %llu, expected %llu", (unsigned long long)rep.params_removed,
                (unsigned long long)total);
    cJSON_Delete(rep.details);
}

/* Every group of 4 has at most 2 non-zeros, kept values are unchanged and
 * at least as large as the removed ones of their group. */
static void check_nm_model(sb_model *m, sb_pool *pool, const float *before, int64_t n) {
    const char *assign[] = {"pattern=n:m", "n=2", "m=4"};
    sb_method_report rep;
    sb_err err = {0};
    if (!test_expect(prune(m, pool, assign, 3, &rep, &err) == SB_OK, "2:4: %s", err.msg)) return;
    int64_t n2;
    float *after = all_weights(m, &n2);
    int64_t bad = -1;
    for (int64_t g = 0; g < n / 4 && bad < 0; g++) {
        float min_kept = INFINITY, max_removed = 0;
        int kept = 0;
        for (int i = 0; i < 4; i++) {
            float b = before[g * 4 + i], a = after[g * 4 + i];
            if (a != 0) kept++, min_kept = fminf(min_kept, fabsf(b));
            else max_removed = fmaxf(max_removed, fabsf(b));
            if (a != 0 && a != b) bad = g;
        }
        if (kept > 2 || max_removed > min_kept) bad = g;
    }
    test_expect(bad < 0, "2:4 violated in group %lld", (long long)bad);
    test_expect(rep.params_removed == (uint64_t)n / 2, "2:4: params_removed %llu of %lld", (unsigned long long)rep.params_removed,
                (long long)n);
    test_expect(strcmp(m->blocks[1].w_down.fmt->name, "n:m") == 0 && rep.real_quant, "2:4 stored as %s",
                m->blocks[1].w_down.fmt->name);
    test_expect(fabs(rep.bits_per_weight - 17) < 1e-9, "2:4: %g bits per weight", rep.bits_per_weight);
    cJSON_Delete(rep.details);
    free(after);
}

static bool same_linear(const sb_linear *a, const sb_linear *b) { return a->fmt == b->fmt && a->data == b->data; }

static void check_refusals(sb_model *m, sb_pool *pool) {
    sb_linear before = m->blocks[0].wq, before_down = m->blocks[1].w_down;
    struct {
        const char *assign[3];
        const char *names;
    } cases[] = {
        {{"sparsity=1", NULL, NULL}, "sparsity"},
        {{"sparsity=1.5", NULL, NULL}, "sparsity"},
        {{"pattern=n:m", "n=4", "m=4"}, "n"},
        {{"pattern=n:m", "n=2", "m=3"}, "m"}, /* widths are 64 and 128 */
        {{"format=n:m", NULL, NULL}, "format"},
        {{"scope=row", NULL, NULL}, "scope"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int n = 0;
        while (n < 3 && cases[c].assign[n]) n++;
        sb_method_report rep;
        sb_err err = {0};
        int rc = prune(m, pool, cases[c].assign, n, &rep, &err);
        test_expect(rc == SB_EINPUT && strstr(err.msg, cases[c].names), "%s: rc %d '%s'", cases[c].assign[0], rc, err.msg);
    }
    /* sparsity 1 straight to apply, past the parser */
    sb_params p;
    sb_err err = {0};
    sb_method_report rep = {0};
    sb_run_ctx ctx = {.pool = pool};
    const char *one[] = {"sparsity=0.5"};
    if (sb_params_from_strings(sb_method_magnitude.params, sb_method_magnitude.n_params, one, 1, "test", &p, &err) == SB_OK) {
        p.v[0].num = 1;
        test_expect(sb_method_magnitude.apply(m, &p, &ctx, &rep, &err) == SB_EINPUT && strstr(err.msg, "sparsity"),
                    "sparsity=1 in apply: '%s'", err.msg);
    }
    test_expect(same_linear(&before, &m->blocks[0].wq) && same_linear(&before_down, &m->blocks[1].w_down), "model changed");
}

static bool model_logits(const sb_model *m, sb_pool *pool, const int32_t *tokens, int n, float *logits) {
    sb_session *s;
    sb_err err = {0};
    if (!test_expect(sb_session_new(m, pool, 1, n, n, &s, &err) == SB_OK, "%s", err.msg)) return false;
    bool ok = test_expect(sb_session_forward(s, tokens, n, 0, logits, &err) == SB_OK, "%s", err.msg);
    sb_session_free(s);
    return ok;
}

/* 0 %: dense storage gives the very same logits; csr the same up to the
 * order of the sums of the few-token kernel. */
static void check_zero_sparsity(sb_model *m, sb_pool *pool, sb_model_snapshot *snap) {
    enum { N = 3 };
    int32_t tokens[N] = {5, 17, 3};
    int64_t V = m->n_vocab;
    float *dense = malloc(sizeof(float) * N * (size_t)V), *pruned = malloc(sizeof(float) * N * (size_t)V);
    sb_method_report rep;
    sb_err err = {0};
    const char *zero_dense[] = {"sparsity=0", "format=dense"}, *zero_csr[] = {"sparsity=0", "format=csr"};
    if (test_expect(dense && pruned, "out of memory") && model_logits(m, pool, tokens, N, dense) &&
        test_expect(prune(m, pool, zero_dense, 2, &rep, &err) == SB_OK, "%s", err.msg) &&
        model_logits(m, pool, tokens, N, pruned)) {
        test_expect(memcmp(dense, pruned, sizeof(float) * N * (size_t)V) == 0 && rep.params_removed == 0,
                    "0 %% dense: logits differ (max %g) or %llu removed", test_max_abs_diff(dense, pruned, (long)(N * V)),
                    (unsigned long long)rep.params_removed);
        cJSON_Delete(rep.details);
        sb_model_snapshot_restore(m, snap);
        if (test_expect(prune(m, pool, zero_csr, 2, &rep, &err) == SB_OK, "%s", err.msg) && model_logits(m, pool, tokens, N, pruned)) {
            double diff = test_max_abs_diff(dense, pruned, (long)(N * V)), scale = test_max_abs(dense, (long)(N * V));
            test_expect(diff <= 1e-5 * scale, "0 %% csr: max |diff| %g vs %g", diff, scale);
            cJSON_Delete(rep.details);
        }
    }
    sb_model_snapshot_restore(m, snap);
    free(dense);
    free(pruned);
}

static void test_magnitude_fixture(sb_pool *pool) {
    test_begin("magnitude_sparsity_pattern_refusals");
    sb_model *m;
    sb_model_snapshot *snap;
    sb_err err = {0};
    if (!test_expect(sb_model_load("tests/reference/models/llama", &m, &err) == SB_OK, "%s", err.msg)) {
        test_end();
        return;
    }
    int64_t n;
    float *before = all_weights(m, &n);
    if (test_expect(before != NULL, "out of memory") &&
        test_expect(count_nonzero(before, n) == (uint64_t)n, "fixture has exact zeros: counts would be off") &&
        test_expect(sb_model_snapshot_take(m, &snap, &err) == SB_OK, "%s", err.msg)) {
        check_refusals(m, pool);
        const double levels[] = {0.1, 0.5, 0.9};
        for (int i = 0; i < 3; i++) {
            check_global(m, pool, before, n, levels[i], "csr");
            sb_model_snapshot_restore(m, snap);
        }
        check_global(m, pool, before, n, 0.5, "dense");
        sb_model_snapshot_restore(m, snap);
        check_per_layer(m, pool, 0.37);
        sb_model_snapshot_restore(m, snap);
        check_nm_model(m, pool, before, n);
        sb_model_snapshot_restore(m, snap);
        check_zero_sparsity(m, pool, snap);
        sb_model_snapshot_free(snap);
    }
    free(before);
    sb_model_free(m);
    test_end();
}

/* Ties at the threshold: a one-layer model whose weights are all equal
 * loses exactly k of them, the first k in row-major order. */
static void test_ties(sb_pool *pool) {
    test_begin("magnitude_ties_in_model_order");
    sb_model *m;
    sb_model_snapshot *snap;
    sb_err err = {0};
    if (!test_expect(sb_model_load("tests/reference/models/llama", &m, &err) == SB_OK, "%s", err.msg)) {
        test_end();
        return;
    }
    if (test_expect(sb_model_snapshot_take(m, &snap, &err) == SB_OK, "%s", err.msg)) {
        /* every block linear replaced by one of constant |w| = 0.5 (signs alternate);
         * the method replaces these in turn, so they are freed here, not by the snapshot */
        float **mine = calloc((size_t)m->n_layer * 7, sizeof *mine);
        int n_mine = 0;
        for (int l = 0; mine && l < m->n_layer; l++) {
            sb_block *b = &m->blocks[l];
            sb_linear *lins[7] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
            for (int i = 0; i < 7; i++) {
                if (!lins[i]->fmt) continue;
                float *w = malloc(sizeof(float) * (size_t)(lins[i]->rows * lins[i]->cols));
                if (!test_expect(w != NULL, "out of memory")) continue;
                for (int64_t k = 0; k < lins[i]->rows * lins[i]->cols; k++) w[k] = k % 2 ? -0.5f : 0.5f;
                *lins[i] = (sb_linear){.fmt = &sb_format_f32, .rows = lins[i]->rows, .cols = lins[i]->cols, .data = w, .owned = w};
                mine[n_mine++] = w;
            }
        }
        int64_t n;
        float *before = all_weights(m, &n);
        const char *assign[] = {"sparsity=0.3", "format=dense"};
        sb_method_report rep;
        if (before && test_expect(prune(m, pool, assign, 2, &rep, &err) == SB_OK, "%s", err.msg)) {
            int64_t k = llround(0.3 * (double)n), n2;
            float *after = all_weights(m, &n2);
            int64_t bad = -1;
            for (int64_t i = 0; after && i < n && bad < 0; i++)
                if ((after[i] == 0) != (i < k)) bad = i;
            test_expect(after && bad < 0, "weight %lld: ties not removed first-in-model-order", (long long)bad);
            free(after);
            cJSON_Delete(rep.details);
        }
        free(before);
        sb_model_snapshot_restore(m, snap);
        sb_model_snapshot_free(snap);
        for (int i = 0; i < n_mine; i++) free(mine[i]);
        free(mine);
    }
    sb_model_free(m);
    test_end();
}

static double perplexity(const sb_model *m, sb_pool *pool) {
    const char *args[] = {"data=tests/reference/tasks/text.raw", "protocol=gptq", "seq=128", "chunks=24"};
    sb_params p;
    sb_task_result r = {0};
    sb_run_ctx ctx = {.pool = pool};
    sb_err err = {0};
    int rc = sb_params_from_strings(sb_task_perplexity.params, sb_task_perplexity.n_params, args, 4, "test", &p, &err);
    if (!rc) rc = sb_task_perplexity.run(m, &p, &ctx, &r, &err);
    const sb_metric *ppl = rc ? NULL : sb_result_find(&r, "ppl");
    double v = ppl ? ppl->value : NAN;
    test_expect(!rc && ppl, "perplexity: %s", err.msg);
    sb_result_clear(&r);
    return v;
}

static void test_perplexity_grows(sb_pool *pool) {
    test_begin("magnitude_perplexity_grows_with_sparsity");
    sb_model *m;
    sb_model_snapshot *snap;
    sb_err err = {0};
    if (!test_expect(sb_model_load("tests/reference/tasks/model", &m, &err) == SB_OK, "%s", err.msg)) {
        test_end();
        return;
    }
    if (test_expect(sb_model_snapshot_take(m, &snap, &err) == SB_OK, "%s", err.msg)) {
        const char *levels[] = {"sparsity=0", "sparsity=0.3", "sparsity=0.6", "sparsity=0.9"};
        double ppl[4];
        char line[256] = "";
        for (int i = 0; i < 4; i++) {
            sb_method_report rep;
            if (!test_expect(prune(m, pool, &levels[i], 1, &rep, &err) == SB_OK, "%s", err.msg)) break;
            cJSON_Delete(rep.details);
            ppl[i] = perplexity(m, pool);
            snprintf(line + strlen(line), sizeof line - strlen(line), " %s: %.3f", levels[i], ppl[i]);
            sb_model_snapshot_restore(m, snap);
            if (i > 0) test_expect(ppl[i] > ppl[i - 1], "perplexity does not grow:%s", line);
        }
        printf("# magnitude (global, csr) perplexity, gptq seq=128, 24 windows:%s\n", line);
        sb_model_snapshot_free(snap);
    }
    sb_model_free(m);
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
    test_products(pool);
    test_storage();
    test_magnitude_fixture(pool);
    test_ties(pool);
    test_perplexity_grows(pool);
    sb_pool_free(pool);
    return test_status();
}

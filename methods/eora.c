/* eora.c - EoRA, eigenspace low-rank compensation (arXiv 2410.21271).
 *
 * Runs after a compressing method in a composition ("rtn+eora",
 * "gptq+eora").  For every block in order, with W the weight as loaded (the
 * run context's reference model) and W_c the earlier step's result:
 *
 *   1. calibration passes of the block with its current weights, one per
 *      stage [q,k,v] -> [o] -> [gate,up] -> [down] (as gptq's true
 *      sequential order); the block's inputs come from the earlier blocks
 *      as already compensated (harness/calibration.h), a stage's from the
 *      block's earlier stages as compensated, and every changed linear's
 *      input second moment is accumulated in float64:
 *          C = (1/n)·Σ_t x_t x_tᵀ,  n = token rows seen by that linear
 *            = n_samples · seq_len;
 *   2. C = QΛQᵀ (float64, sb_symmetric_eigen: Householder + implicit QL),
 *      negative eigenvalues (round-off of a positive semi-definite matrix)
 *      clamped to 0; S = QΛ^½;
 *   3. Δ = W − W_c; Δ·S ≈ U_r Σ_r V_rᵀ (sb_lowrank_factorize);
 *      B = U_r Σ_r^½ and A = Σ_r^½ V_rᵀ S⁻¹ (METHODS.md);
 *   4. W_c is wrapped by the low-rank add-on: Ŵ = W_c + B·A;
 *   5. the block's outputs are recomputed with the compensated weights and
 *      become the next block's inputs.
 *
 * A without S⁻¹: since U_r has orthonormal columns,
 *     Σ_r^½ V_rᵀ S⁻¹ = Σ_r^-½ U_rᵀ (Δ S) S⁻¹ = Σ_r^-½ U_rᵀ Δ = (BᵀB)⁻¹ Bᵀ Δ,
 * exactly the same matrix when S is invertible, and for any S the A that
 * minimises ‖(Δ − B·A)·S‖_F for the chosen B.  Computing it this way never
 * divides by √λ, so directions the calibration barely excites (tiny λ)
 * cannot blow A up, and no eigenvalue floor is needed to make S invertible:
 * a singular C (fewer tokens than columns, dead channels) is fine.
 *
 * Cost per linear (cols = c, rows = m): the eigendecomposition ≈ 9·c³ flops
 * (cyclic Jacobi, used before, took ~60·c³ with strided access: 98 s for
 * the built-in model, now a few seconds), plus the products m·c² for Δ·S
 * and the error measures, plus two truncated SVDs (EoRA's and, for the
 * report, LoRC's at the same rank under the same C). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "calibration.h"
#include "format_lowrank.h"
#include "linalg.h"
#include "plugin.h"

enum { N_LINEARS = 7 };
static const char *const LINEAR_NAMES[N_LINEARS] = {"wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"};

static sb_linear *linear_of(sb_block *b, int i) {
    sb_linear *all[N_LINEARS] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
    return all[i];
}

static const sb_linear *const_linear_of(const sb_block *b, int i) { return linear_of((sb_block *)b, i); }

/* The earlier step left this linear as loaded: Δ = 0, and its payload
 * belongs to the runner's snapshot, so it must not be wrapped. */
static bool unchanged(const sb_linear *cur, const sb_linear *orig) {
    return cur->data == orig->data || (cur->owned && cur->owned == orig->owned);
}

/* ---- one linear ------------------------------------------------------------ */

/* Δ = W − W_c and W itself in float64, decoded row block by row block. */
static int weight_delta(const sb_linear *orig, const sb_linear *cur, double *delta, double *w, sb_err *err) {
    enum { CHUNK = 64 };
    float *a = sb_malloc(err, sizeof(float) * CHUNK * (size_t)orig->cols);
    float *b = sb_malloc(err, sizeof(float) * CHUNK * (size_t)orig->cols);
    int rc = a && b ? SB_OK : SB_EINTERNAL;
    for (int64_t r0 = 0; !rc && r0 < orig->rows; r0 += CHUNK) {
        int64_t n = orig->rows - r0 < CHUNK ? orig->rows - r0 : CHUNK;
        orig->fmt->decode_rows(orig, r0, n, a);
        cur->fmt->decode_rows(cur, r0, n, b);
        for (int64_t i = 0; i < n * orig->cols; i++) {
            w[r0 * orig->cols + i] = (double)a[i];
            delta[r0 * orig->cols + i] = (double)a[i] - (double)b[i];
        }
    }
    free(a);
    free(b);
    return rc;
}

/* tr(D·C·Dᵀ) = (1/n)·Σ_t ‖D x_t‖², the mean squared output error over the
 * calibration tokens.  scratch: rows x cols doubles. */
static double c_weighted(const double *d, int64_t rows, int64_t cols, const double *c, double *scratch) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)cols, (int)cols, 1.0, d, (int)cols, c,
                (int)cols, 0.0, scratch, (int)cols);
    double s = 0;
    for (int64_t i = 0; i < rows * cols; i++) s += d[i] * scratch[i];
    return s;
}

/* out = Δ − B·A with the f32 factors as stored. */
static int residual(const double *delta, int64_t rows, int64_t cols, int rank, const float *B, const float *A,
                    double *out, sb_err *err) {
    double *bd = sb_malloc(err, sizeof(double) * (size_t)(rows * rank));
    double *ad = sb_malloc(err, sizeof(double) * (size_t)(rank * cols));
    int rc = bd && ad ? SB_OK : SB_EINTERNAL;
    if (!rc) {
        for (int64_t i = 0; i < rows * rank; i++) bd[i] = B[i];
        for (int64_t i = 0; i < rank * cols; i++) ad[i] = A[i];
        memcpy(out, delta, sizeof(double) * (size_t)(rows * cols));
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)cols, rank, -1.0, bd, rank, ad,
                    (int)cols, 1.0, out, (int)cols);
    }
    free(bd);
    free(ad);
    return rc;
}

/* A = (BᵀB)⁻¹·Bᵀ·Δ = Σ_r^-½ U_rᵀ Δ (see the header comment); BᵀB = Σ_r
 * since U_r is orthonormal.  A zero singular value leaves its row of A 0. */
static void solve_a(const double *delta, int64_t rows, int64_t cols, int rank, const float *B, float *A) {
    for (int k = 0; k < rank; k++) {
        double sigma = 0;
        for (int64_t i = 0; i < rows; i++) sigma += (double)B[i * rank + k] * B[i * rank + k];
        for (int64_t j = 0; j < cols; j++) {
            double s = 0;
            for (int64_t i = 0; sigma > 0 && i < rows; i++) s += (double)B[i * rank + k] * delta[i * cols + j];
            A[(int64_t)k * cols + j] = sigma > 0 ? (float)(s / sigma) : 0.0f;
        }
    }
}

/* Work buffers of one linear. */
typedef struct lin_work {
    int64_t rows, cols;
    double *delta, *w, *c, *q, *lambda, *m, *scratch, *res;
    float *B, *A;
} lin_work;

static void work_free(lin_work *k) {
    free(k->delta), free(k->w), free(k->c), free(k->q), free(k->lambda), free(k->m), free(k->scratch), free(k->res);
    free(k->B), free(k->A);
}

static int work_alloc(lin_work *k, int64_t rows, int64_t cols, int rank, sb_err *err) {
    size_t rc_ = (size_t)(rows * cols), cc = (size_t)(cols * cols);
    k->rows = rows, k->cols = cols;
    k->delta = sb_malloc(err, sizeof(double) * rc_);
    k->w = sb_malloc(err, sizeof(double) * rc_);
    k->m = sb_malloc(err, sizeof(double) * rc_);
    k->scratch = sb_malloc(err, sizeof(double) * rc_);
    k->res = sb_malloc(err, sizeof(double) * rc_);
    k->c = sb_malloc(err, sizeof(double) * cc);
    k->q = sb_malloc(err, sizeof(double) * cc);
    k->lambda = sb_malloc(err, sizeof(double) * (size_t)cols);
    k->B = sb_malloc(err, sizeof(float) * (size_t)(rows * rank));
    k->A = sb_malloc(err, sizeof(float) * (size_t)(rank * cols));
    bool ok = k->delta && k->w && k->m && k->scratch && k->res && k->c && k->q && k->lambda && k->B && k->A;
    return ok ? SB_OK : SB_EINTERNAL;
}

/* C = (1/n)·Σ x xᵀ from the service's H = (2/n_seqs)·Σ x xᵀ. */
static void second_moment(const sb_linear_stats *st, double *c) {
    double scale = st->n_rows > 0 ? (double)st->n_seqs / (2.0 * (double)st->n_rows) : 0;
    for (int64_t i = 0; i < st->cols * st->cols; i++) c[i] = st->h[i] * scale;
}

/* Per-linear numbers for the report. */
typedef struct lin_result {
    double before, after, lorc, ref; /* tr(D C Dᵀ) for W − W_c, W − Ŵ, LoRC's W − Ŵ, and W itself */
    double lambda_max, lambda_min;   /* before clamping */
    int clamped;                     /* eigenvalues clamped to 0 */
} lin_result;

/* m = Δ·S with S = Q·Λ^½, Λ clamped at 0. */
static void whiten(lin_work *k, lin_result *res) {
    int64_t c = k->cols;
    res->lambda_max = -INFINITY, res->lambda_min = INFINITY, res->clamped = 0;
    for (int64_t j = 0; j < c; j++) {
        double l = k->lambda[j];
        res->lambda_max = fmax(res->lambda_max, l), res->lambda_min = fmin(res->lambda_min, l);
        res->clamped += l < 0;
        double s = sqrt(l > 0 ? l : 0);
        for (int64_t i = 0; i < c; i++) k->q[i * c + j] *= s; /* q becomes S */
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)k->rows, (int)c, (int)c, 1.0, k->delta, (int)c, k->q,
                (int)c, 0.0, k->m, (int)c);
}

/* LoRC at the same rank (S = I) under the same C, for the report. */
static int lorc_error(lin_work *k, int rank, double *out, sb_err *err) {
    int rc = sb_lowrank_factorize(k->delta, k->rows, k->cols, rank, k->B, k->A, err);
    if (!rc) rc = residual(k->delta, k->rows, k->cols, rank, k->B, k->A, k->res, err);
    if (!rc) *out = c_weighted(k->res, k->rows, k->cols, k->c, k->scratch);
    return rc;
}

/* Eigendecomposition of C into q, lambda; c itself is kept. */
static int eigen_of_c(lin_work *k, sb_err *err) {
    double *a = sb_malloc(err, sizeof(double) * (size_t)(k->cols * k->cols));
    if (!a) return SB_EINTERNAL;
    memcpy(a, k->c, sizeof(double) * (size_t)(k->cols * k->cols));
    int rc = sb_symmetric_eigen(a, (int)k->cols, k->lambda, k->q, err);
    free(a);
    return rc;
}

/* Replaces *cur by W_c + B·A (EoRA) and fills res. */
static int compensate(sb_linear *cur, const sb_linear *orig, const sb_linear_stats *st, int rank, lin_result *res,
                      sb_err *err) {
    lin_work k = {0};
    int rc = work_alloc(&k, cur->rows, cur->cols, rank, err);
    if (!rc) rc = weight_delta(orig, cur, k.delta, k.w, err);
    if (!rc) {
        second_moment(st, k.c);
        res->before = c_weighted(k.delta, k.rows, k.cols, k.c, k.scratch);
        res->ref = c_weighted(k.w, k.rows, k.cols, k.c, k.scratch);
        rc = lorc_error(&k, rank, &res->lorc, err);
    }
    if (!rc) rc = eigen_of_c(&k, err);
    if (!rc) {
        whiten(&k, res);
        rc = sb_lowrank_factorize(k.m, k.rows, k.cols, rank, k.B, k.A, err);
    }
    if (!rc) {
        solve_a(k.delta, k.rows, k.cols, rank, k.B, k.A);
        rc = residual(k.delta, k.rows, k.cols, rank, k.B, k.A, k.res, err);
    }
    if (!rc) {
        res->after = c_weighted(k.res, k.rows, k.cols, k.c, k.scratch);
        rc = sb_lowrank_wrap(cur, rank, k.B, k.A, cur, err);
    }
    work_free(&k);
    return rc;
}

/* ---- the model ------------------------------------------------------------- */

typedef struct eora_run {
    sb_model *m;
    const sb_model *ref;
    const sb_run_ctx *ctx;
    int rank;
    sb_calib_run *calib;
    cJSON *layers;
    int wrapped, kept;
    uint64_t params_added;
} eora_run;

static void add_detail(eora_run *e, int layer, int which, const sb_linear_stats *st, const lin_result *r) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return;
    char name[48];
    double n = (double)st->n_rows;
    snprintf(name, sizeof name, "blocks.%d.%s", layer, LINEAR_NAMES[which]);
    cJSON_AddStringToObject(o, "layer", name);
    cJSON_AddNumberToObject(o, "sq_err_before", r->before * n);
    cJSON_AddNumberToObject(o, "sq_err_after", r->after * n);
    cJSON_AddNumberToObject(o, "sq_err_lorc", r->lorc * n);
    cJSON_AddNumberToObject(o, "rel_err_before", r->ref > 0 ? r->before / r->ref : 0);
    cJSON_AddNumberToObject(o, "rel_err_after", r->ref > 0 ? r->after / r->ref : 0);
    cJSON_AddNumberToObject(o, "rel_err_lorc", r->ref > 0 ? r->lorc / r->ref : 0);
    cJSON_AddNumberToObject(o, "lambda_max", r->lambda_max);
    cJSON_AddNumberToObject(o, "lambda_min", r->lambda_min);
    cJSON_AddNumberToObject(o, "lambda_clamped", r->clamped);
    cJSON_AddNumberToObject(o, "tokens", n);
    cJSON_AddItemToArray(e->layers, o);
}

/* Linears compensated after one calibration pass, in gptq's "true
 * sequential" stages, so each stage's inputs come from the block's
 * already-compensated earlier stages (METHODS.md: C from the inputs of the
 * already-compensated earlier layers), not only the earlier blocks'. */
enum { END = -1, MAX_STAGES = 4 };
typedef struct stage_plan {
    int n;
    int8_t lin[MAX_STAGES][N_LINEARS + 1];
} stage_plan;

static stage_plan plan_stages(const sb_model *m) {
    static const stage_plan sequential = {4, {{0, 1, 2, END}, {3, END}, {4, 5, END}, {6, END}}};
    static const stage_plan parallel = {2, {{0, 1, 2, 4, 5, END}, {3, 6, END}}};
    return m->parallel_residual ? parallel : sequential;
}

/* One calibration pass of block l with its current weights, then EoRA on
 * each changed linear of the stage. */
static int compensate_stage(eora_run *e, int l, const int8_t *stage, sb_err *err) {
    sb_linear_stats st[N_LINEARS];
    int which[N_LINEARS], n = 0, rc = SB_OK;
    for (int s = 0; !rc && stage[s] != END; s++) {
        int i = stage[s];
        const sb_linear *cur = linear_of(&e->m->blocks[l], i);
        if (!sb_linear_present(cur)) continue;
        if (unchanged(cur, const_linear_of(&e->ref->blocks[l], i))) {
            e->kept++;
            continue;
        }
        rc = sb_linear_stats_init(&st[n], cur, err);
        if (!rc) which[n++] = i;
    }
    if (!rc && n > 0) rc = sb_calib_run_block(e->calib, st, n, err);
    for (int j = 0; !rc && j < n; j++) {
        sb_linear *cur = linear_of(&e->m->blocks[l], which[j]);
        lin_result r = {0};
        int64_t rows = cur->rows, cols = cur->cols;
        rc = compensate(cur, const_linear_of(&e->ref->blocks[l], which[j]), &st[j], e->rank, &r, err);
        if (rc) {
            sb_err_prefix(err, "eora: blocks.%d.%s", l, LINEAR_NAMES[which[j]]);
            break;
        }
        add_detail(e, l, which[j], &st[j], &r);
        e->wrapped++;
        e->params_added += (uint64_t)e->rank * (uint64_t)(rows + cols);
    }
    for (int j = 0; j < n; j++) sb_linear_stats_free(&st[j]);
    return rc;
}

static int compensate_model(eora_run *e, sb_err *err) {
    int rc = SB_OK;
    for (int l = 0; !rc && l < e->m->n_layer; l++) {
        stage_plan plan = plan_stages(e->m);
        for (int s = 0; !rc && s < plan.n; s++) rc = compensate_stage(e, l, plan.lin[s], err);
        /* the next block's inputs come from this block as compensated */
        if (!rc) rc = sb_calib_advance(e->calib, err);
        sb_run_progress(e->ctx, l + 1, e->m->n_layer, "blocks");
    }
    return rc;
}

/* ---- parameters ------------------------------------------------------------ */

static int check_linear(const sb_linear *cur, const sb_linear *orig, int rank, int l, int i, sb_err *err) {
    if (!orig->fmt || cur->rows != orig->rows || cur->cols != orig->cols)
        return sb_err_set(err, SB_EINPUT, "eora: blocks.%d.%s changed shape since loading", l, LINEAR_NAMES[i]);
    int64_t max_rank = cur->rows < cur->cols ? cur->rows : cur->cols;
    if (rank > max_rank)
        return sb_err_set(err, SB_EINPUT, "eora: rank=%d exceeds min(rows, cols) = %lld of blocks.%d.%s", rank,
                          (long long)max_rank, l, LINEAR_NAMES[i]);
    return SB_OK;
}

/* Every refusal happens here, before the model changes. */
static int check_model(const sb_model *m, const sb_model *ref, int rank, int seq_len, sb_err *err) {
    if (!ref)
        return sb_err_set(err, SB_EINPUT,
                          "eora needs the unmodified model as reference (the run context has none); "
                          "use it after a compressing method in a composition");
    if (ref->n_layer != m->n_layer)
        return sb_err_set(err, SB_EINPUT, "eora: the model has %d blocks, the reference %d (an earlier step dropped blocks)",
                          m->n_layer, ref->n_layer);
    if (sb_model_is_sliced(m)) /* rotated weights: the difference to the originals is no error to compensate */
        return sb_err_set(err, SB_EINPUT, "eora: the model is sliced (SliceGPT); its weights no longer compare with the loaded ones");
    if (!m->vision && m->pos_embd && seq_len > m->max_positions)
        return sb_err_set(err, SB_EINPUT, "eora: seq_len %d exceeds the model's %d positions", seq_len, m->max_positions);
    for (int l = 0; l < m->n_layer; l++)
        for (int i = 0; i < N_LINEARS; i++) {
            const sb_linear *cur = const_linear_of(&m->blocks[l], i);
            if (!sb_linear_present(cur)) continue;
            int rc = check_linear(cur, const_linear_of(&ref->blocks[l], i), rank, l, i, err);
            if (rc) return rc;
        }
    return SB_OK;
}

static sb_calib_config calib_from(const sb_params *p) {
    return (sb_calib_config){.path = sb_param_str(p, "data"), .n_samples = (int)sb_param_num(p, "n_samples"),
                             .seq_len = (int)sb_param_num(p, "seq_len"), .seed = (uint64_t)sb_param_num(p, "seed")};
}

static cJSON *make_details(eora_run *e, const sb_calib_set *set) {
    cJSON *d = cJSON_CreateObject();
    if (!d) return NULL;
    cJSON *cal = sb_calib_set_describe(set);
    if (cal) cJSON_AddItemToObject(d, "calibration", cal);
    cJSON_AddNumberToObject(d, "rank", e->rank);
    cJSON_AddNumberToObject(d, "linears_compensated", e->wrapped);
    cJSON_AddNumberToObject(d, "linears_unchanged", e->kept);
    cJSON_AddNumberToObject(d, "params_added", (double)e->params_added);
    cJSON_AddStringToObject(d, "factor_format", "f32");
    cJSON_AddStringToObject(d, "error_note",
                            "sq_err_* = sum over the calibration tokens (n = n_samples * seq_len) of |(W - W')x|^2 "
                            "with the layer's inputs from the already-compensated earlier blocks; W' = W_c (before), "
                            "W_c + B*A of EoRA (after), or of LoRC at the same rank (lorc); rel_err_* = sq_err / |Wx|^2");
    cJSON_AddItemToObject(d, "layers", e->layers);
    e->layers = NULL;
    return d;
}

static int eora_apply(sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_method_report *report, sb_err *err) {
    eora_run e = {.m = m, .ref = ctx ? ctx->reference : NULL, .ctx = ctx, .rank = (int)sb_param_num(p, "rank")};
    sb_calib_config cc = calib_from(p);
    sb_calib_set set;
    memset(&set, 0, sizeof set);
    int rc = check_model(m, e.ref, e.rank, cc.seq_len, err);
    if (!rc) rc = sb_calib_config_check(&cc, err);
    if (!rc) rc = m->vision ? sb_calib_draw_images(m, &cc, &set, err) : sb_calib_draw(m->tokenizer, &cc, &set, err);
    if (!rc) rc = sb_calib_run_new(m, &set, ctx, &e.calib, err);
    if (!rc && !(e.layers = cJSON_CreateArray())) rc = sb_err_set(err, SB_EINTERNAL, "out of memory");
    if (!rc) rc = compensate_model(&e, err);
    if (!rc) {
        report->bits_per_weight = sb_model_bits_per_weight(m);
        report->real_quant = true; /* factors stored and multiplied as such; W_c keeps its own format */
        report->details = make_details(&e, &set);
        if (!report->details) rc = sb_err_set(err, SB_EINTERNAL, "out of memory (eora report)");
    }
    cJSON_Delete(e.layers);
    sb_calib_run_free(e.calib);
    sb_calib_set_free(&set);
    return rc;
}

static const sb_param_spec eora_params[] = {
    {"rank", SB_PARAM_INT, "64", 1, 65536, NULL, "rank r of the compensation B·A (at most min(rows, cols) of every weight)"},
    {"data", SB_PARAM_STRING, "", 0, -1, NULL, "calibration text file (raw text)"},
    {"n_samples", SB_PARAM_INT, "128", 1, 1 << 20, NULL, "calibration sequences"},
    {"seq_len", SB_PARAM_INT, "2048", 2, 1 << 20, NULL, "tokens per calibration sequence"},
    {"seed", SB_PARAM_INT, "0", 0, 4294967295.0, NULL, "seed of the calibration windows (Python random.seed)"},
};

const sb_method sb_method_eora = {
    .abi = SB_PLUGIN_ABI,
    .name = "eora",
    .family = "low-rank",
    .summary = "eigenspace low-rank compensation of the previous step's error, weighted by calibration activations",
    .paper = {"EoRA: Fine-tuning-free Compensation for Compressed LLM with Eigenspace Low-Rank Approximation",
              "2410.21271", "2024"},
    .params = eora_params,
    .n_params = sizeof eora_params / sizeof eora_params[0],
    .apply = eora_apply,
};

/* gptq.c - GPTQ (Frantar et al., arXiv 2210.17323): quantize each linear
 * column by column, feeding every column's rounding error into the columns
 * not yet quantized through the inverse Hessian of the layer's
 * reconstruction loss ‖(W − Ŵ)X‖², H = 2·XXᵀ/N.
 *
 * Follows the authors' gptq.py (fasterquant) and llama.py step for step
 * (METHODS.md, "GPTQ"):
 *  - per-channel parameters are fitted on the weights before dead inputs
 *    are zeroed (quant.py's ready() check comes first);
 *  - dead inputs (H_ii = 0): H_ii = 1, W[:, i] = 0;
 *  - static_groups: every group's parameters fitted up front on W;
 *  - act_order: columns in order of decreasing H_ii, undone at the end;
 *  - damping H += damp·mean(diag H)·I; U = upper Cholesky of H⁻¹ (float64);
 *  - lazy blocks of block_size columns; per column q = Q(w), err = (w − q)/U_ii,
 *    the block's later columns -= err·U[i, i:]; after the block all later
 *    columns -= Err·U[block, after] (one SGEMM);
 *  - dynamic groups: at a group's first column the quantizer is fitted on
 *    the *global* W, which holds the lazy updates of earlier blocks but not
 *    the in-flight updates of the current block (the authors' behaviour).
 * The weights and the feedback are float32 as in the authors' code; the
 * quantizer is the shared one (methods/quantizer.h), with the scale rounded
 * to f16 as format qint stores it, so the feedback sees the stored weight.
 *
 * Groups with act_order: the authors' dynamic groups then follow the
 * permuted order, so a group is a scattered set of columns (g_idx).  Format
 * qint stores contiguous groups only, so the method asks for
 * static_groups=true in that case (groups fitted on the original column
 * order, as the authors added for exactly this reason); the column loop
 * itself (sb_gptq_quantize) supports g_idx and the fixtures test it.
 *
 * Pipeline (llama.py): blocks in order, each block's calibration inputs
 * from the already-quantized earlier blocks (harness/calibration.h);
 * true_sequential quantizes a block in stages so that later linears see
 * the quantized earlier ones: [k, v, q] → [o] → [up, gate] → [down]; a
 * parallel-residual block (attention and MLP on the same input) uses
 * [k, v, q, up, gate] → [o, down].  Embeddings and head stay as loaded.
 *
 * On a CUDA run (ctx->backend; the method is per_backend) the calibration
 * Hessians accumulate on the device and the Cholesky steps and the column
 * loop run there (sb_gptq_quantize_cuda, harness/gptq_device.h), after the
 * same host preparation as here: the CPU's weights up to ties.  The
 * reported errors (record_errors) are still computed on the host. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "calibration.h"
#include "format_qint.h"
#include "gptq.h"
#include "gptq_device.h"
#include "linalg.h"
#include "plugin.h"
#include "quantizer.h"

/* ---- the column loop for one layer --------------------------------------- */


enum { ROWS_PER_TASK = 8 };

typedef struct layer_state {
    const sb_gptq_opts *o;
    const uint8_t *group_bits; /* [rows * n_groups] widths, or NULL: every group o->bits */
    sb_quantizer qz;
    int64_t rows, cols, gs;  /* gs: group size (cols when per channel) */
    int64_t n_groups;
    float *w;                /* [rows, cols] working weights, permuted */
    float *u;                /* [cols, cols] upper factor of H⁻¹, float32 */
    int64_t *perm;           /* permuted position -> original column */
    sb_qparams *fixed;       /* per channel [rows] or static [rows * n_groups] */
    sb_qparams *current;     /* [rows] parameters of the group in progress */
    sb_qparams *col_params;  /* [rows, cols] parameters used at each permuted position */
    uint8_t *codes;          /* [rows, cols] permuted */
    float *qw;               /* [rows, cols] permuted dequantized */
    double *row_loss;        /* [rows] */
    sb_gptq_group_fit fit;   /* a method's group fit, or NULL: min-max */
    const sb_gptq_elementwise *elem; /* a method's per-weight quantizer, or NULL */
    void *fit_user;
    sb_quantizer *row_qz;    /* [rows] scratch of fit */
    sb_qparams *group_params; /* [rows] scratch of fit */
    /* the block in progress */
    int64_t i1, count;
    float *w1, *err1;        /* [rows, count] */
} layer_state;

/* The quantizer of row r's group g (original order): its own width when mixed. */
static sb_quantizer group_quantizer(const layer_state *s, int64_t r, int64_t g) {
    if (!s->group_bits) return s->qz;
    return sb_quantizer_make(s->group_bits[r * s->n_groups + g], s->o->sym);
}

/* The quantizer for row r at permuted position c. */
static sb_quantizer quantizer_at(const layer_state *s, int64_t r, int64_t c) {
    return s->group_bits ? group_quantizer(s, r, s->perm[c] / s->gs) : s->qz;
}

/* The parameters for row r at permuted position c. */
static sb_qparams params_at(layer_state *s, int64_t r, int64_t c) {
    const sb_gptq_opts *o = s->o;
    if (o->group_size <= 0) return s->fixed[r];
    if (o->static_groups || s->fit) return s->fixed[r * s->n_groups + s->perm[c] / s->gs];
    if (c % s->gs == 0) { /* fitted on the global W: no in-flight updates of this block */
        sb_quantizer qz = quantizer_at(s, r, c);
        s->current[r] = sb_qparams_storable(sb_quantizer_fit(&qz, s->w + r * s->cols + c, s->gs));
    }
    return s->current[r];
}

/* Columns of the current block for one row: quantize, feed the error forward. */
static void block_row(layer_state *s, int64_t r) {
    float *w1 = s->w1 + r * s->count, *e1 = s->err1 + r * s->count;
    for (int64_t i = 0; i < s->count; i++) {
        int64_t c = s->i1 + i;
        sb_qparams p = params_at(s, r, c);
        sb_quantizer qz = quantizer_at(s, r, c);
        uint8_t code = sb_quantizer_code(&qz, p, w1[i]);
        float q = sb_qparams_dequant(p, code), d = s->u[c * s->cols + c];
        s->codes[r * s->cols + c] = code;
        s->qw[r * s->cols + c] = q;
        s->col_params[r * s->cols + c] = p;
        s->row_loss[r] += ((double)w1[i] - q) * ((double)w1[i] - q) / ((double)d * d) / 2;
        float e = (w1[i] - q) / d;
        const float *urow = s->u + c * s->cols + s->i1;
        for (int64_t j = i + 1; j < s->count; j++) w1[j] -= e * urow[j];
        e1[i] = e;
    }
}

/* block_row with a method's per-weight quantizer (no codes, no groups). */
static void elem_block_row(layer_state *s, int64_t r) {
    float *w1 = s->w1 + r * s->count, *e1 = s->err1 + r * s->count;
    for (int64_t i = 0; i < s->count; i++) {
        int64_t c = s->i1 + i;
        float q = s->elem->quantize(s->elem->user, r, c, w1[i]), d = s->u[c * s->cols + c];
        s->qw[r * s->cols + c] = q;
        s->row_loss[r] += ((double)w1[i] - q) * ((double)w1[i] - q) / ((double)d * d) / 2;
        float e = (w1[i] - q) / d;
        const float *urow = s->u + c * s->cols + s->i1;
        for (int64_t j = i + 1; j < s->count; j++) w1[j] -= e * urow[j];
        e1[i] = e;
    }
}

static void block_task(void *arg, int task, int worker) {
    (void)worker;
    layer_state *s = arg;
    int64_t r1 = (int64_t)(task + 1) * ROWS_PER_TASK;
    for (int64_t r = (int64_t)task * ROWS_PER_TASK; r < r1 && r < s->rows; r++) {
        if (s->elem) elem_block_row(s, r);
        else block_row(s, r);
    }
}

/* A method's fit (s->fit) of group g for every row into s->fixed. */
static void fit_group_all_rows(layer_state *s, int64_t g) {
    for (int64_t r = 0; r < s->rows; r++) s->row_qz[r] = group_quantizer(s, r, g);
    s->fit(s->fit_user, s->w, s->rows, s->cols, g * s->gs, s->gs, s->row_qz, s->group_params);
    for (int64_t r = 0; r < s->rows; r++) s->fixed[r * s->n_groups + g] = s->group_params[r];
}

/* Dynamic groups with a method's fit: the groups starting in this block are
 * fitted before its columns run, on the global W, which the block's
 * in-flight updates have not touched yet: the same W params_at would see. */
static void fit_groups_of_block(layer_state *s, int64_t i2) {
    for (int64_t g = (s->i1 + s->gs - 1) / s->gs; g * s->gs < i2; g++) fit_group_all_rows(s, g);
}

static void run_blocks(layer_state *s, sb_pool *pool) {
    for (s->i1 = 0; s->i1 < s->cols; s->i1 += s->o->block_size) {
        int64_t i2 = s->i1 + s->o->block_size < s->cols ? s->i1 + s->o->block_size : s->cols;
        s->count = i2 - s->i1;
        if (s->fit && !s->o->static_groups) fit_groups_of_block(s, i2);
        for (int64_t r = 0; r < s->rows; r++)
            memcpy(s->w1 + r * s->count, s->w + r * s->cols + s->i1, sizeof(float) * (size_t)s->count);
        sb_pool_run(pool, block_task, s, (int)((s->rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK));
        if (i2 < s->cols) /* lazy update: W[:, i2:] -= Err1 · U[i1:i2, i2:] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)s->rows, (int)(s->cols - i2), (int)s->count,
                        -1.0f, s->err1, (int)s->count, s->u + s->i1 * s->cols + i2, (int)s->cols, 1.0f, s->w + i2,
                        (int)s->cols);
    }
}

/* Row-wise min-max fits over groups of the (unpermuted) working weights. */
static void fit_fixed(layer_state *s) {
    int64_t per_row = s->o->group_size <= 0 ? 1 : s->n_groups;
    if (s->fit && s->o->group_size > 0) {
        for (int64_t g = 0; g < s->n_groups; g++) fit_group_all_rows(s, g);
        return;
    }
    for (int64_t r = 0; r < s->rows; r++)
        for (int64_t g = 0; g < per_row; g++) {
            sb_quantizer qz = group_quantizer(s, r, g);
            s->fixed[r * per_row + g] =
                sb_qparams_storable(sb_quantizer_fit(&qz, s->w + r * s->cols + g * s->gs, s->gs));
        }
}

/* Stable argsort by decreasing key (ties keep column order): a merge sort of indices. */
static void merge_sort_desc(int64_t *idx, int64_t *tmp, int64_t n, const double *key) {
    if (n < 2) return;
    int64_t h = n / 2;
    merge_sort_desc(idx, tmp, h, key);
    merge_sort_desc(idx + h, tmp, n - h, key);
    int64_t a = 0, b = h, k = 0;
    while (a < h && b < n) tmp[k++] = key[idx[b]] > key[idx[a]] ? idx[b++] : idx[a++];
    while (a < h) tmp[k++] = idx[a++];
    while (b < n) tmp[k++] = idx[b++];
    memcpy(idx, tmp, sizeof(int64_t) * (size_t)n);
}

/* Act order: permute W's columns and H by decreasing H_ii. */
static int permute_by_activation(layer_state *s, double *h, sb_err *err) {
    int64_t n = s->cols;
    int64_t *tmp = sb_malloc(err, sizeof(int64_t) * (size_t)n);
    double *diag = sb_malloc(err, sizeof(double) * (size_t)n), *hp = sb_malloc(err, sizeof(double) * (size_t)(n * n));
    float *row = sb_malloc(err, sizeof(float) * (size_t)n);
    int rc = tmp && diag && hp && row ? SB_OK : SB_EINTERNAL;
    if (!rc) {
        for (int64_t i = 0; i < n; i++) diag[i] = h[i * n + i];
        merge_sort_desc(s->perm, tmp, n, diag);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) hp[i * n + j] = h[s->perm[i] * n + s->perm[j]];
        memcpy(h, hp, sizeof(double) * (size_t)(n * n));
        for (int64_t r = 0; r < s->rows; r++) {
            for (int64_t c = 0; c < n; c++) row[c] = s->w[r * n + s->perm[c]];
            memcpy(s->w + r * n, row, sizeof(float) * (size_t)n);
        }
    }
    free(tmp);
    free(diag);
    free(hp);
    free(row);
    return rc;
}

/* H += damp·mean(diag H)·I. */
static void damp_hessian(const layer_state *s, double *h) {
    int64_t n = s->cols;
    double mean = 0;
    for (int64_t i = 0; i < n; i++) mean += h[i * n + i];
    mean /= (double)n;
    for (int64_t i = 0; i < n; i++) h[i * n + i] += s->o->damp * mean;
}

/* Damping and U = upper Cholesky of H⁻¹ (as float32 in s->u). */
static int prepare_hessian(layer_state *s, double *h, sb_err *err) {
    int64_t n = s->cols;
    damp_hessian(s, h);
    int rc = sb_inverse_upper_cholesky(h, (int)n, err);
    if (rc) return sb_err_prefix(err, "gptq: damped Hessian (damp %g)", s->o->damp);
    for (int64_t i = 0; i < n * n; i++) s->u[i] = (float)h[i];
    return SB_OK;
}

static void zero_dead_inputs(layer_state *s, double *h) {
    for (int64_t i = 0; i < s->cols; i++) {
        if (h[i * s->cols + i] != 0) continue;
        h[i * s->cols + i] = 1;
        for (int64_t r = 0; r < s->rows; r++) s->w[r * s->cols + i] = 0;
    }
}

/* Codes, weights, group index and parameters back in the original column order. */
static void write_out(const layer_state *s, sb_gptq_out *out) {
    double loss = 0;
    for (int64_t r = 0; r < s->rows; r++) loss += s->row_loss[r];
    out->loss = loss;
    for (int64_t c = 0; c < s->cols; c++) {
        int64_t orig = s->perm[c];
        int32_t g = s->o->group_size <= 0 ? 0 : (int32_t)((s->o->static_groups || !s->o->act_order ? orig : c) / s->gs);
        out->g_idx[orig] = g;
        for (int64_t r = 0; r < s->rows; r++) {
            out->codes[r * s->cols + orig] = s->codes[r * s->cols + c];
            if (out->q) out->q[r * s->cols + orig] = s->qw[r * s->cols + c];
            sb_qparams p = s->col_params[r * s->cols + c];
            out->scales[r * s->n_groups + g] = p.scale;
            out->zeros[r * s->n_groups + g] = p.zero;
        }
    }
}

static void free_state(layer_state *s) {
    void *bufs[] = {s->w, s->u, s->perm, s->fixed, s->current, s->col_params, s->codes, s->qw, s->row_loss, s->w1,
                    s->err1, s->row_qz, s->group_params};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
}

static int alloc_state(layer_state *s, sb_err *err) {
    int64_t rows = s->rows, cols = s->cols, blk = s->o->block_size < cols ? s->o->block_size : cols;
    size_t rc_n = (size_t)(rows * cols);
    s->w = sb_malloc(err, sizeof(float) * rc_n);
    s->u = sb_malloc(err, sizeof(float) * (size_t)(cols * cols));
    s->perm = sb_malloc(err, sizeof(int64_t) * (size_t)cols);
    s->fixed = sb_malloc(err, sizeof(sb_qparams) * (size_t)(rows * s->n_groups));
    s->current = sb_malloc(err, sizeof(sb_qparams) * (size_t)rows);
    s->col_params = sb_malloc(err, sizeof(sb_qparams) * rc_n);
    s->codes = sb_malloc(err, rc_n);
    s->qw = sb_malloc(err, sizeof(float) * rc_n);
    s->row_loss = sb_calloc(err, (size_t)rows, sizeof(double));
    s->w1 = sb_malloc(err, sizeof(float) * (size_t)(rows * blk));
    s->err1 = sb_malloc(err, sizeof(float) * (size_t)(rows * blk));
    s->row_qz = sb_malloc(err, sizeof(sb_quantizer) * (size_t)rows);
    s->group_params = sb_malloc(err, sizeof(sb_qparams) * (size_t)rows);
    bool ok = s->w && s->u && s->perm && s->fixed && s->current && s->col_params && s->codes && s->qw &&
              s->row_loss && s->w1 && s->err1 && s->row_qz && s->group_params;
    return ok ? SB_OK : SB_EINTERNAL;
}

/* W and H as the column loop starts from: per-channel or static
 * parameters fitted, dead inputs zeroed, columns in act order. */
static int prepare_layer(layer_state *s, const float *w, double *h, sb_err *err) {
    const sb_gptq_opts *o = s->o;
    memcpy(s->w, w, sizeof(float) * (size_t)(s->rows * s->cols));
    for (int64_t c = 0; c < s->cols; c++) s->perm[c] = c;
    if (o->group_size <= 0) fit_fixed(s); /* before dead inputs are zeroed, as quant.py */
    zero_dead_inputs(s, h);
    if (o->group_size > 0 && o->static_groups) fit_fixed(s);
    return o->act_order ? permute_by_activation(s, h, err) : SB_OK;
}

int sb_gptq_quantize(const float *w, int64_t rows, int64_t cols, double *h, const sb_gptq_opts *o, sb_pool *pool,
                     sb_gptq_out *out, sb_err *err) {
    return sb_gptq_quantize_mixed(w, rows, cols, h, o, NULL, pool, out, err);
}

int sb_gptq_quantize_mixed(const float *w, int64_t rows, int64_t cols, double *h, const sb_gptq_opts *o,
                           const uint8_t *group_bits, sb_pool *pool, sb_gptq_out *out, sb_err *err) {
    return sb_gptq_quantize_fitted(w, rows, cols, h, o, group_bits, NULL, NULL, pool, out, err);
}

int sb_gptq_quantize_fitted(const float *w, int64_t rows, int64_t cols, double *h, const sb_gptq_opts *o,
                            const uint8_t *group_bits, sb_gptq_group_fit fit, void *fit_user, sb_pool *pool,
                            sb_gptq_out *out, sb_err *err) {
    if (o->group_size > 0 && cols % o->group_size)
        return sb_err_set(err, SB_EINPUT, "gptq: group size %d does not divide %lld columns", o->group_size,
                          (long long)cols);
    if (o->block_size < 1) return sb_err_set(err, SB_EINPUT, "gptq: block size %d", o->block_size);
    if (group_bits && (o->group_size <= 0 || (o->act_order && !o->static_groups)))
        return sb_err_set(err, SB_EINPUT, "gptq: per-group widths need contiguous groups (group_size > 0, static "
                                          "groups with act_order)");
    if (fit && (o->group_size <= 0 || o->act_order))
        return sb_err_set(err, SB_EINPUT, "gptq: a method's group fit needs group_size > 0 and no act_order");
    layer_state s = {.o = o, .group_bits = group_bits, .fit = fit, .fit_user = fit_user, .qz = sb_quantizer_make(o->bits, o->sym), .rows = rows,
                     .cols = cols};
    s.gs = o->group_size > 0 ? o->group_size : cols;
    s.n_groups = cols / s.gs;
    int rc = alloc_state(&s, err);
    if (!rc) rc = prepare_layer(&s, w, h, err);
    if (!rc) rc = prepare_hessian(&s, h, err);
    if (!rc) {
        run_blocks(&s, pool);
        write_out(&s, out);
    }
    free_state(&s);
    return rc;
}

int sb_gptq_quantize_elementwise(const float *w, int64_t rows, int64_t cols, double *h, double damp, int block_size,
                                 const sb_gptq_elementwise *e, sb_pool *pool, float *q, double *loss, sb_err *err) {
    if (block_size < 1) return sb_err_set(err, SB_EINPUT, "gptq: block size %d", block_size);
    sb_gptq_opts o = {.bits = 8, .damp = damp, .block_size = block_size};
    layer_state s = {.o = &o, .elem = e, .qz = sb_quantizer_make(8, false), .rows = rows, .cols = cols, .gs = cols,
                     .n_groups = 1};
    int rc = alloc_state(&s, err);
    if (!rc) {
        memcpy(s.w, w, sizeof(float) * (size_t)(rows * cols));
        for (int64_t c = 0; c < cols; c++) s.perm[c] = c;
        zero_dead_inputs(&s, h);
        rc = prepare_hessian(&s, h, err);
    }
    if (!rc) rc = e->prepare(e->user, s.w, s.u, rows, cols, err);
    if (!rc) {
        run_blocks(&s, pool);
        memcpy(q, s.qw, sizeof(float) * (size_t)(rows * cols));
        *loss = 0;
        for (int64_t r = 0; r < rows; r++) *loss += s.row_loss[r];
    }
    free_state(&s);
    return rc;
}

/* ---- the same with the Cholesky steps and the loop on a CUDA device ------ */

/* The out arrays' group whose parameters position c uses (write_out's g). */
static int32_t group_at(const layer_state *s, int64_t c) {
    if (s->o->group_size <= 0) return 0;
    return (int32_t)((s->o->static_groups ? s->perm[c] : c) / s->gs);
}

/* The host side of a device job besides W and H. */
typedef struct device_arrays {
    int32_t *group_of;     /* [cols] group_at of each position */
    float *scales, *zeros; /* [rows, n_groups] */
    uint8_t *codes;        /* [rows, cols] in the loop's (permuted) order */
    float *q;              /* [rows, cols] the same */
    double *row_loss;      /* [rows] */
} device_arrays;

static void free_device_arrays(device_arrays *a) {
    free(a->group_of), free(a->scales), free(a->zeros), free(a->codes), free(a->q), free(a->row_loss);
}

static int alloc_device_arrays(device_arrays *a, const layer_state *s, sb_err *err) {
    size_t n = (size_t)(s->rows * s->cols), np = (size_t)(s->rows * s->n_groups);
    a->group_of = sb_malloc(err, sizeof(int32_t) * (size_t)s->cols);
    a->scales = sb_calloc(err, np, sizeof(float));
    a->zeros = sb_calloc(err, np, sizeof(float));
    a->codes = sb_malloc(err, n);
    a->q = sb_malloc(err, sizeof(float) * n);
    a->row_loss = sb_malloc(err, sizeof(double) * (size_t)s->rows);
    return a->group_of && a->scales && a->zeros && a->codes && a->q && a->row_loss ? SB_OK : SB_EINTERNAL;
}

/* Only what the preparation needs: the device does the rest. */
static int alloc_prepared(layer_state *s, sb_err *err) {
    s->w = sb_malloc(err, sizeof(float) * (size_t)(s->rows * s->cols));
    s->perm = sb_malloc(err, sizeof(int64_t) * (size_t)s->cols);
    s->fixed = sb_malloc(err, sizeof(sb_qparams) * (size_t)(s->rows * s->n_groups));
    return s->w && s->perm && s->fixed ? SB_OK : SB_EINTERNAL;
}

/* The job for a prepared layer (W and H in loop order, damped H). */
static sb_gptq_device_job device_job(const layer_state *s, const double *h, device_arrays *a) {
    const sb_gptq_opts *o = s->o;
    bool dynamic = o->group_size > 0 && !o->static_groups;
    for (int64_t c = 0; c < s->cols; c++) a->group_of[c] = group_at(s, c);
    for (int64_t i = 0; !dynamic && i < s->rows * s->n_groups; i++)
        a->scales[i] = s->fixed[i].scale, a->zeros[i] = s->fixed[i].zero;
    return (sb_gptq_device_job){.rows = s->rows, .cols = s->cols, .bits = o->bits, .sym = o->sym, .group_size = s->gs,
                                .n_groups = s->n_groups, .dynamic_groups = dynamic, .block_size = o->block_size,
                                .w = s->w, .h = h, .group_of = a->group_of, .scales = a->scales, .zeros = a->zeros,
                                .codes = a->codes, .q = a->q, .row_loss = a->row_loss};
}

/* write_out for the device's results. */
static void write_out_device(const layer_state *s, const device_arrays *a, sb_gptq_out *out) {
    int64_t rows = s->rows, cols = s->cols;
    double loss = 0;
    for (int64_t r = 0; r < rows; r++) loss += a->row_loss[r];
    out->loss = loss;
    for (int64_t c = 0; c < cols; c++) {
        int64_t orig = s->perm[c];
        out->g_idx[orig] = group_at(s, c);
        for (int64_t r = 0; r < rows; r++) {
            out->codes[r * cols + orig] = a->codes[r * cols + c];
            if (out->q) out->q[r * cols + orig] = a->q[r * cols + c];
        }
    }
    memcpy(out->scales, a->scales, sizeof(float) * (size_t)(rows * s->n_groups));
    memcpy(out->zeros, a->zeros, sizeof(float) * (size_t)(rows * s->n_groups));
}

int sb_gptq_quantize_cuda(struct sb_cuda_ctx *dev, const float *w, int64_t rows, int64_t cols, double *h,
                          const sb_gptq_opts *o, sb_gptq_out *out, sb_err *err) {
    if (o->group_size > 0 && cols % o->group_size)
        return sb_err_set(err, SB_EINPUT, "gptq: group size %d does not divide %lld columns", o->group_size,
                          (long long)cols);
    if (o->block_size < 1) return sb_err_set(err, SB_EINPUT, "gptq: block size %d", o->block_size);
    if (o->bits < 2 || o->bits > 8) return sb_err_set(err, SB_EINPUT, "gptq on CUDA: bits %d is not in 2..8", o->bits);
    layer_state s = {.o = o, .qz = sb_quantizer_make(o->bits, o->sym), .rows = rows, .cols = cols};
    s.gs = o->group_size > 0 ? o->group_size : cols;
    s.n_groups = cols / s.gs;
    device_arrays a = {0};
    int rc = alloc_prepared(&s, err);
    if (!rc) rc = alloc_device_arrays(&a, &s, err);
    if (!rc) rc = prepare_layer(&s, w, h, err);
    if (!rc) {
        damp_hessian(&s, h);
        sb_gptq_device_job job = device_job(&s, h, &a);
        rc = sb_gptq_device_run(dev, &job, err);
    }
    if (!rc) write_out_device(&s, &a, out);
    free_device_arrays(&a);
    free_state(&s);
    return rc;
}

/* ---- the method: every block of the model ------------------------------- */


typedef struct gptq_run {
    sb_model *m;
    const sb_run_ctx *ctx;
    sb_gptq_opts opts;
    cJSON *layers;          /* per-linear details */
    sb_calib_run *calib;
} gptq_run;

enum { ERR_ROWS = 64 }; /* rows of W − Ŵ multiplied by H at a time */

/* tr(D·H·Dᵀ) with D = W − Ŵ: the calibration reconstruction error ‖(W − Ŵ)X‖²
 * up to H's scale (× n_seqs / 2 gives the sum over calibration tokens).
 * scratch: 2 · ERR_ROWS · cols doubles. */
static double h_weighted_error(const float *w, const float *wq, int64_t rows, int64_t cols, const double *h,
                               double *scratch) {
    double total = 0, *d = scratch, *dh = scratch + ERR_ROWS * cols;
    for (int64_t r0 = 0; r0 < rows; r0 += ERR_ROWS) {
        int64_t n = rows - r0 < ERR_ROWS ? rows - r0 : ERR_ROWS;
        for (int64_t i = 0; i < n * cols; i++) d[i] = (double)w[r0 * cols + i] - (double)wq[r0 * cols + i];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)cols, (int)cols, 1.0, d, (int)cols, h,
                    (int)cols, 0.0, dh, (int)cols);
        for (int64_t i = 0; i < n * cols; i++) total += d[i] * dh[i];
    }
    return total;
}

/* Plain rounding (RTN) of w with the same quantizer, for the comparison in the details. */
static void rtn_weights(const float *w, int64_t rows, int64_t cols, const sb_gptq_opts *o, float *out) {
    sb_quantizer qz = sb_quantizer_make(o->bits, o->sym);
    int64_t gs = o->group_size > 0 ? o->group_size : cols;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g0 = 0; g0 < cols; g0 += gs) {
            const float *x = w + r * cols + g0;
            sb_qparams p = sb_qparams_storable(sb_quantizer_fit(&qz, x, gs));
            for (int64_t k = 0; k < gs; k++) out[r * cols + g0 + k] = sb_quantizer_quantize(&qz, p, x[k]);
        }
}

static void add_layer_detail(gptq_run *g, int layer, int which, const sb_linear_stats *st, double loss, double err_gptq,
                             double err_rtn, double ref) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return;
    char name[48];
    snprintf(name, sizeof name, "blocks.%d.%s", layer, sb_block_linear_names[which]);
    cJSON_AddStringToObject(o, "layer", name);
    cJSON_AddNumberToObject(o, "gptq_loss", loss);
    cJSON_AddNumberToObject(o, "sq_err", err_gptq * (double)st->n_seqs / 2);
    cJSON_AddNumberToObject(o, "rel_err", ref > 0 ? err_gptq / ref : 0);
    cJSON_AddNumberToObject(o, "rtn_sq_err", err_rtn * (double)st->n_seqs / 2);
    cJSON_AddNumberToObject(o, "rtn_rel_err", ref > 0 ? err_rtn / ref : 0);
    cJSON_AddItemToArray(g->layers, o);
}

/* Errors of GPTQ and RTN under the layer's H (before GPTQ damps it). */
static int record_errors(gptq_run *g, int layer, int which, const sb_linear_stats *st, const float *w,
                         const float *wq, double loss, sb_err *err) {
    int64_t rows = st->target->rows, cols = st->cols;
    float *rtn = sb_malloc(err, sizeof(float) * (size_t)(rows * cols));
    float *zero = sb_calloc(err, (size_t)(rows * cols), sizeof(float));
    double *scratch = sb_malloc(err, sizeof(double) * (size_t)(2 * ERR_ROWS * cols));
    int rc = rtn && zero && scratch ? SB_OK : SB_EINTERNAL;
    if (!rc) {
        rtn_weights(w, rows, cols, &g->opts, rtn);
        double e_gptq = h_weighted_error(w, wq, rows, cols, st->h, scratch);
        double e_rtn = h_weighted_error(w, rtn, rows, cols, st->h, scratch);
        double ref = h_weighted_error(w, zero, rows, cols, st->h, scratch);
        add_layer_detail(g, layer, which, st, loss, e_gptq, e_rtn, ref);
    }
    free(rtn);
    free(zero);
    free(scratch);
    return rc;
}

typedef struct layer_bufs {
    float *w, *q, *scales, *zeros;
    uint8_t *codes;
    int32_t *g_idx;
    double *h;
} layer_bufs;

static void free_bufs(layer_bufs *b) {
    free(b->w), free(b->q), free(b->scales), free(b->zeros), free(b->codes), free(b->g_idx), free(b->h);
}

static int alloc_bufs(layer_bufs *b, int64_t rows, int64_t cols, int64_t n_groups, sb_err *err) {
    size_t n = (size_t)(rows * cols);
    b->w = sb_malloc(err, sizeof(float) * n);
    b->q = sb_malloc(err, sizeof(float) * n);
    b->codes = sb_malloc(err, n);
    b->g_idx = sb_malloc(err, sizeof(int32_t) * (size_t)cols);
    b->scales = sb_malloc(err, sizeof(float) * (size_t)(rows * n_groups));
    b->zeros = sb_malloc(err, sizeof(float) * (size_t)(rows * n_groups));
    b->h = sb_malloc(err, sizeof(double) * (size_t)(cols * cols));
    return b->w && b->q && b->codes && b->g_idx && b->scales && b->zeros && b->h ? SB_OK : SB_EINTERNAL;
}

/* Packs the result as format qint and replaces *lin. */
static int replace_linear(sb_linear *lin, const layer_bufs *b, const sb_gptq_opts *o, sb_err *err) {
    int gs = o->group_size > 0 ? o->group_size : (int)lin->cols;
    sb_linear out = {0};
    int rc = sb_qint_pack(lin->rows, lin->cols, gs, o->bits, NULL, b->codes, b->scales, o->sym ? NULL : b->zeros, &out,
                          err);
    return rc ? rc : sb_linear_replace(lin, &out, err);
}

/* The column loop on the run's backend: the device's when it is CUDA. */
static int column_loop(gptq_run *g, layer_bufs *b, int64_t rows, int64_t cols, sb_gptq_out *out, sb_err *err) {
    const sb_run_ctx *ctx = g->ctx;
    if (!ctx || ctx->backend.kind != SB_BACKEND_CUDA)
        return sb_gptq_quantize(b->w, rows, cols, b->h, &g->opts, ctx ? ctx->pool : NULL, out, err);
    if (!ctx->cuda) return sb_err_set(err, SB_EINTERNAL, "gptq: the run is on CUDA but no device was opened");
    return sb_gptq_quantize_cuda(ctx->cuda, b->w, rows, cols, b->h, &g->opts, out, err);
}

static int quantize_one(gptq_run *g, int layer, int which, const sb_linear_stats *st, sb_err *err) {
    sb_linear *lin = sb_block_linear(&g->m->blocks[layer], which);
    int64_t rows = lin->rows, cols = lin->cols, n_groups = g->opts.group_size > 0 ? cols / g->opts.group_size : 1;
    layer_bufs b = {0};
    int rc = alloc_bufs(&b, rows, cols, n_groups, err);
    sb_gptq_out out = {b.codes, b.q, b.g_idx, b.scales, b.zeros, 0};
    if (!rc) {
        lin->fmt->decode_rows(lin, 0, rows, b.w);
        memcpy(b.h, st->h, sizeof(double) * (size_t)(cols * cols));
        rc = column_loop(g, &b, rows, cols, &out, err);
    }
    if (!rc) rc = record_errors(g, layer, which, st, b.w, b.q, out.loss, err);
    if (!rc) rc = replace_linear(lin, &b, &g->opts, err);
    free_bufs(&b);
    if (rc) sb_err_prefix(err, "gptq: blocks.%d.%s", layer, sb_block_linear_names[which]);
    return rc;
}

static int quantize_linear(void *user, int layer, int which, const sb_linear_stats *st, sb_err *err) {
    return quantize_one(user, layer, which, st, err);
}

static int quantize_model(gptq_run *g, bool true_sequential, sb_err *err) {
    return sb_calib_sequential(g->calib, g->m, true_sequential, quantize_linear, g, err);
}

/* ---- parameters ---------------------------------------------------------- */

/* Every refusal happens here, before the model changes. */
static int check_params(const sb_model *m, const sb_gptq_opts *o, int seq_len, sb_err *err) {
    if (o->bits < 2 || o->bits > 8) return sb_err_set(err, SB_EINPUT, "gptq: bits: %d is not in 2..8", o->bits);
    if (o->group_size < -1) return sb_err_set(err, SB_EINPUT, "gptq: group_size: %d (use -1 or 0 for per-channel)", o->group_size);
    if (!(o->damp >= 0)) return sb_err_set(err, SB_EINPUT, "gptq: damp: %g is negative", o->damp);
    if (o->block_size < 1) return sb_err_set(err, SB_EINPUT, "gptq: block_size: %d is not positive", o->block_size);
    if (o->static_groups && o->group_size <= 0)
        return sb_err_set(err, SB_EINPUT, "gptq: static_groups needs a group_size > 0");
    if (o->act_order && o->group_size > 0 && !o->static_groups)
        return sb_err_set(err, SB_EINPUT,
                          "gptq: act_order with groups needs static_groups=true (format qint stores contiguous "
                          "groups; the act-order groups of the authors' code are scattered columns)");
    if (!m->vision && m->pos_embd && seq_len > m->max_positions)
        return sb_err_set(err, SB_EINPUT, "gptq: seq_len %d exceeds the model's %d positions", seq_len, m->max_positions);
    for (int l = 0; l < m->n_layer && o->group_size > 0; l++)
        for (int i = 0; i < SB_BLOCK_LINEARS; i++) {
            const sb_linear *lin = sb_block_linear(&m->blocks[l], i);
            if (sb_linear_present(lin) && lin->cols % o->group_size)
                return sb_err_set(err, SB_EINPUT, "gptq: group_size: %d does not divide the width %lld of blocks.%d.%s",
                                  o->group_size, (long long)lin->cols, l, sb_block_linear_names[i]);
        }
    return SB_OK;
}

static sb_gptq_opts opts_from(const sb_params *p) {
    return (sb_gptq_opts){.bits = (int)sb_param_num(p, "bits"), .group_size = (int)sb_param_num(p, "group_size"),
                          .sym = sb_param_bool(p, "sym"), .damp = sb_param_num(p, "damp"),
                          .block_size = (int)sb_param_num(p, "block_size"), .act_order = sb_param_bool(p, "act_order"),
                          .static_groups = sb_param_bool(p, "static_groups")};
}

static sb_calib_config calib_from(const sb_params *p) {
    return (sb_calib_config){.path = sb_param_str(p, "data"), .format = sb_param_str(p, "data_format"),
                             .field = sb_param_str(p, "data_field"), .sampling = sb_param_str(p, "sampling"),
                             .n_samples = (int)sb_param_num(p, "n_samples"), .seq_len = (int)sb_param_num(p, "seq_len"),
                             .seed = (uint64_t)sb_param_num(p, "seed")};
}

static cJSON *make_details(const gptq_run *g, const sb_calib_set *set, bool true_sequential) {
    cJSON *d = cJSON_CreateObject();
    if (!d) return NULL;
    cJSON *cal = sb_calib_set_describe(set);
    if (cal) cJSON_AddItemToObject(d, "calibration", cal);
    cJSON_AddStringToObject(d, "order", !true_sequential ? "all linears of a block at once"
                                        : g->m->parallel_residual ? "[k,v,q,up,gate] -> [o,down]"
                                                                  : "[k,v,q] -> [o] -> [up,gate] -> [down]");
    cJSON_AddStringToObject(d, "error_note",
                            "sq_err = sum over calibration tokens of |(W - Wq)x|^2 with the layer's actual "
                            "(sequential) inputs; rel_err = sq_err / |Wx|^2; rtn_* = plain rounding, same quantizer "
                            "and inputs; gptq_loss = the authors' printed error");
    cJSON_AddStringToObject(d, "format", "qint: bit-packed codes, f16 scales (and f16 zeros if asymmetric)");
    if (g->ctx && g->ctx->backend.kind == SB_BACKEND_CUDA) { /* CPU records stay as they were */
        char dev[32];
        snprintf(dev, sizeof dev, "cuda:%d", g->ctx->backend.device);
        cJSON_AddStringToObject(d, "computed_on", dev);
    }
    return d;
}

static int gptq_apply(sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_method_report *report, sb_err *err) {
    gptq_run g = {.m = m, .ctx = ctx, .opts = opts_from(p)};
    sb_calib_config cc = calib_from(p);
    bool true_sequential = sb_param_bool(p, "true_sequential");
    sb_calib_set set;
    memset(&set, 0, sizeof set);
    int rc = check_params(m, &g.opts, cc.seq_len, err);
    if (!rc) rc = sb_calib_config_check(&cc, err);
    /* image models calibrate on patch-embedded images (calibration_images.c) */
    if (!rc) rc = m->vision ? sb_calib_draw_images(m, &cc, &set, err) : sb_calib_draw(m->tokenizer, &cc, &set, err);
    if (!rc) rc = sb_calib_run_new(m, &set, ctx, &g.calib, err);
    if (!rc && !(g.layers = cJSON_CreateArray())) rc = sb_err_set(err, SB_EINTERNAL, "out of memory");
    if (!rc) rc = quantize_model(&g, true_sequential, err);
    if (!rc) {
        report->bits_per_weight = sb_model_bits_per_weight(m);
        report->real_quant = true;
        report->details = make_details(&g, &set, true_sequential);
        if (report->details) {
            cJSON_AddItemToObject(report->details, "layers", g.layers);
            g.layers = NULL;
        }
    }
    cJSON_Delete(g.layers);
    sb_calib_run_free(g.calib);
    sb_calib_set_free(&set);
    return rc;
}

static const sb_param_spec gptq_params[] = {
    {"bits", SB_PARAM_INT, "4", 2, 8, NULL, "bits per weight code"},
    {"group_size", SB_PARAM_INT, "128", -1, 1 << 20, NULL,
     "weights per scale along a row; 0 or -1 = one group per row (gptq's groupsize -1); must divide every width"},
    {"sym", SB_PARAM_BOOL, "false", 0, 0, NULL, "symmetric grid: zero fixed at 2^(bits-1), no zeros stored"},
    {"damp", SB_PARAM_FLOAT, "0.01", 0, 1e9, NULL, "percdamp: fraction of mean(diag H) added to H's diagonal (>= 0)"},
    {"block_size", SB_PARAM_INT, "128", 1, 1 << 20, NULL, "columns per lazy-update block"},
    {"act_order", SB_PARAM_BOOL, "false", 0, 0, NULL, "quantize columns by decreasing H_ii (with groups: needs static_groups)"},
    {"static_groups", SB_PARAM_BOOL, "false", 0, 0, NULL, "fit every group's grid up front on the original weights"},
    {"true_sequential", SB_PARAM_BOOL, "true", 0, 0, NULL,
     "quantize a block in stages [k,v,q] -> [o] -> [up,gate] -> [down], later stages seeing quantized inputs"},
    {"data", SB_PARAM_STRING, "", 0, -1, NULL,
     "calibration text file (raw text, or JSONL with data_format=jsonl); for ViT/DeiT models an image set (class "
     "folders, CIFAR, MNIST, builtin:shapes), one sample per image, seq_len ignored"},
    {"data_format", SB_PARAM_STRING, "raw", 0, -1, "raw|jsonl", "calibration file format"},
    {"data_field", SB_PARAM_STRING, "text", 0, -1, NULL, "JSONL field holding the text"},
    {"sampling", SB_PARAM_STRING, "windows", 0, -1, "windows|documents",
     "windows: random windows of the whole tokenized text (gptq's wikitext2); documents: a random long-enough "
     "document, then a window (gptq's c4)"},
    {"n_samples", SB_PARAM_INT, "128", 1, 1 << 20, NULL, "calibration sequences"},
    {"seq_len", SB_PARAM_INT, "2048", 2, 1 << 20, NULL, "tokens per calibration sequence"},
    {"seed", SB_PARAM_INT, "0", 0, 4294967295.0, NULL, "seed of Python's random, as gptq's --seed"},
};

const sb_method sb_method_gptq = {
    .abi = SB_PLUGIN_ABI,
    .name = "gptq",
    .family = "quantization",
    .summary = "GPTQ: column-by-column quantization with inverse-Hessian error feedback, calibrated block by block; "
               "stored bit-packed",
    .paper = {"GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers", "2210.17323", "2022"},
    .params = gptq_params,
    .n_params = sizeof gptq_params / sizeof gptq_params[0],
    .apply = gptq_apply,
    .per_backend = true, /* on CUDA the Hessians and the column loop run on the device */
};

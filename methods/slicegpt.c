/* slicegpt.c - SliceGPT: Compress Large Language Models by Deleting Rows
 * and Columns (Ashkboos et al., arXiv 2401.15024).
 *
 * An orthogonal Q applied to the residual stream (x -> x·Q) changes
 * nothing if every linear reading the stream is multiplied by Q on its
 * input side, every linear writing it by Qᵀ on its output side, and the
 * norms commute with Q: RMSNorm without weights does, ‖x·Q‖ = ‖x‖.  With Q
 * the PCA basis of the stream, its last columns carry the least signal;
 * deleting them (x·Q[:, :d]) deletes rows and columns of every weight.
 *
 * 1. Fusion (the "computational invariance" step), in float64:
 *    - the head is untied from the embedding (each gets its own rotation);
 *    - LayerNorm models (OPT, Phi-2, GPT-2): embedding rows (token and
 *      position) lose their mean, and the linears writing into the stream
 *      (o_proj, down/fc2) lose the mean over their output dimension, bias
 *      included, so the stream stays zero-mean and LayerNorm equals RMSNorm;
 *    - every norm's (α, β) is folded into the linears it feeds:
 *      W ← W·diag(α), b ← b + W·β (the final norm into the head);
 *    - every norm becomes RMSN(x) = x / sqrt(Σx² / D + eps), weights 1,
 *      where D stays the original width after slicing (sb_norm.mean_width).
 *    RMSNorm models are not mean-shifted: the authors' code subtracts the
 *    embedding mean for them too (layernorm_fusion.py), which is not an
 *    invariance of RMSNorm and changes the dense model; the paper only
 *    needs it for LayerNorm.  So here slicing 0% gives the dense logits.
 * 2. PCA per signal, as rotate.py's pca_calc: C = Σ xxᵀ over calibration
 *    tokens in float64 (sb_linear_stats; its scale is irrelevant),
 *    C += 0.01·mean(diag C)·I, eigenvectors by eigenvalue descending
 *    (sb_symmetric_eigen, float64).
 * 3. Rotate and slice block by block (rotate_and_slice_sequential), each
 *    block seeing calibration inputs from the already-sliced earlier ones:
 *    Q_0 from the embeddings; for block l with input basis Q_in:
 *      q/k/v ← W·Q_in[:, :d]; attention shortcut (temporarily) Q_in[:, :d]ᵀ
 *      -> PCA of the stream between attention and MLP (seen as the input of
 *         a temporary identity MLP shortcut) gives Q_mid;
 *      attention shortcut Q_in[:, :d]ᵀ·Q_mid[:, :d]; o ← Q_mid[:, :d]ᵀ·W;
 *      gate/up ← W·Q_mid[:, :d]; MLP shortcut (temporarily) Q_mid[:, :d]ᵀ
 *      -> PCA of the block's outputs gives Q_out;
 *      MLP shortcut Q_mid[:, :d]ᵀ·Q_out[:, :d_out]; down ← Q_out[:, :d_out]ᵀ·W.
 *    Parallel blocks (Phi-2: one norm, x + attn(n(x)) + mlp(n(x))) have one
 *    Q per block and one shortcut.  The last block keeps the full width
 *    for the head (head ← W·Q_out) unless slice_head.
 *    Width d = floor((1 − sparsity)·D) rounded down to round_interval.
 *    Only the "pca" final orientation (the paper's) is implemented.
 *
 * Calibration: n_samples windows of seq_len tokens from a text file through
 * the shared sampler (calibration.h); the authors' defaults 128 x 2048,
 * seed 42 (the paper's Table 1 used 1024 x 2048).  Cost: three passes of
 * every block over the calibration set and one D x D eigendecomposition
 * per signal (2 per block, 1 for parallel blocks, 1 for the embeddings).
 *
 * Refused (SB_EINPUT, model untouched): Gemma 3's post-branch norms (a norm
 * on a branch output before the residual add does not commute with Q),
 * image models, models already sliced, and block linears already
 * compressed (slice first, then quantize: slicegpt+gptq).
 *
 * Storage: the rotations are computed in float64 and stored in the
 * checkpoint's own f16/bf16 when its block linears share one (the authors
 * keep the model's dtype; dtype=f32 keeps more precision), else f32.
 * Shortcuts are dense linears of the same format, counted in the
 * parameters and bits like the others. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "calibration.h"
#include "half.h"
#include "linalg.h"
#include "plugin.h"
#include "slicegpt.h"

/* ---- allocations this run made ----------------------------------------------
 * Weights are replaced more than once (fused, then rotated; shortcuts are
 * temporary first).  What the model held before the run belongs to the
 * runner's snapshot and is never freed here; what the run made itself is
 * freed when replaced again. */

typedef struct made_list {
    void **p;
    int n, cap;
    const sb_format *store; /* the format new weights are stored in: f32, f16 or bf16 */
} made_list;

static int made_add(made_list *l, void *p, sb_err *err) {
    if (!p) return SB_OK;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        void **bigger = realloc(l->p, sizeof(void *) * (size_t)cap);
        if (!bigger) return sb_err_set(err, SB_EINTERNAL, "out of memory (slicegpt)");
        l->p = bigger;
        l->cap = cap;
    }
    l->p[l->n++] = p;
    return SB_OK;
}

/* Frees p if this run allocated it. */
static void made_release(made_list *l, void *p) {
    for (int i = 0; p && i < l->n; i++)
        if (l->p[i] == p) {
            free(p);
            l->p[i] = l->p[--l->n];
            return;
        }
}

/* ---- float64 weights in, f32 linears out ------------------------------------ */

/* W [rows, cols] of a linear as float64. */
static double *decode_f64(const sb_linear *w, sb_err *err) {
    double *out = sb_malloc(err, sizeof(double) * (size_t)(w->rows * w->cols));
    float *row = sb_malloc(err, sizeof(float) * (size_t)w->cols);
    if (out && row)
        for (int64_t r = 0; r < w->rows; r++) {
            w->fmt->decode_rows(w, r, 1, row);
            for (int64_t c = 0; c < w->cols; c++) out[r * w->cols + c] = (double)row[c];
        }
    free(row);
    if (!row) {
        free(out);
        return NULL;
    }
    return out;
}

static float *to_f32(const double *x, int64_t n, sb_err *err) {
    float *out = sb_malloc(err, sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; out && i < n; i++) out[i] = (float)x[i];
    return out;
}

/* x in the storage format (f32, or 2-byte f16 / bf16 rounded to nearest even). */
static void *to_stored(const sb_format *fmt, const double *x, int64_t n, sb_err *err) {
    if (fmt == &sb_format_f32) return to_f32(x, n, err);
    uint16_t *out = sb_malloc(err, sizeof(uint16_t) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; out && i < n; i++)
        out[i] = fmt == &sb_format_f16 ? sb_f32_to_f16((float)x[i]) : sb_f32_to_bf16((float)x[i]);
    return out;
}

/* *slot = a new linear W [rows, cols] in the run's storage format, bias b
 * [rows] (f32, or none); the old payload and bias are freed if this run
 * made them. */
static int put_linear(sb_linear *slot, int64_t rows, int64_t cols, const double *w, const double *b, made_list *made,
                      sb_err *err) {
    void *wf = to_stored(made->store, w, rows * cols, err);
    float *bf = b ? to_f32(b, rows, err) : NULL;
    int rc = wf && (!b || bf) ? made_add(made, wf, err) : SB_EINTERNAL;
    if (!rc) rc = made_add(made, bf, err);
    if (rc) {
        free(wf);
        free(bf);
        return rc;
    }
    made_release(made, slot->owned);
    made_release(made, slot->bias);
    *slot = (sb_linear){.fmt = made->store, .rows = rows, .cols = cols, .data = wf, .owned = wf, .bias = bf};
    return SB_OK;
}

static double *bias_f64(const sb_linear *w, sb_err *err) {
    if (!w->bias) return NULL;
    double *b = sb_malloc(err, sizeof(double) * (size_t)w->rows);
    for (int64_t i = 0; b && i < w->rows; i++) b[i] = (double)w->bias[i];
    return b;
}

/* ---- step 1: fusion ----------------------------------------------------------- */

/* W ← W·diag(α), b ← b + W·β: the norm's affine part moves into a linear it feeds. */
static int fold_norm_into(sb_linear *w, const sb_norm *n, made_list *made, sb_err *err) {
    double *W = decode_f64(w, err), *b = sb_calloc(err, (size_t)w->rows, sizeof(double));
    int rc = W && b ? SB_OK : SB_EINTERNAL;
    for (int64_t r = 0; !rc && r < w->rows; r++) {
        double *row = W + r * w->cols;
        b[r] = w->bias ? (double)w->bias[r] : 0;
        for (int64_t c = 0; c < w->cols; c++) {
            if (n->bias) b[r] += row[c] * (double)n->bias[c];
            if (n->weight) row[c] *= (double)n->weight[c];
        }
    }
    bool has_bias = w->bias || n->bias;
    if (!rc) rc = put_linear(w, w->rows, w->cols, W, has_bias ? b : NULL, made, err);
    free(W);
    free(b);
    return rc;
}

/* W ← W − mean over outputs, b ← b − mean(b): the linear writes zero-mean
 * vectors into the stream (LayerNorm's centring, moved upstream). */
static int center_outputs(sb_linear *w, made_list *made, sb_err *err) {
    double *W = decode_f64(w, err), *b = bias_f64(w, err);
    int rc = W && (b || !w->bias) ? SB_OK : SB_EINTERNAL;
    for (int64_t c = 0; !rc && c < w->cols; c++) {
        double mean = 0;
        for (int64_t r = 0; r < w->rows; r++) mean += W[r * w->cols + c];
        mean /= (double)w->rows;
        for (int64_t r = 0; r < w->rows; r++) W[r * w->cols + c] -= mean;
    }
    if (!rc && b) {
        double mean = 0;
        for (int64_t r = 0; r < w->rows; r++) mean += b[r];
        for (int64_t r = 0; r < w->rows; r++) b[r] -= mean / (double)w->rows;
    }
    if (!rc) rc = put_linear(w, w->rows, w->cols, W, b, made, err);
    free(W);
    free(b);
    return rc;
}

/* Each row of x [rows, d] minus its mean, into a new f32 array. */
static float *rows_centered(const double *x, int64_t rows, int64_t d, sb_err *err) {
    float *out = sb_malloc(err, sizeof(float) * (size_t)(rows * d));
    for (int64_t r = 0; out && r < rows; r++) {
        double mean = 0;
        for (int64_t c = 0; c < d; c++) mean += x[r * d + c];
        mean /= (double)d;
        for (int64_t c = 0; c < d; c++) out[r * d + c] = (float)(x[r * d + c] - mean);
    }
    return out;
}

static int center_embeddings(sb_model *m, made_list *made, sb_err *err) {
    int64_t D = m->d_model;
    double *E = decode_f64(&m->tok_embd, err);
    float *e = E ? rows_centered(E, m->n_vocab, D, err) : NULL;
    int rc = e ? made_add(made, e, err) : SB_EINTERNAL;
    free(E);
    if (rc) {
        free(e);
        return rc;
    }
    made_release(made, m->tok_embd.owned);
    m->tok_embd = (sb_linear){.fmt = &sb_format_f32, .rows = m->n_vocab, .cols = D, .data = e, .owned = e};
    if (!m->pos_embd) return SB_OK;
    double *P = sb_malloc(err, sizeof(double) * (size_t)(m->n_pos_rows * D));
    for (int64_t i = 0; P && i < m->n_pos_rows * D; i++) P[i] = (double)m->pos_embd[i];
    float *p = P ? rows_centered(P, m->n_pos_rows, D, err) : NULL;
    free(P);
    rc = p ? made_add(made, p, err) : SB_EINTERNAL;
    if (rc) {
        free(p);
        return rc;
    }
    m->pos_embd = p;
    return SB_OK;
}

/* The norm becomes RMSN: weights 1 (an array of the full width, of which a
 * sliced stream uses the start), no bias, Σx² divided by d_model. */
static int plain_rms(sb_norm *n, int d_model, made_list *made, sb_err *err) {
    float *ones = sb_malloc(err, sizeof(float) * (size_t)d_model);
    int rc = ones ? made_add(made, ones, err) : SB_EINTERNAL;
    if (rc) {
        free(ones);
        return rc;
    }
    for (int i = 0; i < d_model; i++) ones[i] = 1.0f;
    *n = (sb_norm){.weight = ones, .mean_width = d_model};
    return SB_OK;
}

static int fuse_block(sb_model *m, sb_block *b, made_list *made, sb_err *err) {
    sb_linear *attn_in[] = {&b->wq, &b->wk, &b->wv};
    sb_linear *mlp_in[] = {&b->w_up, m->gated_mlp ? &b->w_gate : NULL};
    const sb_norm *mlp_norm = m->parallel_residual ? &b->attn_norm : &b->mlp_norm;
    int rc = SB_OK;
    for (int i = 0; !rc && i < 3; i++) rc = fold_norm_into(attn_in[i], &b->attn_norm, made, err);
    for (int i = 0; !rc && i < 2; i++)
        if (mlp_in[i]) rc = fold_norm_into(mlp_in[i], mlp_norm, made, err);
    if (!rc && m->norm_type == SB_NORM_LAYER) rc = center_outputs(&b->wo, made, err);
    if (!rc && m->norm_type == SB_NORM_LAYER) rc = center_outputs(&b->w_down, made, err);
    if (!rc) rc = plain_rms(&b->attn_norm, m->d_model, made, err);
    if (!rc && !m->parallel_residual) rc = plain_rms(&b->mlp_norm, m->d_model, made, err);
    return rc;
}

/* The model with RMSN norms only, the same function as before. */
static int fuse_model(sb_model *m, made_list *made, sb_err *err) {
    int rc = SB_OK;
    if (m->tied_head) { /* the head gets its own copy; it will be rotated differently */
        m->head = (sb_linear){.fmt = m->tok_embd.fmt, .rows = m->tok_embd.rows, .cols = m->tok_embd.cols,
                              .data = m->tok_embd.data};
        m->tied_head = false;
    }
    if (m->norm_type == SB_NORM_LAYER) rc = center_embeddings(m, made, err);
    for (int l = 0; !rc && l < m->n_layer; l++) rc = fuse_block(m, &m->blocks[l], made, err);
    if (!rc) rc = fold_norm_into(&m->head, &m->final_norm, made, err);
    if (!rc) rc = plain_rms(&m->final_norm, m->d_model, made, err);
    if (!rc) m->norm_type = SB_NORM_RMS;
    return rc;
}

/* ---- step 2: PCA -------------------------------------------------------------- */

typedef struct basis {
    double *q;       /* [D, D], columns = principal directions, largest first */
    double *lambda;  /* [D] */
} basis;

/* q from the statistics' C = Σ xxᵀ (any positive scale), damped as pca_calc. */
static int pca(const sb_linear_stats *st, basis *out, sb_err *err) {
    int64_t D = st->cols;
    double *c = sb_malloc(err, sizeof(double) * (size_t)(D * D));
    if (!c) return SB_EINTERNAL;
    memcpy(c, st->h, sizeof(double) * (size_t)(D * D));
    double mean_diag = 0;
    for (int64_t i = 0; i < D; i++) mean_diag += c[i * D + i];
    mean_diag /= (double)D;
    for (int64_t i = 0; i < D; i++) c[i * D + i] += 0.01 * mean_diag;
    int rc = sb_symmetric_eigen(c, (int)D, out->lambda, out->q, err);
    free(c);
    return rc;
}

/* Share of the signal energy (Σ xᵀx) the first d directions keep.  The
 * eigenvalues carry the damping δ = 0.01·tr(C)/D each, and their sum is
 * tr(C)·1.01, so δ = 0.01·Σλ / (1.01·D). */
static double kept_energy(const basis *b, int64_t D, int64_t d) {
    double all = 0, kept = 0;
    for (int64_t i = 0; i < D; i++) all += b->lambda[i];
    double damp = 0.01 * all / (1.01 * (double)D);
    for (int64_t i = 0; i < d; i++) kept += b->lambda[i] - damp;
    all -= damp * (double)D;
    return all > 0 ? kept / all : 1;
}

/* ---- step 3: rotation and slicing ------------------------------------------- */

/* An input-side linear: W [rows, D] ← W·Q[:, :d] (bias unchanged). */
static int rotate_inputs(sb_linear *w, const double *q, int64_t D, int64_t d, made_list *made, sb_err *err) {
    double *W = decode_f64(w, err), *b = bias_f64(w, err);
    double *out = sb_malloc(err, sizeof(double) * (size_t)(w->rows * d));
    int rc = W && out && (b || !w->bias) ? SB_OK : SB_EINTERNAL;
    if (!rc) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)w->rows, (int)d, (int)D, 1.0, W, (int)D, q, (int)D,
                    0.0, out, (int)d);
        rc = put_linear(w, w->rows, d, out, b, made, err);
    }
    free(W);
    free(b);
    free(out);
    return rc;
}

/* An output-side linear: W [D, cols] ← Q[:, :d]ᵀ·W, b ← Q[:, :d]ᵀ·b. */
static int rotate_outputs(sb_linear *w, const double *q, int64_t D, int64_t d, made_list *made, sb_err *err) {
    double *W = decode_f64(w, err), *b = bias_f64(w, err);
    double *out = sb_malloc(err, sizeof(double) * (size_t)(d * w->cols));
    double *bo = sb_calloc(err, (size_t)d, sizeof(double));
    int rc = W && out && bo && (b || !w->bias) ? SB_OK : SB_EINTERNAL;
    if (!rc) {
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)w->cols, (int)D, 1.0, q, (int)D, W,
                    (int)w->cols, 0.0, out, (int)w->cols);
        if (b) cblas_dgemv(CblasRowMajor, CblasTrans, (int)D, (int)d, 1.0, q, (int)D, b, 1, 0.0, bo, 1);
        rc = put_linear(w, d, w->cols, out, b ? bo : NULL, made, err);
    }
    free(W);
    free(b);
    free(out);
    free(bo);
    return rc;
}

/* The residual's map from basis A (kept d_a) to basis B (kept d_b):
 * x_B = x_A·Q_A[:, :d_a]ᵀ·Q_B[:, :d_b], stored as the linear
 * S [d_b, d_a] = Q_B[:, :d_b]ᵀ·Q_A[:, :d_a].  A NULL basis is the
 * original (unrotated, full-width) one, i.e. the identity. */
static int put_shortcut(sb_linear *slot, const double *qa, int64_t da, const double *qb, int64_t db, const double *eye,
                        int64_t D, made_list *made, sb_err *err) {
    double *s = sb_malloc(err, sizeof(double) * (size_t)(db * da));
    if (!s) return SB_EINTERNAL;
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)db, (int)da, (int)D, 1.0, qb ? qb : eye, (int)D,
                qa ? qa : eye, (int)D, 0.0, s, (int)da);
    int rc = put_linear(slot, db, da, s, NULL, made, err);
    free(s);
    return rc;
}

typedef struct slicer {
    sb_model *m;
    const sb_calib_set *set;
    sb_calib_run *run;
    made_list *made;
    int64_t D, d, d_last;  /* original width, kept width, the last block's output width */
    double *eye;           /* [D, D] identity */
    basis in, mid, out;    /* the bases of the block's input, middle and output streams */
    cJSON *blocks;         /* details: per block widths and kept energy */
} slicer;

/* C = Σ xxᵀ of the rows that pass through `probe` in a pass of the current block. */
static int pca_of_probe(slicer *s, const sb_linear *probe, basis *out, sb_err *err) {
    sb_linear_stats st;
    int rc = sb_linear_stats_init(&st, probe, err);
    if (!rc) rc = sb_calib_run_block(s->run, &st, 1, err);
    if (!rc) rc = pca(&st, out, err);
    sb_linear_stats_free(&st);
    return rc;
}

/* C = Σ xxᵀ of held rows of D values: sample k's seq_len rows start at
 * k·seq_len·d_model (calibration.h). */
static int pca_of_rows(slicer *s, const float *x, basis *out, sb_err *err) {
    sb_linear width = {.rows = s->D, .cols = s->D}; /* only sizes the statistics */
    sb_linear_stats st;
    int rc = sb_linear_stats_init(&st, &width, err);
    int64_t seq = s->set->seq_len;
    for (int64_t k = 0; !rc && k < s->set->n_samples; k++) sb_linear_stats_add(&st, x + k * seq * s->m->d_model, seq);
    if (!rc) rc = pca(&st, out, err);
    sb_linear_stats_free(&st);
    return rc;
}

/* The block's outputs (full width and unrotated while its output linears
 * are not rotated yet) and their PCA. */
static int pca_of_outputs(slicer *s, basis *out, sb_err *err) {
    int rc = sb_calib_run_block(s->run, NULL, 0, err);
    return rc ? rc : pca_of_rows(s, sb_calib_outputs(s->run), out, err);
}

static cJSON *block_details(int64_t d_in, int64_t d_mid, int64_t d_out, double kept_mid, double kept_out) {
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddNumberToObject(o, "d_in", (double)d_in) && cJSON_AddNumberToObject(o, "d_mid", (double)d_mid) &&
        cJSON_AddNumberToObject(o, "d_out", (double)d_out) &&
        (kept_mid < 0 || cJSON_AddNumberToObject(o, "pca_kept_energy_mid", kept_mid)) &&
        cJSON_AddNumberToObject(o, "pca_kept_energy_out", kept_out))
        return o;
    cJSON_Delete(o);
    return NULL;
}

static void add_block_details(slicer *s, cJSON *o) {
    if (o && !cJSON_AddItemToArray(s->blocks, o)) cJSON_Delete(o);
}

/* Sequential block: attention, then the MLP on the updated stream. */
static int slice_sequential(slicer *s, int l, sb_err *err) {
    sb_block *b = &s->m->blocks[l];
    int64_t D = s->D, d_in = s->d, d_mid = s->d;
    int64_t d_out = l == s->m->n_layer - 1 ? s->d_last : s->d;
    sb_linear *attn_in[] = {&b->wq, &b->wk, &b->wv};
    sb_linear *mlp_in[] = {&b->w_up, s->m->gated_mlp ? &b->w_gate : NULL};
    int rc = SB_OK;
    for (int i = 0; !rc && i < 3; i++) rc = rotate_inputs(attn_in[i], s->in.q, D, d_in, s->made, err);
    /* until Q_mid is known the stream between the branches stays in the original basis */
    if (!rc) rc = put_shortcut(&b->attn_shortcut, s->in.q, d_in, NULL, D, s->eye, D, s->made, err);
    if (!rc) rc = put_shortcut(&b->mlp_shortcut, NULL, D, NULL, D, s->eye, D, s->made, err);
    if (!rc) rc = pca_of_probe(s, &b->mlp_shortcut, &s->mid, err);
    if (!rc) rc = put_shortcut(&b->attn_shortcut, s->in.q, d_in, s->mid.q, d_mid, s->eye, D, s->made, err);
    if (!rc) rc = rotate_outputs(&b->wo, s->mid.q, D, d_mid, s->made, err);
    for (int i = 0; !rc && i < 2; i++)
        if (mlp_in[i]) rc = rotate_inputs(mlp_in[i], s->mid.q, D, d_mid, s->made, err);
    if (!rc) rc = put_shortcut(&b->mlp_shortcut, s->mid.q, d_mid, NULL, D, s->eye, D, s->made, err);
    if (!rc) rc = pca_of_outputs(s, &s->out, err);
    if (!rc) rc = put_shortcut(&b->mlp_shortcut, s->mid.q, d_mid, s->out.q, d_out, s->eye, D, s->made, err);
    if (!rc) rc = rotate_outputs(&b->w_down, s->out.q, D, d_out, s->made, err);
    if (!rc)
        add_block_details(s, block_details(d_in, d_mid, d_out, kept_energy(&s->mid, D, d_mid),
                                           kept_energy(&s->out, D, d_out)));
    return rc;
}

/* Parallel block (Phi-2): both branches read n(x); one Q per block. */
static int slice_parallel(slicer *s, int l, sb_err *err) {
    sb_block *b = &s->m->blocks[l];
    int64_t D = s->D, d_in = s->d, d_out = l == s->m->n_layer - 1 ? s->d_last : s->d;
    sb_linear *inputs[] = {&b->wq, &b->wk, &b->wv, &b->w_up, s->m->gated_mlp ? &b->w_gate : NULL};
    int rc = SB_OK;
    for (int i = 0; !rc && i < 5; i++)
        if (inputs[i]) rc = rotate_inputs(inputs[i], s->in.q, D, d_in, s->made, err);
    if (!rc) rc = put_shortcut(&b->attn_shortcut, s->in.q, d_in, NULL, D, s->eye, D, s->made, err);
    if (!rc) rc = pca_of_outputs(s, &s->out, err);
    if (!rc) rc = put_shortcut(&b->attn_shortcut, s->in.q, d_in, s->out.q, d_out, s->eye, D, s->made, err);
    if (!rc) rc = rotate_outputs(&b->wo, s->out.q, D, d_out, s->made, err);
    if (!rc) rc = rotate_outputs(&b->w_down, s->out.q, D, d_out, s->made, err);
    if (!rc) add_block_details(s, block_details(d_in, d_out, d_out, -1, kept_energy(&s->out, D, d_out)));
    return rc;
}

/* Learned positions [n_pos_rows, D] ← P·Q[:, :d]. */
static int rotate_positions(sb_model *m, const double *q, int64_t D, int64_t d, made_list *made, sb_err *err) {
    int64_t n = m->n_pos_rows;
    double *P = sb_malloc(err, sizeof(double) * (size_t)(n * D));
    double *out = sb_malloc(err, sizeof(double) * (size_t)(n * d));
    float *p = NULL;
    int rc = P && out ? SB_OK : SB_EINTERNAL;
    if (!rc) {
        for (int64_t i = 0; i < n * D; i++) P[i] = (double)m->pos_embd[i];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)d, (int)D, 1.0, P, (int)D, q, (int)D, 0.0,
                    out, (int)d);
        p = to_f32(out, n * d, err);
        rc = p ? made_add(made, p, err) : SB_EINTERNAL;
    }
    if (!rc) {
        made_release(made, m->pos_embd);
        m->pos_embd = p;
    } else {
        free(p);
    }
    free(P);
    free(out);
    return rc;
}

/* Q_0 from the embeddings of the calibration tokens; the embedding tables rotated and sliced. */
static int slice_embeddings(slicer *s, const sb_run_ctx *ctx, sb_err *err) {
    int rc = sb_calib_run_new(s->m, s->set, ctx, &s->run, err);
    if (!rc) rc = pca_of_rows(s, sb_calib_inputs(s->run), &s->in, err);
    sb_calib_run_free(s->run);
    s->run = NULL;
    if (!rc) rc = rotate_inputs(&s->m->tok_embd, s->in.q, s->D, s->d, s->made, err);
    if (!rc && s->m->pos_embd) rc = rotate_positions(s->m, s->in.q, s->D, s->d, s->made, err);
    return rc;
}

static int alloc_basis(basis *b, int64_t D, sb_err *err) {
    b->q = sb_malloc(err, sizeof(double) * (size_t)(D * D));
    b->lambda = sb_malloc(err, sizeof(double) * (size_t)D);
    return b->q && b->lambda ? SB_OK : SB_EINTERNAL;
}

static void free_basis(basis *b) {
    free(b->q);
    free(b->lambda);
}

static int slicer_init(slicer *s, sb_model *m, const sb_calib_set *set, int64_t d, bool slice_head, made_list *made,
                       sb_err *err) {
    *s = (slicer){.m = m, .set = set, .made = made, .D = m->d_model, .d = d, .d_last = slice_head ? d : m->d_model};
    int64_t D = s->D;
    s->eye = sb_calloc(err, (size_t)(D * D), sizeof(double));
    int rc = s->eye ? SB_OK : SB_EINTERNAL;
    for (int64_t i = 0; !rc && i < D; i++) s->eye[i * D + i] = 1;
    if (!rc) rc = alloc_basis(&s->in, D, err);
    if (!rc) rc = alloc_basis(&s->mid, D, err);
    if (!rc) rc = alloc_basis(&s->out, D, err);
    return rc;
}

static void slicer_free(slicer *s) {
    sb_calib_run_free(s->run);
    free(s->eye);
    free_basis(&s->in);
    free_basis(&s->mid);
    free_basis(&s->out);
}

/* Embeddings, every block in order (each on inputs from the sliced earlier
 * ones), then the head in the last block's output basis. */
static int rotate_and_slice(slicer *s, const sb_run_ctx *ctx, sb_err *err) {
    sb_model *m = s->m;
    int rc = slice_embeddings(s, ctx, err);
    if (!rc) rc = sb_calib_run_new(m, s->set, ctx, &s->run, err); /* embeds with the rotated tables */
    for (int l = 0; !rc && l < m->n_layer; l++) {
        rc = m->parallel_residual ? slice_parallel(s, l, err) : slice_sequential(s, l, err);
        if (!rc) rc = sb_calib_advance(s->run, err); /* sliced outputs: the next block's inputs */
        basis t = s->in;
        s->in = s->out;
        s->out = t;
    }
    if (!rc) rc = rotate_inputs(&m->head, s->in.q, s->D, s->d_last, s->made, err);
    return rc;
}

/* ---- what can be sliced ------------------------------------------------------- */

int sb_slicegpt_width(int d_model, const sb_slicegpt_opts *o) {
    int d = (int)floor((1.0 - o->sparsity) * d_model + 1e-9);
    int r = o->round_interval > 0 ? o->round_interval : 1;
    return d - d % r;
}

/* An earlier step of the run changed a block linear (quantized, pruned...). */
static bool compressed_before(const sb_model *m, const sb_model *ref) {
    if (!ref || ref->n_layer != m->n_layer) return ref != NULL;
    for (int l = 0; l < m->n_layer; l++)
        for (int i = 0; i < SB_BLOCK_LINEARS; i++) {
            const sb_linear *a = sb_block_linear(&m->blocks[l], i), *b = sb_block_linear(&ref->blocks[l], i);
            if (a->data != b->data || a->fmt != b->fmt) return true;
        }
    return false;
}

static int check_model(const sb_model *m, const sb_slicegpt_opts *o, const sb_run_ctx *ctx, sb_err *err) {
    if (m->vision || !m->tok_embd.fmt)
        return sb_err_set(err, SB_EINPUT,
                          "%s is an image model; slicegpt slices text models (calibration from a text file)", m->path);
    for (int l = 0; l < m->n_layer; l++)
        if (m->blocks[l].post_attn_norm.weight || m->blocks[l].post_mlp_norm.weight)
            return sb_err_set(err, SB_EINPUT,
                              "%s has norms on the branch outputs (block %d); they do not commute with a "
                              "rotation of the residual stream, so SliceGPT cannot slice it",
                              m->arch, l);
    if (sb_model_is_sliced(m)) return sb_err_set(err, SB_EINPUT, "the model is already sliced");
    if (compressed_before(m, ctx ? ctx->reference : NULL))
        return sb_err_set(err, SB_EINPUT,
                          "an earlier step changed the block weights; slice first, then compress "
                          "(e.g. slicegpt+gptq)");
    int d = sb_slicegpt_width(m->d_model, o);
    if (d < 1)
        return sb_err_set(err, SB_EINPUT,
                          "sparsity=%g leaves no dimension of d_model %d (kept widths are rounded down to a "
                          "multiple of round_interval=%d)",
                          o->sparsity, m->d_model, o->round_interval);
    return SB_OK;
}

static int describe_widths(const sb_model *m, const sb_slicegpt_opts *o, int d, cJSON *details, sb_err *err) {
    bool ok = cJSON_AddNumberToObject(details, "d_model", m->d_model) && cJSON_AddNumberToObject(details, "width", d) &&
              cJSON_AddNumberToObject(details, "sliced_share", 1.0 - (double)d / m->d_model) &&
              cJSON_AddNumberToObject(details, "head_width", (double)m->head.cols) &&
              cJSON_AddNumberToObject(details, "sparsity", o->sparsity) &&
              cJSON_AddNumberToObject(details, "round_interval", o->round_interval) &&
              cJSON_AddStringToObject(details, "orientation", "pca") &&
              cJSON_AddStringToObject(details, "storage", m->blocks[0].wq.fmt->name);
    return ok ? SB_OK : sb_err_set(err, SB_EINTERNAL, "out of memory (slicegpt details)");
}

/* The format the rotated weights are stored in (see sb_slicegpt_opts.dtype). */
static const sb_format *storage_format(const sb_model *m, const char *dtype) {
    if (dtype && strcmp(dtype, "f32") == 0) return &sb_format_f32;
    if (dtype && strcmp(dtype, "f16") == 0) return &sb_format_f16;
    if (dtype && strcmp(dtype, "bf16") == 0) return &sb_format_bf16;
    const sb_format *shared = m->blocks[0].wq.fmt;
    for (int l = 0; l < m->n_layer; l++)
        for (int i = 0; i < SB_BLOCK_LINEARS; i++) {
            const sb_linear *w = sb_block_linear(&m->blocks[l], i);
            if (w->fmt && w->fmt != shared) return &sb_format_f32;
        }
    return shared == &sb_format_f16 || shared == &sb_format_bf16 ? shared : &sb_format_f32;
}

int sb_slicegpt_slice(sb_model *m, const sb_calib_set *set, const sb_slicegpt_opts *o, const sb_run_ctx *ctx,
                      cJSON *details, sb_err *err) {
    int rc = check_model(m, o, ctx, err);
    if (rc) return rc;
    made_list made = {.store = storage_format(m, o->dtype)};
    slicer s;
    rc = slicer_init(&s, m, set, sb_slicegpt_width(m->d_model, o), o->slice_head, &made, err);
    s.blocks = cJSON_CreateArray();
    if (!rc && !s.blocks) rc = sb_err_set(err, SB_EINTERNAL, "out of memory (slicegpt)");
    if (!rc) rc = fuse_model(m, &made, err);
    if (!rc) rc = rotate_and_slice(&s, ctx, err);
    if (!rc) rc = sb_model_validate(m, err); /* the widths must chain; a failure here is a bug */
    if (!rc && details) rc = describe_widths(m, o, (int)s.d, details, err);
    if (!rc && details && cJSON_AddItemToObject(details, "blocks", s.blocks)) s.blocks = NULL;
    cJSON_Delete(s.blocks);
    slicer_free(&s);
    free(made.p); /* what it lists is the model's now */
    return rc;
}

/* ---- the plugin ----------------------------------------------------------------- */

static int draw_calibration(const sb_model *m, const sb_params *p, sb_calib_set *set, sb_err *err) {
    sb_calib_config cfg = {
        .path = sb_param_str(p, "data"),
        .format = sb_param_str(p, "format"),
        .sampling = sb_param_str(p, "sampling"),
        .n_samples = (int)sb_param_num(p, "n_samples"),
        .seq_len = (int)sb_param_num(p, "seq_len"),
        .seed = (uint64_t)sb_param_num(p, "seed"),
    };
    int rc = sb_calib_config_check(&cfg, err);
    if (!rc && !m->tokenizer)
        rc = sb_err_set(err, SB_EINPUT, "the model has no tokenizer for its calibration text");
    if (!rc) rc = sb_calib_draw(m->tokenizer, &cfg, set, err);
    return rc ? sb_err_prefix(err, "slicegpt") : SB_OK;
}

static int fill_report(const sb_model *m, uint64_t params_before, const sb_calib_set *set, sb_method_report *report,
                       sb_err *err) {
    uint64_t after = sb_model_param_count(m);
    report->params_removed = params_before > after ? params_before - after : 0;
    report->bits_per_weight = sb_model_bits_per_weight(m);
    report->real_quant = true; /* the matrices really are smaller */
    cJSON *calib = sb_calib_set_describe(set);
    bool ok = calib && cJSON_AddItemToObject(report->details, "calibration", calib);
    if (!ok) cJSON_Delete(calib);
    ok = ok && cJSON_AddNumberToObject(report->details, "params_before", (double)params_before) &&
         cJSON_AddNumberToObject(report->details, "params_after", (double)after);
    return ok ? SB_OK : sb_err_set(err, SB_EINTERNAL, "out of memory (slicegpt report)");
}

static int slicegpt_apply(sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_method_report *report,
                          sb_err *err) {
    sb_slicegpt_opts o = {sb_param_num(p, "sparsity"), (int)sb_param_num(p, "round_interval"),
                          sb_param_bool(p, "slice_head"), sb_param_str(p, "dtype")};
    int rc = check_model(m, &o, ctx, err); /* before the calibration text is read */
    if (rc) return rc;
    sb_calib_set set;
    memset(&set, 0, sizeof set);
    rc = draw_calibration(m, p, &set, err);
    if (rc) return rc;
    uint64_t before = sb_model_param_count(m);
    report->details = cJSON_CreateObject();
    rc = report->details ? SB_OK : sb_err_set(err, SB_EINTERNAL, "out of memory (slicegpt)");
    if (!rc) rc = sb_slicegpt_slice(m, &set, &o, ctx, report->details, err);
    if (!rc) rc = fill_report(m, before, &set, report, err);
    sb_calib_set_free(&set);
    return rc;
}

static const sb_param_spec slicegpt_params[] = {
    {"sparsity", SB_PARAM_FLOAT, "0.25", 0, 0.99, NULL, "share of the embedding dimension to delete"},
    {"round_interval", SB_PARAM_INT, "8", 1, 4096, NULL, "kept width rounded down to a multiple of this"},
    {"slice_head", SB_PARAM_BOOL, "false", 1, 0, NULL, "slice the last block's output and the head too"},
    {"dtype", SB_PARAM_STRING, "auto", 1, 0, "auto|f32|f16|bf16",
     "storage of the rotated weights; auto: the checkpoint's f16/bf16, else f32"},
    {"data", SB_PARAM_STRING, NULL, 1, 0, NULL, "calibration text file"},
    {"format", SB_PARAM_STRING, "raw", 1, 0, "raw|jsonl", "calibration file format"},
    {"sampling", SB_PARAM_STRING, "windows", 1, 0, "windows|documents",
     "windows: random windows of the whole text (wikitext2 loader); documents: a window of a random long document (c4)"},
    {"n_samples", SB_PARAM_INT, "128", 1, 1000000, NULL,
     "calibration windows (authors' default 128; paper Table 1: 1024)"},
    {"seq_len", SB_PARAM_INT, "2048", 2, 1000000, NULL, "tokens per calibration window"},
    {"seed", SB_PARAM_INT, "42", 0, 4294967295.0, NULL,
     "seed of the window sampling (authors' default 42)"},
};

const sb_method sb_method_slicegpt = {
    .abi = SB_PLUGIN_ABI,
    .name = "slicegpt",
    .family = "slicing",
    .summary = "rotate the residual stream into its PCA basis per layer and delete its least-used dimensions",
    .paper = {"SliceGPT: Compress Large Language Models by Deleting Rows and Columns", "2401.15024", "2024"},
    .params = slicegpt_params,
    .n_params = (int)(sizeof slicegpt_params / sizeof slicegpt_params[0]),
    .apply = slicegpt_apply,
};

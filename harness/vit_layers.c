/* vit_layers.c - linear, LayerNorm, GELU and bidirectional attention,
 * forward and backward, for the ViT trainer (see vit_layers.h).
 *
 * Determinism: products split output rows over the pool (train.h's
 * sb_train_gemm); reductions over rows (bias and norm-weight gradients)
 * give each task whole columns summed in row order; attention runs one
 * task per (sequence, head), which writes only its own columns. */
#include <math.h>
#include <string.h>

#include "blas.h"
#include "train.h"
#include "vit_layers.h"

enum { ROW_CHUNK = 16, COL_CHUNK = 8, ELEM_CHUNK = 16384 };

/* ---- linear ---------------------------------------------------------------- */

typedef struct {
    float *y, *db;
    const float *b, *dy;
    int R, n;
} bias_job;

static void add_bias_rows(void *arg, int64_t r0, int64_t r1) {
    bias_job *j = arg;
    for (int64_t r = r0; r < r1; r++)
        for (int i = 0; i < j->n; i++) j->y[r * j->n + i] += j->b[i];
}

/* db[i] += Σ_r dy[r, i], columns per task, rows in order */
static void sum_cols(void *arg, int64_t c0, int64_t c1) {
    bias_job *j = arg;
    for (int64_t i = c0; i < c1; i++) {
        double acc = 0;
        for (int64_t r = 0; r < j->R; r++) acc += j->dy[r * j->n + i];
        j->db[i] += (float)acc;
    }
}

void sb_vit_linear_forward(sb_pool *pool, float *y, const float *x, const float *W, const float *b, int R, int in, int out) {
    sb_train_gemm(pool, false, true, R, out, in, x, in, W, in, 0.0f, y, out);
    bias_job j = {.y = y, .b = b, .R = R, .n = out};
    sb_train_parallel_for(pool, R, ROW_CHUNK, add_bias_rows, &j);
}

void sb_vit_linear_backward(sb_pool *pool, float *dx, float beta, float *dW, float *db, const float *dy, const float *x,
                            const float *W, int R, int in, int out) {
    if (dx) sb_train_gemm(pool, false, false, R, in, out, dy, out, W, in, beta, dx, in);   /* [R,out]·[out,in] */
    sb_train_gemm(pool, true, false, out, in, R, dy, out, x, in, 1.0f, dW, in);           /* [out,R]·[R,in] */
    bias_job j = {.db = db, .dy = dy, .R = R, .n = out};
    sb_train_parallel_for(pool, out, COL_CHUNK, sum_cols, &j);
}

/* ---- LayerNorm --------------------------------------------------------------- */

typedef struct {
    float *y, *mean, *rstd, *dx, *dw, *db;
    const float *x, *w, *b, *dy, *smean, *srstd;
    int R, d;
    float eps;
} ln_job;

static void ln_rows(void *arg, int64_t r0, int64_t r1) {
    ln_job *j = arg;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * j->d;
        double s = 0, sq = 0;
        for (int i = 0; i < j->d; i++) s += x[i];
        float m = (float)(s / j->d);
        for (int i = 0; i < j->d; i++) sq += (double)(x[i] - m) * (x[i] - m);
        float rs = (float)(1.0 / sqrt(sq / j->d + j->eps));
        j->mean[r] = m, j->rstd[r] = rs;
        for (int i = 0; i < j->d; i++) j->y[r * j->d + i] = (x[i] - m) * rs * j->w[i] + j->b[i];
    }
}

void sb_vit_layernorm_forward(sb_pool *pool, float *y, float *mean, float *rstd, const float *x, const float *w,
                              const float *b, int R, int d, float eps) {
    ln_job j = {.y = y, .mean = mean, .rstd = rstd, .x = x, .w = w, .b = b, .R = R, .d = d, .eps = eps};
    sb_train_parallel_for(pool, R, ROW_CHUNK, ln_rows, &j);
}

/* dx += rstd (dx̂ - mean(dx̂) - x̂ mean(dx̂ ⊙ x̂)), dx̂ = dy ⊙ w */
static void ln_dx_rows(void *arg, int64_t r0, int64_t r1) {
    ln_job *j = arg;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * j->d, *dy = j->dy + r * j->d;
        float m = j->smean[r], rs = j->srstd[r];
        double m1 = 0, m2 = 0;
        for (int i = 0; i < j->d; i++) {
            double dxh = (double)dy[i] * j->w[i];
            m1 += dxh;
            m2 += dxh * (x[i] - m) * rs;
        }
        float a = (float)(m1 / j->d), c = (float)(m2 / j->d);
        for (int i = 0; i < j->d; i++) j->dx[r * j->d + i] += rs * (dy[i] * j->w[i] - a - (x[i] - m) * rs * c);
    }
}

static void ln_dw_cols(void *arg, int64_t c0, int64_t c1) {
    ln_job *j = arg;
    for (int64_t i = c0; i < c1; i++) {
        double aw = 0, ab = 0;
        for (int64_t r = 0; r < j->R; r++) {
            float dy = j->dy[r * j->d + i];
            aw += (double)dy * (j->x[r * j->d + i] - j->smean[r]) * j->srstd[r];
            ab += dy;
        }
        j->dw[i] += (float)aw;
        j->db[i] += (float)ab;
    }
}

void sb_vit_layernorm_backward(sb_pool *pool, float *dx, float *dw, float *db, const float *dy, const float *x,
                               const float *mean, const float *rstd, const float *w, int R, int d) {
    ln_job j = {.dx = dx, .dw = dw, .db = db, .x = x, .w = w, .dy = dy, .smean = mean, .srstd = rstd, .R = R, .d = d};
    sb_train_parallel_for(pool, R, ROW_CHUNK, ln_dx_rows, &j);
    sb_train_parallel_for(pool, d, COL_CHUNK, ln_dw_cols, &j);
}

/* ---- GELU (erf form, as torch's nn.GELU() and HF's "gelu") ------------------- */

typedef struct {
    float *out;
    const float *u;
} gelu_job;

static void gelu_fwd_range(void *arg, int64_t i0, int64_t i1) {
    gelu_job *j = arg;
    for (int64_t i = i0; i < i1; i++) j->out[i] = 0.5f * j->u[i] * (1.0f + erff(j->u[i] * 0.70710678118654752f));
}

/* gelu'(u) = Φ(u) + u φ(u) */
static void gelu_bwd_range(void *arg, int64_t i0, int64_t i1) {
    gelu_job *j = arg;
    for (int64_t i = i0; i < i1; i++) {
        float u = j->u[i];
        float cdf = 0.5f * (1.0f + erff(u * 0.70710678118654752f)), pdf = 0.39894228040143268f * expf(-0.5f * u * u);
        j->out[i] *= cdf + u * pdf;
    }
}

void sb_vit_gelu_forward(sb_pool *pool, float *g, const float *u, int64_t n) {
    gelu_job j = {g, u};
    sb_train_parallel_for(pool, n, ELEM_CHUNK, gelu_fwd_range, &j);
}

void sb_vit_gelu_backward(sb_pool *pool, float *dg, const float *u, int64_t n) {
    gelu_job j = {dg, u};
    sb_train_parallel_for(pool, n, ELEM_CHUNK, gelu_bwd_range, &j);
}

/* ---- attention ------------------------------------------------------------------ */

typedef struct {
    float *out, *probs, *dq, *dk, *dv, *scratch;
    const float *q, *k, *v, *dout, *cprobs;
    int B, T, nh, hd;
} attn_job;

static void softmax_rows(float *p, int T) {
    for (int r = 0; r < T; r++) {
        float *row = p + (int64_t)r * T, mx = row[0];
        for (int c = 1; c < T; c++) mx = row[c] > mx ? row[c] : mx;
        double sum = 0;
        for (int c = 0; c < T; c++) sum += row[c] = expf(row[c] - mx);
        float inv = (float)(1.0 / sum);
        for (int c = 0; c < T; c++) row[c] *= inv;
    }
}

static void attn_fwd_task(void *arg, int task, int worker) {
    (void)worker;
    attn_job *j = arg;
    int b = task / j->nh, h = task % j->nh, D = j->nh * j->hd;
    int64_t off = (int64_t)b * j->T * D + (int64_t)h * j->hd;
    float *P = j->probs + (int64_t)task * j->T * j->T;
    float scale = 1.0f / sqrtf((float)j->hd);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->T, j->T, j->hd, scale, j->q + off, D, j->k + off, D, 0.0f, P, j->T);
    softmax_rows(P, j->T);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, j->T, j->hd, j->T, 1.0f, P, j->T, j->v + off, D, 0.0f, j->out + off, D);
}

void sb_vit_attention_forward(sb_pool *pool, float *out, float *probs, const float *q, const float *k, const float *v,
                              int B, int T, int nh, int hd) {
    attn_job j = {.out = out, .probs = probs, .q = q, .k = k, .v = v, .B = B, .T = T, .nh = nh, .hd = hd};
    sb_pool_run(pool, attn_fwd_task, &j, B * nh);
}

/* dV = Pᵀ dO; dP = dO Vᵀ; dS = P ⊙ (dP - rowsum(dP ⊙ P)) · scale; dQ = dS K; dK = dSᵀ Q */
static void attn_bwd_task(void *arg, int task, int worker) {
    attn_job *j = arg;
    int b = task / j->nh, h = task % j->nh, D = j->nh * j->hd, T = j->T;
    int64_t off = (int64_t)b * T * D + (int64_t)h * j->hd;
    const float *P = j->cprobs + (int64_t)task * T * T;
    float *dS = j->scratch + (int64_t)worker * T * T, scale = 1.0f / sqrtf((float)j->hd);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, j->hd, T, 1.0f, P, T, j->dout + off, D, 0.0f, j->dv + off, D);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, j->hd, 1.0f, j->dout + off, D, j->v + off, D, 0.0f, dS, T);
    for (int r = 0; r < T; r++) {
        float *ds = dS + (int64_t)r * T;
        const float *p = P + (int64_t)r * T;
        double dot = 0;
        for (int c = 0; c < T; c++) dot += (double)ds[c] * p[c];
        for (int c = 0; c < T; c++) ds[c] = p[c] * (ds[c] - (float)dot) * scale;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, j->hd, T, 1.0f, dS, T, j->k + off, D, 0.0f, j->dq + off, D);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, j->hd, T, 1.0f, dS, T, j->q + off, D, 0.0f, j->dk + off, D);
}

void sb_vit_attention_backward(sb_pool *pool, float *dq, float *dk, float *dv, const float *dout, const float *probs,
                               const float *q, const float *k, const float *v, float *scratch, int B, int T, int nh, int hd) {
    attn_job j = {.dq = dq, .dk = dk, .dv = dv, .scratch = scratch, .q = q, .k = k, .v = v, .dout = dout, .cprobs = probs,
                  .B = B, .T = T, .nh = nh, .hd = hd};
    sb_pool_run(pool, attn_bwd_task, &j, B * nh);
}

/* backward.c - the training forward pass (saving what the backward needs)
 * and the backward pass, layer by layer, in the manner of llm.c's
 * train_gpt2.c: each layer is a forward function and a backward function
 * over row-major (B*T, C) buffers, shapes in the comments.
 *
 * The forward computes the same function as forward.c for a Llama model
 * (same operation order in the norms, rotary tables and softmax), so its
 * logits match sb_session_forward's to float rounding.
 *
 * Parallel work: matrix products split their output rows across the pool
 * (single-threaded CBLAS per slice); element-wise work goes in chunks of
 * rows; attention in tasks of one (sequence, key-value head), so the
 * query heads sharing a key-value head add into its dK, dV in a fixed
 * order inside one task.  No task's result depends on which worker ran it. */
#include <math.h>
#include <string.h>

#include "blas.h"
#include "train.h"
#include "vec.h"

/* ---- running work on the pool -------------------------------------------- */

typedef void (*range_fn)(void *arg, int64_t i0, int64_t i1);

typedef struct {
    range_fn fn;
    void *arg;
    int64_t n, chunk;
} range_job;

static void range_task(void *arg, int task, int worker) {
    (void)worker;
    range_job *j = arg;
    int64_t i0 = (int64_t)task * j->chunk, i1 = i0 + j->chunk < j->n ? i0 + j->chunk : j->n;
    j->fn(j->arg, i0, i1);
}

/* fn over [0, n) in chunks of `chunk` indices. */
static void parallel_for(sb_pool *pool, int64_t n, int64_t chunk, range_fn fn, void *arg) {
    range_job j = {fn, arg, n, chunk};
    sb_pool_run(pool, range_task, &j, (int)((n + chunk - 1) / chunk));
}

static int pool_threads(sb_pool *pool) { return pool ? sb_pool_threads(pool) : 1; }

/* C[M, N] = op(A)·op(B) + beta C, the M rows of C split over the pool. */
typedef struct {
    enum CBLAS_TRANSPOSE ta, tb;
    int M, N, K;
    const float *A;
    int lda;
    const float *B;
    int ldb;
    float beta;
    float *C;
    int ldc, n_tasks;
} gemm_job;

static void gemm_task(void *arg, int task, int worker) {
    (void)worker;
    gemm_job *j = arg;
    int m0 = (int)((int64_t)j->M * task / j->n_tasks), m1 = (int)((int64_t)j->M * (task + 1) / j->n_tasks);
    if (m1 <= m0) return;
    /* op(A) row m is row m of A, or column m of A when transposed */
    const float *a = j->ta == CblasNoTrans ? j->A + (int64_t)m0 * j->lda : j->A + m0;
    cblas_sgemm(CblasRowMajor, j->ta, j->tb, m1 - m0, j->N, j->K, 1.0f, a, j->lda, j->B, j->ldb, j->beta,
                j->C + (int64_t)m0 * j->ldc, j->ldc);
}

static void gemm(sb_pool *pool, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N, int K, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc) {
    int n_tasks = pool_threads(pool);
    if (n_tasks > M) n_tasks = M > 0 ? M : 1;
    gemm_job j = {ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc, n_tasks};
    sb_pool_run(pool, gemm_task, &j, n_tasks);
}

enum { ROW_CHUNK = 16 };

/* ---- linear -------------------------------------------------------------- */

/* y[R, out] = x[R, in] · W[out, in]ᵀ */
static void linear_forward(sb_pool *pool, float *y, const float *x, const float *W, int R, int in, int out) {
    gemm(pool, CblasNoTrans, CblasTrans, R, out, in, x, in, W, in, 0.0f, y, out);
}

/* dW[out, in] += dy[R, out]ᵀ · x[R, in];  dx[R, in] = dy · W (or += when accumulate). */
static void linear_backward(sb_pool *pool, float *dx, float *dW, const float *dy, const float *x, const float *W,
                            int R, int in, int out, bool accumulate) {
    gemm(pool, CblasTrans, CblasNoTrans, out, in, R, dy, out, x, in, 1.0f, dW, in);
    gemm(pool, CblasNoTrans, CblasNoTrans, R, in, out, dy, out, W, in, accumulate ? 1.0f : 0.0f, dx, in);
}

/* ---- embedding ----------------------------------------------------------- */

typedef struct {
    float *x;
    const float *embd;
    const int32_t *tokens;
    int d;
} embed_job;

static void embed_rows(void *arg, int64_t r0, int64_t r1) {
    embed_job *j = arg;
    for (int64_t r = r0; r < r1; r++)
        memcpy(j->x + r * j->d, j->embd + (int64_t)j->tokens[r] * j->d, sizeof(float) * (size_t)j->d);
}

/* x[R, d] = embd[tokens[r]] */
static void embedding_forward(sb_pool *pool, float *x, const float *embd, const int32_t *tokens, int R, int d) {
    embed_job j = {x, embd, tokens, d};
    parallel_for(pool, R, ROW_CHUNK * 4, embed_rows, &j);
}

/* dembd[tokens[r]] += dx[r], rows in order: repeated tokens add in a fixed order. */
static void embedding_backward(float *dembd, const float *dx, const int32_t *tokens, int R, int d) {
    for (int r = 0; r < R; r++) {
        float *row = dembd + (int64_t)tokens[r] * d;
        const float *g = dx + (int64_t)r * d;
        for (int i = 0; i < d; i++) row[i] += g[i];
    }
}

/* ---- RMSNorm --------------------------------------------------------------
 * y[r] = w ⊙ x[r] · rstd[r],  rstd[r] = 1 / sqrt(mean(x[r]²) + eps) */

typedef struct {
    const float *x, *w, *dy;
    float *y, *rstd;         /* forward outputs */
    const float *saved_rstd; /* backward input */
    float *dx, *dw;
    int d, R;
    float eps;
} rms_job;

static void rmsnorm_rows(void *arg, int64_t r0, int64_t r1) {
    rms_job *j = arg;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * j->d;
        float *y = j->y + r * j->d;
        double sq = 0; /* in double, like forward.c */
        for (int i = 0; i < j->d; i++) sq += (double)x[i] * (double)x[i];
        float inv = (float)(1.0 / sqrt(sq / (double)j->d + j->eps));
        j->rstd[r] = inv;
        for (int i = 0; i < j->d; i++) y[i] = (x[i] * inv) * j->w[i];
    }
}

/* y, rstd = rmsnorm(x[R, d], w[d]) */
static void rmsnorm_forward(sb_pool *pool, float *y, float *rstd, const float *x, const float *w, int R, int d,
                            float eps) {
    rms_job j = {.x = x, .w = w, .y = y, .rstd = rstd, .d = d, .R = R, .eps = eps};
    parallel_for(pool, R, ROW_CHUNK, rmsnorm_rows, &j);
}

/* dx[r] += rstd (w ⊙ dy) - rstd³ x (Σ w dy x) / d */
static void rmsnorm_dx_rows(void *arg, int64_t r0, int64_t r1) {
    rms_job *j = arg;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * j->d, *dy = j->dy + r * j->d;
        float *dx = j->dx + r * j->d;
        float s = j->saved_rstd[r];
        double dot = 0;
        for (int i = 0; i < j->d; i++) dot += (double)j->w[i] * dy[i] * x[i];
        float c = (float)(dot / j->d) * s * s * s;
        for (int i = 0; i < j->d; i++) dx[i] += s * j->w[i] * dy[i] - c * x[i];
    }
}

/* dw[i] += Σ_r dy[r, i] x[r, i] rstd[r]: a reduction over rows, so tasks
 * take columns and each sums its rows in order. */
static void rmsnorm_dw_cols(void *arg, int64_t c0, int64_t c1) {
    rms_job *j = arg;
    for (int64_t i = c0; i < c1; i++) {
        double acc = 0;
        for (int64_t r = 0; r < j->R; r++) acc += (double)j->dy[r * j->d + i] * j->x[r * j->d + i] * j->saved_rstd[r];
        j->dw[i] += (float)acc;
    }
}

/* dx[R, d] += d/dx, dw[d] += d/dw of the norm, given dy[R, d] and the saved x, rstd. */
static void rmsnorm_backward(sb_pool *pool, float *dx, float *dw, const float *dy, const float *x, const float *w,
                             const float *rstd, int R, int d) {
    rms_job j = {.x = x, .w = w, .dy = dy, .saved_rstd = rstd, .dx = dx, .dw = dw, .d = d, .R = R};
    parallel_for(pool, R, ROW_CHUNK, rmsnorm_dx_rows, &j);
    parallel_for(pool, d, 8, rmsnorm_dw_cols, &j);
}

/* ---- rotary (halves layout: dimension i pairs with i + hd/2) ------------- */

/* cos/sin[T, hd/2] of angle t * inv_freq[i], computed as forward.c does. */
static void rope_tables(float *cos_t, float *sin_t, const float *inv_freq, int T, int half) {
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            float angle = (float)((double)t * (double)inv_freq[i]);
            cos_t[t * half + i] = cosf(angle);
            sin_t[t * half + i] = sinf(angle);
        }
}

typedef struct {
    float *x;
    const float *cos_t, *sin_t;
    int n_heads, hd, T;
    float sign; /* +1 rotates forward; -1 rotates back (the backward of a rotation is its inverse) */
} rope_job;

static void rope_rows(void *arg, int64_t r0, int64_t r1) {
    rope_job *j = arg;
    int half = j->hd / 2;
    for (int64_t r = r0; r < r1; r++) {
        const float *c = j->cos_t + (r % j->T) * half, *s = j->sin_t + (r % j->T) * half;
        for (int h = 0; h < j->n_heads; h++) {
            float *x = j->x + (r * j->n_heads + h) * j->hd;
            for (int i = 0; i < half; i++) {
                float a = x[i], b = x[i + half], sn = j->sign * s[i];
                x[i] = a * c[i] - b * sn;
                x[i + half] = b * c[i] + a * sn;
            }
        }
    }
}

/* x[R, n_heads * hd] rotated in place; sign -1 applies the transpose (backward). */
static void rope_apply(sb_pool *pool, float *x, const sb_train_model *tm, int n_heads, int R, float sign) {
    rope_job j = {x, tm->rope_cos, tm->rope_sin, n_heads, tm->head_dim, tm->T, sign};
    parallel_for(pool, R, ROW_CHUNK, rope_rows, &j);
}

/* ---- causal attention with GQA -------------------------------------------
 * Per sequence b and query head h (key-value head h / (nh / nkv)):
 *   P = softmax(scale · Q Kᵀ, causal)  [T, T];  O = P V  [T, hd] */

typedef struct {
    sb_train_model *tm;
    const sb_train_layer_acts *a;
    int T, nh, nkv, hd;
} attn_job;

static void attn_forward_task(void *arg, int task, int worker) {
    (void)worker;
    attn_job *j = arg;
    int T = j->T, hd = j->hd, qd = j->nh * hd, kvd = j->nkv * hd, group = j->nh / j->nkv;
    int b = task / j->nkv, kvh = task % j->nkv;
    const float *K = j->a->k + (int64_t)b * T * kvd + kvh * hd, *V = j->a->v + (int64_t)b * T * kvd + kvh * hd;
    for (int h = kvh * group; h < (kvh + 1) * group; h++) {
        const float *Q = j->a->q + (int64_t)b * T * qd + h * hd;
        float *P = j->a->probs + ((int64_t)b * j->nh + h) * T * T;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, Q, qd, K, kvd, 0.0f, P, T);
        for (int i = 0; i < T; i++) {
            float *row = P + (int64_t)i * T;
            for (int k = 0; k <= i; k++) row[k] *= j->tm->attn_scale;
            sb_vec_softmax(row, i + 1);
            for (int k = i + 1; k < T; k++) row[k] = 0;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, P, T, V, kvd, 0.0f,
                    j->a->att + (int64_t)b * T * qd + h * hd, qd);
    }
}

/* att[R, nh*hd], probs[B, nh, T, T] from q, k, v (rotated) */
static void attention_forward(sb_train_model *tm, const sb_train_layer_acts *a) {
    const sb_train_shape *s = &tm->shape;
    attn_job j = {tm, a, tm->T, s->n_head, s->n_kv_head, tm->head_dim};
    sb_pool_run(tm->pool, attn_forward_task, &j, tm->B * s->n_kv_head);
}

/* Given dO (datt): dP = dO Vᵀ; dV += Pᵀ dO; dS = P ⊙ (dP - rowsum(P ⊙ dP));
 * dQ = scale dS K; dK += scale dSᵀ Q. */
static void attn_backward_task(void *arg, int task, int worker) {
    attn_job *j = arg;
    sb_train_model *tm = j->tm;
    int T = j->T, hd = j->hd, qd = j->nh * hd, kvd = j->nkv * hd, group = j->nh / j->nkv;
    int b = task / j->nkv, kvh = task % j->nkv;
    int64_t q0 = (int64_t)b * T * qd, kv0 = (int64_t)b * T * kvd + kvh * hd;
    float *dS = tm->dscores + (int64_t)worker * T * T;
    for (int h = kvh * group; h < (kvh + 1) * group; h++) {
        const float *P = j->a->probs + ((int64_t)b * j->nh + h) * T * T;
        const float *dO = tm->datt + q0 + h * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dO, qd, j->a->v + kv0, kvd, 0.0f, dS, T);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, P, T, dO, qd, 1.0f, tm->dv + kv0, kvd);
        for (int i = 0; i < T; i++) {
            const float *p = P + (int64_t)i * T;
            float *ds = dS + (int64_t)i * T;
            double dot = 0;
            for (int k = 0; k <= i; k++) dot += (double)p[k] * ds[k];
            for (int k = 0; k <= i; k++) ds[k] = p[k] * (ds[k] - (float)dot) * tm->attn_scale;
            for (int k = i + 1; k < T; k++) ds[k] = 0;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, dS, T, j->a->k + kv0, kvd, 0.0f,
                    tm->dq + q0 + h * hd, qd);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, dS, T, j->a->q + q0 + h * hd, qd, 1.0f,
                    tm->dk + kv0, kvd);
    }
}

/* dq, dk, dv (w.r.t. the rotated q, k and v) from tm->datt. */
static void attention_backward(sb_train_model *tm, const sb_train_layer_acts *a) {
    const sb_train_shape *s = &tm->shape;
    int64_t R = (int64_t)tm->B * tm->T, kvd = (int64_t)s->n_kv_head * tm->head_dim;
    memset(tm->dk, 0, sizeof(float) * (size_t)(R * kvd));
    memset(tm->dv, 0, sizeof(float) * (size_t)(R * kvd));
    attn_job j = {tm, a, tm->T, s->n_head, s->n_kv_head, tm->head_dim};
    sb_pool_run(tm->pool, attn_backward_task, &j, tm->B * s->n_kv_head);
}

/* ---- SwiGLU: act = silu(gate) * up --------------------------------------- */

typedef struct {
    const float *gate, *up, *dact;
    float *act, *dgate, *dup;
} swiglu_job;

static void swiglu_forward_range(void *arg, int64_t i0, int64_t i1) {
    swiglu_job *j = arg;
    for (int64_t i = i0; i < i1; i++) {
        float g = j->gate[i];
        j->act[i] = g / (1.0f + expf(-g)) * j->up[i];
    }
}

/* silu'(g) = σ(g) (1 + g (1 - σ(g))) */
static void swiglu_backward_range(void *arg, int64_t i0, int64_t i1) {
    swiglu_job *j = arg;
    for (int64_t i = i0; i < i1; i++) {
        float g = j->gate[i], sig = 1.0f / (1.0f + expf(-g));
        j->dgate[i] = j->dact[i] * j->up[i] * sig * (1.0f + g * (1.0f - sig));
        j->dup[i] = j->dact[i] * g * sig;
    }
}

enum { ELEM_CHUNK = 16384 };

/* act[n] = silu(gate) * up */
static void swiglu_forward(sb_pool *pool, float *act, const float *gate, const float *up, int64_t n) {
    swiglu_job j = {.gate = gate, .up = up, .act = act};
    parallel_for(pool, n, ELEM_CHUNK, swiglu_forward_range, &j);
}

static void swiglu_backward(sb_pool *pool, float *dgate, float *dup, const float *dact, const float *gate,
                            const float *up, int64_t n) {
    swiglu_job j = {.gate = gate, .up = up, .dact = dact, .dgate = dgate, .dup = dup};
    parallel_for(pool, n, ELEM_CHUNK, swiglu_backward_range, &j);
}

/* ---- residual ------------------------------------------------------------ */

typedef struct {
    float *out;
    const float *a, *b;
} add_job;

static void add_range(void *arg, int64_t i0, int64_t i1) {
    add_job *j = arg;
    for (int64_t i = i0; i < i1; i++) j->out[i] = j->a[i] + j->b[i];
}

/* out[n] = a + b (out may alias a); its backward passes the gradient to both unchanged. */
static void residual_forward(sb_pool *pool, float *out, const float *a, const float *b, int64_t n) {
    add_job j = {out, a, b};
    parallel_for(pool, n, ELEM_CHUNK, add_range, &j);
}

/* ---- cross-entropy -------------------------------------------------------- */

typedef struct {
    const float *logits;
    float *probs;
    const int32_t *targets;
    double *nll;
    int V;
    float scale; /* 1 / R: the loss is a mean */
} ce_job;

/* probs[r] = softmax(logits[r]); nll[r] = -log probs[r][target] in double. */
static void ce_forward_rows(void *arg, int64_t r0, int64_t r1) {
    ce_job *j = arg;
    for (int64_t r = r0; r < r1; r++) {
        const float *l = j->logits + r * j->V;
        float *p = j->probs + r * j->V;
        j->nll[r] = sb_vec_logsumexp(l, j->V) - (double)l[j->targets[r]];
        memcpy(p, l, sizeof(float) * (size_t)j->V);
        sb_vec_softmax(p, j->V);
    }
}

/* dlogits[r] = (probs[r] - onehot(target)) / R, in place over probs. */
static void ce_backward_rows(void *arg, int64_t r0, int64_t r1) {
    ce_job *j = arg;
    for (int64_t r = r0; r < r1; r++) {
        float *p = j->probs + r * j->V;
        p[j->targets[r]] -= 1.0f;
        for (int i = 0; i < j->V; i++) p[i] *= j->scale;
    }
}

/* ---- the whole model ------------------------------------------------------ */

static void block_forward(sb_train_model *tm, int l) {
    const sb_train_shape *s = &tm->shape;
    const sb_train_block *w = &tm->p.blocks[l];
    sb_train_layer_acts *a = &tm->acts[l];
    int R = tm->B * tm->T, d = s->d_model, qd = s->n_head * tm->head_dim, kvd = s->n_kv_head * tm->head_dim;
    const float *x = tm->resid + (int64_t)l * R * d;
    float *x_out = tm->resid + (int64_t)(l + 1) * R * d;
    rmsnorm_forward(tm->pool, a->h_attn, a->rstd_attn, x, w->attn_norm, R, d, (float)s->norm_eps);
    linear_forward(tm->pool, a->q, a->h_attn, w->wq, R, d, qd);
    linear_forward(tm->pool, a->k, a->h_attn, w->wk, R, d, kvd);
    linear_forward(tm->pool, a->v, a->h_attn, w->wv, R, d, kvd);
    rope_apply(tm->pool, a->q, tm, s->n_head, R, 1.0f);
    rope_apply(tm->pool, a->k, tm, s->n_kv_head, R, 1.0f);
    attention_forward(tm, a);
    linear_forward(tm->pool, tm->branch, a->att, w->wo, R, qd, d);
    residual_forward(tm->pool, a->x_mid, x, tm->branch, (int64_t)R * d);
    rmsnorm_forward(tm->pool, a->h_mlp, a->rstd_mlp, a->x_mid, w->mlp_norm, R, d, (float)s->norm_eps);
    linear_forward(tm->pool, a->gate, a->h_mlp, w->w_gate, R, d, s->ff);
    linear_forward(tm->pool, a->up, a->h_mlp, w->w_up, R, d, s->ff);
    swiglu_forward(tm->pool, a->act, a->gate, a->up, (int64_t)R * s->ff);
    linear_forward(tm->pool, tm->branch, a->act, w->w_down, R, s->ff, d);
    residual_forward(tm->pool, x_out, a->x_mid, tm->branch, (int64_t)R * d);
}

/* tm->dres holds d/d(block output); leaves d/d(block input) there. */
static void block_backward(sb_train_model *tm, int l) {
    const sb_train_shape *s = &tm->shape;
    const sb_train_block *w = &tm->p.blocks[l];
    sb_train_block *g = &tm->g.blocks[l];
    const sb_train_layer_acts *a = &tm->acts[l];
    int R = tm->B * tm->T, d = s->d_model, qd = s->n_head * tm->head_dim, kvd = s->n_kv_head * tm->head_dim;
    const float *x = tm->resid + (int64_t)l * R * d;
    /* MLP branch: its output adds into the stream, so its gradient is dres */
    linear_backward(tm->pool, tm->dact, g->w_down, tm->dres, a->act, w->w_down, R, s->ff, d, false);
    swiglu_backward(tm->pool, tm->dgate, tm->dup, tm->dact, a->gate, a->up, (int64_t)R * s->ff);
    linear_backward(tm->pool, tm->dh, g->w_gate, tm->dgate, a->h_mlp, w->w_gate, R, d, s->ff, false);
    linear_backward(tm->pool, tm->dh, g->w_up, tm->dup, a->h_mlp, w->w_up, R, d, s->ff, true);
    rmsnorm_backward(tm->pool, tm->dres, g->mlp_norm, tm->dh, a->x_mid, w->mlp_norm, a->rstd_mlp, R, d);
    /* attention branch */
    linear_backward(tm->pool, tm->datt, g->wo, tm->dres, a->att, w->wo, R, qd, d, false);
    attention_backward(tm, a);
    rope_apply(tm->pool, tm->dq, tm, s->n_head, R, -1.0f);
    rope_apply(tm->pool, tm->dk, tm, s->n_kv_head, R, -1.0f);
    linear_backward(tm->pool, tm->dh, g->wq, tm->dq, a->h_attn, w->wq, R, d, qd, false);
    linear_backward(tm->pool, tm->dh, g->wk, tm->dk, a->h_attn, w->wk, R, d, kvd, true);
    linear_backward(tm->pool, tm->dh, g->wv, tm->dv, a->h_attn, w->wv, R, d, kvd, true);
    rmsnorm_backward(tm->pool, tm->dres, g->attn_norm, tm->dh, x, w->attn_norm, a->rstd_attn, R, d);
}

static int check_tokens(const sb_train_model *tm, const int32_t *ids, int64_t n, const char *what, sb_err *err) {
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tm->shape.n_vocab)
            return sb_err_set(err, SB_EINPUT, "%s id %d is outside the vocabulary [0, %d)", what, ids[i],
                              tm->shape.n_vocab);
    return SB_OK;
}

int sb_train_forward(sb_train_model *tm, const int32_t *inputs, const int32_t *targets, int B, int T, double *loss,
                     sb_err *err) {
    const sb_train_shape *s = &tm->shape;
    if (B < 1 || T < 1 || B > tm->max_B || T > tm->max_T)
        return sb_err_set(err, SB_EINPUT, "batch %d x %d exceeds the training buffers' %d x %d", B, T, tm->max_B,
                          tm->max_T);
    int64_t R = (int64_t)B * T;
    int rc = check_tokens(tm, inputs, R, "input", err);
    if (!rc && targets) rc = check_tokens(tm, targets, R, "target", err);
    if (rc) return rc;
    if (T != tm->T) rope_tables(tm->rope_cos, tm->rope_sin, tm->inv_freq, T, tm->head_dim / 2);
    tm->B = B;
    tm->T = T;
    tm->inputs = inputs;
    tm->targets = targets;
    embedding_forward(tm->pool, tm->resid, tm->p.embd, inputs, (int)R, s->d_model);
    for (int l = 0; l < s->n_layer; l++) block_forward(tm, l);
    const float *x = tm->resid + (int64_t)s->n_layer * R * s->d_model;
    rmsnorm_forward(tm->pool, tm->h_final, tm->rstd_final, x, tm->p.final_norm, (int)R, s->d_model, (float)s->norm_eps);
    linear_forward(tm->pool, tm->logits, tm->h_final, tm->p.head, (int)R, s->d_model, s->n_vocab);
    if (!targets) return SB_OK;
    ce_job j = {tm->logits, tm->probs_out, targets, tm->row_nll, s->n_vocab, 1.0f / (float)R};
    parallel_for(tm->pool, R, ROW_CHUNK, ce_forward_rows, &j);
    double sum = 0;
    for (int64_t r = 0; r < R; r++) sum += tm->row_nll[r];
    *loss = sum / (double)R;
    return SB_OK;
}

void sb_train_backward(sb_train_model *tm) {
    const sb_train_shape *s = &tm->shape;
    int R = tm->B * tm->T, d = s->d_model;
    ce_job j = {tm->logits, tm->probs_out, tm->targets, tm->row_nll, s->n_vocab, 1.0f / (float)R};
    parallel_for(tm->pool, R, ROW_CHUNK, ce_backward_rows, &j);
    /* head (into the embedding's gradient when tied), then the final norm */
    linear_backward(tm->pool, tm->dh, tm->g.head, tm->probs_out, tm->h_final, tm->p.head, R, d, s->n_vocab, false);
    memset(tm->dres, 0, sizeof(float) * (size_t)R * (size_t)d);
    rmsnorm_backward(tm->pool, tm->dres, tm->g.final_norm, tm->dh, tm->resid + (int64_t)s->n_layer * R * d,
                     tm->p.final_norm, tm->rstd_final, R, d);
    for (int l = s->n_layer - 1; l >= 0; l--) block_backward(tm, l);
    embedding_backward(tm->g.embd, tm->dres, tm->inputs, R, d);
}

void sb_train_zero_grad(sb_train_model *tm) { memset(tm->grad_mem, 0, sizeof(float) * (size_t)tm->n_params); }

/* ---- shared with the ViT trainer (vit_backward.c) ---------------------------- */

void sb_train_gemm(sb_pool *pool, bool trans_a, bool trans_b, int M, int N, int K, const float *A, int lda, const float *B,
                   int ldb, float beta, float *C, int ldc) {
    gemm(pool, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, A, lda, B, ldb, beta, C,
         ldc);
}

void sb_train_parallel_for(sb_pool *pool, int64_t n, int64_t chunk, void (*fn)(void *arg, int64_t i0, int64_t i1), void *arg) {
    parallel_for(pool, n, chunk, fn, arg);
}

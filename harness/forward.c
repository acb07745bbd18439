/* forward.c - the forward pass over the model IR, on the CPU.
 *
 * Rows: R = n_seq * n_tok activations go through every layer together, so
 * each linear layer is one matrix product of R rows (CBLAS).  Attention is
 * per sequence and head: for many tokens, blocks of queries take their
 * scores from one GEMM against the cached keys in range; for a few tokens
 * (decoding) each (sequence, head, token) is a task of dot products. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cuda.h"
#include "blas.h"
#include "forward.h"
#include "vec.h"

enum { QUERY_BLOCK = 128 };  /* queries per attention GEMM */
enum { FEW_TOKENS = 4 };     /* up to this many tokens per call: dot-product attention */
enum { ROWS_PER_TASK = 8 };  /* rows of element-wise work per pool task */

struct sb_session {
    const sb_model *m;
    sb_pool *pool;
    int n_seq, max_ctx, max_tokens, n_past;
    float **k_cache, **v_cache;  /* per layer: [n_seq][max_ctx][nkv*hd] */
    /* scratch, R = n_seq * max_tokens rows */
    float *x;       /* [R, d] residual stream */
    float *h;       /* [R, d] normed input of a branch */
    float *q, *att; /* [R, nh*hd] */
    float *k, *v;   /* [R, nkv*hd] new keys and values before they enter the cache */
    float *o;       /* [R, d] a branch's output */
    float *res;     /* [R, d] the residual stream through a shortcut matrix */
    float *gate, *up; /* [R, ff] */
    float *scores;  /* per worker: QUERY_BLOCK * max_ctx */
    float *rope_cos, *rope_sin; /* [max_tokens, rot/2] for the call's positions */
    const float *rope_for;      /* the inv_freq table rope_cos/sin were built from */
    sb_matmul_ctx mm;
    sb_linear_observer observer; /* sees the input of every block linear, or NULL */
    void *observer_user;
    sb_attention_observer attn_observer; /* sees every attention row after softmax, or NULL */
    void *attn_observer_user;
    sb_cuda_session *cuda;       /* non-NULL: every call runs there instead (backend_cuda.h) */
};

/* ---- element-wise helpers run in the pool over rows ---------------------- */

typedef struct {
    const sb_norm *norm;
    sb_norm_type type;
    float eps;
    const float *in;
    float *out;
    int64_t width, stride; /* normalise `width` values starting every `stride` floats */
    int64_t n_rows;
} norm_job;

static void norm_one(const norm_job *j, const float *x, float *y) {
    int64_t n = j->width;
    double div = j->norm->mean_width > 0 ? (double)j->norm->mean_width : (double)n; /* sliced: the original width */
    double mean = 0, sq = 0;
    if (j->type == SB_NORM_LAYER) {
        for (int64_t i = 0; i < n; i++) mean += x[i];
        mean /= div;
    }
    for (int64_t i = 0; i < n; i++) sq += ((double)x[i] - mean) * ((double)x[i] - mean);
    float inv = (float)(1.0 / sqrt(sq / div + j->eps));
    const float *w = j->norm->weight, *b = j->norm->bias;
    for (int64_t i = 0; i < n; i++) {
        float v = ((float)(x[i] - mean)) * inv;
        y[i] = v * w[i] + (b ? b[i] : 0.0f);
    }
}

static void norm_task(void *arg, int task, int worker) {
    (void)worker;
    norm_job *j = arg;
    int64_t r1 = (int64_t)(task + 1) * ROWS_PER_TASK;
    if (r1 > j->n_rows) r1 = j->n_rows;
    for (int64_t r = (int64_t)task * ROWS_PER_TASK; r < r1; r++) norm_one(j, j->in + r * j->stride, j->out + r * j->stride);
}

static int tasks_for(int64_t rows) { return (int)((rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK); }

/* out[r] = norm(in[r]) for n_rows rows of `width` values, `stride` apart. */
static void apply_norm(sb_session *s, const sb_norm *norm, const float *in, float *out, int64_t n_rows, int64_t width,
                       int64_t stride) {
    norm_job j = {norm, s->m->norm_type, s->m->norm_eps, in, out, width, stride, n_rows};
    sb_pool_run(s->pool, norm_task, &j, tasks_for(n_rows));
}

static float activate(sb_activation act, float x) {
    switch (act) {
    case SB_ACT_SILU: return x / (1.0f + expf(-x));
    case SB_ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case SB_ACT_GELU_TANH: return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case SB_ACT_RELU: return x > 0 ? x : 0;
    }
    return x;
}

typedef struct {
    sb_activation act;
    float *a;        /* activated in place */
    const float *mul; /* multiplied in, or NULL */
    int64_t width, n_rows;
} act_job;

static void act_task(void *arg, int task, int worker) {
    (void)worker;
    act_job *j = arg;
    int64_t r1 = (int64_t)(task + 1) * ROWS_PER_TASK;
    if (r1 > j->n_rows) r1 = j->n_rows;
    for (int64_t i = (int64_t)task * ROWS_PER_TASK * j->width; i < r1 * j->width; i++) {
        float v = activate(j->act, j->a[i]);
        j->a[i] = j->mul ? v * j->mul[i] : v;
    }
}

/* ---- rotary -------------------------------------------------------------- */

static void build_rope_table(sb_session *s, const float *inv_freq, int n_tok) {
    int half = s->m->rot_dim / 2;
    for (int t = 0; t < n_tok; t++) {
        double pos = s->n_past + t;
        for (int i = 0; i < half; i++) {
            float angle = (float)(pos * (double)inv_freq[i]);
            s->rope_cos[t * half + i] = cosf(angle);
            s->rope_sin[t * half + i] = sinf(angle);
        }
    }
    s->rope_for = inv_freq;
}

typedef struct {
    sb_session *s;
    float *x;          /* [R, n_heads*hd] */
    int n_heads, head_dim, n_tok;
    int64_t n_rows;
} rope_job;

static void rope_task(void *arg, int task, int worker) {
    (void)worker;
    rope_job *j = arg;
    const sb_model *m = j->s->m;
    int half = m->rot_dim / 2;
    int64_t r1 = (int64_t)(task + 1) * ROWS_PER_TASK;
    if (r1 > j->n_rows) r1 = j->n_rows;
    for (int64_t r = (int64_t)task * ROWS_PER_TASK; r < r1; r++) {
        const float *c = j->s->rope_cos + (r % j->n_tok) * half, *sn = j->s->rope_sin + (r % j->n_tok) * half;
        for (int h = 0; h < j->n_heads; h++) {
            float *x = j->x + (r * j->n_heads + h) * j->head_dim;
            for (int i = 0; i < half; i++) {
                /* the pair (a, b) rotates by the angle of frequency i */
                int ia = m->positions == SB_ROPE_PAIRS ? 2 * i : i;
                int ib = m->positions == SB_ROPE_PAIRS ? 2 * i + 1 : i + half;
                float a = x[ia], b = x[ib];
                x[ia] = a * c[i] - b * sn[i];
                x[ib] = b * c[i] + a * sn[i];
            }
        }
    }
}

/* ---- attention ----------------------------------------------------------- */

/* Key positions a query at position p may see: [lo, p] when causal; an
 * encoder (bidirectional) sees every position of the call, [0, end). */
static int first_visible(int p, int window) { return window > 0 && p - window + 1 > 0 ? p - window + 1 : 0; }
static int last_visible(const sb_session *s, int p, int n_tok) { return s->m->bidirectional ? s->n_past + n_tok - 1 : p; }

/* The capture hook: hands one softmaxed row to the attention observer. */
static void capture_row(const sb_session *s, int layer, int seq, int head, int t, const float *probs, int key0,
                        int n_keys) {
    if (s->attn_observer) s->attn_observer(s->attn_observer_user, layer, seq, head, t, probs, key0, n_keys);
}

static float cap_score(float v, float cap) { return cap > 0 ? cap * tanhf(v / cap) : v; }

typedef struct {
    sb_session *s;
    const sb_block *b;
    int layer, n_tok;
} attn_job;

/* Few-token path: one task per (sequence, head, token). */
static void attn_dot_task(void *arg, int task, int worker) {
    attn_job *j = arg;
    sb_session *s = j->s;
    const sb_block *b = j->b;
    int hd = b->head_dim, nh = b->n_head, kvd = b->n_kv_head * hd;
    int t = task % j->n_tok, h = (task / j->n_tok) % nh, seq = task / (j->n_tok * nh);
    int kvh = h / (nh / b->n_kv_head);
    int p = s->n_past + t, lo = first_visible(p, b->sliding_window), hi = last_visible(s, p, j->n_tok);
    int64_t row = (int64_t)seq * j->n_tok + t;
    const float *q = s->q + row * nh * hd + h * hd;
    const float *K = s->k_cache[j->layer] + (int64_t)seq * s->max_ctx * kvd + kvh * hd;
    const float *V = s->v_cache[j->layer] + (int64_t)seq * s->max_ctx * kvd + kvh * hd;
    float *sc = s->scores + (int64_t)worker * s->max_ctx;
    for (int k = lo; k <= hi; k++) sc[k - lo] = cap_score(sb_vec_dot(q, K + (int64_t)k * kvd, hd) * s->m->attn_scale, s->m->attn_softcap);
    sb_vec_softmax(sc, hi - lo + 1);
    capture_row(s, j->layer, seq, h, t, sc, lo, hi - lo + 1);
    float *out = s->att + row * nh * hd + h * hd;
    memset(out, 0, sizeof(float) * (size_t)hd);
    for (int k = lo; k <= hi; k++) sb_vec_axpy(out, sc[k - lo], V + (int64_t)k * kvd, hd);
}

/* Row i of scores (query position p0 + i) over keys [key_lo, key_lo + n_keys):
 * scale, cap, mask what the query may not see, softmax. */
static void softmax_scores_row(const sb_session *s, const sb_block *b, float *row, int n_keys, int key_lo, int p,
                               int n_tok) {
    int lo = first_visible(p, b->sliding_window) - key_lo, hi = last_visible(s, p, n_tok) - key_lo; /* visible [lo, hi] */
    for (int k = 0; k < lo; k++) row[k] = 0;
    for (int k = lo; k <= hi; k++) row[k] = cap_score(row[k] * s->m->attn_scale, s->m->attn_softcap);
    sb_vec_softmax(row + lo, hi - lo + 1);
    for (int k = hi + 1; k < n_keys; k++) row[k] = 0;
}

/* Many-token path, one task per (sequence, head, block of queries):
 * scores = Q·Kᵀ over the keys any query of the block can see, masked
 * softmax, then P·V, all in the task's own scratch. */
static void attn_gemm_task(void *arg, int task, int worker) {
    attn_job *j = arg;
    sb_session *s = j->s;
    const sb_block *b = j->b;
    int hd = b->head_dim, nh = b->n_head, kvd = b->n_kv_head * hd;
    int n_blocks = (j->n_tok + QUERY_BLOCK - 1) / QUERY_BLOCK;
    int blk = task % n_blocks, h = (task / n_blocks) % nh, seq = task / (n_blocks * nh);
    int kvh = h / (nh / b->n_kv_head);
    int t0 = blk * QUERY_BLOCK, nq = j->n_tok - t0 < QUERY_BLOCK ? j->n_tok - t0 : QUERY_BLOCK;
    int p0 = s->n_past + t0, p1 = last_visible(s, p0 + nq - 1, j->n_tok);
    int lo = first_visible(p0, b->sliding_window), n_keys = p1 - lo + 1;
    const float *K = s->k_cache[j->layer] + ((int64_t)seq * s->max_ctx + lo) * kvd + kvh * hd;
    const float *V = s->v_cache[j->layer] + ((int64_t)seq * s->max_ctx + lo) * kvd + kvh * hd;
    int64_t row0 = (int64_t)seq * j->n_tok + t0;
    float *scores = s->scores + (int64_t)worker * QUERY_BLOCK * s->max_ctx;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, n_keys, hd, 1.0f, s->q + row0 * nh * hd + h * hd, nh * hd,
                K, kvd, 0.0f, scores, n_keys);
    for (int i = 0; i < nq; i++) {
        softmax_scores_row(s, b, scores + (int64_t)i * n_keys, n_keys, lo, p0 + i, j->n_tok);
        capture_row(s, j->layer, seq, h, t0 + i, scores + (int64_t)i * n_keys, lo, n_keys);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, n_keys, 1.0f, scores, n_keys, V, kvd, 0.0f,
                s->att + row0 * nh * hd + h * hd, nh * hd);
}

/* ---- one block ----------------------------------------------------------- */

/* A block's linear product, shown to the observer first (calibration). */
static void block_linear(sb_session *s, int layer, const sb_linear *w, const float *x, int64_t R, float *y) {
    if (s->observer) s->observer(s->observer_user, layer, w, x, R);
    sb_linear_forward(w, x, R, y, &s->mm);
}

static void store_kv(sb_session *s, const sb_block *b, int layer, int n_tok) {
    int64_t kvd = (int64_t)b->n_kv_head * b->head_dim;
    for (int seq = 0; seq < s->n_seq; seq++) {
        float *kc = s->k_cache[layer] + ((int64_t)seq * s->max_ctx + s->n_past) * kvd;
        float *vc = s->v_cache[layer] + ((int64_t)seq * s->max_ctx + s->n_past) * kvd;
        memcpy(kc, s->k + (int64_t)seq * n_tok * kvd, sizeof(float) * (size_t)(n_tok * kvd));
        memcpy(vc, s->v + (int64_t)seq * n_tok * kvd, sizeof(float) * (size_t)(n_tok * kvd));
    }
}

static void rotate(sb_session *s, float *x, int n_heads, int head_dim, int n_tok, int64_t rows) {
    rope_job rj = {s, x, n_heads, head_dim, n_tok, rows};
    sb_pool_run(s->pool, rope_task, &rj, tasks_for(rows));
}

/* o = attention branch of block b applied to h. */
static void attention_branch(sb_session *s, const sb_block *b, int layer, int n_tok, int64_t R) {
    const sb_model *m = s->m;
    int hd = b->head_dim;
    block_linear(s, layer, &b->wq, s->h, R, s->q);
    block_linear(s, layer, &b->wk, s->h, R, s->k);
    block_linear(s, layer, &b->wv, s->h, R, s->v);
    if (b->q_norm.weight) apply_norm(s, &b->q_norm, s->q, s->q, R * b->n_head, hd, hd);
    if (b->k_norm.weight) apply_norm(s, &b->k_norm, s->k, s->k, R * b->n_kv_head, hd, hd);
    if (m->positions != SB_POS_LEARNED) {
        if (s->rope_for != b->rope_inv_freq) build_rope_table(s, b->rope_inv_freq, n_tok);
        rotate(s, s->q, b->n_head, hd, n_tok, R);
        rotate(s, s->k, b->n_kv_head, hd, n_tok, R);
    }
    store_kv(s, b, layer, n_tok);
    attn_job aj = {s, b, layer, n_tok};
    if (n_tok <= FEW_TOKENS)
        sb_pool_run(s->pool, attn_dot_task, &aj, s->n_seq * b->n_head * n_tok);
    else
        sb_pool_run(s->pool, attn_gemm_task, &aj, s->n_seq * b->n_head * ((n_tok + QUERY_BLOCK - 1) / QUERY_BLOCK));
    block_linear(s, layer, &b->wo, s->att, R, s->o);
    int64_t d_mid = b->wo.rows;
    if (b->post_attn_norm.weight) apply_norm(s, &b->post_attn_norm, s->o, s->o, R, d_mid, d_mid);
}

/* out = MLP(in); uses gate/up scratch. */
static void mlp_branch(sb_session *s, const sb_block *b, int layer, const float *in, float *out, int64_t R) {
    const sb_model *m = s->m;
    block_linear(s, layer, &b->w_up, in, R, s->up);
    act_job aj = {m->act, s->up, NULL, b->w_up.rows, R};
    if (m->gated_mlp) {
        block_linear(s, layer, &b->w_gate, in, R, s->gate);
        aj.a = s->gate;
        aj.mul = s->up;
    }
    sb_pool_run(s->pool, act_task, &aj, tasks_for(R));
    block_linear(s, layer, &b->w_down, aj.a, R, out);
    int64_t d_out = b->w_down.rows;
    if (b->post_mlp_norm.weight) apply_norm(s, &b->post_mlp_norm, out, out, R, d_out, d_out);
}

static void add_into(float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

/* x = x·Sᵀ: the residual stream through a shortcut matrix (SliceGPT), when
 * the block has one; the stream becomes S->rows wide. */
static void through_shortcut(sb_session *s, int layer, const sb_linear *sc, int64_t R) {
    if (!sc->fmt) return;
    block_linear(s, layer, sc, s->x, R, s->res);
    memcpy(s->x, s->res, sizeof(float) * (size_t)(R * sc->rows));
}

/* The stream enters d_in = wq.cols wide, is d_mid = wo.rows wide between
 * the branches and leaves d_out wide (all d_model unless sliced). */
static void run_block(sb_session *s, int layer, int n_tok, int64_t R) {
    const sb_model *m = s->m;
    const sb_block *b = &m->blocks[layer];
    int64_t d_in = sb_block_width_in(b), d_mid = sb_block_width_mid(b);
    apply_norm(s, &b->attn_norm, s->x, s->h, R, d_in, d_in);
    attention_branch(s, b, layer, n_tok, R);
    through_shortcut(s, layer, &b->attn_shortcut, R);
    if (m->parallel_residual) {
        add_into(s->x, s->o, R * d_mid);
        mlp_branch(s, b, layer, s->h, s->o, R);
        add_into(s->x, s->o, R * d_mid);
        return;
    }
    add_into(s->x, s->o, R * d_mid);
    apply_norm(s, &b->mlp_norm, s->x, s->h, R, d_mid, d_mid);
    mlp_branch(s, b, layer, s->h, s->o, R);
    through_shortcut(s, layer, &b->mlp_shortcut, R);
    add_into(s->x, s->o, R * b->w_down.rows);
}

/* ---- embedding and head -------------------------------------------------- */

static int embed(sb_session *s, const int32_t *tokens, int n_tok, sb_err *err) {
    const sb_model *m = s->m;
    if (!m->tok_embd.fmt) /* image models embed patches (vit.c), not tokens */
        return sb_err_set(err, SB_EINPUT, "%s has no token embedding (an image model: use the image tasks)", m->path);
    int64_t d = sb_model_embed_width(m);
    for (int64_t r = 0; r < (int64_t)s->n_seq * n_tok; r++) {
        int32_t id = tokens[r];
        if (id < 0 || id >= m->n_vocab)
            return sb_err_set(err, SB_EINPUT, "token id %d is outside the vocabulary [0, %d)", id, m->n_vocab);
        float *x = s->x + r * d;
        m->tok_embd.fmt->decode_rows(&m->tok_embd, id, 1, x);
        if (m->embed_scale != 1.0f)
            for (int64_t i = 0; i < d; i++) x[i] *= m->embed_scale;
        if (m->pos_embd) {
            int row = s->n_past + (int)(r % n_tok) + m->pos_offset;
            if (row >= m->n_pos_rows)
                return sb_err_set(err, SB_EINPUT, "position %d is past the model's %d learned positions",
                                  row - m->pos_offset, m->n_pos_rows - m->pos_offset);
            add_into(x, m->pos_embd + (int64_t)row * d, d);
        }
    }
    return SB_OK;
}

static void head(sb_session *s, int n_tok, int logits_from, float *logits) {
    const sb_model *m = s->m;
    int n_out = n_tok - logits_from;
    int64_t d = m->head.cols; /* the last block's output width */
    /* gather the rows that want logits, so the final norm and the head run on them alone */
    for (int seq = 0; seq < s->n_seq; seq++)
        apply_norm(s, &m->final_norm, s->x + ((int64_t)seq * n_tok + logits_from) * d, s->h + (int64_t)seq * n_out * d,
                   n_out, d, d);
    int64_t rows = (int64_t)s->n_seq * n_out;
    sb_linear_forward(&m->head, s->h, rows, logits, &s->mm);
    if (m->final_softcap > 0)
        for (int64_t i = 0; i < rows * m->n_vocab; i++) logits[i] = cap_score(logits[i], m->final_softcap);
}

/* The shape checks every entry point shares. */
static int check_call(const sb_session *s, int n_tok, sb_err *err) {
    if (n_tok <= 0 || n_tok > s->max_tokens)
        return sb_err_set(err, SB_EINPUT, "%d tokens per sequence in one call; this session takes 1 to %d", n_tok,
                          s->max_tokens);
    if (s->n_past + n_tok > s->max_ctx)
        return sb_err_set(err, SB_EINPUT, "sequence would reach %d positions; the session holds %d",
                          s->n_past + n_tok, s->max_ctx);
    return SB_OK;
}

int sb_session_forward(sb_session *s, const int32_t *tokens, int n_tok, int logits_from, float *logits,
                       sb_err *err) {
    if (s->cuda) return sb_cuda_session_forward(s->cuda, tokens, n_tok, logits_from, logits, err);
    int rc = check_call(s, n_tok, err);
    if (rc) return rc;
    if (logits_from < 0 || logits_from > n_tok || (logits_from < n_tok && !logits))
        return sb_err_set(err, SB_EINTERNAL, "bad logits_from %d", logits_from);
    rc = embed(s, tokens, n_tok, err);
    if (rc) return rc;
    int64_t R = (int64_t)s->n_seq * n_tok;
    s->rope_for = NULL;
    for (int l = 0; l < s->m->n_layer; l++) run_block(s, l, n_tok, R);
    if (logits_from < n_tok) head(s, n_tok, logits_from, logits);
    s->n_past += n_tok;
    return SB_OK;
}

/* ---- pieces of the pass, for calibration -------------------------------- */

int sb_session_embed(sb_session *s, const int32_t *tokens, int n_tok, float *x_out, sb_err *err) {
    if (s->cuda) return sb_cuda_session_embed(s->cuda, tokens, n_tok, x_out, err);
    int rc = check_call(s, n_tok, err);
    if (!rc) rc = embed(s, tokens, n_tok, err);
    if (rc) return rc;
    memcpy(x_out, s->x, sizeof(float) * (size_t)((int64_t)s->n_seq * n_tok * sb_model_embed_width(s->m)));
    return SB_OK;
}

int sb_session_forward_blocks(sb_session *s, const float *x_in, int n_tok, int layer0, int layer1, float *x_out,
                              sb_err *err) {
    if (s->cuda) return sb_cuda_session_forward_blocks(s->cuda, x_in, n_tok, layer0, layer1, x_out, err);
    int64_t w_in, w_out;
    int rc = check_call(s, n_tok, err);
    if (!rc) rc = sb_model_block_range(s->m, layer0, layer1, &w_in, &w_out, err);
    if (rc) return rc;
    int64_t R = (int64_t)s->n_seq * n_tok;
    memmove(s->x, x_in, sizeof(float) * (size_t)(R * w_in));
    s->rope_for = NULL;
    for (int l = layer0; l < layer1; l++) run_block(s, l, n_tok, R);
    memmove(x_out, s->x, sizeof(float) * (size_t)(R * w_out));
    return SB_OK;
}

int sb_session_logits(sb_session *s, const float *x, int64_t n_rows, float *logits, sb_err *err) {
    if (s->cuda) return sb_cuda_session_logits(s->cuda, x, n_rows, logits, err);
    const sb_model *m = s->m;
    if (n_rows < 1 || n_rows > (int64_t)s->n_seq * s->max_tokens)
        return sb_err_set(err, SB_EINTERNAL, "%lld rows for the head; this session takes 1 to %lld", (long long)n_rows,
                          (long long)s->n_seq * s->max_tokens);
    apply_norm(s, &m->final_norm, x, s->h, n_rows, m->d_model, m->d_model);
    sb_linear_forward(&m->head, s->h, n_rows, logits, &s->mm);
    if (m->final_softcap > 0)
        for (int64_t i = 0; i < n_rows * m->n_vocab; i++) logits[i] = cap_score(logits[i], m->final_softcap);
    return SB_OK;
}

void sb_session_set_observer(sb_session *s, sb_linear_observer fn, void *user) {
    if (s->cuda) sb_cuda_session_set_observer(s->cuda, fn, user);
    s->observer = fn;
    s->observer_user = user;
}

void sb_session_set_attention_observer(sb_session *s, sb_attention_observer fn, void *user) {
    if (s->cuda) sb_cuda_session_set_attention_capture(s->cuda, fn != NULL);
    s->attn_observer = fn;
    s->attn_observer_user = user;
}

/* ---- session lifetime ---------------------------------------------------- */

static float *alloc_floats(int64_t n, sb_err *err) { return sb_malloc(err, sizeof(float) * (size_t)(n > 0 ? n : 1)); }

int sb_session_new(const sb_model *m, sb_pool *pool, int n_seq, int max_ctx, int max_tokens, sb_session **out,
                   sb_err *err) {
    if (n_seq < 1 || max_ctx < 1 || max_tokens < 1 || max_tokens > max_ctx)
        return sb_err_set(err, SB_EINPUT, "bad session shape: %d sequences, context %d, %d tokens per call", n_seq,
                          max_ctx, max_tokens);
    sb_session *s = sb_calloc(err, 1, sizeof *s);
    if (!s) return SB_EINTERNAL;
    s->m = m;
    if (m->device) { /* the model's weights are on a CUDA device: the session runs there */
        int rc = sb_cuda_session_new(m, n_seq, max_ctx, max_tokens, &s->cuda, err);
        if (rc) free(s);
        else *out = s;
        return rc;
    }
    s->pool = pool;
    s->n_seq = n_seq;
    s->max_ctx = max_ctx;
    s->max_tokens = max_tokens;
    int64_t qd = 0, kvd = 0, ff = 0, max_cols = m->d_model;
    for (int l = 0; l < m->n_layer; l++) {
        const sb_block *b = &m->blocks[l];
        int64_t bq = (int64_t)b->n_head * b->head_dim, bkv = (int64_t)b->n_kv_head * b->head_dim;
        if (bq > qd) qd = bq;
        if (bkv > kvd) kvd = bkv;
        if (b->w_up.rows > ff) ff = b->w_up.rows;
    }
    if (qd > max_cols) max_cols = qd;
    if (ff > max_cols) max_cols = ff;
    int64_t R = (int64_t)n_seq * max_tokens;
    int threads = sb_pool_threads(pool);
    int64_t score_rows = (int64_t)QUERY_BLOCK * threads; /* one block of rows per worker */
    /* BLAS runs single-threaded inside the pool's tasks (see blas.h), also
     * with a pool of one thread: OpenBLAS's own threading changes its
     * blocking and so the order of the sums, and a run's numbers must not
     * depend on its thread count (GPTQ with 1 and 2 threads, test_gptq). */
    sb_blas_set_threads(1);
    s->k_cache = sb_calloc(err, (size_t)m->n_layer, sizeof(float *));
    s->v_cache = sb_calloc(err, (size_t)m->n_layer, sizeof(float *));
    bool ok = s->k_cache && s->v_cache;
    for (int l = 0; ok && l < m->n_layer; l++) {
        int64_t n = (int64_t)n_seq * max_ctx * m->blocks[l].n_kv_head * m->blocks[l].head_dim;
        ok = (s->k_cache[l] = alloc_floats(n, err)) && (s->v_cache[l] = alloc_floats(n, err));
    }
    ok = ok && (s->x = alloc_floats(R * m->d_model, err)) && (s->h = alloc_floats(R * m->d_model, err)) &&
         (s->o = alloc_floats(R * m->d_model, err)) && (s->res = alloc_floats(R * m->d_model, err)) &&
         (s->q = alloc_floats(R * qd, err)) &&
         (s->att = alloc_floats(R * qd, err)) && (s->k = alloc_floats(R * kvd, err)) &&
         (s->v = alloc_floats(R * kvd, err)) && (s->gate = alloc_floats(R * ff, err)) &&
         (s->up = alloc_floats(R * ff, err)) && (s->scores = alloc_floats(score_rows * max_ctx, err)) &&
         (s->rope_cos = alloc_floats((int64_t)max_tokens * (m->rot_dim / 2 + 1), err)) &&
         (s->rope_sin = alloc_floats((int64_t)max_tokens * (m->rot_dim / 2 + 1), err));
    if (ok) {
        s->mm.pool = pool;
        s->mm.scratch_floats = sb_matmul_scratch_floats(max_cols, threads);
        ok = (s->mm.scratch = alloc_floats(s->mm.scratch_floats, err)) != NULL;
    }
    if (!ok) {
        sb_session_free(s);
        return sb_err_prefix(err, "allocating a session for %d x %d positions", n_seq, max_ctx);
    }
    *out = s;
    return SB_OK;
}

void sb_session_free(sb_session *s) {
    if (!s) return;
    sb_cuda_session_free(s->cuda);
    for (int l = 0; l < s->m->n_layer; l++) {
        if (s->k_cache) free(s->k_cache[l]);
        if (s->v_cache) free(s->v_cache[l]);
    }
    free(s->k_cache);
    free(s->v_cache);
    float *bufs[] = {s->x, s->h, s->o, s->res, s->q, s->att, s->k, s->v, s->gate, s->up, s->scores, s->rope_cos, s->rope_sin,
                     s->mm.scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(s);
}

void sb_session_reset(sb_session *s) {
    if (s->cuda) sb_cuda_session_reset(s->cuda);
    s->n_past = 0;
}

int sb_session_n_past(const sb_session *s) { return s->cuda ? sb_cuda_session_n_past(s->cuda) : s->n_past; }

int sb_session_truncate(sb_session *s, int n_past, sb_err *err) {
    if (s->cuda) return sb_cuda_session_truncate(s->cuda, n_past, err);
    if (n_past < 0 || n_past > s->n_past)
        return sb_err_set(err, SB_EINTERNAL, "cannot truncate a %d-position session to %d", s->n_past, n_past);
    s->n_past = n_past; /* later calls overwrite the cache from here */
    return SB_OK;
}

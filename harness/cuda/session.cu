/* session.cu - the forward pass of forward.c on the device.
 *
 * The same steps in the same order as the CPU pass (so parity tests can
 * compare them), on device buffers: R = n_seq * n_tok rows go through every
 * layer together; each linear is one cuBLAS product (or a qint / sparse kernel);
 * attention is the fused kernel of kernels.cu reading the KV cache, so a
 * full-sequence pass and one-token decoding are the same code. Logits are
 * produced a chunk of rows at a time and copied to the caller's host array,
 * so a positions x vocabulary matrix never sits on the device whole. */
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

enum { HEAD_CHUNK_BYTES = 64 << 20 };     /* logits on the device at a time */
enum { DECODE_TILE_BYTES = 64 << 20 };    /* decoded qint or sparse rows at a time */

struct sb_cuda_session {
    const sb_model *m;
    sb_cuda_model *dm;
    sb_cuda_ctx *c;
    int n_seq, max_ctx, max_tokens, n_past;
    int64_t qd, kvd_max, ff, max_cols;
    void **k_cache, **v_cache;    /* per layer: [n_seq][max_ctx][nkv*hd] in the layer's attention precision */
    int64_t *cache_bytes;         /* per layer, each of the two */
    /* scratch, R = n_seq * max_tokens rows */
    float *x, *h, *o, *res;       /* [R, d] (res: the stream through a SliceGPT shortcut) */
    float *q, *att;               /* [R, qd] */
    float *k, *v;                 /* [R, kvd] */
    float *gate, *up;             /* [R, ff] */
    float *logits;                /* [head_rows, V] */
    int64_t head_rows;
    int32_t *tokens;              /* [R] */
    gemm_scratch gs;
    int64_t half_bytes;
    float *host_rows;             /* [R, max_cols] host copy for the observer, or NULL */
    sb_linear_observer observer;
    void *observer_user;
    bool attention_capture;       /* an attention observer was set: refused here (forward.h's capture is CPU-only) */
};

/* ---- allocation ---- */

typedef struct buf_spec {
    void **p;
    int64_t bytes;
    const char *what;
} buf_spec;


static buf_spec buffers(sb_cuda_session *s, int i) {
    int64_t R = (int64_t)s->n_seq * s->max_tokens, d = s->m->d_model, f = sizeof(float);
    buf_spec all[] = {
        {(void **)&s->x, R * d * f, "residual stream"}, {(void **)&s->h, R * d * f, "normed rows"},
        {(void **)&s->o, R * d * f, "branch output"},   {(void **)&s->res, R * d * f, "shortcut output"},
        {(void **)&s->q, R * s->qd * f, "queries"},
        {(void **)&s->att, R * s->qd * f, "attention output"}, {(void **)&s->k, R * s->kvd_max * f, "new keys"},
        {(void **)&s->v, R * s->kvd_max * f, "new values"},    {(void **)&s->gate, R * s->ff * f, "MLP gate"},
        {(void **)&s->up, R * s->ff * f, "MLP up"},
        {(void **)&s->logits, s->head_rows * s->m->n_vocab * f, "logits chunk"},
        {(void **)&s->tokens, R * (int64_t)sizeof(int32_t), "tokens"},
        {&s->gs.half_x, s->half_bytes, "16-bit activations"},
        {(void **)&s->gs.tile, s->gs.tile_elems * f, "decode tile"},
        {(void **)&s->gs.lowrank_t, R * s->dm->max_rank * f, "low-rank scratch"},
    };
    enum { N = sizeof all / sizeof all[0] };
    if (i >= N) return (buf_spec){NULL, 0, NULL};
    return all[i];
}

static void free_session_buffers(sb_cuda_session *s) {
    for (int i = 0;; i++) {
        buf_spec b = buffers(s, i);
        if (!b.p) break;
        cuda_free(s->c, *b.p, (size_t)b.bytes);
        *b.p = NULL;
    }
    for (int l = 0; s->cache_bytes && l < s->m->n_layer; l++) {
        if (s->k_cache) cuda_free(s->c, s->k_cache[l], (size_t)s->cache_bytes[l]);
        if (s->v_cache) cuda_free(s->c, s->v_cache[l], (size_t)s->cache_bytes[l]);
    }
}

/* Widest q, kv, MLP and input rows over the blocks (sliced models differ per block). */
static void measure_shapes(sb_cuda_session *s) {
    const sb_model *m = s->m;
    s->max_cols = m->d_model;
    for (int l = 0; l < m->n_layer; l++) {
        const sb_block *b = &m->blocks[l];
        int64_t bq = (int64_t)b->n_head * b->head_dim, bkv = (int64_t)b->n_kv_head * b->head_dim;
        if (bq > s->qd) s->qd = bq;
        if (bkv > s->kvd_max) s->kvd_max = bkv;
        if (b->w_up.rows > s->ff) s->ff = b->w_up.rows;
    }
    if (s->qd > s->max_cols) s->max_cols = s->qd;
    if (s->ff > s->max_cols) s->max_cols = s->ff;
    int64_t R = (int64_t)s->n_seq * s->max_tokens;
    s->head_rows = HEAD_CHUNK_BYTES / ((int64_t)sizeof(float) * m->n_vocab);
    if (s->head_rows < 1) s->head_rows = 1;
    if (s->head_rows > R) s->head_rows = R;
    s->half_bytes = 2 * R * s->max_cols;
    int64_t tile = DECODE_TILE_BYTES / (int64_t)sizeof(float);
    if (tile < s->max_cols) tile = s->max_cols; /* at least one row of the widest layer */
    s->gs.tile_elems = s->dm->max_tile_elems == 0 ? 0 : tile < s->dm->max_tile_elems ? tile : s->dm->max_tile_elems;
    if (s->gs.tile_elems && s->gs.tile_elems < s->max_cols) s->gs.tile_elems = s->max_cols;
}

static int check_shapes(const sb_cuda_session *s, sb_err *err) {
    const sb_model *m = s->m;
    for (int l = 0; l < m->n_layer; l++) {
        const sb_block *b = &m->blocks[l];
        if (b->head_dim > ATTN_MAX_HEAD_DIM)
            return sb_err_set(err, SB_EINPUT, "block %d: head_dim %d; the CUDA attention kernel takes up to %d", l,
                              b->head_dim, ATTN_MAX_HEAD_DIM);
        if (b->n_kv_head < 1 || b->n_head % b->n_kv_head)
            return sb_err_set(err, SB_EINPUT, "block %d: %d heads do not share %d key-value heads evenly", l,
                              b->n_head, b->n_kv_head);
    }
    return SB_OK;
}

/* A model whose linears take 16-bit inputs gets attention on the tensor cores
 * in the same dtype; an f32 (or compressed) model keeps f32 attention, which
 * the 1e-4 parity with the CPU backend needs. The KV cache takes the same
 * dtype (kernels.cu). */
static int attention_precision(const dev_linear *wq) {
    return wq->kind == DW_BF16 ? ATTN_BF16 : wq->kind == DW_F16 ? ATTN_F16 : ATTN_F32;
}

extern "C" int sb_cuda_session_new(const sb_model *m, int n_seq, int max_ctx, int max_tokens, sb_cuda_session **out,
                                   sb_err *err) {
    *out = NULL;
    if (!m->device) return sb_err_set(err, SB_EINTERNAL, "CUDA session for a model that is not on a device");
    sb_cuda_session *s = (sb_cuda_session *)sb_calloc(err, 1, sizeof *s);
    if (!s) return SB_EINTERNAL;
    s->m = m;
    s->dm = m->device;
    s->c = s->dm->ctx;
    s->n_seq = n_seq;
    s->max_ctx = max_ctx;
    s->max_tokens = max_tokens;
    measure_shapes(s);
    int rc = check_shapes(s, err);
    if (!rc) rc = CUDA_OK(cudaSetDevice(s->c->device), err);
    if (!rc) {
        s->k_cache = (void **)sb_calloc(err, (size_t)m->n_layer, sizeof(void *));
        s->v_cache = (void **)sb_calloc(err, (size_t)m->n_layer, sizeof(void *));
        s->cache_bytes = (int64_t *)sb_calloc(err, (size_t)m->n_layer, sizeof(int64_t));
        if (!s->k_cache || !s->v_cache || !s->cache_bytes) rc = SB_EINTERNAL;
    }
    for (int l = 0; !rc && l < m->n_layer; l++) {
        int64_t elems = (int64_t)n_seq * max_ctx * m->blocks[l].n_kv_head * m->blocks[l].head_dim;
        s->cache_bytes[l] = elems * (int64_t)k_kv_element_bytes(attention_precision(&s->dm->blocks[l].wq));
        size_t bytes = (size_t)s->cache_bytes[l];
        rc = cuda_alloc(s->c, (void **)&s->k_cache[l], bytes, "the key cache", err);
        if (!rc) rc = cuda_alloc(s->c, (void **)&s->v_cache[l], bytes, "the value cache", err);
    }
    for (int i = 0; !rc; i++) {
        buf_spec b = buffers(s, i);
        if (!b.p) break;
        if (b.bytes > 0) rc = cuda_alloc(s->c, b.p, (size_t)b.bytes, b.what, err);
    }
    if (rc) {
        sb_cuda_session_free(s);
        return sb_err_prefix(err, "a CUDA session for %d x %d positions", n_seq, max_ctx);
    }
    *out = s;
    return SB_OK;
}

extern "C" void sb_cuda_session_free(sb_cuda_session *s) {
    if (!s) return;
    free_session_buffers(s);
    free(s->k_cache);
    free(s->v_cache);
    free(s->cache_bytes);
    free(s->host_rows);
    free(s);
}

extern "C" void sb_cuda_session_reset(sb_cuda_session *s) { s->n_past = 0; }
extern "C" int sb_cuda_session_n_past(const sb_cuda_session *s) { return s->n_past; }

extern "C" int sb_cuda_session_truncate(sb_cuda_session *s, int n_past, sb_err *err) {
    if (n_past < 0 || n_past > s->n_past)
        return sb_err_set(err, SB_EINTERNAL, "cannot truncate a %d-position session to %d", s->n_past, n_past);
    s->n_past = n_past;
    return SB_OK;
}

extern "C" void sb_cuda_session_set_observer(sb_cuda_session *s, sb_linear_observer fn, void *user) {
    s->observer = fn;
    s->observer_user = user;
}

/* ---- one block ---- */

/* A norm's divisor: the width, or a sliced stream's original width. */
static float norm_divisor(const dev_norm *n, int width) { return (float)(n->mean_width > 0 ? n->mean_width : width); }

static int norm(sb_cuda_session *s, const dev_norm *n, const float *in, float *out, int64_t rows, int width,
                int64_t stride, sb_err *err) {
    float div = norm_divisor(n, width);
    int rc = profile_mark(s->c, SB_CUDA_OP_NORM, err);
    return rc ? rc : k_norm(in, out, n->weight, n->bias, rows, width, stride, s->m->norm_type == SB_NORM_LAYER, s->m->norm_eps,
                  div, err);
}

/* The kind (DW_BF16 or DW_F16) of every product in ws when all of them are
 * dense 16-bit weights of one dtype reading rows `width` wide and no observer
 * wants the f32 rows; else DW_F32. Then whatever produces those rows may write
 * them in 16 bits alone (the same rounding the products would apply) and the
 * f32 copy is never written nor read. */
static dev_weight_kind half_only_input(const sb_cuda_session *s, int64_t width, const dev_linear *const *ws, int n) {
    if (s->observer || n < 1) return DW_F32;
    dev_weight_kind kind = ws[0]->kind;
    if (kind != DW_BF16 && kind != DW_F16) return DW_F32;
    for (int i = 0; i < n; i++)
        if (ws[i]->kind != kind || ws[i]->cols != width) return DW_F32;
    return kind;
}

/* Tells the product scratch that its 16-bit buffer holds the conversion of
 * x[R, width] (written there by a norm or the attention kernel). */
static void half_holds(sb_cuda_session *s, const float *x, int64_t n, dev_weight_kind kind) {
    s->gs.half_of = x;
    s->gs.half_n = n;
    s->gs.half_bf16 = kind == DW_BF16;
}

/* out = norm(in) over contiguous rows, or, when its readers are 16-bit
 * products (half: their kind, else DW_F32), straight into their 16-bit input
 * with out standing for it. */
static int norm_for(sb_cuda_session *s, const dev_norm *n, const float *in, float *out, int64_t rows, int width,
                    dev_weight_kind half, sb_err *err) {
    if (half == DW_F32) return norm(s, n, in, out, rows, width, width, err);
    float div = norm_divisor(n, width);
    int rc = profile_mark(s->c, SB_CUDA_OP_NORM, err);
    if (!rc)
        rc = k_norm_to_half(in, s->gs.half_x, half == DW_BF16, n->weight, n->bias, rows, width,
                            s->m->norm_type == SB_NORM_LAYER, s->m->norm_eps, div, err);
    if (!rc) half_holds(s, out, rows * width, half);
    return rc;
}

/* A block's linear, shown to the observer first (its input copied to the host). */
static int block_linear(sb_cuda_session *s, int layer, const dev_linear *dw, const sb_linear *w, const float *x,
                        int64_t R, float *y, bool same_input, sb_err *err) {
    if (s->observer) {
        size_t bytes = sizeof(float) * (size_t)(R * w->cols);
        int64_t max_rows = (int64_t)s->n_seq * s->max_tokens; /* the buffer serves every later call too */
        if (!s->host_rows && !(s->host_rows = (float *)sb_malloc(err, sizeof(float) * (size_t)(max_rows * s->max_cols))))
            return SB_EINTERNAL;
        int rc = CUDA_OK(cudaMemcpy(s->host_rows, x, bytes, cudaMemcpyDeviceToHost), err);
        if (rc) return rc;
        s->observer(s->observer_user, layer, w, s->host_rows, R);
    }
    int rc = profile_mark(s->c, SB_CUDA_OP_LINEAR, err);
    return rc ? rc : dev_linear_forward(s->c, dw, x, R, y, same_input, &s->gs, err);
}

/* A branch's last product: into its own output, or added straight into the
 * residual stream (in_place) when nothing comes between product and add. */
static int branch_out_linear(sb_cuda_session *s, int layer, const dev_linear *dw, const sb_linear *w, const float *x,
                             int64_t R, float *y, bool same_input, bool in_place, sb_err *err) {
    if (!in_place) return block_linear(s, layer, dw, w, x, R, y, same_input, err);
    if (s->observer) return sb_err_set(err, SB_EINTERNAL, "in-place branch product with an observer");
    int rc = profile_mark(s->c, SB_CUDA_OP_LINEAR, err);
    return rc ? rc : dev_linear_accumulate(s->c, dw, x, R, y, same_input, &s->gs, err);
}

/* Whether a branch may add its last product into the stream in place: a
 * dense weight, no norm after it, no SliceGPT shortcut before the add, and no
 * observer (which sees each product's input in the CPU backend's order). */
static bool adds_in_place(const sb_cuda_session *s, const dev_linear *last, const dev_norm *post,
                          const sb_linear *shortcut) {
    return !s->observer && dev_linear_is_dense(last) && !post->weight && !shortcut->fmt;
}

/* The call's keys and values (after rotary) into the layer's cache; profiled
 * with the rotary step before it (both "other"). */
static int store_kv(sb_cuda_session *s, const sb_block *b, int layer, int n_tok, sb_err *err) {
    int kvd = b->n_kv_head * b->head_dim;
    int precision = attention_precision(&s->dm->blocks[layer].wq);
    return k_store_kv(s->k, s->v, s->k_cache[layer], s->v_cache[layer], precision, s->n_seq, n_tok, s->n_past,
                      s->max_ctx, kvd, err);
}

/* out = attention(s->h), or out += it (in_place: out is the stream).
 * h_in_half: the norm wrote h as the products' 16-bit input only. */
static int attention_branch(sb_cuda_session *s, int layer, int n_tok, int64_t R, float *out, bool in_place,
                            bool h_in_half, sb_err *err) {
    const sb_model *m = s->m;
    const sb_block *b = &m->blocks[layer];
    const dev_block *db = &s->dm->blocks[layer];
    int hd = b->head_dim;
    int rc = block_linear(s, layer, &db->wq, &b->wq, s->h, R, s->q, h_in_half, err);
    if (!rc) rc = block_linear(s, layer, &db->wk, &b->wk, s->h, R, s->k, true, err);
    if (!rc) rc = block_linear(s, layer, &db->wv, &b->wv, s->h, R, s->v, true, err);
    if (!rc && db->q_norm.weight) rc = norm(s, &db->q_norm, s->q, s->q, R * b->n_head, hd, hd, err);
    if (!rc && db->k_norm.weight) rc = norm(s, &db->k_norm, s->k, s->k, R * b->n_kv_head, hd, hd, err);
    if (!rc) rc = profile_mark(s->c, SB_CUDA_OP_OTHER, err);
    if (!rc && m->positions != SB_POS_LEARNED) {
        bool pairs = m->positions == SB_ROPE_PAIRS;
        rc = k_rope(s->q, R, b->n_head, hd, m->rot_dim, pairs, db->rope_inv_freq, s->n_past, n_tok, err);
        if (!rc) rc = k_rope(s->k, R, b->n_kv_head, hd, m->rot_dim, pairs, db->rope_inv_freq, s->n_past, n_tok, err);
    }
    if (!rc) rc = store_kv(s, b, layer, n_tok, err);
    if (!rc) rc = profile_mark(s->c, SB_CUDA_OP_ATTENTION, err);
    int precision = attention_precision(&db->wq);
    attn_args a = {s->q, s->k_cache[layer], s->v_cache[layer], s->att, NULL, s->n_seq, n_tok, s->n_past, s->max_ctx,
                   b->n_head, b->n_kv_head, hd, b->sliding_window, m->attn_scale, m->attn_softcap,
                   m->bidirectional, precision, s->c->max_shared};
    /* the tensor-core kernel writes w_o's 16-bit input itself when w_o takes its dtype */
    const dev_linear *wo = &db->wo;
    dev_weight_kind att_half = half_only_input(s, (int64_t)b->n_head * hd, &wo, 1);
    bool att_in_half = k_attention_uses_mma(&a) && att_half == (precision == ATTN_BF16 ? DW_BF16 : DW_F16);
    if (att_in_half) a.out16 = s->gs.half_x;
    if (!rc) {
        if (k_attention_uses_mma(&a)) s->c->attention_mma_calls++;
        rc = k_attention(&a, err);
    }
    if (!rc && att_in_half) half_holds(s, s->att, R * wo->cols, att_half);
    if (!rc) rc = branch_out_linear(s, layer, wo, &b->wo, s->att, R, out, att_in_half, in_place, err);
    int d_mid = (int)b->wo.rows;
    if (!rc && db->post_attn_norm.weight) rc = norm(s, &db->post_attn_norm, out, out, R, d_mid, d_mid, err);
    return rc;
}

/* out = MLP(in) through the gate/up scratch, or out += it (in_place). */
static int mlp_branch(sb_cuda_session *s, int layer, const float *in, float *out, int64_t R, bool in_place,
                      bool in_half, sb_err *err) {
    const sb_model *m = s->m;
    const sb_block *b = &m->blocks[layer];
    const dev_block *db = &s->dm->blocks[layer];
    int rc = block_linear(s, layer, &db->w_up, &b->w_up, in, R, s->up, in_half, err);
    float *a = s->up;
    const float *mul = NULL;
    if (!rc && m->gated_mlp) {
        rc = block_linear(s, layer, &db->w_gate, &b->w_gate, in, R, s->gate, true, err);
        a = s->gate;
        mul = s->up;
    }
    /* a 16-bit w_down takes the activation straight in 16 bits (the same
     * rounding its product would apply); an observer wants the f32 rows */
    const dev_linear *down = &db->w_down;
    bool to_half = !s->observer && (down->kind == DW_BF16 || down->kind == DW_F16);
    int64_t n = R * b->w_up.rows;
    if (!rc) rc = profile_mark(s->c, SB_CUDA_OP_OTHER, err);
    if (!rc && to_half) {
        bool bf16 = down->kind == DW_BF16;
        rc = k_activate_to_half(a, mul, n, (int)m->act, s->gs.half_x, bf16, err);
        s->gs.half_of = rc ? NULL : a; /* what half_x now holds, for w_down's product */
        s->gs.half_n = n;
        s->gs.half_bf16 = bf16;
    } else if (!rc) {
        rc = k_activate(a, mul, n, (int)m->act, err);
    }
    if (!rc) rc = branch_out_linear(s, layer, down, &b->w_down, a, R, out, to_half, in_place, err);
    int d_out = (int)b->w_down.rows;
    if (!rc && db->post_mlp_norm.weight) rc = norm(s, &db->post_mlp_norm, out, out, R, d_out, d_out, err);
    return rc;
}

/* x = x·Sᵀ through a SliceGPT shortcut, when the block has one. */
static int through_shortcut(sb_cuda_session *s, int layer, const dev_linear *dsc, const sb_linear *sc, int64_t R,
                            sb_err *err) {
    if (!sc->fmt) return SB_OK;
    int rc = block_linear(s, layer, dsc, sc, s->x, R, s->res, false, err);
    if (!rc) rc = profile_mark(s->c, SB_CUDA_OP_OTHER, err);
    if (rc) return rc;
    return CUDA_OK(cudaMemcpyAsync(s->x, s->res, sizeof(float) * (size_t)(R * sc->rows), cudaMemcpyDeviceToDevice, 0),
                   err);
}

/* The stream enters d_in wide, is d_mid wide between the branches and leaves
 * w_down.rows wide (all d_model unless sliced), as in forward.c. */
static int run_block(sb_cuda_session *s, int layer, int n_tok, int64_t R, sb_err *err) {
    const sb_model *m = s->m;
    const sb_block *b = &m->blocks[layer];
    const dev_block *db = &s->dm->blocks[layer];
    int d_in = (int)sb_block_width_in(b), d_mid = (int)sb_block_width_mid(b);
    bool attn_in_place = adds_in_place(s, &db->wo, &db->post_attn_norm, &b->attn_shortcut);
    bool mlp_in_place = adds_in_place(s, &db->w_down, &db->post_mlp_norm, &b->mlp_shortcut);
    /* h in 16 bits alone, unless the parallel MLP reads it again after w_o's input replaced it */
    const dev_linear *qkv[] = {&db->wq, &db->wk, &db->wv};
    dev_weight_kind h_half = m->parallel_residual ? DW_F32 : half_only_input(s, d_in, qkv, 3);
    int rc = norm_for(s, &db->attn_norm, s->x, s->h, R, d_in, h_half, err);
    if (!rc)
        rc = attention_branch(s, layer, n_tok, R, attn_in_place ? s->x : s->o, attn_in_place, h_half != DW_F32, err);
    if (!rc) rc = through_shortcut(s, layer, &db->attn_shortcut, &b->attn_shortcut, R, err);
    if (!rc && !attn_in_place) rc = profile_mark(s->c, SB_CUDA_OP_OTHER, err);
    if (!rc && !attn_in_place) rc = k_add(s->x, s->o, R * d_mid, err);
    if (rc) return rc;
    if (m->parallel_residual) { /* the MLP reads h, normed before the attention add */
        rc = mlp_branch(s, layer, s->h, mlp_in_place ? s->x : s->o, R, mlp_in_place, false, err);
        if (!rc && !mlp_in_place) rc = profile_mark(s->c, SB_CUDA_OP_OTHER, err);
        if (!rc && !mlp_in_place) rc = k_add(s->x, s->o, R * d_mid, err);
        return rc;
    }
    const dev_linear *up_gate[] = {&db->w_up, &db->w_gate};
    dev_weight_kind mlp_half = half_only_input(s, d_mid, up_gate, m->gated_mlp ? 2 : 1);
    rc = norm_for(s, &db->mlp_norm, s->x, s->h, R, d_mid, mlp_half, err);
    if (!rc) rc = mlp_branch(s, layer, s->h, mlp_in_place ? s->x : s->o, R, mlp_in_place, mlp_half != DW_F32, err);
    if (!rc) rc = through_shortcut(s, layer, &db->mlp_shortcut, &b->mlp_shortcut, R, err);
    if (!rc && !mlp_in_place) rc = profile_mark(s->c, SB_CUDA_OP_OTHER, err);
    if (!rc && !mlp_in_place) rc = k_add(s->x, s->o, R * b->w_down.rows, err);
    return rc;
}

/* ---- embedding and head ---- */

static int embed(sb_cuda_session *s, const int32_t *tokens, int n_tok, sb_err *err) {
    const sb_model *m = s->m;
    int64_t R = (int64_t)s->n_seq * n_tok;
    for (int64_t r = 0; r < R; r++)
        if (tokens[r] < 0 || tokens[r] >= m->n_vocab)
            return sb_err_set(err, SB_EINPUT, "token id %d is outside the vocabulary [0, %d)", tokens[r], m->n_vocab);
    if (m->pos_embd && s->n_past + n_tok - 1 + m->pos_offset >= m->n_pos_rows)
        return sb_err_set(err, SB_EINPUT, "position %d is past the model's %d learned positions", s->n_past + n_tok - 1,
                          m->n_pos_rows - m->pos_offset);
    int rc = profile_mark(s->c, SB_CUDA_OP_OTHER, err);
    if (!rc) rc = CUDA_OK(cudaMemcpy(s->tokens, tokens, sizeof(int32_t) * (size_t)R, cudaMemcpyHostToDevice), err);
    if (rc) return rc;
    return k_embed(&s->dm->tok_embd, s->tokens, R, (int)sb_model_embed_width(m), m->embed_scale, s->dm->pos_embd,
                   m->pos_offset, s->n_past, n_tok, s->x, err);
}

/* logits[n_rows, V] of the head on normed rows h[n_rows, head.cols], a chunk at a time, to the host. */
static int head_rows(sb_cuda_session *s, const float *h, int64_t rows, float *logits, sb_err *err) {
    const sb_model *m = s->m;
    int64_t d = m->head.cols, V = m->n_vocab;
    int rc = SB_OK;
    for (int64_t r0 = 0; !rc && r0 < rows; r0 += s->head_rows) {
        int64_t n = rows - r0 < s->head_rows ? rows - r0 : s->head_rows;
        rc = profile_mark(s->c, SB_CUDA_OP_HEAD, err);
        if (!rc) rc = dev_linear_forward(s->c, &s->dm->head, h + r0 * d, n, s->logits, false, &s->gs, err);
        if (!rc && m->final_softcap > 0) rc = k_softcap(s->logits, n * V, m->final_softcap, err);
        if (!rc)
            rc = CUDA_OK(cudaMemcpy(logits + r0 * V, s->logits, sizeof(float) * (size_t)(n * V), cudaMemcpyDeviceToHost),
                         err);
    }
    return rc;
}

/* Final norm and head for the rows that want logits, a chunk of rows at a time. */
static int head(sb_cuda_session *s, int n_tok, int logits_from, float *logits, sb_err *err) {
    const sb_model *m = s->m;
    int n_out = n_tok - logits_from;
    int64_t d = m->head.cols; /* the last block's output width */
    int rc = SB_OK;
    /* gather the rows that want logits, so the final norm and the head run on them alone */
    for (int seq = 0; !rc && seq < s->n_seq; seq++)
        rc = norm(s, &s->dm->final_norm, s->x + ((int64_t)seq * n_tok + logits_from) * d, s->h + (int64_t)seq * n_out * d,
                  n_out, (int)d, d, err);
    return rc ? rc : head_rows(s, s->h, (int64_t)s->n_seq * n_out, logits, err);
}

static int check_call(const sb_cuda_session *s, int n_tok, sb_err *err) {
    if (s->attention_capture)
        return sb_err_set(err, SB_EINPUT, "attention capture (token reduction, analysis) runs on the CPU backend only");
    if (n_tok <= 0 || n_tok > s->max_tokens)
        return sb_err_set(err, SB_EINPUT, "%d tokens per sequence in one call; this session takes 1 to %d", n_tok,
                          s->max_tokens);
    if (s->n_past + n_tok > s->max_ctx)
        return sb_err_set(err, SB_EINPUT, "sequence would reach %d positions; the session holds %d",
                          s->n_past + n_tok, s->max_ctx);
    return CUDA_OK(cudaSetDevice(s->c->device), err);
}

/* Device time of a call, from events around it, into the context's total. */
static int timed_end(sb_cuda_session *s, sb_err *err) {
    float ms = 0;
    int rc = CUDA_OK(cudaEventRecord(s->c->ev_stop, 0), err);
    if (!rc) rc = CUDA_OK(cudaEventSynchronize(s->c->ev_stop), err);
    if (!rc) rc = CUDA_OK(cudaEventElapsedTime(&ms, s->c->ev_start, s->c->ev_stop), err);
    if (!rc) rc = profile_flush(s->c, err);
    if (!rc) {
        s->c->kernel_s += ms * 1e-3;
        s->c->forward_calls++;
    }
    return rc;
}

extern "C" int sb_cuda_session_forward(sb_cuda_session *s, const int32_t *tokens, int n_tok, int logits_from,
                                       float *logits, sb_err *err) {
    int rc = check_call(s, n_tok, err);
    if (rc) return rc;
    if (logits_from < 0 || logits_from > n_tok || (logits_from < n_tok && !logits))
        return sb_err_set(err, SB_EINTERNAL, "bad logits_from %d", logits_from);
    rc = CUDA_OK(cudaEventRecord(s->c->ev_start, 0), err);
    if (!rc) rc = embed(s, tokens, n_tok, err);
    int64_t R = (int64_t)s->n_seq * n_tok;
    for (int l = 0; !rc && l < s->m->n_layer; l++) rc = run_block(s, l, n_tok, R, err);
    if (!rc && logits_from < n_tok) rc = head(s, n_tok, logits_from, logits, err);
    if (!rc) rc = timed_end(s, err);
    if (rc) return rc;
    s->n_past += n_tok;
    return SB_OK;
}

extern "C" int sb_cuda_session_embed(sb_cuda_session *s, const int32_t *tokens, int n_tok, float *x_out, sb_err *err) {
    int rc = check_call(s, n_tok, err);
    if (!rc) rc = embed(s, tokens, n_tok, err);
    if (rc) return rc;
    size_t bytes = sizeof(float) * (size_t)((int64_t)s->n_seq * n_tok * sb_model_embed_width(s->m));
    return CUDA_OK(cudaMemcpy(x_out, s->x, bytes, cudaMemcpyDeviceToHost), err);
}

extern "C" int sb_cuda_session_forward_blocks(sb_cuda_session *s, const float *x_in, int n_tok, int layer0, int layer1,
                                              float *x_out, sb_err *err) {
    int64_t w_in, w_out;
    int rc = check_call(s, n_tok, err);
    if (!rc) rc = sb_model_block_range(s->m, layer0, layer1, &w_in, &w_out, err);
    if (rc) return rc;
    int64_t R = (int64_t)s->n_seq * n_tok;
    rc = CUDA_OK(cudaMemcpy(s->x, x_in, sizeof(float) * (size_t)(R * w_in), cudaMemcpyHostToDevice), err);
    for (int l = layer0; !rc && l < layer1; l++) rc = run_block(s, l, n_tok, R, err);
    if (!rc) rc = CUDA_OK(cudaMemcpy(x_out, s->x, sizeof(float) * (size_t)(R * w_out), cudaMemcpyDeviceToHost), err);
    return rc;
}

extern "C" int sb_cuda_session_logits(sb_cuda_session *s, const float *x, int64_t n_rows, float *logits, sb_err *err) {
    const sb_model *m = s->m;
    if (n_rows < 1 || n_rows > (int64_t)s->n_seq * s->max_tokens)
        return sb_err_set(err, SB_EINTERNAL, "%lld rows for the head; this session takes 1 to %lld", (long long)n_rows,
                          (long long)s->n_seq * s->max_tokens);
    int64_t d = m->head.cols;
    int rc = CUDA_OK(cudaSetDevice(s->c->device), err);
    if (!rc) rc = CUDA_OK(cudaMemcpy(s->x, x, sizeof(float) * (size_t)(n_rows * d), cudaMemcpyHostToDevice), err);
    if (!rc) rc = norm(s, &s->dm->final_norm, s->x, s->h, n_rows, (int)d, d, err);
    return rc ? rc : head_rows(s, s->h, n_rows, logits, err);
}

extern "C" void sb_cuda_session_set_attention_capture(sb_cuda_session *s, bool on) { s->attention_capture = on; }

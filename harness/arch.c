#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"

int sb_arch_alloc_blocks(sb_model *m, const sb_arch_shape *shape, sb_err *err) {
    if (m->n_layer < 1 || m->n_layer > 4096 || shape->n_head < 1 || shape->n_kv_head < 1 ||
        shape->n_head % shape->n_kv_head != 0 || shape->head_dim < 1 || shape->head_dim % 2 != 0 || shape->ff < 1 ||
        m->d_model < 1 || m->n_vocab < 1)
        return sb_err_set(err, SB_EINPUT,
                          "%s: impossible hyper-parameters (layers %d, heads %d, kv heads %d, head dim %d, d_model %d, "
                          "ff %d, vocabulary %d)",
                          m->path, m->n_layer, shape->n_head, shape->n_kv_head, shape->head_dim, m->d_model, shape->ff,
                          m->n_vocab);
    m->blocks = sb_calloc(err, (size_t)m->n_layer, sizeof *m->blocks);
    if (!m->blocks) return SB_EINTERNAL;
    for (int l = 0; l < m->n_layer; l++) {
        m->blocks[l].n_head = shape->n_head;
        m->blocks[l].n_kv_head = shape->n_kv_head;
        m->blocks[l].head_dim = shape->head_dim;
    }
    return SB_OK;
}

/* Formats a per-layer name pattern; returns NULL for an absent pattern. */
static const char *layer_name(char *buf, size_t n, const char *pattern, int layer) {
    if (!pattern) return NULL;
    snprintf(buf, n, pattern, layer);
    return buf;
}

static int take_norm(sb_tensor_store *st, const char *w, const char *b, int64_t n, float offset, bool required,
                     sb_norm *out, sb_err *err) {
    if (!w || (!required && !sb_store_has(st, w))) return SB_OK;
    int rc = sb_store_take_vector(st, w, n, offset, &out->weight, err);
    if (!rc && b && sb_store_has(st, b)) rc = sb_store_take_vector(st, b, n, 0, &out->bias, err);
    return rc;
}

static int take_linear(sb_tensor_store *st, const char *pw, const char *pb, int layer, int64_t rows, int64_t cols,
                       sb_linear *out, sb_err *err) {
    char w[256], b[256];
    if (!pw) return SB_OK;
    return sb_store_take_linear(st, layer_name(w, sizeof w, pw, layer), layer_name(b, sizeof b, pb, layer), rows, cols,
                                out, err);
}

static int build_block(sb_model *m, sb_tensor_store *st, const sb_arch_names *nm, const sb_arch_shape *sh, int l,
                       sb_err *err) {
    sb_block *b = &m->blocks[l];
    int64_t d = m->d_model, qd = (int64_t)b->n_head * b->head_dim, kvd = (int64_t)b->n_kv_head * b->head_dim;
    char w[256], bias[256];
    float off = sh->norm_offset;
    int rc = take_norm(st, layer_name(w, sizeof w, nm->attn_norm, l), layer_name(bias, sizeof bias, nm->attn_norm_bias, l),
                       d, off, true, &b->attn_norm, err);
    if (!rc && !m->parallel_residual)
        rc = take_norm(st, layer_name(w, sizeof w, nm->mlp_norm, l), layer_name(bias, sizeof bias, nm->mlp_norm_bias, l),
                       d, off, true, &b->mlp_norm, err);
    if (!rc) rc = take_norm(st, layer_name(w, sizeof w, nm->post_attn_norm, l), NULL, d, off, true, &b->post_attn_norm, err);
    if (!rc) rc = take_norm(st, layer_name(w, sizeof w, nm->post_mlp_norm, l), NULL, d, off, true, &b->post_mlp_norm, err);
    if (!rc) rc = take_norm(st, layer_name(w, sizeof w, nm->q_norm, l), NULL, b->head_dim, off, true, &b->q_norm, err);
    if (!rc) rc = take_norm(st, layer_name(w, sizeof w, nm->k_norm, l), NULL, b->head_dim, off, true, &b->k_norm, err);
    if (!rc) rc = take_linear(st, nm->wq, nm->bq, l, qd, d, &b->wq, err);
    if (!rc) rc = take_linear(st, nm->wk, nm->bk, l, kvd, d, &b->wk, err);
    if (!rc) rc = take_linear(st, nm->wv, nm->bv, l, kvd, d, &b->wv, err);
    if (!rc) rc = take_linear(st, nm->wo, nm->bo, l, d, qd, &b->wo, err);
    if (!rc && m->gated_mlp) rc = take_linear(st, nm->gate, NULL, l, sh->ff, d, &b->w_gate, err);
    if (!rc) rc = take_linear(st, nm->up, nm->up_bias, l, sh->ff, d, &b->w_up, err);
    if (!rc) rc = take_linear(st, nm->down, nm->down_bias, l, d, sh->ff, &b->w_down, err);
    return rc;
}

int sb_arch_build(sb_model *m, sb_tensor_store *st, const sb_arch_names *nm, const sb_arch_shape *sh, sb_err *err) {
    /* image models have no token embedding (their patch embedding is the adapter's) */
    int rc = nm->tok_embd ? sb_store_take_linear(st, nm->tok_embd, NULL, m->n_vocab, m->d_model, &m->tok_embd, err) : SB_OK;
    if (!rc && nm->pos_embd) {
        m->n_pos_rows = sh->pos_rows;
        rc = sb_store_take_matrix_f32(st, nm->pos_embd, sh->pos_rows, m->d_model, false, &m->pos_embd, err);
    }
    for (int l = 0; !rc && l < m->n_layer; l++) rc = build_block(m, st, nm, sh, l, err);
    if (!rc) rc = take_norm(st, nm->final_norm, nm->final_norm_bias, m->d_model, sh->norm_offset, true, &m->final_norm, err);
    if (rc) return rc;
    if (!m->tied_head) return sb_store_take_linear(st, nm->head, nm->head_bias, m->n_vocab, m->d_model, &m->head, err);
    /* Some tied checkpoints still store a copy of the head: it is the embedding. */
    if (nm->head) sb_store_mark_used(st, nm->head);
    m->head = m->tok_embd;
    m->head.owned = NULL; /* the embedding owns the payload */
    m->head.bias = NULL;
    return SB_OK;
}

int sb_arch_rope_tables(sb_model *m, double base, double local_base, double scale_global, const float *freq_factors,
                        sb_err *err) {
    if (m->positions == SB_POS_LEARNED) return SB_OK;
    int half = m->rot_dim / 2;
    if (half < 1 || m->rot_dim % 2) return sb_err_set(err, SB_EINPUT, "%s: bad rotary dimension %d", m->path, m->rot_dim);
    m->rope_tables = sb_malloc(err, sizeof(float) * 2 * (size_t)half);
    if (!m->rope_tables) return SB_EINTERNAL;
    float *global = m->rope_tables, *local = m->rope_tables + half;
    sb_rope_default_freqs(global, m->rot_dim, base);
    sb_rope_default_freqs(local, m->rot_dim, local_base > 0 ? local_base : base);
    for (int i = 0; i < half; i++) {
        if (scale_global > 0) global[i] = (float)(global[i] / scale_global);
        if (freq_factors) global[i] /= freq_factors[i];
    }
    for (int l = 0; l < m->n_layer; l++) {
        bool is_local = m->blocks[l].sliding_window > 0 && local_base > 0;
        m->blocks[l].rope_inv_freq = is_local ? local : global;
    }
    return SB_OK;
}

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "half.h"
#include "model_random.h"

/* xorshift64* : fast, deterministic for a given seed. */
static uint64_t next_u64(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* Uniform in [-a, a]. */
static float *random_floats(int64_t n, float a, uint64_t *state, sb_err *err) {
    float *p = sb_malloc(err, sizeof(float) * (size_t)n);
    if (!p) return NULL;
    for (int64_t i = 0; i < n; i++) p[i] = a * (float)((double)(next_u64(state) >> 11) / 4503599627370496.0 - 1.0);
    return p;
}

static int random_linear(int64_t rows, int64_t cols, uint64_t *state, sb_linear *out, sb_err *err) {
    float *w = random_floats(rows * cols, (float)(1.0 / sqrt((double)cols)), state, err);
    if (!w) return SB_EINTERNAL;
    *out = (sb_linear){.fmt = &sb_format_f32, .rows = rows, .cols = cols, .data = w, .owned = w};
    return SB_OK;
}

static int ones(int64_t n, float **out, sb_err *err) {
    *out = sb_malloc(err, sizeof(float) * (size_t)n);
    if (!*out) return SB_EINTERNAL;
    for (int64_t i = 0; i < n; i++) (*out)[i] = 1.0f;
    return SB_OK;
}

static int random_block(sb_model *m, sb_block *b, int ff, uint64_t *state, sb_err *err) {
    int64_t d = m->d_model, qd = (int64_t)b->n_head * b->head_dim, kvd = (int64_t)b->n_kv_head * b->head_dim;
    int rc = ones(d, &b->attn_norm.weight, err);
    if (!rc) rc = ones(d, &b->mlp_norm.weight, err);
    if (!rc) rc = random_linear(qd, d, state, &b->wq, err);
    if (!rc) rc = random_linear(kvd, d, state, &b->wk, err);
    if (!rc) rc = random_linear(kvd, d, state, &b->wv, err);
    if (!rc) rc = random_linear(d, qd, state, &b->wo, err);
    if (!rc) rc = random_linear(ff, d, state, &b->w_gate, err);
    if (!rc) rc = random_linear(ff, d, state, &b->w_up, err);
    if (!rc) rc = random_linear(d, ff, state, &b->w_down, err);
    return rc;
}

int sb_model_new_random(const sb_random_shape *shape, uint64_t seed, sb_model **out, sb_err *err) {
    sb_model *m = sb_calloc(err, 1, sizeof *m);
    if (!m) return SB_EINTERNAL;
    uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
    snprintf(m->arch, sizeof m->arch, "llama");
    snprintf(m->source, sizeof m->source, "random");
    m->path = strdup("(random weights)");
    m->n_vocab = shape->n_vocab;
    m->d_model = shape->d_model;
    m->n_layer = shape->n_layer;
    m->max_positions = shape->max_positions;
    m->norm_type = SB_NORM_RMS;
    m->norm_eps = 1e-5f;
    m->act = SB_ACT_SILU;
    m->gated_mlp = true;
    m->positions = SB_ROPE_HALVES;
    m->embed_scale = 1.0f;
    m->tied_head = shape->tied_head;
    sb_arch_shape sh = {.n_head = shape->n_head, .n_kv_head = shape->n_kv_head,
                        .head_dim = shape->n_head ? shape->d_model / shape->n_head : 0, .ff = shape->ff};
    m->rot_dim = sh.head_dim;
    m->attn_scale = (float)(1.0 / sqrt((double)(sh.head_dim > 0 ? sh.head_dim : 1)));
    int rc = m->path ? sb_arch_alloc_blocks(m, &sh, err) : sb_err_set(err, SB_EINTERNAL, "out of memory");
    if (!rc) rc = sb_arch_rope_tables(m, 10000, 0, 1, NULL, err);
    if (!rc) rc = random_linear(m->n_vocab, m->d_model, &state, &m->tok_embd, err);
    for (int l = 0; !rc && l < m->n_layer; l++) rc = random_block(m, &m->blocks[l], sh.ff, &state, err);
    if (!rc) rc = ones(m->d_model, &m->final_norm.weight, err);
    if (!rc && !m->tied_head) rc = random_linear(m->n_vocab, m->d_model, &state, &m->head, err);
    if (!rc && m->tied_head) {
        m->head = m->tok_embd;
        m->head.owned = NULL;
    }
    if (!rc) rc = sb_model_validate(m, err);
    if (rc) {
        sb_model_free(m);
        return rc;
    }
    *out = m;
    return SB_OK;
}

/* Replaces an f32 linear by its 16-bit rounding (owned). */
static int round_linear(sb_linear *w, bool bf16, sb_err *err) {
    if (!w->fmt || w->fmt != &sb_format_f32) return SB_OK;
    size_t n = (size_t)(w->rows * w->cols);
    uint16_t *h = sb_malloc(err, n * sizeof *h);
    if (!h) return SB_EINTERNAL;
    const float *src = w->data;
    for (size_t i = 0; i < n; i++) h[i] = bf16 ? sb_f32_to_bf16(src[i]) : sb_f32_to_f16(src[i]);
    sb_linear r = {bf16 ? &sb_format_bf16 : &sb_format_f16, w->rows, w->cols, h, h, w->bias, NULL};
    w->bias = NULL;
    sb_linear_free(w);
    *w = r;
    return SB_OK;
}

int sb_model_round_to_16bit(sb_model *m, bool bf16, sb_err *err) {
    int rc = SB_OK;
    for (int l = 0; !rc && l < m->n_layer; l++) {
        sb_block *b = &m->blocks[l];
        sb_linear *lins[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
        for (size_t i = 0; !rc && i < sizeof lins / sizeof lins[0]; i++) rc = round_linear(lins[i], bf16, err);
    }
    if (rc) return rc;
    bool tied = m->head.data == m->tok_embd.data;
    rc = round_linear(&m->tok_embd, bf16, err);
    if (!rc && tied) { /* the head shares the new table and owns nothing */
        m->head.fmt = m->tok_embd.fmt;
        m->head.data = m->tok_embd.data;
    } else if (!rc) {
        rc = round_linear(&m->head, bf16, err);
    }
    return rc;
}

#include <stdlib.h>
#include <string.h>

#include "format_lowrank.h"
#include "model_snapshot.h"

/* A small array (norm weight, bias) and a copy of its values. */
typedef struct {
    float *ptr;
    float *copy;
    int64_t n;
} saved_array;

struct sb_model_snapshot {
    sb_model model;          /* the struct as it was */
    sb_block *blocks;        /* copies of the block structs */
    sb_model reference;      /* the model as it was, read-only: its blocks are the copies above */
    void **owned;            /* every pointer the model owned, to tell new allocations apart */
    size_t n_owned, cap_owned;
    saved_array *arrays;
    size_t n_arrays, cap_arrays;
};

static int push_owned(sb_model_snapshot *s, void *p, sb_err *err) {
    if (!p) return SB_OK;
    if (s->n_owned == s->cap_owned) {
        size_t cap = s->cap_owned ? 2 * s->cap_owned : 256;
        void **bigger = realloc(s->owned, cap * sizeof *bigger);
        if (!bigger) return sb_err_set(err, SB_EINTERNAL, "out of memory (model snapshot)");
        s->owned = bigger;
        s->cap_owned = cap;
    }
    s->owned[s->n_owned++] = p;
    return SB_OK;
}

static int save_array(sb_model_snapshot *s, float *p, int64_t n, sb_err *err) {
    if (!p) return SB_OK;
    if (s->n_arrays == s->cap_arrays) {
        size_t cap = s->cap_arrays ? 2 * s->cap_arrays : 256;
        saved_array *bigger = realloc(s->arrays, cap * sizeof *bigger);
        if (!bigger) return sb_err_set(err, SB_EINTERNAL, "out of memory (model snapshot)");
        s->arrays = bigger;
        s->cap_arrays = cap;
    }
    float *copy = sb_malloc(err, sizeof(float) * (size_t)n);
    if (!copy) return SB_EINTERNAL;
    memcpy(copy, p, sizeof(float) * (size_t)n);
    s->arrays[s->n_arrays++] = (saved_array){p, copy, n};
    return push_owned(s, p, err);
}

static int save_norm(sb_model_snapshot *s, const sb_norm *n, int64_t width, sb_err *err) {
    int rc = save_array(s, n->weight, width, err);
    return rc ? rc : save_array(s, n->bias, width, err);
}

static int save_linear(sb_model_snapshot *s, const sb_linear *w, sb_err *err) {
    int rc = push_owned(s, w->owned, err);
    return rc ? rc : save_array(s, w->bias, w->rows, err);
}

static int save_block(sb_model_snapshot *s, const sb_model *m, const sb_block *b, sb_err *err) {
    const sb_linear *lins[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down, &b->attn_shortcut, &b->mlp_shortcut};
    int64_t mid = sb_block_width_mid(b), out = sb_block_width_out(b, m->parallel_residual);
    int rc = save_norm(s, &b->attn_norm, sb_block_width_in(b), err);
    if (!rc) rc = save_norm(s, &b->mlp_norm, mid, err);
    if (!rc) rc = save_norm(s, &b->post_attn_norm, mid, err);
    if (!rc) rc = save_norm(s, &b->post_mlp_norm, out, err);
    if (!rc) rc = save_norm(s, &b->q_norm, b->head_dim, err);
    if (!rc) rc = save_norm(s, &b->k_norm, b->head_dim, err);
    for (size_t i = 0; !rc && i < sizeof lins / sizeof lins[0]; i++) rc = save_linear(s, lins[i], err);
    return rc;
}

int sb_model_snapshot_take(const sb_model *m, sb_model_snapshot **out, sb_err *err) {
    sb_model_snapshot *s = sb_calloc(err, 1, sizeof *s);
    if (!s) return SB_EINTERNAL;
    s->model = *m;
    s->blocks = sb_malloc(err, sizeof(sb_block) * (size_t)m->n_layer);
    int rc = s->blocks ? SB_OK : SB_EINTERNAL;
    if (!rc) memcpy(s->blocks, m->blocks, sizeof(sb_block) * (size_t)m->n_layer);
    if (!rc) rc = push_owned(s, m->blocks, err);
    for (int l = 0; !rc && l < m->n_layer; l++) rc = save_block(s, m, &m->blocks[l], err);
    if (!rc) rc = save_linear(s, &m->tok_embd, err);
    if (!rc && !m->tied_head) rc = save_linear(s, &m->head, err);
    if (!rc) rc = save_norm(s, &m->final_norm, m->head.cols, err);
    if (!rc) rc = push_owned(s, m->pos_embd, err);
    if (!rc) rc = push_owned(s, m->rope_tables, err);
    if (!rc) rc = push_owned(s, m->reducer, err);
    if (rc) {
        sb_model_snapshot_free(s);
        return rc;
    }
    /* The saved block structs still point at the original payloads and
     * small arrays, which methods never write: a consistent view of the
     * model as loaded, for methods that compare with it (LoRC, EoRA). */
    s->reference = s->model;
    s->reference.blocks = s->blocks;
    *out = s;
    return SB_OK;
}

static bool was_owned(const sb_model_snapshot *s, const void *p) {
    for (size_t i = 0; i < s->n_owned; i++)
        if (s->owned[i] == p) return true;
    return false;
}

/* True, and p recorded as freed, when p is the restore's to free: not
 * owned by the snapshot and not freed already (payloads can be shared). */
static bool claim_new(const sb_model_snapshot *s, void *p, void **freed, size_t *n_freed) {
    if (!p || was_owned(s, p)) return false;
    for (size_t i = 0; i < *n_freed; i++)
        if (freed[i] == p) return false;
    freed[(*n_freed)++] = p;
    return true;
}

/* Frees p (with the linear's own release function when it has one) if the
 * snapshot did not own it and it was not freed already. */
static void free_new_with(const sb_model_snapshot *s, void *p, void (*release)(void *), void **freed, size_t *n_freed) {
    if (!claim_new(s, p, freed, n_freed)) return;
    if (release) release(p);
    else free(p);
}

static void free_new(const sb_model_snapshot *s, void *p, void **freed, size_t *n_freed) {
    free_new_with(s, p, NULL, freed, n_freed);
}

/* A low-rank add-on wraps a linear that may be older than it (the model's
 * original payload, or an earlier step's that an intermediate snapshot
 * owns): free the add-on, and what it wraps only if that is new too. */
static void free_new_linear(const sb_model_snapshot *s, const sb_linear *w, void **freed, size_t *n_freed) {
    const sb_linear *inner = sb_lowrank_inner(w);
    if (inner) {
        if (claim_new(s, w->owned, freed, n_freed)) {
            free_new_linear(s, inner, freed, n_freed);
            sb_lowrank_free_addon(w->owned);
        }
    } else {
        free_new_with(s, w->owned, w->free_owned, freed, n_freed);
    }
    free_new(s, w->bias, freed, n_freed);
}

/* Room for every pointer a restore may free: per block 6 norms x 2 arrays
 * and 9 linears x (payload, bias, wrapped payloads of add-on chains). */
static size_t pointers_in(const sb_model *m) { return (size_t)m->n_layer * 64 + 64; }

void sb_model_snapshot_restore(sb_model *m, const sb_model_snapshot *s) {
    void **freed = malloc(sizeof(void *) * pointers_in(m));
    size_t n_freed = 0;
    if (freed) { /* without the list a failure here only leaks */
        for (int l = 0; l < m->n_layer; l++) {
            sb_block *b = &m->blocks[l];
            sb_norm *norms[] = {&b->attn_norm, &b->mlp_norm, &b->post_attn_norm, &b->post_mlp_norm, &b->q_norm, &b->k_norm};
            sb_linear *lins[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down, &b->attn_shortcut, &b->mlp_shortcut};
            for (size_t i = 0; i < sizeof norms / sizeof norms[0]; i++) {
                free_new(s, norms[i]->weight, freed, &n_freed);
                free_new(s, norms[i]->bias, freed, &n_freed);
            }
            for (size_t i = 0; i < sizeof lins / sizeof lins[0]; i++) free_new_linear(s, lins[i], freed, &n_freed);
        }
        sb_linear *ends[] = {&m->tok_embd, &m->head};
        for (size_t i = 0; i < 2; i++) free_new_linear(s, ends[i], freed, &n_freed);
        free_new(s, m->final_norm.weight, freed, &n_freed);
        free_new(s, m->final_norm.bias, freed, &n_freed);
        free_new(s, m->pos_embd, freed, &n_freed);
        free_new(s, m->rope_tables, freed, &n_freed);
        free_new(s, m->blocks, freed, &n_freed);
        free_new(s, m->reducer, freed, &n_freed); /* a token reducer is one malloc'd block */
        free(freed);
    }
    *m = s->model;
    memcpy(m->blocks, s->blocks, sizeof(sb_block) * (size_t)m->n_layer);
    for (size_t i = 0; i < s->n_arrays; i++)
        memcpy(s->arrays[i].ptr, s->arrays[i].copy, sizeof(float) * (size_t)s->arrays[i].n);
}

const sb_model *sb_model_snapshot_reference(const sb_model_snapshot *s) { return &s->reference; }

void sb_model_snapshot_free(sb_model_snapshot *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n_arrays; i++) free(s->arrays[i].copy);
    free(s->arrays);
    free(s->owned);
    free(s->blocks);
    free(s);
}

/* loader_gguf.c - GGUF files written by llama.cpp's converters.
 *
 * Hyper-parameters come from "<arch>.*" metadata, tensors from the ggml
 * names (blk.N.attn_q.weight, ...).  llama.cpp's converter permutes the q
 * and k rows of llama-architecture models so that rotary pairs are
 * consecutive dimensions (SB_ROPE_PAIRS); qwen2 and gemma3 files keep the
 * Hugging Face order (SB_ROPE_HALVES).  Quantized tensors are decoded to
 * f32 at load for now. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "gguf.h"
#include "tokenizer.h"

typedef struct {
    sb_gguf *g;
    sb_tensor_store *st;
    sb_model *m;
    const char *arch;
    sb_err *err;
} gguf_ctx;

static int arch_i64(gguf_ctx *x, const char *key, bool optional, int64_t dflt, int *out) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", x->arch, key);
    int64_t v = dflt;
    int rc = sb_gguf_get_i64(x->g, full, optional, &v, x->err);
    if (rc) return rc;
    if (v < 0 || v > (1 << 30))
        return sb_err_set(x->err, SB_EINPUT, "%s: metadata '%s' = %lld is impossible", x->g->file.path, full, (long long)v);
    *out = (int)v;
    return SB_OK;
}

static int arch_f64(gguf_ctx *x, const char *key, bool optional, double dflt, double *out) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", x->arch, key);
    *out = dflt;
    return sb_gguf_get_f64(x->g, full, optional, out, x->err);
}

/* Tensors into the store, shapes reversed to outermost-first. */
static int fill_store(gguf_ctx *x) {
    for (uint64_t i = 0; i < x->g->n_tensors; i++) {
        const sb_gguf_tensor *t = &x->g->tensors[i];
        sb_tensor_ref r = {.type = t->type, .n_dims = (int)t->n_dims, .data = t->data, .n_bytes = t->n_bytes,
                           .file = x->g->file.path};
        for (uint32_t d = 0; d < t->n_dims; d++) r.shape[d] = (int64_t)t->ne[t->n_dims - 1 - d];
        r.name = strdup(t->name);
        if (!r.name) return sb_err_set(x->err, SB_EINTERNAL, "out of memory");
        int rc = sb_store_add(x->st, &r, x->err);
        if (rc) {
            free(r.name);
            return rc;
        }
    }
    return SB_OK;
}

/* Shared hyper-parameters of the rotary, RMS-normed, gated architectures. */
static int read_common(gguf_ctx *x, sb_arch_shape *sh) {
    sb_model *m = x->m;
    double eps;
    int rc = arch_i64(x, "embedding_length", false, 0, &m->d_model);
    if (!rc) rc = arch_i64(x, "block_count", false, 0, &m->n_layer);
    if (!rc) rc = arch_i64(x, "feed_forward_length", false, 0, &sh->ff);
    if (!rc) rc = arch_i64(x, "attention.head_count", false, 0, &sh->n_head);
    if (!rc) rc = arch_i64(x, "attention.head_count_kv", true, sh->n_head, &sh->n_kv_head);
    if (!rc) rc = arch_i64(x, "attention.key_length", true, sh->n_head ? m->d_model / sh->n_head : 0, &sh->head_dim);
    if (!rc) rc = arch_i64(x, "rope.dimension_count", true, sh->head_dim, &m->rot_dim);
    if (!rc) rc = arch_i64(x, "context_length", true, 2048, &m->max_positions);
    if (!rc) rc = arch_f64(x, "attention.layer_norm_rms_epsilon", false, 1e-6, &eps);
    if (rc) return rc;
    /* vocabulary: the metadata key when present, else the embedding's rows */
    const sb_tensor_ref *emb = sb_store_find(x->st, "token_embd.weight");
    if (!emb || emb->n_dims != 2) return sb_err_set(x->err, SB_EINPUT, "%s: missing tensor 'token_embd.weight'", x->g->file.path);
    if ((rc = arch_i64(x, "vocab_size", true, (int)emb->shape[0], &m->n_vocab))) return rc;
    if ((rc = sb_arch_alloc_blocks(m, sh, x->err))) return rc;
    m->norm_type = SB_NORM_RMS;
    m->norm_eps = (float)eps;
    m->gated_mlp = true;
    m->act = SB_ACT_SILU;
    m->attn_scale = (float)(1.0 / sqrt((double)sh->head_dim));
    m->tied_head = !sb_store_has(x->st, "output.weight");
    return SB_OK;
}

static const sb_arch_names llama_names = {
    .tok_embd = "token_embd.weight", .final_norm = "output_norm.weight", .head = "output.weight",
    .attn_norm = "blk.%d.attn_norm.weight", .mlp_norm = "blk.%d.ffn_norm.weight",
    .wq = "blk.%d.attn_q.weight", .bq = "blk.%d.attn_q.bias", .wk = "blk.%d.attn_k.weight", .bk = "blk.%d.attn_k.bias",
    .wv = "blk.%d.attn_v.weight", .bv = "blk.%d.attn_v.bias", .wo = "blk.%d.attn_output.weight",
    .bo = "blk.%d.attn_output.bias", .gate = "blk.%d.ffn_gate.weight", .up = "blk.%d.ffn_up.weight",
    .down = "blk.%d.ffn_down.weight",
};

/* llama.cpp's rope_freqs tensor (Llama 3 scaling) divides each frequency. */
static int rope_freq_factors(gguf_ctx *x, float **out) {
    *out = NULL;
    if (!sb_store_has(x->st, "rope_freqs.weight")) return SB_OK;
    return sb_store_take_vector(x->st, "rope_freqs.weight", x->m->rot_dim / 2, 0, out, x->err);
}

static int linear_scale(gguf_ctx *x, double *scale) {
    double factor;
    int rc = arch_f64(x, "rope.scaling.factor", true, 0, &factor);
    *scale = factor > 0 ? factor : 1;
    return rc;
}

static int gguf_llama_like(gguf_ctx *x, sb_positions layout) {
    sb_model *m = x->m;
    sb_arch_shape sh = {0};
    double base, scale;
    int window;
    float *factors = NULL;
    int rc = read_common(x, &sh);
    if (!rc) rc = arch_f64(x, "rope.freq_base", true, 10000, &base);
    if (!rc) rc = linear_scale(x, &scale);
    if (!rc) rc = arch_i64(x, "attention.sliding_window", true, 0, &window);
    if (!rc) rc = rope_freq_factors(x, &factors);
    if (rc) return rc;
    m->positions = layout;
    for (int l = 0; l < m->n_layer; l++) m->blocks[l].sliding_window = window;
    rc = sb_arch_rope_tables(m, base, 0, scale, factors, x->err);
    free(factors);
    return rc ? rc : sb_arch_build(m, x->st, &llama_names, &sh, x->err);
}

static int gguf_llama(gguf_ctx *x) { return gguf_llama_like(x, SB_ROPE_PAIRS); }
static int gguf_qwen2(gguf_ctx *x) { return gguf_llama_like(x, SB_ROPE_HALVES); }

static const sb_arch_names gemma3_names = {
    .tok_embd = "token_embd.weight", .final_norm = "output_norm.weight", .head = "output.weight",
    .attn_norm = "blk.%d.attn_norm.weight", .post_attn_norm = "blk.%d.post_attention_norm.weight",
    .mlp_norm = "blk.%d.ffn_norm.weight", .post_mlp_norm = "blk.%d.post_ffw_norm.weight",
    .q_norm = "blk.%d.attn_q_norm.weight", .k_norm = "blk.%d.attn_k_norm.weight",
    .wq = "blk.%d.attn_q.weight", .wk = "blk.%d.attn_k.weight", .wv = "blk.%d.attn_v.weight",
    .wo = "blk.%d.attn_output.weight", .gate = "blk.%d.ffn_gate.weight", .up = "blk.%d.ffn_up.weight",
    .down = "blk.%d.ffn_down.weight",
};

/* Gemma 3: the converter already added 1 to the norm weights. As in
 * llama.cpp, every 6th layer is global (rope base from the file, linear
 * scaling) and the others slide with rope base 10000. */
static int gguf_gemma3(gguf_ctx *x) {
    sb_model *m = x->m;
    sb_arch_shape sh = {0};
    double base, scale;
    int window;
    int rc = read_common(x, &sh);
    if (!rc) rc = arch_f64(x, "rope.freq_base", true, 1e6, &base);
    if (!rc) rc = linear_scale(x, &scale);
    if (!rc) rc = arch_i64(x, "attention.sliding_window", true, 4096, &window);
    if (rc) return rc;
    m->positions = SB_ROPE_HALVES;
    m->act = SB_ACT_GELU_TANH;
    m->embed_scale = (float)sqrt((double)m->d_model);
    for (int l = 0; l < m->n_layer; l++) m->blocks[l].sliding_window = (l + 1) % 6 ? window : 0;
    rc = sb_arch_rope_tables(m, base, 10000, scale, NULL, x->err);
    return rc ? rc : sb_arch_build(m, x->st, &gemma3_names, &sh, x->err);
}

typedef struct {
    const char *name;
    int (*build)(gguf_ctx *x);
} gguf_adapter;

static const gguf_adapter adapters[] = {
    {"llama", gguf_llama}, {"qwen2", gguf_qwen2}, {"gemma3", gguf_gemma3},
};

int sb_load_gguf(const char *path, sb_model *m, sb_err *err) {
    sb_gguf g;
    int rc = sb_gguf_open(&g, path, err);
    if (rc) return rc;
    char *arch = NULL;
    const gguf_adapter *ad = NULL;
    rc = sb_gguf_get_str(&g, "general.architecture", false, &arch, err);
    for (size_t i = 0; !rc && i < sizeof adapters / sizeof adapters[0]; i++)
        if (strcmp(arch, adapters[i].name) == 0) ad = &adapters[i];
    if (!rc && !ad) rc = sb_err_set(err, SB_EINPUT, "%s: GGUF architecture '%s' is not supported", path, arch);
    if (!rc && g.n_tensors == 0) rc = sb_err_set(err, SB_EINPUT, "%s: no tensors (a vocabulary-only file?)", path);
    sb_tensor_store st = {.what = path};
    gguf_ctx x = {&g, &st, m, arch, err};
    if (!rc) {
        snprintf(m->arch, sizeof m->arch, "%s", ad->name);
        snprintf(m->source, sizeof m->source, "gguf");
        rc = fill_store(&x);
    }
    if (!rc) rc = ad->build(&x);
    if (!rc) rc = sb_store_check_all_used(&st, m->arch, NULL, err);
    if (!rc && sb_gguf_find(&g, "tokenizer.ggml.model")) rc = sb_tokenizer_load_gguf(&g, &m->tokenizer, err);
    if (!rc) rc = sb_store_keep_file(&st, &g.file, err); /* the weights point into the mapping */
    if (!rc) sb_store_give_files(&st, &m->files, &m->n_files);
    sb_store_free(&st);
    free(arch);
    sb_gguf_close(&g);
    return rc;
}

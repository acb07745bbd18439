/* arch.h - what architecture adapters share: building the IR's blocks
 * from a tensor store given the tensor names of one checkpoint layout.
 *
 * An adapter (loader_hf.c, loader_gguf.c) reads hyper-parameters into
 * sb_model, fills sb_arch_names with printf patterns ("%d" = layer index;
 * NULL = the architecture has no such tensor) and calls sb_arch_build. */
#ifndef SB_ARCH_H
#define SB_ARCH_H

#include "model.h"
#include "tensor_store.h"

typedef struct sb_arch_names {
    const char *tok_embd, *pos_embd, *final_norm, *final_norm_bias, *head, *head_bias;
    /* per layer */
    const char *attn_norm, *attn_norm_bias, *mlp_norm, *mlp_norm_bias;
    const char *post_attn_norm, *post_mlp_norm, *q_norm, *k_norm;
    const char *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo;
    const char *gate, *up, *up_bias, *down, *down_bias;
} sb_arch_names;

typedef struct sb_arch_shape {
    int n_head, n_kv_head, head_dim, ff;
    float norm_offset;     /* added to every norm weight (Gemma: 1) */
    int pos_rows;          /* rows of the learned position table, if any */
} sb_arch_shape;

/* Allocates m->blocks and sets every block's head counts and dims. */
int sb_arch_alloc_blocks(sb_model *m, const sb_arch_shape *shape, sb_err *err);

/* Takes every tensor named in `names` from the store (biases optional,
 * weights required); the head shares the embedding when m->tied_head.
 * m's hyper-parameters must be set. */
int sb_arch_build(sb_model *m, sb_tensor_store *st, const sb_arch_names *names, const sb_arch_shape *shape,
                  sb_err *err);

/* Builds the per-layer rotary frequency tables: layers with a sliding
 * window use local_base (when > 0), the others base; scale_global divides
 * the global layers' frequencies (linear scaling); freq_factors, if
 * non-NULL, divides each frequency (llama.cpp's rope_freqs tensor). */
int sb_arch_rope_tables(sb_model *m, double base, double local_base, double scale_global, const float *freq_factors,
                        sb_err *err);

#endif

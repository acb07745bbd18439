/* model.h - the architecture-neutral transformer (the model IR).
 *
 * Every decoder-only architecture slimbench loads is translated into this
 * one structure by an adapter (arch_*.c); the forward pass (forward.c) is
 * written once against it.  Shapes: d = d_model, hd = head_dim,
 * nh / nkv = query / key-value heads, ff = MLP width, V = vocabulary. */
#ifndef SB_MODEL_H
#define SB_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "mapped_file.h"
#include "weight_format.h"

struct sb_tokenizer;
struct sb_vision;        /* vision.h: patch embedding, class tokens, labels, preprocessing */
struct sb_token_reducer; /* vision.h: drops tokens between blocks (token-reduction methods) */

typedef enum { SB_NORM_RMS, SB_NORM_LAYER } sb_norm_type;
typedef enum { SB_ACT_SILU, SB_ACT_GELU, SB_ACT_GELU_TANH, SB_ACT_RELU } sb_activation;

/* Residual-stream widths.  A block's stream may narrow (SliceGPT): it
 * enters with d_in = wq.cols values, is d_mid = wo.rows wide between
 * attention and MLP, and leaves with d_out = w_down.rows (parallel wiring:
 * d_out = wo.rows = w_down.rows).  Where the width or the basis changes,
 * the residual passes through a shortcut matrix: x·Sᵀ with S an ordinary
 * linear [new width, old width].  Unsliced models have d_in = d_mid =
 * d_out = d_model and no shortcuts. */

/* Rotary layout: which two dimensions of a head form a rotated pair.
 * Hugging Face checkpoints pair dimension i with i + rot/2 ("halves");
 * llama.cpp's GGUF llama files permute q/k rows so pairs are (2i, 2i+1). */
typedef enum { SB_POS_LEARNED, SB_ROPE_HALVES, SB_ROPE_PAIRS } sb_positions;

typedef struct sb_norm {
    float *weight;   /* [n] or NULL when the norm is absent; any "1 + w" offset already applied */
    float *bias;     /* [n] or NULL (LayerNorm only) */
    int mean_width;  /* divisor of the mean and of Σx²; 0: the n values normalised. A sliced
                        stream (SliceGPT) keeps the original width here, so its RMSNorm
                        still computes sqrt(Σx² / D) over the fewer dimensions it has */
} sb_norm;

typedef struct sb_block {
    int n_head, n_kv_head, head_dim;   /* per block, so sliced models can differ */
    int sliding_window;                /* 0: full causal attention; else keys within this many positions, self included */
    const float *rope_inv_freq;        /* [rot_dim/2]: points into sb_model's tables */
    sb_norm attn_norm;                 /* before attention (and before the MLP, in parallel wiring) */
    sb_norm mlp_norm;                  /* before the MLP (sequential wiring) */
    sb_norm post_attn_norm;            /* Gemma's norms on each branch's output; weight NULL if absent */
    sb_norm post_mlp_norm;
    sb_norm q_norm, k_norm;            /* RMS norms over each head's hd dims (Gemma 3); weight NULL if absent */
    sb_linear wq, wk, wv, wo;          /* [nh*hd, d], [nkv*hd, d], [nkv*hd, d], [d, nh*hd] */
    sb_linear w_gate, w_up, w_down;    /* gate absent for plain MLPs; up [ff, d], down [d, ff] */
    sb_linear attn_shortcut;           /* [d_mid, d_in] on the residual around attention (parallel: [d_out, d_in]); fmt NULL: identity */
    sb_linear mlp_shortcut;            /* [d_out, d_mid] on the residual around the MLP; fmt NULL: identity */
} sb_block;

typedef struct sb_model {
    char arch[32];                     /* adapter that built it: llama, qwen2, opt, gpt2, phi, gemma3 */
    char source[16];                   /* "hf" or "gguf" */
    char *path;
    int n_vocab, d_model, n_layer, max_positions;
    sb_norm_type norm_type;
    float norm_eps;
    sb_activation act;
    bool gated_mlp;                    /* act(gate) * up; else act(up) */
    bool parallel_residual;            /* x + attn(n(x)) + mlp(n(x)) */
    sb_positions positions;
    int rot_dim;                       /* rotated dims per head (<= head_dim; partial rotary) */
    float attn_scale;                  /* multiplies q·k */
    float embed_scale;                 /* multiplies the token embedding (Gemma: sqrt(d)) */
    float attn_softcap, final_softcap; /* tanh soft-capping of scores / logits; 0 = off */
    bool bidirectional;                /* every token attends to every token (encoders: ViT); false = causal */

    sb_linear tok_embd;                /* [V, d_embd]; a row is decoded per token; d_embd = d_model unless sliced */
    float *pos_embd;                   /* learned positions [n_pos_rows, d_embd], or NULL */
    int n_pos_rows, pos_offset;        /* OPT looks up row position + 2 */
    sb_block *blocks;
    sb_norm final_norm;
    sb_linear head;                    /* [V, d_head] (d_head = the last block's d_out); tied: shares tok_embd's payload, owns nothing */
    bool tied_head;

    float *rope_tables;                /* owned storage the blocks' rope_inv_freq point into */
    sb_mapped_file *files;             /* mappings the weights point into */
    int n_files;
    struct sb_tokenizer *tokenizer;    /* NULL when the checkpoint carries none */
    /* Image models (ViT, DeiT): tok_embd is absent and the vision struct
     * holds the patch embedding; head is the classifier [n_labels, d]. */
    struct sb_vision *vision;          /* owned; NULL for text models */
    /* Set by a token-reduction method, one malloc'd block (freed with free()
     * by sb_model_free and by the runner's snapshot restore); NULL: keep all. */
    struct sb_token_reducer *reducer;
    /* The model's weights on a CUDA device (backend_cuda.h), or NULL.  Set
     * by the runner only while a task runs on the CUDA backend: while it is
     * set, sb_session_new makes sessions that run there. Never owned here. */
    struct sb_cuda_model *device;
} sb_model;

/* Loads a Hugging Face folder (config.json + safetensors) or a .gguf file. */
int sb_model_load(const char *path, sb_model **out, sb_err *err);
void sb_model_free(sb_model *m);

/* Checks internal consistency (shapes agree between layers); loaders call it last. */
int sb_model_validate(const sb_model *m, sb_err *err);

/* Stream widths (see above): what a block takes and gives, the embedding's. */
int64_t sb_block_width_in(const sb_block *b);
int64_t sb_block_width_mid(const sb_block *b);
int64_t sb_block_width_out(const sb_block *b, bool parallel_residual);
int64_t sb_model_embed_width(const sb_model *m);
/* Checks that blocks [layer0, layer1) exist and gives the stream's width where
 * it enters and leaves them (blocks may narrow it). */
int sb_model_block_range(const sb_model *m, int layer0, int layer1, int64_t *w_in, int64_t *w_out, sb_err *err);
/* True when some stream is narrower than d_model or a shortcut exists. */
bool sb_model_is_sliced(const sb_model *m);

uint64_t sb_model_param_count(const sb_model *m);
uint64_t sb_model_weight_bits(const sb_model *m);
/* Storage bits per weight of the blocks' linear layers (what compression
 * methods change; embeddings and head excluded), 0 if there are none. */
double sb_model_bits_per_weight(const sb_model *m);

/* Fills inv_freq[rot_dim/2] with base^(-2i/rot_dim). */
void sb_rope_default_freqs(float *inv_freq, int rot_dim, double base);
/* Llama 3 frequency scaling (rope_type "llama3") applied in place. */
void sb_rope_llama3_scale(float *inv_freq, int rot_dim, double factor, double low_freq_factor,
                          double high_freq_factor, double original_max_positions);

#endif

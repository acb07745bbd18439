/* train.h - training on the model IR: a Llama-architecture decoder in f32
 * with a forward pass that keeps what its backward needs, the backward
 * pass, AdamW, and the Fisher-diagonal gradient service.
 *
 * Architecture (what the built-in models use, and exactly what forward.c
 * computes for a Llama checkpoint): token embedding; per block
 * x += Wo·attn(rope(Wq·n1(x)), rope(Wk·n1(x)), Wv·n1(x)) and
 * x += Wdown·(silu(Wgate·n2(x)) * Wup·n2(x)) with RMSNorms n1, n2, rotary
 * in the Hugging Face "halves" layout, causal attention with GQA; a final
 * RMSNorm and a head, tied to the embedding or not.  No biases.
 *
 * Layout of activations (llm.c style): R = B * T rows, row r = b * T + t;
 * every activation is a row-major [R, width] matrix.
 *
 * Determinism: results depend only on the seed and the pool's thread
 * count.  Every output element is computed by one task in a fixed order:
 * matrix products split their output rows over tasks (single-threaded
 * CBLAS inside each); reductions across rows (norm weight gradients,
 * embedding gradients, the gradient norm) go over columns or fixed chunks,
 * never over whichever worker happened to run a task. */
#ifndef SB_TRAIN_H
#define SB_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "model.h"
#include "thread_pool.h"

typedef struct sb_train_shape {
    int n_vocab, d_model, n_layer, n_head, n_kv_head, ff, max_positions;
    bool tied_head;
    double norm_eps;   /* RMSNorm epsilon (default 1e-5) */
    double rope_theta; /* rotary base (default 10000) */
} sb_train_shape;

/* Pointers to the tensors of one copy of the parameters (weights or their
 * gradients); all point into one flat buffer.  Shapes as PyTorch stores
 * them: a linear is [out, in]. */
typedef struct sb_train_block {
    float *attn_norm;                 /* [d] */
    float *wq, *wk, *wv, *wo;         /* [nh*hd, d], [nkv*hd, d], [nkv*hd, d], [d, nh*hd] */
    float *mlp_norm;                  /* [d] */
    float *w_gate, *w_up, *w_down;    /* [ff, d], [ff, d], [d, ff] */
} sb_train_block;

typedef struct sb_train_params {
    float *embd;                      /* [V, d] */
    sb_train_block *blocks;           /* [n_layer] */
    float *final_norm;                /* [d] */
    float *head;                      /* [V, d]; == embd when tied */
} sb_train_params;

/* One parameter tensor, for the optimizer, exports and tests. */
typedef struct sb_train_tensor {
    char name[64];                    /* Hugging Face name: model.layers.0.self_attn.q_proj.weight */
    float *w, *g;                     /* weights and gradient */
    int64_t rows, cols;               /* vectors: rows = 1 */
    bool decay;                       /* matrices get weight decay, norm weights do not */
    int layer;                        /* -1 outside the blocks */
} sb_train_tensor;

/* What the forward pass saves, per layer unless noted. */
typedef struct sb_train_layer_acts {
    float *x_mid;                     /* [R, d] residual after the attention branch */
    float *rstd_attn, *rstd_mlp;      /* [R] 1 / rms of the norm inputs */
    float *h_attn, *h_mlp;            /* [R, d] normed inputs of the branches */
    float *q, *k, *v;                 /* [R, nh*hd], [R, nkv*hd] x2; q, k after rotary */
    float *probs;                     /* [B, nh, T, T] attention probabilities (zeros above the diagonal) */
    float *att;                       /* [R, nh*hd] attention output, the input of wo */
    float *gate, *up, *act;           /* [R, ff]; act = silu(gate) * up, the input of w_down */
} sb_train_layer_acts;

typedef struct sb_train_model {
    sb_train_shape shape;
    int head_dim;
    float attn_scale;                 /* 1 / sqrt(head_dim) */
    float *inv_freq;                  /* [head_dim / 2] rotary frequencies */
    sb_pool *pool;                    /* not owned; NULL = single-threaded */

    int64_t n_params;                 /* distinct floats (a tied head counts once) */
    float *param_mem, *grad_mem;      /* [n_params] each */
    sb_train_params p, g;             /* views into param_mem / grad_mem */
    sb_train_tensor *tensors;
    int n_tensors;

    /* activations for up to max_B x max_T; B, T of the last forward */
    int max_B, max_T, B, T;
    float *resid;                     /* [L + 1][R, d] residual stream at block boundaries */
    sb_train_layer_acts *acts;        /* [L] */
    float *rstd_final, *h_final;      /* [R], [R, d] */
    float *logits;                    /* [R, V] */
    float *probs_out;                 /* [R, V] softmax of the logits, then dlogits in backward */
    double *row_nll;                  /* [R] -log p(target) per position */
    const int32_t *inputs;            /* of the last forward (borrowed until backward) */
    const int32_t *targets;
    /* backward and forward scratch */
    float *branch;                    /* [R, d] a branch's output before the residual add */
    float *dres, *dh;                 /* [R, d] */
    float *dq, *datt;                 /* [R, nh*hd] */
    float *dk, *dv;                   /* [R, nkv*hd] */
    float *dgate, *dup, *dact;        /* [R, ff] */
    float *dscores;                   /* per worker [T, T] */
    float *rope_cos, *rope_sin;       /* [T, hd/2] */
} sb_train_model;

/* A model with parameters initialised from `seed`: normal(0, 0.02) for the
 * embedding, the head and every linear, except the projections that write
 * into the residual stream (wo, w_down), which get 0.02 / sqrt(2 n_layer)
 * as in GPT-2 so the stream's variance does not grow with depth; norm
 * weights are 1.  Activation buffers hold max_B sequences of max_T tokens. */
int sb_train_model_new(const sb_train_shape *shape, uint64_t seed, int max_B, int max_T, sb_pool *pool,
                       sb_train_model **out, sb_err *err);
/* The same from a loaded model (any weight format is decoded to f32); the
 * model must be Llama-shaped (RMSNorm, SwiGLU, halves rotary over the full
 * head, no biases, no extra norms, windows or soft-caps). */
int sb_train_model_from_model(const sb_model *m, int max_B, int max_T, sb_pool *pool, sb_train_model **out,
                              sb_err *err);
void sb_train_model_free(sb_train_model *tm);

/* Forward over inputs[B * T] (row b * T + t).  With targets (same shape),
 * *loss = mean over the B * T positions of -log p(target); targets may be
 * NULL (logits only, loss not written).  tm->logits holds [B*T, V] after. */
int sb_train_forward(sb_train_model *tm, const int32_t *inputs, const int32_t *targets, int B, int T, double *loss,
                     sb_err *err);
/* Adds d(loss)/d(params) of the last forward (which had targets) into tm->g. */
void sb_train_backward(sb_train_model *tm);
void sb_train_zero_grad(sb_train_model *tm);

/* ---- optimisation (adamw.c) ---------------------------------------------- */

/* AdamW as torch.optim.AdamW: decoupled weight decay p -= lr * wd * p on
 * matrices only, then Adam with bias correction. */
typedef struct sb_adamw {
    double beta1, beta2, eps, weight_decay;
    int64_t step;                     /* steps taken */
    float *m, *v;                     /* [n_params] */
} sb_adamw;

/* Defaults: beta1 0.9, beta2 0.95, eps 1e-8. */
int sb_adamw_init(sb_adamw *o, const sb_train_model *tm, double weight_decay, sb_err *err);
void sb_adamw_free(sb_adamw *o);
void sb_adamw_step(sb_adamw *o, sb_train_model *tm, double lr);

/* Global L2 norm of the gradient; when it exceeds max_norm (> 0) the
 * gradient is scaled by max_norm / (norm + 1e-6), as
 * torch.nn.utils.clip_grad_norm_.  Returns the norm before clipping. */
double sb_train_clip_grad_norm(sb_train_model *tm, double max_norm);

/* Learning rate at step (0-based): linear warmup over `warmup` steps to
 * lr_max, then cosine decay to lr_max * min_frac at the last step. */
double sb_lr_schedule(int step, int steps, int warmup, double lr_max, double min_frac);

/* ---- export and the gradient service (train.c) --------------------------- */

/* Writes dir/config.json (model_type llama) and dir/model.safetensors in
 * f32, or bf16 when bf16 is set; creates dir if needed. */
int sb_train_export_hf(const sb_train_model *tm, const char *dir, bool bf16, sb_err *err);

/* Fisher diagonal (SqueezeLLM's sensitivity): for each of n_windows
 * windows of n_tok tokens, the loss is the mean next-token cross-entropy
 * over its n_tok - 1 predictions (batch 1); the squared gradient of each
 * block linear's weight is summed over windows, like SqueezeLLM-gradients
 * (a hook squares each window's gradient; .grad accumulates the sum).
 * sq_grad_sums must have room for n_layer * 7 pointers; entry l * 7 + j
 * (j: wq, wk, wv, wo, w_gate, w_up, w_down) receives a malloc'ed
 * [rows * cols] array the caller frees. */
int sb_fisher_diagonal(const sb_model *m, sb_pool *pool, const int32_t *windows, int n_windows, int n_tok,
                       float **sq_grad_sums, sb_err *err);

enum { SB_FISHER_LINEARS = 7 };

/* ---- building blocks shared with other trainers (backward.c) -------------- */

/* C[M, N] = op(A)·op(B) + beta C with CBLAS, the M rows of C split over the
 * pool (deterministic for a thread count); op = transpose when trans_*. */
void sb_train_gemm(sb_pool *pool, bool trans_a, bool trans_b, int M, int N, int K, const float *A, int lda, const float *B,
                   int ldb, float beta, float *C, int ldc);
/* fn(arg, i0, i1) over [0, n) in chunks of `chunk` indices on the pool. */
void sb_train_parallel_for(sb_pool *pool, int64_t n, int64_t chunk, void (*fn)(void *arg, int64_t i0, int64_t i1), void *arg);

#endif

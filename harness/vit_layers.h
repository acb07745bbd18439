/* vit_layers.h - the layers of the ViT trainer, each a forward and a
 * backward function over row-major [R, width] buffers (llm.c style).
 * Backward functions ADD into parameter gradients; what they do to the
 * input gradient is said per function. Internal to vit_backward.c and tests. */
#ifndef SB_VIT_LAYERS_H
#define SB_VIT_LAYERS_H

#include <stdint.h>

#include "thread_pool.h"

/* y[R, out] = x[R, in] · W[out, in]ᵀ + b[out] */
void sb_vit_linear_forward(sb_pool *pool, float *y, const float *x, const float *W, const float *b, int R, int in, int out);
/* dx[R, in] = dy·W (beta 0: overwritten; beta 1: added), dW += dyᵀ·x, db += Σ_r dy. dx may be NULL. */
void sb_vit_linear_backward(sb_pool *pool, float *dx, float beta, float *dW, float *db, const float *dy, const float *x,
                            const float *W, int R, int in, int out);

/* y = (x - mean) · rstd ⊙ w + b per row, rstd = 1 / sqrt(var + eps) (population variance). */
void sb_vit_layernorm_forward(sb_pool *pool, float *y, float *mean, float *rstd, const float *x, const float *w,
                              const float *b, int R, int d, float eps);
/* dx += d/dx (accumulates), dw += Σ dy ⊙ x̂, db += Σ dy. */
void sb_vit_layernorm_backward(sb_pool *pool, float *dx, float *dw, float *db, const float *dy, const float *x,
                               const float *mean, const float *rstd, const float *w, int R, int d);

/* g = gelu(u) = u Φ(u) (erf form), n values. */
void sb_vit_gelu_forward(sb_pool *pool, float *g, const float *u, int64_t n);
/* dg *= gelu'(u) in place: dg becomes du. */
void sb_vit_gelu_backward(sb_pool *pool, float *dg, const float *u, int64_t n);

/* Bidirectional multi-head attention over B sequences of T rows:
 * per (b, h): P = softmax(Q Kᵀ / sqrt(hd)) [T, T] (kept in probs), O = P V.
 * q, k, v, out: [B*T, nh*hd]; probs: [B, nh, T, T]. */
void sb_vit_attention_forward(sb_pool *pool, float *out, float *probs, const float *q, const float *k, const float *v,
                              int B, int T, int nh, int hd);
/* dq, dk, dv (overwritten) from dout; scratch: [workers][T, T]. */
void sb_vit_attention_backward(sb_pool *pool, float *dq, float *dk, float *dv, const float *dout, const float *probs,
                               const float *q, const float *k, const float *v, float *scratch, int B, int T, int nh, int hd);

#endif

/* vit_train.h - training a Vision Transformer (Hugging Face ViT) in f32.
 *
 * The architecture is transformers' ViTForImageClassification, so a
 * trained model is written as an ordinary HF folder (vit_export.c) that
 * transformers and slimbench's ViT loader read:
 *   patch embedding: a conv with kernel = stride = patch, computed as a
 *     matrix product over flattened patches (c, ky, kx order = the conv
 *     weight [d, C, p, p] flattened);
 *   tokens [CLS, patch_1 .. patch_np] + learned position embeddings;
 *   per layer (pre-LayerNorm): x += Wo·attn(ln1(x)) with bidirectional
 *     multi-head attention, q/k/v/o with biases; x += W2·gelu(W1·ln2(x) + b1) + b2
 *     (exact erf GELU);
 *   a final LayerNorm and a linear classifier on the CLS token;
 *   loss: mean cross-entropy over the batch.
 * Pixels enter as 8-bit HWC images and are normalised like HF's
 * ViTImageProcessor with image_mean = image_std = 0.5: x = (p/255 - 0.5)/0.5.
 *
 * Layout (llm.c style): R = B * T rows, row b * T + t (t = 0 is CLS);
 * activations are row-major [R, width]. Determinism as train.h: every
 * output element is computed by one task in a fixed order, so results
 * depend only on the seed and the thread count. */
#ifndef SB_VIT_TRAIN_H
#define SB_VIT_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "../datasets/image_set.h"
#include "error.h"
#include "thread_pool.h"
#include "train.h"

typedef struct sb_vit_shape {
    int image, channels, patch;    /* square images of image x image pixels */
    int d, n_layer, n_head, ff, n_classes;
    double ln_eps;                 /* LayerNorm epsilon (HF ViT default 1e-12) */
} sb_vit_shape;

typedef struct sb_vit_block {
    float *ln1_w, *ln1_b;             /* [d] layernorm_before */
    float *wq, *bq, *wk, *bk, *wv, *bv;   /* [d, d], [d] */
    float *wo, *bo;                   /* [d, d], [d] attention.output.dense */
    float *ln2_w, *ln2_b;             /* [d] layernorm_after */
    float *w1, *b1;                   /* [ff, d], [ff] intermediate.dense */
    float *w2, *b2;                   /* [d, ff], [d] output.dense */
} sb_vit_block;

typedef struct sb_vit_params {
    float *cls, *pos;                 /* [d], [T, d] */
    float *patch_w, *patch_b;         /* [d, C*p*p], [d] */
    sb_vit_block *blocks;             /* [n_layer] */
    float *lnf_w, *lnf_b;             /* [d] vit.layernorm */
    float *head_w, *head_b;           /* [K, d], [K] classifier */
} sb_vit_params;

typedef struct sb_vit_acts {          /* saved by the forward, per layer */
    float *x_in, *x_mid;              /* [R, d] residual before the block and after attention */
    float *mean1, *rstd1, *mean2, *rstd2;   /* [R] */
    float *h1, *h2;                   /* [R, d] LayerNorm outputs */
    float *q, *k, *v, *att;           /* [R, d] */
    float *probs;                     /* [B, nh, T, T] */
    float *u, *g;                     /* [R, ff] pre-GELU and GELU output */
} sb_vit_acts;

typedef struct sb_vit_model {
    sb_vit_shape shape;
    int n_patches, T, pd, head_dim;   /* pd = C * p * p */
    sb_pool *pool;                    /* not owned; NULL = one thread */
    /* Parameters as train.h's tensors, so adamw.c and the gradient-norm
     * clip work on the ViT unchanged: opt holds only n_params, param_mem,
     * grad_mem, tensors, n_tensors and pool. */
    sb_train_model opt;
    int (*dims)[5];                   /* per tensor: n_dims, then the HF shape */
    sb_vit_params p, g;
    int max_B, B;
    float *patches;                   /* [B * np, pd] normalised pixels by patch */
    sb_vit_acts *acts;                /* [n_layer] */
    float *resid;                     /* [R, d] output of the last block */
    float *cls_in, *meanf, *rstdf, *hf;   /* [B, d], [B], [B], [B, d] final LayerNorm on the CLS rows */
    float *logits, *dlogits;          /* [B, K] */
    const int32_t *labels;            /* of the last forward */
    float *dres, *dh, *dtmp;          /* [R, d] */
    float *dq, *dk, *dv, *datt;       /* [R, d] */
    float *dg;                        /* [R, ff] */
    float *dpatch;                    /* [B * np, d] */
    float *dscores;                   /* per worker [T, T] */
} sb_vit_model;

/* Random initialisation from seed: truncated-free normal(0, 0.02) for
 * matrices, the CLS token and position embeddings (HF ViT's
 * initializer_range), zero biases, LayerNorm weights 1. */
int sb_vit_model_new(const sb_vit_shape *shape, uint64_t seed, int max_B, sb_pool *pool, sb_vit_model **out, sb_err *err);
/* A model from a Hugging Face ViTForImageClassification folder (config.json
 * + model.safetensors in f32/f16/bf16). */
int sb_vit_load_hf(const char *dir, int max_B, sb_pool *pool, sb_vit_model **out, sb_err *err);
void sb_vit_model_free(sb_vit_model *vm);

/* Forward over images[0..B) (each image x image x channels, 8-bit HWC).
 * With labels, *loss = mean cross-entropy; labels may be NULL (logits only).
 * vm->logits holds [B, K] after. */
int sb_vit_forward(sb_vit_model *vm, const sb_image *const *images, const int32_t *labels, int B, double *loss,
                   sb_err *err);
/* Adds d(loss)/d(params) of the last forward (with labels) into the gradients. */
void sb_vit_backward(sb_vit_model *vm);
void sb_vit_zero_grad(sb_vit_model *vm);

/* Writes dir/config.json (ViTForImageClassification, id2label/label2id
 * from class_names), dir/model.safetensors (f32, or bf16) and
 * dir/preprocessor_config.json (ViTImageProcessor, mean = std = 0.5). */
int sb_vit_export_hf(const sb_vit_model *vm, const char *dir, char *const *class_names, bool bf16, sb_err *err);

#endif

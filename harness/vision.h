/* vision.h - image models in the model IR: ViT / DeiT classifiers.
 *
 * A ViT is the IR's encoder (bidirectional attention, pre-norm LayerNorm
 * blocks, plain GELU MLP) plus what this struct holds: the patch embedding
 * (a p x p convolution with stride p is one matrix product per patch:
 * [d, C*p*p] times the patch's pixels flattened in (c, i, j) order, as
 * PyTorch stores Conv2d weights), the class token (and DeiT's distillation
 * token) put before the patches, and the image preprocessing of the
 * checkpoint's preprocessor_config.json.  Learned position embeddings are
 * the model's pos_embd [n_prefix + n_patches, d], added once at embedding;
 * the final LayerNorm is final_norm and the classifier is head [n_labels, d]
 * (+ bias), applied to the class-token row (DeiT distilled checkpoints
 * average it with a second head on the distillation-token row).
 *
 * Token reduction (PyramidDrop, Zero-TPrune) runs between blocks: a method
 * sets m->reducer, and the vision forward (vit.c) asks it after each block
 * which patch tokens go on (prefix tokens always stay). */
#ifndef SB_VISION_H
#define SB_VISION_H

#include <stdint.h>

#include "forward.h"
#include "model.h"

/* Hugging Face image processors' resampling, by PIL's filter codes. */
typedef enum { SB_RESAMPLE_NEAREST = 0, SB_RESAMPLE_BILINEAR = 2, SB_RESAMPLE_BICUBIC = 3 } sb_resample;

/* What preprocessor_config.json asks for, in the order it is applied:
 * resize -> center crop -> rescale -> normalize. */
typedef struct sb_preprocess {
    bool do_resize;
    int resize_h, resize_w;   /* exact size, or */
    int shortest_edge;        /* > 0: the short side becomes this, aspect kept (HF's int() of the long side) */
    sb_resample resample;
    bool do_center_crop;
    int crop_h, crop_w;
    bool do_rescale;
    double rescale_factor;    /* 1/255 */
    bool do_normalize;
    float mean[3], std[3];
} sb_preprocess;

typedef struct sb_vision {
    int image_size, patch_size, channels;
    int grid;                 /* patches per side: image_size / patch_size */
    int n_patches;            /* grid * grid */
    int n_prefix;             /* class token (+ distillation token) before the patches */
    sb_linear patch;          /* [d, C*p*p] + bias [d] */
    float *cls_token;         /* [d] */
    float *dist_token;        /* [d] or NULL (DeiT only) */
    sb_linear dist_head;      /* DeiT distilled ("WithTeacher"): [n_labels, d] on the distillation-token
                               * row, logits = (head(cls) + dist_head(dist)) / 2; absent otherwise */
    char **labels;            /* [n_labels] from id2label ("LABEL_i" when absent) */
    int n_labels;
    sb_preprocess pre;
} sb_vision;

void sb_vision_free(sb_vision *v);            /* NULL-safe */
uint64_t sb_vision_param_count(const sb_vision *v); /* 0 for NULL */

/* Reads config.json's vision keys and preprocessor_config.json (loader_vit.c). */
int sb_load_vit(const char *dir, sb_model *m, sb_err *err);

/* ---- preprocessing (image_preprocess.c) ------------------------------- */

/* HWC uint8 pixels (channels 1 or 3; grey is repeated to the model's 3)
 * -> out[C][H][W] floats of the model's input size, exactly as the slow
 * (PIL) Hugging Face image processor does it. */
int sb_preprocess_image(const sb_preprocess *pre, int model_channels, int model_size, const uint8_t *pixels,
                        int height, int width, int channels, float *out, sb_err *err);

/* PIL's Image.resize on 8-bit planes (Pillow's Resample.c algorithm, see
 * image_resample.c): src [h][w][c] -> dst [oh][ow][c]. */
int sb_resize_u8(const uint8_t *src, int h, int w, int c, uint8_t *dst, int oh, int ow, sb_resample filter, sb_err *err);

/* ---- token reduction ---------------------------------------------------- */

/* What a reducer sees after a block: the surviving tokens' hidden states
 * and, when it asked for them, the block's attention probabilities
 * averaged over heads. Token 0..n_prefix-1 are the class tokens. */
typedef struct sb_token_view {
    const sb_model *m;
    int layer;                /* the block just run; the next one is layer + 1 */
    int n_tok, n_prefix;
    int n_patches0;           /* patch tokens at the start (before any reduction) */
    const float *x;           /* [n_tok, d] this image's hidden states after the block */
    const float *attn;        /* [n_tok, n_tok] head-averaged probabilities (row = query), or NULL */
    const float *cls_attn;    /* [n_tok] attention of the class token, averaged over heads, or NULL */
} sb_token_view;

typedef struct sb_token_reducer sb_token_reducer;
struct sb_token_reducer {
    char name[32];
    /* Tokens that must survive after block `layer` of one image: the
     * number kept is the same for every image (so a batch stays
     * rectangular); the reducer writes keep[0..n_keep) as increasing
     * token indices, prefix tokens included. *n_keep = v->n_tok: no drop. */
    int (*select)(const sb_token_reducer *r, const sb_token_view *v, int32_t *keep, int *n_keep, sb_err *err);
    /* Number kept after block `layer` from n_tok (the same for every image). */
    int (*count)(const sb_token_reducer *r, int layer, int n_tok, int n_prefix, int n_patches0);
    bool wants_attention;       /* the full head-averaged map after blocks that drop */
    bool wants_cls_probe;       /* the class token's attention in the NEXT block's norm/q/k, before it runs */
    double ratio;               /* method parameters, as the method reads them */
    double aux[4];
    int32_t layers[32];         /* stage boundaries (blocks after which tokens drop) */
    int n_layers;
};

/* ---- the vision forward pass (vit.c) ----------------------------------- */

typedef struct sb_vit sb_vit;

/* A forward context for `batch` images at a time (same count every call). */
int sb_vit_new(const sb_model *m, sb_pool *pool, int batch, sb_vit **out, sb_err *err);
void sb_vit_free(sb_vit *v);
/* pixels [batch][C][S][S] (preprocessed) -> logits [batch][n_labels]. */
int sb_vit_classify(sb_vit *v, const float *pixels, float *logits, sb_err *err);
/* Patch embedding + class tokens + positions: the block-0 inputs
 * x[batch][n_prefix + n_patches][d] (calibration uses these). */
int sb_vit_embed(sb_vit *v, const float *pixels, float *x, sb_err *err);
/* Floating-point operations of the latest classify per image (2 per
 * multiply-add), counted from the token counts each block actually ran
 * with: linears, attention scores and weighted sums, patch embedding,
 * head and any reducer probe. Element-wise work is not counted, nor a
 * reducer's own selection (sorting, Zero-TPrune's PageRank: iterations x
 * T^2 per boundary, small against a block's T x d^2 terms). */
double sb_vit_last_flops(const sb_vit *v);
/* Tokens entering each block in the latest classify: counts[n_layer]. */
const int *sb_vit_last_tokens(const sb_vit *v);
/* The dense FLOPs per image (no reduction) of model m. */
double sb_vit_dense_flops(const sb_model *m);
/* FLOPs per image with m's reducer, from the token counts it promises
 * (what sb_vit_last_flops then measures); tokens[n_layer] (may be NULL)
 * receives the tokens entering each block. */
double sb_vit_planned_flops(const sb_model *m, int *tokens);

#endif

/* vit_backward.c - the ViT training forward pass (saving what the backward
 * needs) and the backward pass, in the order of vit_train.h's architecture.
 * Shapes: R = B * T rows of width d (row b * T + t, t = 0 the CLS token),
 * np = T - 1 patches of pd = C * p * p values each. */
#include <math.h>
#include <string.h>

#include "vit_layers.h"
#include "vit_train.h"

/* patches[b * np + i][c * p * p + ky * p + kx] = normalised pixel of patch i (row-major over the patch grid). */
static void extract_patches(const sb_vit_model *vm, const sb_image *img, float *out) {
    int p = vm->shape.patch, C = vm->shape.channels, W = vm->shape.image, gw = W / p;
    for (int i = 0; i < vm->n_patches; i++) {
        int py = (i / gw) * p, px = (i % gw) * p;
        float *row = out + (int64_t)i * vm->pd;
        for (int c = 0; c < C; c++)
            for (int ky = 0; ky < p; ky++)
                for (int kx = 0; kx < p; kx++) {
                    double v = img->pixels[((int64_t)(py + ky) * W + px + kx) * C + c];
                    row[(c * p + ky) * p + kx] = (float)((v / 255.0 - 0.5) / 0.5);   /* ViTImageProcessor, mean = std = 0.5 */
                }
    }
}

/* x[R, d]: row 0 of each image CLS + pos[0], row 1 + i the patch embedding + pos[1 + i]. */
static void embed(sb_vit_model *vm, int B, float *x) {
    int d = vm->shape.d, np = vm->n_patches, T = vm->T;
    sb_vit_linear_forward(vm->pool, vm->dpatch, vm->patches, vm->p.patch_w, vm->p.patch_b, B * np, vm->pd, d);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *src = t == 0 ? vm->p.cls : vm->dpatch + ((int64_t)b * np + t - 1) * d;
            float *dst = x + ((int64_t)b * T + t) * d;
            for (int i = 0; i < d; i++) dst[i] = src[i] + vm->p.pos[(int64_t)t * d + i];
        }
}

static void add_into(float *y, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

/* x_out[R, d] = block l of x_in (acts[l].x_in). */
static void block_forward(sb_vit_model *vm, int l, int B, float *x_out) {
    const sb_vit_shape *s = &vm->shape;
    const sb_vit_block *w = &vm->p.blocks[l];
    sb_vit_acts *a = &vm->acts[l];
    int R = B * vm->T, d = s->d, ff = s->ff;
    float eps = (float)s->ln_eps;
    sb_vit_layernorm_forward(vm->pool, a->h1, a->mean1, a->rstd1, a->x_in, w->ln1_w, w->ln1_b, R, d, eps);
    sb_vit_linear_forward(vm->pool, a->q, a->h1, w->wq, w->bq, R, d, d);
    sb_vit_linear_forward(vm->pool, a->k, a->h1, w->wk, w->bk, R, d, d);
    sb_vit_linear_forward(vm->pool, a->v, a->h1, w->wv, w->bv, R, d, d);
    sb_vit_attention_forward(vm->pool, a->att, a->probs, a->q, a->k, a->v, B, vm->T, s->n_head, vm->head_dim);
    sb_vit_linear_forward(vm->pool, vm->dtmp, a->att, w->wo, w->bo, R, d, d);
    add_into(a->x_mid, a->x_in, vm->dtmp, (int64_t)R * d);
    sb_vit_layernorm_forward(vm->pool, a->h2, a->mean2, a->rstd2, a->x_mid, w->ln2_w, w->ln2_b, R, d, eps);
    sb_vit_linear_forward(vm->pool, a->u, a->h2, w->w1, w->b1, R, d, ff);
    sb_vit_gelu_forward(vm->pool, a->g, a->u, (int64_t)R * ff);
    sb_vit_linear_forward(vm->pool, vm->dtmp, a->g, w->w2, w->b2, R, ff, d);
    add_into(x_out, a->x_mid, vm->dtmp, (int64_t)R * d);
}

/* Softmax cross-entropy per image; dlogits = (softmax - onehot) / B. Returns the mean loss. */
static double cross_entropy(sb_vit_model *vm, const int32_t *labels, int B) {
    int K = vm->shape.n_classes;
    double total = 0;
    for (int b = 0; b < B; b++) {
        const float *z = vm->logits + (int64_t)b * K;
        float *dz = vm->dlogits + (int64_t)b * K;
        float mx = z[0];
        for (int c = 1; c < K; c++) mx = z[c] > mx ? z[c] : mx;
        double sum = 0;
        for (int c = 0; c < K; c++) sum += exp((double)z[c] - mx);
        double lse = mx + log(sum);
        total += lse - z[labels[b]];
        for (int c = 0; c < K; c++) dz[c] = (float)((exp((double)z[c] - lse) - (c == labels[b])) / B);
    }
    return total / B;
}

static int check_inputs(const sb_vit_model *vm, const sb_image *const *images, const int32_t *labels, int B, sb_err *err) {
    const sb_vit_shape *s = &vm->shape;
    if (B < 1 || B > vm->max_B) return sb_err_set(err, SB_EINPUT, "ViT: batch %d outside 1..%d", B, vm->max_B);
    for (int b = 0; b < B; b++) {
        const sb_image *im = images[b];
        if (im->width != s->image || im->height != s->image || im->channels != s->channels)
            return sb_err_set(err, SB_EINPUT, "ViT: image %d is %dx%dx%d, the model takes %dx%dx%d", b, im->width, im->height,
                              im->channels, s->image, s->image, s->channels);
        if (labels && (labels[b] < 0 || labels[b] >= s->n_classes))
            return sb_err_set(err, SB_EINPUT, "ViT: label %d of image %d outside 0..%d", labels[b], b, s->n_classes - 1);
    }
    return SB_OK;
}

int sb_vit_forward(sb_vit_model *vm, const sb_image *const *images, const int32_t *labels, int B, double *loss,
                   sb_err *err) {
    int rc = check_inputs(vm, images, labels, B, err);
    if (rc) return rc;
    const sb_vit_shape *s = &vm->shape;
    int d = s->d, T = vm->T, L = s->n_layer;
    vm->B = B;
    vm->labels = labels;
    for (int b = 0; b < B; b++) extract_patches(vm, images[b], vm->patches + (int64_t)b * vm->n_patches * vm->pd);
    embed(vm, B, vm->acts[0].x_in);
    for (int l = 0; l < L; l++) block_forward(vm, l, B, l + 1 < L ? vm->acts[l + 1].x_in : vm->resid);
    for (int b = 0; b < B; b++) memcpy(vm->cls_in + (int64_t)b * d, vm->resid + (int64_t)b * T * d, sizeof(float) * (size_t)d);
    sb_vit_layernorm_forward(vm->pool, vm->hf, vm->meanf, vm->rstdf, vm->cls_in, vm->p.lnf_w, vm->p.lnf_b, B, d,
                             (float)s->ln_eps);
    sb_vit_linear_forward(vm->pool, vm->logits, vm->hf, vm->p.head_w, vm->p.head_b, B, d, s->n_classes);
    if (labels && loss) *loss = cross_entropy(vm, labels, B);
    return SB_OK;
}

/* On entry vm->dres = d loss / d x_out of block l; on return d loss / d x_in. */
static void block_backward(sb_vit_model *vm, int l) {
    const sb_vit_shape *s = &vm->shape;
    const sb_vit_block *w = &vm->p.blocks[l];
    sb_vit_block *gw = &vm->g.blocks[l];
    const sb_vit_acts *a = &vm->acts[l];
    int B = vm->B, R = B * vm->T, d = s->d, ff = s->ff;
    /* MLP branch: x_out = x_mid + W2 gelu(W1 h2 + b1) + b2 */
    sb_vit_linear_backward(vm->pool, vm->dg, 0.0f, gw->w2, gw->b2, vm->dres, a->g, w->w2, R, ff, d);
    sb_vit_gelu_backward(vm->pool, vm->dg, a->u, (int64_t)R * ff);
    sb_vit_linear_backward(vm->pool, vm->dh, 0.0f, gw->w1, gw->b1, vm->dg, a->h2, w->w1, R, d, ff);
    sb_vit_layernorm_backward(vm->pool, vm->dres, gw->ln2_w, gw->ln2_b, vm->dh, a->x_mid, a->mean2, a->rstd2, w->ln2_w, R, d);
    /* attention branch: x_mid = x_in + Wo attn(q, k, v) + bo */
    sb_vit_linear_backward(vm->pool, vm->datt, 0.0f, gw->wo, gw->bo, vm->dres, a->att, w->wo, R, d, d);
    sb_vit_attention_backward(vm->pool, vm->dq, vm->dk, vm->dv, vm->datt, a->probs, a->q, a->k, a->v, vm->dscores, B, vm->T,
                              s->n_head, vm->head_dim);
    sb_vit_linear_backward(vm->pool, vm->dh, 0.0f, gw->wq, gw->bq, vm->dq, a->h1, w->wq, R, d, d);
    sb_vit_linear_backward(vm->pool, vm->dh, 1.0f, gw->wk, gw->bk, vm->dk, a->h1, w->wk, R, d, d);
    sb_vit_linear_backward(vm->pool, vm->dh, 1.0f, gw->wv, gw->bv, vm->dv, a->h1, w->wv, R, d, d);
    sb_vit_layernorm_backward(vm->pool, vm->dres, gw->ln1_w, gw->ln1_b, vm->dh, a->x_in, a->mean1, a->rstd1, w->ln1_w, R, d);
}

/* dres = d loss / d embeddings: into cls, pos (sums over images in order) and the patch projection. */
static void embed_backward(sb_vit_model *vm) {
    int B = vm->B, d = vm->shape.d, T = vm->T, np = vm->n_patches;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < d; i++) {
            double acc = 0;
            for (int b = 0; b < B; b++) acc += vm->dres[((int64_t)b * T + t) * d + i];
            vm->g.pos[(int64_t)t * d + i] += (float)acc;
            if (t == 0) vm->g.cls[i] += (float)acc;
        }
    for (int b = 0; b < B; b++)
        memcpy(vm->dpatch + (int64_t)b * np * d, vm->dres + ((int64_t)b * T + 1) * d, sizeof(float) * (size_t)np * d);
    sb_vit_linear_backward(vm->pool, NULL, 0.0f, vm->g.patch_w, vm->g.patch_b, vm->dpatch, vm->patches, vm->p.patch_w,
                           B * np, vm->pd, d);
}

void sb_vit_backward(sb_vit_model *vm) {
    const sb_vit_shape *s = &vm->shape;
    int B = vm->B, d = s->d, T = vm->T;
    /* classifier and final LayerNorm act on the CLS rows only */
    sb_vit_linear_backward(vm->pool, vm->dh, 0.0f, vm->g.head_w, vm->g.head_b, vm->dlogits, vm->hf, vm->p.head_w, B, d,
                           s->n_classes);
    memset(vm->dtmp, 0, sizeof(float) * (size_t)B * d);
    sb_vit_layernorm_backward(vm->pool, vm->dtmp, vm->g.lnf_w, vm->g.lnf_b, vm->dh, vm->cls_in, vm->meanf, vm->rstdf,
                              vm->p.lnf_w, B, d);
    memset(vm->dres, 0, sizeof(float) * (size_t)B * T * d);
    for (int b = 0; b < B; b++) memcpy(vm->dres + (int64_t)b * T * d, vm->dtmp + (int64_t)b * d, sizeof(float) * (size_t)d);
    for (int l = s->n_layer - 1; l >= 0; l--) block_backward(vm, l);
    embed_backward(vm);
}

void sb_vit_zero_grad(sb_vit_model *vm) { memset(vm->opt.grad_mem, 0, sizeof(float) * (size_t)vm->opt.n_params); }

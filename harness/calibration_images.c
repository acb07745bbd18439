/* calibration_images.c - calibration samples from images, for methods
 * that look at activations (GPTQ and its family) on ViT/DeiT models.
 *
 * A text sample is a window of tokens that the calibration run embeds; an
 * image sample is one image, preprocessed exactly as for evaluation and
 * run through the patch embedding (with class tokens and positions), so
 * the run starts at block 0 with hidden states that block really sees.
 * Token reducers are not applied during calibration: weights are fitted
 * on every token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../datasets/image_set.h"
#include "calibration.h"
#include "hash.h"
#include "vision.h"

/* order[0..k) = the first k draws of a seeded partial Fisher-Yates shuffle of 0..n-1. */
static int draw_order(int n, int k, uint64_t seed, int *order, sb_err *err) {
    int *all = sb_malloc(err, sizeof(int) * (size_t)n);
    if (!all) return SB_EINTERNAL;
    for (int i = 0; i < n; i++) all[i] = i;
    sb_py_random rng;
    sb_py_random_seed(&rng, seed);
    for (int i = 0; i < k; i++) {
        int j = (int)sb_py_random_randint(&rng, i, n - 1), t = all[i];
        all[i] = all[j];
        all[j] = t;
        order[i] = all[i];
    }
    free(all);
    return SB_OK;
}

static uint64_t hash_images(const sb_image_set *set) {
    uint64_t h = SB_FNV_OFFSET;
    for (int i = 0; i < set->n_images; i++) {
        const sb_image *im = &set->images[i];
        int32_t shape[3] = {im->width, im->height, im->channels};
        h = sb_fnv1a64(shape, sizeof shape, h);
        h = sb_fnv1a64(im->pixels, (size_t)im->width * im->height * im->channels, h);
    }
    return h;
}

/* Preprocesses and patch-embeds image `idx` into hidden [T][d]. */
static int embed_one(const sb_model *m, sb_vit *vit, const sb_image *img, float *pixels, float *hidden, sb_err *err) {
    const sb_vision *v = m->vision;
    int rc = sb_preprocess_image(&v->pre, v->channels, v->image_size, img->pixels, img->height, img->width,
                                 img->channels, pixels, err);
    return rc ? rc : sb_vit_embed(vit, pixels, hidden, err);
}

int sb_calib_from_images(const sb_model *m, const sb_image_set *images, const sb_calib_config *cfg, sb_calib_set *out,
                         sb_err *err) {
    memset(out, 0, sizeof *out);
    if (!m->vision) return sb_err_set(err, SB_EINPUT, "image calibration needs an image model (ViT/DeiT)");
    if (images->n_images < 1) return sb_err_set(err, SB_EINPUT, "%s: no images to calibrate with", images->source);
    const sb_vision *v = m->vision;
    int k = cfg->n_samples < images->n_images ? cfg->n_samples : images->n_images;
    int T = v->n_prefix + v->n_patches;
    int64_t per = (int64_t)T * m->d_model;
    int *order = sb_malloc(err, sizeof(int) * (size_t)k);
    float *pixels = sb_malloc(err, sizeof(float) * (size_t)v->channels * v->image_size * v->image_size);
    out->hidden = sb_malloc(err, sizeof(float) * (size_t)(k * per));
    out->path = strdup(images->source ? images->source : "images");
    sb_vit *vit = NULL;
    int rc = order && pixels && out->hidden && out->path ? SB_OK : sb_err_set(err, SB_EINTERNAL, "out of memory");
    if (!rc) rc = draw_order(images->n_images, k, cfg->seed, order, err);
    if (!rc) rc = sb_vit_new(m, NULL, 1, &vit, err);
    for (int i = 0; !rc && i < k; i++) rc = embed_one(m, vit, &images->images[order[i]], pixels, out->hidden + i * per, err);
    sb_vit_free(vit);
    free(order);
    free(pixels);
    if (rc) {
        sb_calib_set_free(out);
        return sb_err_prefix(err, "calibration images");
    }
    out->n_samples = k;
    out->seq_len = T;
    out->seed = cfg->seed;
    out->data_hash = hash_images(images);
    out->source_tokens = images->n_images;
    snprintf(out->sampling, sizeof out->sampling, "images");
    return SB_OK;
}

int sb_calib_draw_images(const sb_model *m, const sb_calib_config *cfg, sb_calib_set *out, sb_err *err) {
    memset(out, 0, sizeof *out);
    if (!cfg->path || !*cfg->path) return sb_err_set(err, SB_EINPUT, "image calibration needs data=PATH (an image set)");
    sb_image_set *set = NULL;
    int rc = sb_image_set_load(cfg->path, 0, &set, err);
    if (!rc) rc = sb_calib_from_images(m, set, cfg, out, err);
    if (set) sb_image_set_free(set);
    return rc;
}

/* image_quality.c - the "image-quality" task: MSE, PSNR and SSIM between a
 * set of images and a reference set (harness/image_metrics.h).
 *
 * Both sets load through sb_image_set_load and are paired by order. Folder
 * sets are ordered by class folder then file name, so two folders with the
 * same file names pair file with file; counts and every pair's size must
 * agree. The metrics are means over pairs, each with the standard error of
 * that mean. An identical pair's PSNR is infinite: it counts as PSNR_CAP dB
 * (pinned in the protocol) so the mean stays a number, and details.identical
 * says how many there were. The model is not used: the images are what a
 * compressed model produced, made by whatever ran it. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../datasets/image_set.h"
#include "image_metrics.h"
#include "plugin.h"

#define PSNR_CAP 100.0

static const sb_param_spec iq_params[] = {
    {"reference", SB_PARAM_STRING, NULL, 1, 0, NULL, "reference images: folder, CIFAR batch, IDX file or builtin:shapes[:split]"},
    {"images", SB_PARAM_STRING, NULL, 1, 0, NULL, "images to score, paired with the reference by order"},
    {"limit", SB_PARAM_INT, "0", 0, 1e9, NULL, "score the first N pairs (0: all)"},
    {"data_range", SB_PARAM_FLOAT, "255", 1e-6, 1e9, NULL, "PSNR/SSIM data range (255 for 8-bit images)"},
};

/* Running mean and variance (Welford) of one metric. */
typedef struct stat { double n, mean, m2; } stat;
static void stat_add(stat *s, double x) {
    s->n += 1;
    double d = x - s->mean;
    s->mean += d / s->n;
    s->m2 += d * (x - s->mean);
}
static double stat_stderr(const stat *s) { return s->n > 1 ? sqrt(s->m2 / (s->n - 1) / s->n) : NAN; }

static int score_pairs(const sb_image_set *ref, const sb_image_set *img, double range, stat st[3], int *identical,
                       sb_err *err) {
    if (ref->n_images != img->n_images)
        return sb_err_set(err, SB_EINPUT, "image-quality: %s has %d images but the reference %s has %d", img->source,
                          img->n_images, ref->source, ref->n_images);
    for (int i = 0; i < ref->n_images; i++) {
        const sb_image *a = &ref->images[i], *b = &img->images[i];
        char where[600];
        snprintf(where, sizeof where, "image-quality: pair %d (%s, %s)", i, ref->source, img->source);
        double ssim, mse;
        int rc = sb_image_ssim(a, b, range, &ssim, where, err);   /* checks the sizes first */
        if (rc != SB_OK) return rc;
        mse = sb_image_mse(a, b);
        *identical += mse == 0;
        double psnr = sb_psnr_from_mse(mse, range);
        stat_add(&st[0], psnr < PSNR_CAP ? psnr : PSNR_CAP);
        stat_add(&st[1], ssim);
        stat_add(&st[2], mse);
    }
    return SB_OK;
}

static int iq_run(const sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_task_result *out, sb_err *err) {
    (void)m;
    (void)ctx;
    int limit = (int)sb_param_num(p, "limit");
    double range = sb_param_num(p, "data_range");
    sb_image_set *ref = NULL, *img = NULL;
    stat st[3] = {{0}};
    int identical = 0;
    int rc = sb_image_set_load(sb_param_str(p, "reference"), limit, &ref, err);
    if (rc == SB_OK) rc = sb_image_set_load(sb_param_str(p, "images"), limit, &img, err);
    if (rc == SB_OK) rc = score_pairs(ref, img, range, st, &identical, err);
    if (rc == SB_OK) {
        snprintf(out->protocol, sizeof out->protocol, "image-quality:skimage:ssim=gauss1.5:range=%g:psnr_cap=%g", range, PSNR_CAP);
        rc = sb_result_add(out, "psnr", st[0].mean, stat_stderr(&st[0]), SB_HIGHER_IS_BETTER, "dB", err);
        if (rc == SB_OK) rc = sb_result_add(out, "ssim", st[1].mean, stat_stderr(&st[1]), SB_HIGHER_IS_BETTER, "", err);
        if (rc == SB_OK) rc = sb_result_add(out, "mse", st[2].mean, stat_stderr(&st[2]), SB_LOWER_IS_BETTER, "", err);
        out->details = cJSON_CreateObject();
        cJSON_AddNumberToObject(out->details, "pairs", st[0].n);
        cJSON_AddNumberToObject(out->details, "identical", identical);
    }
    sb_image_set_free(ref);
    sb_image_set_free(img);
    return rc;
}

const sb_task sb_task_image_quality = {
    .abi = SB_PLUGIN_ABI,
    .name = "image-quality",
    .summary = "full-reference image quality between two image sets: PSNR, SSIM (Gaussian window, as scikit-image) and MSE",
    .paper = {"Image Quality Assessment: From Error Visibility to Structural Similarity", NULL, "2004"},
    .params = iq_params,
    .n_params = (int)(sizeof iq_params / sizeof iq_params[0]),
    .run = iq_run,
};

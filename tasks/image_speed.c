/* image_speed.c - the "image-speed" task: latency and throughput of an
 * image classifier's forward pass (ViT/DeiT, with any token reducer), the
 * way tasks/speed.c measures text models (optimum-benchmark's method):
 * `warmup` untimed passes, then timed passes until both `iterations`
 * passes and `duration` seconds are reached.  A pass is one batch of
 * `batch` preprocessed images (seeded random pixels: speed does not
 * depend on pixel values, only on token counts) through embedding,
 * blocks, reducer and classifier.  FLOPs per image are counted from the
 * tokens each block actually ran with, so a token-reduction method shows
 * its FLOPs and latency against the dense model's in the same record. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "measure.h"
#include "plugin.h"
#include "vision.h"

static const sb_param_spec ispeed_params[] = {
    {"batch", SB_PARAM_INT, "1", 1, 4096, NULL, "images per forward pass"},
    {"warmup", SB_PARAM_INT, "2", 0, 1000, NULL, "untimed passes first"},
    {"iterations", SB_PARAM_INT, "10", 1, 1e6, NULL, "at least this many timed passes"},
    {"duration", SB_PARAM_FLOAT, "2", 0, 3600, NULL, "and at least this many seconds of timed passes"},
};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Linear interpolation between closest ranks (numpy's default) on sorted v. */
static double percentile(const double *v, int n, double q) {
    double rank = q / 100 * (n - 1);
    int lo = (int)floor(rank), hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (rank - lo) * (v[hi] - v[lo]);
}

static int add_latency(sb_task_result *out, double *v, int n, int batch, sb_err *err) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++) sum += v[i];
    double mean = sum / n;
    for (int i = 0; i < n; i++) sq += (v[i] - mean) * (v[i] - mean);
    double sd = n > 1 ? sqrt(sq / (n - 1)) : 0, se = n > 1 ? sd / sqrt(n) : NAN;
    int rc = sb_result_add(out, "images_per_s", batch / mean, batch / mean * se / mean, SB_HIGHER_IS_BETTER, "images/s", err);
    const struct { const char *name; double v, se; } lat[] = {
        {"latency_ms_mean", mean, se},           {"latency_ms_p50", percentile(v, n, 50), NAN},
        {"latency_ms_p90", percentile(v, n, 90), NAN}, {"latency_ms_p95", percentile(v, n, 95), NAN},
        {"latency_ms_p99", percentile(v, n, 99), NAN}, {"latency_ms_stdev", sd, NAN},
    };
    for (size_t i = 0; !rc && i < sizeof lat / sizeof lat[0]; i++)
        rc = sb_result_add(out, lat[i].name, 1000 * lat[i].v, 1000 * lat[i].se, SB_LOWER_IS_BETTER, "ms", err);
    return rc;
}

static void random_pixels(float *px, int64_t n, uint64_t seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        px[i] = (float)((x >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1;
    }
}

static int time_passes(sb_vit *v, const float *px, float *logits, int warmup, int iters, double duration, double **out,
                       int *n, sb_err *err) {
    int rc = SB_OK, cap = 0;
    for (int i = 0; !rc && i < warmup; i++) rc = sb_vit_classify(v, px, logits, err);
    double start = sb_wall_seconds();
    *n = 0;
    while (!rc && (*n < iters || sb_wall_seconds() - start < duration)) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            double *bigger = realloc(*out, sizeof(double) * (size_t)cap);
            if (!bigger) return sb_err_set(err, SB_EINTERNAL, "out of memory");
            *out = bigger;
        }
        double t0 = sb_wall_seconds();
        rc = sb_vit_classify(v, px, logits, err);
        (*out)[(*n)++] = sb_wall_seconds() - t0;
    }
    return rc;
}

static int ispeed_run(const sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_task_result *out, sb_err *err) {
    if (!m->vision) return sb_err_set(err, SB_EINPUT, "image-speed: %s is not an image model (ViT/DeiT)", m->path);
    int batch = (int)sb_param_num(p, "batch"), warmup = (int)sb_param_num(p, "warmup");
    int iters = (int)sb_param_num(p, "iterations");
    double duration = sb_param_num(p, "duration");
    const sb_vision *vis = m->vision;
    int64_t n_px = (int64_t)batch * vis->channels * vis->image_size * vis->image_size;
    sb_host host;
    sb_host_describe(ctx ? ctx->pool : NULL, &host);
    snprintf(out->protocol, sizeof out->protocol, "image-speed:batch=%d:warmup=%d:iters>=%d:min_s=%g:threads=%d", batch,
             warmup, iters, duration, host.threads);
    float *px = sb_malloc(err, sizeof(float) * (size_t)n_px);
    float *logits = px ? sb_malloc(err, sizeof(float) * (size_t)batch * (size_t)vis->n_labels) : NULL;
    double *lat = NULL;
    sb_vit *v = NULL;
    int n = 0, rc = logits ? sb_vit_new(m, ctx ? ctx->pool : NULL, batch, &v, err) : SB_EINTERNAL;
    if (!rc) {
        random_pixels(px, n_px, ctx ? ctx->seed : 0);
        rc = time_passes(v, px, logits, warmup, iters, duration, &lat, &n, err);
    }
    if (!rc) rc = add_latency(out, lat, n, batch, err);
    double dense = sb_vit_dense_flops(m);
    if (!rc) rc = sb_result_add(out, "gflops_per_image", sb_vit_last_flops(v) / 1e9, NAN, SB_LOWER_IS_BETTER, "GFLOP", err);
    if (!rc) rc = sb_result_add(out, "flops_ratio", sb_vit_last_flops(v) / dense, NAN, SB_LOWER_IS_BETTER, "", err);
    if (!rc) {
        if (!out->details) out->details = cJSON_CreateObject();
        cJSON_AddItemToObject(out->details, "host", sb_host_to_json(&host));
        cJSON_AddNumberToObject(out->details, "runs", n);
        cJSON_AddNumberToObject(out->details, "dense_gflops_per_image", dense / 1e9);
        cJSON *tok = cJSON_AddArrayToObject(out->details, "tokens_per_block");
        for (int l = 0; l < m->n_layer; l++) cJSON_AddItemToArray(tok, cJSON_CreateNumber(sb_vit_last_tokens(v)[l]));
    }
    sb_vit_free(v);
    free(lat);
    free(logits);
    free(px);
    return rc;
}

const sb_task sb_task_image_speed = {
    .abi = SB_PLUGIN_ABI,
    .name = "image-speed",
    .summary = "image classifier latency percentiles, images/s and GFLOPs per image from the actual token counts",
    .params = ispeed_params,
    .n_params = sizeof ispeed_params / sizeof ispeed_params[0],
    .run = ispeed_run,
};

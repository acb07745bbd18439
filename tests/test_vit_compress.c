/* test_vit_compress.c - weight methods on a ViT, and calibration from images.
 *
 * - calibration samples from an in-memory image set are the patch-embedded
 *   images (the vision forward's block-0 inputs), count capped by the set;
 * - GPTQ's column loop (methods/gptq.h) through the calibration service's
 *   sequential pipeline on image samples: every linear sees all tokens of
 *   every sample, and GPTQ's reconstruction error tr(D H Dᵀ) beats plain
 *   rounding with the same 3-bit grid, summed over the model;
 * - RTN (8-bit) and magnitude pruning applied through the registry: the
 *   classifier still runs, 8-bit logits stay within 2% of dense;
 * - gptq as a method with data=builtin:shapes (the built-in image set). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../datasets/image_set.h"
#include "../methods/gptq.h"
#include "calibration.h"
#include "check.h"
#include "mapped_file.h"
#include "model_snapshot.h"
#include "registry.h"
#include "vision.h"

enum { N_IMG = 5, H = 45, W = 53 };
static char *names[] = {"class_a", "class_b", "class_c", "class_d", "class_e"};

static bool build_set(sb_image_set *set, sb_image *imgs, int32_t *labels, uint8_t *buf) {
    sb_mapped_file mf;
    sb_err err = {0};
    if (!test_expect(sb_mapped_file_open(&mf, "tests/reference/vit/vit/image.rgb", &err) == SB_OK, "%s", err.msg)) return false;
    const uint8_t *src = mf.data;
    for (int k = 0; k < N_IMG; k++) {
        uint8_t *dst = buf + (size_t)k * H * W * 3;
        for (int i = 0; i < H * W * 3; i++) dst[i] = (uint8_t)(k % 2 ? 255 - src[(i + 31 * k) % (H * W * 3)] : src[i] / (k + 1));
        imgs[k] = (sb_image){.width = W, .height = H, .channels = 3, .pixels = dst};
        labels[k] = k;
    }
    sb_mapped_file_close(&mf);
    *set = (sb_image_set){.n_images = N_IMG, .images = imgs, .labels = labels, .n_classes = 5, .class_names = names,
                          .source = "memory"};
    return true;
}

static float *dense_logits(const sb_model *m, const float *px) {
    float *l = malloc(sizeof(float) * 8);
    sb_vit *v;
    sb_err err = {0};
    sb_vit_new(m, NULL, 1, &v, &err);
    sb_vit_classify(v, px, l, &err);
    sb_vit_free(v);
    return l;
}

static float *pixels_of(const sb_model *m, const sb_image *img) {
    float *px = malloc(sizeof(float) * 3 * 32 * 32);
    sb_err err = {0};
    sb_preprocess_image(&m->vision->pre, 3, 32, img->pixels, img->height, img->width, 3, px, &err);
    return px;
}

static void calib_case(const sb_model *m, const sb_image_set *set) {
    test_begin("vit_calibration_from_images");
    sb_calib_config cfg = {.n_samples = 9, .seq_len = 2048, .seed = 3};
    sb_calib_set cs;
    sb_err err = {0};
    if (test_expect(sb_calib_from_images(m, set, &cfg, &cs, &err) == SB_OK, "%s", err.msg)) {
        int T = m->vision->n_prefix + m->vision->n_patches, d = m->d_model;
        test_expect(cs.n_samples == N_IMG && cs.seq_len == T && !strcmp(cs.sampling, "images"), "n %d seq %d", cs.n_samples,
                    cs.seq_len);
        sb_vit *v;
        sb_vit_new(m, NULL, 1, &v, &err);
        float *x = malloc(sizeof(float) * (size_t)T * d);
        bool seen[N_IMG] = {0};
        for (int k = 0; k < N_IMG; k++) { /* every image exactly once, in some order */
            float *px = pixels_of(m, &set->images[k]);
            sb_vit_embed(v, px, x, &err);
            for (int s = 0; s < cs.n_samples; s++)
                if (!memcmp(x, cs.hidden + (int64_t)s * T * d, sizeof(float) * (size_t)T * d)) seen[k] = true;
            test_expect(seen[k], "image %d is not among the samples", k);
            free(px);
        }
        free(x);
        sb_vit_free(v);
        sb_calib_set_free(&cs);
    }
    test_end();
}

/* ---- GPTQ through the sequential pipeline -------------------------------- */

typedef struct {
    sb_model *m;
    int64_t rows_expected;
    double gptq_err, rtn_err;
    bool rows_ok;
} gptq_state;

/* tr(D H Dᵀ), D = W - Q. */
static double recon_error(const float *w, const float *q, const double *h, int64_t rows, int64_t cols) {
    double total = 0;
    double *dr = malloc(sizeof(double) * (size_t)cols);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) dr[c] = (double)w[r * cols + c] - q[r * cols + c];
        for (int64_t a = 0; a < cols; a++)
            for (int64_t b = 0; b < cols; b++) total += dr[a] * h[a * cols + b] * dr[b];
    }
    free(dr);
    return total;
}

/* Per-row asymmetric min-max rounding to 3 bits, the grid GPTQ uses. */
static void rtn3(const float *w, int64_t rows, int64_t cols, float *q) {
    for (int64_t r = 0; r < rows; r++) {
        float lo = 0, hi = 0;
        for (int64_t c = 0; c < cols; c++) {
            lo = fminf(lo, w[r * cols + c]);
            hi = fmaxf(hi, w[r * cols + c]);
        }
        float scale = (hi - lo) / 7;
        if (scale == 0) scale = 1;
        float zero = roundf(-lo / scale);
        for (int64_t c = 0; c < cols; c++) {
            float code = fminf(fmaxf(roundf(w[r * cols + c] / scale) + zero, 0), 7);
            q[r * cols + c] = scale * (code - zero);
        }
    }
}

static int quantize_cb(void *user, int layer, int which, const sb_linear_stats *st, sb_err *err) {
    gptq_state *g = user;
    sb_linear *lin = sb_block_linear(&g->m->blocks[layer], which);
    int64_t rows = lin->rows, cols = lin->cols;
    g->rows_ok = g->rows_ok && st->n_rows == g->rows_expected;
    float *w = malloc(sizeof(float) * (size_t)(rows * cols)), *q = malloc(sizeof(float) * (size_t)(rows * cols));
    float *r = malloc(sizeof(float) * (size_t)(rows * cols)), *scales = malloc(sizeof(float) * (size_t)rows);
    float *zeros = malloc(sizeof(float) * (size_t)rows);
    uint8_t *codes = malloc((size_t)(rows * cols));
    int32_t *g_idx = malloc(sizeof(int32_t) * (size_t)cols);
    double *h = malloc(sizeof(double) * (size_t)(cols * cols));
    lin->fmt->decode_rows(lin, 0, rows, w);
    memcpy(h, st->h, sizeof(double) * (size_t)(cols * cols));
    sb_gptq_opts o = {.bits = 3, .group_size = 0, .damp = 0.01, .block_size = 128};
    sb_gptq_out out = {codes, q, g_idx, scales, zeros, 0};
    int rc = sb_gptq_quantize(w, rows, cols, h, &o, NULL, &out, err);
    if (!rc) {
        rtn3(w, rows, cols, r);
        g->gptq_err += recon_error(w, q, st->h, rows, cols);
        g->rtn_err += recon_error(w, r, st->h, rows, cols);
        float *bias = NULL;
        if (lin->bias) {
            bias = malloc(sizeof(float) * (size_t)rows);
            memcpy(bias, lin->bias, sizeof(float) * (size_t)rows);
        }
        sb_linear_free(lin); /* the test owns this model: replace in place */
        *lin = (sb_linear){.fmt = &sb_format_f32, .rows = rows, .cols = cols, .data = q, .owned = q, .bias = bias};
        q = NULL;
    }
    free(w), free(q), free(r), free(scales), free(zeros), free(codes), free(g_idx), free(h);
    return rc;
}

static void gptq_case(const sb_image_set *set) {
    test_begin("vit_gptq_image_calibration");
    sb_model *m;
    sb_err err = {0};
    if (!test_expect(sb_model_load("tests/reference/vit/vit", &m, &err) == SB_OK, "%s", err.msg)) return test_end();
    float *px = pixels_of(m, &set->images[0]), *dense = dense_logits(m, px);
    sb_calib_config cfg = {.n_samples = N_IMG, .seq_len = 2, .seed = 0};
    sb_calib_set cs;
    sb_calib_run *run = NULL;
    gptq_state g = {.m = m, .rows_ok = true};
    bool ok = test_expect(sb_calib_from_images(m, set, &cfg, &cs, &err) == SB_OK, "%s", err.msg) &&
              test_expect(sb_calib_run_new(m, &cs, NULL, &run, &err) == SB_OK, "%s", err.msg);
    g.rows_expected = (int64_t)cs.n_samples * cs.seq_len;
    if (ok && test_expect(sb_calib_sequential(run, m, true, quantize_cb, &g, &err) == SB_OK, "%s", err.msg)) {
        test_expect(g.rows_ok, "a linear saw other than %lld calibration rows", (long long)g.rows_expected);
        test_expect(g.gptq_err < g.rtn_err, "GPTQ error %g not below RTN's %g", g.gptq_err, g.rtn_err);
        float *after = dense_logits(m, px);
        test_expect(isfinite(after[0]) && test_max_abs_diff(after, dense, 5) > 0, "quantized logits");
        free(after);
    }
    sb_calib_run_free(run);
    if (ok) sb_calib_set_free(&cs);
    free(px);
    free(dense);
    sb_model_free(m);
    test_end();
}

/* ---- methods through the registry ---------------------------------------- */

static int apply(sb_model *m, const char *method, const char *const *args, int n, sb_method_report *rep, sb_err *err) {
    *err = (sb_err){0};
    const sb_method *meth = sb_registry_method(method);
    sb_params p;
    int rc = sb_params_from_strings(meth->params, meth->n_params, args, n, "test", &p, err);
    return rc ? rc : meth->apply(m, &p, NULL, rep, err);
}

static void method_case(const sb_image_set *set, const char *method, const char *const *args, int n, double max_rel) {
    char name[64];
    snprintf(name, sizeof name, "vit_method_%s", method);
    test_begin(name);
    sb_model *m;
    sb_err err = {0};
    if (!test_expect(sb_model_load("tests/reference/vit/vit", &m, &err) == SB_OK, "%s", err.msg)) return test_end();
    float *px = pixels_of(m, &set->images[1]), *dense = dense_logits(m, px);
    sb_method_report rep = {0};
    sb_model_snapshot *snap = NULL; /* methods leave the originals to the runner's restore */
    sb_model_snapshot_take(m, &snap, &err);
    if (test_expect(apply(m, method, args, n, &rep, &err) == SB_OK, "%s", err.msg)) {
        float *after = dense_logits(m, px);
        double rel = test_max_abs_diff(after, dense, 5) / test_max_abs(dense, 5);
        test_expect(rel > 0 && rel <= max_rel, "relative logit change %g (limit %g)", rel, max_rel);
        test_expect(rep.bits_per_weight > 0 && rep.bits_per_weight < 32, "bits per weight %g", rep.bits_per_weight);
        free(after);
    }
    cJSON_Delete(rep.details);
    if (snap) sb_model_snapshot_restore(m, snap);
    sb_model_snapshot_free(snap);
    free(px);
    free(dense);
    sb_model_free(m);
    test_end();
}

static void gptq_method_case(void) {
    const char *args[] = {"data=builtin:shapes", "n_samples=8", "bits=4", "group_size=0"};
    test_begin("vit_method_gptq_builtin_shapes");
    sb_model *m = NULL;
    sb_err err = {0};
    sb_method_report rep = {0};
    sb_model_snapshot *snap = NULL;
    if (test_expect(sb_model_load("tests/reference/vit/vit", &m, &err) == SB_OK, "%s", err.msg) &&
        test_expect(sb_model_snapshot_take(m, &snap, &err) == SB_OK, "%s", err.msg)) {
        test_expect(apply(m, "gptq", args, 4, &rep, &err) == SB_OK, "%s", err.msg);
        test_expect(rep.bits_per_weight > 4 && rep.bits_per_weight < 5, "bits %g", rep.bits_per_weight);
        cJSON_Delete(rep.details);
        sb_model_snapshot_restore(m, snap);
    }
    sb_model_snapshot_free(snap);
    sb_model_free(m);
    test_end();
}

int main(void) {
    sb_model *m;
    sb_err err = {0};
    if (sb_model_load("tests/reference/vit/vit", &m, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    sb_image_set set;
    sb_image imgs[N_IMG];
    int32_t labels[N_IMG];
    uint8_t *buf = malloc((size_t)N_IMG * H * W * 3);
    if (build_set(&set, imgs, labels, buf)) {
        calib_case(m, &set);
        gptq_case(&set);
        const char *rtn[] = {"bits=8", "group_size=32"}, *mag[] = {"pattern=n:m"};
        method_case(&set, "rtn", rtn, 2, 0.02);
        method_case(&set, "magnitude", mag, 1, 1.0);
        gptq_method_case();
    }
    free(buf);
    sb_model_free(m);
    return test_status();
}

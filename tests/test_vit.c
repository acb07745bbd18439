/* test_vit.c - ViT / DeiT against Hugging Face transformers.
 *
 * tests/reference/vit/make_vit_fixtures.py saved tiny random image
 * classifiers with their preprocessor configs, a raw test image, the slow
 * (PIL) image processor's pixel tensor for it and the model's logits.
 * Each case checks: our preprocessing of the raw image gives the same
 * pixels within 1e-5; our forward pass on the reference pixels gives the
 * logits within 1e-4 relative (to max |logit|); a batch of two images
 * gives each image's single-image logits; bad folders fail with SB_EINPUT. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "mapped_file.h"
#include "vision.h"

static const char *vit_dir = "tests/reference/vit";

/* Reads dir/name into a malloc'ed buffer of exactly `bytes` bytes. */
static void *read_exact(const char *dir, const char *name, size_t bytes) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sb_mapped_file mf;
    sb_err err = {0};
    if (!test_expect(sb_mapped_file_open(&mf, path, &err) == SB_OK, "%s", err.msg)) return NULL;
    void *buf = NULL;
    if (test_expect(mf.size == bytes, "%s: %zu bytes, expected %zu", path, (size_t)mf.size, bytes)) {
        buf = malloc(bytes);
        memcpy(buf, mf.data, bytes);
    }
    sb_mapped_file_close(&mf);
    return buf;
}

typedef struct {
    int h, w, size, n_labels;
    uint8_t *image;
    float *pixels, *logits;
} fixture;

static bool fixture_load(const char *dir, fixture *f) {
    memset(f, 0, sizeof *f);
    char path[1024], *text;
    sb_err err = {0};
    snprintf(path, sizeof path, "%s/reference.json", dir);
    if (!test_expect(sb_read_text_file(path, &text, NULL, &err) == SB_OK, "%s", err.msg)) return false;
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *hwc = cJSON_GetObjectItem(j, "image_hwc"), *chw = cJSON_GetObjectItem(j, "pixels_chw");
    const cJSON *nl = cJSON_GetObjectItem(j, "num_labels");
    bool ok = test_expect(cJSON_IsArray(hwc) && cJSON_IsArray(chw) && cJSON_IsNumber(nl), "%s: malformed", path);
    if (ok) {
        f->h = cJSON_GetArrayItem(hwc, 0)->valueint;
        f->w = cJSON_GetArrayItem(hwc, 1)->valueint;
        f->size = cJSON_GetArrayItem(chw, 1)->valueint;
        f->n_labels = nl->valueint;
        f->image = read_exact(dir, "image.rgb", (size_t)f->h * f->w * 3);
        f->pixels = read_exact(dir, "pixels.f32", sizeof(float) * 3 * (size_t)f->size * f->size);
        f->logits = read_exact(dir, "logits.f32", sizeof(float) * (size_t)f->n_labels);
        ok = f->image && f->pixels && f->logits;
    }
    cJSON_Delete(j);
    return ok;
}

static void fixture_free(fixture *f) {
    free(f->image);
    free(f->pixels);
    free(f->logits);
}

static double rel_diff(const float *a, const float *ref, long n) {
    double scale = test_max_abs(ref, n);
    return test_max_abs_diff(a, ref, n) / (scale > 0 ? scale : 1);
}

static void check_batch(const sb_model *m, sb_pool *pool, const float *pixels, const float *logits1) {
    int S = m->vision->image_size, L = m->vision->n_labels;
    int64_t n = 3 * (int64_t)S * S;
    float *two = malloc(sizeof(float) * (size_t)(2 * n)), *out = malloc(sizeof(float) * (size_t)(2 * L));
    float *other = malloc(sizeof(float) * (size_t)L);
    for (int64_t i = 0; i < n; i++) {
        two[i] = 0.5f * pixels[n - 1 - i]; /* a different image first */
        two[n + i] = pixels[i];
    }
    sb_vit *v1 = NULL, *v2 = NULL;
    sb_err err = {0};
    bool ok = test_expect(sb_vit_new(m, pool, 2, &v2, &err) == SB_OK && sb_vit_new(m, pool, 1, &v1, &err) == SB_OK,
                          "%s", err.msg);
    ok = ok && test_expect(sb_vit_classify(v2, two, out, &err) == SB_OK && sb_vit_classify(v1, two, other, &err) == SB_OK,
                           "%s", err.msg);
    if (ok) {
        test_expect(rel_diff(out + L, logits1, L) <= 1e-5, "batch row 1 differs from the single pass by %g",
                    rel_diff(out + L, logits1, L));
        test_expect(rel_diff(out, other, L) <= 1e-5, "batch row 0 differs from its single pass");
    }
    sb_vit_free(v1);
    sb_vit_free(v2);
    free(two);
    free(out);
    free(other);
}

static void parity_case(const char *name, sb_pool *pool) {
    char dir[512], tname[64];
    snprintf(dir, sizeof dir, "%s/%s", vit_dir, name);
    snprintf(tname, sizeof tname, "vit_parity_%s", name);
    test_begin(tname);
    fixture f;
    sb_model *m = NULL;
    sb_err err = {0};
    if (!fixture_load(dir, &f) || !test_expect(sb_model_load(dir, &m, &err) == SB_OK, "%s", err.msg)) {
        fixture_free(&f);
        test_end();
        return;
    }
    const sb_vision *vis = m->vision;
    test_expect(vis && vis->n_labels == f.n_labels && vis->image_size == f.size, "vision shape");
    test_expect(vis && (strcmp(vis->labels[1], "class_b") == 0 || strcmp(vis->labels[1], "square") == 0), "id2label");
    float *px = malloc(sizeof(float) * 3 * (size_t)f.size * f.size), *logits = malloc(sizeof(float) * (size_t)f.n_labels);
    if (test_expect(sb_preprocess_image(&vis->pre, 3, vis->image_size, f.image, f.h, f.w, 3, px, &err) == SB_OK, "%s",
                    err.msg)) {
        double d = test_max_abs_diff(px, f.pixels, 3L * f.size * f.size);
        test_expect(d <= 1e-5, "pixels differ from the PIL processor's by %g", d);
    }
    sb_vit *v = NULL;
    if (test_expect(sb_vit_new(m, pool, 1, &v, &err) == SB_OK, "%s", err.msg) &&
        test_expect(sb_vit_classify(v, f.pixels, logits, &err) == SB_OK, "%s", err.msg)) {
        double r = rel_diff(logits, f.logits, f.n_labels);
        test_expect(r <= 1e-4, "logits differ by %g relative", r);
        test_expect(sb_vit_last_flops(v) == sb_vit_dense_flops(m), "dense FLOPs");
        check_batch(m, pool, f.pixels, logits);
    }
    sb_vit_free(v);
    free(px);
    free(logits);
    sb_model_free(m);
    fixture_free(&f);
    test_end();
}

/* PIL's resample on a case worked by hand (and checked against PIL): 4 -> 2
 * bilinear widens the triangle by the factor 2, so output 0 (centre 1.0)
 * takes inputs 0, 1, 2 with weights 0.75, 0.75, 0.25 / 1.75 -> 500/7 = 71.4,
 * output 1 (centre 3.0) inputs 1, 2, 3 with 0.25, 0.75, 0.75 -> 1465/7 = 209.3. */
static void resize_case(void) {
    test_begin("vit_resize_bilinear_by_hand");
    uint8_t src[4] = {0, 100, 200, 255}, dst[2];
    sb_err err = {0};
    if (test_expect(sb_resize_u8(src, 1, 4, 1, dst, 1, 2, SB_RESAMPLE_BILINEAR, &err) == SB_OK, "%s", err.msg)) {
        test_expect(dst[0] == 71 && dst[1] == 209, "got %d %d", dst[0], dst[1]);
    }
    test_expect(sb_resize_u8(src, 1, 4, 1, dst, 0, 2, SB_RESAMPLE_BILINEAR, &err) == SB_EINPUT, "zero size refused");
    test_end();
}

/* ---- bidirectional attention in both engine paths against plain loops ---- */

static void ref_norm(const sb_norm *n, float eps, const float *x, float *y, int d) {
    double mean = 0, sq = 0;
    for (int i = 0; i < d; i++) mean += x[i];
    mean /= d;
    for (int i = 0; i < d; i++) sq += (x[i] - mean) * (x[i] - mean);
    for (int i = 0; i < d; i++) y[i] = (float)((x[i] - mean) / sqrt(sq / d + eps) * n->weight[i] + n->bias[i]);
}

static void ref_linear(const sb_linear *w, const float *x, float *y) {
    const float *W = w->data;
    for (int64_t r = 0; r < w->rows; r++) {
        double acc = w->bias ? w->bias[r] : 0;
        for (int64_t c = 0; c < w->cols; c++) acc += (double)W[r * w->cols + c] * x[c];
        y[r] = (float)acc;
    }
}

/* One pre-norm ViT block over T tokens, every query seeing every key. */
static void ref_block(const sb_model *m, const sb_block *b, const float *x, int T, float *out) {
    int d = m->d_model, nh = b->n_head, hd = b->head_dim, ff = (int)b->w_up.rows;
    float *h = malloc(sizeof(float) * (size_t)T * d), *q = malloc(sizeof(float) * (size_t)T * d);
    float *k = malloc(sizeof(float) * (size_t)T * d), *v = malloc(sizeof(float) * (size_t)T * d);
    float *att = calloc((size_t)T * d, sizeof(float)), *o = malloc(sizeof(float) * (size_t)d), *u = malloc(sizeof(float) * (size_t)ff);
    for (int t = 0; t < T; t++) {
        ref_norm(&b->attn_norm, m->norm_eps, x + t * d, h + t * d, d);
        ref_linear(&b->wq, h + t * d, q + t * d);
        ref_linear(&b->wk, h + t * d, k + t * d);
        ref_linear(&b->wv, h + t * d, v + t * d);
    }
    for (int t = 0; t < T; t++)
        for (int hh = 0; hh < nh; hh++) {
            double p[64], mx = -1e300, sum = 0;
            for (int j = 0; j < T; j++) {
                double dot = 0;
                for (int i = 0; i < hd; i++) dot += (double)q[t * d + hh * hd + i] * k[j * d + hh * hd + i];
                p[j] = dot * m->attn_scale;
                mx = p[j] > mx ? p[j] : mx;
            }
            for (int j = 0; j < T; j++) sum += p[j] = exp(p[j] - mx);
            for (int j = 0; j < T; j++)
                for (int i = 0; i < hd; i++) att[t * d + hh * hd + i] += (float)(p[j] / sum * v[j * d + hh * hd + i]);
        }
    for (int t = 0; t < T; t++) {
        ref_linear(&b->wo, att + t * d, o);
        for (int i = 0; i < d; i++) out[t * d + i] = x[t * d + i] + o[i];
        ref_norm(&b->mlp_norm, m->norm_eps, out + t * d, h, d);
        ref_linear(&b->w_up, h, u);
        for (int i = 0; i < ff; i++) u[i] = (float)(0.5 * u[i] * (1 + erf(u[i] / sqrt(2.0))));
        ref_linear(&b->w_down, u, o);
        for (int i = 0; i < d; i++) out[t * d + i] += o[i];
    }
    free(h), free(q), free(k), free(v), free(att), free(o), free(u);
}

static void bidirectional_case(sb_pool *pool) {
    test_begin("vit_bidirectional_attention_paths");
    sb_model *m;
    sb_err err = {0};
    if (!test_expect(sb_model_load("tests/reference/vit/vit", &m, &err) == SB_OK, "%s", err.msg)) return test_end();
    int d = m->d_model;
    const int counts[] = {1, 3, 4, 5, 9}; /* up to 4: the dot-product path; more: the GEMM path */
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        int T = counts[c];
        float *x = malloc(sizeof(float) * (size_t)T * d), *y = malloc(sizeof(float) * (size_t)T * d);
        float *r = malloc(sizeof(float) * (size_t)T * d);
        for (int i = 0; i < T * d; i++) x[i] = sinf(0.7f * i + T);
        sb_session *s;
        if (test_expect(sb_session_new(m, pool, 1, T, T, &s, &err) == SB_OK, "%s", err.msg)) {
            sb_session_forward_blocks(s, x, T, 0, 1, y, &err);
            ref_block(m, &m->blocks[0], x, T, r);
            double diff = test_max_abs_diff(y, r, (long)T * d), scale = test_max_abs(r, (long)T * d);
            test_expect(diff <= 1e-5 * scale, "%d tokens: block differs from plain loops by %g", T, diff);
            sb_session_free(s);
        }
        free(x), free(y), free(r);
    }
    sb_model_free(m);
    test_end();
}

/* A copy of the vit fixture folder in a temporary directory, with
 * config.json / preprocessor_config.json text replaced where given. */
static bool make_variant(char *dir, const char *config, const char *pre) {
    char path[600], src[600];
    snprintf(dir, 256, "/tmp/sb_vit_XXXXXX");
    if (!mkdtemp(dir)) return false;
    const char *files[] = {"config.json", "preprocessor_config.json", "model.safetensors"};
    const char *texts[] = {config, pre, NULL};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        snprintf(src, sizeof src, "%s/vit/%s", vit_dir, files[i]);
        if (texts[i]) {
            FILE *f = fopen(path, "w");
            if (!f) return false;
            fputs(texts[i], f);
            fclose(f);
        } else {
            char *abs = realpath(src, NULL);
            bool ok = abs && symlink(abs, path) == 0;
            free(abs);
            if (!ok) return false;
        }
    }
    return true;
}

static void remove_variant(const char *dir) {
    const char *files[] = {"config.json", "preprocessor_config.json", "model.safetensors"};
    char path[600];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void expect_refused(const char *config, const char *pre, const char *needle) {
    char dir[256];
    if (!test_expect(make_variant(dir, config, pre), "cannot make a temporary folder")) return;
    sb_model *m = NULL;
    sb_err err = {0};
    int rc = sb_model_load(dir, &m, &err);
    test_expect(rc == SB_EINPUT && strstr(err.msg, needle), "expected SB_EINPUT mentioning '%s', got %d: %s", needle, rc,
                err.msg);
    if (!rc) sb_model_free(m);
    remove_variant(dir);
}

static void bad_folder_case(void) {
    test_begin("vit_bad_folders");
    sb_model *m = NULL;
    sb_err err = {0};
    test_expect(sb_model_load("tests/reference/vit/no_such_model", &m, &err) == SB_EINPUT, "missing folder");
    const char *good_pre = "{}";
    const char *base = "{\"model_type\": \"vit\", \"hidden_size\": 32, \"num_hidden_layers\": 2, "
                       "\"num_attention_heads\": 4, \"intermediate_size\": 64, \"image_size\": 32, ";
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s\"patch_size\": 7}", base);
    expect_refused(cfg, good_pre, "whole number of patches");
    snprintf(cfg, sizeof cfg, "%s\"patch_size\": 8, \"hidden_act\": \"relu\"}", base);
    expect_refused(cfg, good_pre, "hidden_act");
    expect_refused("{\"model_type\": \"vit\", \"hidden_size\": 32, \"num_hidden_layers\": 3, \"num_attention_heads\": 4, "
                   "\"intermediate_size\": 64, \"image_size\": 32, \"patch_size\": 8}",
                   good_pre, "missing");
    expect_refused("{\"model_type\": \"vit\", \"hidden_size\": 32, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
                   "\"intermediate_size\": 48, \"image_size\": 32, \"patch_size\": 8}",
                   good_pre, "shape");
    snprintf(cfg, sizeof cfg, "%s\"patch_size\": 8}", base);
    expect_refused(cfg, "{\"resample\": 5}", "resample");
    expect_refused(cfg, "{\"image_std\": [1, 0, 1]}", "image_std");
    expect_refused(cfg, "{\"size\": {\"height\": -3}}", "size");
    expect_refused(cfg, "{\"image_mean\": 3", "preprocessor_config.json");
    /* the same config with the defaults preprocessor loads */
    char dir[256];
    if (test_expect(make_variant(dir, cfg, good_pre), "temporary folder")) {
        test_expect(sb_model_load(dir, &m, &err) == SB_OK, "defaults: %s", err.msg);
        if (m) test_expect(m->vision->pre.resize_h == 32 && m->vision->pre.mean[0] == 0.5f, "default preprocessing");
        sb_model_free(m);
        remove_variant(dir);
    }
    test_end();
}

int main(void) {
    sb_pool *pool;
    sb_err err = {0};
    if (sb_pool_new(2, &pool, &err)) return 1;
    resize_case();
    bidirectional_case(pool);
    parity_case("vit", pool);
    parity_case("vit_bicubic_crop", pool);
    parity_case("deit", pool);
    parity_case("vit_shapes", pool);
    parity_case("deit_distilled", pool);
    bad_folder_case();
    sb_pool_free(pool);
    return test_status();
}

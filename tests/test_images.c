/* test_images.c - the image loaders (datasets/image_*.c) against the files
 * and decoded pixels of tests/reference/images/make_image_fixtures.py
 * (Pillow for PNG/PPM/PGM, numpy in torchvision's CIFAR/MNIST layout), the
 * bad-input messages, and the built-in synthetic set. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../datasets/image_set.h"
#include "check.h"
#include "image_metrics.h"
#include "plugin.h"
#include "mapped_file.h"

#define REF "tests/reference/images"

static cJSON *load_json(const char *path) {
    sb_err err = {0};
    char *text = NULL;
    if (!test_expect(sb_read_text_file(path, &text, NULL, &err) == SB_OK, "%s", err.msg)) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    test_expect(j != NULL, "%s: bad JSON", path);
    return j;
}

/* true when img holds exactly the bytes written as hex */
static bool same_pixels(const sb_image *img, const char *hex) {
    size_t n = (size_t)img->width * img->height * img->channels;
    if (strlen(hex) != 2 * n) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1 || v != img->pixels[i]) return false;
    }
    return true;
}

static sb_image_set *load(const char *path, int limit) {
    sb_err err = {0};
    sb_image_set *set = NULL;
    test_expect(sb_image_set_load(path, limit, &set, &err) == SB_OK, "%s: %s", path, err.msg);
    return set;
}

static void test_folder(void) {
    test_begin("images_folder_png_ppm_pgm");
    cJSON *j = load_json(REF "/expected_folder.json");
    sb_image_set *set = load(REF "/folder", 0);
    if (j && set) {
        const cJSON *imgs = cJSON_GetObjectItem(j, "images");
        test_expect(set->n_images == cJSON_GetArraySize(imgs), "%d images, want %d", set->n_images, cJSON_GetArraySize(imgs));
        test_expect(set->n_classes == 2 && !strcmp(set->class_names[0], "cat") && !strcmp(set->class_names[1], "dog"),
                    "classes wrong");
        for (int i = 0; i < set->n_images && i < cJSON_GetArraySize(imgs); i++) {
            const cJSON *e = cJSON_GetArrayItem(imgs, i);
            const sb_image *im = &set->images[i];
            const char *file = cJSON_GetObjectItem(e, "file")->valuestring;
            test_expect(im->width == cJSON_GetObjectItem(e, "width")->valueint &&
                            im->height == cJSON_GetObjectItem(e, "height")->valueint &&
                            im->channels == cJSON_GetObjectItem(e, "channels")->valueint,
                        "%s: %dx%dx%d", file, im->width, im->height, im->channels);
            test_expect(set->labels[i] == cJSON_GetObjectItem(e, "label")->valueint, "%s: label %d", file, set->labels[i]);
            test_expect(same_pixels(im, cJSON_GetObjectItem(e, "pixels")->valuestring), "%s: pixels differ from Pillow's", file);
        }
    }
    sb_image_set_free(set);
    set = load(REF "/folder", 2);
    if (set) test_expect(set->n_images == 2 && set->labels[1] == 0, "limit 2 kept %d images", set->n_images);
    sb_image_set_free(set);
    cJSON_Delete(j);
    test_end();
}

/* The binary formats: labels, class names and pixels in HWC order. */
static void check_binary(const char *name, const char *path, int n_classes, const char *first_name) {
    cJSON *j = load_json(REF "/expected_binary.json");
    sb_image_set *set = load(path, 0);
    if (j && set) {
        const cJSON *e = cJSON_GetObjectItem(j, name);
        const cJSON *labels = cJSON_GetObjectItem(e, "labels"), *px = cJSON_GetObjectItem(e, "pixels");
        test_expect(set->n_images == cJSON_GetArraySize(labels), "%s: %d images", name, set->n_images);
        test_expect(set->n_classes == n_classes && !strcmp(set->class_names[0], first_name), "%s: %d classes, first '%s'",
                    name, set->n_classes, set->class_names[0]);
        for (int i = 0; i < set->n_images && i < cJSON_GetArraySize(labels); i++) {
            test_expect(set->labels[i] == cJSON_GetArrayItem(labels, i)->valueint, "%s[%d]: label %d", name, i, set->labels[i]);
            test_expect(same_pixels(&set->images[i], cJSON_GetArrayItem(px, i)->valuestring), "%s[%d]: pixels differ", name, i);
        }
    }
    sb_image_set_free(set);
    cJSON_Delete(j);
}

static void test_binary(void) {
    test_begin("images_cifar10");
    check_binary("cifar10", REF "/cifar10/data_batch_1.bin", 10, "airplane");
    test_end();
    test_begin("images_cifar100");
    check_binary("cifar100", REF "/cifar100/train.bin", 100, "0");
    test_end();
    test_begin("images_mnist_idx");
    check_binary("mnist", REF "/mnist/train-images-idx3-ubyte", 10, "0");
    check_binary("mnist", REF "/mnist/train-labels-idx1-ubyte", 10, "0");
    test_end();
}

static void expect_bad(const char *path, const char *needle) {
    sb_err err = {0};
    sb_image_set *set = NULL;
    int rc = sb_image_set_load(path, 0, &set, &err);
    test_expect(rc == SB_EINPUT && set == NULL, "%s: status %d, want SB_EINPUT", path, rc);
    test_expect(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", path, err.msg, needle);
}

static void test_bad(void) {
    test_begin("images_bad_input");
    expect_bad(REF "/bad/truncated", "cut.png: bad or truncated PNG");
    expect_bad(REF "/bad/data_batch_9.bin", "not a whole number of CIFAR-10 records");
    expect_bad(REF "/bad/magic-images-idx3-ubyte", "bad IDX magic");
    expect_bad(REF "/bad/count-labels-idx1-ubyte", "2 images but");
    expect_bad(REF "/nowhere", "no such file");
    expect_bad("builtin:circles", "unknown built-in image set");
    test_end();
}

/* PPM/PGM header edge cases written on the fly. */
static void test_pnm(void) {
    test_begin("images_pnm_header");
#define C(s) s, sizeof(s) - 1
    static const struct { const char *bytes; size_t len; int ok; unsigned first; } cases[] = {
        {C("P5\n# comment\n2 1\n15\n\x0f\x00"), 1, 255},  /* maxval 15 rescales to 255 */
        {C("P5 2 1 255 \x07\x08"), 1, 7},
        {C("P5 2 1 255 \x07"), 0, 0},                     /* truncated */
        {C("P6 1 1 65535 \x01\x02\x03"), 0, 0},           /* 16-bit not supported */
        {C("P5 99999999 1 255 "), 0, 0},                  /* absurd width */
        {C("P5 2 1 9 \x0a\x00"), 0, 0},                   /* sample above maxval */
    };
    char path[64];
    snprintf(path, sizeof path, "/tmp/test_images_%d.pgm", (int)getpid());
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *f = fopen(path, "wb");
        fwrite(cases[i].bytes, 1, cases[i].len, f);
        fclose(f);
        sb_image img;
        sb_err err = {0};
        int rc = sb_image_read(path, &img, &err);
        test_expect((rc == SB_OK) == cases[i].ok, "case %zu: status %d (%s)", i, rc, err.msg);
        if (rc == SB_OK) test_expect(img.pixels[0] == cases[i].first, "case %zu: first sample %u", i, img.pixels[0]);
        else test_expect(rc == SB_EINPUT && strstr(err.msg, path), "case %zu: message '%s' does not name the file", i, err.msg);
        sb_image_release(&img);
    }
    remove(path);
    test_end();
}

static void test_synth(void) {
    test_begin("images_synthetic_shapes");
    sb_image_set *a = load("builtin:shapes:valid", 0), *b = load("builtin:shapes:valid", 50);
    sb_image_set *t = load("builtin:shapes", 50);
    if (a && b && t) {
        test_expect(a->n_images == 1000 && a->n_classes == 10, "%d images, %d classes", a->n_images, a->n_classes);
        /* a limit is a prefix; image i depends on (split, i) only */
        test_expect(memcmp(a->images[49].pixels, b->images[49].pixels, 32 * 32 * 3) == 0, "limit changed image 49");
        test_expect(memcmp(a->images[0].pixels, t->images[0].pixels, 32 * 32 * 3) != 0, "valid and test share image 0");
        int counts[10] = {0};
        double mean = 0;
        for (int i = 0; i < a->n_images; i++) {
            counts[a->labels[i]]++;
            for (int k = 0; k < 32 * 32 * 3; k++) mean += a->images[i].pixels[k];
        }
        for (int c = 0; c < 10; c++) test_expect(counts[c] == 100, "class %d has %d images", c, counts[c]);
        mean /= 1000.0 * 32 * 32 * 3;
        test_expect(mean > 80 && mean < 175, "mean pixel %.1f", mean);
        /* two images of one class differ (random placement, colours and noise) */
        test_expect(memcmp(a->images[0].pixels, a->images[10].pixels, 32 * 32 * 3) != 0, "images 0 and 10 equal");
    }
    sb_image_set_free(a);
    sb_image_set_free(b);
    sb_image_set_free(t);
    test_end();
}

/* ---- image quality ------------------------------------------------------------------------------------ */

extern const sb_task sb_task_image_quality;

/* Every pair's MSE, PSNR and SSIM against scikit-image's (expected_quality.json). */
static void test_metrics(void) {
    test_begin("image_metrics_vs_skimage");
    cJSON *j = load_json(REF "/expected_quality.json");
    for (int i = 0; j && i < cJSON_GetArraySize(j); i++) {
        const cJSON *e = cJSON_GetArrayItem(j, i);
        const char *name = cJSON_GetObjectItem(e, "name")->valuestring;
        char pa[256], pb[256];
        snprintf(pa, sizeof pa, REF "/quality/ref/x/%s.png", name);
        snprintf(pb, sizeof pb, REF "/quality/dist/x/%s.png", name);
        sb_image a = {0}, b = {0};
        sb_err err = {0};
        double ssim = -1;
        int rc = sb_image_read(pa, &a, &err);
        if (rc == SB_OK) rc = sb_image_read(pb, &b, &err);
        if (rc == SB_OK) rc = sb_image_ssim(&a, &b, 255, &ssim, name, &err);
        if (test_expect(rc == SB_OK, "%s: %s", name, err.msg)) {
            double mse = sb_image_mse(&a, &b), psnr = sb_psnr_from_mse(mse, 255);
            double want_mse = cJSON_GetObjectItem(e, "mse")->valuedouble, want_psnr = cJSON_GetObjectItem(e, "psnr")->valuedouble;
            double want_ssim = cJSON_GetObjectItem(e, "ssim")->valuedouble;
            test_expect(fabs(mse - want_mse) <= 1e-4 * want_mse, "%s: mse %.9g, skimage %.9g", name, mse, want_mse);
            test_expect(fabs(psnr - want_psnr) <= 1e-4, "%s: psnr %.9g, skimage %.9g", name, psnr, want_psnr);
            test_expect(fabs(ssim - want_ssim) <= 1e-4, "%s: ssim %.9g, skimage %.9g", name, ssim, want_ssim);
        }
        sb_image_release(&a);
        sb_image_release(&b);
    }
    cJSON_Delete(j);
    test_end();
}

static int run_quality(const char *ref, const char *images, sb_task_result *res, sb_err *err) {
    char a[300], b[300];
    snprintf(a, sizeof a, "reference=%s", ref);
    snprintf(b, sizeof b, "images=%s", images);
    const char *assign[] = {a, b};
    sb_params p;
    memset(res, 0, sizeof *res);
    int rc = sb_params_from_strings(sb_task_image_quality.params, sb_task_image_quality.n_params, assign, 2, "test", &p, err);
    sb_run_ctx ctx = {0};
    return rc == SB_OK ? sb_task_image_quality.run(NULL, &p, &ctx, res, err) : rc;
}

/* The task: means over the pairs equal the means of skimage's values; bad pairs are SB_EINPUT. */
static void test_quality_task(void) {
    test_begin("image_quality_task");
    cJSON *j = load_json(REF "/expected_quality.json");
    sb_task_result res;
    sb_err err = {0};
    int rc = run_quality(REF "/quality/ref", REF "/quality/dist", &res, &err);
    if (j && test_expect(rc == SB_OK, "%s", err.msg)) {
        static const char *const names[] = {"psnr", "ssim", "mse"};
        for (int k = 0; k < 3; k++) {
            double want = 0;
            int n = cJSON_GetArraySize(j);
            for (int i = 0; i < n; i++) want += cJSON_GetObjectItem(cJSON_GetArrayItem(j, i), names[k])->valuedouble / n;
            const sb_metric *m = sb_result_find(&res, names[k]);
            test_expect(m && fabs(m->value - want) <= 1e-4 * fmax(1, fabs(want)), "%s: %.9g, skimage mean %.9g", names[k],
                        m ? m->value : NAN, want);
        }
    }
    sb_result_clear(&res);
    memset(&err, 0, sizeof err);
    rc = run_quality(REF "/quality/ref", REF "/folder", &res, &err);
    test_expect(rc == SB_EINPUT && strstr(err.msg, "has 5 images but"), "count mismatch: %d '%s'", rc, err.msg);
    sb_result_clear(&res);
    memset(&err, 0, sizeof err);
    rc = run_quality(REF "/mnist/train-images-idx3-ubyte", REF "/mnist/train-images-idx3-ubyte", &res, &err);
    test_expect(rc == SB_EINPUT && strstr(err.msg, "smaller than SSIM"), "tiny images: %d '%s'", rc, err.msg);
    sb_result_clear(&res);
    memset(&err, 0, sizeof err);
    rc = run_quality("builtin:shapes", "builtin:shapes", &res, &err);   /* identical: PSNR capped, SSIM 1 */
    if (test_expect(rc == SB_OK, "%s", err.msg)) {
        test_expect(sb_result_find(&res, "psnr")->value == 100 && fabs(sb_result_find(&res, "ssim")->value - 1) < 1e-12,
                    "identical sets: psnr %g ssim %g", sb_result_find(&res, "psnr")->value, sb_result_find(&res, "ssim")->value);
    }
    sb_result_clear(&res);
    cJSON_Delete(j);
    test_end();
}

int main(void) {
    test_folder();
    test_binary();
    test_bad();
    test_pnm();
    test_synth();
    test_metrics();
    test_quality_task();
    return test_status();
}

/* test_image_classification.c - the image-classification task's scoring
 * on an image set built in memory from the fixture's test image.
 *
 * Expected numbers are computed here image by image (preprocess, classify
 * one image, rank of the true label) and must equal the task's top-1,
 * top-k and mean per-class accuracy and their standard errors, for batch
 * sizes that divide the set and that leave a remainder; classes are
 * matched by name, then by index; a set matching neither is refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tasks/image_classification.h"
#include "check.h"
#include "mapped_file.h"
#include "vision.h"

enum { N_IMG = 7, H = 45, W = 53 };

static char *names_a[] = {"class_a", "class_b", "class_c", "class_d", "class_e"};
static char *names_x[] = {"x0", "x1", "x2", "x3", "x4"};

/* Variants of the raw test image: shifted, inverted, darkened, grey. */
static bool build_set(sb_image_set *set, sb_image *imgs, int32_t *labels, uint8_t *buf) {
    sb_mapped_file mf;
    sb_err err = {0};
    if (!test_expect(sb_mapped_file_open(&mf, "tests/reference/vit/vit/image.rgb", &err) == SB_OK, "%s", err.msg)) return false;
    const uint8_t *src = mf.data;
    for (int k = 0; k < N_IMG; k++) {
        uint8_t *dst = buf + (size_t)k * H * W * 3;
        int ch = k == N_IMG - 1 ? 1 : 3;
        for (int i = 0; i < H * W; i++)
            for (int c = 0; c < ch; c++) {
                int v = src[((i + 7 * k) % (H * W)) * 3 + c];
                dst[i * ch + c] = (uint8_t)(k % 2 ? 255 - v : v * (10 - k) / 10);
            }
        imgs[k] = (sb_image){.width = W, .height = H, .channels = ch, .pixels = dst};
        labels[k] = k % 5;
    }
    sb_mapped_file_close(&mf);
    *set = (sb_image_set){.n_images = N_IMG, .images = imgs, .labels = labels, .n_classes = 5, .class_names = names_a,
                          .source = "memory"};
    return true;
}

/* Rank of the true label, one image at a time, for the expectations. */
static int true_rank(const sb_model *m, sb_vit *v, const sb_image *img, int y) {
    const sb_vision *vis = m->vision;
    float px[3 * 32 * 32], logits[8];
    sb_err err = {0};
    sb_preprocess_image(&vis->pre, 3, vis->image_size, img->pixels, img->height, img->width, img->channels, px, &err);
    sb_vit_classify(v, px, logits, &err);
    int r = 0;
    for (int k = 0; k < vis->n_labels; k++) r += logits[k] > logits[y] || (logits[k] == logits[y] && k < y);
    return r;
}

static void check_metric(const sb_task_result *r, const char *name, double want, double want_se) {
    const sb_metric *mt = sb_result_find(r, name);
    if (!test_expect(mt != NULL, "no metric %s", name)) return;
    test_expect(fabs(mt->value - want) < 1e-9, "%s = %g, expected %g", name, mt->value, want);
    test_expect(fabs(mt->stderr_value - want_se) < 1e-9, "%s stderr = %g, expected %g", name, mt->stderr_value, want_se);
}

static void scoring_case(sb_model *m, sb_image_set *set, int batch) {
    char name[64];
    snprintf(name, sizeof name, "imgcls_scoring_batch%d", batch);
    test_begin(name);
    sb_vit *v;
    sb_err err = {0};
    sb_vit_new(m, NULL, 1, &v, &err);
    int top1 = 0, top2 = 0, per_n[5] = {0}, per_ok[5] = {0};
    for (int k = 0; k < set->n_images; k++) {
        int r = true_rank(m, v, &set->images[k], set->labels[k]);
        top1 += r == 0;
        top2 += r < 2;
        per_n[set->labels[k]]++;
        per_ok[set->labels[k]] += r == 0;
    }
    sb_vit_free(v);
    double p1 = (double)top1 / N_IMG, p2 = (double)top2 / N_IMG, mean = 0, var = 0;
    for (int c = 0; c < 5; c++) {
        double p = (double)per_ok[c] / per_n[c];
        mean += p / 5;
        var += p * (1 - p) / per_n[c];
    }
    sb_task_result res = {0};
    sb_imgcls_opts o = {.batch = batch, .top_k = 2};
    if (test_expect(sb_imgcls_run_set(m, set, &o, NULL, &res, &err) == SB_OK, "%s", err.msg)) {
        check_metric(&res, "top1", 100 * p1, 100 * sqrt(p1 * (1 - p1) / N_IMG));
        check_metric(&res, "top2", 100 * p2, 100 * sqrt(p2 * (1 - p2) / N_IMG));
        check_metric(&res, "mean_class_acc", 100 * mean, 100 * sqrt(var) / 5);
        test_expect(top1 > 0 && top1 < N_IMG, "a random model should get some but not all right (%d)", top1);
        const sb_metric *g = sb_result_find(&res, "gflops_per_image");
        test_expect(g && fabs(g->value - sb_vit_dense_flops(m) / 1e9) < 1e-12, "dense FLOPs per image");
    }
    sb_result_clear(&res);
    test_end();
}

static void label_case(sb_model *m, sb_image_set *set) {
    test_begin("imgcls_label_matching");
    sb_task_result res = {0};
    sb_imgcls_opts o = {.batch = 3, .top_k = 5};
    sb_err err = {0};
    set->class_names = names_x; /* unknown names, same count: by index */
    if (test_expect(sb_imgcls_run_set(m, set, &o, NULL, &res, &err) == SB_OK, "%s", err.msg)) {
        const cJSON *how = cJSON_GetObjectItem(res.details, "labels_matched");
        test_expect(cJSON_IsString(how) && strcmp(how->valuestring, "by index") == 0, "matched by index");
        const sb_metric *t5 = sb_result_find(&res, "top5");
        test_expect(t5 && t5->value == 100, "top-5 of 5 labels is always right");
    }
    sb_result_clear(&res);
    set->n_classes = 4; /* neither names nor count */
    err = (sb_err){0};
    test_expect(sb_imgcls_run_set(m, set, &o, NULL, &res, &err) == SB_EINPUT && strstr(err.msg, "memory"),
                "mismatched classes refused naming the set: %s", err.msg);
    sb_result_clear(&res);
    set->n_classes = 5;
    set->class_names = names_a;
    test_end();
}

int main(void) {
    sb_model *m;
    sb_err err = {0};
    if (sb_model_load("tests/reference/vit/vit", &m, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    sb_image_set set;
    sb_image imgs[N_IMG];
    int32_t labels[N_IMG];
    uint8_t *buf = malloc((size_t)N_IMG * H * W * 3);
    if (build_set(&set, imgs, labels, buf)) {
        scoring_case(m, &set, 1);
        scoring_case(m, &set, 3);
        label_case(m, &set);
    }
    free(buf);
    sb_model_free(m);
    return test_status();
}

/* test_vit_train.c - the ViT trainer (harness/vit_*.c).
 *
 *   gradient check: every parameter tensor's gradient against central
 *     finite differences of the loss along a direction (rel <= 1e-3);
 *   PyTorch: loss, logits and every gradient of transformers'
 *     ViTForImageClassification with the same weights and images
 *     (tests/reference/vit/make_vit_fixture.py);
 *   export: the HF folder written by sb_vit_export_hf loads back to the
 *     same logits; determinism of a few training steps for one thread count;
 *   the built-in model: logits on builtin:shapes:test equal transformers'
 *     (tests/reference/vit/check_builtin_vit.py) and its accuracy is far
 *     above chance. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "mapped_file.h"
#include "tensor_store.h"
#include "vit_train.h"
#include <cjson/cJSON.h>

#define FIX "tests/reference/vit"

static const sb_vit_shape tiny = {.image = 8, .channels = 3, .patch = 4, .d = 8, .n_layer = 2, .n_head = 2, .ff = 16,
                                  .n_classes = 4, .ln_eps = 1e-6};

static uint64_t rng_state = 42;
static double rnd(void) {   /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) * 0x1p-52 - 1.0;
}

typedef struct batch {
    sb_image img[4];
    const sb_image *ptr[4];
    int32_t labels[4];
} batch;

static void make_batch(batch *b, int n, int side, int channels) {
    for (int i = 0; i < n; i++) {
        b->img[i].width = b->img[i].height = side, b->img[i].channels = channels;
        b->img[i].pixels = malloc((size_t)side * side * channels);
        for (int k = 0; k < side * side * channels; k++) b->img[i].pixels[k] = (uint8_t)(128 + 127 * rnd());
        b->ptr[i] = &b->img[i];
        b->labels[i] = i % tiny.n_classes;
    }
}

static void free_batch(batch *b, int n) {
    for (int i = 0; i < n; i++) free(b->img[i].pixels);
}

static double loss_of(sb_vit_model *vm, batch *b, int n) {
    double loss = 0;
    sb_err err = {0};
    if (sb_vit_forward(vm, b->ptr, b->labels, n, &loss, &err) != SB_OK) test_expect(false, "forward: %s", err.msg);
    return loss;
}

/* Every gradient along direction v = ĝ + random: (L(w + hv) - L(w - hv)) / 2h against g·v. */
static void test_gradient_check(void) {
    test_begin("vit_gradient_finite_differences");
    sb_vit_model *vm = NULL;
    sb_err err = {0};
    batch b;
    make_batch(&b, 3, tiny.image, tiny.channels);
    if (test_expect(sb_vit_model_new(&tiny, 7, 4, NULL, &vm, &err) == SB_OK, "%s", err.msg)) {
        /* weights far from initialisation, so no term is negligible */
        for (int64_t i = 0; i < vm->opt.n_params; i++) vm->opt.param_mem[i] += (float)(0.4 * rnd());
        sb_vit_zero_grad(vm);
        loss_of(vm, &b, 3);
        sb_vit_backward(vm);
        double worst = 0;
        const char *worst_name = "";
        for (int t = 0; t < vm->opt.n_tensors; t++) {
            sb_train_tensor *T = &vm->opt.tensors[t];
            int64_t n = T->rows * T->cols;
            double gn = 0;
            for (int64_t i = 0; i < n; i++) gn += (double)T->g[i] * T->g[i];
            gn = sqrt(gn);
            double *v = malloc(sizeof(double) * (size_t)n), gv = 0, h = 1e-2;
            float *w0 = malloc(sizeof(float) * (size_t)n);
            memcpy(w0, T->w, sizeof(float) * (size_t)n);
            double vn = 0;
            for (int64_t i = 0; i < n; i++) {
                v[i] = (gn > 0 ? T->g[i] / gn : 0) + 0.3 * rnd() / sqrt((double)n);
                vn += v[i] * v[i];
            }
            for (int64_t i = 0; i < n; i++) gv += T->g[i] * (v[i] /= sqrt(vn));
            for (int64_t i = 0; i < n; i++) T->w[i] = (float)(w0[i] + h * v[i]);
            double lp = loss_of(vm, &b, 3);
            for (int64_t i = 0; i < n; i++) T->w[i] = (float)(w0[i] - h * v[i]);
            double lm = loss_of(vm, &b, 3);
            memcpy(T->w, w0, sizeof(float) * (size_t)n);
            double fd = (lp - lm) / (2 * h), rel = fabs(fd - gv) / fmax(fabs(gv), 1e-6);
            if (strstr(T->name, "key.bias")) {
                /* softmax is unchanged by adding q·b_k to every score of a row: the gradient is exactly 0 */
                test_expect(fabs(gv) < 1e-6 && fabs(fd) < 1e-4, "%s: backward %.3g, finite difference %.3g, want 0", T->name, gv, fd);
                free(v);
                free(w0);
                continue;
            }
            if (rel > worst) worst = rel, worst_name = T->name;
            test_expect(rel <= 1e-3, "%s: backward %.8g, finite difference %.8g (rel %.2g)", T->name, gv, fd, rel);
            free(v);
            free(w0);
        }
        printf("# worst relative error %.2g (%s) over %d tensors\n", worst, worst_name, vm->opt.n_tensors);
    }
    free_batch(&b, 3);
    sb_vit_model_free(vm);
    test_end();
}

static cJSON *load_json(const char *path) {
    sb_err err = {0};
    char *text = NULL;
    if (!test_expect(sb_read_text_file(path, &text, NULL, &err) == SB_OK, "%s", err.msg)) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

/* The fixture's 3 images (uint8 HWC, 8x8x3 each). */
static int read_fixture_images(batch *b) {
    sb_mapped_file f;
    sb_err err = {0};
    if (!test_expect(sb_mapped_file_open(&f, FIX "/images.bin", &err) == SB_OK, "%s", err.msg)) return 0;
    int ok = test_expect(f.size == 3 * 8 * 8 * 3, "images.bin has %zu bytes", f.size);
    for (int i = 0; ok && i < 3; i++) {
        b->img[i] = (sb_image){8, 8, 3, malloc(192)};
        memcpy(b->img[i].pixels, f.data + i * 192, 192);
        b->ptr[i] = &b->img[i];
        b->labels[i] = i;
    }
    sb_mapped_file_close(&f);
    return ok;
}

/* Loss, logits and every gradient against transformers' ViTForImageClassification. */
static void test_pytorch(void) {
    test_begin("vit_matches_transformers_loss_logits_grads");
    sb_vit_model *vm = NULL;
    sb_err err = {0};
    batch b;
    cJSON *want = load_json(FIX "/expected.json");
    sb_tensor_store st = {0};
    if (want && read_fixture_images(&b) && test_expect(sb_vit_load_hf(FIX "/tiny", 4, NULL, &vm, &err) == SB_OK, "%s", err.msg) &&
        test_expect(sb_safetensors_load(&st, FIX "/grads.safetensors", &err) == SB_OK, "%s", err.msg)) {
        double loss = 0;
        sb_vit_zero_grad(vm);
        test_expect(sb_vit_forward(vm, b.ptr, b.labels, 3, &loss, &err) == SB_OK, "%s", err.msg);
        sb_vit_backward(vm);
        double want_loss = cJSON_GetObjectItem(want, "loss")->valuedouble;
        test_expect(fabs(loss - want_loss) <= 1e-5, "loss %.8f, transformers %.8f", loss, want_loss);
        const cJSON *logits = cJSON_GetObjectItem(want, "logits");
        double worst_logit = 0, worst_grad = 0;
        for (int i = 0; i < 3; i++)
            for (int c = 0; c < 4; c++) {
                double d = fabs(vm->logits[i * 4 + c] - cJSON_GetArrayItem(cJSON_GetArrayItem(logits, i), c)->valuedouble);
                worst_logit = fmax(worst_logit, d);
            }
        test_expect(worst_logit <= 1e-4, "logits differ by %.3g", worst_logit);
        for (int t = 0; t < vm->opt.n_tensors; t++) {
            const sb_train_tensor *T = &vm->opt.tensors[t];
            const sb_tensor_ref *r = sb_store_find(&st, T->name);
            int64_t n = T->rows * T->cols;
            if (!test_expect(r && sb_tensor_elems(r) == n, "%s: missing or wrong size in grads.safetensors", T->name)) continue;
            float *ref = malloc(sizeof(float) * (size_t)n);
            sb_tensor_decode_f32(r, ref, &err);
            double scale = test_max_abs(ref, n), diff = test_max_abs_diff(T->g, ref, n);
            worst_grad = fmax(worst_grad, diff / fmax(scale, 1e-3));
            test_expect(diff <= 1e-4 * fmax(scale, 1e-3), "%s: gradients differ by %.3g (max %.3g)", T->name, diff, scale);
            free(ref);
        }
        printf("# logits within %.2g, gradients within %.2g of each tensor's largest\n", worst_logit, worst_grad);
        free_batch(&b, 3);
    }
    sb_store_free(&st);
    cJSON_Delete(want);
    sb_vit_model_free(vm);
    test_end();
}

/* n AdamW steps on the batch from the model of `seed`, on pool. */
static sb_vit_model *train_steps(uint64_t seed, int n, sb_pool *pool, batch *b) {
    sb_vit_model *vm = NULL;
    sb_err err = {0};
    sb_adamw opt;
    if (!test_expect(sb_vit_model_new(&tiny, seed, 4, pool, &vm, &err) == SB_OK, "%s", err.msg)) return NULL;
    sb_adamw_init(&opt, &vm->opt, 0.05, &err);
    for (int s = 0; s < n; s++) {
        double loss;
        sb_vit_zero_grad(vm);
        sb_vit_forward(vm, b->ptr, b->labels, 4, &loss, &err);
        sb_vit_backward(vm);
        sb_train_clip_grad_norm(&vm->opt, 1.0);
        sb_adamw_step(&opt, &vm->opt, 1e-2);
    }
    sb_adamw_free(&opt);
    return vm;
}

/* Training lowers the loss and is bit-identical for a seed and thread count;
 * the exported folder loads back to the same logits (f32) or close (bf16). */
static void test_train_export(void) {
    test_begin("vit_train_deterministic_and_export_roundtrip");
    batch b;
    make_batch(&b, 4, tiny.image, tiny.channels);
    sb_pool *pool = NULL;
    sb_err err = {0};
    sb_pool_new(2, &pool, &err);
    sb_vit_model *a = train_steps(3, 0, pool, &b), *x = train_steps(3, 30, pool, &b), *y = train_steps(3, 30, pool, &b);
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/test_vit_%d", (int)getpid());
    if (a && x && y) {
        double l0 = loss_of(a, &b, 4), l1 = loss_of(x, &b, 4);
        test_expect(l1 < 0.5 * l0, "30 steps took the loss from %.4f to %.4f only", l0, l1);
        test_expect(memcmp(x->opt.param_mem, y->opt.param_mem, sizeof(float) * (size_t)x->opt.n_params) == 0,
                    "two runs with seed 3 and 2 threads differ");
        char *names[4] = {"zero", "one", "two", "three"};
        for (int bf16 = 0; bf16 < 2; bf16++) {
            sb_vit_model *back = NULL;
            loss_of(x, &b, 4);
            if (!test_expect(sb_vit_export_hf(x, dir, names, bf16, &err) == SB_OK, "%s", err.msg) ||
                !test_expect(sb_vit_load_hf(dir, 4, NULL, &back, &err) == SB_OK, "reload: %s", err.msg))
                break;
            loss_of(back, &b, 4);   /* one thread against two: summation order differs */
            double diff = test_max_abs_diff(x->logits, back->logits, 16), scale = test_max_abs(x->logits, 16);
            test_expect(diff <= (bf16 ? 0.05 : 1e-5) * scale, "%s reload: logits differ by %.3g (max %.3g)",
                        bf16 ? "bf16" : "f32", diff, scale);
            sb_vit_model_free(back);
        }
        char path[128];
        snprintf(path, sizeof path, "%s/config.json", dir);
        cJSON *cfg = load_json(path);
        const cJSON *id2label = cfg ? cJSON_GetObjectItem(cfg, "id2label") : NULL;
        test_expect(id2label && !strcmp(cJSON_GetObjectItem(id2label, "2")->valuestring, "two") &&
                        cJSON_GetObjectItem(cJSON_GetObjectItem(cfg, "label2id"), "three")->valueint == 3,
                    "config.json id2label/label2id wrong");
        cJSON_Delete(cfg);
        const char *files[] = {"config.json", "model.safetensors", "preprocessor_config.json"};
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "%s/%s", dir, files[i]);
            remove(path);
        }
        rmdir(dir);
    }
    sb_vit_model_free(a);
    sb_vit_model_free(x);
    sb_vit_model_free(y);
    sb_pool_free(pool);
    free_batch(&b, 4);
    test_end();
}

/* The committed built-in ViT: logits on builtin:shapes:test equal transformers' (same folder,
 * fixture by check_builtin_vit.py), and test accuracy is far above chance (0.1). */
static void test_builtin(void) {
    const char *dir = "datasets/builtin/vit-shapes";
    if (access(dir, R_OK) != 0) {
        test_skip("vit_builtin_matches_transformers", "%s not present", dir);
        return;
    }
    test_begin("vit_builtin_matches_transformers");
    sb_vit_model *vm = NULL;
    sb_image_set *set = NULL;
    sb_err err = {0};
    cJSON *want = load_json(FIX "/builtin_logits.json");
    if (want && test_expect(sb_vit_load_hf(dir, 64, NULL, &vm, &err) == SB_OK, "%s", err.msg) &&
        test_expect(sb_image_set_load("builtin:shapes:test", 0, &set, &err) == SB_OK, "%s", err.msg)) {
        const cJSON *logits = cJSON_GetObjectItem(want, "logits");
        int n = cJSON_GetArraySize(logits), K = vm->shape.n_classes, correct = 0;
        const sb_image *ptr[64];
        for (int i = 0; i < n && i < 64; i++) ptr[i] = &set->images[i];
        test_expect(sb_vit_forward(vm, ptr, NULL, n, NULL, &err) == SB_OK, "%s", err.msg);
        double worst = 0;
        for (int i = 0; i < n; i++)
            for (int c = 0; c < K; c++) {
                double ref = cJSON_GetArrayItem(cJSON_GetArrayItem(logits, i), c)->valuedouble;
                worst = fmax(worst, fabs(vm->logits[i * K + c] - ref) / fmax(1.0, fabs(ref)));
            }
        test_expect(worst <= 1e-4, "logits differ from transformers' by %.3g (relative)", worst);
        for (int i0 = 0; i0 < set->n_images; i0 += 64) {
            int nb = set->n_images - i0 < 64 ? set->n_images - i0 : 64;
            for (int i = 0; i < nb; i++) ptr[i] = &set->images[i0 + i];
            sb_vit_forward(vm, ptr, NULL, nb, NULL, &err);
            for (int i = 0; i < nb; i++) {
                int best = 0;
                for (int c = 1; c < K; c++) best = vm->logits[i * K + c] > vm->logits[i * K + best] ? c : best;
                correct += best == set->labels[i0 + i];
            }
        }
        double acc = (double)correct / set->n_images;
        test_expect(acc >= 0.6, "test accuracy %.3f", acc);
        printf("# built-in ViT: logits within %.2g of transformers', test accuracy %.4f\n", worst, acc);
    }
    cJSON_Delete(want);
    sb_image_set_free(set);
    sb_vit_model_free(vm);
    test_end();
}

int main(void) {
    test_gradient_check();
    test_pytorch();
    test_train_export();
    test_builtin();
    return test_status();
}

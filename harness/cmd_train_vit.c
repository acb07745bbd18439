/* cmd_train_vit.c - `slimbench train-vit`: trains a ViT image classifier
 * (vit_train.h) on a labelled image set and writes a Hugging Face
 * ViTForImageClassification folder.
 *
 *   slimbench train-vit --config vit.json --out DIR [--data SET] [--valid SET] [--test SET]
 *                       [--dtype f32|bf16] [--threads N] [--quiet]
 *   slimbench train-vit --eval MODEL_DIR --data SET [--threads N]
 *
 * SET is anything sb_image_set_load reads (default builtin:shapes:train,
 * builtin:shapes:valid; no test set unless given). Config keys (all
 * optional, defaults in vit_defaults): patch, d_model, n_layer, n_head, ff,
 * layer_norm_eps, batch, steps, lr, warmup, weight_decay, grad_clip,
 * min_lr_frac, seed, eval_every. Batches walk the training set in an order
 * reshuffled every epoch from the seed. Writes DIR/config.json,
 * model.safetensors, preprocessor_config.json and DIR/train_log.json
 * (config, loss per step, validation loss and accuracy, test accuracy,
 * threads, wall time). --eval prints the loss and accuracy of a saved model. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "mapped_file.h"
#include "measure.h"
#include "results.h"
#include "vit_train.h"

typedef struct {
    sb_vit_shape shape;
    int batch, steps, warmup, eval_every;
    double lr, weight_decay, grad_clip, min_lr_frac, seed;
} vit_cfg;

static vit_cfg vit_defaults(void) {
    return (vit_cfg){.shape = {.patch = 4, .d = 64, .n_layer = 4, .n_head = 4, .ff = 128, .ln_eps = 1e-12},
                     .batch = 32, .steps = 1000, .warmup = -1, .eval_every = 250, .lr = 1e-3, .weight_decay = 0.05,
                     .grad_clip = 1.0, .min_lr_frac = 0.1, .seed = 1};
}

/* ---- config ---------------------------------------------------------------------- */

static int read_config(const char *path, vit_cfg *c, sb_err *err) {
    char *text;
    int rc = sb_read_text_file(path, &text, NULL, err);
    if (rc) return rc;
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return sb_err_set(err, SB_EINPUT, "%s: not a JSON object", path);
    }
    static const char *const ik[] = {"patch", "d_model", "n_layer", "n_head", "ff", "batch", "steps", "warmup", "eval_every"};
    int *iv[] = {&c->shape.patch, &c->shape.d, &c->shape.n_layer, &c->shape.n_head, &c->shape.ff, &c->batch, &c->steps,
                 &c->warmup, &c->eval_every};
    static const char *const dk[] = {"lr", "weight_decay", "grad_clip", "min_lr_frac", "seed", "layer_norm_eps"};
    double *dv[] = {&c->lr, &c->weight_decay, &c->grad_clip, &c->min_lr_frac, &c->seed, &c->shape.ln_eps};
    for (const cJSON *it = j->child; it && !rc; it = it->next) {
        bool known = false;
        for (size_t i = 0; i < sizeof ik / sizeof ik[0] && !known; i++)
            if (strcmp(it->string, ik[i]) == 0) {
                known = true;
                if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || fabs(it->valuedouble) > 1e9)
                    rc = sb_err_set(err, SB_EINPUT, "%s: '%s' must be an integer", path, it->string);
                else *iv[i] = (int)it->valuedouble;
            }
        for (size_t i = 0; i < sizeof dk / sizeof dk[0] && !known; i++)
            if (strcmp(it->string, dk[i]) == 0) {
                known = true;
                if (!cJSON_IsNumber(it)) rc = sb_err_set(err, SB_EINPUT, "%s: '%s' must be a number", path, it->string);
                else *dv[i] = it->valuedouble;
            }
        if (!known && !rc) rc = sb_err_set(err, SB_EINPUT, "%s: unknown key '%s'", path, it->string);
    }
    cJSON_Delete(j);
    if (rc) return rc;
    if (c->warmup < 0) c->warmup = c->steps / 10;
    if (c->steps < 1 || c->batch < 1 || c->lr <= 0 || c->eval_every < 0 || c->seed < 0)
        return sb_err_set(err, SB_EINPUT, "%s: steps, batch and lr must be positive", path);
    return SB_OK;
}

static cJSON *config_record(const vit_cfg *c) {
    cJSON *j = cJSON_CreateObject();
    const char *ik[] = {"image", "channels", "patch", "d_model", "n_layer", "n_head", "ff", "n_classes", "batch", "steps",
                        "warmup", "eval_every"};
    int iv[] = {c->shape.image, c->shape.channels, c->shape.patch, c->shape.d, c->shape.n_layer, c->shape.n_head, c->shape.ff,
                c->shape.n_classes, c->batch, c->steps, c->warmup, c->eval_every};
    for (size_t i = 0; i < sizeof ik / sizeof ik[0]; i++) cJSON_AddNumberToObject(j, ik[i], iv[i]);
    const char *dk[] = {"lr", "weight_decay", "grad_clip", "min_lr_frac", "seed", "layer_norm_eps"};
    double dv[] = {c->lr, c->weight_decay, c->grad_clip, c->min_lr_frac, c->seed, c->shape.ln_eps};
    for (size_t i = 0; i < sizeof dk / sizeof dk[0]; i++) cJSON_AddNumberToObject(j, dk[i], dv[i]);
    cJSON_AddStringToObject(j, "optimizer", "AdamW beta1 0.9 beta2 0.95 eps 1e-8, decay on matrices");
    cJSON_AddStringToObject(j, "schedule", "linear warmup, cosine to min_lr_frac * lr");
    cJSON_AddStringToObject(j, "input", "8-bit RGB, x = (p/255 - 0.5) / 0.5");
    return j;
}

/* ---- evaluation ---------------------------------------------------------------- */

/* Mean loss and accuracy of vm over set, in batches of vm->max_B. */
static int evaluate(sb_vit_model *vm, const sb_image_set *set, double *loss, double *acc, sb_err *err) {
    const sb_image *ptr[1024];
    double total = 0;
    long correct = 0;
    int K = vm->shape.n_classes;
    for (int i0 = 0; i0 < set->n_images; i0 += vm->max_B) {
        int n = set->n_images - i0 < vm->max_B ? set->n_images - i0 : vm->max_B;
        for (int b = 0; b < n; b++) ptr[b] = &set->images[i0 + b];
        double l;
        int rc = sb_vit_forward(vm, ptr, set->labels + i0, n, &l, err);
        if (rc) return rc;
        total += l * n;
        for (int b = 0; b < n; b++) {
            const float *z = vm->logits + (int64_t)b * K;
            int best = 0;
            for (int c = 1; c < K; c++) best = z[c] > z[best] ? c : best;
            correct += best == set->labels[i0 + b];
        }
    }
    *loss = total / set->n_images;
    *acc = (double)correct / set->n_images;
    return SB_OK;
}

static int check_set(const sb_image_set *set, const sb_vit_shape *s, sb_err *err) {
    const sb_image *a = &set->images[0];
    if (a->width != a->height) return sb_err_set(err, SB_EINPUT, "%s: ViT training needs square images", set->source);
    for (int i = 0; i < set->n_images; i++) {
        const sb_image *b = &set->images[i];
        if (b->width != a->width || b->height != a->height || b->channels != a->channels)
            return sb_err_set(err, SB_EINPUT, "%s: image %d is %dx%dx%d, image 0 %dx%dx%d (all must match)", set->source, i,
                              b->width, b->height, b->channels, a->width, a->height, a->channels);
        if (set->labels[i] < 0) return sb_err_set(err, SB_EINPUT, "%s: image %d has no label", set->source, i);
    }
    if (s && (a->width != s->image || a->channels != s->channels || set->n_classes > s->n_classes))
        return sb_err_set(err, SB_EINPUT, "%s: %dx%dx%d images in %d classes, the model takes %dx%dx%d in %d", set->source,
                          a->width, a->height, a->channels, set->n_classes, s->image, s->image, s->channels, s->n_classes);
    return SB_OK;
}

/* ---- training --------------------------------------------------------------------- */

typedef struct {
    vit_cfg cfg;
    sb_image_set *train, *valid, *test;
    sb_vit_model *vm;
    sb_adamw opt;
    int *order;
    cJSON *losses, *evals;
    bool quiet;
} trainer;

static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void shuffle(int *order, int n, uint64_t *rng) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(next_u64(rng) % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j], order[j] = t;
    }
}

static int eval_record(trainer *t, int step, sb_err *err) {
    if (!t->valid) return SB_OK;
    double loss, acc;
    int rc = evaluate(t->vm, t->valid, &loss, &acc, err);
    if (rc) return rc;
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "step", step);
    cJSON_AddNumberToObject(e, "loss", loss);
    cJSON_AddNumberToObject(e, "accuracy", acc);
    cJSON_AddItemToArray(t->evals, e);
    if (!t->quiet) fprintf(stderr, "step %d: validation loss %.4f accuracy %.4f\n", step, loss, acc);
    return SB_OK;
}

static int train_loop(trainer *t, double *wall, sb_err *err) {
    const vit_cfg *c = &t->cfg;
    int n = t->train->n_images, pos = n, B = c->batch;
    uint64_t rng = (uint64_t)c->seed ^ 0x5DEECE66Dull;
    const sb_image *ptr[1024];
    int32_t labels[1024];
    double t0 = sb_wall_seconds();
    int every = c->steps / 20 > 0 ? c->steps / 20 : 1;
    for (int s = 0; s < c->steps; s++) {
        for (int b = 0; b < B; b++) {
            if (pos == n) shuffle(t->order, n, &rng), pos = 0;   /* a new epoch */
            ptr[b] = &t->train->images[t->order[pos]];
            labels[b] = t->train->labels[t->order[pos++]];
        }
        double loss;
        sb_vit_zero_grad(t->vm);
        int rc = sb_vit_forward(t->vm, ptr, labels, B, &loss, err);
        if (rc) return rc;
        sb_vit_backward(t->vm);
        sb_train_clip_grad_norm(&t->vm->opt, c->grad_clip);
        sb_adamw_step(&t->opt, &t->vm->opt, sb_lr_schedule(s, c->steps, c->warmup, c->lr, c->min_lr_frac));
        cJSON_AddItemToArray(t->losses, cJSON_CreateNumber(loss));
        if (!t->quiet && ((s + 1) % every == 0 || s + 1 == c->steps)) {
            double el = sb_wall_seconds() - t0;
            fprintf(stderr, "step %d/%d loss %.4f %.0f images/s eta %.0fs\n", s + 1, c->steps, loss, (s + 1.0) * B / el,
                    el / (s + 1) * (c->steps - s - 1));
        }
        if (c->eval_every > 0 && (s + 1) % c->eval_every == 0 && (rc = eval_record(t, s + 1, err))) return rc;
    }
    *wall = sb_wall_seconds() - t0;
    if (c->eval_every == 0 || c->steps % c->eval_every) return eval_record(t, c->steps, err);
    return SB_OK;
}

static int write_log(const char *out, cJSON *log, sb_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/train_log.json", out);
    char *text = cJSON_Print(log);
    FILE *f = text ? fopen(path, "w") : NULL;
    bool bad = !f || fputs(text, f) == EOF || fputc('\n', f) == EOF;
    if (f) bad |= fclose(f) != 0;
    free(text);
    return bad ? sb_err_set(err, SB_EINTERNAL, "%s: cannot write", path) : SB_OK;
}

static int finish(trainer *t, const char *out, bool bf16, int threads, double wall, sb_err *err) {
    int rc = sb_vit_export_hf(t->vm, out, t->train->class_names, bf16, err);
    cJSON *log = cJSON_CreateObject();
    cJSON_AddItemToObject(log, "config", config_record(&t->cfg));
    cJSON_AddStringToObject(log, "data", t->train->source);
    cJSON_AddNumberToObject(log, "train_images", t->train->n_images);
    cJSON_AddNumberToObject(log, "n_params", (double)t->vm->opt.n_params);
    cJSON_AddNumberToObject(log, "threads", threads);
    cJSON_AddNumberToObject(log, "wall_seconds", wall);
    cJSON_AddNumberToObject(log, "images_per_second", wall > 0 ? (double)t->cfg.steps * t->cfg.batch / wall : 0);
    cJSON_AddItemToObject(log, "loss", t->losses);
    cJSON_AddItemToObject(log, "valid", t->evals);
    t->losses = t->evals = NULL;
    if (!rc && t->test) {
        double loss, acc;
        rc = evaluate(t->vm, t->test, &loss, &acc, err);
        cJSON *e = cJSON_AddObjectToObject(log, "test");
        cJSON_AddStringToObject(e, "data", t->test->source);
        cJSON_AddNumberToObject(e, "images", t->test->n_images);
        cJSON_AddNumberToObject(e, "loss", loss);
        cJSON_AddNumberToObject(e, "accuracy", acc);
        if (!rc) printf("test %s: loss %.4f accuracy %.4f (%d images)\n", t->test->source, loss, acc, t->test->n_images);
    }
    if (!rc) rc = write_log(out, log, err);
    cJSON_Delete(log);
    if (!rc) printf("wrote %s (%lld parameters, %s)\n", out, (long long)t->vm->opt.n_params, bf16 ? "bf16" : "f32");
    return rc;
}

static int load_sets(trainer *t, int argc, char **argv, sb_err *err) {
    const char *data = sb_flag_value(argc, argv, "--data"), *valid = sb_flag_value(argc, argv, "--valid");
    const char *test = sb_flag_value(argc, argv, "--test");
    int rc = sb_image_set_load(data ? data : "builtin:shapes:train", 0, &t->train, err);
    if (!rc) rc = sb_image_set_load(valid ? valid : "builtin:shapes:valid", 0, &t->valid, err);
    if (!rc && test) rc = sb_image_set_load(test, 0, &t->test, err);
    if (!rc) rc = check_set(t->train, NULL, err);
    if (!rc) {
        sb_vit_shape *s = &t->cfg.shape;
        s->image = t->train->images[0].width, s->channels = t->train->images[0].channels, s->n_classes = t->train->n_classes;
    }
    if (!rc) rc = check_set(t->valid, &t->cfg.shape, err);
    if (!rc && t->test) rc = check_set(t->test, &t->cfg.shape, err);
    return rc;
}

static int train(int argc, char **argv, int threads, sb_err *err) {
    const char *config = sb_flag_value(argc, argv, "--config"), *out = sb_flag_value(argc, argv, "--out");
    const char *dtype = sb_flag_value(argc, argv, "--dtype");
    if (!config || !out) return sb_err_set(err, SB_EINPUT, "train-vit needs --config FILE --out DIR (or --eval DIR --data SET)");
    if (dtype && strcmp(dtype, "f32") != 0 && strcmp(dtype, "bf16") != 0) return sb_err_set(err, SB_EINPUT, "--dtype must be f32 or bf16");
    trainer t = {.cfg = vit_defaults(), .quiet = sb_flag_present(argc, argv, "--quiet")};
    sb_pool *pool = NULL;
    int rc = read_config(config, &t.cfg, err);
    if (!rc && t.cfg.batch > 1024) rc = sb_err_set(err, SB_EINPUT, "%s: batch must be at most 1024", config);
    if (!rc) rc = sb_make_dirs(out, err);   /* before the training, not after it */
    if (!rc) rc = load_sets(&t, argc, argv, err);
    if (!rc) rc = sb_pool_new(threads, &pool, err);
    if (!rc) rc = sb_vit_model_new(&t.cfg.shape, (uint64_t)t.cfg.seed, t.cfg.batch, pool, &t.vm, err);
    if (!rc) rc = sb_adamw_init(&t.opt, &t.vm->opt, t.cfg.weight_decay, err);
    if (!rc && !(t.order = sb_malloc(err, sizeof(int) * (size_t)t.train->n_images))) rc = SB_EINTERNAL;
    for (int i = 0; !rc && i < t.train->n_images; i++) t.order[i] = i;
    t.losses = cJSON_CreateArray();
    t.evals = cJSON_CreateArray();
    double wall = 0;
    if (!rc && !t.quiet)
        fprintf(stderr, "training a ViT of %lld parameters on %d images (%s), %d threads\n", (long long)t.vm->opt.n_params,
                t.train->n_images, t.train->source, sb_pool_threads(pool));
    if (!rc) rc = train_loop(&t, &wall, err);
    if (!rc) rc = finish(&t, out, dtype && strcmp(dtype, "bf16") == 0, sb_pool_threads(pool), wall, err);
    cJSON_Delete(t.losses);
    cJSON_Delete(t.evals);
    sb_adamw_free(&t.opt);
    sb_vit_model_free(t.vm);
    sb_pool_free(pool);
    free(t.order);
    sb_image_set_free(t.train);
    sb_image_set_free(t.valid);
    sb_image_set_free(t.test);
    return rc;
}

static int eval_saved(const char *dir, const char *data, int threads, sb_err *err) {
    sb_pool *pool = NULL;
    sb_vit_model *vm = NULL;
    sb_image_set *set = NULL;
    double loss, acc;
    int rc = sb_pool_new(threads, &pool, err);
    if (!rc) rc = sb_vit_load_hf(dir, 64, pool, &vm, err);
    if (!rc) rc = sb_image_set_load(data ? data : "builtin:shapes:test", 0, &set, err);
    if (!rc) rc = check_set(set, &vm->shape, err);
    if (!rc) rc = evaluate(vm, set, &loss, &acc, err);
    if (!rc) printf("%s on %s: loss %.4f accuracy %.4f (%d images)\n", dir, set->source, loss, acc, set->n_images);
    sb_image_set_free(set);
    sb_vit_model_free(vm);
    sb_pool_free(pool);
    return rc;
}

int sb_cmd_train_vit(int argc, char **argv) {
    static const char *const with_value[] = {"--config", "--out", "--data", "--valid", "--test", "--dtype", "--threads", "--eval",
                                             NULL};
    static const char *const switches[] = {"--quiet", NULL};
    sb_err err = {0};
    if (sb_flags_check(argc, argv, with_value, switches, &err)) return sb_cli_fail(&err);
    const char *threads_s = sb_flag_value(argc, argv, "--threads"), *eval = sb_flag_value(argc, argv, "--eval");
    int threads = threads_s ? atoi(threads_s) : 0;
    int rc = eval ? eval_saved(eval, sb_flag_value(argc, argv, "--data"), threads, &err) : train(argc, argv, threads, &err);
    return rc ? sb_cli_fail(&err) : 0;
}

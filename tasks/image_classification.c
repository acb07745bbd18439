/* image_classification.c - the "image-classification" task: top-1 and
 * top-k accuracy, mean per-class accuracy, standard errors, throughput and
 * FLOPs per image of a ViT/DeiT classifier on a labelled image set.
 *
 * Every image goes through the checkpoint's own preprocessing
 * (preprocessor_config.json, PIL-exact: harness/image_preprocess.c), then
 * the vision forward pass (harness/vit.c) with any token reducer the
 * method installed.  Standard errors: binomial sqrt(p(1-p)/n) for top-1
 * and top-k over images; for the mean per-class accuracy
 * sqrt(sum_c p_c(1-p_c)/n_c) / C over the C classes that have images.
 * Ties in the logits rank the lower class index first (as torch.topk on
 * CPU does for equal values). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_classification.h"
#include "measure.h"
#include "vision.h"

/* ---- labels ------------------------------------------------------------ */

/* map[dataset class] = model label index. */
static int match_labels(const sb_model *m, const sb_image_set *set, int *map, bool *by_name, sb_err *err) {
    const sb_vision *v = m->vision;
    *by_name = set->n_classes > 0;
    for (int c = 0; *by_name && c < set->n_classes; c++) {
        map[c] = -1;
        for (int k = 0; k < v->n_labels && map[c] < 0; k++)
            if (strcmp(set->class_names[c], v->labels[k]) == 0) map[c] = k;
        *by_name = map[c] >= 0;
    }
    if (*by_name) return SB_OK;
    if (set->n_classes != v->n_labels)
        return sb_err_set(err, SB_EINPUT,
                          "%s: its %d classes match neither the names nor the number of the model's %d labels",
                          set->source ? set->source : "image set", set->n_classes, v->n_labels);
    for (int c = 0; c < set->n_classes; c++) map[c] = c;
    return SB_OK;
}

/* ---- scoring ----------------------------------------------------------- */

/* Rank of label y among logits (0 = top): how many beat it (ties: lower index first). */
static int rank_of(const float *logits, int n, int y) {
    int r = 0;
    for (int k = 0; k < n; k++) r += logits[k] > logits[y] || (logits[k] == logits[y] && k < y);
    return r;
}

typedef struct tally {
    int n, top1, topk;
    int *per_n, *per_ok; /* [n_classes] */
} tally;

static double binom_se(double p, int n) { return n > 1 ? sqrt(p * (1 - p) / n) : NAN; }

static int add_metrics(const tally *t, int n_classes, int top_k, double seconds, double flops, sb_task_result *out,
                       sb_err *err) {
    double p1 = (double)t->top1 / t->n, pk = (double)t->topk / t->n, mean = 0, var = 0;
    int present = 0;
    for (int c = 0; c < n_classes; c++) {
        if (!t->per_n[c]) continue;
        double p = (double)t->per_ok[c] / t->per_n[c];
        mean += p;
        var += p * (1 - p) / t->per_n[c];
        present++;
    }
    mean /= present;
    char name[32];
    snprintf(name, sizeof name, "top%d", top_k);
    int rc = sb_result_add(out, "top1", 100 * p1, 100 * binom_se(p1, t->n), SB_HIGHER_IS_BETTER, "%", err);
    if (!rc) rc = sb_result_add(out, name, 100 * pk, 100 * binom_se(pk, t->n), SB_HIGHER_IS_BETTER, "%", err);
    if (!rc) rc = sb_result_add(out, "mean_class_acc", 100 * mean, 100 * sqrt(var) / present, SB_HIGHER_IS_BETTER, "%", err);
    if (!rc) rc = sb_result_add(out, "images_per_s", t->n / seconds, NAN, SB_HIGHER_IS_BETTER, "images/s", err);
    if (!rc) rc = sb_result_add(out, "gflops_per_image", flops / 1e9, NAN, SB_LOWER_IS_BETTER, "GFLOP", err);
    return rc;
}

static cJSON *per_class_json(const tally *t, const sb_image_set *set, const sb_model *m, const int *map) {
    cJSON *a = cJSON_CreateArray();
    for (int c = 0; a && c < set->n_classes; c++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "class", set->class_names[c]);
        cJSON_AddStringToObject(o, "model_label", m->vision->labels[map[c]]);
        cJSON_AddNumberToObject(o, "n", t->per_n[c]);
        if (t->per_n[c]) cJSON_AddNumberToObject(o, "acc", 100.0 * t->per_ok[c] / t->per_n[c]);
        else cJSON_AddNullToObject(o, "acc");
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

/* ---- the pass ------------------------------------------------------------ */

typedef struct run_state {
    const sb_model *m;
    const sb_image_set *set;
    const sb_imgcls_opts *o;
    const int *map;
    float *pixels, *logits;  /* [batch][C*S*S], [batch][n_labels] */
    int *idx;                /* images of the current batch */
    tally t;
    double flops_sum;        /* per-image FLOPs summed over images */
} run_state;

static int preprocess_batch(run_state *st, int n, sb_err *err) {
    const sb_vision *v = st->m->vision;
    int64_t per = (int64_t)v->channels * v->image_size * v->image_size;
    for (int i = 0; i < n; i++) {
        const sb_image *img = &st->set->images[st->idx[i]];
        int rc = sb_preprocess_image(&v->pre, v->channels, v->image_size, img->pixels, img->height, img->width,
                                     img->channels, st->pixels + i * per, err);
        if (rc) return sb_err_prefix(err, "%s: image %d", st->set->source ? st->set->source : "image set", st->idx[i]);
    }
    return SB_OK;
}

static void score_batch(run_state *st, int n) {
    int L = st->m->vision->n_labels;
    for (int i = 0; i < n; i++) {
        int c = st->set->labels[st->idx[i]], r = rank_of(st->logits + (int64_t)i * L, L, st->map[c]);
        st->t.n++;
        st->t.per_n[c]++;
        st->t.top1 += r == 0;
        st->t.per_ok[c] += r == 0;
        st->t.topk += r < st->o->top_k;
    }
}

/* One batch of n images (a context for exactly n, since sessions have a fixed batch). */
static int run_batch(run_state *st, sb_vit **vit, int *vit_batch, int n, const sb_run_ctx *ctx, sb_err *err) {
    int rc = preprocess_batch(st, n, err);
    if (!rc && *vit_batch != n) {
        sb_vit_free(*vit);
        *vit = NULL;
        *vit_batch = n;
        rc = sb_vit_new(st->m, ctx ? ctx->pool : NULL, n, vit, err);
    }
    if (!rc) rc = sb_vit_classify(*vit, st->pixels, st->logits, err);
    if (!rc) {
        score_batch(st, n);
        st->flops_sum += n * sb_vit_last_flops(*vit);
    }
    return rc;
}

static int classify_all(run_state *st, const sb_run_ctx *ctx, double *seconds, sb_err *err) {
    sb_vit *vit = NULL;
    int vit_batch = 0, rc = SB_OK, n = 0;
    double t0 = sb_wall_seconds();
    for (int i = 0; !rc && i < st->set->n_images; i++) {
        if (st->set->labels[i] < 0 || st->set->labels[i] >= st->set->n_classes) continue; /* unlabelled */
        st->idx[n++] = i;
        if (n == st->o->batch || i == st->set->n_images - 1) {
            rc = run_batch(st, &vit, &vit_batch, n, ctx, err);
            n = 0;
            sb_run_progress(ctx, i + 1, st->set->n_images, "images");
        }
    }
    if (!rc && n) rc = run_batch(st, &vit, &vit_batch, n, ctx, err);
    *seconds = sb_wall_seconds() - t0;
    sb_vit_free(vit);
    return rc;
}

int sb_imgcls_run_set(const sb_model *m, const sb_image_set *set, const sb_imgcls_opts *o, const sb_run_ctx *ctx,
                      sb_task_result *out, sb_err *err) {
    if (!m->vision) return sb_err_set(err, SB_EINPUT, "image-classification: %s is not an image model (ViT/DeiT)", m->path);
    const sb_vision *v = m->vision;
    int64_t per = (int64_t)v->channels * v->image_size * v->image_size;
    run_state st = {.m = m, .set = set, .o = o};
    int *map = sb_calloc(err, (size_t)(set->n_classes > 0 ? set->n_classes : 1), sizeof(int));
    st.map = map;
    st.pixels = sb_malloc(err, sizeof(float) * (size_t)(o->batch * per));
    st.logits = sb_malloc(err, sizeof(float) * (size_t)o->batch * (size_t)v->n_labels);
    st.idx = sb_malloc(err, sizeof(int) * (size_t)o->batch);
    st.t.per_n = sb_calloc(err, (size_t)(set->n_classes > 0 ? set->n_classes : 1), sizeof(int));
    st.t.per_ok = sb_calloc(err, (size_t)(set->n_classes > 0 ? set->n_classes : 1), sizeof(int));
    bool by_name = false;
    double seconds = 0;
    int rc = map && st.pixels && st.logits && st.idx && st.t.per_n && st.t.per_ok ? SB_OK : SB_EINTERNAL;
    if (!rc) rc = match_labels(m, set, map, &by_name, err);
    if (!rc) rc = classify_all(&st, ctx, &seconds, err);
    if (!rc && st.t.n == 0) rc = sb_err_set(err, SB_EINPUT, "%s: no labelled images", set->source ? set->source : "image set");
    if (!rc) rc = add_metrics(&st.t, set->n_classes, o->top_k, seconds, st.flops_sum / st.t.n, out, err);
    if (!rc) {
        if (!out->details) out->details = cJSON_CreateObject();
        cJSON_AddNumberToObject(out->details, "n_images", st.t.n);
        cJSON_AddStringToObject(out->details, "labels_matched", by_name ? "by name" : "by index");
        cJSON_AddNumberToObject(out->details, "dense_gflops_per_image", sb_vit_dense_flops(m) / 1e9);
        cJSON_AddStringToObject(out->details, "preprocessing", "preprocessor_config.json, PIL-exact resampling");
        cJSON_AddItemToObject(out->details, "per_class", per_class_json(&st.t, set, m, map));
    }
    free(map);
    free(st.pixels);
    free(st.logits);
    free(st.idx);
    free(st.t.per_n);
    free(st.t.per_ok);
    return rc;
}

/* ---- the task --------------------------------------------------------------- */

static int imgcls_run(const sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_task_result *out, sb_err *err) {
    const char *path = sb_param_str(p, "dataset");
    sb_imgcls_opts o = {.batch = (int)sb_param_num(p, "batch"), .top_k = (int)sb_param_num(p, "top_k")};
    if (!*path) return sb_err_set(err, SB_EINPUT, "image-classification: --dataset PATH is required");
    sb_image_set *set = NULL;
    int rc = sb_image_set_load(path, (int)sb_param_num(p, "limit"), &set, err);
    if (!rc) {
        int n = snprintf(out->protocol, sizeof out->protocol, "imgcls:%s:limit=%d:top%d:preproc=hf-pil", path,
                         (int)sb_param_num(p, "limit"), o.top_k);
        if (n < 0 || (size_t)n >= sizeof out->protocol) rc = sb_err_set(err, SB_EINPUT, "dataset path too long");
    }
    if (!rc) rc = sb_imgcls_run_set(m, set, &o, ctx, out, err);
    if (set) sb_image_set_free(set);
    return rc;
}

static const sb_param_spec imgcls_params[] = {
    {"dataset", SB_PARAM_STRING, "builtin:shapes", 0, -1, NULL,
     "image set: class folders (PNG/PPM), CIFAR batches, MNIST IDX, or builtin:shapes[:split]"},
    {"limit", SB_PARAM_INT, "0", 0, 1 << 30, NULL, "first N images only (0: all)"},
    {"batch", SB_PARAM_INT, "8", 1, 4096, NULL, "images per forward pass"},
    {"top_k", SB_PARAM_INT, "5", 1, 1000, NULL, "the second accuracy reported: top-k"},
};

const sb_task sb_task_image_classification = {
    .abi = SB_PLUGIN_ABI,
    .name = "image-classification",
    .summary = "top-1 / top-k / mean per-class accuracy with standard errors, images/s and GFLOPs per image "
               "(ViT/DeiT, Hugging Face preprocessing)",
    .params = imgcls_params,
    .n_params = sizeof imgcls_params / sizeof imgcls_params[0],
    .run = imgcls_run,
};

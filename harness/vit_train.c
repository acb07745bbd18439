/* vit_train.c - the ViT training model's storage: parameters and gradients
 * in one flat buffer each (tensor list in Hugging Face names and storage
 * order), activations, initialisation and loading from an HF folder.
 * The passes are in vit_backward.c, the export in vit_export.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_config.h"
#include "tensor_store.h"
#include "vit_train.h"

enum { BLOCK_TENSORS = 16, OUTER_TENSORS = 8 };

static int n_tensors_for(const sb_vit_shape *s) { return OUTER_TENSORS + BLOCK_TENSORS * s->n_layer; }

/* One tensor: HF name, [rows, cols] as the optimizer sees it, the HF shape (n dims). */
static void set_tensor(sb_vit_model *vm, int i, const char *name, int64_t rows, int64_t cols, bool decay, int n,
                       int a, int b, int c, int d) {
    sb_train_tensor *t = &vm->opt.tensors[i];
    snprintf(t->name, sizeof t->name, "%.63s", name);
    t->rows = rows, t->cols = cols, t->decay = decay, t->layer = -1;
    int *dm = vm->dims[i];
    dm[0] = n, dm[1] = a, dm[2] = b, dm[3] = c, dm[4] = d;
}

static void describe_tensors(sb_vit_model *vm) {
    const sb_vit_shape *s = &vm->shape;
    int d = s->d, ff = s->ff, i = 0, p = s->patch;
    set_tensor(vm, i++, "vit.embeddings.cls_token", 1, d, false, 3, 1, 1, d, 0);
    set_tensor(vm, i++, "vit.embeddings.position_embeddings", vm->T, d, false, 3, 1, vm->T, d, 0);
    set_tensor(vm, i++, "vit.embeddings.patch_embeddings.projection.weight", d, vm->pd, true, 4, d, s->channels, p, p);
    set_tensor(vm, i++, "vit.embeddings.patch_embeddings.projection.bias", 1, d, false, 1, d, 0, 0, 0);
    static const char *const lin[] = {"attention.attention.query", "attention.attention.key", "attention.attention.value",
                                      "attention.output.dense"};
    for (int l = 0; l < s->n_layer; l++) {
        char name[128];
#define NAME(suffix) (snprintf(name, sizeof name, "vit.encoder.layer.%d.%s", l, suffix), name)
        set_tensor(vm, i++, NAME("layernorm_before.weight"), 1, d, false, 1, d, 0, 0, 0);
        set_tensor(vm, i++, NAME("layernorm_before.bias"), 1, d, false, 1, d, 0, 0, 0);
        for (int k = 0; k < 4; k++) {
            char full[48];
            snprintf(full, sizeof full, "%s.weight", lin[k]);
            set_tensor(vm, i++, NAME(full), d, d, true, 2, d, d, 0, 0);
            snprintf(full, sizeof full, "%s.bias", lin[k]);
            set_tensor(vm, i++, NAME(full), 1, d, false, 1, d, 0, 0, 0);
        }
        set_tensor(vm, i++, NAME("layernorm_after.weight"), 1, d, false, 1, d, 0, 0, 0);
        set_tensor(vm, i++, NAME("layernorm_after.bias"), 1, d, false, 1, d, 0, 0, 0);
        set_tensor(vm, i++, NAME("intermediate.dense.weight"), ff, d, true, 2, ff, d, 0, 0);
        set_tensor(vm, i++, NAME("intermediate.dense.bias"), 1, ff, false, 1, ff, 0, 0, 0);
        set_tensor(vm, i++, NAME("output.dense.weight"), d, ff, true, 2, d, ff, 0, 0);
        set_tensor(vm, i++, NAME("output.dense.bias"), 1, d, false, 1, d, 0, 0, 0);
#undef NAME
    }
    set_tensor(vm, i++, "vit.layernorm.weight", 1, d, false, 1, d, 0, 0, 0);
    set_tensor(vm, i++, "vit.layernorm.bias", 1, d, false, 1, d, 0, 0, 0);
    set_tensor(vm, i++, "classifier.weight", s->n_classes, d, true, 2, s->n_classes, d, 0, 0);
    set_tensor(vm, i++, "classifier.bias", 1, s->n_classes, false, 1, s->n_classes, 0, 0, 0);
}

/* Points the named views at the flat buffer (weights or gradients), in describe_tensors' order. */
static void bind_views(sb_vit_model *vm, sb_vit_params *v, bool grads) {
    float *ptr[256 + BLOCK_TENSORS * 64];
    for (int i = 0; i < vm->opt.n_tensors; i++) ptr[i] = grads ? vm->opt.tensors[i].g : vm->opt.tensors[i].w;
    int i = 0;
    v->cls = ptr[i++], v->pos = ptr[i++], v->patch_w = ptr[i++], v->patch_b = ptr[i++];
    for (int l = 0; l < vm->shape.n_layer; l++) {
        sb_vit_block *b = &v->blocks[l];
        b->ln1_w = ptr[i++], b->ln1_b = ptr[i++];
        b->wq = ptr[i++], b->bq = ptr[i++], b->wk = ptr[i++], b->bk = ptr[i++];
        b->wv = ptr[i++], b->bv = ptr[i++], b->wo = ptr[i++], b->bo = ptr[i++];
        b->ln2_w = ptr[i++], b->ln2_b = ptr[i++];
        b->w1 = ptr[i++], b->b1 = ptr[i++], b->w2 = ptr[i++], b->b2 = ptr[i++];
    }
    v->lnf_w = ptr[i++], v->lnf_b = ptr[i++], v->head_w = ptr[i++], v->head_b = ptr[i++];
}

static int check_shape(const sb_vit_shape *s, int max_B, sb_err *err) {
    if (s->patch < 1 || s->image < s->patch || s->image % s->patch || (s->channels != 1 && s->channels != 3))
        return sb_err_set(err, SB_EINPUT, "ViT: image %d must be a multiple of patch %d, channels 1 or 3 (got %d)", s->image,
                          s->patch, s->channels);
    if (s->d < 1 || s->n_head < 1 || s->d % s->n_head || s->ff < 1 || s->n_layer < 1 || s->n_layer > 64 ||
        s->n_classes < 2 || s->d > 4096 || s->ff > 16384 || s->image > 1024 || s->n_classes > 100000)
        return sb_err_set(err, SB_EINPUT, "ViT: hidden %d must be a multiple of heads %d; ff, layers (1..64), classes (>= 2) in range",
                          s->d, s->n_head);
    if (max_B < 1) return sb_err_set(err, SB_EINPUT, "ViT: batch must be at least 1");
    return SB_OK;
}

static float *floats(int64_t n, sb_err *err) { return sb_calloc(err, (size_t)(n > 0 ? n : 1), sizeof(float)); }

static int alloc_params(sb_vit_model *vm, sb_err *err) {
    int nt = n_tensors_for(&vm->shape);
    vm->opt.tensors = sb_calloc(err, (size_t)nt, sizeof *vm->opt.tensors);
    vm->dims = sb_calloc(err, (size_t)nt, sizeof *vm->dims);
    vm->p.blocks = sb_calloc(err, (size_t)vm->shape.n_layer, sizeof(sb_vit_block));
    vm->g.blocks = sb_calloc(err, (size_t)vm->shape.n_layer, sizeof(sb_vit_block));
    if (!vm->opt.tensors || !vm->dims || !vm->p.blocks || !vm->g.blocks) return SB_EINTERNAL;
    vm->opt.n_tensors = nt;
    describe_tensors(vm);
    int64_t n = 0;
    for (int i = 0; i < nt; i++) n += vm->opt.tensors[i].rows * vm->opt.tensors[i].cols;
    vm->opt.n_params = n;
    vm->opt.param_mem = floats(n, err);
    vm->opt.grad_mem = floats(n, err);
    if (!vm->opt.param_mem || !vm->opt.grad_mem) return SB_EINTERNAL;
    int64_t off = 0;
    for (int i = 0; i < nt; i++) {
        sb_train_tensor *t = &vm->opt.tensors[i];
        t->w = vm->opt.param_mem + off, t->g = vm->opt.grad_mem + off;
        off += t->rows * t->cols;
    }
    bind_views(vm, &vm->p, false);
    bind_views(vm, &vm->g, true);
    return SB_OK;
}

static int alloc_acts(sb_vit_model *vm, sb_err *err) {
    const sb_vit_shape *s = &vm->shape;
    int64_t B = vm->max_B, R = B * vm->T, d = s->d, ff = s->ff, nh = s->n_head;
    vm->acts = sb_calloc(err, (size_t)s->n_layer, sizeof *vm->acts);
    if (!vm->acts) return SB_EINTERNAL;
    for (int l = 0; l < s->n_layer; l++) {
        sb_vit_acts *a = &vm->acts[l];
        float **rd[] = {&a->x_in, &a->x_mid, &a->h1, &a->h2, &a->q, &a->k, &a->v, &a->att};
        for (size_t i = 0; i < sizeof rd / sizeof rd[0]; i++) *rd[i] = floats(R * d, err);
        float **rows[] = {&a->mean1, &a->rstd1, &a->mean2, &a->rstd2};
        for (size_t i = 0; i < 4; i++) *rows[i] = floats(R, err);
        a->probs = floats(B * nh * vm->T * vm->T, err);
        a->u = floats(R * ff, err), a->g = floats(R * ff, err);
        if (!a->x_in || !a->x_mid || !a->h1 || !a->h2 || !a->q || !a->k || !a->v || !a->att || !a->mean1 || !a->rstd1 ||
            !a->mean2 || !a->rstd2 || !a->probs || !a->u || !a->g)
            return SB_EINTERNAL;
    }
    int workers = vm->pool ? sb_pool_threads(vm->pool) : 1;
    float **bufs[] = {&vm->resid, &vm->dres, &vm->dh, &vm->dtmp, &vm->dq, &vm->dk, &vm->dv, &vm->datt};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (!(*bufs[i] = floats(R * d, err))) return SB_EINTERNAL;
    vm->patches = floats(B * vm->n_patches * vm->pd, err);
    vm->dpatch = floats(B * vm->n_patches * d, err);
    vm->cls_in = floats(B * d, err), vm->hf = floats(B * d, err);
    vm->meanf = floats(B, err), vm->rstdf = floats(B, err);
    vm->logits = floats(B * s->n_classes, err), vm->dlogits = floats(B * s->n_classes, err);
    vm->dg = floats(R * ff, err);
    vm->dscores = floats((int64_t)workers * vm->T * vm->T, err);
    if (!vm->patches || !vm->dpatch || !vm->cls_in || !vm->hf || !vm->meanf || !vm->rstdf || !vm->logits || !vm->dlogits ||
        !vm->dg || !vm->dscores)
        return SB_EINTERNAL;
    return SB_OK;
}

void sb_vit_model_free(sb_vit_model *vm) {
    if (!vm) return;
    for (int l = 0; vm->acts && l < vm->shape.n_layer; l++) {
        sb_vit_acts *a = &vm->acts[l];
        float *all[] = {a->x_in, a->x_mid, a->h1, a->h2, a->q, a->k, a->v, a->att, a->mean1, a->rstd1, a->mean2, a->rstd2,
                        a->probs, a->u, a->g};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    }
    free(vm->acts);
    float *bufs[] = {vm->resid, vm->dres, vm->dh, vm->dtmp, vm->dq, vm->dk, vm->dv, vm->datt, vm->patches, vm->dpatch,
                     vm->cls_in, vm->hf, vm->meanf, vm->rstdf, vm->logits, vm->dlogits, vm->dg, vm->dscores,
                     vm->opt.param_mem, vm->opt.grad_mem};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(vm->opt.tensors);
    free(vm->dims);
    free(vm->p.blocks);
    free(vm->g.blocks);
    free(vm);
}

static int vit_alloc(const sb_vit_shape *shape, int max_B, sb_pool *pool, sb_vit_model **out, sb_err *err) {
    *out = NULL;
    int rc = check_shape(shape, max_B, err);
    if (rc) return rc;
    sb_vit_model *vm = sb_calloc(err, 1, sizeof *vm);
    if (!vm) return SB_EINTERNAL;
    vm->shape = *shape;
    vm->n_patches = (shape->image / shape->patch) * (shape->image / shape->patch);
    vm->T = vm->n_patches + 1;
    vm->pd = shape->channels * shape->patch * shape->patch;
    vm->head_dim = shape->d / shape->n_head;
    vm->pool = pool;
    vm->opt.pool = pool;
    vm->max_B = max_B;
    rc = alloc_params(vm, err);
    if (!rc) rc = alloc_acts(vm, err);
    if (rc) {
        sb_vit_model_free(vm);
        return rc;
    }
    *out = vm;
    return SB_OK;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Box-Muller from two uniform draws in (0, 1]. */
static double normal(uint64_t *s) {
    double u = ((double)(splitmix64(s) >> 11) + 1.0) * 0x1p-53, v = (double)(splitmix64(s) >> 11) * 0x1p-53;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

int sb_vit_model_new(const sb_vit_shape *shape, uint64_t seed, int max_B, sb_pool *pool, sb_vit_model **out, sb_err *err) {
    int rc = vit_alloc(shape, max_B, pool, out, err);
    if (rc) return rc;
    sb_vit_model *vm = *out;
    uint64_t s = seed * 0x2545f4914f6cdd1dULL + 1;
    for (int i = 0; i < vm->opt.n_tensors; i++) {
        sb_train_tensor *t = &vm->opt.tensors[i];
        int64_t n = t->rows * t->cols;
        bool is_norm_w = strstr(t->name, "layernorm") && strstr(t->name, ".weight");
        bool random = t->decay || strstr(t->name, "cls_token") || strstr(t->name, "position_embeddings");
        for (int64_t k = 0; k < n; k++) t->w[k] = is_norm_w ? 1.0f : random ? (float)(0.02 * normal(&s)) : 0.0f;
    }
    return SB_OK;
}

/* ---- loading an HF folder ---------------------------------------------------- */

static int read_shape(const char *dir, sb_vit_shape *s, sb_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    sb_hf_config c;
    int rc = sb_hf_config_open(&c, path, err);
    if (rc) return rc;
    const char *act = NULL;
    bool qkv_bias = true;
    rc = sb_hf_int(&c, "image_size", true, 0, &s->image, err);
    if (!rc) rc = sb_hf_int(&c, "patch_size", true, 0, &s->patch, err);
    if (!rc) rc = sb_hf_int(&c, "num_channels", false, 3, &s->channels, err);
    if (!rc) rc = sb_hf_int(&c, "hidden_size", true, 0, &s->d, err);
    if (!rc) rc = sb_hf_int(&c, "num_hidden_layers", true, 0, &s->n_layer, err);
    if (!rc) rc = sb_hf_int(&c, "num_attention_heads", true, 0, &s->n_head, err);
    if (!rc) rc = sb_hf_int(&c, "intermediate_size", true, 0, &s->ff, err);
    if (!rc) rc = sb_hf_double(&c, "layer_norm_eps", false, 1e-12, &s->ln_eps, err);
    if (!rc) rc = sb_hf_string(&c, "hidden_act", false, "gelu", &act, err);
    if (!rc) rc = sb_hf_bool(&c, "qkv_bias", true, &qkv_bias, err);
    const cJSON *labels = sb_hf_object(&c, "id2label");
    s->n_classes = labels ? cJSON_GetArraySize(labels) : 0;
    if (!rc && (strcmp(act, "gelu") != 0 || !qkv_bias))
        rc = sb_err_set(err, SB_EINPUT, "%s: only hidden_act gelu with qkv_bias is supported", path);
    if (!rc && s->n_classes < 2) rc = sb_err_set(err, SB_EINPUT, "%s: id2label must list at least 2 classes", path);
    sb_hf_config_close(&c);
    return rc;
}

static int take_tensor(sb_tensor_store *st, const sb_train_tensor *t, sb_err *err) {
    const sb_tensor_ref *r = sb_store_find(st, t->name);
    if (!r) return sb_err_set(err, SB_EINPUT, "%s: no tensor %s", st->what, t->name);
    if (sb_tensor_elems(r) != t->rows * t->cols)
        return sb_err_set(err, SB_EINPUT, "%s: %s has %lld values, the config needs %lld", st->what, t->name,
                          (long long)sb_tensor_elems(r), (long long)(t->rows * t->cols));
    sb_store_mark_used(st, t->name);
    return sb_tensor_decode_f32(r, t->w, err);
}

int sb_vit_load_hf(const char *dir, int max_B, sb_pool *pool, sb_vit_model **out, sb_err *err) {
    sb_vit_shape s = {0};
    *out = NULL;
    int rc = read_shape(dir, &s, err);
    if (!rc) rc = vit_alloc(&s, max_B, pool, out, err);
    if (rc) return rc;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    sb_tensor_store st = {0};
    rc = sb_safetensors_load(&st, path, err);
    for (int i = 0; !rc && i < (*out)->opt.n_tensors; i++) rc = take_tensor(&st, &(*out)->opt.tensors[i], err);
    if (!rc) rc = sb_store_check_all_used(&st, "vit", NULL, err);
    sb_store_free(&st);
    if (rc) {
        sb_vit_model_free(*out);
        *out = NULL;
    }
    return rc;
}

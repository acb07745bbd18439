/* loader_vit.c - Hugging Face ViTForImageClassification and
 * DeiTForImageClassification folders: config.json (with id2label),
 * model.safetensors and preprocessor_config.json.
 *
 * The encoder maps onto the IR as a bidirectional pre-norm LayerNorm
 * transformer with a plain GELU MLP; the patch embedding, class and
 * distillation tokens, labels and preprocessing go into sb_vision.
 * DeiT's classifier reads only the class token, like ViT's; the distilled
 * "WithTeacher" variant (cls_classifier + distillation_classifier) averages
 * a head on the class token with one on the distillation token. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "arch.h"
#include "hf_config.h"
#include "vision.h"

void sb_vision_free(sb_vision *v) {
    if (!v) return;
    sb_linear_free(&v->patch);
    sb_linear_free(&v->dist_head);
    free(v->cls_token);
    free(v->dist_token);
    for (int i = 0; v->labels && i < v->n_labels; i++) free(v->labels[i]);
    free(v->labels);
    free(v);
}

uint64_t sb_vision_param_count(const sb_vision *v) {
    if (!v) return 0;
    uint64_t d = (uint64_t)v->patch.rows;
    uint64_t head = v->dist_head.fmt ? (uint64_t)v->dist_head.rows * (d + 1) : 0;
    return (uint64_t)v->patch.rows * (uint64_t)v->patch.cols + d + d * (uint64_t)v->n_prefix + head;
}

/* A tensor of exactly the given shape decoded to a malloc'ed f32 copy. */
static int take_shaped(sb_tensor_store *st, const char *name, int n_dims, const int64_t *dims, float **out,
                       sb_err *err) {
    const sb_tensor_ref *t = sb_store_find(st, name);
    if (!t) return sb_err_set(err, SB_EINPUT, "%s: tensor '%s' is missing", st->what, name);
    bool ok = t->n_dims == n_dims;
    int64_t n = 1;
    for (int d = 0; ok && d < n_dims; d++) {
        ok = t->shape[d] == dims[d];
        n *= dims[d];
    }
    if (!ok) return sb_err_set(err, SB_EINPUT, "%s: tensor '%s' has an unexpected shape", st->what, name);
    *out = sb_malloc(err, sizeof(float) * (size_t)n);
    if (!*out) return SB_EINTERNAL;
    int rc = sb_tensor_decode_f32(t, *out, err);
    sb_store_mark_used(st, name);
    return rc;
}

/* ---- config.json ------------------------------------------------------- */

static int read_labels(const sb_hf_config *c, sb_vision *v, sb_err *err) {
    v->labels = sb_calloc(err, (size_t)v->n_labels, sizeof(char *));
    if (!v->labels) return SB_EINTERNAL;
    const cJSON *map = sb_hf_object(c, "id2label");
    for (int i = 0; i < v->n_labels; i++) {
        char key[24], dflt[32];
        snprintf(key, sizeof key, "%d", i);
        snprintf(dflt, sizeof dflt, "LABEL_%d", i);
        const cJSON *name = map ? cJSON_GetObjectItemCaseSensitive(map, key) : NULL;
        v->labels[i] = strdup(cJSON_IsString(name) ? name->valuestring : dflt);
        if (!v->labels[i]) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    }
    return SB_OK;
}

static int read_shape(const sb_hf_config *c, sb_model *m, sb_vision *v, sb_arch_shape *sh, sb_err *err) {
    double eps;
    const char *act;
    int rc = sb_hf_int(c, "hidden_size", true, 0, &m->d_model, err);
    if (!rc) rc = sb_hf_int(c, "num_hidden_layers", true, 0, &m->n_layer, err);
    if (!rc) rc = sb_hf_int(c, "num_attention_heads", true, 0, &sh->n_head, err);
    if (!rc) rc = sb_hf_int(c, "intermediate_size", true, 0, &sh->ff, err);
    if (!rc) rc = sb_hf_int(c, "image_size", false, 224, &v->image_size, err);
    if (!rc) rc = sb_hf_int(c, "patch_size", false, 16, &v->patch_size, err);
    if (!rc) rc = sb_hf_int(c, "num_channels", false, 3, &v->channels, err);
    if (!rc) rc = sb_hf_double(c, "layer_norm_eps", false, 1e-12, &eps, err);
    if (!rc) rc = sb_hf_string(c, "hidden_act", false, "gelu", &act, err);
    if (rc) return rc;
    if (strcmp(act, "gelu") != 0)
        return sb_err_set(err, SB_EINPUT, "%s: hidden_act '%s' is not supported for ViT (only gelu)", c->path, act);
    if (v->patch_size < 1 || v->image_size < v->patch_size || v->image_size % v->patch_size || v->channels != 3)
        return sb_err_set(err, SB_EINPUT, "%s: image_size %d, patch_size %d, num_channels %d: need a whole number of "
                          "patches and 3 channels", c->path, v->image_size, v->patch_size, v->channels);
    v->grid = v->image_size / v->patch_size;
    v->n_patches = v->grid * v->grid;
    sh->n_kv_head = sh->n_head;
    sh->head_dim = sh->n_head > 0 ? m->d_model / sh->n_head : 0;
    m->norm_type = SB_NORM_LAYER;
    m->norm_eps = (float)eps;
    m->act = SB_ACT_GELU;
    m->positions = SB_POS_LEARNED;
    m->bidirectional = true;
    m->attn_scale = sh->head_dim > 0 ? (float)(1.0 / sqrt((double)sh->head_dim)) : 0;
    return SB_OK;
}

/* ---- preprocessor_config.json ------------------------------------------ */

static int read_hw(const sb_hf_config *c, const char *key, int *h, int *w, int *shortest, sb_err *err) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(c->obj, key);
    if (!o || cJSON_IsNull(o)) return SB_OK;
    if (cJSON_IsNumber(o)) { /* an old plain-int size means a square */
        *h = *w = o->valueint;
        return SB_OK;
    }
    sb_hf_config sub = {.obj = o, .path = c->path};
    int rc = sb_hf_int(&sub, "height", false, *h, h, err);
    if (!rc) rc = sb_hf_int(&sub, "width", false, *w, w, err);
    if (!rc && shortest) rc = sb_hf_int(&sub, "shortest_edge", false, 0, shortest, err);
    if (!rc && (*h < 1 || *w < 1)) rc = sb_err_set(err, SB_EINPUT, "%s: key '%s': sizes must be positive", c->path, key);
    return rc;
}

static int read_triple(const sb_hf_config *c, const char *key, float *out, sb_err *err) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(c->obj, key);
    if (!a || cJSON_IsNull(a)) return SB_OK;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 3)
        return sb_err_set(err, SB_EINPUT, "%s: key '%s' must be a list of 3 numbers", c->path, key);
    for (int i = 0; i < 3; i++) {
        const cJSON *x = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(x)) return sb_err_set(err, SB_EINPUT, "%s: key '%s' must hold numbers", c->path, key);
        out[i] = (float)x->valuedouble;
    }
    return SB_OK;
}

/* Defaults are ViTImageProcessor's: resize to the model size, bilinear,
 * rescale by 1/255, normalize with mean = std = 0.5. */
static int read_preprocess(const char *dir, const sb_vision *v, sb_preprocess *p, sb_err *err) {
    *p = (sb_preprocess){.do_resize = true, .resize_h = v->image_size, .resize_w = v->image_size,
                         .resample = SB_RESAMPLE_BILINEAR, .crop_h = v->image_size, .crop_w = v->image_size,
                         .do_rescale = true, .rescale_factor = 1.0 / 255, .do_normalize = true,
                         .mean = {0.5f, 0.5f, 0.5f}, .std = {0.5f, 0.5f, 0.5f}};
    char path[4096];
    struct stat sst;
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    if (stat(path, &sst) != 0) return SB_OK;
    sb_hf_config c;
    int resample = 2, rc = sb_hf_config_open(&c, path, err);
    if (rc) return rc;
    rc = sb_hf_bool(&c, "do_resize", true, &p->do_resize, err);
    if (!rc) rc = read_hw(&c, "size", &p->resize_h, &p->resize_w, &p->shortest_edge, err);
    if (!rc) rc = sb_hf_int(&c, "resample", false, 2, &resample, err);
    if (!rc) rc = sb_hf_bool(&c, "do_center_crop", false, &p->do_center_crop, err);
    if (!rc) rc = read_hw(&c, "crop_size", &p->crop_h, &p->crop_w, NULL, err);
    if (!rc) rc = sb_hf_bool(&c, "do_rescale", true, &p->do_rescale, err);
    if (!rc) rc = sb_hf_double(&c, "rescale_factor", false, 1.0 / 255, &p->rescale_factor, err);
    if (!rc) rc = sb_hf_bool(&c, "do_normalize", true, &p->do_normalize, err);
    if (!rc) rc = read_triple(&c, "image_mean", p->mean, err);
    if (!rc) rc = read_triple(&c, "image_std", p->std, err);
    if (!rc && resample != 2 && resample != 3)
        rc = sb_err_set(err, SB_EINPUT, "%s: resample %d is not supported (2 = bilinear, 3 = bicubic)", path, resample);
    for (int i = 0; !rc && i < 3; i++)
        if (!(p->std[i] > 0)) rc = sb_err_set(err, SB_EINPUT, "%s: image_std must be positive", path);
    p->resample = (sb_resample)resample;
    sb_hf_config_close(&c);
    return rc;
}

/* ---- tensors ----------------------------------------------------------- */

static int take_embeddings(sb_tensor_store *st, const char *pre, sb_model *m, sb_vision *v, sb_err *err) {
    char name[256];
    int64_t d = m->d_model, cpp = (int64_t)v->channels * v->patch_size * v->patch_size;
    int64_t tok[3] = {1, 1, d}, pos[3] = {1, v->n_prefix + v->n_patches, d};
    int64_t conv[4] = {d, v->channels, v->patch_size, v->patch_size};
    float *w = NULL;
    snprintf(name, sizeof name, "%sembeddings.cls_token", pre);
    int rc = take_shaped(st, name, 3, tok, &v->cls_token, err);
    snprintf(name, sizeof name, "%sembeddings.distillation_token", pre);
    if (!rc && v->n_prefix == 2) rc = take_shaped(st, name, 3, tok, &v->dist_token, err);
    snprintf(name, sizeof name, "%sembeddings.position_embeddings", pre);
    if (!rc) rc = take_shaped(st, name, 3, pos, &m->pos_embd, err);
    m->n_pos_rows = m->max_positions = v->n_prefix + v->n_patches;
    snprintf(name, sizeof name, "%sembeddings.patch_embeddings.projection.weight", pre);
    if (!rc) rc = take_shaped(st, name, 4, conv, &w, err);
    if (rc) {
        free(w);
        return rc;
    }
    /* Conv2d weight [d][C][p][p] is already the [d, C*p*p] matrix */
    v->patch = (sb_linear){.fmt = &sb_format_f32, .rows = d, .cols = cpp, .data = w, .owned = w};
    snprintf(name, sizeof name, "%sembeddings.patch_embeddings.projection.bias", pre);
    return sb_store_take_vector(st, name, d, 0, &v->patch.bias, err);
}

static int take_blocks(sb_tensor_store *st, const char *pre, const char *head, sb_model *m, const sb_arch_shape *sh,
                       sb_err *err) {
    char n[24][160];
    const char *parts[] = {"layernorm_before.weight", "layernorm_before.bias", "layernorm_after.weight",
                           "layernorm_after.bias", "attention.attention.query.weight", "attention.attention.query.bias",
                           "attention.attention.key.weight", "attention.attention.key.bias",
                           "attention.attention.value.weight", "attention.attention.value.bias",
                           "attention.output.dense.weight", "attention.output.dense.bias", "intermediate.dense.weight",
                           "intermediate.dense.bias", "output.dense.weight", "output.dense.bias"};
    for (int i = 0; i < 16; i++) snprintf(n[i], sizeof n[i], "%sencoder.layer.%%d.%s", pre, parts[i]);
    snprintf(n[16], sizeof n[16], "%slayernorm.weight", pre);
    snprintf(n[17], sizeof n[17], "%slayernorm.bias", pre);
    snprintf(n[18], sizeof n[18], "%s.weight", head);
    snprintf(n[19], sizeof n[19], "%s.bias", head);
    sb_arch_names names = {
        .final_norm = n[16], .final_norm_bias = n[17], .head = n[18], .head_bias = n[19],
        .attn_norm = n[0], .attn_norm_bias = n[1], .mlp_norm = n[2], .mlp_norm_bias = n[3],
        .wq = n[4], .bq = n[5], .wk = n[6], .bk = n[7], .wv = n[8], .bv = n[9], .wo = n[10], .bo = n[11],
        .up = n[12], .up_bias = n[13], .down = n[14], .down_bias = n[15],
    };
    return sb_arch_build(m, st, &names, sh, err);
}

static int open_store(const char *dir, sb_tensor_store *st, sb_err *err) {
    char path[4096];
    struct stat sst;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (stat(path, &sst) != 0) snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (stat(path, &sst) != 0) return sb_err_set(err, SB_EINPUT, "%s: no model.safetensors", dir);
    st->what = dir;
    return sb_safetensors_load(st, path, err);
}

/* The classifier's rows give the label count (id2label may be absent);
 * *head is "classifier", or "cls_classifier" for distilled DeiT. */
static int count_labels(const sb_tensor_store *st, const char *dir, const char **head, int *n, sb_err *err) {
    *head = sb_store_has(st, "cls_classifier.weight") ? "cls_classifier" : "classifier";
    char name[64];
    snprintf(name, sizeof name, "%s.weight", *head);
    const sb_tensor_ref *t = sb_store_find(st, name);
    if (!t || t->n_dims != 2 || t->shape[0] < 1 || t->shape[0] > 1 << 24)
        return sb_err_set(err, SB_EINPUT, "%s: no usable 'classifier.weight' (an image classifier needs one)", dir);
    *n = (int)t->shape[0];
    return SB_OK;
}

/* Distilled DeiT's second head, on the distillation token. */
static int take_dist_head(sb_tensor_store *st, const sb_model *m, sb_vision *v, sb_err *err) {
    if (!sb_store_has(st, "distillation_classifier.weight")) return SB_OK;
    if (!v->dist_token)
        return sb_err_set(err, SB_EINPUT, "%s: a distillation classifier without a distillation token", m->path);
    return sb_store_take_linear(st, "distillation_classifier.weight", "distillation_classifier.bias", v->n_labels,
                                m->d_model, &v->dist_head, err);
}

int sb_load_vit(const char *dir, sb_model *m, sb_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    sb_hf_config cfg;
    int rc = sb_hf_config_open(&cfg, path, err);
    if (rc) return rc;
    const char *type = "";
    rc = sb_hf_string(&cfg, "model_type", true, NULL, &type, err);
    bool deit = !rc && strcmp(type, "deit") == 0;
    snprintf(m->arch, sizeof m->arch, "%s", deit ? "deit" : "vit");
    snprintf(m->source, sizeof m->source, "hf");
    const char *pre = deit ? "deit." : "vit.", *head = "classifier";
    sb_vision *v = m->vision = sb_calloc(err, 1, sizeof *v);
    sb_arch_shape sh = {0};
    sb_tensor_store st = {0};
    if (!rc && !v) rc = SB_EINTERNAL;
    if (!rc) {
        v->n_prefix = deit ? 2 : 1;
        rc = read_shape(&cfg, m, v, &sh, err);
    }
    if (!rc) rc = open_store(dir, &st, err);
    if (!rc) rc = count_labels(&st, dir, &head, &v->n_labels, err);
    if (!rc) {
        m->n_vocab = v->n_labels;
        rc = sb_arch_alloc_blocks(m, &sh, err);
    }
    if (!rc) rc = take_embeddings(&st, pre, m, v, err);
    if (!rc) rc = take_blocks(&st, pre, head, m, &sh, err);
    if (!rc) rc = take_dist_head(&st, m, v, err);
    if (!rc) rc = read_labels(&cfg, v, err);
    if (!rc) rc = read_preprocess(dir, v, &v->pre, err);
    if (!rc) rc = sb_store_check_all_used(&st, m->arch, NULL, err);
    if (!rc) sb_store_give_files(&st, &m->files, &m->n_files);
    sb_store_free(&st);
    sb_hf_config_close(&cfg);
    return rc;
}

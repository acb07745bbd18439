/* vit_export.c - a trained ViT as a Hugging Face ViTForImageClassification
 * folder: config.json (with id2label / label2id), model.safetensors (f32
 * or bf16, the HF tensor names and shapes: the patch projection as the conv
 * weight [d, C, p, p], cls_token [1, 1, d], position_embeddings [1, T, d])
 * and preprocessor_config.json (ViTImageProcessor with the normalisation
 * the trainer used). Files are written beside their target and renamed, so
 * a reader never sees half a checkpoint. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "half.h"
#include "results.h"
#include "vit_train.h"

static int write_text(const char *path, const char *text, sb_err *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int bad = !f || fputs(text, f) == EOF || fputc('\n', f) == EOF;
    if (f) bad |= fclose(f) != 0;
    if (!bad) bad = rename(tmp, path) != 0;
    return bad ? sb_err_set(err, SB_EINTERNAL, "%s: cannot write: %s", path, strerror(errno)) : SB_OK;
}

static int write_json(const char *dir, const char *name, cJSON *j, sb_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = j ? cJSON_Print(j) : NULL;
    int rc = text ? write_text(path, text, err) : sb_err_set(err, SB_EINTERNAL, "out of memory");
    free(text);
    cJSON_Delete(j);
    return rc;
}

static cJSON *config_json(const sb_vit_model *vm, char *const *class_names, bool bf16) {
    const sb_vit_shape *s = &vm->shape;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(c, "architectures"), cJSON_CreateString("ViTForImageClassification"));
    cJSON_AddStringToObject(c, "model_type", "vit");
    const char *ik[] = {"hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "image_size",
                        "patch_size", "num_channels", "encoder_stride"};
    int iv[] = {s->d, s->n_layer, s->n_head, s->ff, s->image, s->patch, s->channels, s->patch};
    for (size_t i = 0; i < sizeof ik / sizeof ik[0]; i++) cJSON_AddNumberToObject(c, ik[i], iv[i]);
    cJSON_AddStringToObject(c, "hidden_act", "gelu");
    cJSON_AddNumberToObject(c, "hidden_dropout_prob", 0.0);
    cJSON_AddNumberToObject(c, "attention_probs_dropout_prob", 0.0);
    cJSON_AddNumberToObject(c, "initializer_range", 0.02);
    cJSON_AddNumberToObject(c, "layer_norm_eps", s->ln_eps);
    cJSON_AddBoolToObject(c, "qkv_bias", true);
    cJSON_AddStringToObject(c, "problem_type", "single_label_classification");
    cJSON *id2label = cJSON_AddObjectToObject(c, "id2label"), *label2id = cJSON_AddObjectToObject(c, "label2id");
    for (int k = 0; k < s->n_classes; k++) {
        char num[16], fallback[24];
        snprintf(num, sizeof num, "%d", k);
        snprintf(fallback, sizeof fallback, "LABEL_%d", k);
        const char *name = class_names && class_names[k] ? class_names[k] : fallback;
        cJSON_AddStringToObject(id2label, num, name);
        if (!cJSON_GetObjectItemCaseSensitive(label2id, name)) cJSON_AddNumberToObject(label2id, name, k);
    }
    cJSON_AddStringToObject(c, "dtype", bf16 ? "bfloat16" : "float32");
    return c;
}

static cJSON *preprocessor_json(const sb_vit_model *vm) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "image_processor_type", "ViTImageProcessor");
    cJSON_AddBoolToObject(c, "do_resize", false);
    cJSON *size = cJSON_AddObjectToObject(c, "size");
    cJSON_AddNumberToObject(size, "height", vm->shape.image);
    cJSON_AddNumberToObject(size, "width", vm->shape.image);
    cJSON_AddNumberToObject(c, "resample", 2);
    cJSON_AddBoolToObject(c, "do_rescale", true);
    cJSON_AddNumberToObject(c, "rescale_factor", 1.0 / 255.0);
    cJSON_AddBoolToObject(c, "do_normalize", true);
    cJSON *mean = cJSON_AddArrayToObject(c, "image_mean"), *std = cJSON_AddArrayToObject(c, "image_std");
    for (int i = 0; i < vm->shape.channels; i++) {
        cJSON_AddItemToArray(mean, cJSON_CreateNumber(0.5));
        cJSON_AddItemToArray(std, cJSON_CreateNumber(0.5));
    }
    return c;
}

/* The safetensors JSON header: every tensor with its HF shape, data packed in storage order. */
static char *st_header(const sb_vit_model *vm, int elem_bytes) {
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(cJSON_AddObjectToObject(h, "__metadata__"), "format", "pt");
    uint64_t off = 0;
    for (int i = 0; i < vm->opt.n_tensors; i++) {
        const sb_train_tensor *t = &vm->opt.tensors[i];
        cJSON *e = cJSON_AddObjectToObject(h, t->name);
        cJSON_AddStringToObject(e, "dtype", elem_bytes == 2 ? "BF16" : "F32");
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int k = 1; k <= vm->dims[i][0]; k++) cJSON_AddItemToArray(shape, cJSON_CreateNumber(vm->dims[i][k]));
        uint64_t n = (uint64_t)(t->rows * t->cols) * (uint64_t)elem_bytes;
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + n)));
        off += n;
    }
    char *text = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    return text;
}

static int write_values(FILE *f, const float *w, int64_t n, bool bf16) {
    if (!bf16) return fwrite(w, sizeof(float), (size_t)n, f) == (size_t)n ? 0 : -1;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = sb_f32_to_bf16(w[i]);
        if (fwrite(&h, 2, 1, f) != 1) return -1;
    }
    return 0;
}

static int write_safetensors(const sb_vit_model *vm, const char *dir, bool bf16, sb_err *err) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    char *header = st_header(vm, bf16 ? 2 : 4);
    if (!header) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    size_t len = strlen(header), padded = (len + 7) / 8 * 8;   /* data 8-aligned; spaces pad the JSON */
    uint64_t hlen = padded;
    FILE *f = fopen(tmp, "wb");
    int bad = !f;
    if (f) {
        bad |= fwrite(&hlen, 8, 1, f) != 1 || fwrite(header, 1, len, f) != len;
        for (size_t i = len; i < padded; i++) bad |= fputc(' ', f) == EOF;
        for (int i = 0; i < vm->opt.n_tensors && !bad; i++)
            bad |= write_values(f, vm->opt.tensors[i].w, vm->opt.tensors[i].rows * vm->opt.tensors[i].cols, bf16);
        bad |= fclose(f) != 0;
    }
    if (!bad) bad = rename(tmp, path) != 0;
    else if (f) unlink(tmp);
    free(header);
    return bad ? sb_err_set(err, SB_EINTERNAL, "%s: cannot write: %s", path, strerror(errno)) : SB_OK;
}

int sb_vit_export_hf(const sb_vit_model *vm, const char *dir, char *const *class_names, bool bf16, sb_err *err) {
    int rc = sb_make_dirs(dir, err);
    if (!rc) rc = write_json(dir, "config.json", config_json(vm, class_names, bf16), err);
    if (!rc) rc = write_json(dir, "preprocessor_config.json", preprocessor_json(vm), err);
    if (!rc) rc = write_safetensors(vm, dir, bf16, err);
    return rc;
}

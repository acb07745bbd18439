/* token_select.c - stage boundaries, top-k selection and reports shared by
 * the token-reduction methods. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "token_select.h"

int sb_token_stages(const char *text, int n_layer, const char *method, sb_token_reducer *r, sb_err *err) {
    r->n_layers = 0;
    if (strcmp(text, "auto") == 0) {
        for (int q = 1; q <= 3; q++) {
            int l = q * n_layer / 4;
            if (l >= 1 && l < n_layer && (r->n_layers == 0 || r->layers[r->n_layers - 1] < l)) r->layers[r->n_layers++] = l;
        }
        return SB_OK;
    }
    const char *c = text;
    while (*c) {
        char *end;
        long l = strtol(c, &end, 10);
        if (end == c || l < 1 || l >= n_layer || (r->n_layers && l <= r->layers[r->n_layers - 1]) ||
            r->n_layers == (int)(sizeof r->layers / sizeof r->layers[0]))
            return sb_err_set(err, SB_EINPUT,
                              "%s: layers '%s' must be 'auto' or increasing block indices in [1, %d) separated by commas",
                              method, text, n_layer);
        r->layers[r->n_layers++] = (int32_t)l;
        c = end;
        while (*c == ' ' || *c == ',') c++;
    }
    return SB_OK;
}

bool sb_token_is_stage(const sb_token_reducer *r, int layer) {
    for (int i = 0; i < r->n_layers; i++)
        if (r->layers[i] == layer) return true;
    return false;
}

int sb_token_keep(int n_patch, double ratio) {
    int k = (int)(n_patch * ratio);
    return k < 1 ? 1 : k > n_patch ? n_patch : k;
}

void sb_token_top(const float *score, const bool *alive, int n_tok, int n_prefix, int n_keep, int32_t *keep) {
    int n = 0;
    for (int i = 0; i < n_prefix; i++) keep[n++] = i;
    /* selection of the best remaining token, n_keep - n_prefix times: T is
     * a few hundred, so O(T*k) costs less than the block it saves */
    bool *taken = calloc((size_t)n_tok, sizeof(bool));
    for (; n < n_keep && taken; n++) {
        int best = -1;
        for (int i = n_prefix; i < n_tok; i++)
            if (!taken[i] && (!alive || alive[i]) && (best < 0 || score[i] > score[best])) best = i;
        if (best < 0) break;
        taken[best] = true;
    }
    n = n_prefix;
    for (int i = n_prefix; taken && i < n_tok; i++)
        if (taken[i]) keep[n++] = i;
    free(taken);
}

int sb_token_reducer_new(const sb_model *m, const char *name, sb_token_reducer **out, sb_err *err) {
    if (!m->vision)
        return sb_err_set(err, SB_EINPUT, "%s: token reduction needs an image model (ViT/DeiT); %s is not one", name,
                          m->path);
    if (m->reducer)
        return sb_err_set(err, SB_EINPUT, "%s: the model already has a token reducer (%s)", name, m->reducer->name);
    sb_token_reducer *r = sb_calloc(err, 1, sizeof *r);
    if (!r) return SB_EINTERNAL;
    snprintf(r->name, sizeof r->name, "%s", name);
    *out = r;
    return SB_OK;
}

cJSON *sb_token_report(const sb_model *m) {
    int *tokens = calloc((size_t)m->n_layer, sizeof(int));
    cJSON *d = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    if (!tokens || !d || !arr) {
        free(tokens);
        cJSON_Delete(d);
        cJSON_Delete(arr);
        return NULL;
    }
    double dense = sb_vit_dense_flops(m), planned = sb_vit_planned_flops(m, tokens);
    for (int l = 0; l < m->n_layer; l++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(tokens[l]));
    cJSON_AddItemToObject(d, "tokens_per_block", arr);
    cJSON_AddNumberToObject(d, "dense_gflops_per_image", dense / 1e9);
    cJSON_AddNumberToObject(d, "gflops_per_image", planned / 1e9);
    cJSON_AddNumberToObject(d, "flops_ratio", planned / dense);
    free(tokens);
    return d;
}

int sb_token_reducer_install(sb_model *m, sb_token_reducer *r, const char *layers, sb_method_report *report, sb_err *err) {
    int rc = sb_token_stages(layers, m->n_layer, r->name, r, err);
    if (rc) {
        free(r);
        return rc;
    }
    m->reducer = r;
    report->bits_per_weight = sb_model_bits_per_weight(m);
    report->details = sb_token_report(m);
    report->real_quant = true; /* the forward pass really runs fewer tokens (FLOPs counted from them) */
    return SB_OK;
}

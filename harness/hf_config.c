#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hf_config.h"
#include "mapped_file.h"

int sb_hf_config_open(sb_hf_config *c, const char *path, sb_err *err) {
    memset(c, 0, sizeof *c);
    char *text;
    size_t len;
    int rc = sb_read_text_file(path, &text, &len, err);
    if (rc) return rc;
    const char *end = NULL;
    c->root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    long where = end ? (long)(end - text) : -1;
    free(text);
    if (!cJSON_IsObject(c->root)) {
        cJSON_Delete(c->root);
        c->root = NULL;
        return sb_err_set(err, SB_EINPUT, "%s: malformed JSON (near byte %ld)", path, where);
    }
    c->obj = c->root;
    c->path = strdup(path);
    if (!c->path) {
        sb_hf_config_close(c);
        return sb_err_set(err, SB_EINTERNAL, "out of memory");
    }
    return SB_OK;
}

void sb_hf_config_close(sb_hf_config *c) {
    cJSON_Delete(c->root);
    free(c->path);
    memset(c, 0, sizeof *c);
}

static const cJSON *lookup(const sb_hf_config *c, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->obj, key);
    return cJSON_IsNull(v) ? NULL : v;
}

static int missing(const sb_hf_config *c, const char *key, sb_err *err) {
    return sb_err_set(err, SB_EINPUT, "%s: missing key '%s'", c->path, key);
}

int sb_hf_int(const sb_hf_config *c, const char *key, bool required, int dflt, int *out, sb_err *err) {
    const cJSON *v = lookup(c, key);
    if (!v) {
        if (required) return missing(c, key, err);
        *out = dflt;
        return SB_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 2e9)
        return sb_err_set(err, SB_EINPUT, "%s: key '%s' must be an integer", c->path, key);
    *out = (int)v->valuedouble;
    return SB_OK;
}

int sb_hf_double(const sb_hf_config *c, const char *key, bool required, double dflt, double *out, sb_err *err) {
    const cJSON *v = lookup(c, key);
    if (!v) {
        if (required) return missing(c, key, err);
        *out = dflt;
        return SB_OK;
    }
    if (!cJSON_IsNumber(v)) return sb_err_set(err, SB_EINPUT, "%s: key '%s' must be a number", c->path, key);
    *out = v->valuedouble;
    return SB_OK;
}

int sb_hf_bool(const sb_hf_config *c, const char *key, bool dflt, bool *out, sb_err *err) {
    const cJSON *v = lookup(c, key);
    if (!v) {
        *out = dflt;
        return SB_OK;
    }
    if (!cJSON_IsBool(v)) return sb_err_set(err, SB_EINPUT, "%s: key '%s' must be true or false", c->path, key);
    *out = cJSON_IsTrue(v);
    return SB_OK;
}

int sb_hf_string(const sb_hf_config *c, const char *key, bool required, const char *dflt, const char **out, sb_err *err) {
    const cJSON *v = lookup(c, key);
    if (!v) {
        if (required) return missing(c, key, err);
        *out = dflt;
        return SB_OK;
    }
    if (!cJSON_IsString(v)) return sb_err_set(err, SB_EINPUT, "%s: key '%s' must be a string", c->path, key);
    *out = v->valuestring;
    return SB_OK;
}

const cJSON *sb_hf_object(const sb_hf_config *c, const char *key) {
    const cJSON *v = lookup(c, key);
    return cJSON_IsObject(v) ? v : NULL;
}

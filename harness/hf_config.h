/* hf_config.h - typed reads from a Hugging Face config.json.
 *
 * Each getter names the file and the key in its error: a missing required
 * key or a value of the wrong type is the user's to fix (SB_EINPUT). */
#ifndef SB_HF_CONFIG_H
#define SB_HF_CONFIG_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "error.h"

typedef struct sb_hf_config {
    cJSON *root;   /* owned */
    const cJSON *obj; /* the object keys are read from (root, or its text_config) */
    char *path;
} sb_hf_config;

int sb_hf_config_open(sb_hf_config *c, const char *path, sb_err *err);
void sb_hf_config_close(sb_hf_config *c);

/* A key that is absent or JSON null takes the default when `required` is
 * false. */
int sb_hf_int(const sb_hf_config *c, const char *key, bool required, int dflt, int *out, sb_err *err);
int sb_hf_double(const sb_hf_config *c, const char *key, bool required, double dflt, double *out, sb_err *err);
int sb_hf_bool(const sb_hf_config *c, const char *key, bool dflt, bool *out, sb_err *err);
/* Borrowed string (valid while the config is open), or dflt. */
int sb_hf_string(const sb_hf_config *c, const char *key, bool required, const char *dflt, const char **out, sb_err *err);
/* The object value of key, or NULL when absent or null. */
const cJSON *sb_hf_object(const sb_hf_config *c, const char *key);

#endif

/* tokenizer_hf.c - a tokenizer from a Hugging Face tokenizer.json (and the
 * tokenizer_config.json next to it).
 *
 * Supported: model BPE (vocab, merges as "a b" strings or [a, b] pairs,
 * unk_token, byte_fallback, fuse_unk, ignore_merges); normalizers
 * Sequence, Prepend, Replace (string patterns) and NFC (taken as identity:
 * the text is assumed to be NFC already); pre-tokenizers Sequence, Split,
 * ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit; post-processors
 * TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel,
 * Sequence; added_tokens with special / lstrip / rstrip / single_word.
 * Added tokens are matched in the raw text whatever their `normalized`
 * flag (exact for normalizers that only touch spaces, as above, when the
 * token has no spaces).  Anything else is refused with a message naming
 * the file and the unsupported part. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mapped_file.h"
#include "tokenizer_internal.h"

#define MAX_VOCAB (1 << 24)

typedef struct hf_loader {
    sb_tokenizer *t;
    const char *file;
    sb_err *err;
} hf_loader;

static int bad(hf_loader *ld, const char *fmt, const char *what) {
    char msg[512];
    snprintf(msg, sizeof msg, fmt, what);
    return sb_err_set(ld->err, SB_EINPUT, "%s: %s", ld->file, msg);
}

static const char *type_of(const cJSON *obj) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(type) ? type->valuestring : NULL;
}

/* Optional boolean member: absent or null keeps *out. */
static int get_bool(hf_loader *ld, const cJSON *obj, const char *key, bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return SB_OK;
    if (!cJSON_IsBool(v)) return bad(ld, "'%s' must be true or false", key);
    *out = cJSON_IsTrue(v);
    return SB_OK;
}

static bool as_id(const cJSON *v, int32_t *id) {
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= MAX_VOCAB || v->valuedouble != (int)v->valuedouble)
        return false;
    *id = (int32_t)v->valuedouble;
    return true;
}

/* ---- vocabulary and added tokens --------------------------------------------------------- */

static int max_token_id(hf_loader *ld, const cJSON *vocab, const cJSON *added, int32_t *max_id) {
    *max_id = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        int32_t id;
        if (!as_id(e, &id)) return bad(ld, "model.vocab entry '%.100s' is not a token id", e->string);
        if (id > *max_id) *max_id = id;
    }
    cJSON_ArrayForEach(e, added) {
        int32_t id;
        if (!cJSON_IsObject(e) || !as_id(cJSON_GetObjectItemCaseSensitive(e, "id"), &id))
            return bad(ld, "%s entry without a valid id", "added_tokens");
        if (id > *max_id) *max_id = id;
    }
    return SB_OK;
}

static int load_vocab(hf_loader *ld, const cJSON *model, const cJSON *added) {
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab)) return bad(ld, "%s is missing or not an object", "model.vocab");
    if (added && !cJSON_IsArray(added)) return bad(ld, "%s is not an array", "added_tokens");
    int32_t max_id;
    int rc = max_token_id(ld, vocab, added, &max_id);
    if (rc != SB_OK) return rc;
    if (max_id < 0) return bad(ld, "%s is empty", "model.vocab");
    if ((rc = sb_vocab_init(&ld->t->vocab, max_id + 1, ld->err)) != SB_OK) return rc;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        int32_t id = (int32_t)e->valuedouble;
        if (sb_vocab_set(&ld->t->vocab, id, e->string, strlen(e->string), false, ld->err) != SB_OK)
            return sb_err_prefix(ld->err, "%s: model.vocab", ld->file);
    }
    return SB_OK;
}

static int load_added_token(hf_loader *ld, const cJSON *e) {
    sb_tokenizer *t = ld->t;
    int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
    if (!cJSON_IsString(content)) return bad(ld, "%s entry without a string content", "added_tokens");
    const char *text = content->valuestring;
    size_t len = strlen(text);
    bool special = false, lstrip = false, rstrip = false, single_word = false;
    int rc;
    if ((rc = get_bool(ld, e, "special", &special)) || (rc = get_bool(ld, e, "lstrip", &lstrip)) ||
        (rc = get_bool(ld, e, "rstrip", &rstrip)) || (rc = get_bool(ld, e, "single_word", &single_word)))
        return rc;
    if (t->vocab.present[id]) {
        if (t->vocab.len[id] != len || memcmp(sb_vocab_text(&t->vocab, id), text, len) != 0)
            return bad(ld, "added token '%.100s' has the id of a different vocabulary token", text);
    } else if ((rc = sb_vocab_set(&t->vocab, id, text, len, false, ld->err)) != SB_OK) {
        return sb_err_prefix(ld->err, "%s: added_tokens", ld->file);
    }
    t->vocab.type[id] = special ? SB_TOK_CONTROL : SB_TOK_USER_DEFINED;
    return sb_tokenizer_add_token(t, id, text, len, special, lstrip, rstrip, single_word, ld->err);
}

static int load_added_tokens(hf_loader *ld, const cJSON *added) {
    const cJSON *e;
    cJSON_ArrayForEach(e, added) {
        int rc = load_added_token(ld, e);
        if (rc != SB_OK) return rc;
    }
    ld->t->added_match = SB_MATCH_LEFTMOST_LONGEST;
    return sb_tokenizer_finish_added(ld->t, ld->err);
}

/* ---- BPE model ------------------------------------------------------------------------------ */

/* One merge as (left, right) texts: "a b" or ["a", "b"]. */
static bool merge_parts(const cJSON *m, const char **l, size_t *nl, const char **r, size_t *nr) {
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *space = strchr(s, ' ');
        if (!space || strchr(space + 1, ' ')) return false;
        *l = s;
        *nl = (size_t)(space - s);
        *r = space + 1;
        *nr = strlen(space + 1);
        return true;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2) {
        const cJSON *a = cJSON_GetArrayItem(m, 0), *b = cJSON_GetArrayItem(m, 1);
        if (!cJSON_IsString(a) || !cJSON_IsString(b)) return false;
        *l = a->valuestring;
        *nl = strlen(a->valuestring);
        *r = b->valuestring;
        *nr = strlen(b->valuestring);
        return true;
    }
    return false;
}

static int load_merges(hf_loader *ld, const cJSON *model) {
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsArray(merges)) return bad(ld, "%s is missing or not an array", "model.merges");
    int n = cJSON_GetArraySize(merges);
    int rc = sb_merges_init(&ld->t->merges, (size_t)n, ld->err);
    if (rc != SB_OK) return rc;
    sb_buf joined = {0};
    int rank = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        const char *l, *r;
        size_t nl, nr;
        char where[64];
        snprintf(where, sizeof where, "model.merges[%d]", rank);
        if (!merge_parts(m, &l, &nl, &r, &nr)) {
            free(joined.p);
            return bad(ld, "%s is not a pair of tokens", where);
        }
        joined.n = 0;
        if (!sb_buf_append(&joined, l, nl) || !sb_buf_append(&joined, r, nr)) {
            free(joined.p);
            return sb_err_set(ld->err, SB_EINTERNAL, "out of memory");
        }
        const sb_vocab *v = &ld->t->vocab;
        int32_t left = sb_vocab_find(v, l, nl), right = sb_vocab_find(v, r, nr), result = sb_vocab_find(v, joined.p, joined.n);
        if (left < 0 || right < 0 || result < 0) {
            free(joined.p);
            return bad(ld, "%s names a token that is not in the vocabulary", where);
        }
        sb_merges_add(&ld->t->merges, left, right, rank++, result);
    }
    free(joined.p);
    return SB_OK;
}

static int load_model(hf_loader *ld, const cJSON *model) {
    sb_tokenizer *t = ld->t;
    const char *type = type_of(model);
    if (type && strcmp(type, "BPE") != 0) return bad(ld, "model type '%.50s' is not supported (BPE only)", type);
    if (!type && !cJSON_GetObjectItemCaseSensitive(model, "merges"))
        return bad(ld, "%s has no type and no merges", "model");
    t->model = SB_MODEL_BPE;
    int rc;
    if ((rc = get_bool(ld, model, "byte_fallback", &t->byte_fallback)) || (rc = get_bool(ld, model, "fuse_unk", &t->fuse_unk)) ||
        (rc = get_bool(ld, model, "ignore_merges", &t->ignore_merges)))
        return rc;
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(model, affixes[i]);
        if (a && !cJSON_IsNull(a) && !(cJSON_IsString(a) && a->valuestring[0] == 0))
            return bad(ld, "model.%s is not supported", affixes[i]);
    }
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
        return bad(ld, "%s (random merges) is not supported", "model.dropout");
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (unk && !cJSON_IsNull(unk) && !cJSON_IsString(unk)) return bad(ld, "%s must be a string or null", "model.unk_token");
    if (cJSON_IsString(unk)) t->unk_id = sb_vocab_find(&t->vocab, unk->valuestring, strlen(unk->valuestring));
    if ((rc = load_merges(ld, model)) != SB_OK) return rc;
    sb_tokenizer_find_byte_tokens(t);
    return SB_OK;
}

/* ---- normalizer and pre-tokenizer --------------------------------------------------------------- */

static int string_member(hf_loader *ld, const cJSON *obj, const char *key, const char *fallback, const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        if (!fallback) return bad(ld, "missing string '%s'", key);
        *out = fallback;
        return SB_OK;
    }
    if (!cJSON_IsString(v)) return bad(ld, "'%s' must be a string", key);
    *out = v->valuestring;
    return SB_OK;
}

static int load_normalizer(hf_loader *ld, const cJSON *n) {
    if (!n || cJSON_IsNull(n)) return SB_OK;
    const char *type = type_of(n);
    if (!type) return bad(ld, "%s without a type", "normalizer");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers"), *e;
        if (!cJSON_IsArray(list)) return bad(ld, "%s is not an array", "normalizer.normalizers");
        cJSON_ArrayForEach(e, list) {
            int rc = load_normalizer(ld, e);
            if (rc != SB_OK) return rc;
        }
        return SB_OK;
    }
    if (strcmp(type, "NFC") == 0) return SB_OK;
    const char *str, *from;
    int rc;
    if (strcmp(type, "Prepend") == 0) {
        if ((rc = string_member(ld, n, "prepend", NULL, &str)) != SB_OK) return rc;
        ld->t->decode_strip_space = ld->t->decode_strip_space || strcmp(str, "\xe2\x96\x81") == 0;
        return sb_tokenizer_add_step(ld->t, SB_STEP_PREPEND, str, NULL, ld->err);
    }
    if (strcmp(type, "Replace") == 0) {
        const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        if (!cJSON_IsObject(pattern) || (rc = string_member(ld, pattern, "String", NULL, &from)) != SB_OK)
            return bad(ld, "%s: only string patterns are supported", "normalizer Replace");
        if ((rc = string_member(ld, n, "content", NULL, &str)) != SB_OK) return rc;
        return sb_tokenizer_add_step(ld->t, SB_STEP_REPLACE, str, from, ld->err);
    }
    return bad(ld, "normalizer '%.50s' is not supported", type);
}

static int split_behavior(hf_loader *ld, const cJSON *obj, sb_split_behavior *out) {
    static const char *const names[] = {"Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    const char *b;
    int rc = string_member(ld, obj, "behavior", "Isolated", &b);
    if (rc != SB_OK) return rc;
    for (int i = 0; i < 5; i++)
        if (strcmp(b, names[i]) == 0) {
            *out = (sb_split_behavior)i;
            return SB_OK;
        }
    return bad(ld, "unknown split behavior '%.50s'", b);
}

/* A regex matching a literal string. */
static char *escape_literal(const char *s) {
    char *out = malloc(2 * strlen(s) + 1), *o = out;
    if (!out) return NULL;
    for (; *s; s++) {
        if (strchr("\\^$.|?*+()[]{}", *s)) *o++ = '\\';
        *o++ = *s;
    }
    *o = 0;
    return out;
}

static int load_split(hf_loader *ld, const cJSON *p) {
    const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(p, "pattern");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(pattern, "Regex");
    const cJSON *str = cJSON_GetObjectItemCaseSensitive(pattern, "String");
    sb_split_behavior behavior = SB_SPLIT_ISOLATED;
    bool invert = false;
    int rc;
    if ((rc = split_behavior(ld, p, &behavior)) || (rc = get_bool(ld, p, "invert", &invert))) return rc;
    if (cJSON_IsString(re)) rc = sb_pretok_add_split(ld->t, re->valuestring, strlen(re->valuestring), behavior, invert, ld->err);
    else if (cJSON_IsString(str)) {
        char *lit = escape_literal(str->valuestring);
        if (!lit) return sb_err_set(ld->err, SB_EINTERNAL, "out of memory");
        rc = sb_pretok_add_split(ld->t, lit, strlen(lit), behavior, invert, ld->err);
        free(lit);
    } else return bad(ld, "%s needs a Regex or String pattern", "pre_tokenizer Split");
    return rc == SB_OK ? SB_OK : sb_err_prefix(ld->err, "%s: pre_tokenizer Split", ld->file);
}

static int load_byte_level(hf_loader *ld, const cJSON *p) {
    bool prefix = true, use_regex = true;
    int rc;
    if ((rc = get_bool(ld, p, "add_prefix_space", &prefix)) || (rc = get_bool(ld, p, "use_regex", &use_regex))) return rc;
    ld->t->byte_level = true;
    if (prefix && (rc = sb_tokenizer_add_step(ld->t, SB_STEP_BYTE_PREFIX, NULL, NULL, ld->err)) != SB_OK) return rc;
    if (use_regex) return sb_pretok_add_split(ld->t, sb_gpt2_regex, strlen(sb_gpt2_regex), SB_SPLIT_ISOLATED, false, ld->err);
    return SB_OK;
}

static int load_metaspace(hf_loader *ld, const cJSON *p) {
    const char *rep, *scheme;
    bool split = true, legacy_prefix = true;
    int rc;
    if ((rc = string_member(ld, p, "replacement", "\xe2\x96\x81", &rep)) || (rc = get_bool(ld, p, "split", &split)) ||
        (rc = get_bool(ld, p, "add_prefix_space", &legacy_prefix)) ||
        (rc = string_member(ld, p, "prepend_scheme", legacy_prefix ? "always" : "never", &scheme)))
        return rc;
    sb_prepend_scheme s;
    if (strcmp(scheme, "always") == 0) s = SB_PREPEND_ALWAYS;
    else if (strcmp(scheme, "first") == 0) s = SB_PREPEND_FIRST;
    else if (strcmp(scheme, "never") == 0) s = SB_PREPEND_NEVER;
    else return bad(ld, "unknown Metaspace prepend_scheme '%.50s'", scheme);
    if ((rc = sb_tokenizer_add_step(ld->t, SB_STEP_METASPACE, rep, NULL, ld->err)) != SB_OK) return rc;
    sb_pretok_step *step = &ld->t->steps[ld->t->n_steps - 1];
    step->scheme = s;
    step->split = split;
    ld->t->decode_strip_space = s != SB_PREPEND_NEVER;
    return SB_OK;
}

static int load_pre_tokenizer(hf_loader *ld, const cJSON *p) {
    if (!p || cJSON_IsNull(p)) return SB_OK;
    const char *type = type_of(p);
    if (!type) return bad(ld, "%s without a type", "pre_tokenizer");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"), *e;
        if (!cJSON_IsArray(list)) return bad(ld, "%s is not an array", "pre_tokenizer.pretokenizers");
        cJSON_ArrayForEach(e, list) {
            int rc = load_pre_tokenizer(ld, e);
            if (rc != SB_OK) return rc;
        }
        return SB_OK;
    }
    if (strcmp(type, "Split") == 0) return load_split(ld, p);
    if (strcmp(type, "ByteLevel") == 0) return load_byte_level(ld, p);
    if (strcmp(type, "Metaspace") == 0) return load_metaspace(ld, p);
    if (strcmp(type, "Digits") == 0) {
        bool individual = false;
        int rc = get_bool(ld, p, "individual_digits", &individual);
        const char *re = individual ? "\\p{N}" : "\\p{N}+";
        return rc ? rc : sb_pretok_add_split(ld->t, re, strlen(re), SB_SPLIT_ISOLATED, false, ld->err);
    }
    if (strcmp(type, "Whitespace") == 0) {
        const char *re = "\\w+|[^\\w\\s]+";
        return sb_pretok_add_split(ld->t, re, strlen(re), SB_SPLIT_REMOVED, true, ld->err);
    }
    if (strcmp(type, "WhitespaceSplit") == 0)
        return sb_pretok_add_split(ld->t, "\\s+", 3, SB_SPLIT_REMOVED, false, ld->err);
    return bad(ld, "pre_tokenizer '%.50s' is not supported", type);
}

/* ---- post-processor: what add_special puts around the ids ----------------------------------------- */

static int push_id(hf_loader *ld, int32_t **list, size_t *n, int32_t id) {
    if (id < 0 || id >= ld->t->vocab.n || !ld->t->vocab.present[id])
        return bad(ld, "%s names a token id that is not in the vocabulary", "post_processor");
    int32_t *l = realloc(*list, (*n + 1) * sizeof *l);
    if (!l) return sb_err_set(ld->err, SB_EINTERNAL, "out of memory");
    l[(*n)++] = id;
    *list = l;
    return SB_OK;
}

static int template_special(hf_loader *ld, const cJSON *p, const char *name, int32_t **list, size_t *n) {
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(specials, name);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(tok, "ids"), *e;
    if (!cJSON_IsArray(ids)) return bad(ld, "post_processor template uses '%.100s' which special_tokens lacks", name);
    cJSON_ArrayForEach(e, ids) {
        int32_t id;
        if (!as_id(e, &id)) return bad(ld, "post_processor special token '%.100s' has a bad id", name);
        int rc = push_id(ld, list, n, id);
        if (rc != SB_OK) return rc;
    }
    return SB_OK;
}

static int load_template(hf_loader *ld, const cJSON *p) {
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single"), *item;
    if (!cJSON_IsArray(single)) return bad(ld, "%s is not an array", "post_processor.single");
    bool after = false;
    cJSON_ArrayForEach(item, single) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(item, "Sequence");
        if (seq) {
            after = true;
            continue;
        }
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(sp, "id");
        if (!cJSON_IsString(id)) return bad(ld, "%s item is neither SpecialToken nor Sequence", "post_processor.single");
        sb_tokenizer *t = ld->t;
        int rc = after ? template_special(ld, p, id->valuestring, &t->suffix_ids, &t->n_suffix)
                       : template_special(ld, p, id->valuestring, &t->prefix_ids, &t->n_prefix);
        if (rc != SB_OK) return rc;
    }
    return SB_OK;
}

static int pair_id(hf_loader *ld, const cJSON *p, const char *key, int32_t *id) {
    const cJSON *pair = cJSON_GetObjectItemCaseSensitive(p, key);
    if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 || !as_id(cJSON_GetArrayItem(pair, 1), id))
        return bad(ld, "post_processor '%s' must be [token, id]", key);
    return SB_OK;
}

static int load_post_processor(hf_loader *ld, const cJSON *p) {
    if (!p || cJSON_IsNull(p)) return SB_OK;
    const char *type = type_of(p);
    if (!type) return bad(ld, "%s without a type", "post_processor");
    sb_tokenizer *t = ld->t;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "processors"), *e;
        if (!cJSON_IsArray(list)) return bad(ld, "%s is not an array", "post_processor.processors");
        cJSON_ArrayForEach(e, list) {
            int rc = load_post_processor(ld, e);
            if (rc != SB_OK) return rc;
        }
        return SB_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) return SB_OK;
    if (strcmp(type, "TemplateProcessing") == 0) return load_template(ld, p);
    if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0) {
        int32_t cls, sep;
        int rc;
        if ((rc = pair_id(ld, p, "cls", &cls)) || (rc = pair_id(ld, p, "sep", &sep))) return rc;
        if ((rc = push_id(ld, &t->prefix_ids, &t->n_prefix, cls)) != SB_OK) return rc;
        return push_id(ld, &t->suffix_ids, &t->n_suffix, sep);
    }
    return bad(ld, "post_processor '%.50s' is not supported", type);
}

/* ---- tokenizer_config.json ------------------------------------------------------------------------- */

/* bos_token / eos_token: a string or {"content": string}. */
static int32_t config_token(const sb_tokenizer *t, const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(v)) return -1;
    return sb_vocab_find(&t->vocab, v->valuestring, strlen(v->valuestring));
}

static int load_config(hf_loader *ld, const char *config_path) {
    sb_tokenizer *t = ld->t;
    t->bos_id = t->n_prefix == 1 ? t->prefix_ids[0] : -1;
    t->eos_id = t->n_suffix == 1 ? t->suffix_ids[0] : -1;
    struct stat st;
    if (!config_path || stat(config_path, &st) != 0) {
        t->add_bos = t->n_prefix > 0 && t->prefix_ids[0] == t->bos_id;
        return SB_OK;
    }
    char *text;
    size_t len;
    int rc = sb_read_text_file(config_path, &text, &len, ld->err);
    if (rc != SB_OK) return rc;
    cJSON *cfg = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return sb_err_set(ld->err, SB_EINPUT, "%s: not a JSON object", config_path);
    }
    int32_t bos = config_token(t, cfg, "bos_token"), eos = config_token(t, cfg, "eos_token");
    if (bos >= 0) t->bos_id = bos;
    if (eos >= 0) t->eos_id = eos;
    const cJSON *add_bos = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    const cJSON *add_eos = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    /* transformers rebuilds the post-processor from these flags when they are given */
    if (cJSON_IsBool(add_bos)) {
        t->n_prefix = 0;
        if (cJSON_IsTrue(add_bos) && t->bos_id >= 0) rc = push_id(ld, &t->prefix_ids, &t->n_prefix, t->bos_id);
    }
    if (rc == SB_OK && cJSON_IsBool(add_eos)) {
        t->n_suffix = 0;
        if (cJSON_IsTrue(add_eos) && t->eos_id >= 0) rc = push_id(ld, &t->suffix_ids, &t->n_suffix, t->eos_id);
    }
    cJSON_Delete(cfg);
    t->add_bos = t->n_prefix > 0 && t->prefix_ids[0] == t->bos_id;
    return rc;
}

/* ---- the whole file ----------------------------------------------------------------------------------- */

static int load_json(hf_loader *ld, const cJSON *root, const char *config_path) {
    sb_tokenizer *t = ld->t;
    if (!cJSON_IsObject(root)) return bad(ld, "%s", "not a JSON object");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return bad(ld, "%s is missing or not an object", "\"model\"");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (cJSON_IsNull(added)) added = NULL;
    int rc;
    if ((rc = load_vocab(ld, model, added)) || (rc = load_model(ld, model)) || (rc = load_added_tokens(ld, added)) ||
        (rc = load_normalizer(ld, cJSON_GetObjectItemCaseSensitive(root, "normalizer"))) ||
        (rc = load_pre_tokenizer(ld, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"))) ||
        (rc = load_post_processor(ld, cJSON_GetObjectItemCaseSensitive(root, "post_processor"))))
        return rc;
    if (t->byte_level) {
        t->decode_strip_space = false;
        if ((rc = sb_tokenizer_byte_level_tokens(t, ld->err)) != SB_OK) return rc;
    } else {
        t->decode_metaspace = true;
    }
    return load_config(ld, config_path);
}

static int resolve_paths(const char *path, char **json, char **config, sb_err *err) {
    struct stat st;
    if (stat(path, &st) != 0) return sb_err_set(err, SB_EINPUT, "%s: no such file or directory", path);
    size_t n = strlen(path);
    *json = malloc(n + 32);
    *config = malloc(n + 32);
    if (!*json || !*config) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    if (S_ISDIR(st.st_mode)) {
        snprintf(*json, n + 32, "%s/tokenizer.json", path);
        snprintf(*config, n + 32, "%s/tokenizer_config.json", path);
        return SB_OK;
    }
    snprintf(*json, n + 32, "%s", path);
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path + 1) : 0;
    snprintf(*config, n + 32, "%.*stokenizer_config.json", dir_len, path);
    return SB_OK;
}

int sb_tokenizer_load_hf_text(const char *json, size_t len, const char *name, sb_tokenizer **out, sb_err *err) {
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return sb_err_set(err, SB_EINPUT, "%s: not valid JSON", name);
    sb_tokenizer *t = sb_tokenizer_alloc(name, err);
    int rc = t ? SB_OK : SB_EINTERNAL;
    if (rc == SB_OK) {
        hf_loader ld = {t, name, err};
        rc = load_json(&ld, root, NULL);
    }
    cJSON_Delete(root);
    if (rc != SB_OK) {
        sb_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return SB_OK;
}

int sb_tokenizer_load_hf(const char *path, sb_tokenizer **out, sb_err *err) {
    *out = NULL;
    char *json_path = NULL, *config_path = NULL, *text = NULL;
    size_t len;
    int rc = resolve_paths(path, &json_path, &config_path, err);
    if (rc == SB_OK) rc = sb_read_text_file(json_path, &text, &len, err);
    cJSON *root = rc == SB_OK ? cJSON_ParseWithLength(text, len) : NULL;
    if (rc == SB_OK && !root) rc = sb_err_set(err, SB_EINPUT, "%s: not valid JSON", json_path);
    sb_tokenizer *t = rc == SB_OK ? sb_tokenizer_alloc(json_path, err) : NULL;
    if (rc == SB_OK && !t) rc = SB_EINTERNAL;
    if (rc == SB_OK) {
        hf_loader ld = {t, json_path, err};
        rc = load_json(&ld, root, config_path);
    }
    cJSON_Delete(root);
    free(text);
    free(json_path);
    free(config_path);
    if (rc != SB_OK) {
        sb_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return SB_OK;
}

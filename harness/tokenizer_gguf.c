/* tokenizer_gguf.c - a tokenizer from GGUF metadata, set up the way
 * llama.cpp sets up its vocabulary:
 *   tokenizer.ggml.model   "gpt2" (byte-level BPE) or "llama" (SentencePiece)
 *   tokenizer.ggml.pre     pre-tokenizer name -> regexes (gpt2 only)
 *   tokenizer.ggml.tokens / scores / token_type / merges
 *   tokenizer.ggml.{bos,eos,unknown,padding}_token_id
 *   tokenizer.ggml.add_bos_token / add_eos_token / add_space_prefix
 * Control, unknown and user-defined tokens are matched in the text before
 * the model runs (user-defined always, the others when parsing specials). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

#define MAX_VOCAB (1 << 24)

static const char *file_of(const sb_gguf *g) { return g->file.path ? g->file.path : "(gguf)"; }

/* An array-of-`elem` value of the expected length, or an error. */
static int get_array(const sb_gguf *g, const char *key, bool optional, uint64_t expect_n, bool want_strings,
                     const sb_gguf_kv **out, sb_err *err) {
    *out = NULL;
    const sb_gguf_kv *kv = sb_gguf_find(g, key);
    if (!kv) {
        if (optional) return SB_OK;
        return sb_err_set(err, SB_EINPUT, "%s: tokenizer metadata %s is missing", file_of(g), key);
    }
    if (kv->type != SB_GGUF_ARRAY) return sb_err_set(err, SB_EINPUT, "%s: %s is not an array", file_of(g), key);
    bool is_str = kv->elem_type == SB_GGUF_STRING;
    if (is_str != want_strings || kv->elem_type == SB_GGUF_ARRAY)
        return sb_err_set(err, SB_EINPUT, "%s: %s has elements of the wrong type", file_of(g), key);
    if (expect_n != UINT64_MAX && kv->n != expect_n)
        return sb_err_set(err, SB_EINPUT, "%s: %s has %llu entries but there are %llu tokens", file_of(g), key,
                          (unsigned long long)kv->n, (unsigned long long)expect_n);
    *out = kv;
    return SB_OK;
}

static int load_tokens(sb_tokenizer *t, const sb_gguf *g, sb_err *err) {
    const sb_gguf_kv *tokens;
    int rc = get_array(g, "tokenizer.ggml.tokens", false, UINT64_MAX, true, &tokens, err);
    if (rc != SB_OK) return rc;
    if (tokens->n == 0 || tokens->n > MAX_VOCAB)
        return sb_err_set(err, SB_EINPUT, "%s: tokenizer.ggml.tokens has %llu entries (expected 1..%d)", file_of(g),
                          (unsigned long long)tokens->n, MAX_VOCAB);
    int32_t n = (int32_t)tokens->n;
    if ((rc = sb_vocab_init(&t->vocab, n, err)) != SB_OK) return rc;
    for (int32_t i = 0; i < n; i++) {
        /* like llama.cpp, a later duplicate text wins the text -> id map */
        rc = sb_vocab_set(&t->vocab, i, (const char *)tokens->strs[i], (size_t)tokens->str_lens[i], true, err);
        if (rc != SB_OK) return sb_err_prefix(err, "%s: tokenizer.ggml.tokens", file_of(g));
    }
    const sb_gguf_kv *scores, *types;
    if ((rc = get_array(g, "tokenizer.ggml.scores", true, (uint64_t)n, false, &scores, err)) != SB_OK) return rc;
    if ((rc = get_array(g, "tokenizer.ggml.token_type", true, (uint64_t)n, false, &types, err)) != SB_OK) return rc;
    if (scores) {
        t->vocab.scores = sb_malloc(err, (size_t)n * sizeof *t->vocab.scores);
        if (!t->vocab.scores) return SB_EINTERNAL;
        for (int32_t i = 0; i < n; i++) {
            double v;
            if (!sb_gguf_arr_f64(scores, (uint64_t)i, &v))
                return sb_err_set(err, SB_EINPUT, "%s: tokenizer.ggml.scores is not numeric", file_of(g));
            t->vocab.scores[i] = (float)v;
        }
    }
    for (int32_t i = 0; types && i < n; i++) {
        int64_t v;
        if (!sb_gguf_arr_i64(types, (uint64_t)i, &v) || v < 0 || v > SB_TOK_BYTE)
            return sb_err_set(err, SB_EINPUT, "%s: tokenizer.ggml.token_type[%d] is not a token type (0-6)", file_of(g), (int)i);
        t->vocab.type[i] = v == 0 ? SB_TOK_NORMAL : (uint8_t)v;
    }
    return SB_OK;
}

/* "left right" -> both ids and the merged id, all of which must be tokens. */
static int load_merges(sb_tokenizer *t, const sb_gguf *g, sb_err *err) {
    const sb_gguf_kv *merges;
    int rc = get_array(g, "tokenizer.ggml.merges", false, UINT64_MAX, true, &merges, err);
    if (rc != SB_OK) return rc;
    if (merges->n > MAX_VOCAB * 4ull) return sb_err_set(err, SB_EINPUT, "%s: too many merges", file_of(g));
    if ((rc = sb_merges_init(&t->merges, (size_t)merges->n, err)) != SB_OK) return rc;
    sb_buf joined = {0};
    for (uint64_t i = 0; i < merges->n; i++) {
        const char *s = (const char *)merges->strs[i];
        size_t n = (size_t)merges->str_lens[i];
        const char *space = n > 1 ? memchr(s + 1, ' ', n - 1) : NULL; /* llama.cpp: the first space after byte 0 */
        if (!space) {
            free(joined.p);
            return sb_err_set(err, SB_EINPUT, "%s: tokenizer.ggml.merges[%llu] '%.*s' is not 'left right'", file_of(g),
                              (unsigned long long)i, (int)(n > 64 ? 64 : n), s);
        }
        size_t nl = (size_t)(space - s), nr = n - nl - 1;
        int32_t left = sb_vocab_find(&t->vocab, s, nl), right = sb_vocab_find(&t->vocab, space + 1, nr);
        joined.n = 0;
        if (!sb_buf_append(&joined, s, nl) || !sb_buf_append(&joined, space + 1, nr)) {
            free(joined.p);
            return sb_err_set(err, SB_EINTERNAL, "out of memory");
        }
        int32_t result = sb_vocab_find(&t->vocab, joined.p, joined.n);
        if (left < 0 || right < 0 || result < 0) {
            free(joined.p);
            return sb_err_set(err, SB_EINPUT, "%s: tokenizer.ggml.merges[%llu] '%.*s' names a token that is not in the vocabulary",
                              file_of(g), (unsigned long long)i, (int)(n > 64 ? 64 : n), s);
        }
        sb_merges_add(&t->merges, left, right, (int32_t)i, result);
    }
    free(joined.p);
    return SB_OK;
}

/* A special token id key: absent keeps *id; present must be a valid id. */
static int get_token_id(const sb_gguf *g, const sb_tokenizer *t, const char *key, int32_t *id, sb_err *err) {
    int64_t v = *id;
    int rc = sb_gguf_get_i64(g, key, true, &v, err);
    if (rc != SB_OK) return rc;
    if (v == *id) return SB_OK;
    if (v < 0 || v >= t->vocab.n)
        return sb_err_set(err, SB_EINPUT, "%s: %s = %lld is not a token id (vocabulary has %d)", file_of(g), key,
                          (long long)v, (int)t->vocab.n);
    *id = (int32_t)v;
    return SB_OK;
}

static int setup_gpt2(sb_tokenizer *t, const sb_gguf *g, bool *add_bos, sb_err *err) {
    t->model = SB_MODEL_BPE;
    t->byte_level = true;
    int rc = load_merges(t, g, err);
    if (rc != SB_OK) return rc;
    char *pre = NULL;
    if ((rc = sb_gguf_get_str(g, "tokenizer.ggml.pre", true, &pre, err)) != SB_OK) return rc;
    const char *name = pre ? pre : "default";
    const char *const *regexes = sb_pretok_llama_regexes(name, &t->ignore_merges, add_bos);
    if (!regexes) {
        rc = sb_err_set(err, SB_EINPUT, "%s: unknown pre-tokenizer tokenizer.ggml.pre = '%s'", file_of(g), name);
        free(pre);
        return rc;
    }
    free(pre);
    for (; *regexes; regexes++)
        if ((rc = sb_pretok_add_split(t, *regexes, strlen(*regexes), SB_SPLIT_ISOLATED, false, err)) != SB_OK)
            return sb_err_prefix(err, "%s: built-in pre-tokenizer", file_of(g));
    return sb_tokenizer_byte_level_tokens(t, err);
}

static int setup_llama(sb_tokenizer *t, const sb_gguf *g, bool *add_bos, sb_err *err) {
    t->model = SB_MODEL_SPM;
    t->decode_metaspace = true;
    *add_bos = true;
    bool prefix = true;
    int rc = sb_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", true, &prefix, err);
    if (rc != SB_OK) return rc;
    t->spm_add_space_prefix = prefix;
    t->decode_strip_space = prefix;
    sb_tokenizer_find_byte_tokens(t);
    /* An ASCII byte inside no token longer than one byte can never be part
     * of a merge, so the merge loop may treat the text between such bytes
     * as independent sessions (same result, much smaller queues). */
    for (int b = 0; b < 128; b++) t->spm_isolated[b] = true;
    for (int32_t i = 0; i < t->vocab.n; i++) {
        if (t->vocab.len[i] < 2) continue;
        const char *s = sb_vocab_text(&t->vocab, i);
        for (uint32_t k = 0; k < t->vocab.len[i]; k++)
            if ((uint8_t)s[k] < 128) t->spm_isolated[(uint8_t)s[k]] = false;
    }
    /* llama.cpp's defaults when the ids are not in the file */
    if (t->vocab.n > 2) {
        t->unk_id = 0;
        t->bos_id = 1;
        t->eos_id = 2;
    }
    return SB_OK;
}

static int add_special_tokens(sb_tokenizer *t, sb_err *err) {
    t->added_match = SB_MATCH_LONGEST_FIRST;
    for (int32_t i = 0; i < t->vocab.n; i++) {
        uint8_t type = t->vocab.type[i];
        if (type != SB_TOK_CONTROL && type != SB_TOK_UNKNOWN && type != SB_TOK_USER_DEFINED) continue;
        int rc = sb_tokenizer_add_token(t, i, sb_vocab_text(&t->vocab, i), t->vocab.len[i], type != SB_TOK_USER_DEFINED,
                                        false, false, false, err);
        if (rc != SB_OK) return rc;
    }
    return sb_tokenizer_finish_added(t, err);
}

static int load(sb_tokenizer *t, const sb_gguf *g, sb_err *err) {
    char *model = NULL;
    int rc = sb_gguf_get_str(g, "tokenizer.ggml.model", false, &model, err);
    if (rc != SB_OK) return rc;
    bool gpt2 = strcmp(model, "gpt2") == 0, llama = strcmp(model, "llama") == 0;
    if (!gpt2 && !llama) {
        rc = sb_err_set(err, SB_EINPUT, "%s: tokenizer.ggml.model '%s' is not supported (gpt2 or llama)", file_of(g), model);
        free(model);
        return rc;
    }
    free(model);
    if ((rc = load_tokens(t, g, err)) != SB_OK) return rc;
    bool add_bos = false, add_eos = false;
    rc = gpt2 ? setup_gpt2(t, g, &add_bos, err) : setup_llama(t, g, &add_bos, err);
    if (rc != SB_OK) return rc;
    int32_t pad = -1;
    if ((rc = get_token_id(g, t, "tokenizer.ggml.bos_token_id", &t->bos_id, err)) != SB_OK ||
        (rc = get_token_id(g, t, "tokenizer.ggml.eos_token_id", &t->eos_id, err)) != SB_OK ||
        (rc = get_token_id(g, t, "tokenizer.ggml.unknown_token_id", &t->unk_id, err)) != SB_OK ||
        (rc = get_token_id(g, t, "tokenizer.ggml.padding_token_id", &pad, err)) != SB_OK)
        return rc;
    if ((rc = sb_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", true, &add_bos, err)) != SB_OK ||
        (rc = sb_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", true, &add_eos, err)) != SB_OK)
        return rc;
    if ((rc = add_special_tokens(t, err)) != SB_OK) return rc;
    return sb_tokenizer_set_bos_eos_rule(t, add_bos, add_eos, err);
}

int sb_tokenizer_load_gguf(const sb_gguf *g, sb_tokenizer **out, sb_err *err) {
    *out = NULL;
    sb_tokenizer *t = sb_tokenizer_alloc(file_of(g), err);
    if (!t) return SB_EINTERNAL;
    int rc = load(t, g, err);
    if (rc != SB_OK) {
        sb_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return SB_OK;
}

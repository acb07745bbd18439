/* tokenizer.c - the public tokenizer API: encode (sanitize UTF-8, added
 * tokens, pieces, model, BOS/EOS), decode, and the accessors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"
#include "unicode.h"

/* Inputs are addressed with 32-bit offsets inside the encoder. */
#define MAX_INPUT ((size_t)1 << 30)

sb_tokenizer *sb_tokenizer_alloc(const char *source, sb_err *err) {
    sb_tokenizer *t = sb_calloc(err, 1, sizeof *t);
    if (!t) return NULL;
    t->source = strdup(source ? source : "(tokenizer)");
    if (!t->source) {
        free(t);
        sb_err_set(err, SB_EINTERNAL, "out of memory");
        return NULL;
    }
    t->unk_id = t->bos_id = t->eos_id = -1;
    for (int b = 0; b < 256; b++) t->byte_token[b] = -1;
    return t;
}

void sb_tokenizer_free(sb_tokenizer *t) {
    if (!t) return;
    free(t->source);
    sb_vocab_free(&t->vocab);
    sb_merges_free(&t->merges);
    for (size_t i = 0; i < t->n_steps; i++) {
        free(t->steps[i].str);
        free(t->steps[i].from);
        sb_regex_free(t->steps[i].re);
    }
    free(t->steps);
    for (size_t i = 0; i < t->n_added; i++) free(t->added[i].text);
    free(t->added);
    free(t->added_by_length);
    free(t->prefix_ids);
    free(t->suffix_ids);
    free(t);
}

int sb_tokenizer_add_step(sb_tokenizer *t, sb_step_kind kind, const char *str, const char *from, sb_err *err) {
    sb_pretok_step *steps = realloc(t->steps, (t->n_steps + 1) * sizeof *steps);
    if (!steps) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    t->steps = steps;
    sb_pretok_step *s = &t->steps[t->n_steps];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->str = str ? strdup(str) : NULL;
    s->from = from ? strdup(from) : NULL;
    if ((str && !s->str) || (from && !s->from)) {
        free(s->str);
        free(s->from);
        return sb_err_set(err, SB_EINTERNAL, "out of memory");
    }
    t->n_steps++;
    return SB_OK;
}

void sb_tokenizer_find_byte_tokens(sb_tokenizer *t) {
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_token[b] = sb_vocab_find(&t->vocab, name, 6);
    }
}

int sb_tokenizer_byte_level_tokens(sb_tokenizer *t, sb_err *err) {
    for (int b = 0; b < 256; b++) {
        char ch[4];
        int n = sb_utf8_encode(sb_byte_to_cp((uint8_t)b), ch);
        t->byte_token[b] = sb_vocab_find(&t->vocab, ch, (size_t)n);
        if (t->byte_token[b] < 0 && t->unk_id < 0)
            return sb_err_set(err, SB_EINPUT, "%s: byte-level vocabulary has no token for byte 0x%02X", t->source, b);
    }
    return SB_OK;
}

int sb_tokenizer_set_bos_eos_rule(sb_tokenizer *t, bool add_bos, bool add_eos, sb_err *err) {
    free(t->prefix_ids);
    free(t->suffix_ids);
    t->prefix_ids = sb_malloc(err, sizeof(int32_t));
    t->suffix_ids = sb_malloc(err, sizeof(int32_t));
    if (!t->prefix_ids || !t->suffix_ids) return SB_EINTERNAL;
    t->n_prefix = t->n_suffix = 0;
    t->add_bos = add_bos && t->bos_id >= 0;
    if (t->add_bos) t->prefix_ids[t->n_prefix++] = t->bos_id;
    if (add_eos && t->eos_id >= 0) t->suffix_ids[t->n_suffix++] = t->eos_id;
    return SB_OK;
}

/* ---- encode ------------------------------------------------------------------------------ */

sb_encode_ctx *sb_encode_ctx_new(void) { return calloc(1, sizeof(sb_encode_ctx)); }

void sb_encode_ctx_free(sb_encode_ctx *ctx) {
    if (!ctx) return;
    sb_regex_scratch_free(&ctx->re);
    free(ctx->cps);
    free(ctx->props);
    free(ctx->cp_byte);
    free(ctx->segments);
    for (int i = 0; i < 2; i++) {
        free(ctx->text[i].p);
        free(ctx->ends[i].v);
    }
    free(ctx->word.p);
    free(ctx->symbols);
    free(ctx->heap);
    sb_piece_cache *c = &ctx->cache;
    free(c->hashes);
    free(c->key_off);
    free(c->key_len);
    free(c->ids_off);
    free(c->ids_len);
    free(c->keys.p);
    free(c->ids.v);
    free(ctx);
}

/* Copy of text with every byte outside a well-formed sequence replaced by U+FFFD. */
static char *replace_invalid_utf8(const char *text, size_t len, size_t *out_len) {
    char *out = malloc(3 * len + 1);
    if (!out) return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int l = sb_utf8_decode((const uint8_t *)text + i, len - i, &cp);
        if (l == 0) {
            memcpy(out + n, "\xef\xbf\xbd", 3);
            n += 3;
            i++;
        } else {
            memcpy(out + n, text + i, (size_t)l);
            n += (size_t)l;
            i += (size_t)l;
        }
    }
    *out_len = n;
    return out;
}

static bool append_ids(sb_ids *ids, const int32_t *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!sb_ids_push(ids, v[i])) return false;
    return true;
}

int sb_tokenizer_encode_ex(const sb_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                           int32_t **ids, size_t *n_ids, sb_err *err) {
    *ids = NULL;
    *n_ids = 0;
    if (len > MAX_INPUT) return sb_err_set(err, SB_EINPUT, "text of %zu bytes is too long to tokenize (limit 1 GiB)", len);
    char *clean = NULL;
    if (!sb_utf8_valid(text, len)) {
        clean = replace_invalid_utf8(text, len, &len);
        if (!clean) return sb_err_set(err, SB_EINTERNAL, "out of memory");
        text = clean;
    }
    sb_encode_ctx *ctx = sb_encode_ctx_new();
    sb_ids out = {0};
    int rc = ctx ? SB_OK : sb_err_set(err, SB_EINTERNAL, "out of memory");
    if (rc == SB_OK && add_special && !append_ids(&out, t->prefix_ids, t->n_prefix))
        rc = sb_err_set(err, SB_EINTERNAL, "out of memory");
    if (rc == SB_OK) rc = sb_encode_with_added(t, ctx, text, len, parse_special, &out, err);
    if (rc == SB_OK && add_special && !append_ids(&out, t->suffix_ids, t->n_suffix))
        rc = sb_err_set(err, SB_EINTERNAL, "out of memory");
    sb_encode_ctx_free(ctx);
    free(clean);
    if (rc != SB_OK) {
        free(out.v);
        return sb_err_prefix(err, "%s", t->source);
    }
    *ids = out.v;
    *n_ids = out.n;
    return SB_OK;
}

int sb_tokenizer_encode(const sb_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ids,
                        size_t *n_ids, sb_err *err) {
    return sb_tokenizer_encode_ex(t, text, len, add_special, true, ids, n_ids, err);
}

/* ---- decode ------------------------------------------------------------------------------- */

static bool is_added_type(uint8_t type) {
    return type == SB_TOK_CONTROL || type == SB_TOK_USER_DEFINED || type == SB_TOK_UNKNOWN;
}

/* <0xXX> -> the byte, or -1. */
static int byte_token_value(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A byte-level token: each character back to the byte it stands for. */
static bool decode_byte_level(sb_buf *out, const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = sb_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        if (l == 0) {
            l = 1;
            cp = 0xfffd;
        }
        int b = sb_cp_to_byte(cp);
        char c = (char)b;
        if (!(b >= 0 ? sb_buf_append(out, &c, 1) : sb_buf_append(out, s + i, (size_t)l))) return false;
        i += (size_t)l;
    }
    return true;
}

static bool decode_metaspace(const sb_tokenizer *t, int32_t id, sb_buf *out, const char *s, size_t n) {
    int b = (t->vocab.type[id] == SB_TOK_BYTE || t->byte_fallback) ? byte_token_value(s, n) : -1;
    if (b >= 0) {
        char c = (char)b;
        return sb_buf_append(out, &c, 1);
    }
    for (size_t i = 0; i < n;) {
        if (n - i >= 3 && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
            if (!sb_buf_append(out, " ", 1)) return false;
            i += 3;
        } else {
            if (!sb_buf_append(out, s + i, 1)) return false;
            i++;
        }
    }
    return true;
}

int sb_tokenizer_decode(const sb_tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len, sb_err *err) {
    *text = NULL;
    *len = 0;
    sb_buf out = {0};
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->vocab.n || !t->vocab.present[id]) {
            free(out.p);
            return sb_err_set(err, SB_EINPUT, "%s: token id %d is not in the vocabulary", t->source, (int)id);
        }
        const char *s = sb_vocab_text(&t->vocab, id);
        size_t sn = t->vocab.len[id];
        if (is_added_type(t->vocab.type[id])) ok = sb_buf_append(&out, s, sn);
        else if (t->byte_level) ok = decode_byte_level(&out, s, sn);
        else if (t->decode_metaspace) ok = decode_metaspace(t, id, &out, s, sn);
        else ok = sb_buf_append(&out, s, sn);
        if (ok && i == 0 && t->decode_strip_space && out.n > 0 && out.p[0] == ' ') {
            memmove(out.p, out.p + 1, out.n - 1);
            out.n--;
        }
    }
    ok = ok && sb_buf_append(&out, "", 1);
    if (!ok) {
        free(out.p);
        return sb_err_set(err, SB_EINTERNAL, "out of memory");
    }
    *text = out.p;
    *len = out.n - 1;
    return SB_OK;
}

int32_t sb_tokenizer_vocab_size(const sb_tokenizer *t) { return t->vocab.n; }
int32_t sb_tokenizer_bos(const sb_tokenizer *t) { return t->bos_id; }
int32_t sb_tokenizer_eos(const sb_tokenizer *t) { return t->eos_id; }
bool sb_tokenizer_adds_bos(const sb_tokenizer *t) { return t->add_bos; }

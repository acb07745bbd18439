/* tokenizer_added.c - added and special tokens: cut out of the text before
 * the model runs, so they are never split.
 *
 * Two matching orders, one per reference:
 *  - Hugging Face: scan left to right; at the first position where some
 *    token matches take the longest (leftmost-longest), honouring
 *    single_word (no word character on either side) and lstrip / rstrip
 *    (the token swallows the whitespace on that side);
 *  - llama.cpp: tokens in order of decreasing length, each one splitting
 *    every remaining text fragment at all its occurrences. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"
#include "unicode.h"

/* A piece of the input: text (id < 0) or an added token. */
typedef struct fragment {
    size_t start, end;
    int32_t id;
} fragment;

int sb_tokenizer_add_token(sb_tokenizer *t, int32_t id, const char *text, size_t len, bool special, bool lstrip,
                           bool rstrip, bool single_word, sb_err *err) {
    if (len == 0) return SB_OK; /* an empty token can never match */
    sb_added_token *a = realloc(t->added, (t->n_added + 1) * sizeof *a);
    if (!a) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    t->added = a;
    char *copy = sb_malloc(err, len + 1);
    if (!copy) return SB_EINTERNAL;
    memcpy(copy, text, len);
    copy[len] = 0;
    t->added[t->n_added++] = (sb_added_token){id, copy, len, special, lstrip, rstrip, single_word};
    return SB_OK;
}

static int by_first_byte_then_longest(const void *a, const void *b) {
    const sb_added_token *x = a, *y = b;
    uint8_t bx = (uint8_t)x->text[0], by = (uint8_t)y->text[0];
    if (bx != by) return bx < by ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* qsort has no context argument, so the length order is a plain insertion
 * sort over indices (added-token lists are short). */
static void sort_indices_by_length(const sb_added_token *added, int32_t *idx, size_t n) {
    for (size_t i = 1; i < n; i++) {
        int32_t v = idx[i];
        size_t j = i;
        while (j > 0 && added[idx[j - 1]].len < added[v].len) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = v;
    }
}

int sb_tokenizer_finish_added(sb_tokenizer *t, sb_err *err) {
    if (t->n_added) qsort(t->added, t->n_added, sizeof *t->added, by_first_byte_then_longest);
    memset(t->added_bucket, 0, sizeof t->added_bucket);
    for (size_t i = 0; i < t->n_added; i++) t->added_bucket[(uint8_t)t->added[i].text[0] + 1]++;
    for (int b = 0; b < 256; b++) t->added_bucket[b + 1] += t->added_bucket[b];
    free(t->added_by_length);
    t->added_by_length = sb_malloc(err, (t->n_added + 1) * sizeof *t->added_by_length);
    if (!t->added_by_length) return SB_EINTERNAL;
    for (size_t i = 0; i < t->n_added; i++) t->added_by_length[i] = (int32_t)i;
    sort_indices_by_length(t->added, t->added_by_length, t->n_added);
    return SB_OK;
}

/* ---- Hugging Face order ------------------------------------------------------------- */

static uint32_t cp_before(const char *s, size_t pos, size_t *start) {
    size_t i = pos;
    do i--;
    while (i > 0 && ((uint8_t)s[i] & 0xc0) == 0x80);
    uint32_t cp = 0xfffd;
    sb_utf8_decode((const uint8_t *)s + i, pos - i, &cp);
    *start = i;
    return cp;
}

static uint32_t cp_at(const char *s, size_t pos, size_t len, size_t *next) {
    uint32_t cp = 0xfffd;
    int l = sb_utf8_decode((const uint8_t *)s + pos, len - pos, &cp);
    *next = pos + (size_t)(l ? l : 1);
    return cp;
}

static bool is_word_cp(uint32_t cp) {
    uint8_t prop = sb_unicode_prop(cp);
    return cp == '_' || ((SB_UMASK_L | SB_UMASK_N | SB_UMASK_M) >> (prop & SB_UPROP_CAT_MASK)) & 1;
}

static bool is_space_cp(uint32_t cp) { return sb_unicode_prop(cp) & SB_UPROP_WHITE_SPACE; }

/* Longest token matching at pos, or NULL. */
static const sb_added_token *token_at(const sb_tokenizer *t, const char *s, size_t len, size_t pos,
                                      bool parse_special) {
    uint8_t b = (uint8_t)s[pos];
    for (uint32_t k = t->added_bucket[b]; k < t->added_bucket[b + 1]; k++) {
        const sb_added_token *a = &t->added[k];
        if (a->special && !parse_special) continue;
        if (a->len > len - pos || memcmp(s + pos, a->text, a->len) != 0) continue;
        if (a->single_word) {
            size_t unused;
            if (pos > 0 && is_word_cp(cp_before(s, pos, &unused))) continue;
            if (pos + a->len < len && is_word_cp(cp_at(s, pos + a->len, len, &unused))) continue;
        }
        return a;
    }
    return NULL;
}

static bool push_fragment(fragment **f, size_t *n, size_t *cap, size_t start, size_t end, int32_t id) {
    if (id < 0 && start == end) return true;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        fragment *p = realloc(*f, c * sizeof *p);
        if (!p) return false;
        *f = p;
        *cap = c;
    }
    (*f)[(*n)++] = (fragment){start, end, id};
    return true;
}

static bool split_leftmost_longest(const sb_tokenizer *t, const char *s, size_t len, bool parse_special,
                                   fragment **f, size_t *n, size_t *cap) {
    size_t text_start = 0;
    for (size_t pos = 0; pos < len; pos++) {
        if (t->added_bucket[(uint8_t)s[pos]] == t->added_bucket[(uint8_t)s[pos] + 1]) continue;
        const sb_added_token *a = token_at(t, s, len, pos, parse_special);
        if (!a) continue;
        size_t start = pos, end = pos + a->len, next;
        if (a->lstrip)
            while (start > text_start) {
                size_t before;
                if (!is_space_cp(cp_before(s, start, &before))) break;
                start = before;
            }
        if (a->rstrip)
            while (end < len && is_space_cp(cp_at(s, end, len, &next))) end = next;
        if (!push_fragment(f, n, cap, text_start, start, -1) || !push_fragment(f, n, cap, start, end, a->id))
            return false;
        text_start = end;
        pos = end - 1;
    }
    return push_fragment(f, n, cap, text_start, len, -1);
}

/* ---- llama.cpp order ------------------------------------------------------------------ */

static bool split_longest_first(const sb_tokenizer *t, const char *s, size_t len, bool parse_special, fragment **f,
                                size_t *n, size_t *cap) {
    if (!push_fragment(f, n, cap, 0, len, -1)) return false;
    fragment *tmp = NULL;
    size_t n_tmp = 0, cap_tmp = 0;
    for (size_t k = 0; k < t->n_added; k++) {
        const sb_added_token *a = &t->added[t->added_by_length[k]];
        if (a->special && !parse_special) continue;
        n_tmp = 0;
        for (size_t i = 0; i < *n; i++) {
            fragment fr = (*f)[i];
            if (fr.id >= 0) {
                if (!push_fragment(&tmp, &n_tmp, &cap_tmp, fr.start, fr.end, fr.id)) goto oom;
                continue;
            }
            size_t pos = fr.start;
            for (;;) {
                const char *hit = memmem(s + pos, fr.end - pos, a->text, a->len);
                if (!hit) break;
                size_t at = (size_t)(hit - s);
                if (!push_fragment(&tmp, &n_tmp, &cap_tmp, pos, at, -1) ||
                    !push_fragment(&tmp, &n_tmp, &cap_tmp, at, at + a->len, a->id))
                    goto oom;
                pos = at + a->len;
            }
            if (!push_fragment(&tmp, &n_tmp, &cap_tmp, pos, fr.end, -1)) goto oom;
        }
        fragment *swap = *f;
        size_t swap_cap = *cap;
        *f = tmp;
        *n = n_tmp;
        *cap = cap_tmp;
        tmp = swap;
        cap_tmp = swap_cap;
    }
    free(tmp);
    return true;
oom:
    free(tmp);
    return false;
}

/* ---- encoding fragments -------------------------------------------------------------------- */

int sb_encode_with_added(const sb_tokenizer *t, sb_encode_ctx *ctx, const char *s, size_t len, bool parse_special,
                         sb_ids *out, sb_err *err) {
    fragment *f = NULL;
    size_t n = 0, cap = 0;
    bool ok = t->added_match == SB_MATCH_LONGEST_FIRST ? split_longest_first(t, s, len, parse_special, &f, &n, &cap)
                                                       : split_leftmost_longest(t, s, len, parse_special, &f, &n, &cap);
    if (!ok) {
        free(f);
        return sb_err_set(err, SB_EINTERNAL, "out of memory");
    }
    int rc = SB_OK;
    bool prev_special = true; /* llama.cpp SentencePiece: a space goes in front of the first text */
    for (size_t i = 0; i < n && rc == SB_OK; i++) {
        if (f[i].id >= 0) {
            if (!sb_ids_push(out, f[i].id)) rc = sb_err_set(err, SB_EINTERNAL, "out of memory");
            prev_special = true;
        } else if (t->model == SB_MODEL_SPM) {
            rc = sb_spm_encode(t, ctx, s + f[i].start, f[i].end - f[i].start, t->spm_add_space_prefix && prev_special,
                               out, err);
            prev_special = false;
        } else {
            rc = sb_encode_fragment(t, ctx, s + f[i].start, f[i].end - f[i].start, f[i].start == 0, out, err);
        }
    }
    free(f);
    return rc;
}

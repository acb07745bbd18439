/* bpe_train.c - byte-level BPE training, Hugging Face's BpeTrainer step for
 * step (see bpe_train.h), and the tokenizer.json it is saved as.
 *
 * Data:
 *   words   the distinct pre-tokenized pieces with their counts, each as a
 *           run of token ids in one flat array (a merge shrinks it in place);
 *   counts  pair (left << 32 | right) -> occurrences, weighted by word counts;
 *   heap    merge candidates {count, pair, words that have it}, best first.
 * A merge only visits the words of its candidate and reports the pairs it
 * removed (-1) and formed (+1); the formed pairs become new candidates.
 * Stale candidates (their pair lost occurrences since they were pushed) are
 * re-pushed with the current count when they surface. */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe_train.h"
#include "regex.h"
#include "tokenizer_internal.h"
#include "unicode.h"

#define MAX_VOCAB (1 << 20)

static int oom(sb_err *err) { return sb_err_set(err, SB_EINTERNAL, "bpe: out of memory"); }

/* p with room for `need` (>= 1) elements of `size` bytes (capacity *cap, updated);
 * NULL, with p untouched, when out of memory. */
static void *grow(void *p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(p, c * size);
    if (q) *cap = c;
    return q;
}

static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }
static int32_t pair_left(uint64_t k) { return (int32_t)(k >> 32); }
static int32_t pair_right(uint64_t k) { return (int32_t)(uint32_t)k; }

/* ---- distinct words and their counts ------------------------------------------------------------ */

typedef struct word_table {
    sb_buf bytes;       /* the words' bytes, back to back */
    size_t *off;
    uint32_t *len;
    int64_t *count;
    size_t n, cap;
    int32_t *slots;     /* open addressing: word index, -1 empty */
    size_t mask;
} word_table;

static void word_table_free(word_table *t) {
    free(t->bytes.p);
    free(t->off);
    free(t->len);
    free(t->count);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

static bool word_table_rehash(word_table *t, size_t slots) {
    int32_t *s = malloc(slots * sizeof *s);
    if (!s) return false;
    memset(s, 0xff, slots * sizeof *s);
    for (size_t w = 0; w < t->n; w++) {
        size_t i = sb_hash_bytes(t->bytes.p + t->off[w], t->len[w]) & (slots - 1);
        while (s[i] >= 0) i = (i + 1) & (slots - 1);
        s[i] = (int32_t)w;
    }
    free(t->slots);
    t->slots = s;
    t->mask = slots - 1;
    return true;
}

/* Counts one occurrence of s[0..n). */
static int word_add(word_table *t, const char *s, size_t n, sb_err *err) {
    if (!t->slots && !word_table_rehash(t, 1024)) return oom(err);
    size_t i = sb_hash_bytes(s, n) & t->mask;
    for (int32_t w; (w = t->slots[i]) >= 0; i = (i + 1) & t->mask)
        if (t->len[w] == n && memcmp(t->bytes.p + t->off[w], s, n) == 0) {
            t->count[w]++;
            return SB_OK;
        }
    if (t->n >= INT32_MAX - 1) return sb_err_set(err, SB_EINPUT, "bpe: too many distinct words");
    size_t c1 = t->cap, c2 = t->cap, c3 = t->cap;
    size_t *off = grow(t->off, &c1, t->n + 1, sizeof *off);
    if (off) t->off = off;
    uint32_t *len = grow(t->len, &c2, t->n + 1, sizeof *len);
    if (len) t->len = len;
    int64_t *count = grow(t->count, &c3, t->n + 1, sizeof *count);
    if (count) t->count = count;
    if (!off || !len || !count) return oom(err);
    t->cap = c1;
    t->off[t->n] = t->bytes.n;
    t->len[t->n] = (uint32_t)n;
    t->count[t->n] = 1;
    if (!sb_buf_append(&t->bytes, s, n)) return oom(err);
    t->slots[i] = (int32_t)t->n++;
    if (t->n * 2 > t->mask + 1 && !word_table_rehash(t, (t->mask + 1) * 2)) return oom(err);
    return SB_OK;
}

/* ---- pre-tokenizing: lines, then GPT-2 regex pieces ------------------------------------------------- */

typedef struct pretok {
    sb_regex *re;
    sb_regex_scratch scratch;
    uint32_t *cps;
    uint8_t *props;
    size_t *at;          /* byte offset of each code point, plus the end */
    size_t cap;
} pretok;

static void pretok_free(pretok *p) {
    sb_regex_free(p->re);
    sb_regex_scratch_free(&p->scratch);
    free(p->cps);
    free(p->props);
    free(p->at);
}

/* Decodes s[0..n) into code points; an ill-formed byte becomes U+FFFD (one byte). */
static int decode_line(pretok *p, const char *s, size_t n, size_t *n_cps, sb_err *err) {
    size_t c1 = p->cap, c2 = p->cap, c3 = p->cap;
    uint32_t *cps = grow(p->cps, &c1, n + 1, sizeof *cps);
    if (cps) p->cps = cps;
    uint8_t *props = grow(p->props, &c2, n + 1, sizeof *props);
    if (props) p->props = props;
    size_t *at = grow(p->at, &c3, n + 1, sizeof *at);
    if (at) p->at = at;
    if (!cps || !props || !at) return oom(err);
    p->cap = c1;
    size_t k = 0;
    for (size_t i = 0; i < n; k++) {
        uint32_t cp;
        int l = sb_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        if (l == 0) {
            cp = 0xfffd;
            l = 1;
        }
        p->cps[k] = cp;
        p->props[k] = sb_unicode_prop(cp);
        p->at[k] = i;
        i += (size_t)l;
    }
    p->at[k] = n;
    *n_cps = k;
    return SB_OK;
}

/* Splits one line into pieces as a ByteLevel pre-tokenizer does (matches and the gaps between them). */
static int pretok_line(pretok *p, const char *s, size_t n, word_table *words, sb_err *err) {
    size_t k = 0, pos = 0;
    int rc = decode_line(p, s, n, &k, err);
    while (rc == SB_OK && pos < k) {
        size_t ms, me;
        int r = sb_regex_search(p->re, p->cps, p->props, k, pos, &ms, &me, &p->scratch);
        if (r < 0) return sb_err_set(err, r == SB_REGEX_NOMEM ? SB_EINTERNAL : SB_EINPUT, "bpe: the pre-tokenizer regex failed");
        if (r == SB_REGEX_NOMATCH) ms = me = k;
        if (ms > pos) rc = word_add(words, s + p->at[pos], p->at[ms] - p->at[pos], err);
        if (rc != SB_OK || ms >= k) break;
        if (me == ms) me = ms + 1; /* an empty match: take one character */
        rc = word_add(words, s + p->at[ms], p->at[me] - p->at[ms], err);
        pos = me;
    }
    return rc;
}

static int count_words(const char *text, size_t len, word_table *words, sb_err *err) {
    pretok p = {0};
    int rc = sb_regex_compile(sb_gpt2_regex, strlen(sb_gpt2_regex), &p.re, err);
    for (size_t i = 0; rc == SB_OK && i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) + 1 : len;
        rc = pretok_line(&p, text + i, end - i, words, err);
        i = end;
    }
    pretok_free(&p);
    return rc;
}

/* ---- pair counts ----------------------------------------------------------------------------------------- */

typedef struct pair_map {
    uint64_t *keys;      /* pair + 1; 0 = empty */
    int64_t *value;
    size_t mask, n;
} pair_map;

static void pair_map_free(pair_map *m) {
    free(m->keys);
    free(m->value);
    memset(m, 0, sizeof *m);
}

static bool pair_map_resize(pair_map *m, size_t slots) {
    uint64_t *keys = calloc(slots, sizeof *keys);
    int64_t *value = malloc(slots * sizeof *value);
    if (!keys || !value) {
        free(keys);
        free(value);
        return false;
    }
    for (size_t i = 0; m->keys && i <= m->mask; i++) {
        if (!m->keys[i]) continue;
        size_t j = (size_t)sb_hash_bytes((const char *)&m->keys[i], 8) & (slots - 1);
        while (keys[j]) j = (j + 1) & (slots - 1);
        keys[j] = m->keys[i];
        value[j] = m->value[i];
    }
    free(m->keys);
    free(m->value);
    m->keys = keys;
    m->value = value;
    m->mask = slots - 1;
    return true;
}

/* The count of a pair, inserted as 0 when absent; NULL when out of memory. */
static int64_t *pair_count(pair_map *m, uint64_t pair) {
    if ((!m->keys || (m->n + 1) * 2 > m->mask + 1) && !pair_map_resize(m, m->keys ? (m->mask + 1) * 2 : 1024)) return NULL;
    uint64_t key = pair + 1;
    size_t i = (size_t)sb_hash_bytes((const char *)&key, 8) & m->mask;
    while (m->keys[i] && m->keys[i] != key) i = (i + 1) & m->mask;
    if (!m->keys[i]) {
        m->keys[i] = key;
        m->value[i] = 0;
        m->n++;
    }
    return &m->value[i];
}

/* ---- merge candidates: a max-heap ------------------------------------------------------------------------- */

typedef struct candidate {
    int64_t count;
    uint64_t pair;
    int32_t *pos;        /* words to merge in (distinct) */
    size_t n_pos;
} candidate;

typedef struct heap {
    candidate *v;
    size_t n, cap;
} heap;

/* Hugging Face's order: the higher count first, then the smaller (left, right) pair. */
static bool better(const candidate *x, const candidate *y) {
    return x->count != y->count ? x->count > y->count : x->pair < y->pair;
}

static void swap_candidates(candidate *a, candidate *b) {
    candidate t = *a;
    *a = *b;
    *b = t;
}

static bool heap_push(heap *h, candidate c) {
    candidate *v = grow(h->v, &h->cap, h->n + 1, sizeof *v);
    if (!v) return false;
    h->v = v;
    size_t i = h->n++;
    h->v[i] = c;
    while (i > 0 && better(&h->v[i], &h->v[(i - 1) / 2])) {
        swap_candidates(&h->v[i], &h->v[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    return true;
}

static candidate heap_pop(heap *h) {
    candidate top = h->v[0];
    h->v[0] = h->v[--h->n];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < h->n && better(&h->v[l], &h->v[best])) best = l;
        if (r < h->n && better(&h->v[r], &h->v[best])) best = r;
        if (best == i) break;
        swap_candidates(&h->v[i], &h->v[best]);
        i = best;
    }
    return top;
}

static void heap_free(heap *h) {
    for (size_t i = 0; i < h->n; i++) free(h->v[i].pos);
    free(h->v);
    memset(h, 0, sizeof *h);
}

/* ---- the trainer --------------------------------------------------------------------------------------------- */

/* A pair seen in a word: an occurrence (initial count) or a formed pair (after a merge). */
typedef struct seen_pair {
    uint64_t pair;
    int32_t word;
} seen_pair;

typedef struct change {
    uint64_t pair;
    int32_t word, delta;
} change;

typedef struct trainer {
    sb_vocab tokens;     /* id -> byte-level text, and back */
    int32_t n_tokens, vocab_size;
    int32_t *sym;        /* all words' token ids */
    size_t *start;       /* per word: first symbol */
    int32_t *n_sym;      /* per word: symbols left */
    int64_t *count;      /* per word */
    size_t n_words;
    pair_map counts;
    heap queue;
    int32_t (*merge)[2];
    size_t n_merges, cap_merges;
    change *changes;
    size_t n_changes, cap_changes;
    seen_pair *seen;
    size_t n_seen, cap_seen;
    sb_buf joined;
} trainer;

static void trainer_free(trainer *t) {
    sb_vocab_free(&t->tokens);
    free(t->sym);
    free(t->start);
    free(t->n_sym);
    free(t->count);
    pair_map_free(&t->counts);
    heap_free(&t->queue);
    free(t->merge);
    free(t->changes);
    free(t->seen);
    free(t->joined.p);
}

static int add_token(trainer *t, const char *text, size_t len, sb_err *err) {
    int rc = sb_vocab_set(&t->tokens, t->n_tokens, text, len, false, err);
    if (rc == SB_OK) t->n_tokens++;
    return rc;
}

/* Ids 1..256: the byte characters in code point order (Hugging Face sorts the alphabet that way). */
static int add_alphabet(trainer *t, int32_t byte_id[256], sb_err *err) {
    uint32_t cp_of[256];
    for (int b = 0; b < 256; b++) cp_of[b] = sb_byte_to_cp((uint8_t)b);
    for (int b = 0; b < 256; b++) {
        int32_t rank = 0;
        for (int c = 0; c < 256; c++) rank += cp_of[c] < cp_of[b];
        byte_id[b] = t->n_tokens + rank;
    }
    for (int32_t k = 0; k < 256; k++)
        for (int b = 0; b < 256; b++)
            if (byte_id[b] == t->n_tokens) {
                char utf8[4];
                int rc = add_token(t, utf8, (size_t)sb_utf8_encode(cp_of[b], utf8), err);
                if (rc != SB_OK) return rc;
                break;
            }
    return SB_OK;
}

/* Every word as its bytes' ids. */
static int spell_words(trainer *t, const word_table *w, const int32_t byte_id[256], sb_err *err) {
    t->n_words = w->n;
    t->sym = malloc((w->bytes.n + 1) * sizeof *t->sym);
    t->start = malloc((w->n + 1) * sizeof *t->start);
    t->n_sym = malloc((w->n + 1) * sizeof *t->n_sym);
    t->count = malloc((w->n + 1) * sizeof *t->count);
    if (!t->sym || !t->start || !t->n_sym || !t->count) return oom(err);
    for (size_t i = 0; i < w->n; i++) {
        t->start[i] = w->off[i];
        t->n_sym[i] = (int32_t)w->len[i];
        t->count[i] = w->count[i];
        for (uint32_t j = 0; j < w->len[i]; j++) t->sym[w->off[i] + j] = byte_id[(uint8_t)w->bytes.p[w->off[i] + j]];
    }
    return SB_OK;
}

static int cmp_seen(const void *a, const void *b) {
    const seen_pair *x = a, *y = b;
    if (x->pair != y->pair) return x->pair < y->pair ? -1 : 1;
    return (x->word > y->word) - (x->word < y->word);
}

static bool note_seen(trainer *t, uint64_t pair, int32_t word) {
    seen_pair *v = grow(t->seen, &t->cap_seen, t->n_seen + 1, sizeof *v);
    if (!v) return false;
    t->seen = v;
    t->seen[t->n_seen++] = (seen_pair){pair, word};
    return true;
}

/* Pushes one candidate per distinct pair of t->seen, with the distinct words it was seen in;
 * `initial`: the pair counts are the occurrences listed (else they are already in t->counts). */
static int push_seen(trainer *t, bool initial, sb_err *err) {
    if (t->n_seen > 1) qsort(t->seen, t->n_seen, sizeof *t->seen, cmp_seen);
    for (size_t i = 0, j; i < t->n_seen; i = j) {
        int64_t occurrences = 0;
        size_t n_pos = 0;
        for (j = i; j < t->n_seen && t->seen[j].pair == t->seen[i].pair; j++) {
            occurrences += t->count[t->seen[j].word];
            n_pos += j == i || t->seen[j].word != t->seen[j - 1].word;
        }
        int64_t *count = pair_count(&t->counts, t->seen[i].pair);
        if (!count) return oom(err);
        if (initial) *count = occurrences;
        if (*count <= 0) continue;
        candidate c = {*count, t->seen[i].pair, malloc(n_pos * sizeof(int32_t)), 0};
        if (!c.pos) return oom(err);
        for (size_t k = i; k < j; k++)
            if (k == i || t->seen[k].word != t->seen[k - 1].word) c.pos[c.n_pos++] = t->seen[k].word;
        if (!heap_push(&t->queue, c)) {
            free(c.pos);
            return oom(err);
        }
    }
    t->n_seen = 0;
    return SB_OK;
}

static int count_pairs(trainer *t, sb_err *err) {
    for (size_t w = 0; w < t->n_words; w++) {
        const int32_t *s = t->sym + t->start[w];
        for (int32_t i = 0; i + 1 < t->n_sym[w]; i++)
            if (!note_seen(t, pair_key(s[i], s[i + 1]), (int32_t)w)) return oom(err);
    }
    return push_seen(t, true, err);
}

static bool note_change(trainer *t, int32_t a, int32_t b, int32_t word, int32_t delta) {
    change *v = grow(t->changes, &t->cap_changes, t->n_changes + 1, sizeof *v);
    if (!v) return false;
    t->changes = v;
    t->changes[t->n_changes++] = (change){pair_key(a, b), word, delta};
    return true;
}

/* Hugging Face's Word::merge: left to right, non-overlapping, noting the neighbour pairs removed and formed. */
static bool merge_word(trainer *t, int32_t w, int32_t a, int32_t b, int32_t id) {
    int32_t *s = t->sym + t->start[w], n = t->n_sym[w];
    bool ok = true;
    for (int32_t i = 0; i < n && ok; i++) {
        if (s[i] != a || i + 1 >= n || s[i + 1] != b) continue;
        if (i > 0) ok = note_change(t, s[i - 1], a, w, -1) && note_change(t, s[i - 1], id, w, +1);
        s[i] = id;
        memmove(s + i + 1, s + i + 2, (size_t)(n - i - 2) * sizeof *s);
        n--;
        if (ok && i < n - 1) ok = note_change(t, b, s[i + 1], w, -1) && note_change(t, id, s[i + 1], w, +1);
    }
    t->n_sym[w] = n;
    return ok;
}

/* The id of left+right: an existing token with that text, else a new one. */
static int merged_token(trainer *t, int32_t a, int32_t b, int32_t *id, sb_err *err) {
    t->joined.n = 0;
    const sb_vocab *v = &t->tokens;
    if (!sb_buf_append(&t->joined, sb_vocab_text(v, a), v->len[a]) || !sb_buf_append(&t->joined, sb_vocab_text(v, b), v->len[b]))
        return oom(err);
    *id = sb_vocab_find(v, t->joined.p, t->joined.n);
    if (*id >= 0) return SB_OK;
    *id = t->n_tokens;
    return add_token(t, t->joined.p, t->joined.n, err);
}

static int apply_merge(trainer *t, const candidate *top, sb_err *err) {
    int32_t a = pair_left(top->pair), b = pair_right(top->pair), id = -1;
    int rc = merged_token(t, a, b, &id, err);
    if (rc != SB_OK) return rc;
    int32_t(*merge)[2] = grow(t->merge, &t->cap_merges, t->n_merges + 1, sizeof *merge);
    if (!merge) return oom(err);
    t->merge = merge;
    t->merge[t->n_merges][0] = a;
    t->merge[t->n_merges++][1] = b;
    t->n_changes = 0;
    for (size_t i = 0; i < top->n_pos; i++)
        if (!merge_word(t, top->pos[i], a, b, id)) return oom(err);
    for (size_t i = 0; i < t->n_changes; i++) {
        const change *c = &t->changes[i];
        int64_t *count = pair_count(&t->counts, c->pair);
        if (!count) return oom(err);
        *count += c->delta * t->count[c->word];
        if (c->delta > 0 && !note_seen(t, c->pair, c->word)) return oom(err);
    }
    return push_seen(t, false, err);
}

static int train_loop(trainer *t, sb_err *err) {
    while (t->n_tokens < t->vocab_size && t->queue.n > 0) {
        candidate top = heap_pop(&t->queue);
        int64_t *now = pair_count(&t->counts, top.pair);
        if (!now) {
            free(top.pos);
            return oom(err);
        }
        if (top.count != *now) { /* stale: back in with the current count */
            top.count = *now;
            if (!heap_push(&t->queue, top)) {
                free(top.pos);
                return oom(err);
            }
            continue;
        }
        if (top.count < 1) {
            free(top.pos);
            break;
        }
        int rc = apply_merge(t, &top, err);
        free(top.pos);
        if (rc != SB_OK) return rc;
    }
    return SB_OK;
}

static int export_vocab(const trainer *t, sb_bpe_vocab *out, sb_err *err) {
    out->token = calloc((size_t)t->n_tokens, sizeof *out->token);
    out->merge = malloc((t->n_merges + 1) * sizeof *out->merge);
    if (!out->token || !out->merge) return oom(err);
    for (int32_t i = 0; i < t->n_tokens; i++) {
        out->token[i] = strdup(sb_vocab_text(&t->tokens, i));
        if (!out->token[i]) return oom(err);
        out->n_tokens = i + 1;
    }
    if (t->n_merges > 0) memcpy(out->merge, t->merge, t->n_merges * sizeof *t->merge);
    out->n_merges = (int32_t)t->n_merges;
    return SB_OK;
}

int sb_bpe_train(const char *text, size_t len, int32_t vocab_size, sb_bpe_vocab *out, sb_err *err) {
    memset(out, 0, sizeof *out);
    if (vocab_size < SB_BPE_MIN_VOCAB || vocab_size > MAX_VOCAB)
        return sb_err_set(err, SB_EINPUT, "bpe: vocabulary size %d is outside %d..%d", (int)vocab_size, SB_BPE_MIN_VOCAB, MAX_VOCAB);
    word_table words = {0};
    trainer t = {.vocab_size = vocab_size};
    int32_t byte_id[256];
    int rc = count_words(text, len, &words, err);
    if (rc == SB_OK) rc = sb_vocab_init(&t.tokens, vocab_size, err);
    if (rc == SB_OK) rc = add_token(&t, SB_BPE_SPECIAL, strlen(SB_BPE_SPECIAL), err);
    if (rc == SB_OK) rc = add_alphabet(&t, byte_id, err);
    if (rc == SB_OK) rc = spell_words(&t, &words, byte_id, err);
    word_table_free(&words);
    if (rc == SB_OK) rc = count_pairs(&t, err);
    if (rc == SB_OK) rc = train_loop(&t, err);
    if (rc == SB_OK) rc = export_vocab(&t, out, err);
    trainer_free(&t);
    if (rc != SB_OK) sb_bpe_vocab_free(out);
    return rc;
}

void sb_bpe_vocab_free(sb_bpe_vocab *v) {
    for (int32_t i = 0; v->token && i < v->n_tokens; i++) free(v->token[i]);
    free(v->token);
    free(v->merge);
    memset(v, 0, sizeof *v);
}

/* ---- tokenizer.json ------------------------------------------------------------------------------------------------- */

static cJSON *byte_level(bool prefix_space) {
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddStringToObject(o, "type", "ByteLevel") && cJSON_AddBoolToObject(o, "add_prefix_space", prefix_space) &&
        cJSON_AddBoolToObject(o, "trim_offsets", true) && cJSON_AddBoolToObject(o, "use_regex", true))
        return o;
    cJSON_Delete(o);
    return NULL;
}

static cJSON *added_tokens(void) {
    cJSON *list = cJSON_CreateArray(), *t = cJSON_CreateObject();
    bool ok = list && t && cJSON_AddNumberToObject(t, "id", 0) && cJSON_AddStringToObject(t, "content", SB_BPE_SPECIAL) &&
              cJSON_AddBoolToObject(t, "single_word", false) && cJSON_AddBoolToObject(t, "lstrip", false) &&
              cJSON_AddBoolToObject(t, "rstrip", false) && cJSON_AddBoolToObject(t, "normalized", false) &&
              cJSON_AddBoolToObject(t, "special", true) && cJSON_AddItemToArray(list, t);
    if (ok) return list;
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0) cJSON_Delete(t);
    cJSON_Delete(list);
    return NULL;
}

/* {"SpecialToken": {"id": SPECIAL, "type_id": k}} or {"Sequence": {"id": "A", "type_id": k}} */
static bool template_item(cJSON *list, const char *kind, const char *id, int type_id) {
    cJSON *item = cJSON_CreateObject(), *inner = item ? cJSON_AddObjectToObject(item, kind) : NULL;
    bool ok = inner && cJSON_AddStringToObject(inner, "id", id) && cJSON_AddNumberToObject(inner, "type_id", type_id) &&
              cJSON_AddItemToArray(list, item);
    if (!ok) cJSON_Delete(item);
    return ok;
}

/* TemplateProcessing: "<|endoftext|> $A" (pairs: "<|endoftext|> $A <|endoftext|> $B"). */
static cJSON *post_processor(void) {
    cJSON *p = cJSON_CreateObject(), *single, *pair, *specials, *tok, *ids, *toks;
    bool ok = p && cJSON_AddStringToObject(p, "type", "TemplateProcessing") && (single = cJSON_AddArrayToObject(p, "single")) &&
              template_item(single, "SpecialToken", SB_BPE_SPECIAL, 0) && template_item(single, "Sequence", "A", 0) &&
              (pair = cJSON_AddArrayToObject(p, "pair")) && template_item(pair, "SpecialToken", SB_BPE_SPECIAL, 0) &&
              template_item(pair, "Sequence", "A", 0) && template_item(pair, "SpecialToken", SB_BPE_SPECIAL, 1) &&
              template_item(pair, "Sequence", "B", 1) && (specials = cJSON_AddObjectToObject(p, "special_tokens")) &&
              (tok = cJSON_AddObjectToObject(specials, SB_BPE_SPECIAL)) && cJSON_AddStringToObject(tok, "id", SB_BPE_SPECIAL) &&
              (ids = cJSON_AddArrayToObject(tok, "ids")) && cJSON_AddItemToArray(ids, cJSON_CreateNumber(0)) &&
              (toks = cJSON_AddArrayToObject(tok, "tokens")) && cJSON_AddItemToArray(toks, cJSON_CreateString(SB_BPE_SPECIAL));
    if (ok) return p;
    cJSON_Delete(p);
    return NULL;
}

static bool add_merges(cJSON *model, const sb_bpe_vocab *v) {
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    if (!merges) return false;
    sb_buf line = {0};
    bool ok = true;
    for (int32_t i = 0; ok && i < v->n_merges; i++) {
        const char *a = v->token[v->merge[i][0]], *b = v->token[v->merge[i][1]];
        line.n = 0;
        ok = sb_buf_append(&line, a, strlen(a)) && sb_buf_append(&line, " ", 1) && sb_buf_append(&line, b, strlen(b) + 1);
        cJSON *s = ok ? cJSON_CreateString(line.p) : NULL;
        ok = s && cJSON_AddItemToArray(merges, s);
        if (!ok) cJSON_Delete(s);
    }
    free(line.p);
    return ok;
}

static cJSON *bpe_model(const sb_bpe_vocab *v) {
    cJSON *m = cJSON_CreateObject(), *vocab;
    bool ok = m && cJSON_AddStringToObject(m, "type", "BPE") && cJSON_AddNullToObject(m, "dropout") &&
              cJSON_AddNullToObject(m, "unk_token") && cJSON_AddNullToObject(m, "continuing_subword_prefix") &&
              cJSON_AddNullToObject(m, "end_of_word_suffix") && cJSON_AddBoolToObject(m, "fuse_unk", false) &&
              cJSON_AddBoolToObject(m, "byte_fallback", false) && cJSON_AddBoolToObject(m, "ignore_merges", false) &&
              (vocab = cJSON_AddObjectToObject(m, "vocab"));
    for (int32_t i = 0; ok && i < v->n_tokens; i++) ok = cJSON_AddNumberToObject(vocab, v->token[i], i) != NULL;
    if (ok && add_merges(m, v)) return m;
    cJSON_Delete(m);
    return NULL;
}

/* Adds item under key, or deletes it; false when item is NULL or adding fails. */
static bool put(cJSON *root, const char *key, cJSON *item) {
    if (item && cJSON_AddItemToObject(root, key, item)) return true;
    cJSON_Delete(item);
    return false;
}

static int print_json(cJSON *root, bool ok, char **json, sb_err *err) {
    *json = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    return *json ? SB_OK : oom(err);
}

int sb_bpe_tokenizer_json(const sb_bpe_vocab *v, char **json, sb_err *err) {
    cJSON *root = cJSON_CreateObject();
    bool ok = root && cJSON_AddStringToObject(root, "version", "1.0") && cJSON_AddNullToObject(root, "truncation") &&
              cJSON_AddNullToObject(root, "padding") && put(root, "added_tokens", added_tokens()) &&
              cJSON_AddNullToObject(root, "normalizer") && put(root, "pre_tokenizer", byte_level(false)) &&
              put(root, "post_processor", post_processor()) && put(root, "decoder", byte_level(true)) &&
              put(root, "model", bpe_model(v));
    return print_json(root, ok, json, err);
}

int sb_bpe_tokenizer_config_json(char **json, sb_err *err) {
    cJSON *root = cJSON_CreateObject();
    bool ok = root && cJSON_AddStringToObject(root, "tokenizer_class", "PreTrainedTokenizerFast") &&
              cJSON_AddStringToObject(root, "bos_token", SB_BPE_SPECIAL) && cJSON_AddStringToObject(root, "eos_token", SB_BPE_SPECIAL) &&
              cJSON_AddStringToObject(root, "pad_token", SB_BPE_SPECIAL) && cJSON_AddBoolToObject(root, "add_bos_token", true) &&
              cJSON_AddBoolToObject(root, "add_eos_token", false) && cJSON_AddBoolToObject(root, "clean_up_tokenization_spaces", false);
    return print_json(root, ok, json, err);
}

static int write_file(const char *dir, const char *name, const char *text, sb_err *err) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    if (!path) return oom(err);
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(text, 1, strlen(text), f) == strlen(text) && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0) ok = false;
    int rc = ok ? SB_OK : sb_err_set(err, SB_EINPUT, "%s: cannot write", path);
    free(path);
    return rc;
}

int sb_bpe_save(const sb_bpe_vocab *v, const char *dir, sb_err *err) {
    char *json = NULL, *config = NULL;
    int rc = sb_bpe_tokenizer_json(v, &json, err);
    if (rc == SB_OK) rc = sb_bpe_tokenizer_config_json(&config, err);
    if (rc == SB_OK) rc = write_file(dir, "tokenizer.json", json, err);
    if (rc == SB_OK) rc = write_file(dir, "tokenizer_config.json", config, err);
    free(json);
    free(config);
    return rc;
}

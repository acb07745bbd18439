/* tokenizer_maps.c - the hash maps behind a tokenizer (token text -> id,
 * merge pair -> rank) and the small growable arrays the encoder uses. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

/* ---- hashing ----------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ull;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ull;
    x ^= x >> 32;
    return x;
}

/* A fast string hash: 8 bytes at a time, then the tail. */
static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = mix64(h ^ w) * 0x9e3779b97f4a7c15ull;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    return mix64(h ^ w);
}

static size_t table_size_for(size_t count) {
    size_t size = 16;
    while (size < count * 2 + 1) size *= 2;
    return size;
}

/* ---- vocabulary --------------------------------------------------------------- */

int sb_vocab_init(sb_vocab *v, int32_t n, sb_err *err) {
    memset(v, 0, sizeof *v);
    if (n < 0) return sb_err_set(err, SB_EINPUT, "negative vocabulary size");
    size_t count = (size_t)n;
    v->n = n;
    v->off = sb_calloc(err, count + 1, sizeof *v->off);
    v->len = sb_calloc(err, count + 1, sizeof *v->len);
    v->present = sb_calloc(err, count + 1, sizeof *v->present);
    v->type = sb_calloc(err, count + 1, sizeof *v->type);
    size_t slots = table_size_for(count);
    v->slots = sb_malloc(err, slots * sizeof *v->slots);
    if (!v->off || !v->len || !v->present || !v->type || !v->slots) {
        sb_vocab_free(v);
        return SB_EINTERNAL;
    }
    memset(v->slots, 0xff, slots * sizeof *v->slots);
    v->mask = slots - 1;
    for (size_t i = 0; i < count; i++) v->type[i] = SB_TOK_NORMAL;
    return SB_OK;
}

void sb_vocab_free(sb_vocab *v) {
    free(v->arena);
    free(v->off);
    free(v->len);
    free(v->present);
    free(v->scores);
    free(v->type);
    free(v->slots);
    memset(v, 0, sizeof *v);
}

static bool same_text(const sb_vocab *v, int32_t id, const char *text, size_t len) {
    return v->len[id] == len && memcmp(v->arena + v->off[id], text, len) == 0;
}

int32_t sb_vocab_find(const sb_vocab *v, const char *text, size_t len) {
    size_t i = hash_bytes(text, len) & v->mask;
    for (;;) {
        int32_t id = v->slots[i];
        if (id < 0) return -1;
        if (same_text(v, id, text, len)) return id;
        i = (i + 1) & v->mask;
    }
}

int sb_vocab_set(sb_vocab *v, int32_t id, const char *text, size_t len, bool replace, sb_err *err) {
    if (id < 0 || id >= v->n) return sb_err_set(err, SB_EINPUT, "token id %d out of range", (int)id);
    if (len > UINT32_MAX / 2) return sb_err_set(err, SB_EINPUT, "token %d is too long", (int)id);
    if (v->present[id]) return sb_err_set(err, SB_EINPUT, "token id %d given twice", (int)id);
    if (v->arena_len + len + 1 > v->arena_cap) {
        size_t cap = v->arena_cap ? v->arena_cap : 4096;
        while (cap < v->arena_len + len + 1) cap *= 2;
        if (cap > UINT32_MAX) return sb_err_set(err, SB_EINPUT, "vocabulary texts exceed 4 GiB");
        char *a = realloc(v->arena, cap);
        if (!a) return sb_err_set(err, SB_EINTERNAL, "out of memory (%zu bytes)", cap);
        v->arena = a;
        v->arena_cap = cap;
    }
    memcpy(v->arena + v->arena_len, text, len);
    v->arena[v->arena_len + len] = 0;
    v->off[id] = (uint32_t)v->arena_len;
    v->len[id] = (uint32_t)len;
    v->present[id] = true;
    v->arena_len += len + 1;
    size_t i = hash_bytes(text, len) & v->mask;
    for (;;) {
        int32_t other = v->slots[i];
        if (other < 0) {
            v->slots[i] = id;
            return SB_OK;
        }
        if (same_text(v, other, text, len)) {
            if (replace) v->slots[i] = id;
            return SB_OK;
        }
        i = (i + 1) & v->mask;
    }
}

/* ---- merges ----------------------------------------------------------------------- */

int sb_merges_init(sb_merges *m, size_t expected, sb_err *err) {
    memset(m, 0, sizeof *m);
    size_t size = table_size_for(expected);
    m->keys = sb_calloc(err, size, sizeof *m->keys);
    m->rank = sb_malloc(err, size * sizeof *m->rank);
    m->result = sb_malloc(err, size * sizeof *m->result);
    if (!m->keys || !m->rank || !m->result) {
        sb_merges_free(m);
        return SB_EINTERNAL;
    }
    m->mask = size - 1;
    return SB_OK;
}

void sb_merges_free(sb_merges *m) {
    free(m->keys);
    free(m->rank);
    free(m->result);
    memset(m, 0, sizeof *m);
}

static inline uint64_t pair_key(int32_t left, int32_t right) {
    return (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
}

void sb_merges_add(sb_merges *m, int32_t left, int32_t right, int32_t rank, int32_t result) {
    uint64_t key = pair_key(left, right);
    size_t i = mix64(key) & m->mask;
    while (m->keys[i] && m->keys[i] != key) i = (i + 1) & m->mask;
    if (m->keys[i]) return; /* the first (lowest-ranked) occurrence wins */
    m->keys[i] = key;
    m->rank[i] = rank;
    m->result[i] = result;
    m->count++;
}

bool sb_merges_find(const sb_merges *m, int32_t left, int32_t right, int32_t *rank, int32_t *result) {
    uint64_t key = pair_key(left, right);
    size_t i = mix64(key) & m->mask;
    for (;;) {
        uint64_t k = m->keys[i];
        if (k == key) {
            *rank = m->rank[i];
            *result = m->result[i];
            return true;
        }
        if (!k) return false;
        i = (i + 1) & m->mask;
    }
}

/* ---- growable arrays -------------------------------------------------------------------- */

bool sb_ids_push(sb_ids *ids, int32_t id) {
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        int32_t *v = realloc(ids->v, cap * sizeof *v);
        if (!v) return false;
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return true;
}

bool sb_buf_reserve(sb_buf *b, size_t extra) {
    if (b->n + extra <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return false;
    b->p = p;
    b->cap = cap;
    return true;
}

bool sb_buf_append(sb_buf *b, const void *data, size_t n) {
    if (!sb_buf_reserve(b, n)) return false;
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
    return true;
}

bool sb_offsets_push(sb_offsets *o, size_t end) {
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        size_t *v = realloc(o->v, cap * sizeof *v);
        if (!v) return false;
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = end;
    return true;
}

uint64_t sb_hash_bytes(const char *s, size_t n) { return hash_bytes(s, n); }

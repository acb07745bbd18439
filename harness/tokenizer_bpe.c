/* tokenizer_bpe.c - the BPE model: a pre-tokenized piece becomes its
 * characters' token ids, then the adjacent pair with the lowest merge rank
 * (leftmost on ties) is merged until no pair merges.  This is both the
 * Hugging Face BPE model and llama.cpp's BPE session.
 *
 * Speed: merges are looked up by id pair in a hash map, candidate pairs sit
 * in a binary heap (stale ones are skipped when popped), and pieces seen
 * before in the same encode call are answered from a cache. */
#include <stdlib.h>
#include <string.h>

#include "merge_heap.h"
#include "tokenizer_internal.h"
#include "unicode.h"

typedef struct bpe_symbol {
    int32_t id;          /* -1 once merged into its left neighbour */
    int32_t prev, next;  /* neighbours, -1 at the ends */
} bpe_symbol;


#define CACHE_MAX_PIECE 128
#define CACHE_MAX_ENTRIES (1u << 16)

/* ---- piece cache ------------------------------------------------------------ */

static void cache_clear(sb_piece_cache *c) {
    if (c->hashes) memset(c->hashes, 0, (c->mask + 1) * sizeof *c->hashes);
    c->count = 0;
    c->keys.n = 0;
    c->ids.n = 0;
}

static bool cache_init(sb_piece_cache *c) {
    size_t size = CACHE_MAX_ENTRIES * 2;
    c->hashes = calloc(size, sizeof *c->hashes);
    c->key_off = malloc(size * sizeof *c->key_off);
    c->key_len = malloc(size * sizeof *c->key_len);
    c->ids_off = malloc(size * sizeof *c->ids_off);
    c->ids_len = malloc(size * sizeof *c->ids_len);
    if (!c->hashes || !c->key_off || !c->key_len || !c->ids_off || !c->ids_len) return false;
    c->mask = size - 1;
    return true;
}

/* Slot of the piece, or of the empty slot where it would go. */
static size_t cache_slot(const sb_piece_cache *c, uint64_t h, const char *piece, size_t len) {
    size_t i = h & c->mask;
    while (c->hashes[i]) {
        if (c->hashes[i] == h && c->key_len[i] == len && memcmp(c->keys.p + c->key_off[i], piece, len) == 0) break;
        i = (i + 1) & c->mask;
    }
    return i;
}

static bool cache_store(sb_piece_cache *c, uint64_t h, const char *piece, size_t len, const int32_t *ids, size_t n) {
    if (c->count >= CACHE_MAX_ENTRIES || c->ids.n + n > UINT32_MAX / 2 || c->keys.n + len > UINT32_MAX / 2)
        cache_clear(c);
    size_t i = cache_slot(c, h, piece, len);
    if (c->hashes[i]) return true;
    size_t key_off = c->keys.n, ids_off = c->ids.n;
    if (!sb_buf_append(&c->keys, piece, len)) return false;
    for (size_t k = 0; k < n; k++)
        if (!sb_ids_push(&c->ids, ids[k])) return false;
    c->hashes[i] = h;
    c->key_off[i] = (uint32_t)key_off;
    c->key_len[i] = (uint32_t)len;
    c->ids_off[i] = (uint32_t)ids_off;
    c->ids_len[i] = (uint32_t)n;
    c->count++;
    return true;
}

/* ---- the merge loop --------------------------------------------------------------- */

static bool ensure_capacity(sb_encode_ctx *ctx, size_t n_symbols) {
    if (n_symbols > ctx->symbols_cap) {
        size_t cap = n_symbols < 256 ? 256 : n_symbols;
        void *s = realloc(ctx->symbols, cap * sizeof(bpe_symbol));
        if (!s) return false;
        ctx->symbols = s;
        ctx->symbols_cap = cap;
    }
    /* every merge adds at most two candidates */
    size_t heap_need = 3 * n_symbols + 1;
    if (heap_need > ctx->heap_cap) {
        size_t cap = heap_need < 768 ? 768 : heap_need;
        void *h = realloc(ctx->heap, cap * sizeof(sb_merge));
        if (!h) return false;
        ctx->heap = h;
        ctx->heap_cap = cap;
    }
    return true;
}

static void try_pair(const sb_tokenizer *t, const bpe_symbol *sym, int32_t left, sb_merge *heap, size_t *n_heap) {
    if (left < 0) return;
    int32_t right = sym[left].next;
    if (right < 0) return;
    int32_t rank, result;
    if (!sb_merges_find(&t->merges, sym[left].id, sym[right].id, &rank, &result)) return;
    sb_merge_push(heap, n_heap, (sb_merge){.priority = rank, .left = left, .right = right, .left_id = sym[left].id,
                                           .right_id = sym[right].id, .result = result});
}

static void merge_all(const sb_tokenizer *t, bpe_symbol *sym, size_t n, sb_merge *heap) {
    size_t n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++) try_pair(t, sym, (int32_t)i, heap, &n_heap);
    while (n_heap > 0) {
        sb_merge c = sb_merge_pop(heap, &n_heap);
        bpe_symbol *l = &sym[c.left];
        if (l->id != c.left_id || l->next < 0 || sym[l->next].id != c.right_id) continue; /* stale */
        bpe_symbol *r = &sym[l->next];
        l->id = c.result;
        r->id = -1;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = c.left;
        try_pair(t, sym, l->prev, heap, &n_heap);
        try_pair(t, sym, c.left, heap, &n_heap);
    }
}

/* ---- initial symbols ----------------------------------------------------------------- */

/* Appends symbol `id`; with fuse_unk a run of unknowns becomes one. */
static void add_symbol(const sb_tokenizer *t, bpe_symbol *sym, size_t *n, int32_t id) {
    if (id == t->unk_id && t->fuse_unk && *n > 0 && sym[*n - 1].id == t->unk_id) return;
    sym[*n] = (bpe_symbol){id, (int32_t)*n - 1, (int32_t)*n + 1};
    (*n)++;
}

/* The character at piece[0..clen) is not a token: byte fallback or unk
 * (or nothing, when the model has neither, as Hugging Face does). */
static void add_unknown_char(const sb_tokenizer *t, bpe_symbol *sym, size_t *n, const char *ch, size_t clen) {
    if (t->byte_fallback) {
        bool all = true;
        for (size_t k = 0; k < clen; k++) all = all && t->byte_token[(uint8_t)ch[k]] >= 0;
        if (all) {
            for (size_t k = 0; k < clen; k++) add_symbol(t, sym, n, t->byte_token[(uint8_t)ch[k]]);
            return;
        }
    }
    if (t->unk_id >= 0) add_symbol(t, sym, n, t->unk_id);
}

/* Symbols for a piece; *word / *word_len receive the piece spelled in the
 * vocabulary's alphabet (for ignore_merges). */
static int initial_symbols(const sb_tokenizer *t, sb_encode_ctx *ctx, const char *piece, size_t len, size_t *n_sym,
                           sb_err *err) {
    bpe_symbol *sym = ctx->symbols;
    size_t n = 0;
    ctx->word.n = 0;
    if (t->byte_level) {
        if (!sb_buf_reserve(&ctx->word, 2 * len)) return sb_err_set(err, SB_EINTERNAL, "out of memory");
        for (size_t i = 0; i < len; i++) {
            uint8_t b = (uint8_t)piece[i];
            ctx->word.n += (size_t)sb_utf8_encode(sb_byte_to_cp(b), ctx->word.p + ctx->word.n);
            int32_t id = t->byte_token[b];
            if (id >= 0) add_symbol(t, sym, &n, id);
            else if (t->unk_id >= 0) add_symbol(t, sym, &n, t->unk_id);
        }
    } else {
        if (!sb_buf_append(&ctx->word, piece, len)) return sb_err_set(err, SB_EINTERNAL, "out of memory");
        for (size_t i = 0; i < len;) {
            size_t clen = (size_t)sb_utf8_lead_len((uint8_t)piece[i]);
            if (clen > len - i) clen = len - i;
            int32_t id = sb_vocab_find(&t->vocab, piece + i, clen);
            if (id >= 0) add_symbol(t, sym, &n, id);
            else add_unknown_char(t, sym, &n, piece + i, clen);
            i += clen;
        }
    }
    if (n > 0) sym[n - 1].next = -1;
    *n_sym = n;
    return SB_OK;
}

int sb_bpe_encode_piece(const sb_tokenizer *t, sb_encode_ctx *ctx, const char *piece, size_t len, sb_ids *out,
                        sb_err *err) {
    if (len == 0) return SB_OK;
    sb_piece_cache *cache = &ctx->cache;
    bool cacheable = len <= CACHE_MAX_PIECE;
    uint64_t h = 0;
    if (cacheable) {
        if (!cache->hashes && !cache_init(cache)) return sb_err_set(err, SB_EINTERNAL, "out of memory (piece cache)");
        h = sb_hash_bytes(piece, len) | 1;
        size_t slot = cache_slot(cache, h, piece, len);
        if (cache->hashes[slot]) {
            for (uint32_t k = 0; k < cache->ids_len[slot]; k++)
                if (!sb_ids_push(out, cache->ids.v[cache->ids_off[slot] + k]))
                    return sb_err_set(err, SB_EINTERNAL, "out of memory");
            return SB_OK;
        }
    }
    /* a character is at most 4 bytes, and byte fallback gives one symbol per byte */
    if (!ensure_capacity(ctx, len)) return sb_err_set(err, SB_EINTERNAL, "out of memory (BPE symbols)");
    size_t n = 0;
    int rc = initial_symbols(t, ctx, piece, len, &n, err);
    if (rc != SB_OK) return rc;
    size_t first_out = out->n;
    int32_t whole = t->ignore_merges ? sb_vocab_find(&t->vocab, ctx->word.p, ctx->word.n) : -1;
    if (whole >= 0) {
        if (!sb_ids_push(out, whole)) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    } else {
        bpe_symbol *sym = ctx->symbols;
        merge_all(t, sym, n, ctx->heap);
        for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = sym[i].next)
            if (!sb_ids_push(out, sym[i].id)) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    }
    const int32_t *piece_ids = out->n > first_out ? out->v + first_out : NULL;
    if (cacheable && !cache_store(cache, h, piece, len, piece_ids, out->n - first_out))
        return sb_err_set(err, SB_EINTERNAL, "out of memory (piece cache)");
    return SB_OK;
}

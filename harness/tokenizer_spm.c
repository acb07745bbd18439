/* tokenizer_spm.c - llama.cpp's SentencePiece tokenizer for GGUF "llama"
 * vocabularies, step for step:
 *   - spaces become U+2581 ("▁"), with one in front when asked;
 *   - the text is split into UTF-8 characters;
 *   - repeatedly, of all adjacent pairs whose concatenation is a token, the
 *     one whose token has the highest score merges (leftmost on ties);
 *   - each final piece is its token, or else its bytes as <0xXX> tokens.
 * Like llama.cpp, a queued pair is stale when its two symbols no longer
 * add up to the queued length. */
#include <stdlib.h>
#include <string.h>

#include "merge_heap.h"
#include "tokenizer_internal.h"
#include "unicode.h"

typedef struct spm_symbol {
    uint32_t start, n;   /* bytes of the escaped text; n = 0 once merged away */
    int32_t prev, next;
} spm_symbol;


static const char metaspace[] = "\xe2\x96\x81";

/* Escaped text: optional leading ▁, every ' ' as ▁. */
static bool escape_text(sb_buf *b, const char *text, size_t len, bool prefix_space) {
    b->n = 0;
    if (!sb_buf_reserve(b, 3 * len + 3)) return false;
    if (prefix_space) sb_buf_append(b, metaspace, 3);
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') sb_buf_append(b, metaspace, 3);
        else b->p[b->n++] = text[i];
    }
    return true;
}

static bool ensure_capacity(sb_encode_ctx *ctx, size_t n_symbols) {
    if (n_symbols > ctx->symbols_cap) {
        void *s = realloc(ctx->symbols, n_symbols * sizeof(spm_symbol));
        if (!s) return false;
        ctx->symbols = s;
        ctx->symbols_cap = n_symbols;
    }
    size_t heap_need = 3 * n_symbols + 1;
    if (heap_need > ctx->heap_cap) {
        void *h = realloc(ctx->heap, heap_need * sizeof(sb_merge));
        if (!h) return false;
        ctx->heap = h;
        ctx->heap_cap = heap_need;
    }
    return true;
}

static void try_bigram(const sb_tokenizer *t, const char *text, const spm_symbol *sym, int32_t left, int32_t right,
                       sb_merge *heap, size_t *n_heap) {
    if (left < 0 || right < 0) return;
    uint32_t size = sym[left].n + sym[right].n;
    int32_t id = sb_vocab_find(&t->vocab, text + sym[left].start, size);
    if (id < 0) return;
    float score = t->vocab.scores ? t->vocab.scores[id] : 0.0f;
    /* highest score first: the heap pops the lowest priority */
    sb_merge_push(heap, n_heap, (sb_merge){.priority = -(double)score, .left = left, .right = right, .size = size});
}

static int emit_piece(const sb_tokenizer *t, const char *text, const spm_symbol *s, sb_ids *out) {
    int32_t id = sb_vocab_find(&t->vocab, text + s->start, s->n);
    if (id >= 0) return sb_ids_push(out, id) ? SB_OK : SB_EINTERNAL;
    for (uint32_t k = 0; k < s->n; k++) {
        int32_t b = t->byte_token[(uint8_t)text[s->start + k]];
        if (b < 0) b = t->unk_id;
        if (b >= 0 && !sb_ids_push(out, b)) return SB_EINTERNAL;
    }
    return SB_OK;
}

/* One merge session over s[0..n_bytes). */
static int spm_session(const sb_tokenizer *t, sb_encode_ctx *ctx, const char *s, size_t n_bytes, sb_ids *out,
                       sb_err *err) {
    if (n_bytes == 0) return SB_OK;
    if (!ensure_capacity(ctx, n_bytes)) return sb_err_set(err, SB_EINTERNAL, "out of memory (SentencePiece symbols)");
    spm_symbol *sym = ctx->symbols;
    sb_merge *heap = ctx->heap;
    size_t n = 0, n_heap = 0;
    for (size_t off = 0; off < n_bytes; n++) {
        size_t clen = (size_t)sb_utf8_lead_len((uint8_t)s[off]);
        if (clen > n_bytes - off) clen = n_bytes - off;
        sym[n] = (spm_symbol){(uint32_t)off, (uint32_t)clen, (int32_t)n - 1, (int32_t)n + 1};
        off += clen;
    }
    sym[n - 1].next = -1;
    for (size_t i = 1; i < n; i++) try_bigram(t, s, sym, (int32_t)i - 1, (int32_t)i, heap, &n_heap);
    while (n_heap > 0) {
        sb_merge b = sb_merge_pop(heap, &n_heap);
        spm_symbol *l = &sym[b.left], *r = &sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = b.left;
        try_bigram(t, s, sym, l->prev, b.left, heap, &n_heap);
        try_bigram(t, s, sym, b.left, l->next, heap, &n_heap);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next)
        if (emit_piece(t, s, &sym[i], out) != SB_OK) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    return SB_OK;
}

int sb_spm_encode(const sb_tokenizer *t, sb_encode_ctx *ctx, const char *text, size_t len, bool prefix_space,
                  sb_ids *out, sb_err *err) {
    if (!escape_text(&ctx->word, text, len, prefix_space)) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    const char *s = ctx->word.p;
    size_t n = ctx->word.n, start = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c >= 128 || !t->spm_isolated[c]) continue;
        int rc = spm_session(t, ctx, s + start, i - start, out, err);
        if (rc == SB_OK) rc = spm_session(t, ctx, s + i, 1, out, err);
        if (rc != SB_OK) return rc;
        start = i + 1;
    }
    return spm_session(t, ctx, s + start, n - start, out, err);
}

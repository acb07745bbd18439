/* tokenizer_pretok.c - normalizer and pre-tokenizer steps: a text fragment
 * becomes a list of pieces, each of which the BPE model encodes alone.
 *
 * The state between steps is a text and the end offsets of its pieces.
 * Each step rewrites it piece by piece into the other buffer (steps such
 * as a prefix or U+2581 replacement change the text), then the buffers
 * swap.  Empty pieces are dropped, as Hugging Face does. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"
#include "unicode.h"

const char sb_gpt2_regex[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---- GPT-2 byte-to-unicode alphabet -------------------------------------------- */

/* Printable bytes stand for themselves; the other 68 bytes are written as
 * U+0100 + k, k counting them in byte order. */
static bool byte_is_printable(uint8_t b) { return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae; }

uint32_t sb_byte_to_cp(uint8_t b) {
    if (byte_is_printable(b)) return b;
    uint32_t k = 0;
    for (int c = 0; c < b; c++)
        if (!byte_is_printable((uint8_t)c)) k++;
    return 0x100 + k;
}

int sb_cp_to_byte(uint32_t cp) {
    if (cp < 256) return byte_is_printable((uint8_t)cp) ? (int)cp : -1;
    if (cp < 0x100 || cp >= 0x100 + 68) return -1;
    uint32_t k = cp - 0x100;
    for (int c = 0; c < 256; c++)
        if (!byte_is_printable((uint8_t)c) && k-- == 0) return c;
    return -1;
}

/* ---- llama.cpp pre-tokenizer names ------------------------------------------------ */

#define GPT2_NO_WS "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define LLAMA3 CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define QWEN2 CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

static const char *const re_default[] = {"[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2_NO_WS, "\\p{N}+", "[0-9][0-9][0-9]", NULL};
static const char *const re_gpt2[] = {sb_gpt2_regex, NULL};
static const char *const re_llama3[] = {LLAMA3, NULL};
static const char *const re_qwen2[] = {QWEN2, NULL};
static const char *const re_qwen35[] = {
    CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const re_starcoder[] = {"\\p{N}", GPT2_NO_WS, NULL};
static const char *const re_falcon[] = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2_NO_WS, "[0-9][0-9][0-9]", NULL};
static const char *const re_deepseek_coder[] = {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}", NULL};
static const char *const re_deepseek3[] = {
    "\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const re_bloom[] = {" ?[^(\\s|.,!?…。，、।۔،)]+", NULL};
static const char *const re_viking[] = {" ?[^(\\s|.,!?…。，、।۔،)]+", "\\p{N}", NULL};
static const char *const re_seed_coder[] = {
    CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", NULL};
static const char *const re_gpt4o[] = {
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const re_tekken[] = {
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
    "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const re_bailing[] = {
    "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
    NULL};

typedef struct pre_name {
    const char *names; /* '|'-separated */
    const char *const *regexes;
    bool ignore_merges, add_bos;
} pre_name;

static const pre_name pre_names[] = {
    {"default", re_default, false, false},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2|jina-v5-nano", re_llama3, true, true},
    {"dbrx|smaug-bpe|chatglm-bpe", re_llama3, false, false},
    {"glm4|glm5", re_llama3, true, false},
    {"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|a.x-4.0|mellum|modern-bert|mpt|olmo|jais|"
     "trillion|granite-docling|roberta-bpe|jina-v1-en|jina-v2-code",
     re_gpt2, false, false},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", re_starcoder, false, false},
    {"falcon", re_falcon, false, false},
    {"qwen2|deepseek-r1-qwen|kormo|f2llmv2|stablelm2|hunyuan|megrez|grok-2|solar-open", re_qwen2, false, false},
    {"qwen35", re_qwen35, false, false},
    {"deepseek-coder", re_deepseek_coder, false, false},
    {"deepseek-v3", re_deepseek3, false, false},
    {"poro-chat|bloom|gpt3-finnish", re_bloom, false, false},
    {"viking", re_viking, false, false},
    {"seed-coder", re_seed_coder, false, false},
    {"gpt-4o|llama4|kanana2|talkie|minimax-m2", re_gpt4o, false, false},
    {"tekken", re_tekken, true, true},
    {"bailingmoe|bailingmoe2|llada-moe", re_bailing, false, false},
};

static bool name_in_list(const char *name, const char *list) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0) return true;
        if (!bar) break;
        p = bar + 1;
    }
    return false;
}

const char *const *sb_pretok_llama_regexes(const char *pre_name, bool *ignore_merges, bool *add_bos) {
    for (size_t i = 0; i < sizeof pre_names / sizeof pre_names[0]; i++)
        if (name_in_list(pre_name, pre_names[i].names)) {
            *ignore_merges = pre_names[i].ignore_merges;
            *add_bos = pre_names[i].add_bos;
            return pre_names[i].regexes;
        }
    return NULL;
}

int sb_pretok_add_split(sb_tokenizer *t, const char *pattern, size_t len, sb_split_behavior behavior, bool invert,
                        sb_err *err) {
    sb_pretok_step *steps = realloc(t->steps, (t->n_steps + 1) * sizeof *steps);
    if (!steps) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    t->steps = steps;
    sb_pretok_step *s = &t->steps[t->n_steps];
    memset(s, 0, sizeof *s);
    s->kind = SB_STEP_SPLIT;
    s->behavior = behavior;
    s->invert = invert;
    int rc = sb_regex_compile(pattern, len, &s->re, err);
    if (rc != SB_OK) return rc;
    t->n_steps++;
    return SB_OK;
}

/* ---- steps ---------------------------------------------------------------------------------- */

typedef struct segment {
    size_t start, end;
    bool match;
} segment;

static bool push_segment(sb_encode_ctx *ctx, size_t *n, size_t start, size_t end, bool match) {
    if (*n == ctx->segments_cap) {
        size_t cap = ctx->segments_cap ? ctx->segments_cap * 2 : 64;
        segment *s = realloc(ctx->segments, cap * sizeof *s);
        if (!s) return false;
        ctx->segments = s;
        ctx->segments_cap = cap;
    }
    ((segment *)ctx->segments)[(*n)++] = (segment){start, end, match};
    return true;
}

/* Decodes a piece (valid UTF-8) into ctx->cps / props / cp_byte. */
static bool decode_piece(sb_encode_ctx *ctx, const char *s, size_t len, size_t *n_cps) {
    if (len + 1 > ctx->cps_cap) {
        size_t cap = len + 1 < 1024 ? 1024 : len + 1;
        uint32_t *cps = realloc(ctx->cps, cap * sizeof *cps);
        if (cps) ctx->cps = cps;
        uint8_t *props = realloc(ctx->props, cap * sizeof *props);
        if (props) ctx->props = props;
        size_t *offs = realloc(ctx->cp_byte, cap * sizeof *offs);
        if (offs) ctx->cp_byte = offs;
        if (!cps || !props || !offs) return false;
        ctx->cps_cap = cap;
    }
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp = (uint8_t)s[i];
        int l = cp < 0x80 ? 1 : sb_utf8_decode((const uint8_t *)s + i, len - i, &cp);
        if (l == 0) { /* cannot happen after sanitizing; be safe */
            cp = 0xfffd;
            l = 1;
        }
        ctx->cps[n] = cp;
        ctx->props[n] = sb_unicode_prop(cp);
        ctx->cp_byte[n] = i;
        n++;
        i += (size_t)l;
    }
    ctx->cp_byte[n] = len;
    *n_cps = n;
    return true;
}

/* Matches and gaps of one piece, in order (Hugging Face's find_matches,
 * with Rust onig's rule that an empty match right after a match is skipped). */
static int find_segments(const sb_pretok_step *step, sb_encode_ctx *ctx, const char *s, size_t len, size_t *n_seg,
                         sb_err *err) {
    size_t n_cps;
    *n_seg = 0;
    if (!decode_piece(ctx, s, len, &n_cps)) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    size_t pos = 0, prev = 0;
    bool have_last = false;
    size_t last_end = 0;
    while (pos <= n_cps) {
        size_t ms, me;
        int r = sb_regex_search(step->re, ctx->cps, ctx->props, n_cps, pos, &ms, &me, &ctx->re);
        if (r == SB_REGEX_NOMATCH) break;
        if (r == SB_REGEX_TOO_COMPLEX) return sb_err_set(err, SB_EINPUT, "pre-tokenizer regex needs too much backtracking on this text");
        if (r < 0) return sb_err_set(err, SB_EINTERNAL, "out of memory (regex)");
        if (ms == me && have_last && last_end == me) {
            pos = me + 1;
            continue;
        }
        if (ms > prev && !push_segment(ctx, n_seg, ctx->cp_byte[prev], ctx->cp_byte[ms], false))
            return sb_err_set(err, SB_EINTERNAL, "out of memory");
        if (!push_segment(ctx, n_seg, ctx->cp_byte[ms], ctx->cp_byte[me], true))
            return sb_err_set(err, SB_EINTERNAL, "out of memory");
        prev = me;
        have_last = true;
        last_end = me;
        pos = me > ms ? me : me + 1;
    }
    if (prev < n_cps && !push_segment(ctx, n_seg, ctx->cp_byte[prev], len, false))
        return sb_err_set(err, SB_EINTERNAL, "out of memory");
    return SB_OK;
}

/* Applies a split behavior to the segments in place; returns the new count.
 * Removed segments get start == end. */
static size_t apply_behavior(segment *seg, size_t n, sb_split_behavior behavior, bool invert) {
    if (invert)
        for (size_t i = 0; i < n; i++) seg[i].match = !seg[i].match;
    size_t out = 0;
    bool previous_match = false;
    switch (behavior) {
    case SB_SPLIT_ISOLATED: return n;
    case SB_SPLIT_REMOVED:
        for (size_t i = 0; i < n; i++)
            if (!seg[i].match) seg[out++] = seg[i];
        return out;
    case SB_SPLIT_MERGED_WITH_PREVIOUS:
        for (size_t i = 0; i < n; i++) {
            if (seg[i].match && !previous_match && out > 0) seg[out - 1].end = seg[i].end;
            else seg[out++] = seg[i];
            previous_match = seg[i].match;
        }
        return out;
    case SB_SPLIT_MERGED_WITH_NEXT:
        /* walk backwards: a match joins the segment after it */
        out = n;
        for (size_t k = n; k-- > 0;) {
            bool m = seg[k].match;
            if (m && !previous_match && out < n) seg[out].start = seg[k].start;
            else seg[--out] = seg[k];
            previous_match = m;
        }
        memmove(seg, seg + out, (n - out) * sizeof *seg);
        return n - out;
    case SB_SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < n; i++) {
            if (seg[i].match == previous_match && out > 0) seg[out - 1].end = seg[i].end;
            else seg[out++] = seg[i];
            previous_match = seg[i].match;
        }
        return out;
    }
    return n;
}

typedef struct step_io {
    sb_buf *out;
    sb_offsets *ends;
} step_io;

static bool close_piece(step_io *io) {
    size_t last = io->ends->n ? io->ends->v[io->ends->n - 1] : 0;
    if (io->out->n == last) return true; /* empty piece: dropped */
    return sb_offsets_push(io->ends, io->out->n);
}

static bool starts_with(const char *s, size_t len, const char *prefix) {
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

/* Appends s with every `from` replaced by `to`. */
static bool append_replaced(sb_buf *out, const char *s, size_t len, const char *from, const char *to) {
    size_t nf = strlen(from), nt = strlen(to);
    if (nf == 0) return sb_buf_append(out, s, len);
    size_t i = 0;
    while (i < len) {
        if (len - i >= nf && memcmp(s + i, from, nf) == 0) {
            if (!sb_buf_append(out, to, nt)) return false;
            i += nf;
        } else {
            if (!sb_buf_append(out, s + i, 1)) return false;
            i++;
        }
    }
    return true;
}

static int split_piece(const sb_pretok_step *step, sb_encode_ctx *ctx, const char *s, size_t len, step_io *io,
                       sb_err *err) {
    size_t n_seg;
    int rc = find_segments(step, ctx, s, len, &n_seg, err);
    if (rc != SB_OK) return rc;
    segment *seg = ctx->segments;
    n_seg = apply_behavior(seg, n_seg, step->behavior, step->invert);
    for (size_t i = 0; i < n_seg; i++)
        if (!sb_buf_append(io->out, s + seg[i].start, seg[i].end - seg[i].start) || !close_piece(io))
            return sb_err_set(err, SB_EINTERNAL, "out of memory");
    return SB_OK;
}

static bool metaspace_piece(const sb_pretok_step *step, const char *s, size_t len, bool at_start, step_io *io) {
    size_t start = io->out->n;
    bool prepend = step->scheme == SB_PREPEND_ALWAYS || (step->scheme == SB_PREPEND_FIRST && at_start);
    if (prepend && !(len > 0 && s[0] == ' ') && !starts_with(s, len, step->str) &&
        !sb_buf_append(io->out, step->str, strlen(step->str)))
        return false;
    if (!append_replaced(io->out, s, len, " ", step->str)) return false;
    if (step->split) { /* a new piece starts at every replacement character */
        size_t nr = strlen(step->str);
        for (size_t i = start; i + nr <= io->out->n; i++)
            if (i > start && memcmp(io->out->p + i, step->str, nr) == 0) {
                size_t save = io->out->n;
                io->out->n = i;
                bool ok = close_piece(io);
                io->out->n = save;
                if (!ok) return false;
            }
    }
    return close_piece(io);
}

static int run_step(const sb_pretok_step *step, sb_encode_ctx *ctx, const char *s, size_t len, bool at_start,
                    step_io *io, sb_err *err) {
    bool ok = true;
    switch (step->kind) {
    case SB_STEP_PREPEND:
        if (len > 0) ok = sb_buf_append(io->out, step->str, strlen(step->str)) && sb_buf_append(io->out, s, len);
        break;
    case SB_STEP_REPLACE: ok = append_replaced(io->out, s, len, step->from, step->str); break;
    case SB_STEP_BYTE_PREFIX:
        if (len == 0 || s[0] != ' ') ok = sb_buf_append(io->out, " ", 1);
        ok = ok && sb_buf_append(io->out, s, len);
        break;
    case SB_STEP_METASPACE:
        if (!metaspace_piece(step, s, len, at_start, io)) return sb_err_set(err, SB_EINTERNAL, "out of memory");
        return SB_OK;
    case SB_STEP_SPLIT: return split_piece(step, ctx, s, len, io, err);
    }
    if (!ok || !close_piece(io)) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    return SB_OK;
}

int sb_encode_fragment(const sb_tokenizer *t, sb_encode_ctx *ctx, const char *text, size_t len, bool at_start,
                       sb_ids *out, sb_err *err) {
    int cur = 0;
    const char *s = text; /* the first step reads the fragment in place */
    size_t s_len = len;
    static const size_t one_piece = 0;
    const size_t *ends = &one_piece;
    size_t n_pieces = 1, fragment_end = len;
    for (size_t k = 0; k < t->n_steps; k++) {
        int next = 1 - cur;
        ctx->text[next].n = 0;
        ctx->ends[next].n = 0;
        step_io io = {&ctx->text[next], &ctx->ends[next]};
        size_t start = 0;
        for (size_t i = 0; i < n_pieces; i++) {
            size_t end = k == 0 ? fragment_end : ends[i];
            int rc = run_step(&t->steps[k], ctx, s + start, end - start, at_start && start == 0, &io, err);
            if (rc != SB_OK) return rc;
            start = end;
        }
        cur = next;
        s = ctx->text[cur].p;
        s_len = ctx->text[cur].n;
        ends = ctx->ends[cur].v;
        n_pieces = ctx->ends[cur].n;
    }
    (void)s_len;
    size_t start = 0;
    for (size_t i = 0; i < n_pieces; i++) {
        size_t end = t->n_steps == 0 ? fragment_end : ends[i];
        int rc = sb_bpe_encode_piece(t, ctx, s + start, end - start, out, err);
        if (rc != SB_OK) return rc;
        start = end;
    }
    return SB_OK;
}

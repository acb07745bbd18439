/* tokenizer_internal.h - the parts of a tokenizer shared by its loaders
 * (tokenizer_hf.c, tokenizer_gguf.c) and its encoder stages.  Not part of
 * the public API (tokenizer.h).
 *
 * Encoding runs these stages on a text:
 *   1. invalid UTF-8 bytes become U+FFFD (see tokenizer.h);
 *   2. added / special tokens are cut out (tokenizer_added.c);
 *   3. every other fragment is normalized and pre-tokenized into pieces
 *      (tokenizer_pretok.c);
 *   4. each piece goes through the model: BPE merges by rank
 *      (tokenizer_bpe.c) or llama.cpp's SentencePiece bigram merge by
 *      score (tokenizer_spm.c);
 *   5. BOS/EOS are added by the model's own rule (tokenizer.c). */
#ifndef SB_TOKENIZER_INTERNAL_H
#define SB_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "regex.h"
#include "tokenizer.h"

/* Token types, as GGUF's tokenizer.ggml.token_type numbers them. */
enum { SB_TOK_NORMAL = 1, SB_TOK_UNKNOWN = 2, SB_TOK_CONTROL = 3, SB_TOK_USER_DEFINED = 4, SB_TOK_UNUSED = 5, SB_TOK_BYTE = 6 };

/* ---- vocabulary: id -> text and text -> id -------------------------------- */

typedef struct sb_vocab {
    int32_t n;            /* ids are 0..n-1; an id without text has len 0 and is absent from the map */
    char *arena;          /* all token texts, back to back */
    size_t arena_len, arena_cap;
    uint32_t *off, *len;  /* per id: text = arena + off */
    bool *present;        /* per id: has a text */
    float *scores;        /* per id (SentencePiece); may be NULL */
    uint8_t *type;        /* per id: SB_TOK_* */
    int32_t *slots;       /* open-addressing table of ids, -1 = empty */
    size_t mask;          /* slots has mask+1 entries */
} sb_vocab;

int sb_vocab_init(sb_vocab *v, int32_t n, sb_err *err);
void sb_vocab_free(sb_vocab *v);
/* Sets the text of id (which must be < n).  When another id already has
 * that text, the map keeps the later one if `replace`, else the earlier. */
int sb_vocab_set(sb_vocab *v, int32_t id, const char *text, size_t len, bool replace, sb_err *err);
int32_t sb_vocab_find(const sb_vocab *v, const char *text, size_t len); /* -1 if absent */
static inline const char *sb_vocab_text(const sb_vocab *v, int32_t id) { return v->arena + v->off[id]; }

/* ---- BPE merges: (left id, right id) -> (rank, merged id) ------------------- */

typedef struct sb_merges {
    uint64_t *keys;       /* (left << 32 | right) + 1; 0 = empty slot */
    int32_t *rank, *result;
    size_t mask, count;
} sb_merges;

int sb_merges_init(sb_merges *m, size_t expected, sb_err *err);
void sb_merges_free(sb_merges *m);
/* Adds a merge; an existing pair keeps its first (lowest) rank. */
void sb_merges_add(sb_merges *m, int32_t left, int32_t right, int32_t rank, int32_t result);
/* True, with rank and result filled, when the pair merges. */
bool sb_merges_find(const sb_merges *m, int32_t left, int32_t right, int32_t *rank, int32_t *result);

/* ---- pre-tokenizer pipeline ------------------------------------------------- */

typedef enum {
    SB_SPLIT_ISOLATED, SB_SPLIT_REMOVED, SB_SPLIT_MERGED_WITH_PREVIOUS, SB_SPLIT_MERGED_WITH_NEXT, SB_SPLIT_CONTIGUOUS
} sb_split_behavior;

typedef enum { SB_PREPEND_ALWAYS, SB_PREPEND_FIRST, SB_PREPEND_NEVER } sb_prepend_scheme;

typedef enum {
    SB_STEP_PREPEND,      /* normalizer: put `str` in front of a non-empty fragment */
    SB_STEP_REPLACE,      /* normalizer: replace every `from` by `str` */
    SB_STEP_SPLIT,        /* pre-tokenizer: regex split with a behavior */
    SB_STEP_BYTE_PREFIX,  /* ByteLevel add_prefix_space: a space before pieces that lack one */
    SB_STEP_METASPACE,    /* ' ' -> `str`, prepend `str` per scheme, optionally split before `str` */
} sb_step_kind;

typedef struct sb_pretok_step {
    sb_step_kind kind;
    char *str;            /* PREPEND/REPLACE replacement, METASPACE replacement */
    char *from;           /* REPLACE pattern */
    sb_regex *re;         /* SPLIT */
    sb_split_behavior behavior;
    bool invert;          /* SPLIT: the pieces are the gaps between matches */
    sb_prepend_scheme scheme; /* METASPACE */
    bool split;           /* METASPACE: split before every replacement character */
} sb_pretok_step;

/* ---- added tokens ------------------------------------------------------------ */

typedef struct sb_added_token {
    int32_t id;
    char *text;
    size_t len;
    bool special;         /* HF "special" / GGUF control or unknown: only matched when parsing specials */
    bool lstrip, rstrip, single_word;
} sb_added_token;

typedef enum {
    SB_MATCH_LEFTMOST_LONGEST, /* Hugging Face: scan the text, longest token at the first position that has one */
    SB_MATCH_LONGEST_FIRST,    /* llama.cpp: each token in order of decreasing length over all fragments */
} sb_added_match;

/* ---- the tokenizer -------------------------------------------------------------- */

typedef enum { SB_MODEL_BPE, SB_MODEL_SPM } sb_model_kind;

struct sb_tokenizer {
    char *source;                 /* file name for error messages */
    sb_model_kind model;
    sb_vocab vocab;
    sb_merges merges;             /* BPE */
    bool byte_level;              /* GPT-2 byte-to-unicode alphabet */
    int32_t byte_token[256];      /* byte-level: id of each byte's character; SPM/fallback: <0xXX> id; -1 none */
    bool byte_fallback;           /* unknown characters become <0xXX> tokens */
    bool fuse_unk;
    bool ignore_merges;           /* a piece that is itself a token skips the merges */
    int32_t unk_id;

    sb_pretok_step *steps;
    size_t n_steps;

    sb_added_token *added;        /* sorted by first byte, then decreasing length */
    size_t n_added;
    uint32_t added_bucket[257];   /* added[added_bucket[b] .. added_bucket[b+1]) start with byte b */
    int32_t *added_by_length;     /* indices into added, longest first (llama.cpp order) */
    sb_added_match added_match;

    bool spm_add_space_prefix;    /* GGUF llama: ' ' before the first fragment and after specials */
    bool spm_isolated[128];       /* ASCII bytes that no longer token contains: they never merge */

    int32_t bos_id, eos_id;
    int32_t *prefix_ids, *suffix_ids; /* what add_special puts around the ids */
    size_t n_prefix, n_suffix;
    bool add_bos;                 /* prefix holds bos_id */

    bool decode_strip_space;      /* drop one leading space when decoding (SentencePiece prefix) */
    bool decode_metaspace;        /* decoding turns U+2581 into ' ' and <0xXX> into bytes */
};

/* Growable id list. */
typedef struct sb_ids {
    int32_t *v;
    size_t n, cap;
} sb_ids;
bool sb_ids_push(sb_ids *ids, int32_t id);

/* The string hash the maps use. */
uint64_t sb_hash_bytes(const char *s, size_t n);

/* Growable byte buffer. */
typedef struct sb_buf {
    char *p;
    size_t n, cap;
} sb_buf;
bool sb_buf_reserve(sb_buf *b, size_t extra);
bool sb_buf_append(sb_buf *b, const void *data, size_t n);

/* Growable array of piece end offsets (piece i is [ends[i-1], ends[i])). */
typedef struct sb_offsets {
    size_t *v;
    size_t n, cap;
} sb_offsets;
bool sb_offsets_push(sb_offsets *o, size_t end);

/* Cache of piece -> ids for the BPE model within one encode call. */
typedef struct sb_piece_cache {
    uint64_t *hashes;      /* 0 = empty slot */
    uint32_t *key_off, *key_len, *ids_off, *ids_len;
    size_t mask, count;
    sb_buf keys;
    sb_ids ids;
} sb_piece_cache;

/* Working memory of one encode call (the tokenizer is read-only while
 * encoding, so it can be shared between threads). */
typedef struct sb_encode_ctx {
    sb_regex_scratch re;
    uint32_t *cps;          /* a piece decoded for the regex */
    uint8_t *props;
    size_t *cp_byte;        /* byte offset of each code point, plus one past the end */
    size_t cps_cap;
    void *segments;         /* regex split: matches and gaps of one piece */
    size_t segments_cap;
    sb_buf text[2];         /* pre-tokenizer text, current and next */
    sb_offsets ends[2];     /* pre-tokenizer piece boundaries, current and next */
    sb_buf word;            /* BPE: piece spelled in the vocabulary's alphabet */
    void *symbols;          /* BPE / SPM symbols */
    size_t symbols_cap;
    void *heap;             /* BPE / SPM merge candidates */
    size_t heap_cap;
    sb_piece_cache cache;
} sb_encode_ctx;

/* A tokenizer.json held in memory (no tokenizer_config.json); `name` is used in messages. */
int sb_tokenizer_load_hf_text(const char *json, size_t len, const char *name, sb_tokenizer **out, sb_err *err);

/* Allocates an empty tokenizer with no ids; loaders fill it. */
sb_tokenizer *sb_tokenizer_alloc(const char *source, sb_err *err);
/* Appends an added token (text copied). */
int sb_tokenizer_add_token(sb_tokenizer *t, int32_t id, const char *text, size_t len, bool special, bool lstrip,
                           bool rstrip, bool single_word, sb_err *err);
/* Sorts the added tokens and builds their lookup tables. */
int sb_tokenizer_finish_added(sb_tokenizer *t, sb_err *err);
/* Appends a pre-tokenizer / normalizer step (strings copied; may be NULL). */
int sb_tokenizer_add_step(sb_tokenizer *t, sb_step_kind kind, const char *str, const char *from, sb_err *err);
/* Looks up <0xXX> tokens for byte fallback / SPM; -1 where missing. */
void sb_tokenizer_find_byte_tokens(sb_tokenizer *t);
/* Fills byte_token for a byte-level vocabulary; SB_EINPUT if some byte's character is missing. */
int sb_tokenizer_byte_level_tokens(sb_tokenizer *t, sb_err *err);
/* Sets prefix = [bos] when add_bos, suffix = [eos] when add_eos. */
int sb_tokenizer_set_bos_eos_rule(sb_tokenizer *t, bool add_bos, bool add_eos, sb_err *err);

/* The GPT-2 byte-to-unicode map: byte b is written as code point sb_byte_to_cp(b). */
uint32_t sb_byte_to_cp(uint8_t b);
/* Inverse; -1 for a code point that is no byte's image. */
int sb_cp_to_byte(uint32_t cp);

/* Compiles a Split step from a regex; error messages name `source`. */
int sb_pretok_add_split(sb_tokenizer *t, const char *pattern, size_t len, sb_split_behavior behavior, bool invert,
                        sb_err *err);
/* The regexes llama.cpp uses for a tokenizer.ggml.pre name; NULL-terminated list, NULL when unknown. */
const char *const *sb_pretok_llama_regexes(const char *pre_name, bool *ignore_merges, bool *add_bos);
/* GPT-2's pre-tokenizer regex (the ByteLevel pre-tokenizer's use_regex). */
extern const char sb_gpt2_regex[];

/* ---- encoder stages ---------------------------------------------------------------- */

/* Working memory of one encode call. */
sb_encode_ctx *sb_encode_ctx_new(void);
void sb_encode_ctx_free(sb_encode_ctx *ctx);

/* Runs the normalizer and pre-tokenizer steps over fragment text[0..len)
 * (`at_start`: the fragment begins the whole input) and the model over
 * each resulting piece, appending ids. */
int sb_encode_fragment(const sb_tokenizer *t, sb_encode_ctx *ctx, const char *text, size_t len, bool at_start,
                       sb_ids *out, sb_err *err);

/* Cuts added tokens out of text (valid UTF-8) and encodes the rest. */
int sb_encode_with_added(const sb_tokenizer *t, sb_encode_ctx *ctx, const char *text, size_t len, bool parse_special,
                         sb_ids *out, sb_err *err);

/* Model stages: one pre-tokenized piece -> ids. */
int sb_bpe_encode_piece(const sb_tokenizer *t, sb_encode_ctx *ctx, const char *piece, size_t len, sb_ids *out,
                        sb_err *err);
/* llama.cpp SentencePiece: ' ' + text when prefix_space, spaces become U+2581. */
int sb_spm_encode(const sb_tokenizer *t, sb_encode_ctx *ctx, const char *text, size_t len, bool prefix_space,
                  sb_ids *out, sb_err *err);

#endif

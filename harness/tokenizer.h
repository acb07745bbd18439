/* tokenizer.h - text <-> token ids, token-exact with the reference
 * tokenizers of the models slimbench loads.
 *
 * Two sources:
 *  - a Hugging Face tokenizer.json (BPE models: byte-level ones such as
 *    GPT-2, Llama 3, Qwen2, and SentencePiece-style ones with U+2581
 *    metaspace and byte fallback such as Llama 2), plus tokenizer_config.json
 *    next to it where it sets add_bos_token / add_eos_token; results match
 *    the `tokenizers` library;
 *  - GGUF tokenizer metadata (tokenizer.ggml.model "gpt2" or "llama");
 *    results match llama.cpp.
 *
 * Added and special tokens written in the text are matched (and never
 * split) before the model runs, as both references do by default.
 *
 * Invalid UTF-8: every byte that is not part of a well-formed UTF-8
 * sequence is replaced by U+FFFD before tokenizing, which is what both
 * references end up doing (Hugging Face receives a Python str decoded with
 * replacement; llama.cpp's regex splitter substitutes U+FFFD byte by byte).
 * So decode(encode(s)) == s for valid UTF-8 (without add_special), and
 * invalid input never fails or crashes. */
#ifndef SB_TOKENIZER_H
#define SB_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "gguf.h"

typedef struct sb_tokenizer sb_tokenizer;

/* dir containing tokenizer.json (and optionally tokenizer_config.json), or a path to a tokenizer.json */
int sb_tokenizer_load_hf(const char *path, sb_tokenizer **out, sb_err *err);
int sb_tokenizer_load_gguf(const sb_gguf *g, sb_tokenizer **out, sb_err *err);
void sb_tokenizer_free(sb_tokenizer *t);

/* add_special: add BOS/EOS the way the model's own rule says (HF: post-processor +
 * tokenizer_config; GGUF: add_bos/add_eos flags).  *ids is malloc'ed (possibly
 * NULL when *n_ids is 0). */
int sb_tokenizer_encode(const sb_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ids,
                        size_t *n_ids, sb_err *err);

/* Like sb_tokenizer_encode; parse_special=false leaves control/special
 * tokens written in the text as plain text (llama.cpp's parse_special,
 * Hugging Face's split_special_tokens=True).  User-defined added tokens
 * are matched either way. */
int sb_tokenizer_encode_ex(const sb_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                           int32_t **ids, size_t *n_ids, sb_err *err);

/* Text of ids (special tokens included as their text); *text is malloc'ed and NUL-terminated. */
int sb_tokenizer_decode(const sb_tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len, sb_err *err);

int32_t sb_tokenizer_vocab_size(const sb_tokenizer *t);
int32_t sb_tokenizer_bos(const sb_tokenizer *t); /* -1 if none */
int32_t sb_tokenizer_eos(const sb_tokenizer *t);
bool sb_tokenizer_adds_bos(const sb_tokenizer *t);

#endif

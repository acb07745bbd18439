/* bpe_train.h - byte-level BPE training for the built-in tokenizer.
 *
 * The result is written as a Hugging Face tokenizer.json that
 * sb_tokenizer_load_hf (and the `tokenizers` library) reads like any real
 * model's: model BPE with vocab and merges, the GPT-2 ByteLevel
 * pre-tokenizer (its regex, no prefix space), ByteLevel decoder.
 *
 * Training is Hugging Face's BpeTrainer, step for step, so the merges and
 * ids are the same as `tokenizers` gives for
 *     Tokenizer(BPE()), pre_tokenizer ByteLevel(add_prefix_space=False),
 *     BpeTrainer(vocab_size=V, special_tokens=["<|endoftext|>"],
 *                initial_alphabet=ByteLevel.alphabet(), min_frequency=0),
 *     tokenizer.train([file])
 * (tests/reference/make_bpe_fixture.py checks it):
 *   - the input is read line by line, each line with its "\n", and every
 *     line is split by the GPT-2 regex into words (harness/regex.c with
 *     sb_gpt2_regex, as the ByteLevel pre-tokenizer does);
 *   - ids: the special token 0, then the 256 byte characters of GPT-2's
 *     byte-to-unicode alphabet in code point order, then merged tokens in
 *     the order they are made (a merge whose text already is a token
 *     reuses its id, as Hugging Face does);
 *   - each step merges the pair with the highest count, ties going to the
 *     smallest (left id, right id); counts are kept up to date
 *     incrementally from the words each merge touches (a max-heap with
 *     lazy re-insertion of stale counts), never recounted;
 *   - training stops at vocab_size tokens or when no pair is left.
 *
 * Special token: "<|endoftext|>" (id 0) is BOS, EOS and padding; the
 * post-processor (and tokenizer_config.json's add_bos_token) puts it in
 * front of every encoded text, as Llama-style models expect. */
#ifndef SB_BPE_TRAIN_H
#define SB_BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define SB_BPE_SPECIAL "<|endoftext|>"
/* One special token and 256 byte characters come before any merge. */
#define SB_BPE_MIN_VOCAB 257

typedef struct sb_bpe_vocab {
    int32_t n_tokens;
    char **token;        /* [n_tokens] id -> text in the byte-level alphabet, NUL-terminated */
    int32_t n_merges;
    int32_t (*merge)[2]; /* [n_merges] rank -> (left id, right id) */
} sb_bpe_vocab;

/* Trains on text[0..len) up to vocab_size tokens (>= SB_BPE_MIN_VOCAB). */
int sb_bpe_train(const char *text, size_t len, int32_t vocab_size, sb_bpe_vocab *out, sb_err *err);
void sb_bpe_vocab_free(sb_bpe_vocab *v);

/* The tokenizer.json / tokenizer_config.json texts (malloc'ed). */
int sb_bpe_tokenizer_json(const sb_bpe_vocab *v, char **json, sb_err *err);
int sb_bpe_tokenizer_config_json(char **json, sb_err *err);

/* Writes dir/tokenizer.json and dir/tokenizer_config.json (dir must exist). */
int sb_bpe_save(const sb_bpe_vocab *v, const char *dir, sb_err *err);

#endif

/* fuzz_tokenizer.c - libFuzzer harness for the tokenizer loaders and encoder.
 *
 * The first input byte picks what the rest of the input is:
 *   0-3  text, encoded (and decoded back) with the GGUF gpt-2 and llama-spm
 *        vocabularies and the llama3 / llama2 tokenizer.json fixtures;
 *   4    a tokenizer.json, loaded and, if accepted, used on a few texts;
 *   5    "pattern\0text": a regex compiled and searched over the text;
 *   6    a GGUF file, loaded as a tokenizer and used on a short text.
 * Run from the repository root (the fixtures are read from tests/). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "regex.h"
#include "tokenizer.h"
#include "tokenizer_internal.h"
#include "unicode.h"

enum { N_FIXED = 4 };
static sb_tokenizer *fixed[N_FIXED];
static char gguf_path[64];

static sb_tokenizer *load_gguf_file(const char *path) {
    sb_gguf g;
    sb_err err = {0};
    sb_tokenizer *t = NULL;
    if (sb_gguf_open(&g, path, &err) != SB_OK) return NULL;
    sb_tokenizer_load_gguf(&g, &t, &err);
    sb_gguf_close(&g);
    return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    sb_err err = {0};
    fixed[0] = load_gguf_file("tests/fixtures/vocab/ggml-vocab-gpt-2.gguf");
    fixed[1] = load_gguf_file("tests/fixtures/vocab/ggml-vocab-llama-spm.gguf");
    sb_tokenizer_load_hf("tests/reference/tokenizers/llama3", &fixed[2], &err);
    sb_tokenizer_load_hf("tests/reference/tokenizers/llama2", &fixed[3], &err);
    for (int i = 0; i < N_FIXED; i++)
        if (!fixed[i]) {
            fprintf(stderr, "fuzz_tokenizer: cannot load fixture %d (run from the repository root): %s\n", i, err.msg);
            abort();
        }
    snprintf(gguf_path, sizeof gguf_path, "/tmp/fuzz_tokenizer_%d.gguf", (int)getpid());
    return 0;
}

static void encode_and_decode(const sb_tokenizer *t, const char *text, size_t len) {
    sb_err err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    for (int special = 0; special < 2; special++) {
        if (sb_tokenizer_encode_ex(t, text, len, special, special, &ids, &n, &err) != SB_OK) continue;
        char *back = NULL;
        size_t back_len;
        if (sb_tokenizer_decode(t, ids, n, &back, &back_len, &err) == SB_OK) {
            /* without specials, valid UTF-8 must come back unchanged for byte-level vocabularies */
            if (!special && t->byte_level && sb_utf8_valid(text, len) && (back_len != len || memcmp(back, text, len) != 0))
                abort();
            free(back);
        }
        free(ids);
    }
}

static void fuzz_regex(const char *data, size_t size) {
    const char *zero = memchr(data, 0, size);
    size_t plen = zero ? (size_t)(zero - data) : size;
    sb_regex *re;
    sb_err err = {0};
    if (sb_regex_compile(data, plen, &re, &err) != SB_OK) return;
    const char *text = zero ? zero + 1 : "";
    size_t tlen = zero ? size - plen - 1 : 0;
    uint32_t *cps = malloc((tlen + 1) * sizeof *cps);
    uint8_t *props = malloc(tlen + 1);
    size_t n = 0;
    for (size_t i = 0; i < tlen;) {
        int l = sb_utf8_decode((const uint8_t *)text + i, tlen - i, &cps[n]);
        if (!l) cps[n] = 0xfffd;
        props[n] = sb_unicode_prop(cps[n]);
        n++;
        i += (size_t)(l ? l : 1);
    }
    sb_regex_scratch scratch = {0};
    size_t pos = 0, ms, me;
    while (pos <= n && sb_regex_search(re, cps, props, n, pos, &ms, &me, &scratch) == SB_REGEX_MATCH) {
        if (ms < pos || me < ms || me > n) abort();
        pos = me > ms ? me : me + 1;
    }
    sb_regex_scratch_free(&scratch);
    sb_regex_free(re);
    free(cps);
    free(props);
}

static void use_loaded(sb_tokenizer *t) {
    static const char sample[] = "Hello world 123 <s> \xe4\xbd\xa0\xe5\xa5\xbd  \n\t x";
    encode_and_decode(t, sample, sizeof sample - 1);
    sb_tokenizer_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    int mode = data[0] % 7;
    sb_err err = {0};
    sb_tokenizer *t = NULL;
    if (mode < N_FIXED) {
        encode_and_decode(fixed[mode], rest, n);
    } else if (mode == 4) {
        if (sb_tokenizer_load_hf_text(rest, n, "fuzz.json", &t, &err) == SB_OK) use_loaded(t);
    } else if (mode == 5) {
        fuzz_regex(rest, n);
    } else {
        FILE *f = fopen(gguf_path, "wb");
        if (!f) return 0;
        fwrite(rest, 1, n, f);
        fclose(f);
        t = load_gguf_file(gguf_path);
        if (t) use_loaded(t);
    }
    return 0;
}

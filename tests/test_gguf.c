/* test_gguf.c - the GGUF reader on the shared vocabulary files (when present). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gguf.h"

static void vocab_file_metadata(void) {
    const char *data = test_shared_data();
    if (!data) {
        test_skip("gguf_vocab_metadata", "../shared/data is absent");
        return;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-gpt-2.gguf", data);
    test_begin("gguf_vocab_metadata");
    sb_gguf g;
    sb_err err = {0};
    int rc = sb_gguf_open(&g, path, &err);
    if (test_expect(rc == SB_OK, "open failed: %s", err.msg)) {
        char *model = NULL;
        test_expect(sb_gguf_get_str(&g, "tokenizer.ggml.model", false, &model, &err) == SB_OK, "%s", err.msg);
        test_expect(model && strcmp(model, "gpt2") == 0, "tokenizer model is %s", model ? model : "(null)");
        const sb_gguf_kv *tokens = sb_gguf_find(&g, "tokenizer.ggml.tokens");
        test_expect(tokens && tokens->n == 50257, "expected 50257 tokens");
        test_expect(tokens && tokens->str_lens[198] == 2 && memcmp(tokens->strs[198], "\xc4\x8a", 2) == 0,
                    "token 198 should be 'Ċ'");
        free(model);
        sb_gguf_close(&g);
    }
    test_end();
}

int main(void) {
    vocab_file_metadata();
    return test_status();
}

/* test_protocol_counts.c - the gptq protocol's token count on the real
 * WikiText-2 test split (when ../shared/data is present): the papers
 * tokenize the joined split once with the LLaMA tokenizer and a single BOS,
 * which gives 341,469 tokens (checked offline with Hugging Face's tokenizer
 * converted from the same vocabulary), so 166 windows of 2048 and
 * 166 * 2047 scored targets. */
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "gguf.h"
#include "text_dataset.h"
#include "tokenizer.h"

int main(void) {
    const char *data = test_shared_data();
    if (!data) {
        test_skip("gptq_wikitext2_llama_token_count", "../shared/data is absent");
        return 0;
    }
    char vocab[512], text_path[512];
    snprintf(vocab, sizeof vocab, "%s/vocab/ggml-vocab-llama-spm.gguf", data);
    snprintf(text_path, sizeof text_path, "%s/wikitext-2-raw/wiki.test.raw", data);
    test_begin("gptq_wikitext2_llama_token_count");
    sb_err err = {0};
    sb_gguf g;
    sb_tokenizer *t = NULL;
    sb_text_dataset d = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    bool ok = test_expect(sb_gguf_open(&g, vocab, &err) == SB_OK, "%s", err.msg);
    if (ok) {
        ok = test_expect(sb_tokenizer_load_gguf(&g, &t, &err) == SB_OK, "%s", err.msg);
        sb_gguf_close(&g);
    }
    ok = ok && test_expect(sb_text_load(text_path, "raw", "text", &d, &err) == SB_OK, "%s", err.msg);
    ok = ok && test_expect(sb_tokenizer_encode(t, d.text, d.text_len, true, &ids, &n, &err) == SB_OK, "%s", err.msg);
    if (ok) {
        test_expect(n == 341469, "%zu tokens, the papers' count is 341469", n);
        test_expect(ids[0] == 1 && ids[1] != 1, "one BOS at the very start");
        test_expect(n / 2048 == 166 && (n / 2048) * 2047 == 339802, "166 windows of 2048, 339802 targets");
    }
    free(ids);
    sb_text_free(&d);
    if (t) sb_tokenizer_free(t);
    test_end();
    return test_status();
}

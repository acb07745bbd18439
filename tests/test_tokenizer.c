/* test_tokenizer.c - tokenizers against their references:
 *  - llama.cpp's vocabulary tests (tests/fixtures/vocab, and ../shared when present);
 *  - Hugging Face tokenizers fixtures (tests/reference/tokenizers/<name>);
 *  - the WikiText-2 test text for both GGUF vocabularies (when ../shared is present);
 *  - decode round trips, invalid UTF-8, and the regex engine on its own. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gguf.h"
#include "mapped_file.h"
#include "regex.h"
#include "tokenizer.h"
#include "unicode.h"

static sb_tokenizer *load_gguf_tokenizer(const char *path, sb_err *err) {
    sb_gguf g;
    if (sb_gguf_open(&g, path, err) != SB_OK) return NULL;
    sb_tokenizer *t = NULL;
    sb_tokenizer_load_gguf(&g, &t, err);
    sb_gguf_close(&g);
    return t;
}

static bool ids_equal_line(const int32_t *ids, size_t n, const char *line, size_t line_len) {
    size_t k = 0;
    const char *p = line, *end = line + line_len;
    while (p < end) {
        while (p < end && *p == ' ') p++;
        if (p >= end) break;
        long v = strtol(p, (char **)&p, 10);
        if (k >= n || ids[k] != v) return false;
        k++;
    }
    return k == n;
}

static bool round_trips(const sb_tokenizer *t, const int32_t *ids, size_t n, const char *text, size_t len) {
    char *back;
    size_t back_len;
    sb_err err = {0};
    if (sb_tokenizer_decode(t, ids, n, &back, &back_len, &err) != SB_OK) return false;
    bool ok = back_len == len && memcmp(back, text, len) == 0;
    free(back);
    return ok;
}

/* llama.cpp's test-tokenizer-0 format: strings separated by "\n__ggml_vocab_test__\n". */
static void vocab_case(const char *dir, const char *vocab, const char *label) {
    char name[256], path[512], inp_path[600], out_path[600];
    snprintf(name, sizeof name, "tokenizer_vocab_%s_%s", vocab, label);
    snprintf(path, sizeof path, "%s/ggml-vocab-%s.gguf", dir, vocab);
    snprintf(inp_path, sizeof inp_path, "%s.inp", path);
    snprintf(out_path, sizeof out_path, "%s.out", path);
    test_begin(name);
    sb_err err = {0};
    char *inp = NULL, *out = NULL;
    size_t inp_len, out_len;
    sb_tokenizer *t = load_gguf_tokenizer(path, &err);
    if (!test_expect(t != NULL, "load: %s", err.msg) ||
        !test_expect(sb_read_text_file(inp_path, &inp, &inp_len, &err) == SB_OK, "%s", err.msg) ||
        !test_expect(sb_read_text_file(out_path, &out, &out_len, &err) == SB_OK, "%s", err.msg))
        goto done;
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const char *s = inp, *line = out;
    int cases = 0;
    for (;;) {
        const char *e = strstr(s, sep);
        if (!e) break;
        const char *nl = strchr(line, '\n');
        if (!test_expect(nl != NULL, "fewer .out lines than tests")) break;
        int32_t *ids;
        size_t n;
        if (test_expect(sb_tokenizer_encode_ex(t, s, (size_t)(e - s), false, false, &ids, &n, &err) == SB_OK, "%s", err.msg)) {
            test_expect(ids_equal_line(ids, n, line, (size_t)(nl - line)), "test %d '%.40s' differs from .out", cases, s);
            test_expect(round_trips(t, ids, n, s, (size_t)(e - s)), "test %d does not decode back", cases);
            free(ids);
        }
        cases++;
        s = e + strlen(sep);
        line = nl + 1;
    }
    test_expect(cases >= 40, "only %d test strings found", cases);
done:
    free(inp);
    free(out);
    sb_tokenizer_free(t);
    test_end();
}

static bool json_ids_equal(const cJSON *arr, const int32_t *ids, size_t n) {
    if (!cJSON_IsArray(arr) || (size_t)cJSON_GetArraySize(arr) != n) return false;
    size_t k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        if (!cJSON_IsNumber(e) || e->valueint != ids[k]) return false;
        k++;
    }
    return true;
}

static cJSON *read_json(const char *path, sb_err *err) {
    char *text;
    size_t len;
    if (sb_read_text_file(path, &text, &len, err) != SB_OK) return NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    return j;
}

/* SentencePiece-style decoding cannot give back spaces that the prefix
 * rules add after special tokens or drop at the start (as in HF). */
static bool expect_round_trip(const char *fixture, const char *text) {
    if (strncmp(fixture, "llama2", 6) != 0) return true;
    if (strstr(text, "<s>") || strstr(text, "</s>") || strstr(text, "<unk>")) return false;
    return !(strcmp(fixture, "llama2_meta") == 0 && text[0] == ' ');
}

static void hf_case(const char *fixture) {
    char name[128], dir[256], path[300];
    snprintf(name, sizeof name, "tokenizer_hf_%s", fixture);
    snprintf(dir, sizeof dir, "tests/reference/tokenizers/%s", fixture);
    snprintf(path, sizeof path, "%s/expected.json", dir);
    test_begin(name);
    sb_err err = {0};
    sb_tokenizer *t = NULL;
    cJSON *exp = read_json(path, &err);
    if (!test_expect(exp != NULL, "cannot read %s: %s", path, err.msg) ||
        !test_expect(sb_tokenizer_load_hf(dir, &t, &err) == SB_OK, "load: %s", err.msg))
        goto done;
    const cJSON *texts = cJSON_GetObjectItem(exp, "texts"), *plain = cJSON_GetObjectItem(exp, "ids"),
                *special = cJSON_GetObjectItem(exp, "ids_with_special");
    int n_texts = cJSON_GetArraySize(texts);
    test_expect(n_texts > 30, "too few texts");
    for (int i = 0; i < n_texts; i++) {
        const char *text = cJSON_GetArrayItem(texts, i)->valuestring;
        size_t len = strlen(text);
        for (int with = 0; with < 2; with++) {
            int32_t *ids;
            size_t n;
            if (!test_expect(sb_tokenizer_encode(t, text, len, with, &ids, &n, &err) == SB_OK, "%s", err.msg)) continue;
            test_expect(json_ids_equal(cJSON_GetArrayItem(with ? special : plain, i), ids, n),
                        "text %d '%.40s' (add_special=%d) differs from tokenizers", i, text, with);
            if (!with && expect_round_trip(fixture, text))
                test_expect(round_trips(t, ids, n, text, len), "text %d '%.40s' does not decode back", i, text);
            free(ids);
        }
    }
done:
    cJSON_Delete(exp);
    sb_tokenizer_free(t);
    test_end();
}

static uint64_t fnv1a64_ids(const int32_t *ids, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int b = 0; b < 4; b++) {
            h ^= (v >> (8 * b)) & 0xff;
            h *= 0x100000001b3ull;
        }
    }
    return h;
}

static void wikitext_case(const char *vocab) {
    char name[128], path[256], text_path[256];
    snprintf(name, sizeof name, "tokenizer_wikitext_%s", vocab);
    const char *shared = test_shared_data();
    if (!shared) {
        test_skip(name, "../shared/data is absent");
        return;
    }
    snprintf(path, sizeof path, "tests/fixtures/vocab/ggml-vocab-%s.gguf", vocab);
    snprintf(text_path, sizeof text_path, "%s/wikitext-2-raw/wiki.test.raw", shared);
    test_begin(name);
    sb_err err = {0};
    char *text = NULL;
    size_t len;
    int32_t *ids = NULL;
    size_t n = 0;
    cJSON *ref = read_json("tests/reference/tokenizers/wikitext.json", &err);
    const cJSON *r = cJSON_GetObjectItem(ref, vocab);
    sb_tokenizer *t = load_gguf_tokenizer(path, &err);
    if (!test_expect(r != NULL, "no reference for %s", vocab) || !test_expect(t != NULL, "load: %s", err.msg) ||
        !test_expect(sb_read_text_file(text_path, &text, &len, &err) == SB_OK, "%s", err.msg) ||
        !test_expect(sb_tokenizer_encode_ex(t, text, len, false, false, &ids, &n, &err) == SB_OK, "%s", err.msg))
        goto done;
    char hash[17];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)fnv1a64_ids(ids, n));
    const cJSON *first = cJSON_GetObjectItem(r, "first");
    size_t n_first = (size_t)cJSON_GetArraySize(first);
    test_expect(n_first <= n && json_ids_equal(first, ids, n_first), "first %zu ids differ", n_first);
    test_expect((double)n == cJSON_GetObjectItem(r, "count")->valuedouble, "%zu ids, reference has %.0f", n,
                cJSON_GetObjectItem(r, "count")->valuedouble);
    test_expect(strcmp(hash, cJSON_GetObjectItem(r, "fnv1a64")->valuestring) == 0, "id hash %s differs", hash);
done:
    free(ids);
    free(text);
    cJSON_Delete(ref);
    sb_tokenizer_free(t);
    test_end();
}

static void special_rules_case(void) {
    test_begin("tokenizer_special_rules");
    sb_err err = {0};
    sb_tokenizer *spm = load_gguf_tokenizer("tests/fixtures/vocab/ggml-vocab-llama-spm.gguf", &err);
    sb_tokenizer *gpt2 = load_gguf_tokenizer("tests/fixtures/vocab/ggml-vocab-gpt-2.gguf", &err);
    if (test_expect(spm && gpt2, "load: %s", err.msg)) {
        test_expect(sb_tokenizer_vocab_size(spm) == 32000 && sb_tokenizer_bos(spm) == 1 && sb_tokenizer_eos(spm) == 2 &&
                        sb_tokenizer_adds_bos(spm),
                    "llama-spm: vocab/bos/eos/add_bos");
        test_expect(sb_tokenizer_vocab_size(gpt2) == 50257 && sb_tokenizer_bos(gpt2) == 50256 && !sb_tokenizer_adds_bos(gpt2),
                    "gpt-2: vocab/bos/add_bos");
        int32_t *ids;
        size_t n;
        const char *text = "Hello <s>world</s>";
        if (test_expect(sb_tokenizer_encode(spm, text, strlen(text), true, &ids, &n, &err) == SB_OK, "%s", err.msg)) {
            /* llama.cpp: BOS, then the specials stay whole, with a space prefix after each */
            test_expect(n >= 4 && ids[0] == 1, "BOS first");
            bool has_s = false, has_end = false;
            for (size_t i = 1; i < n; i++) {
                has_s = has_s || ids[i] == 1;
                has_end = has_end || ids[i] == 2;
            }
            test_expect(has_s && has_end, "<s> and </s> are matched as tokens");
            free(ids);
        }
        if (test_expect(sb_tokenizer_encode_ex(spm, text, strlen(text), false, false, &ids, &n, &err) == SB_OK, "%s", err.msg)) {
            for (size_t i = 0; i < n; i++) test_expect(ids[i] != 1 && ids[i] != 2, "parse_special=false keeps <s> as text");
            free(ids);
        }
        const char *eot = "a<|endoftext|>b";
        if (test_expect(sb_tokenizer_encode(gpt2, eot, strlen(eot), true, &ids, &n, &err) == SB_OK, "%s", err.msg)) {
            test_expect(n == 3 && ids[1] == 50256, "<|endoftext|> is one token");
            free(ids);
        }
    }
    sb_tokenizer_free(spm);
    sb_tokenizer_free(gpt2);
    test_end();
}

static void invalid_utf8_case(void) {
    test_begin("tokenizer_invalid_utf8");
    sb_err err = {0};
    const char *paths[] = {"tests/fixtures/vocab/ggml-vocab-gpt-2.gguf", "tests/fixtures/vocab/ggml-vocab-llama-spm.gguf"};
    static const char bad[] = "ok \xff\xfe mid \xe2\x82 end \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80";
    for (int k = 0; k < 2; k++) {
        sb_tokenizer *t = load_gguf_tokenizer(paths[k], &err);
        if (!test_expect(t != NULL, "load: %s", err.msg)) continue;
        int32_t *ids;
        size_t n;
        if (test_expect(sb_tokenizer_encode(t, bad, sizeof bad - 1, false, &ids, &n, &err) == SB_OK, "%s", err.msg)) {
            char *back;
            size_t len;
            if (test_expect(sb_tokenizer_decode(t, ids, n, &back, &len, &err) == SB_OK, "%s", err.msg)) {
                test_expect(sb_utf8_valid(back, len) && strstr(back, "\xef\xbf\xbd") && strstr(back, " end "),
                            "invalid bytes decode as U+FFFD");
                free(back);
            }
            free(ids);
        }
        int32_t bad_id = 1 << 30;
        char *back;
        size_t len;
        test_expect(sb_tokenizer_decode(t, &bad_id, 1, &back, &len, &err) == SB_EINPUT, "out-of-range id is an input error");
        sb_tokenizer_free(t);
    }
    test_end();
}

/* Each match of pattern in text, written as [match] pieces. */
static int regex_pieces(const char *pattern, const char *text, char *out, size_t cap) {
    sb_regex *re;
    sb_err err = {0};
    int rc = sb_regex_compile(pattern, strlen(pattern), &re, &err);
    if (rc != SB_OK) return rc;
    uint32_t cps[256];
    uint8_t props[256];
    size_t offs[257], n = 0, len = strlen(text);
    for (size_t i = 0; i < len && n < 256;) {
        int l = sb_utf8_decode((const uint8_t *)text + i, len - i, &cps[n]);
        props[n] = sb_unicode_prop(cps[n]);
        offs[n++] = i;
        i += (size_t)(l ? l : 1);
    }
    offs[n] = len;
    sb_regex_scratch scratch = {0};
    size_t pos = 0, used = 0, ms, me;
    out[0] = 0;
    while (pos <= n) {
        int r = sb_regex_search(re, cps, props, n, pos, &ms, &me, &scratch);
        if (r != SB_REGEX_MATCH) {
            rc = r == SB_REGEX_NOMATCH ? SB_OK : -1;
            break;
        }
        used += (size_t)snprintf(out + used, cap - used, "[%.*s]", (int)(offs[me] - offs[ms]), text + offs[ms]);
        pos = me > ms ? me : me + 1;
    }
    sb_regex_scratch_free(&scratch);
    sb_regex_free(re);
    return rc;
}

static void regex_case(void) {
    test_begin("tokenizer_regex_engine");
    static const struct { const char *pattern, *text, *want; } cases[] = {
        {"(?i:'s|'t|'re)", "it'S we'Re 't", "['S]['Re]['t]"},
        {"\\p{N}{1,3}", "12345 6", "[123][45][6]"},
        {"\\s+(?!\\S)|\\s+", "a   b ", "[  ][ ][ ]"},
        {"[^\\s\\p{L}\\p{N}]+", "a,.b!? c", "[,.][!?]"},
        {"a+?b", "aaab", "[aaab]"},
        {"(?:ab)*c", "ababc abc c", "[ababc][abc][c]"},
        {"(a*)*b", "aab", "[aab]"},
        {"x{2,}", "x xx xxxx", "[xx][xxxx]"},
        {"\\bth\\w*", "the other then", "[the][then]"},
        {"[а-я]+", "Привет мир", "[ривет][мир]"},
        {"(?i)[а-я]+", "Привет", "[Привет]"},
        {"\\p{Lu}\\p{Ll}+", "Hello World", "[Hello][World]"},
        {"(?=\\d{3}$)\\d", "12345", "[3]"},
        {"\\x41\\u0042[\\x{43}-E]", "ABD", "[ABD]"},
        {"a|", "ba", "[][a][]"},
    };
    char out[1024];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = regex_pieces(cases[i].pattern, cases[i].text, out, sizeof out);
        test_expect(rc == SB_OK && strcmp(out, cases[i].want) == 0, "/%s/ on '%s': got %s, want %s", cases[i].pattern,
                    cases[i].text, out, cases[i].want);
    }
    static const char *const invalid[] = {"(a", "a)", "[a", "*a", "\\p{Nope}", "(?<=a)b", "a{2,1}", "\\q", "x++"};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        sb_regex *re = NULL;
        sb_err err = {0};
        int rc = sb_regex_compile(invalid[i], strlen(invalid[i]), &re, &err);
        test_expect(rc == SB_EINPUT || (rc == SB_OK && strcmp(invalid[i], "x++") == 0), "/%s/ should not compile", invalid[i]);
        sb_regex_free(re);
    }
    /* exponential backtracking ends in an error, not a hang */
    char text[64];
    memset(text, 'a', 40);
    text[40] = 0;
    test_expect(regex_pieces("(a|a)*b", text, out, sizeof out) == -1, "(a|a)*b should exceed the backtracking budget");
    test_end();
}

int main(void) {
    regex_case();
    vocab_case("tests/fixtures/vocab", "gpt-2", "fixture");
    vocab_case("tests/fixtures/vocab", "llama-spm", "fixture");
    const char *shared = test_shared_data();
    char dir[256];
    if (shared) {
        snprintf(dir, sizeof dir, "%s/vocab", shared);
        vocab_case(dir, "gpt-2", "shared");
        vocab_case(dir, "llama-spm", "shared");
    } else {
        test_skip("tokenizer_vocab_shared", "../shared/data is absent");
    }
    static const char *const fixtures[] = {"gpt2", "llama3", "qwen2", "llama2", "llama2_meta"};
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) hf_case(fixtures[i]);
    special_rules_case();
    invalid_utf8_case();
    wikitext_case("gpt-2");
    wikitext_case("llama-spm");
    return test_status();
}

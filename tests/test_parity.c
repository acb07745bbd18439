/* test_parity.c - the engine against Hugging Face transformers.
 *
 * tests/reference/make_hf_models.py built tiny random models of every
 * supported architecture, saved them as Hugging Face folders (and two as
 * GGUF files with the same weights) and stored transformers' logits for a
 * fixed token sequence.  Each case loads a model, runs the sequence in one
 * pass and checks max |Δlogit| <= 1e-4 * max |logit|; then decodes it one
 * token at a time through the KV cache and checks that matches the
 * full-sequence pass within 1e-5 relative; then runs a batch of two
 * sequences and checks each matches its own single-sequence pass. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "forward.h"
#include "mapped_file.h"

static const char *models_dir = "tests/reference/models";

typedef struct {
    int32_t *tokens;
    int n_tok, n_vocab;
    float *logits;      /* [n_tok, n_vocab] reference */
    char model_path[512];
} fixture;

static void fixture_free(fixture *f) {
    free(f->tokens);
    free(f->logits);
}

/* Reads <name>/reference.json (HF folder) or <name>.json (GGUF). */
static bool fixture_load(const char *json_path, const char *base_dir, bool gguf, fixture *f) {
    memset(f, 0, sizeof *f);
    char *text;
    sb_err err = {0};
    if (sb_read_text_file(json_path, &text, NULL, &err)) return test_expect(false, "%s", err.msg);
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *tokens = cJSON_GetObjectItem(j, "tokens"), *shape = cJSON_GetObjectItem(j, "shape");
    const cJSON *logits = cJSON_GetObjectItem(j, "logits_file"), *file = cJSON_GetObjectItem(j, "gguf_file");
    bool ok = test_expect(cJSON_IsArray(tokens) && cJSON_IsArray(shape) && cJSON_IsString(logits) && (!gguf || cJSON_IsString(file)),
                          "%s: malformed fixture", json_path);
    if (ok) {
        f->n_tok = cJSON_GetArraySize(tokens);
        f->n_vocab = cJSON_GetArrayItem(shape, 1)->valueint;
        f->tokens = malloc(sizeof(int32_t) * (size_t)f->n_tok);
        for (int i = 0; i < f->n_tok; i++) f->tokens[i] = cJSON_GetArrayItem(tokens, i)->valueint;
        snprintf(f->model_path, sizeof f->model_path, "%s/%s", base_dir, gguf ? file->valuestring : "");
        char lpath[1024];
        snprintf(lpath, sizeof lpath, "%s/%s", gguf ? models_dir : base_dir, logits->valuestring);
        sb_mapped_file mf;
        ok = test_expect(sb_mapped_file_open(&mf, lpath, &err) == SB_OK, "%s", err.msg);
        if (ok) {
            ok = test_expect(mf.size == sizeof(float) * (size_t)f->n_tok * (size_t)f->n_vocab, "%s: wrong size", lpath);
            f->logits = malloc(mf.size);
            if (ok) memcpy(f->logits, mf.data, mf.size);
            sb_mapped_file_close(&mf);
        }
    }
    cJSON_Delete(j);
    return ok;
}

static double rel_diff(const float *a, const float *ref, long n) {
    double scale = test_max_abs(ref, n);
    return test_max_abs_diff(a, ref, n) / (scale > 0 ? scale : 1);
}

/* One token at a time through the cache must give the full pass's logits. */
static void check_decode(const sb_model *m, sb_pool *pool, const fixture *f, const float *full) {
    sb_session *s;
    sb_err err = {0};
    if (!test_expect(sb_session_new(m, pool, 1, f->n_tok, 1, &s, &err) == SB_OK, "%s", err.msg)) return;
    float *step = malloc(sizeof(float) * (size_t)f->n_vocab);
    double worst = 0;
    for (int t = 0; t < f->n_tok; t++) {
        if (!test_expect(sb_session_forward(s, &f->tokens[t], 1, 0, step, &err) == SB_OK, "%s", err.msg)) break;
        double d = rel_diff(step, full + (long)t * f->n_vocab, f->n_vocab);
        if (d > worst) worst = d;
    }
    test_expect(worst <= 1e-5, "KV-cache decoding differs from the full pass by %.3g relative", worst);
    free(step);
    sb_session_free(s);
}

/* Two sequences in one batch: the fixture's and its reverse. */
static void check_batch(const sb_model *m, sb_pool *pool, const fixture *f, const float *full) {
    int n = f->n_tok, V = f->n_vocab;
    int32_t *two = malloc(sizeof(int32_t) * 2 * (size_t)n);
    for (int t = 0; t < n; t++) two[t] = f->tokens[t], two[n + t] = f->tokens[n - 1 - t];
    float *both = malloc(sizeof(float) * 2 * (size_t)n * (size_t)V), *rev = malloc(sizeof(float) * (size_t)n * (size_t)V);
    sb_session *s2 = NULL, *s1 = NULL;
    sb_err err = {0};
    bool ok = test_expect(sb_session_new(m, pool, 2, n, n, &s2, &err) == SB_OK && sb_session_new(m, pool, 1, n, n, &s1, &err) == SB_OK,
                          "%s", err.msg);
    ok = ok && test_expect(sb_session_forward(s2, two, n, 0, both, &err) == SB_OK, "%s", err.msg);
    ok = ok && test_expect(sb_session_forward(s1, two + n, n, 0, rev, &err) == SB_OK, "%s", err.msg);
    if (ok) {
        double d0 = rel_diff(both, full, (long)n * V), d1 = rel_diff(both + (long)n * V, rev, (long)n * V);
        test_expect(d0 <= 1e-5 && d1 <= 1e-5, "batched pass differs from single passes (%.3g, %.3g)", d0, d1);
    }
    sb_session_free(s1);
    sb_session_free(s2);
    free(two);
    free(both);
    free(rev);
}

static void run_case(const char *name, const char *json_path, const char *base_dir, bool gguf, sb_pool *pool) {
    test_begin(name);
    fixture f;
    sb_model *m = NULL;
    sb_session *s = NULL;
    sb_err err = {0};
    float *out = NULL;
    if (!fixture_load(json_path, base_dir, gguf, &f)) goto done;
    if (!test_expect(sb_model_load(f.model_path, &m, &err) == SB_OK, "%s", err.msg)) goto done;
    if (!test_expect(m->n_vocab == f.n_vocab, "vocabulary %d, fixture %d", m->n_vocab, f.n_vocab)) goto done;
    out = malloc(sizeof(float) * (size_t)f.n_tok * (size_t)f.n_vocab);
    if (!test_expect(sb_session_new(m, pool, 1, f.n_tok, f.n_tok, &s, &err) == SB_OK, "%s", err.msg)) goto done;
    if (!test_expect(sb_session_forward(s, f.tokens, f.n_tok, 0, out, &err) == SB_OK, "%s", err.msg)) goto done;
    double d = rel_diff(out, f.logits, (long)f.n_tok * f.n_vocab);
    test_expect(d <= 1e-4, "max |Δlogit| / max |logit| = %.3g against transformers", d);
    check_decode(m, pool, &f, out);
    check_batch(m, pool, &f, out);
done:
    sb_session_free(s);
    free(out);
    sb_model_free(m);
    fixture_free(&f);
    test_end();
}

int main(void) {
    static const char *hf[] = {"llama", "llama_bf16", "llama_f16", "mistral", "qwen2", "opt", "gpt2", "phi", "gemma3"};
    static const char *gguf[] = {"llama_gguf", "qwen2_gguf"};
    sb_pool *pool;
    sb_err err = {0};
    if (sb_pool_new(2, &pool, &err)) return 1;
    for (size_t i = 0; i < sizeof hf / sizeof hf[0]; i++) {
        char dir[512], json[600], name[64];
        snprintf(dir, sizeof dir, "%s/%s", models_dir, hf[i]);
        snprintf(json, sizeof json, "%s/reference.json", dir);
        snprintf(name, sizeof name, "parity_hf_%s", hf[i]);
        run_case(name, json, dir, false, pool);
    }
    for (size_t i = 0; i < sizeof gguf / sizeof gguf[0]; i++) {
        char json[600], name[64];
        snprintf(json, sizeof json, "%s/%s.json", models_dir, gguf[i]);
        snprintf(name, sizeof name, "parity_%s", gguf[i]);
        run_case(name, json, models_dir, true, pool);
    }
    sb_pool_free(pool);
    return test_status();
}

/* test_perplexity.c - the perplexity task against PyTorch/transformers.
 *
 * tests/reference/make_task_fixtures.py built a tiny Llama with a trained
 * byte-level BPE tokenizer, a 19 KB WikiText-2 excerpt and a 3-line JSONL
 * file, and computed every protocol's figures from transformers' logits
 * (expected.json).  Each case runs the task through sb_task.run and
 * checks them within 1e-4 relative; then the error cases and the
 * dataset helpers (article split, detokenizer, word count). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../datasets/text_dataset.h"
#include "check.h"
#include "mapped_file.h"
#include "plugin.h"

#define DIR "tests/reference/tasks"

extern const sb_task sb_task_perplexity;

typedef struct env {
    sb_model *model;
    sb_pool *pool;
    cJSON *expected;
    sb_run_ctx ctx;
} env;

static bool close_rel(double got, double want, double tol) { return fabs(got - want) <= tol * fabs(want); }

static double num(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Runs the task with "name=value" parameters; returns its status. */
static int run(env *e, const char *const *args, int n, sb_task_result *res, sb_err *err) {
    sb_params p;
    memset(res, 0, sizeof *res);
    int rc = sb_params_from_strings(sb_task_perplexity.params, sb_task_perplexity.n_params, args, n, "test", &p, err);
    return rc ? rc : sb_task_perplexity.run(e->model, &p, &e->ctx, res, err);
}

static void expect_metric(const sb_task_result *r, const char *name, double want, double tol) {
    const sb_metric *m = sb_result_find(r, name);
    if (!test_expect(m != NULL, "metric %s missing", name)) return;
    test_expect(close_rel(m->value, want, tol), "%s = %.10g, expected %.10g", name, m->value, want);
}

static void expect_stderr(const sb_task_result *r, const char *name, double want, double tol) {
    const sb_metric *m = sb_result_find(r, name);
    if (!test_expect(m != NULL, "metric %s missing", name)) return;
    test_expect(close_rel(m->stderr_value, want, tol), "%s stderr = %.10g, expected %.10g", name, m->stderr_value, want);
}

static void expect_protocol(const sb_task_result *r, const char *prefix) {
    test_expect(strncmp(r->protocol, prefix, strlen(prefix)) == 0 && strstr(r->protocol, ":data=fnv1a64:"),
                "protocol '%s' should start with '%s' and pin the data hash", r->protocol, prefix);
}

static void case_gptq(env *e, const char *name, const char *const *args, int n) {
    test_begin(name);
    sb_task_result r;
    sb_err err = {0};
    const cJSON *x = cJSON_GetObjectItem(e->expected, "gptq_seq128");
    if (test_expect(run(e, args, n, &r, &err) == SB_OK, "%s", err.msg)) {
        expect_metric(&r, "ppl", num(x, "ppl"), 1e-4);
        expect_stderr(&r, "ppl", num(x, "ppl_stderr"), 1e-4);
        expect_metric(&r, "nll", num(x, "nll"), 1e-4);
        expect_metric(&r, "tokens", num(x, "tokens"), 0);
        expect_protocol(&r, "ppl:gptq:seq=128:bos=auto(1)");
        test_expect(num(r.details, "windows") == num(x, "windows"), "windows %g, expected %g", num(r.details, "windows"),
                    num(x, "windows"));
    }
    sb_result_clear(&r);
    test_end();
}

static void case_slicegpt(env *e) {
    test_begin("ppl_slicegpt_pad_excluded");
    const cJSON *x = cJSON_GetObjectItem(e->expected, "slicegpt_seq128_pad_the");
    char pad[32];
    snprintf(pad, sizeof pad, "pad_id=%d", (int)num(x, "pad_id"));
    const char *args[] = {"data=" DIR "/text.raw", "protocol=slicegpt", "seq=128", pad};
    sb_task_result r;
    sb_err err = {0};
    if (test_expect(run(e, args, 4, &r, &err) == SB_OK, "%s", err.msg)) {
        expect_metric(&r, "ppl", num(x, "ppl"), 1e-4);
        expect_metric(&r, "tokens", num(x, "tokens"), 0);
        expect_protocol(&r, "ppl:slicegpt:seq=128:bos=auto(1):agg=sequence");
        char want[32];
        snprintf(want, sizeof want, ":pad=%d:", (int)num(x, "pad_id"));
        test_expect(strstr(r.protocol, want) != NULL, "protocol '%s' lacks '%s'", r.protocol, want);
    }
    sb_result_clear(&r);
    test_end();
}

static void case_llamacpp(env *e) {
    test_begin("ppl_llamacpp_nctx128");
    const cJSON *x = cJSON_GetObjectItem(e->expected, "llamacpp_nctx128");
    const char *args[] = {"data=" DIR "/text.raw", "protocol=llamacpp", "n_ctx=128", "batch=2"};
    sb_task_result r;
    sb_err err = {0};
    if (test_expect(run(e, args, 4, &r, &err) == SB_OK, "%s", err.msg)) {
        expect_metric(&r, "ppl", num(x, "ppl"), 1e-4);
        expect_stderr(&r, "ppl", num(x, "ppl_stderr"), 1e-4);
        expect_metric(&r, "tokens", num(x, "tokens"), 0);
        expect_protocol(&r, "ppl:llamacpp:n_ctx=128:bos=auto(1)");
        test_expect(num(r.details, "first_scored_index") == 65, "first scored index %g", num(r.details, "first_scored_index"));
    }
    sb_result_clear(&r);
    test_end();
}

static void case_lm_eval(env *e, const char *version, const char *key, const char *const *extra, int n_extra) {
    char name[96], ver[64];
    snprintf(name, sizeof name, "ppl_lm_eval_%s", key);
    snprintf(ver, sizeof ver, "lm_eval_version=%s", version);
    test_begin(name);
    const cJSON *x = cJSON_GetObjectItem(e->expected, key);
    const char *args[8] = {"protocol=lm-eval-rolling", ver};
    for (int i = 0; i < n_extra; i++) args[2 + i] = extra[i];
    sb_task_result r;
    sb_err err = {0};
    if (test_expect(x != NULL, "no %s in expected.json", key) && test_expect(run(e, args, 2 + n_extra, &r, &err) == SB_OK, "%s", err.msg)) {
        expect_metric(&r, "word_perplexity", num(x, "word_perplexity"), 1e-4);
        expect_metric(&r, "byte_perplexity", num(x, "byte_perplexity"), 1e-4);
        expect_metric(&r, "bits_per_byte", num(x, "bits_per_byte"), 1e-4);
        expect_metric(&r, "ppl", num(x, "ppl"), 1e-4);
        expect_metric(&r, "tokens", num(x, "tokens"), 0);
        test_expect(isnan(sb_result_find(&r, "word_perplexity")->stderr_value), "lm-eval stderr should be NaN (N/A)");
        test_expect(num(r.details, "windows") == num(x, "windows") && num(r.details, "documents") == num(x, "documents") &&
                        num(r.details, "words") == num(x, "words") && num(r.details, "bytes") == num(x, "bytes"),
                    "windows/documents/words/bytes %g/%g/%g/%g, expected %g/%g/%g/%g", num(r.details, "windows"),
                    num(r.details, "documents"), num(r.details, "words"), num(r.details, "bytes"), num(x, "windows"),
                    num(x, "documents"), num(x, "words"), num(x, "bytes"));
        expect_protocol(&r, "ppl:lm-eval-rolling:lm_eval=");
        test_expect(strstr(r.protocol, version) != NULL, "protocol '%s' lacks the lm-eval version", r.protocol);
    }
    sb_result_clear(&r);
    test_end();
}

/* ---- errors ---- */

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void expect_error(env *e, const char *name, const char *const *args, int n, const char *needle) {
    test_begin(name);
    sb_task_result r;
    sb_err err = {0};
    int rc = run(e, args, n, &r, &err);
    test_expect(rc == SB_EINPUT, "status %d, expected SB_EINPUT (%s)", rc, err.msg);
    test_expect(strstr(err.msg, needle) != NULL, "message '%s' should contain '%s'", err.msg, needle);
    sb_result_clear(&r);
    test_end();
}

static void error_cases(env *e) {
    char dir[] = "/tmp/sb_ppl_XXXXXX";
    if (!mkdtemp(dir)) return;
    char empty[64], bad[64], nofield[64], a1[96], a2[96], a3[96];
    snprintf(empty, sizeof empty, "%s/empty.txt", dir);
    snprintf(bad, sizeof bad, "%s/bad.jsonl", dir);
    snprintf(nofield, sizeof nofield, "%s/nofield.jsonl", dir);
    write_file(empty, "");
    write_file(bad, "{\"text\": \"a\"}\n\n{\"text\": \"b\",\n");
    write_file(nofield, "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"body\": \"c\"}\n");
    const char *missing[] = {"data=" DIR "/no_such_file.txt"};
    expect_error(e, "ppl_error_missing_file", missing, 1, "no_such_file.txt");
    snprintf(a1, sizeof a1, "data=%s", empty);
    const char *args1[] = {a1};
    snprintf(a2, sizeof a2, "%s:1: empty file", empty);
    expect_error(e, "ppl_error_empty_file", args1, 1, a2);
    snprintf(a1, sizeof a1, "data=%s", bad);
    const char *args2[] = {a1, "format=jsonl"};
    snprintf(a3, sizeof a3, "%s:3: invalid JSON", bad);
    expect_error(e, "ppl_error_jsonl_bad_line", args2, 2, a3);
    snprintf(a1, sizeof a1, "data=%s", nofield);
    snprintf(a3, sizeof a3, "%s:3: missing string field 'text'", nofield);
    expect_error(e, "ppl_error_jsonl_missing_field", args2, 2, a3);
    const char *builtin[] = {"protocol=gptq"};
    expect_error(e, "ppl_error_builtin_not_yet", builtin, 1, "builtin");
    const char *too_short[] = {"data=" DIR "/docs.jsonl", "format=jsonl", "protocol=llamacpp", "n_ctx=512"};
    expect_error(e, "ppl_error_text_too_short", too_short, 4, "2*n_ctx");
    remove(empty);
    remove(bad);
    remove(nofield);
    rmdir(dir);
}

/* ---- dataset helpers ---- */

static void dataset_cases(env *e) {
    test_begin("text_wikitext_split_and_hash");
    sb_text_dataset d;
    sb_err err = {0};
    if (test_expect(sb_text_load(DIR "/text.raw", "raw", "text", &d, &err) == SB_OK, "%s", err.msg) &&
        test_expect(sb_text_split_wikitext(&d, &err) == SB_OK, "%s", err.msg)) {
        const cJSON *bytes = cJSON_GetObjectItem(e->expected, "wikitext_doc_bytes");
        test_expect(d.n_docs == cJSON_GetArraySize(bytes), "%d documents, expected %d", d.n_docs, cJSON_GetArraySize(bytes));
        for (int i = 0; i < d.n_docs && i < cJSON_GetArraySize(bytes); i++)
            test_expect((double)d.docs[i].len == cJSON_GetArrayItem(bytes, i)->valuedouble, "document %d: %zu bytes", i, d.docs[i].len);
        test_expect(d.hash != 0 && d.text == d.bytes, "raw text is the file's bytes");
    }
    sb_text_free(&d);
    test_end();

    test_begin("text_wikitext_detokenizer");
    const char *page = "  Tom 's house ( built in 1900 ) stands on the hill ; it has \" two floors \" and a garden .\n";
    const char *want = cJSON_GetObjectItem(e->expected, "detok_sample")->valuestring;
    char *out = NULL;
    size_t n = 0;
    if (test_expect(sb_wikitext_detokenize(page, strlen(page), &out, &n, &err) == SB_OK, "%s", err.msg))
        test_expect(n == strlen(want) && memcmp(out, want, n) == 0, "got '%s', expected '%s'", out, want);
    free(out);
    /* quotes pair up across a newline, the slash-digit regex, U+3000 inside brackets (lm-eval 0.4.13's output) */
    const char *tricky = "a ' b ' c \" d\n \" e @-@ f /' 5/ ( x [ y\xe3\x80\x80] s 's = = = = H = = = =\n";
    const char *tricky_want = "a 'b' c \"d\" e-f /'[0-9]/ ( x [y] s's ==== H ====\n";
    if (test_expect(sb_wikitext_detokenize(tricky, strlen(tricky), &out, &n, &err) == SB_OK, "%s", err.msg))
        test_expect(strcmp(out, tricky_want) == 0, "got '%s', expected '%s'", out, tricky_want);
    free(out);
    test_end();

    test_begin("text_word_count");
    test_expect(sb_text_count_words(" = A = \n B c \n", 14) == 7, "PROTOCOLS §4.4 example gives 7");
    test_expect(sb_text_count_words("", 0) == 1 && sb_text_count_words("a\xc2\xa0" "b", 4) == 2 &&
                    sb_text_count_words("a\xe3\x80\x80 b", 6) == 2,
                "empty string is one piece; NBSP and U+3000 are whitespace");
    test_end();
}

static cJSON *load_expected(void) {
    char *text = NULL;
    sb_err err = {0};
    if (sb_read_text_file(DIR "/expected.json", &text, NULL, &err)) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

int main(void) {
    env e = {0};
    sb_err err = {0};
    e.expected = load_expected();
    if (!e.expected || sb_pool_new(2, &e.pool, &err) || sb_model_load(DIR "/model", &e.model, &err)) {
        test_begin("ppl_setup");
        test_expect(false, "fixtures: %s", e.expected ? err.msg : "cannot read " DIR "/expected.json");
        test_end();
        return test_status();
    }
    e.ctx.pool = e.pool;
    const char *gptq1[] = {"data=" DIR "/text.raw", "protocol=gptq", "seq=128"};
    case_gptq(&e, "ppl_gptq_seq128", gptq1, 3);
    const char *gptq3[] = {"data=" DIR "/text.raw", "protocol=gptq", "seq=128", "batch=3", "agg=token"};
    case_gptq(&e, "ppl_gptq_seq128_batch3", gptq3, 5);
    case_slicegpt(&e);
    case_llamacpp(&e);
    const char *l128[] = {"data=" DIR "/text.raw", "max_length=128"};
    case_lm_eval(&e, "0.4.0-0.4.2", "lm_eval_L128_0.4.0-0.4.2", l128, 2);
    case_lm_eval(&e, "0.4.3-0.4.9.1", "lm_eval_L128_0.4.3-0.4.9.1", l128, 2);
    const char *l128b[] = {"data=" DIR "/text.raw", "max_length=128", "batch=4"};
    case_lm_eval(&e, "0.4.9.2+", "lm_eval_L128_0.4.9.2+", l128b, 3);
    const char *jl[] = {"data=" DIR "/docs.jsonl", "format=jsonl", "max_length=64"};
    case_lm_eval(&e, "0.4.9.2+", "lm_eval_jsonl_L64", jl, 3);
    error_cases(&e);
    dataset_cases(&e);
    sb_model_free(e.model);
    sb_pool_free(e.pool);
    cJSON_Delete(e.expected);
    return test_status();
}

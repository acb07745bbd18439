/* test_kld.c - the kld task against the same computation in Python.
 *
 * make_task_fixtures.py stored a tiny Llama (model/) and its 4-bit RTN copy
 * (model_rtn/), and computed llama-perplexity --kl-divergence statistics
 * over 128-token chunks of the fixture text, encoding the reference rows
 * as llama.cpp does.  Here: the reference run writes the cache (and
 * compares itself with it: KLD ~0, top-1 100 %), the RTN model reads it,
 * the same file given as `base` gives the same numbers, the file has
 * llama.cpp's layout, and a missing cache is a clear input error. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "mapped_file.h"
#include "plugin.h"

#define FIX "tests/reference/tasks"

extern const sb_task sb_task_kld;

static double num(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static int run(const sb_model *m, const sb_run_ctx *ctx, const char *const *args, int n, sb_task_result *r, sb_err *err) {
    sb_params p;
    memset(r, 0, sizeof *r);
    int rc = sb_params_from_strings(sb_task_kld.params, sb_task_kld.n_params, args, n, "test", &p, err);
    return rc ? rc : sb_task_kld.run(m, &p, ctx, r, err);
}

/* |got - want| <= rel*|want| + abs */
static void expect_near(const sb_task_result *r, const char *metric, bool use_stderr, const cJSON *x, const char *key, double rel,
                        double abs_tol) {
    const sb_metric *m = sb_result_find(r, metric);
    double want = num(x, key);
    if (!test_expect(m != NULL && !isnan(want), "metric %s or expected %s missing", metric, key)) return;
    double got = use_stderr ? m->stderr_value : m->value;
    test_expect(fabs(got - want) <= rel * fabs(want) + abs_tol, "%s%s = %.10g, expected %.10g", metric,
                use_stderr ? " stderr" : "", got, want);
}

static void check_stats(const sb_task_result *r, const cJSON *x) {
    expect_near(r, "kld", false, x, "kld", 1e-4, 0);
    expect_near(r, "kld", true, x, "kld_stderr", 1e-3, 0);
    expect_near(r, "kld_max", false, x, "kld_max", 1e-4, 0);
    expect_near(r, "kld_p99", false, x, "kld_p99", 1e-4, 0);
    expect_near(r, "kld_p90", false, x, "kld_p90", 1e-4, 0);
    expect_near(r, "kld_median", false, x, "kld_median", 1e-4, 0);
    expect_near(r, "top1_agree", false, x, "top1_agree", 1e-4, 0);
    expect_near(r, "top1_agree", true, x, "top1_agree_stderr", 1e-4, 0);
    expect_near(r, "dp_mean", false, x, "dp_mean", 1e-3, 1e-6);
    expect_near(r, "dp_rms", false, x, "dp_rms", 1e-4, 0);
    expect_near(r, "dp_p99", false, x, "dp_p99", 1e-4, 1e-6);
    expect_near(r, "dp_p1", false, x, "dp_p1", 1e-4, 1e-6);
    expect_near(r, "dp_max", false, x, "dp_max", 1e-4, 1e-6);
    expect_near(r, "dp_min", false, x, "dp_min", 1e-4, 1e-6);
    expect_near(r, "ppl", false, x, "ppl", 1e-4, 0);
    expect_near(r, "ppl", true, x, "ppl_stderr", 1e-4, 0);
    expect_near(r, "ppl_base", false, x, "ppl_base", 1e-4, 0);
    expect_near(r, "ppl_ratio", false, x, "ppl_ratio", 1e-4, 0);
    expect_near(r, "tokens", false, x, "tokens", 0, 0);
}

/* The cache file must have llama.cpp's layout exactly. */
static void check_file_layout(const char *path, const cJSON *expected) {
    sb_mapped_file f;
    sb_err err = {0};
    if (!test_expect(sb_mapped_file_open(&f, path, &err) == SB_OK, "%s", err.msg)) return;
    int32_t hdr[3];
    memcpy(hdr, f.data + 8, sizeof hdr);
    const int n_ctx = 128, n_vocab = 512, nv = 2 * ((n_vocab + 1) / 2) + 4;
    int n_chunk = (int)num(cJSON_GetObjectItem(expected, "kld_rtn_nctx128"), "chunks");
    size_t want = 20 + (size_t)4 * n_chunk * n_ctx + (size_t)2 * nv * (n_ctx - 1 - n_ctx / 2) * n_chunk;
    test_expect(memcmp(f.data, "_logits_", 8) == 0 && hdr[0] == n_ctx && hdr[1] == n_vocab && hdr[2] == n_chunk,
                "header: n_ctx %d n_vocab %d n_chunk %d", hdr[0], hdr[1], hdr[2]);
    test_expect(f.size == want, "file size %zu, expected %zu", f.size, want);
    const cJSON *first = cJSON_GetObjectItem(expected, "first_tokens");
    for (int i = 0; i < cJSON_GetArraySize(first); i++) {
        int32_t t;
        memcpy(&t, f.data + 20 + 4 * i, 4);
        if (!test_expect(t == cJSON_GetArrayItem(first, i)->valueint, "token %d is %d", i, t)) break;
    }
    /* row 0: scale > 0, minlp < 0, some code 65535 (the maximum logit), padding zero */
    const uint8_t *row = f.data + 20 + (size_t)4 * n_chunk * n_ctx;
    float scale, minlp;
    memcpy(&scale, row, 4);
    memcpy(&minlp, row + 4, 4);
    uint16_t maxc = 0;
    for (int i = 0; i < n_vocab; i++) {
        uint16_t c;
        memcpy(&c, row + 8 + 2 * i, 2);
        if (c > maxc) maxc = c;
    }
    test_expect(scale > 0 && minlp < 0 && maxc == 65535, "first row: scale %g minlp %g max code %u", scale, minlp, maxc);
    sb_mapped_file_close(&f);
}

static cJSON *load_expected(void) {
    char *text = NULL;
    sb_err err = {0};
    if (sb_read_text_file(FIX "/expected.json", &text, NULL, &err)) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        remove(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

int main(void) {
    sb_err err = {0};
    sb_pool *pool = NULL;
    sb_model *ref = NULL, *rtn = NULL;
    cJSON *expected = load_expected();
    char dir[] = "/tmp/sb_kld_XXXXXX";
    if (!expected || sb_pool_new(2, &pool, &err) || sb_model_load(FIX "/model", &ref, &err) ||
        sb_model_load(FIX "/model_rtn", &rtn, &err) || !mkdtemp(dir)) {
        test_begin("kld_setup");
        test_expect(false, "fixtures: %s", err.msg);
        test_end();
        return test_status();
    }
    sb_run_ctx ctx = {.pool = pool, .cache_dir = dir, .model_id = "fixture", .model_is_reference = false};
    const char *args[] = {"data=" FIX "/text.raw", "n_ctx=128", "batch=2"};
    sb_task_result r;

    test_begin("kld_missing_cache_is_input_error");
    int rc = run(rtn, &ctx, args, 3, &r, &err);
    test_expect(rc == SB_EINPUT && strstr(err.msg, "dense") && strstr(err.msg, dir), "status %d: %s", rc, err.msg);
    sb_result_clear(&r);
    test_end();

    test_begin("kld_reference_writes_cache_and_matches_itself");
    ctx.model_is_reference = true;
    err = (sb_err){0};
    char path[512] = "";
    if (test_expect(run(ref, &ctx, args, 3, &r, &err) == SB_OK, "%s", err.msg)) {
        const sb_metric *k = sb_result_find(&r, "kld"), *t = sb_result_find(&r, "top1_agree");
        test_expect(k && fabs(k->value) < 1e-5 && t && t->value == 100.0, "self: kld %g, top-1 %g %%", k ? k->value : NAN,
                    t ? t->value : NAN);
        expect_near(&r, "ppl", false, cJSON_GetObjectItem(expected, "kld_self_nctx128"), "ppl", 1e-4, 0);
        expect_near(&r, "ppl_base", false, cJSON_GetObjectItem(expected, "kld_self_nctx128"), "ppl_base", 1e-4, 0);
        const cJSON *f = cJSON_GetObjectItem(r.details, "base_file");
        if (test_expect(cJSON_IsString(f) && cJSON_IsTrue(cJSON_GetObjectItem(r.details, "base_written_now")), "no base file written"))
            snprintf(path, sizeof path, "%s", f->valuestring);
        test_expect(strncmp(r.protocol, "kld:llamacpp:n_ctx=128:bos=1:chunks=", 36) == 0, "protocol '%s'", r.protocol);
    }
    sb_result_clear(&r);
    test_end();

    test_begin("kld_base_file_layout");
    if (path[0]) check_file_layout(path, expected);
    test_end();

    test_begin("kld_rtn_against_cache");
    ctx.model_is_reference = false;
    err = (sb_err){0};
    if (test_expect(run(rtn, &ctx, args, 3, &r, &err) == SB_OK, "%s", err.msg)) {
        check_stats(&r, cJSON_GetObjectItem(expected, "kld_rtn_nctx128"));
        test_expect(cJSON_IsFalse(cJSON_GetObjectItem(r.details, "base_written_now")), "the cache was rewritten");
    }
    sb_result_clear(&r);
    test_end();

    test_begin("kld_rtn_against_base_parameter");
    char base_arg[600];
    snprintf(base_arg, sizeof base_arg, "base=%s", path);
    const char *args_base[] = {base_arg, "batch=1"};
    sb_run_ctx no_cache = {.pool = pool};
    err = (sb_err){0};
    if (test_expect(run(rtn, &no_cache, args_base, 2, &r, &err) == SB_OK, "%s", err.msg)) {
        check_stats(&r, cJSON_GetObjectItem(expected, "kld_rtn_nctx128"));
        test_expect(strstr(r.protocol, ":base=file") != NULL, "protocol '%s'", r.protocol);
    }
    sb_result_clear(&r);
    test_end();

    test_begin("kld_bad_base_file");
    const char *args_bad[] = {"base=" FIX "/text.raw"};
    err = (sb_err){0};
    rc = run(rtn, &no_cache, args_bad, 1, &r, &err);
    test_expect(rc == SB_EINPUT && strstr(err.msg, "_logits_"), "status %d: %s", rc, err.msg);
    sb_result_clear(&r);
    test_end();

    remove_dir(dir);
    sb_model_free(ref);
    sb_model_free(rtn);
    sb_pool_free(pool);
    cJSON_Delete(expected);
    return test_status();
}

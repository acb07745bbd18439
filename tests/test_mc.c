/* test_mc.c - the multiple-choice task against lm-eval itself.
 *
 * tests/reference/make_mc_fixtures.py wrote a tiny Llama with a byte-level
 * BPE tokenizer, a few hand-written documents per dataset format and what
 * lm-eval (its own task configs, HFLM, process_results) made of them: the
 * request strings, the continuation tokens, every request's loglikelihood
 * and is_greedy, and acc / acc_norm.  Each case loads the dataset and runs
 * the task with log_samples on, then checks strings and tokens are equal,
 * ll agrees within 1e-4 relative, and every decision and metric is the
 * same.  Then: the shared-prefix path against scoring every request from
 * scratch, and malformed files that must fail with FILE:LINE. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../datasets/mc_dataset.h"
#include "check.h"
#include "mapped_file.h"
#include "plugin.h"

extern const sb_task sb_task_mc;

static const char *mc_dir = "tests/reference/mc";

static cJSON *load_json(const char *path) {
    char *text;
    sb_err err = {0};
    if (sb_read_text_file(path, &text, NULL, &err)) {
        test_expect(false, "%s", err.msg);
        return NULL;
    }
    cJSON *j = cJSON_Parse(text);
    free(text);
    test_expect(j != NULL, "%s: invalid JSON", path);
    return j;
}

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double jnum(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Runs the task with "name=value" parameters; res must be freed with result_free. */
static int run_task(const sb_model *m, sb_pool *pool, const char *const *assign, int n, sb_task_result *res,
                    sb_err *err) {
    sb_params p;
    memset(res, 0, sizeof *res);
    int rc = sb_params_from_strings(sb_task_mc.params, sb_task_mc.n_params, assign, n, "test", &p, err);
    sb_run_ctx ctx = {.pool = pool};
    return rc ? rc : sb_task_mc.run(m, &p, &ctx, res, err);
}

static void result_free(sb_task_result *r) {
    cJSON_Delete(r->details);
    r->details = NULL;
}

/* Runs one fixture case with log_samples; NULL on failure (already reported). */
static bool run_fixture(const sb_model *m, sb_pool *pool, const cJSON *fx, bool reuse, sb_task_result *res) {
    char data[512], format[64], version[64], reuse_s[32];
    snprintf(data, sizeof data, "data=%s", jstr(fx, "data"));
    snprintf(format, sizeof format, "format=%s", jstr(fx, "format"));
    snprintf(version, sizeof version, "lm_eval_version=%s", jstr(fx, "lm_eval_version"));
    snprintf(reuse_s, sizeof reuse_s, "reuse_prefix=%s", reuse ? "true" : "false");
    const char *assign[] = {data, format, version, reuse_s, "log_samples=true"};
    sb_err err = {0};
    return test_expect(run_task(m, pool, assign, 5, res, &err) == SB_OK, "%s", err.msg);
}

/* The dataset loader builds exactly lm-eval's request strings and gold. */
static void check_requests(const cJSON *fx) {
    sb_mc_format f;
    sb_mc_dataset *ds = NULL;
    sb_err err = {0};
    if (!test_expect(sb_mc_format_parse(jstr(fx, "format"), &f, &err) == SB_OK, "%s", err.msg)) return;
    if (!test_expect(sb_mc_load(jstr(fx, "data"), f, 0, &ds, &err) == SB_OK, "%s", err.msg)) return;
    const cJSON *docs = cJSON_GetObjectItem(fx, "docs");
    test_expect(ds->n_docs == cJSON_GetArraySize(docs), "%d documents, lm-eval %d", ds->n_docs,
                cJSON_GetArraySize(docs));
    for (int i = 0; i < ds->n_docs && i < cJSON_GetArraySize(docs); i++) {
        const cJSON *doc = cJSON_GetArrayItem(docs, i), *reqs = cJSON_GetObjectItem(doc, "requests");
        const sb_mc_doc *d = &ds->docs[i];
        test_expect(d->gold == (int)jnum(doc, "gold"), "doc %d: gold %d, lm-eval %g", i, d->gold, jnum(doc, "gold"));
        if (!test_expect(d->n_choices == cJSON_GetArraySize(reqs), "doc %d: %d requests", i, d->n_choices)) continue;
        for (int k = 0; k < d->n_choices; k++) {
            const cJSON *r = cJSON_GetArrayItem(reqs, k);
            test_expect(strcmp(d->req[k].context, jstr(r, "context")) == 0, "doc %d/%d: context \"%s\", lm-eval \"%s\"",
                        i, k, d->req[k].context, jstr(r, "context"));
            test_expect(strcmp(d->req[k].continuation, jstr(r, "continuation")) == 0,
                        "doc %d/%d: continuation \"%s\", lm-eval \"%s\"", i, k, d->req[k].continuation,
                        jstr(r, "continuation"));
        }
    }
    sb_mc_free(ds);
}

static bool close_ll(double a, double ref) { return fabs(a - ref) <= 1e-4 * fmax(1.0, fabs(ref)); }

static bool same_tokens(const cJSON *a, const cJSON *b) {
    if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b)) return false;
    for (int i = 0; i < cJSON_GetArraySize(a); i++)
        if (cJSON_GetArrayItem(a, i)->valueint != cJSON_GetArrayItem(b, i)->valueint) return false;
    return true;
}

/* Per request: tokens, ll, is_greedy; per document: the three predictions. */
static void check_samples(const cJSON *fx, const cJSON *samples) {
    const cJSON *docs = cJSON_GetObjectItem(fx, "docs");
    if (!test_expect(cJSON_GetArraySize(samples) == cJSON_GetArraySize(docs), "samples for %d documents",
                     cJSON_GetArraySize(samples)))
        return;
    for (int i = 0; i < cJSON_GetArraySize(docs); i++) {
        const cJSON *doc = cJSON_GetArrayItem(docs, i), *s = cJSON_GetArrayItem(samples, i);
        const cJSON *want = cJSON_GetObjectItem(doc, "requests"), *got = cJSON_GetObjectItem(s, "requests");
        for (int k = 0; k < cJSON_GetArraySize(want) && k < cJSON_GetArraySize(got); k++) {
            const cJSON *w = cJSON_GetArrayItem(want, k), *g = cJSON_GetArrayItem(got, k);
            test_expect(same_tokens(cJSON_GetObjectItem(g, "cont_tokens"), cJSON_GetObjectItem(w, "cont_tokens")),
                        "doc %d/%d: continuation tokens differ from lm-eval's", i, k);
            test_expect(close_ll(jnum(g, "ll"), jnum(w, "ll")), "doc %d/%d: ll %.6f, lm-eval %.6f", i, k,
                        jnum(g, "ll"), jnum(w, "ll"));
            test_expect(cJSON_IsTrue(cJSON_GetObjectItem(g, "is_greedy")) == cJSON_IsTrue(cJSON_GetObjectItem(w, "is_greedy")),
                        "doc %d/%d: is_greedy differs", i, k);
        }
        static const char *const preds[] = {"pred", "pred_norm", "pred_bytes"};
        for (int p = 0; p < 3; p++)
            if (cJSON_GetObjectItem(doc, preds[p]))
                test_expect(jnum(s, preds[p]) == jnum(doc, preds[p]), "doc %d: %s %g, lm-eval %g", i, preds[p],
                            jnum(s, preds[p]), jnum(doc, preds[p]));
    }
}

static void check_metrics(const cJSON *fx, const sb_task_result *res) {
    const cJSON *want = cJSON_GetObjectItem(fx, "metrics");
    for (const cJSON *w = want->child; w; w = w->next) {
        const sb_metric *g = sb_result_find(res, w->string);
        if (!test_expect(g != NULL, "metric %s missing", w->string)) continue;
        bool ok = strcmp(w->string, "ppl") == 0 ? fabs(log(g->value) - log(w->valuedouble)) <= 1e-4 * fabs(log(w->valuedouble))
                                                : fabs(g->value - w->valuedouble) <= 1e-12;
        test_expect(ok, "%s = %.9g, lm-eval %.9g", w->string, g->value, w->valuedouble);
    }
    bool has_norm = cJSON_GetObjectItem(want, "acc_norm") != NULL;
    test_expect((sb_result_find(res, "acc_norm") != NULL) == has_norm, "acc_norm reported iff lm-eval's task has it");
    const sb_metric *n = sb_result_find(res, "n");
    test_expect(n && n->value == jnum(fx, "n"), "n differs");
    const sb_metric *acc = sb_result_find(res, "acc");
    double p = acc ? acc->value : 0, want_se = sqrt(p * (1 - p) / (jnum(fx, "n") - 1));
    test_expect(acc && fabs(acc->stderr_value - want_se) <= 1e-12, "acc stderr %g, expected %g",
                acc ? acc->stderr_value : NAN, want_se);
}

static void check_case(const char *name, const sb_model *m, sb_pool *pool) {
    char test_name[96], path[512];
    snprintf(test_name, sizeof test_name, "mc_lm_eval_%s", name);
    snprintf(path, sizeof path, "%s/expected/%s.json", mc_dir, name);
    test_begin(test_name);
    cJSON *fx = load_json(path);
    sb_task_result res;
    if (fx && (check_requests(fx), run_fixture(m, pool, fx, true, &res))) {
        check_samples(fx, cJSON_GetObjectItem(res.details, "samples"));
        check_metrics(fx, &res);
        const cJSON *doc0 = cJSON_GetArrayItem(cJSON_GetObjectItem(fx, "docs"), 0);
        const char *prompt = jstr(cJSON_GetArrayItem(cJSON_GetObjectItem(doc0, "requests"), 0), "context");
        test_expect(strcmp(jstr(res.details, "prompt"), prompt) == 0, "details.prompt differs");
        char protocol[160];
        snprintf(protocol, sizeof protocol, "mc:%s:lm-eval=%s:shots=0", jstr(fx, "format"), jstr(fx, "lm_eval_version"));
        test_expect(strcmp(res.protocol, protocol) == 0, "protocol %s, expected %s", res.protocol, protocol);
        result_free(&res);
    }
    cJSON_Delete(fx);
    test_end();
}

/* Running a question's shared prefix once must give what scoring every
 * request from an empty cache gives, for fewer positions. */
static void check_prefix_reuse(const char *name, const sb_model *m, sb_pool *pool) {
    char test_name[96], path[512];
    snprintf(test_name, sizeof test_name, "mc_prefix_reuse_%s", name);
    snprintf(path, sizeof path, "%s/expected/%s.json", mc_dir, name);
    test_begin(test_name);
    cJSON *fx = load_json(path);
    sb_task_result reuse, alone;
    bool ok = fx && run_fixture(m, pool, fx, true, &reuse);
    if (ok && run_fixture(m, pool, fx, false, &alone)) {
        const cJSON *a = cJSON_GetObjectItem(reuse.details, "samples"), *b = cJSON_GetObjectItem(alone.details, "samples");
        double worst = 0;
        for (int i = 0; i < cJSON_GetArraySize(a); i++) {
            const cJSON *ra = cJSON_GetObjectItem(cJSON_GetArrayItem(a, i), "requests");
            const cJSON *rb = cJSON_GetObjectItem(cJSON_GetArrayItem(b, i), "requests");
            for (int k = 0; k < cJSON_GetArraySize(ra); k++) {
                double la = jnum(cJSON_GetArrayItem(ra, k), "ll"), lb = jnum(cJSON_GetArrayItem(rb, k), "ll");
                worst = fmax(worst, fabs(la - lb) / fmax(1.0, fabs(lb)));
            }
        }
        test_expect(worst <= 1e-5, "prefix reuse changes ll by %.3g relative", worst);
        double pa = jnum(reuse.details, "positions_computed"), pb = jnum(alone.details, "positions_computed");
        test_expect(pa < pb, "prefix reuse computed %g positions, from scratch %g", pa, pb);
        result_free(&alone);
    }
    if (ok) result_free(&reuse);
    cJSON_Delete(fx);
    test_end();
}

/* ---- malformed files ----------------------------------------------------- */

typedef struct {
    const char *name, *format, *text;
    int line;              /* the line the message must name */
    const char *reason;    /* a part of the message */
} bad_case;

static const bad_case bad_cases[] = {
    {"missing_field", "piqa",
     "{\"goal\": \"a\", \"sol1\": \"b\", \"sol2\": \"c\", \"label\": 0}\n{\"goal\": \"a\", \"sol1\": \"b\", \"label\": 1}\n",
     2, "missing field \"sol2\""},
    {"empty_file", "jsonl", "", 1, "empty"},
    {"blank_file", "arc", "\n \n", 1, "empty"},
    {"invalid_json", "jsonl",
     "{\"context\": \"a\", \"choices\": [\"b\"], \"gold\": 0}\n{\"context\": \"a\", \"choices\": [\"b\"], \"gold\": 0}\n"
     "{\"context\": \"a\", \"choices\": [\"b\"], \n",
     3, "invalid JSON"},
    {"choices_missing", "jsonl", "{\"context\": \"a\", \"gold\": 0}\n", 1, "missing field \"choices\""},
    {"choices_empty", "jsonl", "{\"context\": \"a\", \"choices\": [], \"gold\": 0}\n", 1, "non-empty"},
    {"arc_choices_empty", "arc",
     "{\"question\": \"q\", \"choices\": {\"text\": [], \"label\": []}, \"answerKey\": \"A\"}\n", 1, "non-empty"},
    {"gold_out_of_range", "jsonl",
     "{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"gold\": 1}\n{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"gold\": 2}\n",
     2, "out of range"},
    {"answer_key_unknown", "openbookqa",
     "{\"question_stem\": \"q\", \"choices\": {\"text\": [\"x\", \"y\"], \"label\": [\"A\", \"B\"]}, \"answerKey\": \"C\"}\n",
     1, "answerKey"},
    {"label_not_int", "hellaswag",
     "{\"activity_label\": \"a\", \"ctx_a\": \"b\", \"ctx_b\": \"c\", \"endings\": [\"d\"], \"label\": \"x\"}\n", 1,
     "not an integer"},
    {"winogrande_no_blank", "winogrande",
     "{\"sentence\": \"no blank\", \"option1\": \"a\", \"option2\": \"b\", \"answer\": \"1\"}\n", 1, "blank"},
    {"not_an_object", "boolq", "[1, 2]\n", 1, "object"},
};

static bool write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(text, 1, strlen(text), f) == strlen(text);
    return fclose(f) == 0 && ok;
}

static bool names_place(const sb_err *err, const char *path, int line, const char *reason) {
    char where[600];
    snprintf(where, sizeof where, "%s:%d: ", path, line);
    return err->code == SB_EINPUT && strstr(err->msg, where) && strstr(err->msg, reason);
}

/* Through the loader, and once more through the task (which must pass it on). */
static void check_bad_case(const bad_case *c, const char *dir, const sb_model *m, sb_pool *pool) {
    char name[96], path[512];
    snprintf(name, sizeof name, "mc_bad_input_%s", c->name);
    snprintf(path, sizeof path, "%s/%s.jsonl", dir, c->name);
    test_begin(name);
    if (test_expect(write_file(path, c->text), "cannot write %s", path)) {
        sb_mc_format f;
        sb_mc_dataset *ds = NULL;
        sb_err err = {0};
        sb_mc_format_parse(c->format, &f, &err);
        int rc = sb_mc_load(path, f, 0, &ds, &err);
        test_expect(rc == SB_EINPUT && names_place(&err, path, c->line, c->reason), "loader: rc %d, \"%s\"", rc, err.msg);
        sb_mc_free(ds);
        char data[600], format[64];
        snprintf(data, sizeof data, "data=%s", path);
        snprintf(format, sizeof format, "format=%s", c->format);
        const char *assign[] = {data, format};
        sb_task_result res;
        sb_err err2 = {0};
        rc = run_task(m, pool, assign, 2, &res, &err2);
        test_expect(rc == SB_EINPUT && names_place(&err2, path, c->line, c->reason), "task: rc %d, \"%s\"", rc, err2.msg);
        result_free(&res);
        unlink(path);
    }
    test_end();
}

static void check_params(const sb_model *m, sb_pool *pool) {
    test_begin("mc_params");
    sb_task_result res;
    sb_err err = {0};
    const char *bad_format[] = {"data=x.jsonl", "format=mmlu"};
    test_expect(run_task(m, pool, bad_format, 2, &res, &err) == SB_EINPUT && strstr(err.msg, "format"),
                "unknown format: \"%s\"", err.msg);
    sb_err err2 = {0};
    const char *missing[] = {"format=piqa"};
    test_expect(run_task(m, pool, missing, 1, &res, &err2) == SB_EINPUT && strstr(err2.msg, "data"),
                "missing data: \"%s\"", err2.msg);
    sb_err err3 = {0};
    const char *nofile[] = {"data=tests/reference/mc/data/none.jsonl", "format=piqa"};
    test_expect(run_task(m, pool, nofile, 2, &res, &err3) == SB_EINPUT, "missing file: \"%s\"", err3.msg);
    /* limit: the first two documents only */
    sb_err err4 = {0};
    const char *limit[] = {"data=tests/reference/mc/data/piqa.jsonl", "format=piqa", "limit=2"};
    if (test_expect(run_task(m, pool, limit, 3, &res, &err4) == SB_OK, "%s", err4.msg)) {
        const sb_metric *n = sb_result_find(&res, "n");
        test_expect(n && n->value == 2, "limit=2 scored %g documents", n ? n->value : -1);
        result_free(&res);
    }
    test_end();
}

static void check_hellaswag_preprocess(void) {
    static const char *const cases[][2] = {
        {"  a [title] b  ", "a. b"},
        {"x [header] y [step] z", "x y z"},
        {"a   b", "a  b"},
        {"keep [open\n] close", "keep [open\n] close"},
        {"[a][b]c", "c"},
    };
    test_begin("mc_hellaswag_preprocess");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = sb_mc_hellaswag_preprocess(cases[i][0]);
        test_expect(got && strcmp(got, cases[i][1]) == 0, "\"%s\" -> \"%s\", Python \"%s\"", cases[i][0],
                    got ? got : "(null)", cases[i][1]);
        free(got);
    }
    test_end();
}

int main(void) {
    static const char *const cases[] = {"piqa",       "arc",   "hellaswag", "winogrande",  "boolq",        "copa",
                                        "lambada",    "openbookqa", "jsonl", "piqa_v0.4.3", "jsonl_v0.4.3",
                                        "jsonl_v0.4.0"};
    static const char *const reuse_cases[] = {"hellaswag", "winogrande", "boolq", "jsonl", "copa"};
    sb_pool *pool;
    sb_model *m = NULL;
    sb_err err = {0};
    char model_dir[256];
    snprintf(model_dir, sizeof model_dir, "%s/model", mc_dir);
    if (sb_pool_new(2, &pool, &err)) return 1;
    test_begin("mc_load_model");
    bool loaded = test_expect(sb_model_load(model_dir, &m, &err) == SB_OK, "%s", err.msg);
    test_end();
    if (loaded) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(cases[i], m, pool);
        for (size_t i = 0; i < sizeof reuse_cases / sizeof reuse_cases[0]; i++)
            check_prefix_reuse(reuse_cases[i], m, pool);
        char dir[] = "/tmp/sb_test_mc_XXXXXX";
        if (mkdtemp(dir)) {
            for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) check_bad_case(&bad_cases[i], dir, m, pool);
            rmdir(dir);
        }
        check_params(m, pool);
    }
    check_hellaswag_preprocess();
    sb_model_free(m);
    sb_pool_free(pool);
    return test_status();
}

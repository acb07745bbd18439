/* test_speed.c - the speed task on a tiny random model: every metric is
 * there and finite, percentiles are ordered, throughput is tokens over mean
 * latency, memory figures match the model, bad parameters are refused
 * naming the parameter.
 *
 * With SB_SPEED_VS_BENCH=1 it also checks that prefill 512 (batch 1) on
 * `slimbench bench`'s model reproduces the bench's full-sequence tokens/s
 * within 10% (about a minute; off by default, the machine must be quiet). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "measure.h"
#include "model_random.h"
#include "plugin.h"
#include "registry.h"

static int run_speed(const sb_model *m, sb_pool *pool, const char *const *args, int n, sb_task_result *r, sb_err *err) {
    const sb_task *t = sb_registry_task("speed");
    if (!t) return sb_err_set(err, SB_EINTERNAL, "task 'speed' is not registered");
    sb_params p;
    int rc = sb_params_from_strings(t->params, t->n_params, args, n, "test", &p, err);
    sb_run_ctx ctx = {.pool = pool, .seed = 7};
    memset(r, 0, sizeof *r);
    return rc ? rc : t->run(m, &p, &ctx, r, err);
}

static bool metric_ok(const sb_task_result *r, const char *name, double *value) {
    const sb_metric *mt = sb_result_find(r, name);
    if (!test_expect(mt != NULL, "metric %s missing", name)) return false;
    *value = mt->value;
    return test_expect(isfinite(mt->value) && mt->value >= 0, "metric %s = %g", name, mt->value);
}

/* Stats of one prefix: present, finite, ordered, throughput consistent. */
static void check_latency_set(const sb_task_result *r, const char *prefix, double tokens_per_run) {
    static const char *const suffix[] = {"mean", "p50", "p90", "p95", "p99", "stdev"};
    double v[6], rate;
    char name[64];
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof name, "%s_latency_ms_%s", prefix, suffix[i]);
        if (!metric_ok(r, name, &v[i])) return;
    }
    snprintf(name, sizeof name, "%s_tokens_per_s", prefix);
    if (!metric_ok(r, name, &rate)) return;
    test_expect(v[1] > 0 && v[1] <= v[2] && v[2] <= v[3] && v[3] <= v[4], "%s: p50 %g p90 %g p95 %g p99 %g", prefix,
                v[1], v[2], v[3], v[4]);
    double want = tokens_per_run / (v[0] / 1000);
    test_expect(fabs(rate - want) <= 1e-9 * want, "%s: %g tokens/s, tokens / mean latency = %g", prefix, rate, want);
    test_expect(sb_result_find(r, name)->direction == SB_HIGHER_IS_BETTER, "%s: throughput direction", prefix);
}

static void test_small_run(const sb_model *m, sb_pool *pool) {
    test_begin("speed_small_model_metrics");
    static const char *const args[] = {"prompt_lengths=8, 16", "batch_sizes=1,2", "decode_prompt=8", "new_tokens=4",
                                       "decode_batch=2",       "warmup=1",        "iterations=3",    "duration=0.05"};
    sb_task_result r;
    sb_err err = {0};
    if (test_expect(run_speed(m, pool, args, 8, &r, &err) == SB_OK, "%s", err.msg)) {
        test_expect(r.n_metrics == 4 * 7 + 11, "%d metrics", r.n_metrics);
        const int lens[] = {8, 16}, batches[] = {1, 2};
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) {
                char prefix[32];
                snprintf(prefix, sizeof prefix, "prefill_%d_b%d", lens[i], batches[j]);
                check_latency_set(&r, prefix, lens[i] * batches[j]);
            }
        check_latency_set(&r, "decode", 2);
        double ttft, peak, kv, weight;
        if (metric_ok(&r, "ttft_ms", &ttft)) test_expect(ttft > 0, "ttft 0");
        if (metric_ok(&r, "peak_rss_bytes", &peak)) test_expect(peak > 1 << 20, "peak RSS %g", peak);
        if (metric_ok(&r, "kv_bytes", &kv)) test_expect(kv == (double)sb_kv_bytes(m, 2 * (8 + 4)), "kv %g", kv);
        if (metric_ok(&r, "weight_bytes", &weight))
            test_expect(weight == (double)sb_weight_bytes(m), "weight %g", weight);
        for (int i = 0; i < r.n_metrics; i++)
            test_expect(r.metrics[i].direction != SB_NO_DIRECTION, "%s has no direction", r.metrics[i].name);
        test_expect(strncmp(r.protocol, "speed:prefill=8,16:batch=1,2:logits=all:decode=4@8:", 51) == 0 &&
                        strstr(r.protocol, ":iters>=3:min_s=0.05:threads=2"),
                    "protocol '%s'", r.protocol);
        const cJSON *dec = cJSON_GetObjectItem(r.details, "decode");
        const cJSON *steps = cJSON_GetObjectItem(dec, "steps");
        test_expect(cJSON_IsNumber(steps) && steps->valuedouble >= 3 * 4, "decode steps missing or < 12");
        test_expect(cJSON_GetObjectItem(r.details, "host") && cJSON_GetObjectItem(r.details, "peak_rss_method"),
                    "details lack host or peak_rss_method");
    }
    sb_result_clear(&r);
    test_end();
}

static void test_last_logits(const sb_model *m, sb_pool *pool) {
    test_begin("speed_last_logits_and_min_duration");
    static const char *const args[] = {"prompt_lengths=16", "logits=last", "decode_prompt=4", "new_tokens=2",
                                       "warmup=0",          "iterations=1", "duration=0.1"};
    sb_task_result r;
    sb_err err = {0};
    double t0 = sb_wall_seconds();
    if (test_expect(run_speed(m, pool, args, 7, &r, &err) == SB_OK, "%s", err.msg)) {
        /* one iteration is not enough: each measurement must also last 0.1 s */
        test_expect(sb_wall_seconds() - t0 >= 0.2, "finished in %.3f s", sb_wall_seconds() - t0);
        const cJSON *pre = cJSON_GetArrayItem(cJSON_GetObjectItem(r.details, "prefill"), 0);
        const cJSON *runs = cJSON_GetObjectItem(pre, "runs");
        test_expect(cJSON_IsNumber(runs) && runs->valuedouble > 1, "prefill ran once despite duration");
        test_expect(strstr(r.protocol, ":logits=last:") != NULL, "protocol '%s'", r.protocol);
        check_latency_set(&r, "prefill_16_b1", 16);
    }
    sb_result_clear(&r);
    test_end();
}

static void expect_refused(const sb_model *m, sb_pool *pool, const char *case_name, const char *arg,
                           const char *param) {
    test_begin(case_name);
    const char *args[] = {arg, "iterations=1", "duration=0", "warmup=0", "new_tokens=1", "decode_prompt=4"};
    sb_task_result r;
    sb_err err = {0};
    int rc = run_speed(m, pool, args, 6, &r, &err);
    test_expect(rc == SB_EINPUT, "'%s' gave status %d (%s)", arg, rc, err.msg);
    test_expect(strstr(err.msg, param) != NULL, "message '%s' does not name %s", err.msg, param);
    sb_result_clear(&r);
    test_end();
}

static void test_bad_params(const sb_model *m, sb_pool *pool) {
    expect_refused(m, pool, "speed_refuses_prompt_length_0", "prompt_lengths=0", "prompt_lengths");
    expect_refused(m, pool, "speed_refuses_empty_batch_entry", "batch_sizes=1,,2", "batch_sizes");
    expect_refused(m, pool, "speed_refuses_batch_separator", "batch_sizes=1;2", "batch_sizes");
    expect_refused(m, pool, "speed_refuses_batch_trailing_comma", "batch_sizes=1,", "batch_sizes");
    expect_refused(m, pool, "speed_refuses_batch_text", "batch_sizes=one", "batch_sizes");
    expect_refused(m, pool, "speed_refuses_prompt_beyond_context", "prompt_lengths=65", "prompt_lengths");
    expect_refused(m, pool, "speed_refuses_too_many_configs", "prompt_lengths=1,2,3,4,5,6,7,8", "prompt_lengths");
    expect_refused(m, pool, "speed_refuses_iterations_0", "iterations=0", "iterations");
}

/* Full-sequence tokens/s of `slimbench bench` (its "full sequence" line), or -1. */
static double bench_tokens_per_s(void) {
    const char *bin = getenv("SB_SLIMBENCH") ? getenv("SB_SLIMBENCH") : "./slimbench";
    char cmd[512], line[512];
    snprintf(cmd, sizeof cmd, "%s bench --decode 1 --reps 3", bin);
    FILE *f = popen(cmd, "r");
    double rate = -1;
    while (f && fgets(line, sizeof line, f)) {
        const char *colon = strstr(line, "full sequence");
        if (colon && (colon = strchr(line, ':'))) sscanf(colon + 1, "%lf", &rate);
    }
    if (f) pclose(f);
    return rate;
}

static void test_vs_bench(sb_pool *pool) {
    if (!getenv("SB_SPEED_VS_BENCH")) return; /* about a minute on 2 cores: opt-in */
    test_begin("speed_prefill_matches_bench");
    /* cmd_bench.c's default shape, with room for 512 + 1 positions */
    sb_random_shape shape = {.n_vocab = 50257, .d_model = 576, .n_layer = 30, .n_head = 9, .n_kv_head = 3,
                             .ff = 1536, .max_positions = 513};
    sb_model *m = NULL;
    sb_err err = {0};
    static const char *const args[] = {"prompt_lengths=512", "batch_sizes=1", "decode_prompt=1", "new_tokens=1",
                                       "warmup=1", "iterations=5", "duration=0"};
    sb_task_result r = {0};
    if (test_expect(sb_model_new_random(&shape, 1, &m, &err) == SB_OK, "%s", err.msg) &&
        test_expect(run_speed(m, pool, args, 7, &r, &err) == SB_OK, "%s", err.msg)) {
        double ours = sb_result_find(&r, "prefill_512_b1_tokens_per_s")->value;
        sb_model_free(m); /* the bench builds its own copy: do not hold two */
        m = NULL;
        double bench = bench_tokens_per_s();
        printf("# prefill 512 b1: speed task %.1f tokens/s (mean), slimbench bench %.1f tokens/s (best of 3)\n", ours,
               bench);
        test_expect(bench > 0 && fabs(ours - bench) <= 0.10 * bench, "speed %.1f vs bench %.1f tokens/s", ours, bench);
    }
    sb_result_clear(&r);
    sb_model_free(m);
    test_end();
}

int main(void) {
    sb_random_shape shape = {.n_vocab = 256, .d_model = 64, .n_layer = 2, .n_head = 4, .n_kv_head = 2, .ff = 128,
                             .max_positions = 64};
    sb_model *m = NULL;
    sb_pool *pool = NULL;
    sb_err err = {0};
    if (sb_model_new_random(&shape, 1, &m, &err) || sb_pool_new(2, &pool, &err)) {
        printf("FAIL speed_setup: %s\n", err.msg);
        return 1;
    }
    test_small_run(m, pool);
    test_last_logits(m, pool);
    test_bad_params(m, pool);
    test_vs_bench(pool);
    sb_model_free(m);
    sb_pool_free(pool);
    return test_status();
}

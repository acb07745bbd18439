/* speed.c - the "speed" task: latency, throughput and memory of the model
 * on this machine, measured the way optimum-benchmark measures them.
 *
 * Method (optimum-benchmark's inference scenario): every configuration is
 * first run `warmup` times untimed (caches, page faults, the pool's
 * workers waking), then timed over and over until BOTH at least
 * `iterations` runs AND at least `duration` seconds have gone by, so a
 * fast configuration gets many samples and a slow one still gets enough.
 *
 * Prefill: one forward pass over `batch` prompts of `len` tokens from an
 * empty cache; latency is the pass, throughput batch*len/mean latency.
 * With logits=all the pass computes the logits of every prompt position,
 * as `slimbench bench` and a plain full-sequence forward do; with
 * logits=last only the last position's, as a generation engine does.
 *
 * Decode: a generation of `new_tokens` tokens after a `decode_prompt`-token
 * prompt, with the KV cache.  The prompt's forward pass, up to and
 * including the choice of the first new token, is the time to first token.
 * Then each step feeds the token just chosen and picks the next one by
 * greedy argmax of its logits (deterministic, no sampling; the argmax is
 * part of the step, as in a real generation loop).  Per-token latency is
 * one step; decode throughput is decode_batch tokens per mean step.
 *
 * Prompts are random token ids in the vocabulary drawn from the run seed,
 * so no tokenizer is needed and the same seed times the same tokens.
 * Memory: peak RSS during the task (the kernel's high-water mark reset at
 * the start where allowed; the method is recorded), the weights' exact
 * storage bytes, and the KV cache at the decode context. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "measure.h"
#include "plugin.h"

enum {
    MAX_LIST = 8,          /* entries of prompt_lengths / batch_sizes */
    MAX_TOKENS = 1 << 20,  /* any one length */
    PREFILL_METRICS = 7,   /* tokens_per_s and six latency figures per configuration */
    OTHER_METRICS = 11,    /* decode (7), ttft, peak_rss, kv, weight */
};

static const sb_param_spec speed_params[] = {
    {"prompt_lengths", SB_PARAM_STRING, "128,512", 0, -1, NULL, "prefill prompt lengths, comma-separated"},
    {"batch_sizes", SB_PARAM_STRING, "1", 0, -1, NULL, "prefill batch sizes (sequences per pass), comma-separated"},
    {"logits", SB_PARAM_STRING, "all", 0, -1, "all|last",
     "prompt positions whose logits a prefill computes: all (a full-sequence forward) or last (a generation engine)"},
    {"decode_prompt", SB_PARAM_INT, "128", 1, MAX_TOKENS, NULL, "prompt tokens before decoding"},
    {"new_tokens", SB_PARAM_INT, "64", 1, MAX_TOKENS, NULL, "tokens decoded one at a time"},
    {"decode_batch", SB_PARAM_INT, "1", 1, 4096, NULL, "sequences decoded together"},
    {"warmup", SB_PARAM_INT, "2", 0, 1000, NULL, "untimed runs before each measurement"},
    {"iterations", SB_PARAM_INT, "10", 1, 1e6, NULL, "at least this many timed runs per measurement"},
    {"duration", SB_PARAM_FLOAT, "3", 0, 3600, NULL, "and at least this many seconds of timed runs"},
    {"pin", SB_PARAM_BOOL, "false", 0, -1, NULL, "pin the pool's threads to cores (lasts for the rest of the run)"},
};

typedef struct speed_config {
    int lens[MAX_LIST], n_lens;
    int batches[MAX_LIST], n_batches;
    bool logits_all;
    int decode_prompt, new_tokens, decode_batch;
    int warmup, iterations;
    double duration;
    bool pin;
} speed_config;

/* ---- parameters ---- */

/* "128, 512" -> {128, 512}: positive integers separated by commas. */
static int parse_int_list(const char *text, const char *name, int max_value, int *out, int *n, sb_err *err) {
    *n = 0;
    const char *c = text;
    for (;;) {
        char *end;
        while (*c == ' ') c++;
        long v = strtol(c, &end, 10);
        if (end == c || v < 1 || v > max_value)
            return sb_err_set(err, SB_EINPUT, "speed: '%s' must be integers in [1, %d] separated by commas, not '%s'",
                              name, max_value, text);
        if (*n == MAX_LIST) return sb_err_set(err, SB_EINPUT, "speed: '%s' has more than %d entries", name, MAX_LIST);
        out[(*n)++] = (int)v;
        for (c = end; *c == ' '; c++) {}
        if (*c == 0) return SB_OK;
        if (*c++ != ',')
            return sb_err_set(err, SB_EINPUT, "speed: '%s' must be integers separated by commas, not '%s'", name, text);
    }
}

static int check_context(const sb_model *m, int positions, const char *what, sb_err *err) {
    if (m->max_positions > 0 && positions > m->max_positions)
        return sb_err_set(err, SB_EINPUT, "speed: '%s' needs %d positions, the model has %d", what, positions,
                          m->max_positions);
    return SB_OK;
}

static int read_config(const sb_model *m, const sb_params *p, speed_config *c, sb_err *err) {
    memset(c, 0, sizeof *c);
    int rc = parse_int_list(sb_param_str(p, "prompt_lengths"), "prompt_lengths", MAX_TOKENS, c->lens, &c->n_lens, err);
    if (!rc) rc = parse_int_list(sb_param_str(p, "batch_sizes"), "batch_sizes", 4096, c->batches, &c->n_batches, err);
    if (rc) return rc;
    c->logits_all = strcmp(sb_param_str(p, "logits"), "all") == 0;
    c->decode_prompt = (int)sb_param_num(p, "decode_prompt");
    c->new_tokens = (int)sb_param_num(p, "new_tokens");
    c->decode_batch = (int)sb_param_num(p, "decode_batch");
    c->warmup = (int)sb_param_num(p, "warmup");
    c->iterations = (int)sb_param_num(p, "iterations");
    c->duration = sb_param_num(p, "duration");
    c->pin = sb_param_bool(p, "pin");
    if (c->n_lens * c->n_batches * PREFILL_METRICS + OTHER_METRICS > SB_MAX_METRICS)
        return sb_err_set(err, SB_EINPUT, "speed: 'prompt_lengths' x 'batch_sizes' gives %d configurations, at most %d fit",
                          c->n_lens * c->n_batches, (SB_MAX_METRICS - OTHER_METRICS) / PREFILL_METRICS);
    for (int i = 0; !rc && i < c->n_lens; i++) rc = check_context(m, c->lens[i], "prompt_lengths", err);
    if (!rc) rc = check_context(m, c->decode_prompt + c->new_tokens, "decode_prompt + new_tokens", err);
    return rc;
}

static void list_text(const int *v, int n, char *out, size_t size) {
    size_t used = 0;
    out[0] = 0;
    for (int i = 0; i < n && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%d", i ? "," : "", v[i]);
}

static int write_protocol(const speed_config *c, int threads, bool pinned, sb_task_result *out, sb_err *err) {
    char lens[128], batches[128];
    list_text(c->lens, c->n_lens, lens, sizeof lens);
    list_text(c->batches, c->n_batches, batches, sizeof batches);
    int n = snprintf(out->protocol, sizeof out->protocol,
                     "speed:prefill=%s:batch=%s:logits=%s:decode=%d@%d:decode_batch=%d:warmup=%d:iters>=%d:min_s=%g:"
                     "threads=%d%s",
                     lens, batches, c->logits_all ? "all" : "last", c->new_tokens, c->decode_prompt, c->decode_batch,
                     c->warmup, c->iterations, c->duration, threads, pinned ? ":pinned" : "");
    if (n < 0 || (size_t)n >= sizeof out->protocol)
        return sb_err_set(err, SB_EINTERNAL, "speed: protocol string longer than %zu characters", sizeof out->protocol);
    return SB_OK;
}

/* ---- samples and statistics ---- */

typedef struct sample_set {
    double *v;  /* seconds */
    int n, cap;
} sample_set;

static int sample_push(sample_set *s, double x, sb_err *err) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        double *v = realloc(s->v, sizeof(double) * (size_t)cap);
        if (!v) return sb_err_set(err, SB_EINTERNAL, "out of memory (%d samples)", cap);
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return SB_OK;
}

typedef struct latency_stats {
    int n;
    double mean, stdev, p50, p90, p95, p99;  /* milliseconds */
} latency_stats;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Linear interpolation between closest ranks (numpy's default), on sorted v. */
static double percentile(const double *sorted, int n, double q) {
    double rank = q / 100 * (n - 1);
    int lo = (int)floor(rank);
    int hi = lo + 1 < n ? lo + 1 : lo;
    return sorted[lo] + (rank - lo) * (sorted[hi] - sorted[lo]);
}

/* Sorts the samples in place (their order is not needed afterwards). */
static latency_stats summarize(sample_set *s) {
    latency_stats st = {.n = s->n};
    if (s->n == 0) return st;
    qsort(s->v, (size_t)s->n, sizeof(double), cmp_double);
    double sum = 0, sq = 0;
    for (int i = 0; i < s->n; i++) sum += s->v[i];
    st.mean = sum / s->n;
    for (int i = 0; i < s->n; i++) sq += (s->v[i] - st.mean) * (s->v[i] - st.mean);
    st.stdev = s->n > 1 ? sqrt(sq / (s->n - 1)) : 0;
    st.p50 = percentile(s->v, s->n, 50);
    st.p90 = percentile(s->v, s->n, 90);
    st.p95 = percentile(s->v, s->n, 95);
    st.p99 = percentile(s->v, s->n, 99);
    double *fields[] = {&st.mean, &st.stdev, &st.p50, &st.p90, &st.p95, &st.p99};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) *fields[i] *= 1000;
    return st;
}

/* "<prefix>_tokens_per_s" (tokens_per_run / mean latency) and "<prefix>_latency_ms_*". */
static int add_latency_metrics(sb_task_result *out, const char *prefix, const latency_stats *st, double tokens_per_run,
                               sb_err *err) {
    char name[64];
    double se = st->n > 1 ? st->stdev / sqrt(st->n) : NAN; /* standard error of the mean */
    double rate = tokens_per_run / (st->mean / 1000);
    snprintf(name, sizeof name, "%s_tokens_per_s", prefix);
    int rc = sb_result_add(out, name, rate, rate * se / st->mean, SB_HIGHER_IS_BETTER, "tokens/s", err);
    const struct { const char *suffix; double value, se; } lat[] = {
        {"mean", st->mean, se}, {"p50", st->p50, NAN}, {"p90", st->p90, NAN},
        {"p95", st->p95, NAN},  {"p99", st->p99, NAN}, {"stdev", st->stdev, NAN},
    };
    for (size_t i = 0; !rc && i < sizeof lat / sizeof lat[0]; i++) {
        snprintf(name, sizeof name, "%s_latency_ms_%s", prefix, lat[i].suffix);
        rc = sb_result_add(out, name, lat[i].value, lat[i].se, SB_LOWER_IS_BETTER, "ms", err);
    }
    return rc;
}

/* ---- deterministic prompts ---- */

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* tokens[seq * len + t]: a token id from (seed, stream, seq, t) alone. */
static void fill_prompts(int32_t *tokens, int n_seq, int len, uint64_t seed, uint64_t stream, int n_vocab) {
    uint64_t base = splitmix64(seed ^ splitmix64(stream));
    for (int64_t i = 0; i < (int64_t)n_seq * len; i++)
        tokens[i] = (int32_t)(splitmix64(base + (uint64_t)i) % (uint64_t)n_vocab);
}

/* ---- the measurement loop ---- */

/* One run of a measurement; records its timings only when `timed`. */
typedef int (*run_once_fn)(void *state, bool timed, sb_err *err);

/* Warm-up runs, then timed runs until both the count and the time are reached. */
static int repeat_runs(const speed_config *c, run_once_fn run, void *state, int *n_runs, sb_err *err) {
    int rc = SB_OK;
    for (int i = 0; !rc && i < c->warmup; i++) rc = run(state, false, err);
    double t0 = sb_wall_seconds();
    *n_runs = 0;
    while (!rc && (*n_runs < c->iterations || sb_wall_seconds() - t0 < c->duration)) {
        rc = run(state, true, err);
        ++*n_runs;
    }
    return rc;
}

/* ---- prefill ---- */

typedef struct prefill_state {
    sb_session *s;
    const int32_t *tokens;
    int len, logits_from;
    float *logits;
    sample_set lat;
} prefill_state;

static int prefill_once(void *raw, bool timed, sb_err *err) {
    prefill_state *st = raw;
    sb_session_reset(st->s);
    double t0 = sb_wall_seconds();
    int rc = sb_session_forward(st->s, st->tokens, st->len, st->logits_from, st->logits, err);
    double t = sb_wall_seconds() - t0;
    return !rc && timed ? sample_push(&st->lat, t, err) : rc;
}

typedef struct task_env {
    const sb_model *m;
    const speed_config *c;
    const sb_run_ctx *ctx;
    sb_task_result *out;
    sb_peak_tracker *peak;
} task_env;

static cJSON *config_details(int len, int batch, int runs, double seconds, uint64_t kv) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "prompt_len", len);
    cJSON_AddNumberToObject(o, "batch", batch);
    cJSON_AddNumberToObject(o, "runs", runs);
    cJSON_AddNumberToObject(o, "timed_s", seconds);
    cJSON_AddNumberToObject(o, "kv_bytes", (double)kv);
    return o;
}

static int measure_prefill(const task_env *e, int len, int batch, cJSON *details, sb_err *err) {
    const sb_model *m = e->m;
    prefill_state st = {.len = len, .logits_from = e->c->logits_all ? 0 : len - 1};
    int64_t logit_rows = (int64_t)batch * (len - st.logits_from);
    int32_t *tokens = sb_malloc(err, sizeof(int32_t) * (size_t)batch * (size_t)len);
    st.logits = tokens ? sb_malloc(err, sizeof(float) * (size_t)logit_rows * (size_t)m->n_vocab) : NULL;
    int rc = st.logits ? sb_session_new(m, e->ctx->pool, batch, len, len, &st.s, err) : SB_EINTERNAL;
    if (!rc) {
        fill_prompts(tokens, batch, len, e->ctx->seed, (uint64_t)len << 16 | (uint64_t)batch, m->n_vocab);
        st.tokens = tokens;
        int runs = 0;
        double t0 = sb_wall_seconds();
        rc = repeat_runs(e->c, prefill_once, &st, &runs, err);
        double seconds = sb_wall_seconds() - t0;
        sb_peak_sample(e->peak);
        latency_stats ls = summarize(&st.lat);
        char prefix[40];
        snprintf(prefix, sizeof prefix, "prefill_%d_b%d", len, batch);
        if (!rc) rc = add_latency_metrics(e->out, prefix, &ls, (double)batch * len, err);
        cJSON_AddItemToArray(details, config_details(len, batch, runs, seconds, sb_kv_bytes(m, (int64_t)batch * len)));
    }
    sb_session_free(st.s);
    free(st.lat.v);
    free(st.logits);
    free(tokens);
    return rc;
}

/* ---- decode ---- */

typedef struct decode_state {
    sb_session *s;
    const sb_model *m;
    const int32_t *prompt;
    int prompt_len, logits_from, n_seq, new_tokens;
    int32_t *next;       /* [n_seq] the tokens chosen last */
    float *logits;       /* prompt logits, large enough for the decode steps too */
    sample_set ttft, step;
} decode_state;

static int argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

/* next[seq] = argmax of the last logits row of each sequence (rows_per_seq rows each). */
static void choose_tokens(decode_state *st, int rows_per_seq) {
    int64_t V = st->m->n_vocab;
    for (int q = 0; q < st->n_seq; q++)
        st->next[q] = argmax(st->logits + ((int64_t)q * rows_per_seq + rows_per_seq - 1) * V, (int)V);
}

static int decode_once(void *raw, bool timed, sb_err *err) {
    decode_state *st = raw;
    sb_session_reset(st->s);
    double t0 = sb_wall_seconds();
    int rc = sb_session_forward(st->s, st->prompt, st->prompt_len, st->logits_from, st->logits, err);
    if (!rc) choose_tokens(st, st->prompt_len - st->logits_from);
    double ttft = sb_wall_seconds() - t0;
    if (!rc && timed) rc = sample_push(&st->ttft, ttft, err);
    for (int i = 0; !rc && i < st->new_tokens; i++) {
        double s0 = sb_wall_seconds();
        rc = sb_session_forward(st->s, st->next, 1, 0, st->logits, err);
        if (!rc) choose_tokens(st, 1);
        double t = sb_wall_seconds() - s0;
        if (!rc && timed) rc = sample_push(&st->step, t, err);
    }
    return rc;
}

static cJSON *decode_details(const decode_state *st, const latency_stats *ttft, int runs, uint64_t kv) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "prompt_len", st->prompt_len);
    cJSON_AddNumberToObject(o, "new_tokens", st->new_tokens);
    cJSON_AddNumberToObject(o, "batch", st->n_seq);
    cJSON_AddNumberToObject(o, "runs", runs);
    cJSON_AddNumberToObject(o, "steps", st->step.n);
    cJSON_AddStringToObject(o, "token_choice", "greedy argmax of the logits, no sampling");
    cJSON_AddNumberToObject(o, "ttft_ms_p50", ttft->p50);
    cJSON_AddNumberToObject(o, "ttft_ms_p90", ttft->p90);
    cJSON_AddNumberToObject(o, "ttft_ms_stdev", ttft->stdev);
    cJSON_AddNumberToObject(o, "kv_bytes", (double)kv);
    return o;
}

static int measure_decode(const task_env *e, cJSON *details, sb_err *err) {
    const sb_model *m = e->m;
    const speed_config *c = e->c;
    int P = c->decode_prompt, B = c->decode_batch, ctx_len = P + c->new_tokens;
    decode_state st = {.m = m, .prompt_len = P, .logits_from = c->logits_all ? 0 : P - 1, .n_seq = B,
                       .new_tokens = c->new_tokens};
    int32_t *prompt = sb_malloc(err, sizeof(int32_t) * (size_t)B * (size_t)P);
    st.next = prompt ? sb_malloc(err, sizeof(int32_t) * (size_t)B) : NULL;
    st.logits = st.next ? sb_malloc(err, sizeof(float) * (size_t)B * (size_t)(P - st.logits_from) * (size_t)m->n_vocab)
                        : NULL;
    int rc = st.logits ? sb_session_new(m, e->ctx->pool, B, ctx_len, P, &st.s, err) : SB_EINTERNAL;
    if (!rc) {
        fill_prompts(prompt, B, P, e->ctx->seed, 0xDEC0DEull, m->n_vocab);
        st.prompt = prompt;
        int runs = 0;
        rc = repeat_runs(c, decode_once, &st, &runs, err);
        sb_peak_sample(e->peak);
        uint64_t kv = sb_kv_bytes(m, (int64_t)B * ctx_len);
        latency_stats step = summarize(&st.step), ttft = summarize(&st.ttft);
        if (!rc) rc = add_latency_metrics(e->out, "decode", &step, B, err);
        if (!rc) rc = sb_result_add(e->out, "ttft_ms", ttft.mean, ttft.n > 1 ? ttft.stdev / sqrt(ttft.n) : NAN,
                                    SB_LOWER_IS_BETTER, "ms", err);
        if (!rc) rc = sb_result_add(e->out, "kv_bytes", (double)kv, NAN, SB_LOWER_IS_BETTER, "bytes", err);
        cJSON_AddItemToObject(details, "decode", decode_details(&st, &ttft, runs, kv));
    }
    sb_session_free(st.s);
    free(st.step.v);
    free(st.ttft.v);
    free(st.logits);
    free(st.next);
    free(prompt);
    return rc;
}

/* ---- the task ---- */

static int measure_all(const task_env *e, cJSON *details, sb_err *err) {
    const speed_config *c = e->c;
    cJSON *prefill = cJSON_AddArrayToObject(details, "prefill");
    int total = c->n_lens * c->n_batches + 1, done = 0, rc = SB_OK;
    for (int i = 0; !rc && i < c->n_lens; i++)
        for (int j = 0; !rc && j < c->n_batches; j++) {
            rc = measure_prefill(e, c->lens[i], c->batches[j], prefill, err);
            sb_run_progress(e->ctx, ++done, total, "measurements");
        }
    if (!rc) rc = measure_decode(e, details, err);
    sb_run_progress(e->ctx, total, total, "measurements");
    return rc;
}

/* Peak RSS, weight bytes and the provenance of the numbers into the result. */
static int finish_memory(const task_env *e, cJSON *details, sb_err *err) {
    int64_t peak = sb_peak_end(e->peak);
    int rc = sb_result_add(e->out, "peak_rss_bytes", (double)peak, NAN, SB_LOWER_IS_BETTER, "bytes", err);
    if (!rc) rc = sb_result_add(e->out, "weight_bytes", (double)sb_weight_bytes(e->m), NAN, SB_LOWER_IS_BETTER, "bytes", err);
    cJSON_AddStringToObject(details, "peak_rss_method", sb_peak_method_name(e->peak->method));
    int64_t device = sb_measure_device_peak();
    if (device >= 0) cJSON_AddNumberToObject(details, "device_peak_bytes", (double)device);
    else cJSON_AddNullToObject(details, "device_peak_bytes");
    return rc;
}

static int speed_run(const sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_task_result *out, sb_err *err) {
    speed_config c;
    int rc = read_config(m, p, &c, err);
    if (!rc && c.pin) rc = sb_pool_pin(ctx->pool, err);
    if (rc) return rc;
    sb_host host;
    sb_host_describe(ctx->pool, &host);
    if ((rc = write_protocol(&c, host.threads, host.pinned, out, err))) return rc;
    if (!out->details && !(out->details = cJSON_CreateObject())) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    cJSON_AddItemToObject(out->details, "host", sb_host_to_json(&host));

    sb_peak_tracker peak;
    sb_phase phase;
    sb_peak_begin(&peak);
    sb_measure_device_reset_peak();
    sb_phase_start(&phase);
    task_env e = {m, &c, ctx, out, &peak};
    rc = measure_all(&e, out->details, err);
    sb_phase_stop(&phase);
    if (!rc) rc = finish_memory(&e, out->details, err);
    cJSON_AddNumberToObject(out->details, "task_wall_s", phase.wall_s);
    cJSON_AddNumberToObject(out->details, "task_cpu_s", phase.cpu_s);
    return rc;
}

const sb_task sb_task_speed = {
    .abi = SB_PLUGIN_ABI,
    .name = "speed",
    .summary = "prefill and decode latency percentiles, throughput, time to first token, peak memory "
               "(optimum-benchmark's method)",
    /* no paper: the method is optimum-benchmark's (Hugging Face), a tool */
    .params = speed_params,
    .n_params = (int)(sizeof speed_params / sizeof speed_params[0]),
    .run = speed_run,
};

/* kld.c - the "kld" task: llama-perplexity --kl-divergence (PROTOCOLS.md §3).
 *
 * The reference (dense) model's log-probabilities over the llamacpp chunks
 * are stored once in llama.cpp's --kl-divergence-base file format, so a base
 * file written by llama.cpp can be read here and ours by llama.cpp:
 *
 *   "_logits_", int32 n_ctx, int32 n_vocab, int32 n_chunk,
 *   int32 tokens[n_chunk * n_ctx],
 *   per chunk, n_ctx-1-n_ctx/2 rows of nv = 2*ceil(n_vocab/2)+4 uint16:
 *   float scale, float minlp, n_vocab codes (padded to even length);
 *   lp = scale * code + minlp.
 *
 * Without a `base` parameter the file lives under ctx->cache_dir, named by
 * the reference model's id, the data hash, n_ctx and chunks.  The reference
 * run writes it and compares itself with it in the same pass (one forward
 * pass, KLD ~0); any other model reads it and fails clearly if the dense
 * run has not happened.  The arithmetic of every row follows llama.cpp's
 * float/double mix so the numbers agree to its printed digits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../datasets/text_dataset.h"
#include "plugin.h"

/* Logit rows held at once: 2^25 floats (128 MiB) whatever the vocabulary. */
enum { LOGIT_BUDGET_FLOATS = 1 << 25 };

static const sb_param_spec kld_params[] = {
    {"data", SB_PARAM_STRING, "builtin", 1, 0, NULL, "text file (the same one the reference run used)"},
    {"format", SB_PARAM_STRING, "raw", 1, 0, "raw|jsonl", "raw bytes, or one JSON object per line"},
    {"field", SB_PARAM_STRING, "text", 1, 0, NULL, "JSONL field holding the text"},
    {"n_ctx", SB_PARAM_INT, "512", 4, 1 << 20, NULL, "chunk length (-c)"},
    {"chunks", SB_PARAM_INT, "0", 0, 1e9, NULL, "at most this many chunks (0: all)"},
    {"batch", SB_PARAM_INT, "1", 1, 1024, NULL, "chunks per forward pass"},
    {"bos", SB_PARAM_STRING, "auto", 1, 0, "auto|on|off", "BOS over position 0 of every chunk; auto: the tokenizer's add-BOS flag"},
    {"base", SB_PARAM_STRING, "", 1, 0, NULL, "existing llama.cpp --kl-divergence-base file to compare with (instead of the cache)"},
};

/* ---- the base file ---------------------------------------------------------- */

typedef struct kld_base {
    int32_t n_ctx, n_vocab, n_chunk;
    int32_t *tokens;     /* [n_chunk * n_ctx] */
    FILE *f;             /* positioned at the first row when reading */
    int nv;              /* uint16 words per row */
} kld_base;

static int row_words(int n_vocab) { return 2 * ((n_vocab + 1) / 2) + 4; }

static int base_open(const char *path, kld_base *b, sb_err *err) {
    memset(b, 0, sizeof *b);
    b->f = fopen(path, "rb");
    if (!b->f) return sb_err_set(err, SB_EINPUT, "%s: cannot open the KL-divergence base file", path);
    char magic[8];
    int32_t hdr[3];
    if (fread(magic, 1, 8, b->f) != 8 || memcmp(magic, "_logits_", 8) != 0 || fread(hdr, sizeof hdr[0], 3, b->f) != 3)
        return sb_err_set(err, SB_EINPUT, "%s: not a llama.cpp log-probability file (no \"_logits_\" header)", path);
    b->n_ctx = hdr[0], b->n_vocab = hdr[1], b->n_chunk = hdr[2];
    if (b->n_ctx < 4 || b->n_vocab < 1 || b->n_chunk < 1)
        return sb_err_set(err, SB_EINPUT, "%s: impossible header n_ctx=%d n_vocab=%d n_chunk=%d", path, b->n_ctx, b->n_vocab,
                          b->n_chunk);
    b->nv = row_words(b->n_vocab);
    size_t nt = (size_t)b->n_chunk * (size_t)b->n_ctx;
    b->tokens = sb_malloc(err, nt * sizeof(int32_t));
    if (!b->tokens) return SB_EINTERNAL;
    if (fread(b->tokens, sizeof(int32_t), nt, b->f) != nt)
        return sb_err_set(err, SB_EINPUT, "%s: truncated (tokens of %d chunks expected)", path, b->n_chunk);
    struct stat st;
    long rows = (long)(b->n_ctx - 1 - b->n_ctx / 2) * b->n_chunk;
    long want = 20 + (long)nt * 4 + rows * b->nv * 2;
    if (fstat(fileno(b->f), &st) == 0 && st.st_size < want)
        return sb_err_set(err, SB_EINPUT, "%s: truncated (%ld bytes, %ld expected)", path, (long)st.st_size, want);
    return SB_OK;
}

static void base_close(kld_base *b) {
    if (b->f) fclose(b->f);
    free(b->tokens);
    memset(b, 0, sizeof *b);
}

static int base_write_header(FILE *f, int32_t n_ctx, int32_t n_vocab, int32_t n_chunk, const int32_t *tokens) {
    int32_t hdr[3] = {n_ctx, n_vocab, n_chunk};
    size_t nt = (size_t)n_chunk * (size_t)n_ctx;
    return fwrite("_logits_", 1, 8, f) == 8 && fwrite(hdr, 4, 3, f) == 3 && fwrite(tokens, 4, nt, f) == nt ? 0 : -1;
}

/* ---- per-row arithmetic (llama.cpp perplexity.cpp, log_softmax overloads) -- */

/* llama.cpp's nearest_int: round half to even through the float mantissa. */
static int nearest_int(float fval) {
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* Encodes one logit row into nv words (scale, minlp, codes); returns its NLL of tok. */
static double encode_row(int n_vocab, const float *l, uint16_t *out, int tok) {
    float mx = l[0], mn = l[0];
    for (int i = 1; i < n_vocab; i++) {
        mx = l[i] > mx ? l[i] : mx;
        mn = l[i] < mn ? l[i] : mn;
    }
    mn = mn > mx - 16 ? mn : mx - 16;
    double sum_exp = 0;
    for (int i = 0; i < n_vocab; i++) sum_exp += expf(l[i] - mx);
    const float lse = (float)log(sum_exp);
    const float minlp = mn - mx - lse, scale = (mx - mn) / 65535.f;
    memcpy(out, &scale, 4);
    memcpy(out + 2, &minlp, 4);
    uint16_t *code = out + 4;
    memset(code, 0, sizeof(uint16_t) * (size_t)(row_words(n_vocab) - 4));
    if (scale != 0) {
        const float inv = 1 / scale;
        for (int i = 0; i < n_vocab; i++) code[i] = (uint16_t)(l[i] > mn ? nearest_int(inv * (l[i] - mn)) : 0);
    }
    return mx + lse - l[tok];
}

typedef struct kld_row {
    double nll, nll_base, kld;
    float dp;
    bool same_top;
} kld_row;

/* Compares one row of model logits with one base row (KL(base || model)). */
static kld_row compare_row(int n_vocab, const float *l, const uint16_t *base, int tok) {
    float mx = l[0];
    int imax = 0;
    for (int i = 1; i < n_vocab; i++)
        if (l[i] > mx) mx = l[i], imax = i;
    double sum_exp = 0;
    for (int i = 0; i < n_vocab; i++) sum_exp += expf(l[i] - mx);
    const float lse = (float)log(sum_exp);
    float scale, minlp;
    memcpy(&scale, base, 4);
    memcpy(&minlp, base + 2, 4);
    const uint16_t *code = base + 4;
    kld_row r;
    const float nll = mx + lse - l[tok], nll_base = -(scale * code[tok] + minlp);
    r.nll = nll;
    r.nll_base = nll_base;
    const float norm = mx + lse;
    double sum = 0;
    int imax_base = -1;
    float lp_max = 0;
    for (int i = 0; i < n_vocab; i++) {
        const float lpb = scale * code[i] + minlp;
        if (i == 0 || lpb > lp_max) lp_max = lpb, imax_base = i;
        if (lpb > -16.f) sum += expf(lpb) * (lpb - l[i] + norm);
    }
    r.kld = sum;
    r.same_top = imax == imax_base;
    r.dp = expf(-nll) - expf(-nll_base);
    return r;
}

/* ---- running the chunks ------------------------------------------------------ */

typedef struct kld_run {
    const sb_model *m;
    const sb_run_ctx *ctx;
    int n_ctx, first, per, n_chunk, batch;
    int32_t bos;                 /* written over position 0 of every chunk, or -1 */
    const int32_t *tokens;       /* [n_chunk * n_ctx] */
    sb_session *wide, *narrow;
    int32_t *call_tokens;
    float *logits;
    int64_t rows_cap;
    uint16_t *base_rows;         /* rows of the chunks in flight: [batch * per * nv] */
    int nv;
    FILE *base_in, *base_out;    /* exactly one is set */
    kld_row *rows;               /* [n_chunk * per] */
} kld_run;

typedef struct rows_job {
    kld_run *r;
    int chunk0, n_seq, lo, n_pos;   /* positions lo..lo+n_pos-1 of chunks chunk0.. */
} rows_job;

static void row_task(void *arg, int task, int worker) {
    (void)worker;
    const rows_job *j = arg;
    kld_run *r = j->r;
    int q = task / j->n_pos, pos = j->lo + task % j->n_pos, k = pos - r->first;
    const float *l = r->logits + (int64_t)task * r->m->n_vocab;
    const int32_t tok = r->tokens[(int64_t)(j->chunk0 + q) * r->n_ctx + pos + 1];
    uint16_t *base = r->base_rows + ((int64_t)q * r->per + k) * r->nv;
    if (r->base_out) encode_row(r->m->n_vocab, l, base, tok);
    r->rows[(int64_t)(j->chunk0 + q) * r->per + k] = compare_row(r->m->n_vocab, l, base, tok);
}

static int run_chunks(kld_run *r, sb_session *s, int c0, int n, sb_err *err) {
    size_t words = (size_t)n * (size_t)r->per * (size_t)r->nv;
    if (r->base_in && fread(r->base_rows, sizeof(uint16_t), words, r->base_in) != words)
        return sb_err_set(err, SB_EINPUT, "KL-divergence base file: failed reading the log-probs of chunk %d", c0 + 1);
    const int L = r->n_ctx - 1;
    int step = (int)(r->rows_cap / n);
    sb_session_reset(s);
    for (int t0 = 0; t0 < L;) {
        int t1 = t0 < r->first ? r->first + step : t0 + step;
        if (t1 > L) t1 = L;
        int n_tok = t1 - t0, lf = t0 < r->first ? r->first - t0 : 0;
        for (int q = 0; q < n; q++)
            for (int t = t0; t < t1; t++) {
                int32_t v = r->tokens[(int64_t)(c0 + q) * r->n_ctx + t];
                r->call_tokens[(int64_t)q * n_tok + (t - t0)] = (t == 0 && r->bos >= 0) ? r->bos : v;
            }
        int rc = sb_session_forward(s, r->call_tokens, n_tok, lf, r->logits, err);
        if (rc) return rc;
        rows_job job = {r, c0, n, t0 + lf, n_tok - lf};
        if (job.n_pos > 0) sb_pool_run(r->ctx ? r->ctx->pool : NULL, row_task, &job, n * job.n_pos);
        t0 = t1;
    }
    if (r->base_out && fwrite(r->base_rows, sizeof(uint16_t), words, r->base_out) != words)
        return sb_err_set(err, SB_EINTERNAL, "KL-divergence base file: write failed");
    sb_run_progress(r->ctx, (double)(c0 + n) * r->per, (double)r->n_chunk * r->per, "tokens");
    return SB_OK;
}

static int run_all(kld_run *r, sb_err *err) {
    const int max_input = r->n_ctx - 1;
    r->nv = row_words(r->m->n_vocab);
    r->rows_cap = LOGIT_BUDGET_FLOATS / r->m->n_vocab;
    if (r->rows_cap < r->batch) r->rows_cap = r->batch;
    r->call_tokens = sb_malloc(err, sizeof(int32_t) * (size_t)r->batch * (size_t)max_input);
    r->logits = sb_malloc(err, sizeof(float) * (size_t)r->rows_cap * (size_t)r->m->n_vocab);
    r->base_rows = sb_malloc(err, sizeof(uint16_t) * (size_t)r->batch * (size_t)r->per * (size_t)r->nv);
    r->rows = sb_calloc(err, (size_t)r->n_chunk * (size_t)r->per, sizeof(kld_row));
    if (!r->call_tokens || !r->logits || !r->base_rows || !r->rows) return SB_EINTERNAL;
    sb_pool *pool = r->ctx ? r->ctx->pool : NULL;
    int rc = sb_session_new(r->m, pool, 1, max_input, max_input, &r->narrow, err);
    if (!rc && r->batch > 1) rc = sb_session_new(r->m, pool, r->batch, max_input, max_input, &r->wide, err);
    for (int c = 0; !rc && c < r->n_chunk;) {
        int n = r->wide && c + r->batch <= r->n_chunk ? r->batch : 1;
        rc = run_chunks(r, n > 1 ? r->wide : r->narrow, c, n, err);
        c += n;
    }
    return rc;
}

static void free_run(kld_run *r) {
    sb_session_free(r->wide);
    sb_session_free(r->narrow);
    free(r->call_tokens);
    free(r->logits);
    free(r->base_rows);
    free(r->rows);
}

/* ---- statistics (llama.cpp kl_divergence) --------------------------------------- */

typedef struct mean_unc {
    double mean, unc;
} mean_unc;

static mean_unc mean_and_uncertainty(double sum, double sum2, size_t n) {
    if (n < 1) return (mean_unc){0, 0};
    double f = sum / (double)n, df = sum2 / (double)n - f * f;
    return (mean_unc){f, df > 0 && n > 10 ? sqrt(df / (double)(n - 1)) : 0};
}

static double covariance(double sa, double sb, double sab, size_t n) {
    if (n < 10) return 0;
    return (sab / (double)n - (sa / (double)n) * (sb / (double)n)) / (double)(n - 1);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* llama.cpp's percentile, in float as it computes it. */
static float percentile(const float *v, size_t n, float fraction) {
    if (fraction <= 0) return v[0];
    if (fraction >= 1) return v[n - 1];
    float p = fraction * (float)(n - 1);
    size_t ip = (size_t)p;
    p -= (float)ip;
    return (1 - p) * v[ip] + p * v[ip + 1 < n ? ip + 1 : n - 1];
}

static float median(const float *v, size_t n) { return n % 2 == 0 ? 0.5f * (v[n / 2] + v[n / 2 - 1]) : v[n / 2]; }

typedef struct kld_sums {
    double nll, nll2, nllb, nllb2, nll_nllb, kld, kld2, dp, dp2, dp4;
    size_t same, n;
} kld_sums;

static kld_sums accumulate(const kld_row *rows, size_t n) {
    kld_sums s = {0};
    for (size_t i = 0; i < n; i++) {
        const kld_row *r = &rows[i];
        s.nll += r->nll, s.nll2 += r->nll * r->nll;
        s.nllb += r->nll_base, s.nllb2 += r->nll_base * r->nll_base;
        s.nll_nllb += r->nll * r->nll_base;
        s.kld += r->kld, s.kld2 += r->kld * r->kld;
        double d2 = (double)r->dp * r->dp;
        s.dp += r->dp, s.dp2 += d2, s.dp4 += d2 * d2;
        s.same += r->same_top;
    }
    s.n = n;
    return s;
}

static int add(sb_task_result *out, const char *name, double v, double unc, sb_direction dir, const char *unit, sb_err *err) {
    return sb_result_add(out, name, v, unc, dir, unit, err);
}

static int ppl_metrics(const kld_sums *s, sb_task_result *out, sb_err *err) {
    mean_unc q = mean_and_uncertainty(s->nll, s->nll2, s->n), b = mean_and_uncertainty(s->nllb, s->nllb2, s->n);
    double cov = covariance(s->nll, s->nllb, s->nll_nllb, s->n);
    double ppl = exp(q.mean), pplb = exp(b.mean), lr = q.mean - b.mean;
    double lr_unc = sqrt(q.unc * q.unc + b.unc * b.unc - 2 * cov);
    double uq = ppl * q.unc, ub = pplb * b.unc;
    int rc = add(out, "ppl", ppl, uq, SB_LOWER_IS_BETTER, "", err);
    if (!rc) rc = add(out, "ppl_base", pplb, ub, SB_NO_DIRECTION, "", err);
    if (!rc) rc = add(out, "ln_ppl_ratio", lr, lr_unc, SB_LOWER_IS_BETTER, "", err);
    if (!rc) rc = add(out, "ppl_ratio", exp(lr), exp(lr) * lr_unc, SB_LOWER_IS_BETTER, "", err);
    if (!rc) rc = add(out, "ppl_diff", ppl - pplb, sqrt(uq * uq + ub * ub - 2 * ppl * pplb * cov), SB_LOWER_IS_BETTER, "", err);
    if (!rc) rc = add(out, "ppl_cor", cov / (q.unc * b.unc), NAN, SB_NO_DIRECTION, "", err);
    return rc;
}

static int kld_metrics(const kld_sums *s, const float *kv, size_t n, sb_task_result *out, sb_err *err) {
    static const struct { const char *name; float f; } pct[] = {
        {"kld_p99_9", 0.999f}, {"kld_p99", 0.990f}, {"kld_p95", 0.950f}, {"kld_p90", 0.900f},
        {"kld_p10", 0.100f},   {"kld_p5", 0.050f},  {"kld_p1", 0.010f},  {"kld_p0_1", 0.001f},
    };
    mean_unc k = mean_and_uncertainty(s->kld, s->kld2, s->n);
    int rc = add(out, "kld", k.mean, k.unc, SB_LOWER_IS_BETTER, "", err);
    if (!rc) rc = add(out, "kld_max", kv[n - 1], NAN, SB_LOWER_IS_BETTER, "", err);
    for (size_t i = 0; !rc && i < sizeof pct / sizeof pct[0]; i++)
        rc = add(out, pct[i].name, percentile(kv, n, pct[i].f), NAN, SB_LOWER_IS_BETTER, "", err);
    if (!rc) rc = add(out, "kld_median", median(kv, n), NAN, SB_LOWER_IS_BETTER, "", err);
    if (!rc) rc = add(out, "kld_min", kv[0], NAN, SB_LOWER_IS_BETTER, "", err);
    return rc;
}

static int dp_metrics(const kld_sums *s, const float *dv, size_t n, sb_task_result *out, sb_err *err) {
    static const struct { const char *name; float f; } pct[] = {
        {"dp_p99_9", 0.999f}, {"dp_p99", 0.990f}, {"dp_p95", 0.950f}, {"dp_p90", 0.900f}, {"dp_p75", 0.750f},
        {"dp_p25", 0.250f},   {"dp_p10", 0.100f}, {"dp_p5", 0.050f},  {"dp_p1", 0.010f},  {"dp_p0_1", 0.001f},
    };
    mean_unc d = mean_and_uncertainty(s->dp, s->dp2, s->n), mse = mean_and_uncertainty(s->dp2, s->dp4, s->n);
    double rms = sqrt(mse.mean);
    int rc = add(out, "dp_mean", 100 * d.mean, 100 * d.unc, SB_NO_DIRECTION, "%", err);
    if (!rc) rc = add(out, "dp_max", 100.0 * dv[n - 1], NAN, SB_NO_DIRECTION, "%", err);
    for (size_t i = 0; !rc && i < sizeof pct / sizeof pct[0]; i++)
        rc = add(out, pct[i].name, 100.0 * percentile(dv, n, pct[i].f), NAN, SB_NO_DIRECTION, "%", err);
    if (!rc) rc = add(out, "dp_median", 100.0 * median(dv, n), NAN, SB_NO_DIRECTION, "%", err);
    if (!rc) rc = add(out, "dp_min", 100.0 * dv[0], NAN, SB_NO_DIRECTION, "%", err);
    if (!rc) rc = add(out, "dp_rms", 100 * rms, rms > 0 ? 100 * 0.5 / rms * mse.unc : 0, SB_LOWER_IS_BETTER, "%", err);
    double p = (double)s->same / (double)s->n;
    if (!rc) rc = add(out, "top1_agree", 100 * p, 100 * sqrt(p * (1 - p) / (double)(s->n - 1)), SB_HIGHER_IS_BETTER, "%", err);
    return rc;
}

static int report(const kld_run *r, sb_task_result *out, sb_err *err) {
    size_t n = (size_t)r->n_chunk * (size_t)r->per;
    kld_sums s = accumulate(r->rows, n);
    float *kv = sb_malloc(err, n * sizeof(float)), *dv = sb_malloc(err, n * sizeof(float));
    int rc = kv && dv ? SB_OK : SB_EINTERNAL;
    for (size_t i = 0; !rc && i < n; i++) kv[i] = (float)r->rows[i].kld, dv[i] = r->rows[i].dp;
    if (!rc) {
        qsort(kv, n, sizeof(float), cmp_float);
        qsort(dv, n, sizeof(float), cmp_float);
        rc = kld_metrics(&s, kv, n, out, err);
    }
    if (!rc) rc = dp_metrics(&s, dv, n, out, err);
    if (!rc) rc = ppl_metrics(&s, out, err);
    if (!rc) rc = add(out, "tokens", (double)n, NAN, SB_NO_DIRECTION, "tokens", err);
    free(kv);
    free(dv);
    return rc;
}

/* ---- setting up: data, base file or cache --------------------------------------- */

/* BOS written over position 0 of every chunk, or -1 (§3.4). */
static int chunk_bos(const sb_model *m, const sb_params *p, int32_t *bos, sb_err *err) {
    const char *mode = sb_param_str(p, "bos");
    bool on = strcmp(mode, "on") == 0 || (strcmp(mode, "auto") == 0 && sb_tokenizer_adds_bos(m->tokenizer));
    *bos = on ? sb_tokenizer_bos(m->tokenizer) : -1;
    if (on && *bos < 0) return sb_err_set(err, SB_EINPUT, "bos=on but the tokenizer has no BOS token");
    return SB_OK;
}

/* The text as llama-perplexity tokenizes it (§3.1-3.3). */
static int tokenize_chunks(const sb_model *m, const sb_params *p, const sb_text_dataset *d, int32_t **tok, int *n_chunk,
                           sb_err *err) {
    const int n_ctx = (int)sb_param_num(p, "n_ctx"), limit = (int)sb_param_num(p, "chunks");
    size_t len = d->text_len, n;
    if (len > 0 && d->text[len - 1] == '\n') len--;
    bool add_special = strcmp(sb_param_str(p, "bos"), "off") != 0;
    int rc = sb_tokenizer_encode_ex(m->tokenizer, d->text, len, add_special, false, tok, &n, err);
    if (rc) return rc;
    if (n < 2 * (size_t)n_ctx)
        return sb_err_set(err, SB_EINPUT, "%s: KLD needs at least %d tokens (2*n_ctx), the text has %zu", d->path, 2 * n_ctx, n);
    *n_chunk = (int)(n / (size_t)n_ctx);
    if (limit > 0 && *n_chunk > limit) *n_chunk = limit;
    return SB_OK;
}

static void cache_path(const sb_run_ctx *ctx, const sb_params *p, uint64_t data_hash, char *out, size_t cap) {
    snprintf(out, cap, "%s/kld-base-%s-%016llx-c%d-k%d-bos_%s.bin", ctx->cache_dir, ctx->model_id ? ctx->model_id : "model",
             (unsigned long long)data_hash, (int)sb_param_num(p, "n_ctx"), (int)sb_param_num(p, "chunks"), sb_param_str(p, "bos"));
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* The reference run: write the base file to path.tmp, rename when complete. */
static int write_base(kld_run *r, const char *path, sb_err *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    r->base_out = fopen(tmp, "wb");
    if (!r->base_out) return sb_err_set(err, SB_EINPUT, "%s: cannot create the KL-divergence cache file", tmp);
    int rc = base_write_header(r->base_out, r->n_ctx, r->m->n_vocab, r->n_chunk, r->tokens)
                 ? sb_err_set(err, SB_EINTERNAL, "%s: write failed", tmp)
                 : run_all(r, err);
    if (fclose(r->base_out) != 0 && !rc) rc = sb_err_set(err, SB_EINTERNAL, "%s: write failed", tmp);
    r->base_out = NULL;
    if (!rc && rename(tmp, path) != 0) rc = sb_err_set(err, SB_EINTERNAL, "%s: cannot rename to %s", tmp, path);
    if (rc) remove(tmp);
    return rc;
}

static int compare_with_base(kld_run *r, const char *path, int limit, sb_err *err) {
    kld_base b;
    int rc = base_open(path, &b, err);
    if (!rc && b.n_vocab != r->m->n_vocab)
        rc = sb_err_set(err, SB_EINPUT, "%s: base vocabulary %d, model %d", path, b.n_vocab, r->m->n_vocab);
    if (!rc) {
        r->n_ctx = b.n_ctx;
        r->first = b.n_ctx / 2;
        r->per = b.n_ctx - 1 - r->first;
        r->n_chunk = limit > 0 && limit < b.n_chunk ? limit : b.n_chunk;
        r->tokens = b.tokens;
        r->base_in = b.f;
        rc = run_all(r, err);
    }
    r->base_in = NULL;
    r->tokens = NULL;
    base_close(&b);
    return rc;
}

static void add_details(cJSON *d, const kld_run *r, const sb_text_dataset *data, const char *base_path, bool wrote) {
    char hex[17];
    cJSON_AddStringToObject(d, "base_file", base_path);
    cJSON_AddBoolToObject(d, "base_written_now", wrote);
    if (data) {
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)data->hash);
        cJSON_AddStringToObject(d, "data", data->path);
        cJSON_AddNumberToObject(d, "dataset_bytes", (double)data->n_bytes);
        cJSON_AddStringToObject(d, "dataset_fnv1a64", hex);
    }
    cJSON_AddNumberToObject(d, "n_ctx", r->n_ctx);
    cJSON_AddNumberToObject(d, "chunks", r->n_chunk);
    cJSON_AddBoolToObject(d, "bos_per_chunk", r->bos >= 0);
    cJSON_AddNumberToObject(d, "first_scored_index", r->first + 1);
    cJSON_AddStringToObject(d, "kld_direction", "KL(base || model), base log-probs quantized to 16 bits as llama.cpp stores them");
    cJSON_AddStringToObject(d, "stderr_method", "llama-perplexity --kl-divergence: sqrt((S2/n - m^2)/(n-1)), 0 unless n > 10");
}

/* No base file given: the cache, written by the reference model or read by any other. */
static int use_cache(const sb_model *m, const sb_params *p, const sb_run_ctx *ctx, kld_run *r, const sb_text_dataset *data,
                     char *path, size_t cap, bool *wrote, sb_err *err) {
    if (!ctx || !ctx->cache_dir) return sb_err_set(err, SB_EINPUT, "kld: no base file given and no cache directory");
    cache_path(ctx, p, data->hash, path, cap);
    if (file_exists(path)) return compare_with_base(r, path, 0, err);
    if (!ctx->model_is_reference)
        return sb_err_set(err, SB_EINPUT, "%s: no reference log-probs cached; run the dense (reference) model on this task first",
                          path);
    int32_t *tok = NULL;
    int rc = tokenize_chunks(m, p, data, &tok, &r->n_chunk, err);
    if (!rc) {
        r->n_ctx = (int)sb_param_num(p, "n_ctx");
        r->first = r->n_ctx / 2;
        r->per = r->n_ctx - 1 - r->first;
        r->tokens = tok;
        *wrote = true;
        rc = write_base(r, path, err);
        r->tokens = NULL;
    }
    free(tok);
    return rc;
}

static int kld_task_run(const sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_task_result *out, sb_err *err) {
    if (!m->tokenizer) return sb_err_set(err, SB_EINPUT, "%s: the model has no tokenizer; kld needs one", m->path);
    const char *base = sb_param_str(p, "base");
    bool have_data = strcmp(sb_param_str(p, "data"), "builtin") != 0;
    if (!have_data && !base[0]) return sb_err_set(err, SB_EINPUT, "data=builtin: no built-in corpus yet; give a text file path");
    kld_run r = {.m = m, .ctx = ctx, .batch = (int)sb_param_num(p, "batch")};
    sb_text_dataset data = {0};
    char path[4096] = "";
    bool wrote = false;
    int rc = chunk_bos(m, p, &r.bos, err);
    if (!rc && have_data) rc = sb_text_load(sb_param_str(p, "data"), sb_param_str(p, "format"), sb_param_str(p, "field"), &data, err);
    if (!rc && base[0]) {
        snprintf(path, sizeof path, "%s", base);
        rc = compare_with_base(&r, path, (int)sb_param_num(p, "chunks"), err);
    } else if (!rc) {
        rc = use_cache(m, p, ctx, &r, &data, path, sizeof path, &wrote, err);
    }
    if (!rc) rc = report(&r, out, err);
    if (!rc) {
        cJSON *d = cJSON_CreateObject();
        add_details(d, &r, have_data ? &data : NULL, path, wrote);
        cJSON_Delete(out->details);
        out->details = d;
        char data_part[48] = "";
        if (have_data) snprintf(data_part, sizeof data_part, ":data=fnv1a64:%016llx", (unsigned long long)data.hash);
        snprintf(out->protocol, sizeof out->protocol, "kld:llamacpp:n_ctx=%d:bos=%d:chunks=%d:base=%s%s", r.n_ctx, r.bos >= 0,
                 r.n_chunk, base[0] ? "file" : "cache", data_part);
    }
    free_run(&r);
    sb_text_free(&data);
    return rc;
}

const sb_task sb_task_kld = {
    .abi = SB_PLUGIN_ABI,
    .name = "kld",
    .summary = "KL divergence, top-1 agreement and probability shifts against the reference model (llama-perplexity --kl-divergence)",
    .params = kld_params,
    .n_params = (int)(sizeof kld_params / sizeof kld_params[0]),
    .run = kld_task_run,
};

/* perplexity.c - the "perplexity" task: four published ways of turning a
 * text into one perplexity, each reproduced to the letter (PROTOCOLS.md
 * §1-4):
 *
 *   gptq             windows of `seq` tokens over the text tokenized once,
 *                    targets 1..seq-1 of every window, exp(mean NLL);
 *   slicegpt         the same windows, exp(mean of per-window means),
 *                    targets equal to the pad id (when non-zero) left out;
 *   llamacpp         llama-perplexity: chunks of n_ctx, BOS written over
 *                    position 0, the second half of every chunk scored;
 *   lm-eval-rolling  lm-eval's rolling loglikelihood over documents, with
 *                    word/byte perplexity and bits per byte.
 *
 * Every protocol reduces to a list of windows: input tokens, and the
 * positions from `score_from` on whose logits predict known targets.  The
 * runner below feeds windows of the same shape side by side (`batch`),
 * asks the session for logits of scored positions only, a bounded number
 * of rows at a time, and reduces each row to one NLL with a log-sum-exp,
 * so no positions x vocabulary matrix of a whole window ever exists. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"
#include "vec.h"
#include "../datasets/text_dataset.h"

/* Logit rows held at once: 2^25 floats (128 MiB) whatever the vocabulary. */
enum { LOGIT_BUDGET_FLOATS = 1 << 25 };

static const sb_param_spec ppl_params[] = {
    {"data", SB_PARAM_STRING, "builtin", 1, 0, NULL, "text file to score (\"builtin\" is reserved for a built-in corpus)"},
    {"format", SB_PARAM_STRING, "raw", 1, 0, "raw|jsonl", "raw bytes, or one JSON object per line"},
    {"field", SB_PARAM_STRING, "text", 1, 0, NULL, "JSONL field holding the text"},
    {"protocol", SB_PARAM_STRING, "llamacpp", 1, 0, "gptq|slicegpt|llamacpp|lm-eval-rolling", "scoring protocol (PROTOCOLS.md §1-4)"},
    {"seq", SB_PARAM_INT, "2048", 2, 1 << 20, NULL, "gptq/slicegpt window length"},
    {"n_ctx", SB_PARAM_INT, "512", 4, 1 << 20, NULL, "llamacpp chunk length (-c)"},
    {"max_length", SB_PARAM_INT, "0", 0, 1 << 20, NULL, "lm-eval window length; 0: the model's max positions (2048 if unknown)"},
    {"chunks", SB_PARAM_INT, "0", 0, 1e9, NULL, "at most this many windows/chunks (0: all)"},
    {"agg", SB_PARAM_STRING, "token", 1, 0, "token|sequence", "gptq: mean over targets, or mean of window means"},
    {"batch", SB_PARAM_INT, "1", 1, 1024, NULL, "windows per forward pass"},
    {"bos", SB_PARAM_STRING, "auto", 1, 0, "auto|on|off", "BOS policy; auto: the protocol's own rule"},
    {"lm_eval_version", SB_PARAM_STRING, "0.4.9.2+", 1, 0, "0.4.0-0.4.2|0.4.3-0.4.9.1|0.4.9.2+", "lm-eval release whose prefix/BOS rule to follow (§4.5)"},
    {"detok", SB_PARAM_STRING, "auto", 1, 0, "auto|wikitext|none", "lm-eval: detokenizer; auto: wikitext for raw files, none for JSONL"},
    {"pad_id", SB_PARAM_INT, "-1", -1, 1e9, NULL, "slicegpt: pad id to leave out; -1: OPT 1, else the tokenizer's EOS"},
};

/* ---- windows and the runner ------------------------------------------------ */

/* Input token t is `first` when t == 0 and first >= 0, else src[t - shift];
 * logits at positions score_from..n_input-1 predict targets[0..]; their
 * NLLs go to nll[out_off..]. */
typedef struct ppl_window {
    const int32_t *src;
    int shift;
    int32_t first;
    int n_input, score_from;
    const int32_t *targets;
    int64_t out_off;
} ppl_window;

typedef struct ppl_runner {
    const sb_model *m;
    const sb_run_ctx *ctx;
    sb_session *wide, *narrow;  /* `batch` sequences, and one */
    int batch, max_input;
    int32_t *call_tokens;       /* [batch * max_input] */
    float *logits;              /* [rows_cap * V] */
    int64_t rows_cap;
    double *nll;                /* one per target, in window order */
    double tokens_done, tokens_total;
} ppl_runner;

static int32_t window_token(const ppl_window *w, int t) {
    return (t == 0 && w->first >= 0) ? w->first : w->src[t - w->shift];
}

static int runner_init(ppl_runner *r, const sb_model *m, const sb_run_ctx *ctx, int batch, int max_input,
                       int64_t n_targets, sb_err *err) {
    memset(r, 0, sizeof *r);
    r->m = m;
    r->ctx = ctx;
    r->batch = batch;
    r->max_input = max_input;
    r->rows_cap = LOGIT_BUDGET_FLOATS / m->n_vocab;
    if (r->rows_cap < (int64_t)batch) r->rows_cap = batch;
    r->call_tokens = sb_malloc(err, sizeof(int32_t) * (size_t)batch * (size_t)max_input);
    r->logits = sb_malloc(err, sizeof(float) * (size_t)r->rows_cap * (size_t)m->n_vocab);
    r->nll = sb_calloc(err, (size_t)(n_targets > 0 ? n_targets : 1), sizeof(double));
    if (!r->call_tokens || !r->logits || !r->nll) return SB_EINTERNAL;
    int rc = sb_session_new(m, ctx ? ctx->pool : NULL, 1, max_input, max_input, &r->narrow, err);
    if (!rc && batch > 1) rc = sb_session_new(m, ctx ? ctx->pool : NULL, batch, max_input, max_input, &r->wide, err);
    return rc;
}

static void runner_free(ppl_runner *r) {
    sb_session_free(r->wide);
    sb_session_free(r->narrow);
    free(r->call_tokens);
    free(r->logits);
    free(r->nll);
}

typedef struct rows_job {
    ppl_runner *r;
    const ppl_window *w;   /* the group's windows */
    int lo, n_pos;         /* positions lo..lo+n_pos-1 of each window in this call */
} rows_job;

static void score_row(void *arg, int task, int worker) {
    (void)worker;
    const rows_job *j = arg;
    const ppl_window *w = &j->w[task / j->n_pos];
    int pos = j->lo + task % j->n_pos;
    const int V = j->r->m->n_vocab;
    const float *row = j->r->logits + (int64_t)task * V;
    int k = pos - w->score_from;
    j->r->nll[w->out_off + k] = sb_vec_logsumexp(row, V) - (double)row[w->targets[k]];
}

/* Runs n windows of one shape on session s, which holds exactly n sequences. */
static int run_group(ppl_runner *r, sb_session *s, const ppl_window *w, int n, sb_err *err) {
    const int L = w[0].n_input, from = w[0].score_from;
    int step = (int)(r->rows_cap / n);
    sb_session_reset(s);
    for (int t0 = 0; t0 < L;) {
        int t1 = t0 < from ? from + step : t0 + step;
        if (t1 > L) t1 = L;
        int n_tok = t1 - t0, lf = t0 < from ? from - t0 : 0;
        for (int q = 0; q < n; q++)
            for (int t = t0; t < t1; t++) r->call_tokens[(int64_t)q * n_tok + (t - t0)] = window_token(&w[q], t);
        int rc = sb_session_forward(s, r->call_tokens, n_tok, lf, r->logits, err);
        if (rc) return rc;
        rows_job job = {r, w, t0 + lf, n_tok - lf};
        if (job.n_pos > 0) sb_pool_run(r->ctx ? r->ctx->pool : NULL, score_row, &job, n * job.n_pos);
        t0 = t1;
    }
    for (int q = 0; q < n; q++) r->tokens_done += L - from;
    sb_run_progress(r->ctx, r->tokens_done, r->tokens_total, "tokens");
    return SB_OK;
}

typedef void (*after_window_fn)(void *user, int window_index);

/* Runs every window, `batch` of the same shape at a time; calls after(user, i)
 * in window order once window i's NLLs are in. */
static int runner_run(ppl_runner *r, const ppl_window *w, int n, after_window_fn after, void *user, sb_err *err) {
    for (int i = 0; i < n; i++) r->tokens_total += w[i].n_input - w[i].score_from;
    for (int i = 0; i < n;) {
        int k = 1;
        while (i + k < n && k < r->batch && w[i + k].n_input == w[i].n_input && w[i + k].score_from == w[i].score_from) k++;
        int rc = k == r->batch && r->wide ? run_group(r, r->wide, w + i, k, err) : SB_OK;
        if (!(k == r->batch && r->wide)) {
            k = 1;
            rc = run_group(r, r->narrow, w + i, 1, err);
        }
        if (rc) return rc;
        for (int q = 0; q < k; q++)
            if (after) after(user, i + q);
        i += k;
    }
    return SB_OK;
}

/* ---- shared helpers ------------------------------------------------------ */

typedef struct ppl_setup {
    const sb_params *p;
    const sb_model *m;
    const sb_tokenizer *tok;
    sb_text_dataset data;
    char data_hex[17];
    const char *bos_mode;   /* auto|on|off */
    cJSON *details;
} ppl_setup;

/* Mean and standard error of the mean (sample variance, n-1) of x[0..n),
 * skipping entries where keep is given and false. */
static void mean_stderr(const double *x, const bool *keep, int64_t n, double *mean, double *se, int64_t *count) {
    double s = 0, s2 = 0;
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) {
        if (keep && !keep[i]) continue;
        s += x[i];
        s2 += x[i] * x[i];
        c++;
    }
    *count = c;
    *mean = c ? s / (double)c : NAN;
    double v = c ? s2 / (double)c - *mean * *mean : 0;
    *se = c > 1 && v > 0 ? sqrt(v / (double)(c - 1)) : 0;
}

static int add_ppl_metrics(sb_task_result *out, double mean_nll, double se, bool have_se, int64_t count, sb_err *err) {
    double ppl = exp(mean_nll);
    int rc = sb_result_add(out, "ppl", ppl, have_se ? ppl * se : NAN, SB_LOWER_IS_BETTER, "", err);
    if (!rc) rc = sb_result_add(out, "nll", mean_nll, have_se ? se : NAN, SB_LOWER_IS_BETTER, "", err);
    if (!rc) rc = sb_result_add(out, "tokens", (double)count, NAN, SB_NO_DIRECTION, "tokens", err);
    return rc;
}

/* Tokens with the BOS policy of gptq/slicegpt/llamacpp applied; *bos_on says
 * whether the stream starts with BOS because of it. */
static int encode_with_policy(const ppl_setup *su, const char *text, size_t len, bool parse_special, int32_t **ids,
                              size_t *n, bool *bos_on, sb_err *err) {
    int32_t bos = sb_tokenizer_bos(su->tok);
    bool want = strcmp(su->bos_mode, "on") == 0 || (strcmp(su->bos_mode, "auto") == 0 && sb_tokenizer_adds_bos(su->tok));
    if (want && bos < 0) return sb_err_set(err, SB_EINPUT, "bos=on but the tokenizer has no BOS token");
    bool add_special = strcmp(su->bos_mode, "auto") == 0;
    int rc = sb_tokenizer_encode_ex(su->tok, text, len, add_special, parse_special, ids, n, err);
    if (rc) return rc;
    *bos_on = want;
    if (!want || (*n > 0 && (*ids)[0] == bos)) return SB_OK;
    int32_t *grown = realloc(*ids, sizeof(int32_t) * (*n + 1));
    if (!grown) return sb_err_set(err, SB_EINTERNAL, "out of memory");
    memmove(grown + 1, grown, sizeof(int32_t) * *n);
    grown[0] = bos;
    *ids = grown;
    (*n)++;
    return SB_OK;
}

static void add_common_details(const ppl_setup *su, size_t n_tokens) {
    cJSON_AddStringToObject(su->details, "data", su->data.path);
    cJSON_AddNumberToObject(su->details, "dataset_bytes", (double)su->data.n_bytes);
    cJSON_AddStringToObject(su->details, "dataset_fnv1a64", su->data_hex);
    cJSON_AddStringToObject(su->details, "format", sb_param_str(su->p, "format"));
    cJSON_AddNumberToObject(su->details, "tokens_in_text", (double)n_tokens);
}

/* ---- gptq and slicegpt (§1, §2) ------------------------------------------- */

static int32_t slicegpt_pad_id(const ppl_setup *su) {
    int pad = (int)sb_param_num(su->p, "pad_id");
    if (pad >= 0) return pad;
    if (strcmp(su->m->arch, "opt") == 0) return 1;   /* SliceGPT's OPT adapter */
    return sb_tokenizer_eos(su->tok);                 /* its LLaMA adapter: pad = EOS */
}

static int run_fixed_windows(ppl_setup *su, const sb_run_ctx *ctx, bool slicegpt, sb_task_result *out, sb_err *err) {
    const int seq = (int)sb_param_num(su->p, "seq"), limit = (int)sb_param_num(su->p, "chunks");
    int32_t *tok = NULL;
    size_t n = 0;
    bool bos_on;
    int rc = encode_with_policy(su, su->data.text, su->data.text_len, true, &tok, &n, &bos_on, err);
    if (rc) return rc;
    int nw = (int)(n / (size_t)seq);
    if (limit > 0 && nw > limit) nw = limit;
    if (nw == 0) {
        free(tok);
        return sb_err_set(err, SB_EINPUT, "%s: the text has %zu tokens, fewer than one window of seq=%d", su->data.path, n, seq);
    }
    ppl_window *w = sb_calloc(err, (size_t)nw, sizeof *w);
    ppl_runner r;
    rc = w ? runner_init(&r, su->m, ctx, (int)sb_param_num(su->p, "batch"), seq - 1, (int64_t)nw * (seq - 1), err) : SB_EINTERNAL;
    for (int i = 0; w && i < nw; i++)
        w[i] = (ppl_window){tok + (int64_t)i * seq, 0, -1, seq - 1, 0, tok + (int64_t)i * seq + 1, (int64_t)i * (seq - 1)};
    if (!rc) rc = runner_run(&r, w, nw, NULL, NULL, err);
    int64_t nt = (int64_t)nw * (seq - 1), count = 0;
    double mean = 0, se = 0;
    int32_t pad = slicegpt ? slicegpt_pad_id(su) : -1;
    bool *keep = NULL;
    if (!rc && slicegpt && pad > 0) {
        keep = sb_malloc(err, (size_t)nt);
        for (int64_t i = 0; keep && i < nt; i++) keep[i] = w[i / (seq - 1)].targets[i % (seq - 1)] != pad;
        if (!keep) rc = SB_EINTERNAL;
    }
    bool per_window = slicegpt || strcmp(sb_param_str(su->p, "agg"), "sequence") == 0;
    if (!rc) {
        mean_stderr(r.nll, keep, nt, &mean, &se, &count);
        if (per_window) { /* mean of window means */
            double sum = 0;
            int used = 0;
            for (int i = 0; i < nw; i++) {
                double wm, wse;
                int64_t wc;
                mean_stderr(r.nll + (int64_t)i * (seq - 1), keep ? keep + (int64_t)i * (seq - 1) : NULL, seq - 1, &wm, &wse, &wc);
                if (wc) sum += wm, used++;
            }
            mean = used ? sum / used : NAN;
        }
        rc = add_ppl_metrics(out, mean, se, true, count, err);
    }
    if (!rc) {
        char pad_part[32] = "";
        if (slicegpt) snprintf(pad_part, sizeof pad_part, ":pad=%d", pad > 0 ? pad : -1);
        snprintf(out->protocol, sizeof out->protocol, "ppl:%s:seq=%d:bos=%s(%d):agg=%s:chunks=%d%s:data=fnv1a64:%s",
                 slicegpt ? "slicegpt" : "gptq", seq, su->bos_mode, bos_on, per_window ? "sequence" : "token", nw, pad_part,
                 su->data_hex);
        add_common_details(su, n);
        cJSON_AddNumberToObject(su->details, "windows", nw);
        cJSON_AddNumberToObject(su->details, "seq", seq);
        cJSON_AddBoolToObject(su->details, "bos", bos_on);
        cJSON_AddNumberToObject(su->details, "first_scored_index", 1);
        cJSON_AddNumberToObject(su->details, "tail_dropped", (double)(n - (size_t)nw * (size_t)seq));
        cJSON_AddStringToObject(su->details, "aggregation", per_window ? "mean of window means" : "mean over targets");
        if (slicegpt) cJSON_AddNumberToObject(su->details, "pad_id_excluded", pad > 0 ? pad : -1);
        cJSON_AddStringToObject(su->details, "stderr_method",
                                "ppl * sqrt(var(NLL)/(n-1)) over scored targets (population variance of the per-target NLLs)");
    }
    if (w) runner_free(&r);
    free(keep);
    free(w);
    free(tok);
    return rc;
}

/* ---- llamacpp (§3) --------------------------------------------------------- */

typedef struct running_ppl {
    const double *nll;
    int per_chunk;
    double s;
    int64_t count;
} running_ppl;

/* llama-perplexity prints "[k]ppl," after each chunk. */
static void print_running(void *user, int i) {
    running_ppl *rp = user;
    for (int k = 0; k < rp->per_chunk; k++) rp->s += rp->nll[(int64_t)i * rp->per_chunk + k];
    rp->count += rp->per_chunk;
    fprintf(stderr, "[%d]%.4f,", i + 1, exp(rp->s / (double)rp->count));
}

static int run_llamacpp(ppl_setup *su, const sb_run_ctx *ctx, sb_task_result *out, sb_err *err) {
    const int n_ctx = (int)sb_param_num(su->p, "n_ctx"), limit = (int)sb_param_num(su->p, "chunks");
    size_t len = su->data.text_len;
    if (len > 0 && su->data.text[len - 1] == '\n') len--;
    int32_t *tok = NULL;
    size_t n = 0;
    bool bos_on;
    int rc = encode_with_policy(su, su->data.text, len, false, &tok, &n, &bos_on, err);
    if (rc) return rc;
    if (n < 2 * (size_t)n_ctx) {
        free(tok);
        return sb_err_set(err, SB_EINPUT, "%s: llamacpp needs at least %d tokens (2*n_ctx), the text has %zu", su->data.path,
                          2 * n_ctx, n);
    }
    int nc = (int)(n / (size_t)n_ctx);
    if (limit > 0 && nc > limit) nc = limit;
    const int first = n_ctx / 2, per = n_ctx - first - 1;
    int32_t bos = bos_on ? sb_tokenizer_bos(su->tok) : -1;
    ppl_window *w = sb_calloc(err, (size_t)nc, sizeof *w);
    ppl_runner r;
    rc = w ? runner_init(&r, su->m, ctx, (int)sb_param_num(su->p, "batch"), n_ctx - 1, (int64_t)nc * per, err) : SB_EINTERNAL;
    for (int i = 0; w && i < nc; i++)
        w[i] = (ppl_window){tok + (int64_t)i * n_ctx, 0, bos, n_ctx - 1, first, tok + (int64_t)i * n_ctx + first + 1, (int64_t)i * per};
    running_ppl rp = {w ? r.nll : NULL, per, 0, 0};
    if (!rc) rc = runner_run(&r, w, nc, print_running, &rp, err);
    if (!rc) {
        int64_t count;
        double mean, se;
        mean_stderr(r.nll, NULL, (int64_t)nc * per, &mean, &se, &count);
        fprintf(stderr, "\nFinal estimate: PPL = %.4f +/- %.5f\n", exp(mean), exp(mean) * se);
        rc = add_ppl_metrics(out, mean, se, true, count, err);
        snprintf(out->protocol, sizeof out->protocol, "ppl:llamacpp:n_ctx=%d:bos=%s(%d):chunks=%d:first=%d:data=fnv1a64:%s", n_ctx,
                 su->bos_mode, bos_on, nc, first, su->data_hex);
        add_common_details(su, n);
        cJSON_AddNumberToObject(su->details, "chunks", nc);
        cJSON_AddNumberToObject(su->details, "n_ctx", n_ctx);
        cJSON_AddBoolToObject(su->details, "bos_per_chunk", bos_on);
        cJSON_AddNumberToObject(su->details, "first_scored_index", first + 1);
        cJSON_AddNumberToObject(su->details, "tail_dropped", (double)(n - (size_t)nc * (size_t)n_ctx));
        cJSON_AddStringToObject(su->details, "stderr_method", "llama-perplexity: ppl * sqrt((S2/n - m^2)/(n-1))");
    }
    if (w) runner_free(&r);
    free(w);
    free(tok);
    return rc;
}

/* ---- lm-eval rolling (§4) -------------------------------------------------- */

typedef struct lm_doc {
    int32_t *tok;
    size_t n;
    int64_t out_off;
    double words, bytes;
} lm_doc;

/* §4.5: the prefix token and whether the encoding adds the tokenizer's specials. */
static int lm_eval_rule(const ppl_setup *su, int32_t *prefix, bool *add_special, sb_err *err) {
    const char *v = sb_param_str(su->p, "lm_eval_version");
    int32_t bos = sb_tokenizer_bos(su->tok), eos = sb_tokenizer_eos(su->tok);
    bool old = strcmp(v, "0.4.0-0.4.2") == 0;
    *prefix = old ? eos : (bos >= 0 ? bos : eos);
    *add_special = strcmp(v, "0.4.9.2+") == 0;
    if (strcmp(su->bos_mode, "on") == 0) *add_special = true;
    if (strcmp(su->bos_mode, "off") == 0) *add_special = false;
    if (*prefix < 0) return sb_err_set(err, SB_EINPUT, "lm-eval rolling needs a BOS or EOS token as prefix; the tokenizer has neither");
    return SB_OK;
}

/* Windows of one document (§4.3); returns how many were written to w. */
static int lm_doc_windows(const lm_doc *d, int L, int32_t prefix, ppl_window *w) {
    if (d->n == 0) return 0;
    int n = (int)d->n, k0 = n < L ? n : L, nw = 0;
    w[nw++] = (ppl_window){d->tok, 1, prefix, k0, 0, d->tok, d->out_off};
    for (int done = k0; done < n;) {
        int k = n - done < L ? n - done : L, end = done + k;
        w[nw++] = (ppl_window){d->tok + (end - L - 1), 0, -1, L, L - k, d->tok + done, d->out_off + done};
        done = end;
    }
    return nw;
}

static int lm_prepare_docs(ppl_setup *su, bool add_special, lm_doc *docs, sb_err *err) {
    const char *detok = sb_param_str(su->p, "detok");
    bool wikitext = strcmp(detok, "wikitext") == 0 || (strcmp(detok, "auto") == 0 && strcmp(sb_param_str(su->p, "format"), "raw") == 0);
    int64_t off = 0;
    for (int i = 0; i < su->data.n_docs; i++) {
        const sb_text_doc *page = &su->data.docs[i];
        char *text = NULL;
        size_t len = page->len;
        int rc = wikitext ? sb_wikitext_detokenize(page->text, page->len, &text, &len, err) : SB_OK;
        if (!rc) rc = sb_tokenizer_encode_ex(su->tok, wikitext ? text : page->text, len, add_special, true, &docs[i].tok,
                                             &docs[i].n, err);
        free(text);
        if (rc) return rc;
        docs[i].out_off = off;
        docs[i].words = (double)sb_text_count_words(page->text, page->len);
        docs[i].bytes = (double)page->len;
        off += (int64_t)docs[i].n;
    }
    return SB_OK;
}

static int lm_max_length(const ppl_setup *su) {
    int L = (int)sb_param_num(su->p, "max_length");
    if (L > 0) return L;
    return su->m->max_positions > 0 ? su->m->max_positions : 2048;
}

static int lm_report(ppl_setup *su, const lm_doc *docs, const double *nll, int64_t nt, int n_windows, int L, int32_t prefix,
                     bool add_special, sb_task_result *out, sb_err *err) {
    double ll = 0, words = 0, bytes = 0;
    for (int i = 0; i < su->data.n_docs; i++) {
        double doc_ll = 0;  /* a document's log-likelihood is the sum of its tokens' */
        for (size_t t = 0; t < docs[i].n; t++) doc_ll -= nll[docs[i].out_off + (int64_t)t];
        ll += doc_ll;
        words += docs[i].words;
        bytes += docs[i].bytes;
    }
    int rc = add_ppl_metrics(out, nt ? -ll / (double)nt : NAN, NAN, false, nt, err);
    if (!rc) rc = sb_result_add(out, "word_perplexity", exp(-ll / words), NAN, SB_LOWER_IS_BETTER, "", err);
    if (!rc) rc = sb_result_add(out, "byte_perplexity", exp(-ll / bytes), NAN, SB_LOWER_IS_BETTER, "", err);
    if (!rc) rc = sb_result_add(out, "bits_per_byte", -ll / (bytes * log(2.0)), NAN, SB_LOWER_IS_BETTER, "", err);
    if (rc) return rc;
    const char *detok = sb_param_str(su->p, "detok");
    bool raw = strcmp(sb_param_str(su->p, "format"), "raw") == 0;
    const char *detok_used = strcmp(detok, "auto") == 0 ? (raw ? "wikitext" : "none") : detok;
    snprintf(out->protocol, sizeof out->protocol,
             "ppl:lm-eval-rolling:lm_eval=%s:max_length=%d:prefix=%d:add_special=%d:docs=%s:detok=%s:data=fnv1a64:%s",
             sb_param_str(su->p, "lm_eval_version"), L, (int)prefix, add_special, raw ? "wikitext-headings" : "jsonl-lines",
             detok_used, su->data_hex);
    add_common_details(su, (size_t)nt);
    cJSON_AddStringToObject(su->details, "lm_eval_version", sb_param_str(su->p, "lm_eval_version"));
    cJSON_AddNumberToObject(su->details, "documents", su->data.n_docs);
    cJSON_AddNumberToObject(su->details, "windows", n_windows);
    cJSON_AddNumberToObject(su->details, "max_length", L);
    cJSON_AddNumberToObject(su->details, "prefix_token", prefix);
    cJSON_AddBoolToObject(su->details, "encode_add_special", add_special);
    cJSON_AddNumberToObject(su->details, "words", words);
    cJSON_AddNumberToObject(su->details, "bytes", bytes);
    cJSON_AddNumberToObject(su->details, "loglikelihood", ll);
    cJSON_AddStringToObject(su->details, "documents_from",
                            raw ? "raw WikiText split at top-level headings ' = Title = ' (wikitext_document_level-style pages)"
                                : "one JSONL line per document");
    cJSON_AddStringToObject(su->details, "stderr_method", "none: lm-eval reports N/A for rolling perplexities (NaN here)");
    return SB_OK;
}

static int run_lm_eval(ppl_setup *su, const sb_run_ctx *ctx, sb_task_result *out, sb_err *err) {
    int32_t prefix;
    bool add_special;
    int rc = lm_eval_rule(su, &prefix, &add_special, err);
    if (!rc && strcmp(sb_param_str(su->p, "format"), "raw") == 0) rc = sb_text_split_wikitext(&su->data, err);
    if (rc) return rc;
    const int L = lm_max_length(su), n_docs = su->data.n_docs;
    lm_doc *docs = sb_calloc(err, (size_t)n_docs, sizeof *docs);
    if (!docs) return SB_EINTERNAL;
    rc = lm_prepare_docs(su, add_special, docs, err);
    int64_t nt = 0, max_windows = 0;
    int max_input = 1;
    for (int i = 0; !rc && i < n_docs; i++) {
        nt += (int64_t)docs[i].n;
        max_windows += 1 + (int64_t)docs[i].n / L + 1;
        if ((int)(docs[i].n < (size_t)L ? docs[i].n : (size_t)L) > max_input) max_input = docs[i].n < (size_t)L ? (int)docs[i].n : L;
    }
    ppl_window *w = rc ? NULL : sb_calloc(err, (size_t)max_windows, sizeof *w);
    ppl_runner r;
    bool have_runner = false;
    if (!rc && !w) rc = SB_EINTERNAL;
    int nw = 0;
    for (int i = 0; !rc && i < n_docs; i++) nw += lm_doc_windows(&docs[i], L, prefix, w + nw);
    if (!rc) {
        rc = runner_init(&r, su->m, ctx, (int)sb_param_num(su->p, "batch"), max_input, nt, err);
        have_runner = true;
    }
    if (!rc) rc = runner_run(&r, w, nw, NULL, NULL, err);
    if (!rc) rc = lm_report(su, docs, r.nll, nt, nw, L, prefix, add_special, out, err);
    if (have_runner) runner_free(&r);
    for (int i = 0; i < n_docs; i++) free(docs[i].tok);
    free(docs);
    free(w);
    return rc;
}

/* ---- the task ------------------------------------------------------------- */

static int ppl_run(const sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_task_result *out, sb_err *err) {
    const char *path = sb_param_str(p, "data"), *protocol = sb_param_str(p, "protocol");
    if (!m->tokenizer) return sb_err_set(err, SB_EINPUT, "%s: the model has no tokenizer; perplexity needs one", m->path);
    if (strcmp(path, "builtin") == 0)
        return sb_err_set(err, SB_EINPUT, "data=builtin: no built-in corpus yet; give a text file path");
    ppl_setup su = {.p = p, .m = m, .tok = m->tokenizer, .bos_mode = sb_param_str(p, "bos")};
    int rc = sb_text_load(path, sb_param_str(p, "format"), sb_param_str(p, "field"), &su.data, err);
    if (rc) {
        sb_text_free(&su.data);
        return rc;
    }
    snprintf(su.data_hex, sizeof su.data_hex, "%016llx", (unsigned long long)su.data.hash);
    su.details = cJSON_CreateObject();
    if (strcmp(protocol, "gptq") == 0) rc = run_fixed_windows(&su, ctx, false, out, err);
    else if (strcmp(protocol, "slicegpt") == 0) rc = run_fixed_windows(&su, ctx, true, out, err);
    else if (strcmp(protocol, "llamacpp") == 0) rc = run_llamacpp(&su, ctx, out, err);
    else rc = run_lm_eval(&su, ctx, out, err);
    if (!rc) {
        cJSON_AddStringToObject(su.details, "protocol", protocol);
        cJSON_Delete(out->details);
        out->details = su.details;
    } else {
        cJSON_Delete(su.details);
    }
    sb_text_free(&su.data);
    return rc;
}

const sb_task sb_task_perplexity = {
    .abi = SB_PLUGIN_ABI,
    .name = "perplexity",
    .summary = "perplexity of a text under the gptq, slicegpt, llama.cpp or lm-eval rolling protocol",
    .paper = {"Pointer Sentinel Mixture Models (WikiText)", "1609.07843", "2016"},
    .params = ppl_params,
    .n_params = (int)(sizeof ppl_params / sizeof ppl_params[0]),
    .run = ppl_run,
};

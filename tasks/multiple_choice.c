/* multiple_choice.c - zero-shot multiple-choice accuracy, scored exactly as
 * lm-eval's loglikelihood requests (PROTOCOLS.md §5, tasks §6).
 *
 * Every choice of a question is a request (context, continuation).  The
 * context's trailing whitespace moves to the continuation, the continuation
 * tokens are enc(ctx + cont)[len(enc(ctx)):], the input is the last L + 1
 * tokens minus the final one, and ll is the sum of the continuation's
 * log-probabilities.  acc takes the argmax of ll; acc_norm divides by the
 * choice's length in code points, acc_bytes by its UTF-8 length.
 *
 * The choices of a question share their first tokens (the context, or the
 * part of it before WinoGrande's option).  Those run once; every choice then
 * truncates the session back to them and runs only its own tokens, with
 * logits requested only where a continuation token is predicted. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../datasets/mc_dataset.h"
#include "plugin.h"
#include "vec.h"

/* Logit rows one forward call may return: bounds the logits buffer at
 * LOGIT_ROWS * n_vocab floats whatever the continuation length. */
enum { LOGIT_ROWS = 16, MAX_CHUNK = 256 };

/* lm-eval releases whose tokenization differs (PROTOCOLS.md §5.3). */
typedef enum { LM_EVAL_0_4_0, LM_EVAL_0_4_3, LM_EVAL_0_4_9_2 } lm_eval_version;

static const char *const version_names[] = {"0.4.0-0.4.2", "0.4.3-0.4.9.1", "0.4.9.2+"};
#define VERSION_CHOICES "0.4.0-0.4.2|0.4.3-0.4.9.1|0.4.9.2+"

static const sb_param_spec mc_params[] = {
    {"data", SB_PARAM_STRING, NULL, 0, -1, NULL, "JSONL file in the dataset's Hugging Face layout (see format)"},
    {"format", SB_PARAM_STRING, NULL, 0, -1, SB_MC_FORMATS,
     "dataset layout and lm-eval task; jsonl: {\"context\", \"choices\", \"gold\"}"},
    {"limit", SB_PARAM_INT, "0", 0, 1e9, NULL, "score the first N documents; 0 = all"},
    {"lm_eval_version", SB_PARAM_STRING, "0.4.9.2+", 0, -1, VERSION_CHOICES,
     "BOS and empty-context handling of this lm-eval release"},
    {"batch", SB_PARAM_INT, "1", 1, 1, NULL,
     "sequences per forward call; only 1: a question's choices share one cached prefix instead"},
    {"reuse_prefix", SB_PARAM_BOOL, "true", 0, -1, NULL,
     "run a question's shared prefix once; false scores every request from scratch"},
    {"log_samples", SB_PARAM_BOOL, "false", 0, -1, NULL,
     "record every request's strings, tokens, ll and is_greedy in details.samples"},
};

/* ---- tokenizing requests ------------------------------------------------- */

typedef struct {
    const sb_tokenizer *tok;
    lm_eval_version version;
    int32_t prefix_token;   /* the context of an empty-context request; -1 if the tokenizer has none */
    char *prefix_text;      /* its decoded text (0.4.9.2+ skips special tokens for strings starting with it) */
    int max_length;         /* L */
} encoder;

/* One request as token ids: the context's tokens then the continuation's. */
typedef struct {
    int32_t *seq;
    int n_seq, n_cont;
    bool truncated;         /* the window dropped tokens on the left */
} tokenized;

static void tokenized_free(tokenized *t) { free(t->seq); }

/* lm-eval's tok_encode: up to 0.4.9.1 no special tokens (add_bos_token is
 * off by default); from 0.4.9.2 the tokenizer's default, unless the string
 * already starts with the prefix token's text. */
static int encode(const encoder *e, const char *text, size_t len, int32_t **ids, size_t *n, sb_err *err) {
    bool add_special = e->version == LM_EVAL_0_4_9_2;
    size_t prefix_len = e->prefix_text ? strlen(e->prefix_text) : 0;
    if (add_special && e->prefix_text && len >= prefix_len && strncmp(text, e->prefix_text, prefix_len) == 0)
        add_special = false;
    return sb_tokenizer_encode(e->tok, text, len, add_special, ids, n, err);
}

static int join_tokens(const int32_t *ctx, size_t n_ctx, const int32_t *cont, size_t n_cont, tokenized *out,
                       sb_err *err) {
    out->seq = sb_malloc(err, sizeof(int32_t) * (n_ctx + n_cont + 1));
    if (!out->seq) return err->code;
    memcpy(out->seq, ctx, sizeof(int32_t) * n_ctx);
    memcpy(out->seq + n_ctx, cont, sizeof(int32_t) * n_cont);
    out->n_seq = (int)(n_ctx + n_cont);
    out->n_cont = (int)n_cont;
    return SB_OK;
}

/* Empty context: the prefix token stands in for it (EOS up to 0.4.2, BOS
 * or EOS later); from 0.4.9.2 a continuation that already starts with the
 * prefix token gives it up to the context instead. */
static int tokenize_empty_context(const encoder *e, const char *cont, tokenized *out, sb_err *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = sb_tokenizer_encode(e->tok, cont, strlen(cont), false, &ids, &n, err);
    if (!rc && n == 0) rc = sb_err_set(err, SB_EINPUT, "continuation \"%.60s\" has no tokens", cont);
    if (!rc && e->prefix_token < 0) rc = sb_err_set(err, SB_EINPUT, "the tokenizer has neither BOS nor EOS");
    if (!rc) {
        if (e->version == LM_EVAL_0_4_9_2 && ids[0] == e->prefix_token) rc = join_tokens(ids, 1, ids + 1, n - 1, out, err);
        else rc = join_tokens(&e->prefix_token, 1, ids, n, out, err);
    }
    free(ids);
    return rc;
}

/* Continuation tokens = enc(ctx + cont)[len(enc(ctx')):] where ctx' is ctx
 * without its trailing whitespace (which moved to the continuation): cut by
 * count, even where tokens merge across the boundary. */
static int tokenize_pair(const encoder *e, const char *ctx, const char *cont, tokenized *out, sb_err *err) {
    size_t ctx_len = sb_mc_rstrip_len(ctx, strlen(ctx)), cont_len = strlen(cont);
    char *whole_text = sb_malloc(err, strlen(ctx) + cont_len + 1);
    if (!whole_text) return err->code;
    strcpy(whole_text, ctx);
    strcat(whole_text, cont);
    int32_t *whole = NULL, *head = NULL;
    size_t n_whole = 0, n_head = 0;
    int rc = encode(e, whole_text, strlen(whole_text), &whole, &n_whole, err);
    if (!rc) rc = encode(e, ctx, ctx_len, &head, &n_head, err);
    if (!rc && n_head == 0) rc = sb_err_set(err, SB_EINPUT, "context \"%.60s\" has no tokens of its own", ctx);
    if (!rc && n_whole <= n_head)
        rc = sb_err_set(err, SB_EINPUT, "continuation \"%.60s\" has no tokens of its own", cont);
    if (!rc) rc = join_tokens(head, n_head, whole + n_head, n_whole - n_head, out, err);
    free(whole_text);
    free(whole);
    free(head);
    return rc;
}

static int tokenize_request(const encoder *e, const sb_mc_request *r, tokenized *out, sb_err *err) {
    int rc = r->context[0] ? tokenize_pair(e, r->context, r->continuation, out, err)
                           : tokenize_empty_context(e, r->continuation, out, err);
    if (!rc && out->n_cont > e->max_length)
        rc = sb_err_set(err, SB_EINPUT, "continuation of %d tokens exceeds the model's %d positions", out->n_cont,
                        e->max_length);
    if (!rc) out->truncated = out->n_seq > e->max_length + 1;
    return rc;
}

/* The model input: (ctx + cont)[-(L+1):][:-1]. */
static const int32_t *window(const tokenized *t, int max_length, int *n_in) {
    int start = t->n_seq > max_length + 1 ? t->n_seq - (max_length + 1) : 0;
    *n_in = t->n_seq - 1 - start;
    return t->seq + start;
}

/* ---- scoring ------------------------------------------------------------- */

typedef struct {
    double ll;
    bool greedy;
} req_score;

typedef struct {
    const sb_model *m;
    sb_session *s;
    float *logits;          /* [LOGIT_ROWS, n_vocab] */
    int chunk;              /* tokens per forward call */
    long tokens_run;        /* positions computed, for the record */
} scorer;

static int argmax_row(const float *row, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (row[i] > row[best]) best = i;
    return best;
}

/* Appends tokens[0..n) to the session.  Positions >= first_scored predict
 * targets[pos - first_scored]; their log-probabilities are added to acc. */
static int feed(scorer *sc, const int32_t *tokens, int n, int first_scored, const int32_t *targets, req_score *acc,
                sb_err *err) {
    int V = sc->m->n_vocab;
    for (int pos = 0; pos < n;) {
        int step = n - pos < sc->chunk ? n - pos : sc->chunk;
        int from = first_scored > pos ? first_scored - pos : 0;
        if (from < step && step - from > LOGIT_ROWS) step = from + LOGIT_ROWS;
        if (from > step) from = step;
        int rc = sb_session_forward(sc->s, tokens + pos, step, from, from < step ? sc->logits : NULL, err);
        if (rc) return rc;
        for (int t = from; t < step; t++) {
            const float *row = sc->logits + (size_t)(t - from) * (size_t)V;
            int32_t target = targets[pos + t - first_scored];
            acc->ll += row[target] - sb_vec_logsumexp(row, V);
            acc->greedy = acc->greedy && argmax_row(row, V) == target;
        }
        sc->tokens_run += step;
        pos += step;
    }
    return SB_OK;
}

/* Scores one request from an empty cache. */
static int score_alone(scorer *sc, const tokenized *t, int max_length, req_score *out, sb_err *err) {
    int n_in;
    const int32_t *in = window(t, max_length, &n_in);
    *out = (req_score){0, true};
    sb_session_reset(sc->s);
    return feed(sc, in, n_in, n_in - t->n_cont, t->seq + t->n_seq - t->n_cont, out, err);
}

/* Tokens every request's input starts with, stopping before the first
 * position any request needs logits for. */
static int shared_prefix(const tokenized *reqs, int n, int max_length) {
    int n0;
    const int32_t *in0 = window(&reqs[0], max_length, &n0);
    int shared = n0 - reqs[0].n_cont;
    for (int k = 1; k < n; k++) {
        int nk;
        const int32_t *ink = window(&reqs[k], max_length, &nk);
        if (nk - reqs[k].n_cont < shared) shared = nk - reqs[k].n_cont;
        int i = 0;
        while (i < shared && in0[i] == ink[i]) i++;
        shared = i;
    }
    return shared;
}

/* Scores a question's requests: the shared prefix once, then each request's own tokens. */
static int score_question(scorer *sc, const tokenized *reqs, int n, int max_length, bool reuse, req_score *out,
                          sb_err *err) {
    if (!reuse) {
        for (int k = 0; k < n; k++)
            if (score_alone(sc, &reqs[k], max_length, &out[k], err)) return err->code;
        return SB_OK;
    }
    int shared = shared_prefix(reqs, n, max_length), n_in;
    sb_session_reset(sc->s);
    const int32_t *in = window(&reqs[0], max_length, &n_in);
    if (shared > 0 && feed(sc, in, shared, shared, NULL, NULL, err)) return err->code;
    for (int k = 0; k < n; k++) {
        in = window(&reqs[k], max_length, &n_in);
        out[k] = (req_score){0, true};
        if (sb_session_truncate(sc->s, shared, err)) return err->code;
        if (feed(sc, in + shared, n_in - shared, n_in - reqs[k].n_cont - shared,
                 reqs[k].seq + reqs[k].n_seq - reqs[k].n_cont, &out[k], err))
            return err->code;
    }
    return SB_OK;
}

/* ---- outcomes and metrics ------------------------------------------------ */

/* numpy.argmax over values seen one at a time: the first maximum, or the
 * first NaN once there is one (an empty choice divides by zero). */
typedef struct {
    int index;
    double value;
    bool nan;
} np_argmax;

static void argmax_see(np_argmax *a, int k, double v) {
    if (a->nan) return;
    if (isnan(v) || k == 0 || v > a->value) *a = (np_argmax){k, v, isnan(v)};
}

typedef struct {
    int pred, pred_norm, pred_bytes;
} doc_preds;

static doc_preds predict(const sb_mc_doc *d, const req_score *scores) {
    np_argmax ll = {0}, norm = {0}, bytes = {0};
    for (int k = 0; k < d->n_choices; k++) {
        argmax_see(&ll, k, scores[k].ll);
        argmax_see(&norm, k, scores[k].ll / (double)sb_mc_codepoints(d->choice[k]));
        argmax_see(&bytes, k, scores[k].ll / (double)strlen(d->choice[k]));
    }
    return (doc_preds){ll.index, norm.index, bytes.index};
}

/* Sums over documents, turned into metrics at the end. */
typedef struct {
    int n;
    double acc, acc_norm, acc_bytes, ll;
} tally;

static void tally_doc(tally *t, const sb_mc_doc *d, const req_score *scores, sb_mc_format f) {
    t->n++;
    if (f == SB_MC_LAMBADA) {
        t->acc += scores[0].greedy;
        t->ll += scores[0].ll;
        return;
    }
    doc_preds p = predict(d, scores);
    t->acc += p.pred == d->gold;
    t->acc_norm += p.pred_norm == d->gold;
    t->acc_bytes += p.pred_bytes == d->gold;
}

/* Sample std (n - 1) / sqrt(n) of 0/1 values with mean p: sqrt(p(1-p)/(n-1)). */
static double mean_stderr(double p, int n) { return n > 1 ? sqrt(p * (1 - p) / (n - 1)) : NAN; }

static int add_mean(sb_task_result *r, const char *name, double sum, int n, sb_err *err) {
    double p = sum / n;
    return sb_result_add(r, name, p, mean_stderr(p, n), SB_HIGHER_IS_BETTER, "", err);
}

static int add_metrics(sb_task_result *r, const tally *t, sb_mc_format f, sb_err *err) {
    int rc = add_mean(r, "acc", t->acc, t->n, err);
    if (f == SB_MC_LAMBADA) {
        /* lm-eval's stderr here is a bootstrap driven by CPython's random: not reproduced. */
        if (!rc) rc = sb_result_add(r, "ppl", exp(-t->ll / t->n), NAN, SB_LOWER_IS_BETTER, "", err);
    } else {
        if (!rc && sb_mc_has_acc_norm(f)) rc = add_mean(r, "acc_norm", t->acc_norm, t->n, err);
        if (!rc) rc = add_mean(r, "acc_bytes", t->acc_bytes, t->n, err);
    }
    if (!rc) rc = sb_result_add(r, "n", t->n, NAN, SB_NO_DIRECTION, "", err);
    return rc;
}

/* ---- the record ---------------------------------------------------------- */

static cJSON *int_array(const int32_t *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

/* One document as lm-eval's --log_samples would show it. */
static cJSON *sample_json(const sb_mc_doc *d, const tokenized *reqs, const req_score *scores, sb_mc_format f) {
    cJSON *o = cJSON_CreateObject(), *list = cJSON_CreateArray();
    cJSON_AddNumberToObject(o, "line", d->line);
    cJSON_AddNumberToObject(o, "gold", d->gold);
    for (int k = 0; k < d->n_choices; k++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "context", d->req[k].context);
        cJSON_AddStringToObject(r, "continuation", d->req[k].continuation);
        cJSON_AddItemToObject(r, "cont_tokens", int_array(reqs[k].seq + reqs[k].n_seq - reqs[k].n_cont, reqs[k].n_cont));
        cJSON_AddNumberToObject(r, "ll", scores[k].ll);
        cJSON_AddBoolToObject(r, "is_greedy", scores[k].greedy);
        cJSON_AddItemToArray(list, r);
    }
    cJSON_AddItemToObject(o, "requests", list);
    if (f != SB_MC_LAMBADA) {
        doc_preds p = predict(d, scores);
        cJSON_AddNumberToObject(o, "pred", p.pred);
        cJSON_AddNumberToObject(o, "pred_norm", p.pred_norm);
        cJSON_AddNumberToObject(o, "pred_bytes", p.pred_bytes);
    }
    return o;
}

typedef struct {
    const char *data;
    sb_mc_format format;
    lm_eval_version version;
    bool reuse_prefix, log_samples;
    int limit;
} mc_config;

static cJSON *details_json(const mc_config *c, const sb_mc_dataset *ds, const encoder *e, const scorer *sc,
                           long truncated) {
    cJSON *o = cJSON_CreateObject();
    char hash[24];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)ds->hash);
    cJSON_AddNumberToObject(o, "n", ds->n_docs);
    cJSON_AddStringToObject(o, "format", sb_mc_format_name(c->format));
    cJSON_AddStringToObject(o, "version", sb_mc_task_version(c->format));
    cJSON_AddStringToObject(o, "data", c->data);
    cJSON_AddStringToObject(o, "dataset_fnv1a64", hash);
    cJSON_AddStringToObject(o, "lm_eval_version", version_names[c->version]);
    cJSON_AddNumberToObject(o, "num_fewshot", 0);
    cJSON_AddStringToObject(o, "target_delimiter", " ");
    cJSON_AddStringToObject(o, "special_tokens", c->version == LM_EVAL_0_4_9_2 ? "tokenizer default" : "none");
    cJSON_AddNumberToObject(o, "prefix_token_id", e->prefix_token);
    cJSON_AddNumberToObject(o, "max_length", e->max_length);
    cJSON_AddNumberToObject(o, "truncated_requests", (double)truncated);
    cJSON_AddNumberToObject(o, "positions_computed", (double)sc->tokens_run);
    cJSON_AddBoolToObject(o, "reuse_prefix", c->reuse_prefix);
    cJSON_AddStringToObject(o, "stderr", "sqrt(p(1-p)/(n-1))");
    cJSON_AddStringToObject(o, "prompt", ds->docs[0].req[0].context);
    cJSON *conts = cJSON_AddArrayToObject(o, "continuations");
    for (int k = 0; k < ds->docs[0].n_choices; k++)
        cJSON_AddItemToArray(conts, cJSON_CreateString(ds->docs[0].req[k].continuation));
    return o;
}

/* ---- the task ------------------------------------------------------------ */

static int read_config(const sb_params *p, mc_config *c, sb_err *err) {
    c->data = sb_param_str(p, "data");
    c->limit = (int)sb_param_num(p, "limit");
    c->reuse_prefix = sb_param_bool(p, "reuse_prefix");
    c->log_samples = sb_param_bool(p, "log_samples");
    const char *v = sb_param_str(p, "lm_eval_version");
    c->version = LM_EVAL_0_4_9_2;
    for (int i = 0; i < 3; i++)
        if (strcmp(v, version_names[i]) == 0) c->version = (lm_eval_version)i;
    return sb_mc_format_parse(sb_param_str(p, "format"), &c->format, err);
}

static int encoder_init(encoder *e, const sb_model *m, lm_eval_version version, sb_err *err) {
    memset(e, 0, sizeof *e);
    if (!m->tokenizer) return sb_err_set(err, SB_EINPUT, "%s: the model has no tokenizer", m->path);
    e->tok = m->tokenizer;
    e->version = version;
    e->max_length = m->max_positions > 0 ? m->max_positions : 2048;
    int32_t bos = sb_tokenizer_bos(e->tok), eos = sb_tokenizer_eos(e->tok);
    e->prefix_token = version == LM_EVAL_0_4_0 || bos < 0 ? eos : bos;
    size_t len;
    if (e->prefix_token >= 0 && sb_tokenizer_decode(e->tok, &e->prefix_token, 1, &e->prefix_text, &len, err))
        return err->code;
    return SB_OK;
}

/* Tokenizes every request of every document: reqs[doc_start[i] + k]. */
static int tokenize_all(const encoder *e, const char *path, const sb_mc_dataset *ds, tokenized **reqs_out,
                        int **starts_out, sb_err *err) {
    int *starts = sb_malloc(err, sizeof(int) * (size_t)(ds->n_docs + 1));
    if (!starts) return err->code;
    starts[0] = 0;
    for (int i = 0; i < ds->n_docs; i++) starts[i + 1] = starts[i] + ds->docs[i].n_choices;
    tokenized *reqs = sb_calloc(err, (size_t)starts[ds->n_docs], sizeof *reqs);
    *reqs_out = reqs, *starts_out = starts;
    if (!reqs) return err->code;
    for (int i = 0; i < ds->n_docs; i++)
        for (int k = 0; k < ds->docs[i].n_choices; k++)
            if (tokenize_request(e, &ds->docs[i].req[k], &reqs[starts[i] + k], err))
                return sb_err_prefix(err, "%s:%d", path, ds->docs[i].line);
    return SB_OK;
}

static int scorer_init(scorer *sc, const sb_model *m, sb_pool *pool, const tokenized *reqs, int n_reqs,
                       int max_length, sb_err *err) {
    memset(sc, 0, sizeof *sc);
    sc->m = m;
    int longest = 1;
    for (int i = 0; i < n_reqs; i++) {
        int n_in;
        window(&reqs[i], max_length, &n_in);
        if (n_in > longest) longest = n_in;
    }
    sc->chunk = longest < MAX_CHUNK ? longest : MAX_CHUNK;
    sc->logits = sb_malloc(err, sizeof(float) * LOGIT_ROWS * (size_t)m->n_vocab);
    if (!sc->logits) return err->code;
    return sb_session_new(m, pool, 1, longest, sc->chunk, &sc->s, err);
}

static void scorer_free(scorer *sc) {
    sb_session_free(sc->s);
    free(sc->logits);
}

static int mc_score_all(const mc_config *c, const sb_mc_dataset *ds, const encoder *e, scorer *sc,
                        const tokenized *reqs, const int *starts, const sb_run_ctx *ctx, sb_task_result *out,
                        cJSON *samples, sb_err *err) {
    tally t = {0};
    req_score *scores = sb_malloc(err, sizeof *scores * (size_t)(starts[ds->n_docs] + 1));
    if (!scores) return err->code;
    int rc = SB_OK;
    for (int i = 0; i < ds->n_docs && !rc; i++) {
        const sb_mc_doc *d = &ds->docs[i];
        rc = score_question(sc, reqs + starts[i], d->n_choices, e->max_length, c->reuse_prefix, scores + starts[i],
                            err);
        if (rc) break;
        tally_doc(&t, d, scores + starts[i], c->format);
        if (samples) cJSON_AddItemToArray(samples, sample_json(d, reqs + starts[i], scores + starts[i], c->format));
        sb_run_progress(ctx, i + 1, ds->n_docs, "questions");
    }
    if (!rc) rc = add_metrics(out, &t, c->format, err);
    free(scores);
    return rc;
}

static int mc_run(const sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_task_result *out, sb_err *err) {
    mc_config c;
    encoder e = {0};
    scorer sc = {0};
    sb_mc_dataset *ds = NULL;
    tokenized *reqs = NULL;
    int *starts = NULL;
    int rc = read_config(p, &c, err);
    if (!rc) rc = encoder_init(&e, m, c.version, err);
    if (!rc) rc = sb_mc_load(c.data, c.format, c.limit, &ds, err);
    if (!rc) rc = tokenize_all(&e, c.data, ds, &reqs, &starts, err);
    if (!rc) rc = scorer_init(&sc, m, ctx ? ctx->pool : NULL, reqs, starts[ds->n_docs], e.max_length, err);
    if (!rc) {
        snprintf(out->protocol, sizeof out->protocol, "mc:%s:lm-eval=%s:shots=0", sb_mc_format_name(c.format),
                 version_names[c.version]);
        cJSON *samples = c.log_samples ? cJSON_CreateArray() : NULL;
        rc = mc_score_all(&c, ds, &e, &sc, reqs, starts, ctx, out, samples, err);
        long truncated = 0;
        for (int i = 0; i < starts[ds->n_docs]; i++) truncated += reqs[i].truncated;
        out->details = details_json(&c, ds, &e, &sc, truncated);
        if (samples) cJSON_AddItemToObject(out->details, "samples", samples);
    }
    if (reqs)
        for (int i = 0; i < starts[ds->n_docs]; i++) tokenized_free(&reqs[i]);
    free(reqs);
    free(starts);
    scorer_free(&sc);
    free(e.prefix_text);
    sb_mc_free(ds);
    return rc;
}

const sb_task sb_task_mc = {
    .abi = SB_PLUGIN_ABI,
    .name = "mc",
    .summary = "zero-shot multiple choice (PIQA, ARC, HellaSwag, WinoGrande, BoolQ, COPA, LAMBADA, OpenBookQA, "
               "JSONL) scored as lm-eval's loglikelihood requests",
    .paper = {"Lessons from the Trenches on Reproducible Evaluation of Language Models (lm-eval)", "2405.14782",
              "2024"},
    .params = mc_params,
    .n_params = (int)(sizeof mc_params / sizeof mc_params[0]),
    .run = mc_run,
};

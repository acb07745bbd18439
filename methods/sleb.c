/* sleb.c - SLEB: Streamlining LLMs through Redundancy Verification and
 * Elimination of Transformer Blocks (arXiv 2402.09025).
 *
 * Greedy, as the authors' sleb.py: for each block to remove, switch off in
 * turn every remaining block except the first `early_barrier` and the last
 * `latter_barrier` of the remaining ones (default 1 and 1, the code's
 * defaults, so the model's first and last blocks always stay), measure the
 * summed NLL of the calibration data without it, and remove the block
 * whose absence gives the lowest NLL (the first such on ties).  A
 * switched-off block passes its input through unchanged, which is the same
 * as dropping it from the block list, so that is what is evaluated.  No
 * weight is changed.
 *
 * Calibration: n_samples windows of seq_len tokens drawn with the shared
 * calibration sampler (harness/calibration.h): "windows" draws each
 * window's start with Python's random.randint(0, n - seq_len - 1) after
 * random.seed(seed) over the whole tokenized text, as GPTQ's and SLEB's
 * get_loaders do; "documents" is their C4 sampling.  (sleb.py itself
 * shuffles dataset rows with the HF datasets shuffle and cuts the joined
 * text into consecutive windows; that shuffle is not reproduced.)
 * NLL of a window: Σ_{t < seq_len-1} −log p(token_{t+1} | tokens_{≤t})
 * (sleb.py scales the mean by seq_len instead of seq_len − 1: the same
 * argmin).  Each window runs as one sequence, block by block: the hidden
 * states before a candidate are shared by all later candidates of the
 * phase (phase_nlls), and the head takes chunks of positions so the logits
 * buffer stays small for large vocabularies.
 *
 * Result: m->blocks becomes a new array of the kept blocks and m->n_layer
 * shrinks; the old array and the removed blocks' payloads are not freed
 * (they belong to the runner's snapshot, which restores them). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "calibration.h"
#include "plugin.h"

enum { LOGIT_CHUNK = 256 }; /* positions per forward call */

typedef struct {
    const sb_model *m;         /* the model being searched (unchanged during the search) */
    const sb_calib_set *set;
    const sb_run_ctx *ctx;
    float *logits;             /* [LOGIT_CHUNK, n_vocab] */
    double passes_done, passes_total;
} nll_eval;

/* Σ −log p(next token) over positions [t0, t0 + n) of one window, given their logits. */
static double chunk_nll(const float *logits, const int32_t *window, int t0, int n, int seq_len, int n_vocab) {
    double nll = 0;
    for (int i = 0; i < n && t0 + i + 1 < seq_len; i++) {
        const float *row = logits + (int64_t)i * n_vocab;
        nll += sb_vec_logsumexp(row, n_vocab) - (double)row[window[t0 + i + 1]];
    }
    return nll;
}

/* NLL of one window from its final hidden states x [seq_len, d_model],
 * added chunk by chunk of head rows to *total. */
static int window_nll(nll_eval *e, sb_session *s, const float *x, const int32_t *window, double *total, sb_err *err) {
    int seq_len = e->set->seq_len, chunk = seq_len < LOGIT_CHUNK ? seq_len : LOGIT_CHUNK;
    for (int t0 = 0; t0 < seq_len; t0 += chunk) {
        int n = seq_len - t0 < chunk ? seq_len - t0 : chunk;
        int rc = sb_session_logits(s, x + (int64_t)t0 * e->m->d_model, n, e->logits, err);
        if (rc) return rc;
        *total += chunk_nll(e->logits, window, t0, n, seq_len, e->m->n_vocab);
    }
    return SB_OK;
}

/* nll[j] += summed NLL of the calibration windows without block j of
 * `view`, for every candidate j in [j0, j1).  Switching block j off leaves
 * blocks [0, j) as they are, so per window their output (prefix) is
 * computed once, one block further per candidate, and each candidate runs
 * only the blocks after it: about half the block work of running every
 * candidate model from the embeddings. */
static int phase_nlls(nll_eval *e, const sb_model *view, int j0, int j1, double *nll, sb_err *err) {
    int seq_len = e->set->seq_len;
    size_t floats = (size_t)seq_len * (size_t)view->d_model;
    float *prefix = sb_malloc(err, sizeof(float) * floats), *x = sb_malloc(err, sizeof(float) * floats);
    sb_session *s = NULL;
    int rc = prefix && x ? sb_session_new(view, e->ctx ? e->ctx->pool : NULL, 1, seq_len, seq_len, &s, err) : SB_EINTERNAL;
    for (int k = 0; !rc && k < e->set->n_samples; k++) {
        const int32_t *window = e->set->tokens + (int64_t)k * seq_len;
        sb_session_reset(s);
        rc = sb_session_embed(s, window, seq_len, prefix, err);
        for (int j = 0; !rc && j < j1; j++) {
            if (j >= j0) {
                rc = sb_session_forward_blocks(s, prefix, seq_len, j + 1, view->n_layer, x, err);
                if (!rc) rc = window_nll(e, s, x, window, &nll[j], err);
                e->passes_done++;
                sb_run_progress(e->ctx, e->passes_done, e->passes_total, "windows");
            }
            if (!rc && j + 1 < j1) rc = sb_session_forward_blocks(s, prefix, seq_len, j, j + 1, prefix, err);
        }
    }
    sb_session_free(s);
    free(prefix);
    free(x);
    return rc;
}

/* The blocks alive[0..n_alive) except alive[skip] (skip < 0: none), into dst. */
static int gather_blocks(const sb_model *m, const int *alive, int n_alive, int skip, sb_block *dst) {
    int n = 0;
    for (int i = 0; i < n_alive; i++)
        if (i != skip) dst[n++] = m->blocks[alive[i]];
    return n;
}

typedef struct {
    int n_remove, early, latter;
    int *alive;                /* original indices of the blocks still in */
    int n_alive;
    sb_block *work;            /* the candidate block list of a view */
    cJSON *phases;             /* per phase: removed block and every candidate's NLL */
} search_state;

static cJSON *candidate_json(int block, double nll, int64_t tokens) {
    cJSON *c = cJSON_CreateObject();
    if (c && (!cJSON_AddNumberToObject(c, "block", block) || !cJSON_AddNumberToObject(c, "nll", nll) ||
              !cJSON_AddNumberToObject(c, "mean_nll", nll / (double)tokens))) {
        cJSON_Delete(c);
        return NULL;
    }
    return c;
}

/* One greedy phase: the position in alive[] of the block to remove. */
static int search_phase(search_state *st, nll_eval *e, int *best_pos, sb_err *err) {
    int64_t tokens = (int64_t)e->set->n_samples * (e->set->seq_len - 1);
    cJSON *phase = cJSON_CreateObject(), *cands = cJSON_AddArrayToObject(phase, "candidates");
    if (!phase || !cands || !cJSON_AddItemToArray(st->phases, phase)) {
        cJSON_Delete(phase); /* not attached to the details */
        return sb_err_set(err, SB_EINTERNAL, "out of memory (sleb details)");
    }
    sb_model view = *e->m;
    view.blocks = st->work;
    view.n_layer = gather_blocks(e->m, st->alive, st->n_alive, -1, st->work);
    double *nll = sb_calloc(err, (size_t)st->n_alive, sizeof(double));
    if (!nll) return SB_EINTERNAL;
    int rc = phase_nlls(e, &view, st->early, st->n_alive - st->latter, nll, err);
    double best = INFINITY;
    *best_pos = -1;
    for (int j = st->early; !rc && j < st->n_alive - st->latter; j++) {
        cJSON *c = candidate_json(st->alive[j], nll[j], tokens);
        if (!c || !cJSON_AddItemToArray(cands, c)) {
            cJSON_Delete(c);
            rc = sb_err_set(err, SB_EINTERNAL, "out of memory (sleb details)");
        } else if (nll[j] < best) {
            best = nll[j];
            *best_pos = j;
        }
    }
    free(nll);
    if (rc) return rc;
    if (*best_pos < 0) return sb_err_set(err, SB_EINTERNAL, "sleb: no candidate block in a phase");
    if (!cJSON_AddNumberToObject(phase, "removed", st->alive[*best_pos]) ||
        !cJSON_AddNumberToObject(phase, "mean_nll", best / (double)tokens))
        return sb_err_set(err, SB_EINTERNAL, "out of memory (sleb details)");
    return SB_OK;
}

/* Blocks to remove: n_blocks when set, else floor(ratio · n_layer). */
static int blocks_to_remove(const sb_model *m, const sb_params *p, int early, int latter, int *n, sb_err *err) {
    int by_count = (int)sb_param_num(p, "n_blocks");
    *n = by_count > 0 ? by_count : (int)floor(sb_param_num(p, "ratio") * m->n_layer + 1e-9);
    const char *which = by_count > 0 ? "n_blocks" : "ratio";
    if (*n < 1)
        return sb_err_set(err, SB_EINPUT, "sleb: ratio=%g removes no block of %d (set n_blocks or a larger ratio)",
                          sb_param_num(p, "ratio"), m->n_layer);
    if (*n + early + latter > m->n_layer)
        return sb_err_set(err, SB_EINPUT,
                          "sleb: %s asks for %d blocks of %d, but with early_barrier=%d and latter_barrier=%d at most "
                          "%d can be removed",
                          which, *n, m->n_layer, early, latter, m->n_layer - early - latter);
    return SB_OK;
}

static int draw_calibration(const sb_model *m, const sb_params *p, sb_calib_set *set, sb_err *err) {
    sb_calib_config cfg = {
        .path = sb_param_str(p, "data"),
        .format = sb_param_str(p, "format"),
        .sampling = sb_param_str(p, "sampling"),
        .n_samples = (int)sb_param_num(p, "n_samples"),
        .seq_len = (int)sb_param_num(p, "seq_len"),
        .seed = (uint64_t)sb_param_num(p, "seed"),
    };
    int rc = sb_calib_config_check(&cfg, err);
    if (!rc && !m->tokenizer) rc = sb_err_set(err, SB_EINPUT, "sleb: the model has no tokenizer for its calibration text");
    if (!rc) rc = sb_calib_draw(m->tokenizer, &cfg, set, err);
    return rc ? sb_err_prefix(err, "sleb") : SB_OK;
}

/* Runs the greedy search; st->alive ends as the kept blocks, removed lists the removals in order. */
static int run_search(search_state *st, nll_eval *e, cJSON *removed, sb_err *err) {
    for (int phase = 0; phase < st->n_remove; phase++) {
        int pos = -1;
        int rc = search_phase(st, e, &pos, err);
        if (rc) return rc;
        cJSON *idx = cJSON_CreateNumber(st->alive[pos]);
        if (!idx || !cJSON_AddItemToArray(removed, idx)) {
            cJSON_Delete(idx);
            return sb_err_set(err, SB_EINTERNAL, "out of memory (sleb details)");
        }
        memmove(st->alive + pos, st->alive + pos + 1, sizeof(int) * (size_t)(st->n_alive - pos - 1));
        st->n_alive--;
    }
    return SB_OK;
}

static int fill_report(sb_model *m, uint64_t params_before, const search_state *st, const sb_calib_set *set,
                       sb_method_report *report, sb_err *err) {
    report->params_removed = params_before - sb_model_param_count(m);
    report->bits_per_weight = sb_model_bits_per_weight(m);
    report->real_quant = true; /* the blocks are really gone */
    cJSON *kept = cJSON_AddArrayToObject(report->details, "kept_blocks");
    bool ok = kept != NULL;
    for (int i = 0; ok && i < st->n_alive; i++) {
        cJSON *n = cJSON_CreateNumber(st->alive[i]);
        ok = n && cJSON_AddItemToArray(kept, n);
        if (!ok) cJSON_Delete(n);
    }
    cJSON *calib = ok ? sb_calib_set_describe(set) : NULL;
    if (!calib || !cJSON_AddItemToObject(report->details, "calibration", calib)) {
        cJSON_Delete(calib);
        ok = false;
    }
    ok = ok && cJSON_AddNumberToObject(report->details, "early_barrier", st->early) &&
         cJSON_AddNumberToObject(report->details, "latter_barrier", st->latter);
    return ok ? SB_OK : sb_err_set(err, SB_EINTERNAL, "out of memory (sleb report)");
}

/* m->blocks = a new array of the kept blocks (the old one stays the snapshot's). */
static int install_blocks(sb_model *m, const search_state *st, sb_err *err) {
    sb_block *kept = sb_malloc(err, sizeof(sb_block) * (size_t)st->n_alive);
    if (!kept) return SB_EINTERNAL;
    gather_blocks(m, st->alive, st->n_alive, -1, kept);
    m->blocks = kept;
    m->n_layer = st->n_alive;
    return SB_OK;
}

static int sleb_apply(sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_method_report *report, sb_err *err) {
    search_state st = {.early = (int)sb_param_num(p, "early_barrier"), .latter = (int)sb_param_num(p, "latter_barrier")};
    int rc = blocks_to_remove(m, p, st.early, st.latter, &st.n_remove, err);
    if (rc) return rc;
    sb_calib_set set;
    memset(&set, 0, sizeof set);
    rc = draw_calibration(m, p, &set, err);
    if (rc) return rc;
    int chunk = set.seq_len < LOGIT_CHUNK ? set.seq_len : LOGIT_CHUNK;
    nll_eval e = {m, &set, ctx, NULL, 0, 0};
    e.logits = sb_malloc(err, sizeof(float) * (size_t)chunk * (size_t)m->n_vocab);
    st.alive = sb_malloc(err, sizeof(int) * (size_t)m->n_layer);
    st.work = sb_malloc(err, sizeof(sb_block) * (size_t)m->n_layer);
    report->details = cJSON_CreateObject();
    st.phases = cJSON_AddArrayToObject(report->details, "phases");
    cJSON *removed = cJSON_AddArrayToObject(report->details, "removed_blocks");
    rc = e.logits && st.alive && st.work && report->details && st.phases && removed
             ? SB_OK
             : sb_err_set(err, SB_EINTERNAL, "out of memory (sleb)");
    if (!rc) {
        st.n_alive = m->n_layer;
        for (int i = 0; i < m->n_layer; i++) st.alive[i] = i;
        for (int ph = 0; ph < st.n_remove; ph++) e.passes_total += (double)(m->n_layer - ph - st.early - st.latter);
        e.passes_total *= set.n_samples;
        rc = run_search(&st, &e, removed, err);
    }
    uint64_t params_before = sb_model_param_count(m);
    if (!rc) rc = install_blocks(m, &st, err);
    if (!rc) rc = fill_report(m, params_before, &st, &set, report, err);
    free(e.logits);
    free(st.alive);
    free(st.work);
    sb_calib_set_free(&set);
    return rc;
}

static const sb_param_spec sleb_params[] = {
    {"n_blocks", SB_PARAM_INT, "0", 0, 100000, NULL, "blocks to remove; 0: floor(ratio * n_layer)"},
    {"ratio", SB_PARAM_FLOAT, "0.2", 0, 1, NULL, "fraction of the blocks to remove when n_blocks is 0"},
    {"data", SB_PARAM_STRING, NULL, 1, 0, NULL, "calibration text file"},
    {"format", SB_PARAM_STRING, "raw", 1, 0, "raw|jsonl", "calibration file format"},
    {"sampling", SB_PARAM_STRING, "windows", 1, 0, "windows|documents",
     "windows: random windows of the whole text (wikitext2 loader); documents: a window of a random long document (c4)"},
    {"n_samples", SB_PARAM_INT, "128", 1, 1000000, NULL, "calibration windows"},
    {"seq_len", SB_PARAM_INT, "2048", 2, 1000000, NULL, "tokens per calibration window"},
    {"seed", SB_PARAM_INT, "0", 0, 4294967295.0, NULL, "seed of the window sampling (Python random.seed)"},
    {"early_barrier", SB_PARAM_INT, "1", 0, 100000, NULL, "first remaining blocks never removed"},
    {"latter_barrier", SB_PARAM_INT, "1", 0, 100000, NULL, "last remaining blocks never removed"},
};

const sb_method sb_method_sleb = {
    .abi = SB_PLUGIN_ABI,
    .name = "sleb",
    .family = "block-dropping",
    .summary = "greedy removal of the transformer blocks whose absence raises the calibration NLL least",
    .paper = {"SLEB: Streamlining LLMs through Redundancy Verification and Elimination of Transformer Blocks",
              "2402.09025", "2024"},
    .params = sleb_params,
    .n_params = (int)(sizeof sleb_params / sizeof sleb_params[0]),
    .apply = sleb_apply,
};

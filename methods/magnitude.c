/* magnitude.c - magnitude pruning: remove the weights of smallest |w|.
 *
 * Gupta et al. (arXiv 2209.14624) show that global magnitude pruning (one
 * threshold over all prunable layers) is a strong baseline; per-layer
 * pruning (the same sparsity in every layer) and N:M semi-structured
 * pruning (in every group of m consecutive inputs of a row keep the n
 * largest |w|; 2:4 as in NVIDIA's sparse tensor cores, the SparseGPT and
 * Wanda magnitude baselines) are the other two usual variants.
 *
 * What is pruned: the linear layers of the blocks (q, k, v, o, gate, up,
 * down). Embeddings and the head are left dense, as in the papers' LLM
 * baselines (the head is often tied to the embedding, and pruning it hurts
 * far more than its share of weights).
 *
 * How many: k = round(sparsity x N) weights (half away from zero), N being
 * the prunable weights of the model (scope=global) or of each layer
 * (scope=layer). The k removed are exactly those of the k smallest |w|:
 * the threshold is the k-th smallest |w|, found by a two-pass radix
 * selection over the bits of |w| (|w| >= 0 orders like its bit pattern),
 * so no copy of the model is sorted. Ties at the threshold are removed in
 * model order (layer 0 q, k, v, o, gate, up, down, then layer 1, ...;
 * row-major inside a layer) until k are removed. NaNs count as the largest
 * magnitudes and are kept. With pattern=n:m, sparsity and scope are
 * ignored: each group keeps its n largest |w|, ties kept at the lower
 * column.
 *
 * Storage (format): csr (unstructured) and n:m store only the kept
 * weights (real sparsity: real_quant = true, exact storage bits); dense
 * keeps f32 with zeros in place (for comparisons; real_quant = false).
 * auto, the default, picks csr for unstructured pruning and n:m for n:m. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "format_sparse.h"
#include "plugin.h"

typedef enum { STORE_CSR, STORE_NM, STORE_DENSE } store_kind;

typedef struct prune_cfg {
    double sparsity;
    bool global;          /* one threshold over every prunable layer */
    bool nm;              /* pattern n:m */
    int n, m;
    store_kind store;
} prune_cfg;

/* The prunable linears of a model, in model order. */
typedef struct linear_list {
    sb_linear **w;
    int count;
    int64_t max_weights;  /* rows * cols of the largest */
    uint64_t total;       /* weights over all */
} linear_list;

static const char *const linear_names[] = {"q", "k", "v", "o", "gate", "up", "down"};

static void block_linears(sb_block *b, sb_linear *out[7]) {
    sb_linear *lins[7] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
    memcpy(out, lins, sizeof lins);
}

static int list_linears(sb_model *m, linear_list *out, sb_err *err) {
    memset(out, 0, sizeof *out);
    out->w = sb_malloc(err, sizeof(sb_linear *) * 7 * (size_t)(m->n_layer > 0 ? m->n_layer : 1));
    if (!out->w) return SB_EINTERNAL;
    for (int l = 0; l < m->n_layer; l++) {
        sb_linear *lins[7];
        block_linears(&m->blocks[l], lins);
        for (int i = 0; i < 7; i++) {
            if (!sb_linear_present(lins[i])) continue;
            out->w[out->count++] = lins[i];
            int64_t n = lins[i]->rows * lins[i]->cols;
            out->total += (uint64_t)n;
            if (n > out->max_weights) out->max_weights = n;
        }
    }
    return SB_OK;
}

/* ---- parameters, all checked before the model is touched ----------------- */

static store_kind store_of(const char *format, bool nm) {
    if (strcmp(format, "dense") == 0) return STORE_DENSE;
    if (strcmp(format, "csr") == 0) return STORE_CSR;
    if (strcmp(format, "n:m") == 0) return STORE_NM;
    return nm ? STORE_NM : STORE_CSR; /* auto */
}

/* m must divide the input width of every prunable linear. */
static int check_widths(sb_model *model, int m, sb_err *err) {
    for (int l = 0; l < model->n_layer; l++) {
        sb_linear *lins[7];
        block_linears(&model->blocks[l], lins);
        for (int i = 0; i < 7; i++)
            if (sb_linear_present(lins[i]) && lins[i]->cols % m)
                return sb_err_set(err, SB_EINPUT, "m: %d does not divide the input width %lld of layer %d %s", m,
                                  (long long)lins[i]->cols, l, linear_names[i]);
    }
    return SB_OK;
}

static int read_cfg(sb_model *model, const sb_params *p, prune_cfg *cfg, sb_err *err) {
    cfg->sparsity = sb_param_num(p, "sparsity");
    cfg->global = strcmp(sb_param_str(p, "scope"), "layer") != 0;
    cfg->nm = strcmp(sb_param_str(p, "pattern"), "n:m") == 0;
    cfg->n = (int)sb_param_num(p, "n");
    cfg->m = (int)sb_param_num(p, "m");
    cfg->store = store_of(sb_param_str(p, "format"), cfg->nm);
    if (!(cfg->sparsity >= 0 && cfg->sparsity < 1))
        return sb_err_set(err, SB_EINPUT, "sparsity: %g is outside [0, 1)", cfg->sparsity);
    if (cfg->store == STORE_NM && !cfg->nm) return sb_err_set(err, SB_EINPUT, "format: n:m needs pattern=n:m");
    if (!cfg->nm) return SB_OK;
    if (cfg->n < 1 || cfg->n >= cfg->m)
        return sb_err_set(err, SB_EINPUT, "n: %d must be at least 1 and smaller than m = %d", cfg->n, cfg->m);
    if (cfg->m > 256) return sb_err_set(err, SB_EINPUT, "m: %d is larger than 256", cfg->m);
    return check_widths(model, cfg->m, err);
}

/* ---- the global or per-layer threshold ----------------------------------- */

/* |w| as an orderable key: the bits of a float without its sign. */
static uint32_t key_of(float w) {
    uint32_t u;
    memcpy(&u, &w, sizeof u);
    return u & 0x7fffffffu;
}

/* Removes every |w| below `below`, then weights at exactly `below` while
 * ties_left lasts (shared across layers, so ties go in model order). */
typedef struct threshold {
    uint32_t below;
    uint64_t ties_left;
} threshold;

enum { BINS = 1 << 16 };

/* hist[bin] += count of keys whose top 16 bits are `prefix` (pass 2) or
 * any (pass 1, prefix < 0), binned by the other half. */
static void histogram(const float *w, int64_t n, int64_t prefix, uint64_t *hist) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t key = key_of(w[i]);
        if (prefix < 0) hist[key >> 16]++;
        else if ((int64_t)(key >> 16) == prefix) hist[key & 0xffffu]++;
    }
}

/* The bin holding the rank-th smallest (1-based) key; *before = keys in lower bins. */
static uint32_t find_bin(const uint64_t *hist, uint64_t rank, uint64_t *before) {
    uint64_t seen = 0;
    uint32_t b = 0;
    while (b + 1 < BINS && seen + hist[b] < rank) seen += hist[b++];
    *before = seen;
    return b;
}

static void histogram_pass(const linear_list *L, int first, int count, float *buf, int64_t prefix, uint64_t *hist) {
    memset(hist, 0, sizeof(uint64_t) * BINS);
    for (int i = first; i < first + count; i++) {
        const sb_linear *w = L->w[i];
        w->fmt->decode_rows(w, 0, w->rows, buf);
        histogram(buf, w->rows * w->cols, prefix, hist);
    }
}

/* Threshold removing the k smallest |w| of linears [first, first + count):
 * the top 16 bits of the k-th key from one pass, the low 16 from another. */
static int select_threshold(const linear_list *L, int first, int count, uint64_t k, float *buf, threshold *out,
                            sb_err *err) {
    *out = (threshold){0, 0};
    if (k == 0) return SB_OK;
    uint64_t *hist = sb_malloc(err, sizeof(uint64_t) * BINS);
    if (!hist) return SB_EINTERNAL;
    uint64_t before_hi, before_lo;
    histogram_pass(L, first, count, buf, -1, hist);
    uint32_t hi = find_bin(hist, k, &before_hi);
    histogram_pass(L, first, count, buf, hi, hist);
    uint32_t lo = find_bin(hist, k - before_hi, &before_lo);
    *out = (threshold){hi << 16 | lo, k - before_hi - before_lo};
    free(hist);
    return SB_OK;
}

/* ---- pruning one layer ---------------------------------------------------- */

static uint64_t prune_below(float *w, int64_t n, threshold *t) {
    uint64_t removed = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t key = key_of(w[i]);
        if (key < t->below || (key == t->below && t->ties_left > 0)) {
            if (key == t->below) t->ties_left--;
            w[i] = 0;
            removed++;
        }
    }
    return removed;
}

typedef struct ranked {
    uint32_t key;
    int index;
} ranked;

/* Larger |w| first; at equal |w| the lower column first (it is kept). */
static int by_key_desc(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? 1 : -1;
    return (x->index > y->index) - (x->index < y->index);
}

/* Keeps the n largest |w| of one group of m: small groups (2:4, 4:8) by
 * counting, for each weight, the weights that rank above it; large ones
 * by sorting. */
static void prune_group(float *g, int n, int m, ranked *scratch) {
    if (m <= 16) {
        uint32_t keys[16];
        for (int i = 0; i < m; i++) keys[i] = key_of(g[i]);
        for (int i = 0; i < m; i++) {
            int above = 0;
            for (int j = 0; j < m; j++) above += keys[j] > keys[i] || (keys[j] == keys[i] && j < i);
            if (above >= n) g[i] = 0;
        }
        return;
    }
    for (int i = 0; i < m; i++) scratch[i] = (ranked){key_of(g[i]), i};
    qsort(scratch, (size_t)m, sizeof *scratch, by_key_desc);
    for (int i = n; i < m; i++) g[scratch[i].index] = 0;
}

static uint64_t prune_nm(float *w, int64_t n_weights, int n, int m) {
    ranked scratch[256];
    for (int64_t g = 0; g < n_weights / m; g++) prune_group(w + g * m, n, m, scratch);
    return (uint64_t)(n_weights / m) * (uint64_t)(m - n);
}

/* A new linear in the configured storage holding dense (no bias). */
static int build_linear(const sb_linear *w, const float *dense, const prune_cfg *cfg, sb_linear *out, sb_err *err) {
    int rc;
    if (cfg->store == STORE_CSR) rc = sb_sparse_pack_csr(w->rows, w->cols, dense, out, err);
    else if (cfg->store == STORE_NM) rc = sb_sparse_pack_nm(w->rows, w->cols, cfg->n, cfg->m, dense, out, err);
    else {
        size_t bytes = sizeof(float) * (size_t)(w->rows * w->cols);
        float *copy = sb_malloc(err, bytes);
        rc = copy ? SB_OK : SB_EINTERNAL;
        if (copy) memcpy(copy, dense, bytes);
        *out = (sb_linear){.fmt = &sb_format_f32, .rows = w->rows, .cols = w->cols, .data = copy, .owned = copy};
    }
    return rc;
}

/* Decodes, prunes and replaces one linear (the old payload is left to its
 * owner, as plugin.h requires). */
static int prune_linear(sb_linear *w, const prune_cfg *cfg, threshold *t, float *buf, uint64_t *removed, sb_err *err) {
    int64_t n = w->rows * w->cols;
    w->fmt->decode_rows(w, 0, w->rows, buf);
    *removed += cfg->nm ? prune_nm(buf, n, cfg->n, cfg->m) : prune_below(buf, n, t);
    sb_linear fresh;
    int rc = build_linear(w, buf, cfg, &fresh, err);
    return rc ? rc : sb_linear_replace(w, &fresh, err);
}

/* k = round(sparsity x n). */
static uint64_t prune_count(double sparsity, uint64_t n) { return (uint64_t)llround(sparsity * (double)n); }

static int prune_all(const linear_list *L, const prune_cfg *cfg, float *buf, const sb_run_ctx *ctx, uint64_t *removed,
                     threshold *global, sb_err *err) {
    int rc = SB_OK;
    if (!cfg->nm && cfg->global) rc = select_threshold(L, 0, L->count, prune_count(cfg->sparsity, L->total), buf, global, err);
    for (int i = 0; !rc && i < L->count; i++) {
        threshold layer = {0, 0};
        if (!cfg->nm && !cfg->global) {
            uint64_t n = (uint64_t)(L->w[i]->rows * L->w[i]->cols);
            rc = select_threshold(L, i, 1, prune_count(cfg->sparsity, n), buf, &layer, err);
        }
        if (!rc) rc = prune_linear(L->w[i], cfg, cfg->global ? global : &layer, buf, removed, err);
        sb_run_progress(ctx, i + 1, L->count, "layers");
    }
    return rc;
}

static const char *store_name(store_kind s) { return s == STORE_CSR ? "csr" : s == STORE_NM ? "n:m" : "dense"; }

static void fill_report(sb_model *m, const prune_cfg *cfg, const linear_list *L, uint64_t removed, const threshold *t,
                        sb_method_report *rep) {
    rep->bits_per_weight = sb_model_bits_per_weight(m);
    rep->params_removed = removed;
    rep->real_quant = cfg->store != STORE_DENSE;
    rep->details = cJSON_CreateObject();
    if (!rep->details) return;
    cJSON_AddStringToObject(rep->details, "format", store_name(cfg->store));
    cJSON_AddStringToObject(rep->details, "pruned", "block linears (q, k, v, o, gate, up, down); embeddings and head dense");
    cJSON_AddNumberToObject(rep->details, "prunable_weights", (double)L->total);
    cJSON_AddNumberToObject(rep->details, "pruned_weights", (double)removed);
    cJSON_AddNumberToObject(rep->details, "sparsity_achieved", L->total ? (double)removed / (double)L->total : 0);
    if (!cfg->nm && cfg->global) {
        float thr;
        memcpy(&thr, &t->below, sizeof thr);
        cJSON_AddNumberToObject(rep->details, "threshold_abs", thr);
    }
}

static int magnitude_apply(sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_method_report *rep, sb_err *err) {
    prune_cfg cfg;
    int rc = read_cfg(m, p, &cfg, err);
    if (rc) return rc;
    linear_list L;
    rc = list_linears(m, &L, err);
    float *buf = rc ? NULL : sb_malloc(err, sizeof(float) * (size_t)(L.max_weights > 0 ? L.max_weights : 1));
    if (!rc && !buf) rc = SB_EINTERNAL;
    uint64_t removed = 0;
    threshold global = {0, 0};
    if (!rc) rc = prune_all(&L, &cfg, buf, ctx, &removed, &global, err);
    if (!rc) fill_report(m, &cfg, &L, removed, &global, rep);
    free(buf);
    free(L.w);
    return rc;
}

static const sb_param_spec magnitude_params[] = {
    {"sparsity", SB_PARAM_FLOAT, "0.5", 0, 1, NULL, "fraction of the prunable weights removed, in [0, 1) (unstructured)"},
    {"scope", SB_PARAM_STRING, "global", 1, 0, "global|layer", "one threshold over all layers, or the same sparsity per layer"},
    {"pattern", SB_PARAM_STRING, "unstructured", 1, 0, "unstructured|n:m", "any weights, or n kept in every group of m inputs"},
    {"n", SB_PARAM_INT, "2", 1, 255, NULL, "n:m: weights kept per group"},
    {"m", SB_PARAM_INT, "4", 2, 256, NULL, "n:m: group size (must divide every input width)"},
    {"format", SB_PARAM_STRING, "auto", 1, 0, "auto|csr|n:m|dense",
     "storage: auto = csr (unstructured) or n:m (n:m); dense keeps f32 with zeros"},
};

const sb_method sb_method_magnitude = {
    .abi = SB_PLUGIN_ABI,
    .name = "magnitude",
    .family = "pruning",
    .summary = "magnitude pruning of the block linears: global or per-layer threshold, or N:M; stored sparse",
    .paper = {"Is Complexity Required for Neural Network Pruning? A Case Study on Global Magnitude Pruning", "2209.14624",
              "2022"},
    .params = magnitude_params,
    .n_params = sizeof magnitude_params / sizeof magnitude_params[0],
    .apply = magnitude_apply,
};

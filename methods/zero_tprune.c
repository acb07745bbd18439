/* zero_tprune.c - Zero-TPrune (Wang et al., "Zero-TPrune: Zero-Shot Token
 * Pruning through Leveraging of the Attention Graph in Pre-Trained
 * Transformers", arXiv 2305.17328, CVPR 2024), training-free.
 *
 * After the block before each stage boundary (`layers`), with that
 * block's attention averaged over heads as a graph A (A[j][i]: how much
 * query j attends to key i; rows sum to 1):
 *  1. importance stage: weighted PageRank, s <- Aᵀ s from s = 1/T for
 *     at most `iterations` steps (a token is important when important tokens
 *     attend to it); the `importance_share` of the tokens to remove are
 *     the patch tokens of lowest s;
 *  2. similarity stage: the surviving patch tokens, sorted by s, are dealt
 *     alternately into groups B (ranks 0, 2, ...) and A (ranks 1, 3, ...);
 *     each A token's redundancy is its largest cosine similarity to a B
 *     token, and the rest of the removals are the most redundant A tokens.
 * Tokens are pruned, not merged; class tokens always stay. Per boundary
 * the patch tokens kept are int(ratio x current).  Simplifications against
 * the paper, on purpose: heads are averaged (no variance-based head
 * filter or emphasising aggregation) and similarity is taken between
 * hidden states, not keys (the block's keys are not kept).
 * ratio = 1 keeps everything and gives exactly the dense logits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "token_select.h"

static int zt_count(const sb_token_reducer *r, int layer, int n_tok, int n_prefix, int n_patches0) {
    (void)n_patches0;
    if (!sb_token_is_stage(r, layer) || r->ratio >= 1.0) return n_tok;
    return n_prefix + sb_token_keep(n_tok - n_prefix, r->ratio);
}

/* s[T] = PageRank of the attention graph a[T][T] (row = query): s <- Aᵀ s,
 * row by row as axpy; stops early once an iteration moves s by < 1e-7 in
 * L1 (the stationary vector is reached well before 30 steps on ViTs). */
static void weighted_pagerank(const float *a, int T, int iterations, float *s, float *tmp) {
    for (int i = 0; i < T; i++) s[i] = 1.0f / T;
    for (int it = 0; it < iterations; it++) {
        memset(tmp, 0, sizeof(float) * (size_t)T);
        for (int j = 0; j < T; j++) sb_vec_axpy(tmp, s[j], a + (int64_t)j * T, T);
        double moved = 0;
        for (int i = 0; i < T; i++) moved += fabs((double)tmp[i] - s[i]);
        memcpy(s, tmp, sizeof(float) * (size_t)T);
        if (moved < 1e-7) break;
    }
}

/* Marks the n_remove most redundant A-group tokens dead (similarity stage). */
static void similarity_stage(const sb_token_view *v, const float *s, bool *alive, int n_remove, float *redundancy,
                             float *inv_norm, int32_t *order) {
    int T = v->n_tok, d = v->m->d_model, n = 0;
    for (int i = v->n_prefix; i < T; i++)
        if (alive[i]) order[n++] = i;
    for (int a = 0; a < n; a++) /* sort survivors by importance, descending (insertion sort: T is small) */
        for (int b = a; b > 0 && s[order[b]] > s[order[b - 1]]; b--) {
            int32_t t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    for (int i = 0; i < T; i++) redundancy[i] = -INFINITY;
    float *inv = inv_norm; /* 1/|x_i|, so a cosine is one dot product */
    for (int a = 0; a < n; a++) {
        const float *x = v->x + (int64_t)order[a] * d;
        float nn = sb_vec_dot(x, x, d);
        inv[order[a]] = nn > 0 ? 1.0f / sqrtf(nn) : 0.0f;
    }
    for (int a = 1; a < n; a += 2) {
        float best = -2;
        const float *xa = v->x + (int64_t)order[a] * d;
        for (int b = 0; b < n; b += 2) {
            float c = sb_vec_dot(xa, v->x + (int64_t)order[b] * d, d) * inv[order[a]] * inv[order[b]];
            if (c > best) best = c;
        }
        redundancy[order[a]] = best;
    }
    for (int k = 0; k < n_remove; k++) {
        int worst = -1;
        for (int i = v->n_prefix; i < T; i++)
            if (alive[i] && redundancy[i] > -INFINITY && (worst < 0 || redundancy[i] > redundancy[worst])) worst = i;
        if (worst < 0) break;
        alive[worst] = false;
    }
}

static int zt_select(const sb_token_reducer *r, const sb_token_view *v, int32_t *keep, int *n_keep, sb_err *err) {
    if (!v->attn) return sb_err_set(err, SB_EINTERNAL, "%s: no attention graph before block %d", r->name, v->layer);
    int T = v->n_tok, n_remove = T - *n_keep;
    float *s = malloc(sizeof(float) * (size_t)T * 4);
    bool *alive = malloc((size_t)T);
    int32_t *order = malloc(sizeof(int32_t) * (size_t)T);
    if (!s || !alive || !order) {
        free(s);
        free(alive);
        free(order);
        return sb_err_set(err, SB_EINTERNAL, "out of memory");
    }
    weighted_pagerank(v->attn, T, (int)r->aux[1], s, s + T);
    int by_importance = (int)(n_remove * r->aux[0] + 0.5);
    for (int i = 0; i < T; i++) alive[i] = true;
    sb_token_top(s, NULL, T, v->n_prefix, T - by_importance, keep); /* survivors of the importance stage */
    memset(alive, 0, (size_t)T);
    for (int i = 0; i < T - by_importance; i++) alive[keep[i]] = true;
    similarity_stage(v, s, alive, n_remove - by_importance, s + T, s + 3 * T, order);
    int n = 0;
    for (int i = 0; i < T; i++)
        if (alive[i]) keep[n++] = i;
    if (n > *n_keep) { /* the similarity stage ran out of A tokens: drop the least important rest */
        sb_token_top(s, alive, T, v->n_prefix, *n_keep, keep);
        n = *n_keep;
    }
    *n_keep = n;
    free(s);
    free(alive);
    free(order);
    return SB_OK;
}

static int zt_apply(sb_model *m, const sb_params *p, const sb_run_ctx *ctx, sb_method_report *report, sb_err *err) {
    (void)ctx;
    sb_token_reducer *r;
    int rc = sb_token_reducer_new(m, "zero-tprune", &r, err);
    if (rc) return rc;
    r->ratio = sb_param_num(p, "ratio");
    r->aux[0] = sb_param_num(p, "importance_share");
    r->aux[1] = sb_param_num(p, "iterations");
    r->count = zt_count;
    r->select = zt_select;
    r->wants_attention = true;
    return sb_token_reducer_install(m, r, sb_param_str(p, "layers"), report, err);
}

static const sb_param_spec zt_params[] = {
    {"ratio", SB_PARAM_FLOAT, "0.7", 0.001, 1, NULL, "fraction of the patch tokens kept at each stage boundary"},
    {"layers", SB_PARAM_STRING, "auto", 0, -1, NULL,
     "blocks before which tokens are pruned: 'auto' (depth/4, depth/2, 3*depth/4) or a comma list"},
    {"importance_share", SB_PARAM_FLOAT, "0.5", 0, 1, NULL,
     "share of each boundary's removals made by the importance (PageRank) stage; the rest by similarity"},
    {"iterations", SB_PARAM_INT, "30", 1, 1000, NULL, "weighted PageRank iterations at most (stops when converged)"},
};

const sb_method sb_method_zero_tprune = {
    .abi = SB_PLUGIN_ABI,
    .name = "zero-tprune",
    .family = "token-reduction",
    .summary = "Zero-TPrune: attention-graph PageRank importance + similarity pruning of image tokens (training-free)",
    .paper = {"Zero-TPrune: Zero-Shot Token Pruning through Leveraging of the Attention Graph in Pre-Trained "
              "Transformers", "2305.17328", "2024"},
    .params = zt_params,
    .n_params = sizeof zt_params / sizeof zt_params[0],
    .apply = zt_apply,
};

/* test_token_reduce.c - PyramidDrop and Zero-TPrune on the tiny ViT/DeiT
 * fixtures (tests/reference/vit).
 *
 * - keep ratio 1: logits bit-identical to the dense pass;
 * - PyramidDrop at lambda 0.5 before block 1 equals a pass assembled by
 *   hand from the engine's pieces: block 0 dense, the class token's
 *   head-averaged attention of block 1 captured from a dense run, its top
 *   patch tokens gathered, block 1 on them, final norm and classifier;
 * - token counts and FLOPs fall as planned, measured FLOPs = planned;
 * - Zero-TPrune's two stages on a hand-made attention graph;
 * - bad parameters and text models are refused with SB_EINPUT. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "registry.h"
#include "vision.h"

/* Clears err first: sb_err keeps the first error set. */
static int apply(sb_model *m, const char *method, const char *const *args, int n, sb_err *err) {
    *err = (sb_err){0};
    const sb_method *meth = sb_registry_method(method);
    sb_params p;
    int rc = sb_params_from_strings(meth->params, meth->n_params, args, n, "test", &p, err);
    sb_method_report rep = {0};
    if (!rc) rc = meth->apply(m, &p, NULL, &rep, err);
    cJSON_Delete(rep.details);
    return rc;
}

/* A deterministic input image in [-1, 1]. */
static float *test_pixels(const sb_model *m) {
    int S = m->vision->image_size;
    float *px = malloc(sizeof(float) * 3 * (size_t)S * S);
    for (int i = 0; i < 3 * S * S; i++) px[i] = sinf(0.37f * i) * cosf(0.011f * i * i);
    return px;
}

static bool classify(const sb_model *m, sb_pool *pool, const float *px, float *logits, double *flops, int *tokens) {
    sb_vit *v;
    sb_err err = {0};
    if (!test_expect(sb_vit_new(m, pool, 1, &v, &err) == SB_OK, "%s", err.msg)) return false;
    bool ok = test_expect(sb_vit_classify(v, px, logits, &err) == SB_OK, "%s", err.msg);
    if (flops) *flops = sb_vit_last_flops(v);
    if (tokens) memcpy(tokens, sb_vit_last_tokens(v), sizeof(int) * (size_t)m->n_layer);
    sb_vit_free(v);
    return ok;
}

static void identity_case(const char *model, const char *method, const char *arg, sb_pool *pool) {
    char name[96], dir[256];
    snprintf(name, sizeof name, "token_reduce_%s_keep_all_%s", method, model);
    snprintf(dir, sizeof dir, "tests/reference/vit/%s", model);
    test_begin(name);
    sb_model *m;
    sb_err err = {0};
    if (!test_expect(sb_model_load(dir, &m, &err) == SB_OK, "%s", err.msg)) return test_end();
    float *px = test_pixels(m), dense[8], reduced[8];
    const char *args[] = {arg, "layers=1"};
    if (classify(m, pool, px, dense, NULL, NULL) && test_expect(apply(m, method, args, 2, &err) == SB_OK, "%s", err.msg) &&
        classify(m, pool, px, reduced, NULL, NULL))
        test_expect(memcmp(dense, reduced, sizeof(float) * (size_t)m->vision->n_labels) == 0, "logits changed at ratio 1");
    free(px);
    sb_model_free(m);
    test_end();
}

/* ---- PyramidDrop by hand ------------------------------------------------- */

typedef struct {
    int n_head, T;
    float *cls; /* [T] head-summed attention of token 0 */
} cls_capture;

static void grab_cls(void *user, int layer, int seq, int head, int t, const float *probs, int key0, int n_keys) {
    (void)layer, (void)seq, (void)head;
    cls_capture *c = user;
    if (t != 0) return;
    /* heads arrive on different workers: serialise by writing per head? keep it simple: one thread pool of 1 */
    for (int k = 0; k < n_keys; k++) c->cls[key0 + k] += probs[k] / c->n_head;
}

static void layer_norm_row(const sb_norm *n, float eps, const float *x, float *y, int d) {
    double mean = 0, sq = 0;
    for (int i = 0; i < d; i++) mean += x[i];
    mean /= d;
    for (int i = 0; i < d; i++) sq += (x[i] - mean) * (x[i] - mean);
    for (int i = 0; i < d; i++) y[i] = (float)((x[i] - mean) / sqrt(sq / d + eps)) * n->weight[i] + n->bias[i];
}

/* The reduced pass rebuilt from pieces, single-threaded (the capture above sums across heads). */
static void by_hand(const sb_model *m, const float *px, int n_keep_patches, float *logits) {
    int d = m->d_model, T = m->vision->n_prefix + m->vision->n_patches, P = m->vision->n_prefix;
    float *x = malloc(sizeof(float) * (size_t)T * d), *x1 = malloc(sizeof(float) * (size_t)T * d);
    float *g = malloc(sizeof(float) * (size_t)T * d), *h = malloc(sizeof(float) * (size_t)d);
    cls_capture cap = {m->blocks[1].n_head, T, calloc((size_t)T, sizeof(float))};
    sb_vit *v;
    sb_session *s;
    sb_err err = {0};
    sb_vit_new(m, NULL, 1, &v, &err);
    sb_session_new(m, NULL, 1, T, T, &s, &err);
    sb_vit_embed(v, px, x, &err);
    sb_session_forward_blocks(s, x, T, 0, 1, x1, &err);
    sb_session_set_attention_observer(s, grab_cls, &cap);
    sb_session_forward_blocks(s, x1, T, 1, 2, g, &err); /* dense block 1, only for its attention */
    sb_session_set_attention_observer(s, NULL, NULL);
    int n = 0;
    bool *taken = calloc((size_t)T, 1);
    for (int i = 0; i < P; i++) memcpy(g + (int64_t)n++ * d, x1 + (int64_t)i * d, sizeof(float) * (size_t)d);
    for (int k = 0; k < n_keep_patches; k++) { /* top patches by attention, in order of position */
        int best = -1;
        for (int i = P; i < T; i++)
            if (!taken[i] && (best < 0 || cap.cls[i] > cap.cls[best])) best = i;
        taken[best] = true;
    }
    for (int i = P; i < T; i++)
        if (taken[i]) memcpy(g + (int64_t)n++ * d, x1 + (int64_t)i * d, sizeof(float) * (size_t)d);
    sb_session_forward_blocks(s, g, n, 1, 2, g, &err);
    for (int l = 2; l < m->n_layer; l++) sb_session_forward_blocks(s, g, n, l, l + 1, g, &err);
    layer_norm_row(&m->final_norm, m->norm_eps, g, h, d);
    for (int c = 0; c < m->vision->n_labels; c++) {
        float acc = m->head.bias[c];
        const float *w = (const float *)m->head.data + (int64_t)c * d;
        for (int i = 0; i < d; i++) acc += w[i] * h[i];
        logits[c] = acc;
    }
    free(taken);
    free(cap.cls);
    sb_session_free(s);
    sb_vit_free(v);
    free(x);
    free(x1);
    free(g);
    free(h);
}

static void pyramid_case(const char *model) {
    char name[96], dir[256];
    snprintf(name, sizeof name, "token_reduce_pyramid_drop_by_hand_%s", model);
    snprintf(dir, sizeof dir, "tests/reference/vit/%s", model);
    test_begin(name);
    sb_model *m;
    sb_err err = {0};
    if (!test_expect(sb_model_load(dir, &m, &err) == SB_OK, "%s", err.msg)) return test_end();
    float *px = test_pixels(m), dense[8], reduced[8], hand[8];
    double dense_flops = sb_vit_dense_flops(m), flops = 0;
    int tokens[8];
    const char *args[] = {"lambda=0.5", "layers=1"};
    by_hand(m, px, m->vision->n_patches / 2, hand);
    bool ok = classify(m, NULL, px, dense, NULL, NULL) &&
              test_expect(apply(m, "pyramid-drop", args, 2, &err) == SB_OK, "%s", err.msg) &&
              classify(m, NULL, px, reduced, &flops, tokens);
    int L = m->vision->n_labels, T0 = m->vision->n_prefix + m->vision->n_patches;
    if (ok) {
        test_expect(test_max_abs_diff(reduced, hand, L) <= 1e-5 * test_max_abs(hand, L), "differs from the pass by hand by %g",
                    test_max_abs_diff(reduced, hand, L));
        test_expect(test_max_abs_diff(reduced, dense, L) > 1e-4, "dropping half the tokens changed nothing");
        test_expect(tokens[0] == T0 && tokens[1] == m->vision->n_prefix + m->vision->n_patches / 2, "tokens %d, %d",
                    tokens[0], tokens[1]);
        test_expect(flops < dense_flops && flops == sb_vit_planned_flops(m, NULL), "FLOPs %g planned %g dense %g", flops,
                    sb_vit_planned_flops(m, NULL), dense_flops);
    }
    free(px);
    sb_model_free(m);
    test_end();
}

/* A batch of two different images gives each image's own reduced logits:
 * every image keeps its own tokens. */
static void batch_case(const char *method, const char *arg, sb_pool *pool) {
    char name[96];
    snprintf(name, sizeof name, "token_reduce_%s_batch_of_two", method);
    test_begin(name);
    sb_model *m;
    sb_err err = {0};
    if (!test_expect(sb_model_load("tests/reference/vit/deit", &m, &err) == SB_OK, "%s", err.msg)) return test_end();
    const char *args[] = {arg, "layers=1,2"};
    int S = m->vision->image_size, L = m->vision->n_labels;
    int64_t n = 3 * (int64_t)S * S;
    float *one = test_pixels(m), *two = malloc(sizeof(float) * (size_t)(2 * n)), both[16], a[8], b[8];
    for (int64_t i = 0; i < n; i++) {
        two[i] = one[n - 1 - i];
        two[n + i] = one[i];
    }
    sb_vit *v2 = NULL;
    if (test_expect(apply(m, method, args, 2, &err) == SB_OK, "%s", err.msg) &&
        test_expect(sb_vit_new(m, pool, 2, &v2, &err) == SB_OK, "%s", err.msg) &&
        test_expect(sb_vit_classify(v2, two, both, &err) == SB_OK, "%s", err.msg) && classify(m, pool, two, a, NULL, NULL) &&
        classify(m, pool, two + n, b, NULL, NULL)) {
        test_expect(test_max_abs_diff(both, a, L) <= 1e-5 * test_max_abs(a, L), "image 0 differs in the batch");
        test_expect(test_max_abs_diff(both + L, b, L) <= 1e-5 * test_max_abs(b, L), "image 1 differs in the batch");
        test_expect(test_max_abs_diff(a, b, L) > 1e-4, "two different images gave the same logits");
    }
    sb_vit_free(v2);
    free(one);
    free(two);
    sb_model_free(m);
    test_end();
}

/* ---- Zero-TPrune's stages on a hand-made graph ---------------------------- */

static void zero_tprune_graph_case(void) {
    test_begin("token_reduce_zero_tprune_graph");
    sb_model *m;
    sb_err err = {0};
    if (!test_expect(sb_model_load("tests/reference/vit/vit", &m, &err) == SB_OK, "%s", err.msg)) return test_end();
    const char *args[] = {"ratio=0.5", "layers=1", "importance_share=0.5"};
    if (!test_expect(apply(m, "zero-tprune", args, 3, &err) == SB_OK, "%s", err.msg)) {
        sb_model_free(m);
        return test_end();
    }
    /* 1 class token + 8 patches; everyone attends to patches 2 and 5 (and a
     * little to all); patches 6 and 7 have identical hidden states, the rest
     * orthogonal-ish. Remove 4: 2 by importance, 2 by similarity. */
    enum { T = 9 };
    int d = m->d_model;
    float attn[T * T], *x = calloc((size_t)T * d, sizeof(float));
    for (int j = 0; j < T; j++)
        for (int i = 0; i < T; i++) attn[j * T + i] = (i == 3 || i == 6 ? 0.4f : 0.2f / (T - 2));
    for (int t = 0; t < T; t++) x[(int64_t)t * d + t] = 1;           /* one-hot: cosine 0 between tokens */
    for (int i = 0; i < d; i++) x[(int64_t)8 * d + i] = x[(int64_t)7 * d + i]; /* token 8 duplicates 7 */
    x[(int64_t)2 * d + 1] = 0.9f;                                       /* token 2 leans on token 1 */
    attn[0 * T + 1] += 0.05f;                                            /* the class token prefers 1 slightly */
    sb_token_view v = {.m = m, .layer = 1, .n_tok = T, .n_prefix = 1, .n_patches0 = 8, .x = x, .attn = attn};
    int32_t keep[T];
    int n_keep = 5;
    if (test_expect(m->reducer->select(m->reducer, &v, keep, &n_keep, &err) == SB_OK, "%s", err.msg)) {
        test_expect(n_keep == 5 && keep[0] == 0, "kept %d, first %d", n_keep, keep[0]);
        bool has[T] = {0};
        for (int i = 0; i < n_keep; i++) has[keep[i]] = true;
        test_expect(has[3] && has[6], "the attended tokens 3 and 6 must survive");
        test_expect(!(has[7] && has[8]), "one of the duplicates 7, 8 must go");
    }
    free(x);
    sb_model_free(m);
    test_end();
}

static void refusal_case(void) {
    test_begin("token_reduce_bad_input");
    sb_model *m;
    sb_err err = {0};
    if (test_expect(sb_model_load("tests/reference/vit/vit", &m, &err) == SB_OK, "%s", err.msg)) {
        const char *bad[] = {"layers=5"}, *bad2[] = {"layers=1,1"};
        test_expect(apply(m, "pyramid-drop", bad, 1, &err) == SB_EINPUT, "layers past the depth");
        test_expect(apply(m, "zero-tprune", bad2, 1, &err) == SB_EINPUT, "repeated layers");
        test_expect(apply(m, "pyramid-drop", NULL, 0, &err) == SB_OK && apply(m, "zero-tprune", NULL, 0, &err) == SB_EINPUT,
                    "a second reducer is refused");
        sb_model_free(m);
    }
    if (test_expect(sb_model_load("tests/reference/models/gpt2", &m, &err) == SB_OK, "%s", err.msg)) {
        test_expect(apply(m, "pyramid-drop", NULL, 0, &err) == SB_EINPUT && strstr(err.msg, "image model"),
                    "text model: %s", err.msg);
        sb_model_free(m);
    }
    test_end();
}

int main(void) {
    sb_pool *pool;
    sb_err err = {0};
    if (sb_pool_new(2, &pool, &err)) return 1;
    identity_case("vit", "pyramid-drop", "lambda=1", pool);
    identity_case("deit", "pyramid-drop", "lambda=1", pool);
    identity_case("vit", "zero-tprune", "ratio=1", pool);
    identity_case("deit", "zero-tprune", "ratio=1", pool);
    identity_case("deit_distilled", "zero-tprune", "ratio=1", pool);
    pyramid_case("vit");
    pyramid_case("deit");
    batch_case("pyramid-drop", "lambda=0.5", pool);
    batch_case("zero-tprune", "ratio=0.5", pool);
    zero_tprune_graph_case();
    refusal_case();
    sb_pool_free(pool);
    return test_status();
}

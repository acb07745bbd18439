/* vit.c - the vision forward pass: patch embedding -> class tokens and
 * learned positions -> encoder blocks (forward.c, one block per call so a
 * token reducer can drop rows between blocks) -> final LayerNorm of the
 * class-token row -> classifier.
 *
 * Shapes: B images per call, T tokens per image (n_prefix + n_patches at
 * the start, fewer after a reducer drops some; the same T for every image
 * of the batch), d = d_model, P = C*p*p pixels per patch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vec.h"
#include "vision.h"

struct sb_vit {
    const sb_model *m;
    const sb_vision *vis;
    sb_pool *pool;
    int batch, n_tok0;          /* images per call; tokens per image before any reduction */
    sb_session *s;
    sb_matmul_ctx mm;
    float *patches;             /* [B * n_patches, P] */
    float *x, *y;               /* [B * T0, d] hidden states; y: gather target and patch outputs */
    float *h, *k;               /* [B * T0, d], [B * T0, qd]: the reducer probe's norm and keys */
    float *q;                   /* [B, qd] */
    float *heads;               /* [B][nh][T0][T0] captured attention per head */
    float *attn;                /* [B][T0][T0] head-averaged */
    float *cls_attn;            /* [B][T0] */
    int32_t *keep;              /* [B][T0] tokens kept, per image */
    sb_err *errs;               /* [B] per-image selection errors (images are selected in parallel) */
    int *tokens;                /* [n_layer]: tokens entering each block, latest call */
    int capture_tok;            /* tokens of the block being captured (row length) */
    double flops;               /* latest call, per image */
};

/* ---- small pieces ------------------------------------------------------- */

/* LayerNorm of one row, accumulated in double as forward.c's norm. */
static void layer_norm(const sb_norm *n, float eps, const float *x, float *y, int d) {
    double mean = 0, sq = 0;
    for (int i = 0; i < d; i++) mean += x[i];
    mean /= d;
    for (int i = 0; i < d; i++) sq += ((double)x[i] - mean) * ((double)x[i] - mean);
    float inv = (float)(1.0 / sqrt(sq / d + eps));
    for (int i = 0; i < d; i++) y[i] = (float)(x[i] - mean) * inv * n->weight[i] + (n->bias ? n->bias[i] : 0.0f);
}

static double linear_macs(const sb_linear *w) { return w->fmt ? (double)w->rows * (double)w->cols : 0; }

/* FLOPs of block b over T tokens: its linears plus scores and weighted sums. */
static double block_flops(const sb_block *b, int T) {
    double lin = linear_macs(&b->wq) + linear_macs(&b->wk) + linear_macs(&b->wv) + linear_macs(&b->wo) +
                 linear_macs(&b->w_gate) + linear_macs(&b->w_up) + linear_macs(&b->w_down);
    double qd = (double)b->n_head * b->head_dim;
    return 2.0 * T * lin + 2.0 * 2.0 * (double)T * T * qd;
}

static double ends_flops(const sb_model *m) {
    const sb_vision *v = m->vision;
    return 2.0 * v->n_patches * linear_macs(&v->patch) + 2.0 * linear_macs(&m->head) + 2.0 * linear_macs(&v->dist_head);
}

double sb_vit_dense_flops(const sb_model *m) {
    double f = ends_flops(m);
    int T = m->vision->n_prefix + m->vision->n_patches;
    for (int l = 0; l < m->n_layer; l++) f += block_flops(&m->blocks[l], T);
    return f;
}

/* ---- embedding -------------------------------------------------------- */

/* pixels [C][S][S] of one image -> its patches [n_patches][C*p*p] in (c, i, j)
 * order, patches row-major over the grid (Conv2d output flattened). */
static void extract_patches(const sb_vision *v, const float *img, float *out) {
    int p = v->patch_size, S = v->image_size;
    for (int gy = 0; gy < v->grid; gy++)
        for (int gx = 0; gx < v->grid; gx++) {
            float *dst = out + ((int64_t)gy * v->grid + gx) * v->channels * p * p;
            for (int c = 0; c < v->channels; c++)
                for (int i = 0; i < p; i++)
                    memcpy(dst + ((int64_t)c * p + i) * p, img + ((int64_t)c * S + gy * p + i) * S + gx * p,
                           sizeof(float) * (size_t)p);
        }
}

int sb_vit_embed(sb_vit *v, const float *pixels, float *x, sb_err *err) {
    (void)err;
    const sb_model *m = v->m;
    const sb_vision *vis = v->vis;
    int d = m->d_model, np = vis->n_patches, S = vis->image_size;
    for (int b = 0; b < v->batch; b++)
        extract_patches(vis, pixels + (int64_t)b * vis->channels * S * S, v->patches + (int64_t)b * np * vis->patch.cols);
    sb_linear_forward(&vis->patch, v->patches, (int64_t)v->batch * np, v->y, &v->mm); /* [B*np, d] */
    for (int b = 0; b < v->batch; b++) {
        float *xb = x + (int64_t)b * v->n_tok0 * d;
        memcpy(xb, vis->cls_token, sizeof(float) * (size_t)d);
        if (vis->dist_token) memcpy(xb + d, vis->dist_token, sizeof(float) * (size_t)d);
        memcpy(xb + (int64_t)vis->n_prefix * d, v->y + (int64_t)b * np * d, sizeof(float) * (size_t)np * (size_t)d);
        for (int64_t i = 0; i < (int64_t)v->n_tok0 * d; i++) xb[i] += m->pos_embd[i];
    }
    return SB_OK;
}

/* ---- attention capture -------------------------------------------------- */

static void capture(void *user, int layer, int seq, int head, int t, const float *probs, int key0, int n_keys) {
    (void)layer;
    sb_vit *v = user;
    int T = v->capture_tok, nh = v->m->blocks[0].n_head;
    float *row = v->heads + (((int64_t)seq * nh + head) * v->n_tok0 + t) * v->n_tok0;
    memset(row, 0, sizeof(float) * (size_t)T);
    memcpy(row + key0, probs, sizeof(float) * (size_t)n_keys);
}

typedef struct heads_job {
    sb_vit *v;
    int layer, T;
} heads_job;

/* attn[b] = mean over heads of image b's captured rows, [T][T] (a pool task). */
static void average_image(void *arg, int b, int worker) {
    (void)worker;
    heads_job *j = arg;
    sb_vit *v = j->v;
    int nh = v->m->blocks[j->layer].n_head, T = j->T;
    for (int t = 0; t < T; t++) {
        float *dst = v->attn + ((int64_t)b * v->n_tok0 + t) * v->n_tok0;
        memset(dst, 0, sizeof(float) * (size_t)T);
        for (int h = 0; h < nh; h++) {
            const float *src = v->heads + (((int64_t)b * nh + h) * v->n_tok0 + t) * v->n_tok0;
            for (int k = 0; k < T; k++) dst[k] += src[k] / nh;
        }
    }
}

static void average_heads(sb_vit *v, int layer, int T) {
    heads_job j = {v, layer, T};
    sb_pool_run(v->pool, average_image, &j, v->batch);
}

static double probe_flops(const sb_block *b, int T);

/* ---- the reducer probe: the class token's attention in block `layer` ----
 * (PyramidDrop ranks by the query's attention computed with the next
 * block's own norm and q/k projections, before that block runs.) */
static void cls_probe(sb_vit *v, int layer, int T) {
    const sb_model *m = v->m;
    const sb_block *b = &m->blocks[layer];
    int d = m->d_model, nh = b->n_head, hd = b->head_dim, qd = nh * hd;
    int64_t R = (int64_t)v->batch * T;
    for (int64_t r = 0; r < R; r++) layer_norm(&b->attn_norm, m->norm_eps, v->x + r * d, v->h + r * d, d);
    sb_linear_forward(&b->wk, v->h, R, v->k, &v->mm);              /* [R, qd] */
    for (int i = 0; i < v->batch; i++) memmove(v->y + (int64_t)i * d, v->h + (int64_t)i * T * d, sizeof(float) * (size_t)d);
    sb_linear_forward(&b->wq, v->y, v->batch, v->q, &v->mm);       /* [B, qd] class-token queries */
    for (int i = 0; i < v->batch; i++) {
        float *ca = v->cls_attn + (int64_t)i * v->n_tok0, *sc = v->h; /* h is free again: scores scratch */
        memset(ca, 0, sizeof(float) * (size_t)T);
        for (int h = 0; h < nh; h++) {
            const float *q = v->q + (int64_t)i * qd + h * hd;
            for (int t = 0; t < T; t++) sc[t] = sb_vec_dot(q, v->k + ((int64_t)i * T + t) * qd + h * hd, hd) * m->attn_scale;
            sb_vec_softmax(sc, T);
            for (int t = 0; t < T; t++) ca[t] += sc[t] / nh;
        }
    }
    v->flops += probe_flops(b, T);
}

/* ---- token reduction between blocks ---------------------------------------- */

typedef struct reduce_job {
    sb_vit *v;
    int layer, T, n_keep;
    bool have_attn;
} reduce_job;

/* One image's selection and gather (a pool task: images are independent). */
static void reduce_image(void *arg, int b, int worker) {
    (void)worker;
    reduce_job *j = arg;
    sb_vit *v = j->v;
    const sb_token_reducer *r = v->m->reducer;
    int d = v->m->d_model, n_keep = j->n_keep, got = n_keep;
    int32_t *keep = v->keep + (int64_t)b * v->n_tok0;
    sb_err *err = &v->errs[b];
    sb_token_view view = {.m = v->m, .layer = j->layer, .n_tok = j->T, .n_prefix = v->vis->n_prefix,
                          .n_patches0 = v->vis->n_patches, .x = v->x + (int64_t)b * j->T * d,
                          .attn = j->have_attn ? v->attn + (int64_t)b * v->n_tok0 * v->n_tok0 : NULL,
                          .cls_attn = r->wants_cls_probe ? v->cls_attn + (int64_t)b * v->n_tok0 : NULL};
    if (r->select(r, &view, keep, &got, err)) return;
    if (got != n_keep) {
        sb_err_set(err, SB_EINTERNAL, "%s kept %d tokens before block %d, promised %d", r->name, got, j->layer, n_keep);
        return;
    }
    for (int i = 0; i < n_keep; i++)
        memcpy(v->y + ((int64_t)b * n_keep + i) * d, view.x + (int64_t)keep[i] * d, sizeof(float) * (size_t)d);
}

static int reduce_tokens(sb_vit *v, int layer, int T, int n_keep, bool have_attn, sb_err *err) {
    if (v->m->reducer->wants_cls_probe) cls_probe(v, layer, T);
    for (int b = 0; b < v->batch; b++) v->errs[b] = (sb_err){0};
    reduce_job j = {v, layer, T, n_keep, have_attn};
    sb_pool_run(v->pool, reduce_image, &j, v->batch);
    for (int b = 0; b < v->batch; b++)
        if (v->errs[b].code) {
            *err = v->errs[b];
            return err->code;
        }
    float *t = v->x;
    v->x = v->y;
    v->y = t;
    return SB_OK;
}

/* Tokens kept before block `layer` from T (T when nothing drops). */
static int planned_keep(const sb_model *m, int layer, int T) {
    const sb_token_reducer *r = m->reducer;
    int n_prefix = m->vision->n_prefix;
    if (!r || layer >= m->n_layer) return T;
    int n = r->count(r, layer, T, n_prefix, m->vision->n_patches);
    return n < n_prefix + 1 ? n_prefix + 1 : n > T ? T : n;
}

static int keep_count(const sb_vit *v, int layer, int T) { return planned_keep(v->m, layer, T); }

static double probe_flops(const sb_block *b, int T) {
    return 2.0 * T * linear_macs(&b->wk) + 2.0 * linear_macs(&b->wq) + 2.0 * T * b->n_head * b->head_dim;
}

double sb_vit_planned_flops(const sb_model *m, int *tokens) {
    double f = ends_flops(m);
    int T = m->vision->n_prefix + m->vision->n_patches;
    for (int l = 0; l < m->n_layer; l++) {
        int n = planned_keep(m, l, T);
        if (n < T && m->reducer->wants_cls_probe) f += probe_flops(&m->blocks[l], T);
        T = n;
        if (tokens) tokens[l] = T;
        f += block_flops(&m->blocks[l], T);
    }
    return f;
}

/* ---- the pass ------------------------------------------------------------ */

static int run_blocks(sb_vit *v, sb_err *err) {
    const sb_model *m = v->m;
    const sb_token_reducer *r = m->reducer;
    int T = v->n_tok0, rc = SB_OK;
    bool have_attn = false;
    for (int l = 0; !rc && l < m->n_layer; l++) {
        int n_keep = keep_count(v, l, T);
        if (n_keep < T) {
            rc = reduce_tokens(v, l, T, n_keep, have_attn, err);
            T = n_keep;
        }
        /* capture this block's attention when the next boundary needs it */
        bool want = r && r->wants_attention && keep_count(v, l + 1, T) < T;
        if (want && !v->heads)
            return sb_err_set(err, SB_EINTERNAL, "%s was installed after this forward context was made", r->name);
        v->capture_tok = T;
        sb_session_set_attention_observer(v->s, want ? capture : NULL, v);
        sb_session_reset(v->s);
        if (!rc) rc = sb_session_forward_blocks(v->s, v->x, T, l, l + 1, v->x, err);
        if (!rc && want) average_heads(v, l, T);
        have_attn = want;
        v->tokens[l] = T;
        v->flops += block_flops(&m->blocks[l], T);
    }
    sb_session_set_attention_observer(v->s, NULL, NULL);
    v->capture_tok = T;
    return rc;
}

/* Distilled DeiT: logits = (head(cls) + dist_head(dist)) / 2, the
 * distillation token being row 1 (a prefix token: reducers keep it). */
static void distilled_head(sb_vit *v, int T, float *logits) {
    const sb_model *m = v->m;
    int d = m->d_model, L = v->vis->n_labels;
    for (int b = 0; b < v->batch; b++)
        layer_norm(&m->final_norm, m->norm_eps, v->x + ((int64_t)b * T + 1) * d, v->h + (int64_t)b * d, d);
    float *dist = v->cls_attn; /* free here; sized for [B, L] at creation */
    sb_linear_forward(&v->vis->dist_head, v->h, v->batch, dist, &v->mm);
    for (int64_t i = 0; i < (int64_t)v->batch * L; i++) logits[i] = (logits[i] + dist[i]) / 2;
}

int sb_vit_classify(sb_vit *v, const float *pixels, float *logits, sb_err *err) {
    const sb_model *m = v->m;
    int d = m->d_model;
    v->flops = ends_flops(m);
    int rc = sb_vit_embed(v, pixels, v->x, err);
    if (!rc) rc = run_blocks(v, err);
    if (rc) return rc;
    int T = v->capture_tok;
    for (int b = 0; b < v->batch; b++) /* the class token is row 0 of every image */
        layer_norm(&m->final_norm, m->norm_eps, v->x + (int64_t)b * T * d, v->h + (int64_t)b * d, d);
    sb_linear_forward(&m->head, v->h, v->batch, logits, &v->mm);
    if (v->vis->dist_head.fmt) distilled_head(v, T, logits);
    return SB_OK;
}

double sb_vit_last_flops(const sb_vit *v) { return v->flops; }
const int *sb_vit_last_tokens(const sb_vit *v) { return v->tokens; }

/* ---- lifetime -------------------------------------------------------------- */

static float *floats(int64_t n, sb_err *err) { return sb_malloc(err, sizeof(float) * (size_t)(n > 0 ? n : 1)); }

int sb_vit_new(const sb_model *m, sb_pool *pool, int batch, sb_vit **out, sb_err *err) {
    if (!m->vision) return sb_err_set(err, SB_EINPUT, "%s: not an image model (ViT/DeiT)", m->path);
    if (batch < 1) return sb_err_set(err, SB_EINPUT, "batch %d: need at least one image", batch);
    sb_vit *v = sb_calloc(err, 1, sizeof *v);
    if (!v) return SB_EINTERNAL;
    const sb_vision *vis = m->vision;
    v->m = m;
    v->vis = vis;
    v->pool = pool;
    v->batch = batch;
    v->n_tok0 = vis->n_prefix + vis->n_patches;
    int64_t T0 = v->n_tok0, d = m->d_model, R = (int64_t)batch * T0, qd = 0, nh = 0;
    for (int l = 0; l < m->n_layer; l++) {
        int64_t bq = (int64_t)m->blocks[l].n_head * m->blocks[l].head_dim;
        qd = bq > qd ? bq : qd;
        nh = m->blocks[l].n_head > nh ? m->blocks[l].n_head : nh;
    }
    int64_t max_cols = vis->patch.cols > d ? vis->patch.cols : d;
    v->mm.pool = pool;
    v->mm.scratch_floats = sb_matmul_scratch_floats(max_cols, sb_pool_threads(pool));
    int64_t hbuf = R * d > T0 ? R * d : T0, labels = (int64_t)batch * vis->n_labels; /* cls_attn doubles as [B, L] */
    bool ok = (v->mm.scratch = floats(v->mm.scratch_floats, err)) &&
              (v->patches = floats((int64_t)batch * vis->n_patches * vis->patch.cols, err)) &&
              (v->x = floats(R * d, err)) && (v->y = floats(R * d, err)) && (v->h = floats(hbuf, err)) &&
              (v->k = floats(R * qd, err)) && (v->q = floats((int64_t)batch * qd, err)) &&
              (v->cls_attn = floats(R > labels ? R : labels, err)) && (v->keep = sb_malloc(err, sizeof(int32_t) * (size_t)R)) &&
              (v->errs = sb_calloc(err, (size_t)batch, sizeof(sb_err))) &&
              (v->tokens = sb_calloc(err, (size_t)m->n_layer, sizeof(int)));
    if (ok && m->reducer && m->reducer->wants_attention)
        ok = (v->heads = floats((int64_t)batch * nh * T0 * T0, err)) && (v->attn = floats(R * T0, err));
    int rc = ok ? sb_session_new(m, pool, batch, (int)T0, (int)T0, &v->s, err) : SB_EINTERNAL;
    if (rc) {
        sb_vit_free(v);
        return rc;
    }
    *out = v;
    return SB_OK;
}

void sb_vit_free(sb_vit *v) {
    if (!v) return;
    sb_session_free(v->s);
    float *bufs[] = {v->mm.scratch, v->patches, v->x, v->y, v->h, v->k, v->q, v->heads, v->attn, v->cls_attn};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(v->keep);
    free(v->errs);
    free(v->tokens);
    free(v);
}

/* test_train.c - the training forward, backward and AdamW.
 *
 *  - the training forward equals the inference forward (forward.c) on
 *    random Llama models, tied and untied, with GQA;
 *  - analytic gradients of every tensor kind equal central finite
 *    differences of the loss;
 *  - loss, every gradient and one AdamW step equal PyTorch's
 *    (tests/reference/make_train_fixtures.py);
 *  - training on a small text drives the loss well below the unigram
 *    entropy, and is bit-reproducible for a seed;
 *  - an exported folder loads with the normal loader and gives the
 *    trainer's logits;
 *  - the Fisher diagonal is the sum of per-window squared gradients. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "forward.h"
#include "half.h"
#include "mapped_file.h"
#include "model_random.h"
#include "tensor_store.h"
#include "tokenizer.h"
#include "train.h"

static double rel_diff(const float *a, const float *ref, long n) {
    double scale = test_max_abs(ref, n);
    return test_max_abs_diff(a, ref, n) / (scale > 0 ? scale : 1);
}

static uint64_t rng_next(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static void random_tokens(int32_t *t, int n, int V, uint64_t seed) {
    for (int i = 0; i < n; i++) t[i] = (int32_t)(rng_next(&seed) % (uint64_t)V);
}

/* ---- training forward == inference forward --------------------------------- */

static void check_forward_parity(sb_pool *pool, bool tied) {
    test_begin(tied ? "train_forward_matches_inference_tied" : "train_forward_matches_inference");
    sb_random_shape shape = {.n_vocab = 50, .d_model = 32, .n_layer = 2, .n_head = 4, .n_kv_head = 2, .ff = 48,
                             .max_positions = 64, .tied_head = tied};
    enum { B = 2, T = 12 };
    sb_model *m = NULL;
    sb_train_model *tm = NULL;
    sb_session *s = NULL;
    sb_err err = {0};
    int32_t tokens[B * T];
    random_tokens(tokens, B * T, shape.n_vocab, 3);
    float *logits = malloc(sizeof(float) * B * T * (size_t)shape.n_vocab);
    bool ok = test_expect(sb_model_new_random(&shape, 11, &m, &err) == SB_OK, "%s", err.msg) &&
              test_expect(sb_train_model_from_model(m, B, T, pool, &tm, &err) == SB_OK, "%s", err.msg) &&
              test_expect(sb_train_forward(tm, tokens, NULL, B, T, NULL, &err) == SB_OK, "%s", err.msg) &&
              test_expect(sb_session_new(m, pool, B, T, T, &s, &err) == SB_OK, "%s", err.msg) &&
              test_expect(sb_session_forward(s, tokens, T, 0, logits, &err) == SB_OK, "%s", err.msg);
    if (ok) {
        double d = rel_diff(tm->logits, logits, (long)B * T * shape.n_vocab);
        test_expect(d <= 1e-5, "training logits differ from inference by %.3g relative", d);
    }
    free(logits);
    sb_session_free(s);
    sb_train_model_free(tm);
    sb_model_free(m);
    test_end();
}

/* ---- finite differences ---------------------------------------------------- */

/* Spreads the weights wider than the 0.02 init so gradients are not tiny. */
static void widen_weights(sb_train_model *tm, uint64_t seed) {
    for (int i = 0; i < tm->n_tensors; i++) {
        sb_train_tensor *t = &tm->tensors[i];
        for (int64_t k = 0; k < t->rows * t->cols; k++) {
            double u = (double)rng_next(&seed) / 2147483648.0; /* [0, 1) */
            t->w[k] = t->decay ? (float)(0.6 * (u - 0.5)) : (float)(0.5 + u);
        }
    }
}

/* A plain double-precision forward of the same model, reading the weights
 * from P (a double copy of tm->param_mem, same offsets): finite differences
 * of this loss are accurate to ~1e-9, where the f32 loss's rounding would
 * swamp the difference quotient of small gradients. */
typedef struct {
    const sb_train_model *tm;
    const double *P;
    int d, qd, kvd, hd, ff, V;
} ref_model;

static const double *W(const ref_model *r, const float *p) { return r->P + (p - r->tm->param_mem); }

/* y[n_out] = M[n_out, n_in] · x */
static void ref_linear(double *y, const double *M, const double *x, int n_out, int n_in) {
    for (int o = 0; o < n_out; o++) {
        double acc = 0;
        for (int i = 0; i < n_in; i++) acc += M[(int64_t)o * n_in + i] * x[i];
        y[o] = acc;
    }
}

static void ref_rmsnorm(double *y, const double *x, const double *w, int d, double eps) {
    double sq = 0;
    for (int i = 0; i < d; i++) sq += x[i] * x[i];
    double inv = 1.0 / sqrt(sq / d + eps);
    for (int i = 0; i < d; i++) y[i] = x[i] * inv * w[i];
}

static void ref_rope(const ref_model *r, double *x, int n_heads, int t) {
    int half = r->hd / 2;
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < half; i++) {
            double a = x[h * r->hd + i], b = x[h * r->hd + i + half], ang = t * (double)r->tm->inv_freq[i];
            x[h * r->hd + i] = a * cos(ang) - b * sin(ang);
            x[h * r->hd + i + half] = b * cos(ang) + a * sin(ang);
        }
}

/* att[T, qd] from q[T, qd], k, v[T, kvd] */
static void ref_attention(const ref_model *r, double *att, const double *q, const double *k, const double *v, int T) {
    const sb_train_shape *s = &r->tm->shape;
    double sc[64];
    for (int t = 0; t < T; t++)
        for (int h = 0; h < s->n_head; h++) {
            int kvh = h / (s->n_head / s->n_kv_head);
            double mx = -INFINITY, sum = 0;
            for (int u = 0; u <= t; u++) {
                double dot = 0;
                for (int i = 0; i < r->hd; i++) dot += q[t * r->qd + h * r->hd + i] * k[u * r->kvd + kvh * r->hd + i];
                sc[u] = dot / sqrt((double)r->hd);
                mx = fmax(mx, sc[u]);
            }
            for (int u = 0; u <= t; u++) sum += (sc[u] = exp(sc[u] - mx));
            for (int i = 0; i < r->hd; i++) {
                double acc = 0;
                for (int u = 0; u <= t; u++) acc += sc[u] / sum * v[u * r->kvd + kvh * r->hd + i];
                att[t * r->qd + h * r->hd + i] = acc;
            }
        }
}

/* One block over a sequence x[T, d], in place; buf has room for 8 * T * 64 doubles. */
static void ref_block(const ref_model *r, const sb_train_block *b, double *x, int T, double *buf) {
    double eps = r->tm->shape.norm_eps;
    double *h = buf, *q = h + T * 64, *k = q + T * 64, *v = k + T * 64, *att = v + T * 64, *o = att + T * 64;
    double *g = o + T * 64, *u = g + T * 64;
    for (int t = 0; t < T; t++) {
        ref_rmsnorm(h + t * r->d, x + t * r->d, W(r, b->attn_norm), r->d, eps);
        ref_linear(q + t * r->qd, W(r, b->wq), h + t * r->d, r->qd, r->d);
        ref_linear(k + t * r->kvd, W(r, b->wk), h + t * r->d, r->kvd, r->d);
        ref_linear(v + t * r->kvd, W(r, b->wv), h + t * r->d, r->kvd, r->d);
        ref_rope(r, q + t * r->qd, r->tm->shape.n_head, t);
        ref_rope(r, k + t * r->kvd, r->tm->shape.n_kv_head, t);
    }
    ref_attention(r, att, q, k, v, T);
    for (int t = 0; t < T; t++) {
        ref_linear(o, W(r, b->wo), att + t * r->qd, r->d, r->qd);
        for (int i = 0; i < r->d; i++) x[t * r->d + i] += o[i];
        ref_rmsnorm(h, x + t * r->d, W(r, b->mlp_norm), r->d, eps);
        ref_linear(g, W(r, b->w_gate), h, r->ff, r->d);
        ref_linear(u, W(r, b->w_up), h, r->ff, r->d);
        for (int i = 0; i < r->ff; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
        ref_linear(o, W(r, b->w_down), g, r->d, r->ff);
        for (int i = 0; i < r->d; i++) x[t * r->d + i] += o[i];
    }
}

/* Mean next-token cross-entropy of the double model (shapes up to 64 wide, T <= 64). */
static double ref_loss(const ref_model *r, const int32_t *in, const int32_t *tg, int B, int T) {
    double *x = malloc(sizeof(double) * (size_t)(T * 64)), *buf = malloc(sizeof(double) * (size_t)(8 * T * 64));
    double h[64], logits[64], total = 0;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++)
            memcpy(x + t * r->d, W(r, r->tm->p.embd) + (int64_t)in[b * T + t] * r->d, sizeof(double) * (size_t)r->d);
        for (int l = 0; l < r->tm->shape.n_layer; l++) ref_block(r, &r->tm->p.blocks[l], x, T, buf);
        for (int t = 0; t < T; t++) {
            ref_rmsnorm(h, x + t * r->d, W(r, r->tm->p.final_norm), r->d, r->tm->shape.norm_eps);
            ref_linear(logits, W(r, r->tm->p.head), h, r->V, r->d);
            double mx = -INFINITY, sum = 0;
            for (int i = 0; i < r->V; i++) mx = fmax(mx, logits[i]);
            for (int i = 0; i < r->V; i++) sum += exp(logits[i] - mx);
            total += mx + log(sum) - logits[tg[b * T + t]];
        }
    }
    free(x);
    free(buf);
    return total / (B * T);
}

/* Central differences (step 1e-5) of the double model on 6 random entries
 * of every tensor; reports the worst |fd - analytic| / max(|fd|, 1e-3 max |g|). */
static void check_gradients(sb_pool *pool, bool tied, int n_kv_head) {
    char name[80];
    snprintf(name, sizeof name, "train_gradcheck_%s_kv%d", tied ? "tied" : "untied", n_kv_head);
    test_begin(name);
    sb_train_shape shape = {.n_vocab = 40, .d_model = 16, .n_layer = 2, .n_head = 2, .n_kv_head = n_kv_head,
                            .ff = 24, .max_positions = 16, .tied_head = tied, .norm_eps = 1e-5, .rope_theta = 10000};
    enum { B = 2, T = 8 };
    sb_train_model *tm = NULL;
    sb_err err = {0};
    double *P = NULL;
    int32_t win[B * (T + 1)], in[B * T], tg[B * T];
    random_tokens(win, B * (T + 1), shape.n_vocab, 5);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) in[b * T + t] = win[b * (T + 1) + t], tg[b * T + t] = win[b * (T + 1) + t + 1];
    if (!test_expect(sb_train_model_new(&shape, 1, B, T, pool, &tm, &err) == SB_OK, "%s", err.msg)) goto done;
    widen_weights(tm, 9);
    double loss;
    sb_train_zero_grad(tm);
    if (!test_expect(sb_train_forward(tm, in, tg, B, T, &loss, &err) == SB_OK, "%s", err.msg)) goto done;
    sb_train_backward(tm);
    P = malloc(sizeof(double) * (size_t)tm->n_params);
    for (int64_t i = 0; i < tm->n_params; i++) P[i] = tm->param_mem[i];
    ref_model r = {tm, P, 16, 2 * tm->head_dim, n_kv_head * tm->head_dim, tm->head_dim, 24, 40};
    double l0 = ref_loss(&r, in, tg, B, T);
    test_expect(fabs(l0 - loss) <= 1e-5 * l0, "f32 loss %.8f, double loss %.8f", loss, l0);
    const double h = 1e-5;
    double worst = 0;
    const char *worst_name = "";
    uint64_t pick = 17;
    for (int i = 0; i < tm->n_tensors; i++) {
        sb_train_tensor *t = &tm->tensors[i];
        int64_t n = t->rows * t->cols, off = t->w - tm->param_mem;
        double gmax = test_max_abs(t->g, (long)n);
        for (int k = 0; k < 6; k++) {
            int64_t e = off + (int64_t)(rng_next(&pick) % (uint64_t)n);
            double w0 = P[e];
            P[e] = w0 + h;
            double up = ref_loss(&r, in, tg, B, T);
            P[e] = w0 - h;
            double down = ref_loss(&r, in, tg, B, T);
            P[e] = w0;
            double fd = (up - down) / (2 * h), an = tm->grad_mem[e];
            double rel = fabs(fd - an) / fmax(fabs(fd), 1e-3 * gmax);
            if (rel > worst) worst = rel, worst_name = t->name;
        }
    }
    printf("  gradient check (%s, kv %d): worst relative error %.2e (%s)\n", tied ? "tied" : "untied", n_kv_head,
           worst, worst_name);
    test_expect(worst <= 1e-3, "finite differences differ by %.3g relative in %s", worst, worst_name);
done:
    free(P);
    sb_train_model_free(tm);
    test_end();
}

/* ---- PyTorch fixtures ------------------------------------------------------- */

/* Largest relative difference between a tensor of tm and the same-named
 * tensor of a safetensors file; which picks weights (0) or grads (1). */
static double compare_with_file(const sb_train_model *tm, const sb_tensor_store *st, bool grads, const char **where) {
    double worst = 0;
    sb_err err = {0};
    for (int i = 0; i < tm->n_tensors; i++) {
        const sb_train_tensor *t = &tm->tensors[i];
        const sb_tensor_ref *ref = sb_store_find(st, t->name);
        int64_t n = t->rows * t->cols;
        if (!ref || sb_tensor_elems(ref) != n) {
            *where = t->name;
            return INFINITY;
        }
        float *buf = malloc(sizeof(float) * (size_t)n);
        sb_tensor_decode_f32(ref, buf, &err);
        double d = rel_diff(grads ? t->g : t->w, buf, (long)n);
        if (d > worst) worst = d, *where = t->name;
        free(buf);
    }
    return worst;
}

static bool read_fixture(const char *path, int32_t **in, int32_t **tg, int *B, int *T, double *loss, double *lr,
                         double *wd) {
    char *text;
    sb_err err = {0};
    if (!test_expect(sb_read_text_file(path, &text, NULL, &err) == SB_OK, "%s", err.msg)) return false;
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *tokens = cJSON_GetObjectItem(j, "tokens");
    *B = cJSON_GetObjectItem(j, "B")->valueint;
    *T = cJSON_GetObjectItem(j, "T")->valueint;
    *loss = cJSON_GetObjectItem(j, "loss")->valuedouble;
    *lr = cJSON_GetObjectItem(j, "lr")->valuedouble;
    *wd = cJSON_GetObjectItem(j, "weight_decay")->valuedouble;
    *in = malloc(sizeof(int32_t) * (size_t)(*B * *T));
    *tg = malloc(sizeof(int32_t) * (size_t)(*B * *T));
    for (int b = 0; b < *B; b++) {
        const cJSON *row = cJSON_GetArrayItem(tokens, b);
        for (int t = 0; t < *T; t++) {
            (*in)[b * *T + t] = cJSON_GetArrayItem(row, t)->valueint;
            (*tg)[b * *T + t] = cJSON_GetArrayItem(row, t + 1)->valueint;
        }
    }
    cJSON_Delete(j);
    return true;
}

static void check_pytorch(sb_pool *pool, const char *name) {
    char tname[80], dir[256], path[512];
    snprintf(tname, sizeof tname, "train_pytorch_%s", name);
    snprintf(dir, sizeof dir, "tests/reference/train/%s", name);
    test_begin(tname);
    sb_model *m = NULL;
    sb_train_model *tm = NULL;
    sb_tensor_store grads = {0}, step1 = {0};
    sb_adamw opt = {0};
    sb_err err = {0};
    int32_t *in = NULL, *tg = NULL;
    int B, T;
    double ref_loss, lr, wd, loss;
    const char *where = "";
    snprintf(path, sizeof path, "%s/fixture.json", dir);
    if (!read_fixture(path, &in, &tg, &B, &T, &ref_loss, &lr, &wd)) goto done;
    snprintf(path, sizeof path, "%s/grads.safetensors", dir);
    bool ok = test_expect(sb_model_load(dir, &m, &err) == SB_OK, "%s", err.msg) &&
              test_expect(sb_train_model_from_model(m, B, T, pool, &tm, &err) == SB_OK, "%s", err.msg) &&
              test_expect(sb_safetensors_load(&grads, path, &err) == SB_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/step1.safetensors", dir);
    ok = ok && test_expect(sb_safetensors_load(&step1, path, &err) == SB_OK, "%s", err.msg);
    sb_train_zero_grad(tm);
    ok = ok && test_expect(sb_train_forward(tm, in, tg, B, T, &loss, &err) == SB_OK, "%s", err.msg);
    if (!ok) goto done;
    sb_train_backward(tm);
    /* A second pass over the same batch gives the same gradients: nothing the
     * first backward left behind (scratch sums, caches) leaks into the next step. */
    float *first = malloc(sizeof(float) * (size_t)tm->n_params);
    if (!test_expect(first != NULL, "out of memory")) goto done;
    memcpy(first, tm->grad_mem, sizeof(float) * (size_t)tm->n_params);
    double loss2 = 0;
    sb_train_zero_grad(tm);
    ok = test_expect(sb_train_forward(tm, in, tg, B, T, &loss2, &err) == SB_OK, "%s", err.msg);
    if (ok) sb_train_backward(tm);
    int64_t differ = 0;
    for (int64_t i = 0; ok && i < tm->n_params; i++) differ += first[i] != tm->grad_mem[i];
    free(first);
    test_expect(ok && loss2 == loss && differ == 0, "a second pass changed %lld gradients (loss %.9g, then %.9g)",
                (long long)differ, loss, loss2);
    double dl = fabs(loss - ref_loss) / fabs(ref_loss);
    double dg = compare_with_file(tm, &grads, true, &where);
    printf("  pytorch %s: loss %.7f vs %.7f (rel %.2e), gradients max rel %.2e (%s)", name, loss, ref_loss, dl, dg,
           where);
    test_expect(dl <= 1e-5, "loss %.8f, PyTorch %.8f", loss, ref_loss);
    test_expect(dg <= 1e-4, "gradient of %s differs from PyTorch's by %.3g relative", where, dg);
    if (!test_expect(sb_adamw_init(&opt, tm, wd, &err) == SB_OK, "%s", err.msg)) goto done;
    sb_adamw_step(&opt, tm, lr);
    double dw = compare_with_file(tm, &step1, false, &where);
    printf(", AdamW step max rel %.2e (%s)\n", dw, where);
    test_expect(dw <= 1e-4, "AdamW step of %s differs from PyTorch's by %.3g relative", where, dw);
done:
    sb_adamw_free(&opt);
    sb_store_free(&grads);
    sb_store_free(&step1);
    sb_train_model_free(tm);
    sb_model_free(m);
    free(in);
    free(tg);
    test_end();
}

/* ---- training on text ---------------------------------------------------------- */

typedef struct {
    int32_t *ids;
    size_t n;
    int V;
} corpus;

static bool load_corpus(corpus *c) {
    sb_tokenizer *tok = NULL;
    sb_err err = {0};
    char *text = NULL;
    size_t len = 0;
    bool ok = test_expect(sb_tokenizer_load_hf("tests/reference/tasks/model", &tok, &err) == SB_OK, "%s", err.msg) &&
              test_expect(sb_read_text_file("tests/reference/tasks/text.raw", &text, &len, &err) == SB_OK, "%s",
                          err.msg) &&
              test_expect(sb_tokenizer_encode(tok, text, len, false, &c->ids, &c->n, &err) == SB_OK, "%s", err.msg);
    if (ok) c->V = sb_tokenizer_vocab_size(tok);
    free(text);
    sb_tokenizer_free(tok);
    return ok;
}

/* Entropy in nats of the corpus's token frequencies. */
static double unigram_entropy(const corpus *c) {
    double *count = calloc((size_t)c->V, sizeof(double)), h = 0;
    for (size_t i = 0; i < c->n; i++) count[c->ids[i]] += 1;
    for (int v = 0; v < c->V; v++)
        if (count[v] > 0) h -= count[v] / (double)c->n * log(count[v] / (double)c->n);
    free(count);
    return h;
}

/* B windows of T + 1 tokens at offsets drawn from *seed. */
static void sample_batch(const corpus *c, int B, int T, uint64_t *seed, int32_t *in, int32_t *tg) {
    for (int b = 0; b < B; b++) {
        size_t off = rng_next(seed) % (c->n - (size_t)T - 1);
        for (int t = 0; t < T; t++) in[b * T + t] = c->ids[off + t], tg[b * T + t] = c->ids[off + t + 1];
    }
}

/* Trains `steps` steps; returns the mean loss of the last 10. */
static double train_steps(sb_train_model *tm, const corpus *c, int steps, int B, int T, uint64_t seed) {
    sb_adamw opt;
    sb_err err = {0};
    int32_t *in = malloc(sizeof(int32_t) * (size_t)(B * T)), *tg = malloc(sizeof(int32_t) * (size_t)(B * T));
    double tail = 0;
    if (sb_adamw_init(&opt, tm, 0.1, &err) != SB_OK) steps = 0;
    for (int s = 0; s < steps; s++) {
        double loss = 0;
        sample_batch(c, B, T, &seed, in, tg);
        sb_train_zero_grad(tm);
        sb_train_forward(tm, in, tg, B, T, &loss, &err);
        sb_train_backward(tm);
        sb_train_clip_grad_norm(tm, 1.0);
        sb_adamw_step(&opt, tm, sb_lr_schedule(s, steps, 20, 3e-3, 0.1));
        if (s >= steps - 10) tail += loss / 10;
    }
    sb_adamw_free(&opt);
    free(in);
    free(tg);
    return tail;
}

static void check_training(sb_pool *pool, const corpus *c) {
    test_begin("train_loss_below_unigram_entropy");
    sb_train_shape shape = {.n_vocab = c->V, .d_model = 64, .n_layer = 2, .n_head = 4, .n_kv_head = 2, .ff = 128,
                            .max_positions = 64, .tied_head = true, .norm_eps = 1e-5, .rope_theta = 10000};
    enum { B = 8, T = 32, STEPS = 300 };
    sb_train_model *tm = NULL, *again = NULL;
    sb_err err = {0};
    bool ok = test_expect(sb_train_model_new(&shape, 42, B, T, pool, &tm, &err) == SB_OK, "%s", err.msg) &&
              test_expect(sb_train_model_new(&shape, 42, B, T, pool, &again, &err) == SB_OK, "%s", err.msg);
    if (ok) {
        double h = unigram_entropy(c), final = train_steps(tm, c, STEPS, B, T, 7);
        printf("  %zu tokens, unigram entropy %.3f nats, loss after %d steps %.3f\n", c->n, h, STEPS, final);
        test_expect(final < h - 1.0, "loss %.3f is not well below the unigram entropy %.3f", final, h);
        /* a second run from the same seed must give bit-identical weights */
        train_steps(again, c, 20, B, T, 7);
        sb_train_model_free(tm);
        tm = NULL;
        test_expect(sb_train_model_new(&shape, 42, B, T, pool, &tm, &err) == SB_OK, "%s", err.msg);
        train_steps(tm, c, 20, B, T, 7);
        test_expect(memcmp(tm->param_mem, again->param_mem, sizeof(float) * (size_t)tm->n_params) == 0,
                    "two runs with the same seed differ");
    }
    sb_train_model_free(tm);
    sb_train_model_free(again);
    test_end();
}

/* ---- export -> load -> same logits ------------------------------------------------ */

static void remove_export(const char *dir) {
    const char *files[] = {"config.json", "model.safetensors"};
    char path[512];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void check_export(sb_pool *pool, bool tied, bool bf16) {
    char name[80];
    snprintf(name, sizeof name, "train_export_%s%s", tied ? "tied" : "untied", bf16 ? "_bf16" : "");
    test_begin(name);
    sb_train_shape shape = {.n_vocab = 60, .d_model = 32, .n_layer = 2, .n_head = 4, .n_kv_head = 1, .ff = 40,
                            .max_positions = 32, .tied_head = tied, .norm_eps = 1e-6, .rope_theta = 500000};
    enum { B = 1, T = 16 };
    char dir[] = "/tmp/sb_train_export_XXXXXX";
    sb_train_model *tm = NULL;
    sb_model *m = NULL;
    sb_session *s = NULL;
    sb_err err = {0};
    int32_t tokens[B * T];
    random_tokens(tokens, B * T, shape.n_vocab, 8);
    float *logits = malloc(sizeof(float) * B * T * (size_t)shape.n_vocab);
    bool ok = test_expect(mkdtemp(dir) != NULL, "mkdtemp failed") &&
              test_expect(sb_train_model_new(&shape, 5, B, T, pool, &tm, &err) == SB_OK, "%s", err.msg);
    if (ok) widen_weights(tm, 4);
    if (ok && bf16) /* the trainer's weights as the bf16 file will hold them */
        for (int64_t i = 0; i < tm->n_params; i++) tm->param_mem[i] = sb_bf16_to_f32(sb_f32_to_bf16(tm->param_mem[i]));
    ok = ok && test_expect(sb_train_export_hf(tm, dir, bf16, &err) == SB_OK, "%s", err.msg) &&
         test_expect(sb_model_load(dir, &m, &err) == SB_OK, "%s", err.msg) &&
         test_expect(sb_train_forward(tm, tokens, NULL, B, T, NULL, &err) == SB_OK, "%s", err.msg) &&
         test_expect(sb_session_new(m, pool, B, T, T, &s, &err) == SB_OK, "%s", err.msg) &&
         test_expect(sb_session_forward(s, tokens, T, 0, logits, &err) == SB_OK, "%s", err.msg);
    if (ok) {
        double d = rel_diff(logits, tm->logits, (long)B * T * shape.n_vocab);
        test_expect(d <= 1e-5, "loaded model's logits differ from the trainer's by %.3g relative", d);
        test_expect(m->tied_head == tied && m->blocks[0].n_kv_head == 1, "config not read back");
    }
    free(logits);
    sb_session_free(s);
    sb_model_free(m);
    sb_train_model_free(tm);
    remove_export(dir);
    test_end();
}

/* ---- Fisher diagonal ---------------------------------------------------------- */

static void check_fisher(sb_pool *pool) {
    test_begin("train_fisher_diagonal");
    sb_random_shape shape = {.n_vocab = 30, .d_model = 16, .n_layer = 2, .n_head = 2, .n_kv_head = 1, .ff = 24,
                             .max_positions = 32, .tied_head = false};
    enum { W = 3, N = 9, L = 2 };
    sb_model *m = NULL;
    sb_train_model *tm = NULL;
    sb_err err = {0};
    int32_t windows[W * N];
    float *sums[L * SB_FISHER_LINEARS] = {0};
    random_tokens(windows, W * N, shape.n_vocab, 12);
    bool ok = test_expect(sb_model_new_random(&shape, 2, &m, &err) == SB_OK, "%s", err.msg) &&
              test_expect(sb_fisher_diagonal(m, pool, windows, W, N, sums, &err) == SB_OK, "%s", err.msg) &&
              test_expect(sb_train_model_from_model(m, 1, N - 1, pool, &tm, &err) == SB_OK, "%s", err.msg);
    if (ok) {
        /* layer 1's w_up (j = 5) by hand: Σ_windows g² */
        const sb_train_tensor *t = &tm->tensors[1 + 9 + 7];
        int64_t n = t->rows * t->cols;
        float *want = calloc((size_t)n, sizeof(float));
        for (int w = 0; w < W; w++) {
            double loss;
            sb_train_zero_grad(tm);
            sb_train_forward(tm, windows + w * N, windows + w * N + 1, 1, N - 1, &loss, &err);
            sb_train_backward(tm);
            for (int64_t i = 0; i < n; i++) want[i] += t->g[i] * t->g[i];
        }
        test_expect(strstr(t->name, "layers.1.mlp.up_proj") != NULL, "layout changed: %s", t->name);
        test_expect(rel_diff(sums[1 * SB_FISHER_LINEARS + 5], want, (long)n) == 0, "Fisher sums differ");
        test_expect(test_max_abs(want, (long)n) > 0, "all-zero gradients");
        free(want);
    }
    for (int i = 0; i < L * SB_FISHER_LINEARS; i++) free(sums[i]);
    sb_train_model_free(tm);
    sb_model_free(m);
    test_end();
}

int main(void) {
    sb_pool *pool;
    sb_err err = {0};
    if (sb_pool_new(2, &pool, &err)) return 1;
    check_forward_parity(pool, false);
    check_forward_parity(pool, true);
    check_gradients(pool, false, 1);
    check_gradients(pool, true, 2);
    check_pytorch(pool, "llama_gqa");
    check_pytorch(pool, "llama_tied");
    check_pytorch(pool, "llama_long");
    corpus c = {0};
    test_begin("train_corpus");
    bool have = load_corpus(&c);
    test_end();
    if (have) check_training(pool, &c);
    free(c.ids);
    check_export(pool, false, false);
    check_export(pool, true, false);
    check_export(pool, true, true);
    check_fisher(pool);
    sb_pool_free(pool);
    return test_status();
}

/* cmd_bench.c - `slimbench bench`: the engine's speed as a fraction of what
 * the machine can do, both measured in the same run.
 *
 * Full sequence: tokens/s and GFLOP/s of a forward pass over T tokens, next
 * to CBLAS sgemm timed on exactly the same matrix shapes (every linear
 * layer and the head, with the model's own weights).  The ratio says how
 * much the rest of the pass (norms, rotary, attention, copies) costs.
 * Decode: tokens/s of one-token steps with a KV cache, next to the bound
 * set by memory bandwidth (weight bytes read per token / copy bandwidth). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "cli.h"
#include "forward.h"
#include "model_random.h"
#include "vec.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    int seq, decode, reps, threads;
    sb_random_shape shape;
} bench_args;

static int int_flag(int argc, char **argv, const char *name, int dflt, int lo, int *out, sb_err *err) {
    const char *v = sb_flag_value(argc, argv, name);
    if (!v) {
        *out = dflt;
        return SB_OK;
    }
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < lo || x > 1 << 24) return sb_err_set(err, SB_EINPUT, "%s: '%s' is not an integer >= %d", name, v, lo);
    *out = (int)x;
    return SB_OK;
}

static int parse_args(int argc, char **argv, bench_args *a, sb_err *err) {
    static const char *const with_value[] = {"--seq", "--decode", "--reps", "--threads", "--layers", "--d-model",
                                             "--heads", "--kv-heads", "--ff", "--vocab", NULL};
    sb_random_shape *s = &a->shape;
    int rc = sb_flags_check(argc, argv, with_value, NULL, err);
    if (!rc) rc = int_flag(argc, argv, "--seq", 512, 8, &a->seq, err);
    if (!rc) rc = int_flag(argc, argv, "--decode", 32, 1, &a->decode, err);
    if (!rc) rc = int_flag(argc, argv, "--reps", 3, 1, &a->reps, err);
    if (!rc) rc = int_flag(argc, argv, "--threads", 0, 0, &a->threads, err);
    if (!rc) rc = int_flag(argc, argv, "--layers", 30, 1, &s->n_layer, err);
    if (!rc) rc = int_flag(argc, argv, "--d-model", 576, 8, &s->d_model, err);
    if (!rc) rc = int_flag(argc, argv, "--heads", 9, 1, &s->n_head, err);
    if (!rc) rc = int_flag(argc, argv, "--kv-heads", 3, 1, &s->n_kv_head, err);
    if (!rc) rc = int_flag(argc, argv, "--ff", 1536, 1, &s->ff, err);
    if (!rc) rc = int_flag(argc, argv, "--vocab", 50257, 2, &s->n_vocab, err);
    s->max_positions = a->seq + a->decode;
    return rc;
}

/* FLOPs of the linear layers and head for n_tok tokens (2 per multiply-add). */
static double linear_flops(const sb_model *m, int n_tok) {
    double per_tok = (double)m->head.rows * (double)m->head.cols;
    for (int l = 0; l < m->n_layer; l++) {
        const sb_block *b = &m->blocks[l];
        const sb_linear *lins[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
        for (size_t i = 0; i < sizeof lins / sizeof lins[0]; i++) per_tok += (double)lins[i]->rows * (double)lins[i]->cols;
    }
    return 2 * per_tok * n_tok;
}

/* Causal attention FLOPs: q·k and p·v over the visible keys. */
static double attention_flops(const sb_model *m, int n_tok) {
    double pairs = (double)n_tok * (n_tok + 1) / 2, f = 0;
    for (int l = 0; l < m->n_layer; l++) f += 4.0 * pairs * m->blocks[l].n_head * m->blocks[l].head_dim;
    return f;
}

/* Best time of sgemm over every linear shape of the model, with its
 * weights, each product one call to the BLAS with its own threads. */
static double time_gemm_shapes(const sb_model *m, int n_tok, int reps, int threads, float *x, float *y) {
    int saved = sb_blas_threads();
    sb_blas_set_threads(threads);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_seconds();
        for (int l = 0; l < m->n_layer; l++) {
            const sb_block *b = &m->blocks[l];
            const sb_linear *lins[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
            for (size_t i = 0; i < sizeof lins / sizeof lins[0]; i++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tok, (int)lins[i]->rows, (int)lins[i]->cols, 1.0f,
                            x, (int)lins[i]->cols, lins[i]->data, (int)lins[i]->cols, 0.0f, y, (int)lins[i]->rows);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tok, (int)m->head.rows, (int)m->head.cols, 1.0f, x,
                    (int)m->head.cols, m->head.data, (int)m->head.cols, 0.0f, y, (int)m->head.rows);
        double t = now_seconds() - t0;
        if (t < best) best = t;
    }
    sb_blas_set_threads(saved);
    return best;
}

typedef struct {
    char *dst;
    const char *src;
    size_t part;
    float sums[64];
} copy_job;

static void copy_part(void *arg, int task, int worker) {
    (void)worker;
    copy_job *j = arg;
    memcpy(j->dst + (size_t)task * j->part, j->src + (size_t)task * j->part, j->part);
}

static void read_part(void *arg, int task, int worker) {
    (void)worker;
    copy_job *j = arg;
    j->sums[task] = sb_vec_sum((const float *)(j->src + (size_t)task * j->part), (int64_t)(j->part / sizeof(float)));
}

/* Memory bandwidth with every pool thread working on its share of 1 GB
 * buffers (server CPUs can have hundreds of MB of L3, which a smaller
 * buffer would measure instead): *copy_bytes_s counts bytes copied
 * (memcpy's rate; STREAM's "Copy" would report twice this, counting the
 * write), *read_bytes_s bytes read by a streaming sum, the access pattern
 * of decoding. */
static void memory_bandwidth(sb_pool *pool, int reps, double *copy_bytes_s, double *read_bytes_s) {
    size_t n = (size_t)1 << 30;
    char *a = malloc(n), *b = malloc(n);
    *copy_bytes_s = *read_bytes_s = 0;
    if (a && b) {
        /* real, distinct contents: pages of zeros may be shared or deduplicated by the system */
        for (size_t i = 0; i < n / sizeof(float); i++) ((float *)a)[i] = (float)(i % 1021);
        memset(b, 1, n);
        int parts = sb_pool_threads(pool) < 64 ? sb_pool_threads(pool) : 64;
        copy_job j = {b, a, n / (size_t)parts, {0}};
        double best_copy = 1e30, best_read = 1e30;
        for (int r = 0; r < reps + 1; r++) {
            double t0 = now_seconds();
            sb_pool_run(pool, copy_part, &j, parts);
            double t1 = now_seconds();
            sb_pool_run(pool, read_part, &j, parts);
            double t2 = now_seconds();
            if (t1 - t0 < best_copy) best_copy = t1 - t0;
            if (t2 - t1 < best_read) best_read = t2 - t1;
        }
        *copy_bytes_s = (double)(j.part * (size_t)parts) / best_copy;
        *read_bytes_s = (double)(j.part * (size_t)parts) / best_read;
    }
    free(a);
    free(b);
}

static int bench_full(const sb_model *m, sb_pool *pool, const bench_args *a, float *logits, sb_err *err) {
    int T = a->seq;
    sb_session *s;
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)T);
    float *x = malloc(sizeof(float) * (size_t)T * (size_t)(m->blocks[0].w_up.rows > m->d_model ? m->blocks[0].w_up.rows : m->d_model));
    int rc = tokens && x ? sb_session_new(m, pool, 1, T, T, &s, err) : sb_err_set(err, SB_EINTERNAL, "out of memory");
    if (rc) {
        free(tokens);
        free(x);
        return rc;
    }
    for (int t = 0; t < T; t++) tokens[t] = (int32_t)((t * 7919) % m->n_vocab);
    double best = 1e30;
    for (int r = 0; !rc && r < a->reps + 1; r++) { /* the first pass warms up */
        sb_session_reset(s);
        double t0 = now_seconds();
        rc = sb_session_forward(s, tokens, T, 0, logits, err);
        double t = now_seconds() - t0;
        if (r > 0 && t < best) best = t;
    }
    if (!rc) {
        for (int64_t i = 0; i < (int64_t)T * m->d_model; i++) x[i] = 0.01f * (float)((i * 31) % 97 - 48);
        double gemm = time_gemm_shapes(m, T, a->reps, sb_pool_threads(pool), x, logits);
        double lf = linear_flops(m, T), af = attention_flops(m, T);
        printf("full sequence   T=%d: %.1f tokens/s, %.1f GFLOP/s (%.1f linear + %.1f attention GFLOP in %.3f s)\n", T,
               T / best, (lf + af) / best / 1e9, lf / 1e9, af / 1e9, best);
        printf("cblas sgemm     same shapes: %.1f GFLOP/s (%.3f s)\n", lf / gemm / 1e9, gemm);
        printf("ratio           forward / sgemm rate = %.3f (linear FLOPs: %.3f)\n", (lf + af) / best / (lf / gemm),
               gemm / best);
    }
    sb_session_free(s);
    free(tokens);
    free(x);
    return rc;
}

static int bench_decode(const sb_model *m, sb_pool *pool, const bench_args *a, float *logits, sb_err *err) {
    int prompt = 16, n = a->decode;
    sb_session *s;
    int rc = sb_session_new(m, pool, 1, prompt + n, prompt, &s, err);
    if (rc) return rc;
    int32_t tokens[16];
    for (int t = 0; t < prompt; t++) tokens[t] = (int32_t)((t * 104729) % m->n_vocab);
    rc = sb_session_forward(s, tokens, prompt, prompt - 1, logits, err);
    double t0 = now_seconds();
    for (int i = 0; !rc && i < n; i++) {
        int32_t next = (int32_t)((i * 7) % m->n_vocab);
        rc = sb_session_forward(s, &next, 1, 0, logits, err);
    }
    double t = now_seconds() - t0;
    if (!rc) {
        /* per step every linear layer and the head are read once; the embedding only one row */
        double bytes = (double)(sb_model_weight_bits(m) - sb_linear_storage_bits(&m->tok_embd)) / 8;
        if (m->tied_head) bytes += (double)sb_linear_storage_bits(&m->head) / 8;
        double copy_bw, read_bw;
        memory_bandwidth(pool, a->reps, &copy_bw, &read_bw);
        double rate = n / t;
        printf("decode          %d steps after a %d-token prompt: %.2f tokens/s (%.1f GB/s of weights)\n", n, prompt,
               rate, rate * bytes / 1e9);
        printf("memory          %.1f MB of weights read per token; memcpy %.2f GB/s copied (%.2f GB/s read+written), "
               "streaming read %.2f GB/s\n",
               bytes / 1e6, copy_bw / 1e9, 2 * copy_bw / 1e9, read_bw / 1e9);
        printf("bound           weights / memcpy rate: %.2f tokens/s (ratio %.3f); weights / read rate: %.2f tokens/s "
               "(ratio %.3f)\n",
               copy_bw / bytes, rate / (copy_bw / bytes), read_bw / bytes, rate / (read_bw / bytes));
    }
    sb_session_free(s);
    return rc;
}

int sb_cmd_bench(int argc, char **argv) {
    sb_err err = {0};
    bench_args a = {0};
    if (parse_args(argc, argv, &a, &err)) return sb_cli_fail(&err);
    sb_model *m = NULL;
    sb_pool *pool = NULL;
    float *logits = NULL;
    int rc = sb_model_new_random(&a.shape, 1, &m, &err);
    if (!rc) rc = sb_pool_new(a.threads, &pool, &err);
    if (!rc && !(logits = sb_malloc(&err, sizeof(float) * (size_t)a.seq * (size_t)m->n_vocab))) rc = SB_EINTERNAL;
    if (!rc) {
        printf("model           llama-shaped, random f32 weights: %d layers, d %d, %d heads (%d kv), mlp %d, vocab %d, "
               "%.1f M parameters\n",
               m->n_layer, m->d_model, a.shape.n_head, a.shape.n_kv_head, a.shape.ff, m->n_vocab,
               (double)sb_model_param_count(m) / 1e6);
        printf("threads         %d; reference: %s with its own %d threads\n", sb_pool_threads(pool), sb_blas_name(),
               sb_pool_threads(pool));
        rc = bench_full(m, pool, &a, logits, &err);
    }
    if (!rc) rc = bench_decode(m, pool, &a, logits, &err);
    free(logits);
    sb_pool_free(pool);
    sb_model_free(m);
    return rc ? sb_cli_fail(&err) : 0;
}

/* cmd_bench.c - `slimbench bench`: the engine's speed as a fraction of what
 * the machine can do, both measured in the same run.
 *
 * Full sequence: tokens/s and GFLOP/s of a forward pass over T tokens, next
 * to CBLAS sgemm timed on exactly the same matrix shapes (every linear
 * layer and the head, with the model's own weights).  The ratio says how
 * much the rest of the pass (norms, rotary, attention, copies) costs.
 * Decode: tokens/s of one-token steps with a KV cache, next to the bound
 * set by memory bandwidth (weight bytes read per token / copy bandwidth).
 * Formats (--formats f32,q8,q4,q3): after those lines, the block linears
 * are converted to each weight format in turn (qN: method rtn, N bits,
 * group 128 or the largest of 64, 32 dividing every width, asymmetric, format qint; embeddings and head stay f32) and
 * decode tokens/s, the time of the block linears alone and their exact
 * weight bytes are printed next to f32's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "cli.h"
#include "forward.h"
#include "model_random.h"
#include "model_snapshot.h"
#include "registry.h"
#include "vec.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { MAX_FORMATS = 8 };

typedef struct {
    int seq, decode, reps, threads;
    sb_random_shape shape;
    int n_formats;
    int format_bits[MAX_FORMATS];   /* 32: f32, else the qint width */
    bool quantize_head;             /* qN also quantizes the output head */
} bench_args;

/* "f32,q8,q4,q3" -> widths 32, 8, 4, 3. */
static int parse_formats(const char *list, bench_args *a, sb_err *err) {
    a->n_formats = 0;
    if (!list) return SB_OK;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int bits = strcmp(tok, "f32") == 0 ? 32 : tok[0] == 'q' && tok[1] >= '2' && tok[1] <= '8' && !tok[2] ? tok[1] - '0' : 0;
        if (!bits || a->n_formats == MAX_FORMATS)
            return sb_err_set(err, SB_EINPUT, "--formats: '%s' is not f32 or q2..q8 (at most %d formats)", tok, MAX_FORMATS);
        a->format_bits[a->n_formats++] = bits;
    }
    return SB_OK;
}

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
    static const char *const with_value[] = {"--backend", "--seq", "--decode", "--reps", "--threads", "--layers", "--d-model",
                                             "--heads", "--kv-heads", "--ff", "--vocab", "--formats", NULL};
    sb_random_shape *s = &a->shape;
    static const char *const switches[] = {"--quantize-head", NULL};
    int rc = sb_flags_check(argc, argv, with_value, switches, err);
    a->quantize_head = sb_flag_present(argc, argv, "--quantize-head");
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
    if (!rc) rc = parse_formats(sb_flag_value(argc, argv, "--formats"), a, err);
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

/* Seconds for n one-token steps after a 16-token prompt. */
static int time_decode(const sb_model *m, sb_pool *pool, int n, float *logits, double *seconds, sb_err *err) {
    int prompt = 16;
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
    *seconds = now_seconds() - t0;
    sb_session_free(s);
    return rc;
}

static int bench_decode(const sb_model *m, sb_pool *pool, const bench_args *a, float *logits, sb_err *err) {
    int prompt = 16, n = a->decode;
    double t;
    int rc = time_decode(m, pool, n, logits, &t, err);
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
    return rc;
}

/* ---- --formats: the block linears in other weight formats ---- */

static uint64_t block_linear_bits(const sb_model *m, uint64_t *n_weights) {
    uint64_t bits = 0;
    *n_weights = 0;
    for (int l = 0; l < m->n_layer; l++) {
        const sb_block *b = &m->blocks[l];
        const sb_linear *lins[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
        for (size_t i = 0; i < sizeof lins / sizeof lins[0]; i++)
            if (lins[i]->fmt) bits += lins[i]->fmt->storage_bits(lins[i]), *n_weights += (uint64_t)(lins[i]->rows * lins[i]->cols);
    }
    return bits;
}

/* Best time over reps of one token through every block linear (the
 * products only: no norms, attention or head). */
static int time_block_linears(const sb_model *m, sb_pool *pool, int reps, double *best, sb_err *err) {
    int64_t width = m->d_model > m->blocks[0].w_up.rows ? m->d_model : m->blocks[0].w_up.rows;
    for (int l = 0; l < m->n_layer; l++) width = m->blocks[l].wq.rows > width ? m->blocks[l].wq.rows : width;
    sb_matmul_ctx ctx = {pool, NULL, sb_matmul_scratch_floats(width, sb_pool_threads(pool))};
    float *x = sb_malloc(err, sizeof(float) * (size_t)width), *y = sb_malloc(err, sizeof(float) * (size_t)width);
    ctx.scratch = sb_malloc(err, sizeof(float) * (size_t)ctx.scratch_floats);
    int rc = x && y && ctx.scratch ? SB_OK : SB_EINTERNAL;
    for (int64_t i = 0; !rc && i < width; i++) x[i] = 0.01f * (float)(i % 97 - 48);
    *best = 1e30;
    for (int r = 0; !rc && r < reps + 1; r++) {
        double t0 = now_seconds();
        for (int l = 0; l < m->n_layer; l++) {
            const sb_block *b = &m->blocks[l];
            const sb_linear *lins[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
            for (size_t i = 0; i < sizeof lins / sizeof lins[0]; i++)
                if (lins[i]->fmt) sb_linear_forward(lins[i], x, 1, y, &ctx);
        }
        double t = now_seconds() - t0;
        if (r > 0 && t < *best) *best = t;
    }
    free(x);
    free(y);
    free(ctx.scratch);
    return rc;
}

/* 128 when it divides every block linear's width, else 64, else 32, else
 * 0 (per-channel): the default shape's d = 576 is 4.5 groups of 128. */
static int bench_group_size(const sb_model *m) {
    const int candidates[] = {128, 64, 32};
    for (size_t k = 0; k < sizeof candidates / sizeof candidates[0]; k++) {
        bool divides = true;
        for (int l = 0; l < m->n_layer; l++) {
            const sb_block *b = &m->blocks[l];
            const sb_linear *lins[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
            for (size_t i = 0; i < sizeof lins / sizeof lins[0]; i++)
                if (lins[i]->fmt && lins[i]->cols % candidates[k]) divides = false;
        }
        if (divides) return candidates[k];
    }
    return 0;
}

/* Converts the block linears (and the head when head_too) with rtn (bits,
 * the bench's group size, asymmetric). */
static int convert_rtn(sb_model *m, sb_pool *pool, int bits, bool head_too, sb_err *err) {
    const sb_method *rtn = sb_registry_method("rtn");
    if (!rtn) return sb_err_set(err, SB_EINTERNAL, "method rtn is not registered");
    char b[16], g[32];
    snprintf(b, sizeof b, "bits=%d", bits);
    snprintf(g, sizeof g, "group_size=%d", bench_group_size(m));
    const char *assign[] = {b, g, "symmetric=false", head_too ? "head=true" : "head=false"};
    sb_params p;
    sb_method_report rep = {0};
    sb_run_ctx ctx = {.pool = pool};
    int rc = sb_params_from_strings(rtn->params, rtn->n_params, assign, 4, "bench --formats", &p, err);
    if (!rc) rc = rtn->apply(m, &p, &ctx, &rep, err);
    cJSON_Delete(rep.details);
    return rc;
}

typedef struct format_figures {
    double tokens_s, linears_s, bytes, bits_per_weight;
} format_figures;

static int measure_format(sb_model *m, sb_pool *pool, const bench_args *a, float *logits, format_figures *f, sb_err *err) {
    double best = 1e30, t;
    int rc = SB_OK;
    for (int r = 0; !rc && r < a->reps; r++) { /* best of reps: the memory system is noisy */
        rc = time_decode(m, pool, a->decode, logits, &t, err);
        if (!rc && t < best) best = t;
    }
    if (!rc) rc = time_block_linears(m, pool, a->reps, &f->linears_s, err);
    uint64_t n_weights, bits = block_linear_bits(m, &n_weights);
    f->tokens_s = a->decode / best;
    f->bytes = (double)bits / 8;
    f->bits_per_weight = (double)bits / (double)n_weights;
    return rc;
}

static int bench_formats(sb_model *m, sb_pool *pool, const bench_args *a, float *logits, sb_err *err) {
    sb_model_snapshot *snap;
    int rc = sb_model_snapshot_take(m, &snap, err);
    if (rc) return rc;
    format_figures base = {0};
    rc = measure_format(m, pool, a, logits, &base, err);
    printf("formats         block linears%s converted (qN: rtn N bits, group %d, asymmetric -> qint; embeddings%s "
           "stay f32); decode best of %d x %d steps\n",
           a->quantize_head ? " and head" : "", bench_group_size(m), a->quantize_head ? "" : " and head", a->reps,
           a->decode);
    for (int i = 0; !rc && i < a->n_formats; i++) {
        int bits = a->format_bits[i];
        format_figures f = base;
        if (bits != 32) {
            rc = convert_rtn(m, pool, bits, a->quantize_head, err);
            if (!rc) rc = measure_format(m, pool, a, logits, &f, err);
            sb_model_snapshot_restore(m, snap);
        }
        if (rc) break;
        char name[8];
        snprintf(name, sizeof name, bits == 32 ? "f32" : "q%d", bits);
        printf("format %-8s decode %.2f tokens/s (x%.2f f32); block linears %.2f ms/token (x%.2f f32), %.1f MB = "
               "%.4f bits/weight (%.3f of f32)\n",
               name, f.tokens_s, f.tokens_s / base.tokens_s, 1e3 * f.linears_s, base.linears_s / f.linears_s, f.bytes / 1e6,
               f.bits_per_weight, f.bytes / base.bytes);
    }
    sb_model_snapshot_free(snap);
    return rc;
}

int sb_cmd_bench(int argc, char **argv) {
    const char *backend = sb_flag_value(argc, argv, "--backend");
    if (backend && strcmp(backend, "cpu") != 0) return sb_cmd_bench_cuda(argc, argv); /* cmd_bench_cuda.c */
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
    if (!rc && a.n_formats) rc = bench_formats(m, pool, &a, logits, &err);
    free(logits);
    sb_pool_free(pool);
    sb_model_free(m);
    return rc ? sb_cli_fail(&err) : 0;
}

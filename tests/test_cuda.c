/* test_cuda.c - the CUDA backend against the CPU backend (and transformers).
 *
 * Built without CUDA, or run where no device answers, it prints one SKIP
 * line saying which and exits. On a GPU machine every parity fixture of
 * test_parity.c runs on the device:
 *   - the full-sequence logits agree with transformers' reference and with
 *     the CPU backend within 1e-4 relative (f32 weights), or within bf16's
 *     tolerance (2e-2 relative, the 16-bit checkpoints: their products take
 *     16-bit inputs on the device);
 *   - one token at a time through the device KV cache matches the device's
 *     full pass, and a batch of two sequences matches single passes;
 * then packed formats (qint from RTN at 3, 4 and 8 bits, qint with mixed
 * widths per group, 2:4 and CSR sparse, a low-rank add-on over qint) through both the decoded-tile GEMM (many rows) and the fused GEMV
 * (one row); the perplexity task on the built-in model within 0.1% of the
 * CPU's; device out-of-memory as a clear error after which the device still
 * works; and the allocator's figures. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_cuda.h"
#include "check.h"
#include "format_qint.h"
#include "forward.h"
#include "mapped_file.h"
#include "model_random.h"
#include "plugin.h"
#include "registry.h"
#include "story_corpus.h"

static const char *models_dir = "tests/reference/models";

typedef struct {
    int32_t *tokens;
    int n_tok, n_vocab;
    float *logits;  /* [n_tok, n_vocab] from transformers */
    char model_path[512];
} fixture;

static void fixture_free(fixture *f) {
    free(f->tokens);
    free(f->logits);
}

/* <dir>/reference.json for a Hugging Face folder, <models>/<name>.json for GGUF. */
static bool fixture_load(const char *json_path, const char *base_dir, bool gguf, fixture *f) {
    memset(f, 0, sizeof *f);
    char *text;
    sb_err err = {0};
    if (sb_read_text_file(json_path, &text, NULL, &err)) return test_expect(false, "%s", err.msg);
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *tokens = cJSON_GetObjectItem(j, "tokens"), *shape = cJSON_GetObjectItem(j, "shape");
    const cJSON *logits = cJSON_GetObjectItem(j, "logits_file"), *file = cJSON_GetObjectItem(j, "gguf_file");
    bool ok = test_expect(cJSON_IsArray(tokens) && cJSON_IsArray(shape) && cJSON_IsString(logits) &&
                              (!gguf || cJSON_IsString(file)),
                          "%s: malformed fixture", json_path);
    if (ok) {
        f->n_tok = cJSON_GetArraySize(tokens);
        f->n_vocab = cJSON_GetArrayItem(shape, 1)->valueint;
        f->tokens = malloc(sizeof(int32_t) * (size_t)f->n_tok);
        for (int i = 0; i < f->n_tok; i++) f->tokens[i] = cJSON_GetArrayItem(tokens, i)->valueint;
        snprintf(f->model_path, sizeof f->model_path, "%s/%s", base_dir, gguf ? file->valuestring : "");
        char lpath[1024];
        snprintf(lpath, sizeof lpath, "%s/%s", gguf ? models_dir : base_dir, logits->valuestring);
        sb_mapped_file mf;
        ok = test_expect(sb_mapped_file_open(&mf, lpath, &err) == SB_OK, "%s", err.msg);
        if (ok) {
            ok = test_expect(mf.size == sizeof(float) * (size_t)f->n_tok * (size_t)f->n_vocab, "%s: wrong size", lpath);
            f->logits = malloc(mf.size);
            if (ok) memcpy(f->logits, mf.data, mf.size);
            sb_mapped_file_close(&mf);
        }
    }
    cJSON_Delete(j);
    return ok;
}

static double rel_diff(const float *a, const float *ref, long n) {
    double scale = test_max_abs(ref, n);
    return test_max_abs_diff(a, ref, n) / (scale > 0 ? scale : 1);
}

/* Logits of tokens[n_seq * n_tok] in one call on whichever backend m->device selects. */
static bool full_pass(const sb_model *m, sb_pool *pool, const int32_t *tokens, int n_seq, int n_tok, float *out) {
    sb_session *s = NULL;
    sb_err err = {0};
    bool ok = test_expect(sb_session_new(m, pool, n_seq, n_tok, n_tok, &s, &err) == SB_OK, "%s", err.msg) &&
              test_expect(sb_session_forward(s, tokens, n_tok, 0, out, &err) == SB_OK, "%s", err.msg);
    sb_session_free(s);
    return ok;
}

/* Device logits one token at a time through the KV cache, against `full`. */
static double decode_diff(const sb_model *m, const int32_t *tokens, int n_tok, int V, const float *full) {
    sb_session *s = NULL;
    sb_err err = {0};
    double worst = INFINITY;
    if (!test_expect(sb_session_new(m, NULL, 1, n_tok, 1, &s, &err) == SB_OK, "%s", err.msg)) return worst;
    float *step = malloc(sizeof(float) * (size_t)V);
    worst = 0;
    for (int t = 0; t < n_tok; t++) {
        if (!test_expect(sb_session_forward(s, &tokens[t], 1, 0, step, &err) == SB_OK, "%s", err.msg)) {
            worst = INFINITY;
            break;
        }
        double d = rel_diff(step, full + (long)t * V, V);
        if (d > worst) worst = d;
    }
    free(step);
    sb_session_free(s);
    return worst;
}

typedef struct {
    sb_cuda_ctx *ctx;
    sb_pool *pool;
} env;

/* CPU and device logits of m on the fixture's tokens: full pass, decode and
 * a batch of two on the device, each against the CPU within tol. */
static void compare_backends(env *e, sb_model *m, const fixture *f, double tol, const float *reference) {
    sb_err err = {0};
    int n = f->n_tok, V = f->n_vocab;
    long nv = (long)n * V;
    float *cpu = malloc(sizeof(float) * (size_t)nv), *dev = malloc(sizeof(float) * (size_t)nv * 2);
    int32_t *two = malloc(sizeof(int32_t) * 2 * (size_t)n);
    sb_cuda_model *dm = NULL;
    if (!full_pass(m, e->pool, f->tokens, 1, n, cpu)) goto done;
    if (!test_expect(sb_cuda_model_upload(e->ctx, m, &dm, &err) == SB_OK, "%s", err.msg)) goto done;
    m->device = dm;
    if (full_pass(m, NULL, f->tokens, 1, n, dev)) {
        double d = rel_diff(dev, cpu, nv);
        test_expect(d <= tol, "device full pass vs CPU: %.3g relative (tolerance %.0e)", d, tol);
        if (reference) {
            d = rel_diff(dev, reference, nv);
            test_expect(d <= tol, "device full pass vs transformers: %.3g relative (tolerance %.0e)", d, tol);
        }
        d = decode_diff(m, f->tokens, n, V, dev);
        test_expect(d <= tol, "device KV-cache decoding vs device full pass: %.3g relative", d);
    }
    for (int t = 0; t < n; t++) two[t] = f->tokens[t], two[n + t] = f->tokens[n - 1 - t];
    float *rev = malloc(sizeof(float) * (size_t)nv);
    if (full_pass(m, NULL, two, 2, n, dev) && full_pass(m, NULL, two + n, 1, n, rev)) {
        double d0 = rel_diff(dev, cpu, nv), d1 = rel_diff(dev + nv, rev, nv);
        test_expect(d0 <= tol && d1 <= tol, "device batch of two vs single passes: %.3g, %.3g", d0, d1);
    }
    free(rev);
done:
    m->device = NULL;
    sb_cuda_model_free(dm);
    free(cpu);
    free(dev);
    free(two);
}

static bool is_16bit(const char *name) { return strstr(name, "bf16") || strstr(name, "f16"); }

static void parity_case(env *e, const char *name, const char *json, const char *dir, bool gguf) {
    char label[96];
    snprintf(label, sizeof label, "cuda_parity_%s", name);
    test_begin(label);
    fixture f;
    sb_model *m = NULL;
    sb_err err = {0};
    if (fixture_load(json, dir, gguf, &f) &&
        test_expect(sb_model_load(f.model_path, &m, &err) == SB_OK, "%s", err.msg))
        compare_backends(e, m, &f, is_16bit(name) ? 2e-2 : 1e-4, f.logits);
    sb_model_free(m);
    fixture_free(&f);
    test_end();
}

/* Applies a registered method with "name=value" parameters (no calibration data needed). */
static bool apply_method(sb_model *m, const sb_model *reference, sb_pool *pool, const char *method,
                         const char *const *kv, int n) {
    const sb_method *me = sb_registry_method(method);
    sb_params p;
    sb_err err = {0};
    sb_run_ctx ctx = {.pool = pool, .reference = reference};
    sb_method_report rep = {0};
    bool ok = test_expect(me != NULL, "no method %s", method) &&
              test_expect(sb_params_from_strings(me->params, me->n_params, kv, n, method, &p, &err) == SB_OK, "%s",
                          err.msg) &&
              test_expect(me->apply(m, &p, &ctx, &rep, &err) == SB_OK, "%s: %s", method, err.msg);
    cJSON_Delete(rep.details);
    return ok;
}

typedef struct {
    const char *method;
    const char *const *kv;
    int n;
} step;

/* A packed format on the device: the llama fixture compressed by one or two
 * methods (the second may compensate the first against the unmodified model),
 * CPU vs device (the same packed weights on both sides). */
static void format_case(env *e, const char *label, step first, step second) {
    test_begin(label);
    fixture f;
    sb_model *m = NULL, *ref = NULL;
    sb_err err = {0};
    char dir[512], json[600];
    snprintf(dir, sizeof dir, "%s/llama", models_dir);
    snprintf(json, sizeof json, "%s/reference.json", dir);
    if (fixture_load(json, dir, false, &f) && test_expect(sb_model_load(dir, &m, &err) == SB_OK, "%s", err.msg) &&
        test_expect(sb_model_load(dir, &ref, &err) == SB_OK, "%s", err.msg) &&
        apply_method(m, ref, e->pool, first.method, first.kv, first.n) &&
        (!second.method || apply_method(m, ref, e->pool, second.method, second.kv, second.n)))
        compare_backends(e, m, &f, 1e-4, NULL);
    sb_model_free(m);
    sb_model_free(ref);
    fixture_free(&f);
    test_end();
}

/* w re-quantized asymmetrically with a different width per (row, group),
 * 2 + (row + group) % 7 bits: the mixed-precision qint layout (SliM-LLM's). */
static bool requantize_mixed(sb_linear *w, int gs) {
    int64_t rows = w->rows, cols = w->cols, ng = cols / gs;
    float *x = malloc(sizeof(float) * (size_t)(rows * cols)), *scales = malloc(sizeof(float) * (size_t)(rows * ng));
    float *zeros = malloc(sizeof(float) * (size_t)(rows * ng));
    uint8_t *codes = malloc((size_t)(rows * cols)), *bits = malloc((size_t)(rows * ng));
    w->fmt->decode_rows(w, 0, rows, x);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < ng; g++) {
            const float *v = x + r * cols + g * gs;
            float lo = 0, hi = 0;
            for (int i = 0; i < gs; i++) lo = fminf(lo, v[i]), hi = fmaxf(hi, v[i]);
            int b = 2 + (int)((r + g) % 7), maxq = (1 << b) - 1;
            float scale = hi > lo ? (hi - lo) / (float)maxq : 1.0f;
            float zero = fminf(fmaxf(roundf(-lo / scale), 0), (float)maxq);
            bits[r * ng + g] = (uint8_t)b;
            scales[r * ng + g] = scale;
            zeros[r * ng + g] = zero;
            for (int i = 0; i < gs; i++)
                codes[r * cols + g * gs + i] = (uint8_t)fminf(fmaxf(roundf(v[i] / scale) + zero, 0), (float)maxq);
        }
    sb_linear q = {0};
    sb_err err = {0};
    bool ok = test_expect(sb_qint_pack(rows, cols, gs, 0, bits, codes, scales, zeros, &q, &err) == SB_OK, "%s", err.msg);
    if (ok) {
        q.bias = w->bias;
        w->bias = NULL;
        sb_linear_free(w);
        *w = q;
    }
    free(x), free(scales), free(zeros), free(codes), free(bits);
    return ok;
}

static void mixed_qint_case(env *e) {
    test_begin("cuda_format_qint_mixed_bits");
    fixture f;
    sb_model *m = NULL;
    sb_err err = {0};
    char dir[512], json[600];
    snprintf(dir, sizeof dir, "%s/llama", models_dir);
    snprintf(json, sizeof json, "%s/reference.json", dir);
    bool ok = fixture_load(json, dir, false, &f) && test_expect(sb_model_load(dir, &m, &err) == SB_OK, "%s", err.msg);
    for (int l = 0; ok && l < m->n_layer; l++) {
        sb_block *b = &m->blocks[l];
        sb_linear *lin[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
        for (int i = 0; ok && i < 7; i++) ok = requantize_mixed(lin[i], 32);
    }
    if (ok) compare_backends(e, m, &f, 1e-4, NULL);
    sb_model_free(m);
    fixture_free(&f);
    test_end();
}

/* Logits of m on both backends for the fixture's tokens in one pass, within tol. */
static void compare_full_pass(env *e, sb_model *m, const fixture *f, double tol) {
    sb_err err = {0};
    long nv = (long)f->n_tok * f->n_vocab;
    float *cpu = malloc(sizeof(float) * (size_t)nv), *dev = malloc(sizeof(float) * (size_t)nv);
    sb_cuda_model *dm = NULL;
    if (full_pass(m, e->pool, f->tokens, 1, f->n_tok, cpu) &&
        test_expect(sb_cuda_model_upload(e->ctx, m, &dm, &err) == SB_OK, "%s", err.msg)) {
        m->device = dm;
        if (full_pass(m, NULL, f->tokens, 1, f->n_tok, dev)) {
            double d = rel_diff(dev, cpu, nv);
            test_expect(d <= tol, "device full pass vs CPU: %.3g relative", d);
        }
        m->device = NULL;
    }
    sb_cuda_model_free(dm);
    free(cpu);
    free(dev);
}

/* Tensor-core attention (attention_mma.cu) runs for 16-bit models with more
 * than 4 tokens per call. Random Llama-shaped models rounded to bf16 or f16,
 * 150 tokens (two full tiles of 64 queries and a partial one): against the
 * CPU, the device's f32 one-token path (decoding), a batch of two, and a
 * prefill split over two calls (n_past > 0 in the kernel); with GQA, head
 * sizes 64 and 128, a sliding window, score soft-capping, and bidirectional
 * attention. The kernel must actually have run (its call count). */
typedef struct {
    const char *label;
    int n_head, n_kv_head;
    bool f16;
    int window;          /* on layer 0 */
    float softcap;
    bool bidirectional;
} mma_variant;

/* Device logits of tokens[n] prefilled in two calls (split, n - split) against `full`. */
static double split_prefill_diff(const sb_model *m, const int32_t *tokens, int n, int split, int V, const float *full) {
    sb_session *s = NULL;
    sb_err err = {0};
    double d = INFINITY;
    float *out = malloc(sizeof(float) * (size_t)n * (size_t)V);
    if (test_expect(sb_session_new(m, NULL, 1, n, n, &s, &err) == SB_OK, "%s", err.msg) &&
        test_expect(sb_session_forward(s, tokens, split, 0, out, &err) == SB_OK, "%s", err.msg) &&
        test_expect(sb_session_forward(s, tokens + split, n - split, 0, out + (long)split * V, &err) == SB_OK, "%s",
                    err.msg))
        d = rel_diff(out, full, (long)n * V);
    sb_session_free(s);
    free(out);
    return d;
}

static void mma_variant_case(env *e, const mma_variant *v) {
    enum { N_TOK = 150, SPLIT = 70 };
    test_begin(v->label);
    sb_random_shape shape = {.n_vocab = 320, .d_model = 256, .n_layer = 2, .n_head = v->n_head,
                             .n_kv_head = v->n_kv_head, .ff = 384, .max_positions = 512, .tied_head = true};
    sb_model *m = NULL;
    sb_err err = {0};
    fixture f = {.n_tok = N_TOK, .n_vocab = shape.n_vocab};
    f.tokens = malloc(sizeof(int32_t) * N_TOK);
    for (int t = 0; t < N_TOK; t++) f.tokens[t] = (int32_t)((t * 53 + 11) % shape.n_vocab);
    if (test_expect(sb_model_new_random(&shape, 7, &m, &err) == SB_OK, "%s", err.msg) &&
        test_expect(sb_model_round_to_16bit(m, !v->f16, &err) == SB_OK, "%s", err.msg)) {
        m->blocks[0].sliding_window = v->window;
        m->attn_softcap = v->softcap;
        m->bidirectional = v->bidirectional;
        sb_cuda_stats before, after;
        sb_cuda_stats_get(e->ctx, &before);
        if (v->bidirectional) {
            compare_full_pass(e, m, &f, 2e-2); /* one token at a time would be another model */
        } else {
            compare_backends(e, m, &f, 2e-2, NULL);
            long nv = (long)N_TOK * shape.n_vocab;
            float *full = malloc(sizeof(float) * (size_t)nv);
            sb_cuda_model *dm = NULL;
            if (test_expect(sb_cuda_model_upload(e->ctx, m, &dm, &err) == SB_OK, "%s", err.msg)) {
                m->device = dm;
                if (full_pass(m, NULL, f.tokens, 1, N_TOK, full)) {
                    double d = split_prefill_diff(m, f.tokens, N_TOK, SPLIT, shape.n_vocab, full);
                    test_expect(d <= 1e-5, "prefill in two calls vs one: %.3g relative", d);
                }
                m->device = NULL;
            }
            sb_cuda_model_free(dm);
            free(full);
        }
        sb_cuda_stats_get(e->ctx, &after);
        test_expect(after.attention_mma_calls > before.attention_mma_calls, "the tensor-core kernel never ran");
    }
    sb_model_free(m);
    fixture_free(&f);
    test_end();
}

/* only: run the variants whose label contains it (NULL: all). */
static void mma_attention_case(env *e, const char *only) {
    static const mma_variant variants[] = {
        {"cuda_mma_attention_bf16_hd64_gqa", 4, 2, false, 0, 0, false},
        {"cuda_mma_attention_f16_hd128", 2, 1, true, 0, 0, false},
        {"cuda_mma_attention_window_softcap", 4, 4, false, 40, 20, false},
        {"cuda_mma_attention_bidirectional", 4, 2, false, 0, 0, true},
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++)
        if (!only || strstr(variants[i].label, only)) mma_variant_case(e, &variants[i]);
}

/* An encoder's attention (every token sees every token of the call): the
 * llama fixture with the flag set, CPU vs device. */
static void bidirectional_case(env *e) {
    test_begin("cuda_bidirectional_attention");
    fixture f;
    sb_model *m = NULL;
    sb_err err = {0};
    char dir[512], json[600];
    snprintf(dir, sizeof dir, "%s/llama", models_dir);
    snprintf(json, sizeof json, "%s/reference.json", dir);
    if (fixture_load(json, dir, false, &f) && test_expect(sb_model_load(dir, &m, &err) == SB_OK, "%s", err.msg)) {
        m->bidirectional = true;
        compare_full_pass(e, m, &f, 1e-4);
    }
    sb_model_free(m);
    fixture_free(&f);
    test_end();
}

/* A SliceGPT-sliced model (narrower residual stream, shortcut matrices, norms
 * with the original divisor), CPU vs device, one pass and decoding. */
static void sliced_case(env *e) {
    test_begin("cuda_slicegpt_model");
    fixture f = {0};
    sb_model *m = NULL;
    sb_err err = {0};
    static const char *const kv[] = {"data=tests/reference/tasks/text.raw", "n_samples=4", "seq_len=32",
                                     "sparsity=0.25"};
    const char *dir = "tests/reference/tasks/model";
    bool ok = test_expect(sb_model_load(dir, &m, &err) == SB_OK, "%s", err.msg) &&
              apply_method(m, NULL, e->pool, "slicegpt", kv, 4) &&
              test_expect(sb_model_is_sliced(m), "slicegpt left the model unsliced");
    if (ok) {
        f.n_tok = 24;
        f.n_vocab = m->n_vocab;
        f.tokens = malloc(sizeof(int32_t) * (size_t)f.n_tok);
        for (int t = 0; t < f.n_tok; t++) f.tokens[t] = (int32_t)((t * 37 + 5) % m->n_vocab);
        compare_backends(e, m, &f, 1e-4, NULL);
    }
    sb_model_free(m);
    fixture_free(&f);
    test_end();
}

/* The perplexity task on the built-in model, CPU and device, within 0.1%. */
static void perplexity_case(env *e) {
    test_begin("cuda_perplexity_agrees");
    sb_model *m = NULL;
    sb_err err = {0};
    sb_cuda_model *dm = NULL;
    const sb_task *t = sb_registry_task("perplexity");
    /* the built-in corpus's test stories, as a text file the task reads */
    static const char *const kv[] = {"data=build/test_cuda_stories.txt", "n_ctx=256", "chunks=8"};
    char *text = NULL;
    size_t len = 0;
    bool ok = test_expect(sb_story_generate(7, 400, SB_STORY_TEST, &text, &len, &err) == SB_OK, "%s", err.msg);
    FILE *fp = ok ? fopen("build/test_cuda_stories.txt", "wb") : NULL;
    ok = ok && test_expect(fp && fwrite(text, 1, len, fp) == len, "cannot write build/test_cuda_stories.txt");
    if (fp) fclose(fp);
    free(text);
    sb_params p;
    sb_run_ctx ctx = {.pool = e->pool};
    sb_task_result cpu = {0}, dev = {0};
    ok = ok && test_expect(t != NULL, "no perplexity task") &&
              test_expect(sb_params_from_strings(t->params, t->n_params, kv, 3, "perplexity", &p, &err) == SB_OK, "%s",
                          err.msg) &&
              test_expect(sb_model_load("datasets/builtin/story-1.9m", &m, &err) == SB_OK, "%s", err.msg) &&
              test_expect(t->run(m, &p, &ctx, &cpu, &err) == SB_OK, "CPU: %s", err.msg) &&
              test_expect(sb_cuda_model_upload(e->ctx, m, &dm, &err) == SB_OK, "%s", err.msg);
    if (ok) {
        m->device = dm;
        ok = test_expect(t->run(m, &p, &ctx, &dev, &err) == SB_OK, "device: %s", err.msg);
        m->device = NULL;
    }
    if (ok) {
        const sb_metric *a = sb_result_find(&cpu, "ppl"), *b = sb_result_find(&dev, "ppl");
        if (test_expect(a && b, "no ppl metric"))
            test_expect(fabs(a->value - b->value) <= 1e-3 * a->value, "perplexity CPU %.6f, device %.6f", a->value,
                        b->value);
    }
    sb_result_clear(&cpu);
    sb_result_clear(&dev);
    sb_cuda_model_free(dm);
    sb_model_free(m);
    test_end();
}

/* A session far larger than any device: a clear error, and the device still works after it. */
static void oom_case(env *e) {
    test_begin("cuda_out_of_memory_is_clear");
    sb_model *m = NULL;
    sb_cuda_model *dm = NULL;
    sb_session *s = NULL;
    sb_err err = {0};
    char dir[512];
    snprintf(dir, sizeof dir, "%s/llama", models_dir);
    if (test_expect(sb_model_load(dir, &m, &err) == SB_OK, "%s", err.msg) &&
        test_expect(sb_cuda_model_upload(e->ctx, m, &dm, &err) == SB_OK, "%s", err.msg)) {
        m->device = dm;
        /* 2 layers x 2 (K, V) x 4096 seqs x 2^20 positions x 32 dims x 4 bytes = 2 TiB */
        int rc = sb_session_new(m, NULL, 4096, 1 << 20, 1, &s, &err);
        test_expect(rc == SB_EINPUT && strstr(err.msg, "out of device memory"), "rc %d: %s", rc, err.msg);
        sb_session_free(s);
        s = NULL;
        int32_t tok[4] = {1, 2, 3, 4};
        float *logits = malloc(sizeof(float) * 4 * (size_t)m->n_vocab);
        test_expect(full_pass(m, NULL, tok, 1, 4, logits), "the device no longer works after OOM");
        free(logits);
        m->device = NULL;
    }
    sb_cuda_model_free(dm);
    sb_model_free(m);
    test_end();
}

static void memory_case(env *e) {
    test_begin("cuda_memory_figures");
    sb_model *m = NULL;
    sb_cuda_model *dm = NULL;
    sb_err err = {0};
    char dir[512];
    snprintf(dir, sizeof dir, "%s/llama", models_dir);
    sb_cuda_stats before, after, freed;
    sb_cuda_stats_reset(e->ctx);
    sb_cuda_stats_get(e->ctx, &before);
    if (test_expect(sb_model_load(dir, &m, &err) == SB_OK, "%s", err.msg) &&
        test_expect(sb_cuda_model_upload(e->ctx, m, &dm, &err) == SB_OK, "%s", err.msg)) {
        sb_cuda_stats_get(e->ctx, &after);
        int64_t bytes = sb_cuda_model_bytes(dm);
        test_expect(bytes >= (int64_t)sb_model_param_count(m) * 4 - (int64_t)m->n_vocab * m->d_model * 4,
                    "device weights %lld bytes for %llu parameters", (long long)bytes,
                    (unsigned long long)sb_model_param_count(m));
        test_expect(after.alloc_bytes - before.alloc_bytes >= bytes, "allocator counted %lld, weights %lld",
                    (long long)(after.alloc_bytes - before.alloc_bytes), (long long)bytes);
        test_expect(after.alloc_peak_bytes >= after.alloc_bytes, "peak below current");
        test_expect(after.used_bytes > 0, "cudaMemGetInfo reports nothing used");
        sb_cuda_model_free(dm);
        dm = NULL;
        sb_cuda_stats_get(e->ctx, &freed);
        test_expect(freed.alloc_bytes == before.alloc_bytes, "leak: %lld bytes still held",
                    (long long)(freed.alloc_bytes - before.alloc_bytes));
    }
    sb_cuda_model_free(dm);
    sb_model_free(m);
    test_end();
}

/* Backend names: what parses, what each part means, and the errors (no device needed). */
static void backend_names_case(void) {
    test_begin("cuda_backend_names");
    sb_backend_choice c;
    sb_err err = {0};
    test_expect(sb_backend_parse("cpu", &c, &err) == SB_OK && c.kind == SB_BACKEND_CPU, "cpu: %s", err.msg);
    static const char *const bad[] = {"gpu", "CUDA", "cuda:", "cuda:-1", "cuda:1x", "cuda,fp8", "cuda:0,tf32,tf32", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sb_err e = {0};
        test_expect(sb_backend_parse(bad[i], &c, &e) == SB_EINPUT && e.msg[0], "'%s' was accepted", bad[i]);
    }
    sb_err e = {0};
    int rc = sb_backend_parse("cuda:2,tf32", &c, &e);
    if (sb_backend_cuda_built())
        test_expect(rc == SB_OK && c.kind == SB_BACKEND_CUDA && c.device == 2 && c.tf32, "cuda:2,tf32: %s", e.msg);
    else
        test_expect(rc == SB_EINPUT && strstr(e.msg, "built without CUDA"), "cuda:2,tf32 without CUDA: %s", e.msg);
    test_end();
}

int main(void) {
    backend_names_case();
    if (!sb_backend_cuda_built()) {
        test_skip("cuda", "built without CUDA (make CUDA=1 builds the backend)");
        return 0;
    }
    sb_err err = {0};
    if (sb_cuda_device_count(&err) == 0) {
        test_skip("cuda", "%s", err.msg);
        return 0;
    }
    env e = {0};
    if (sb_pool_new(2, &e.pool, &err) || sb_cuda_ctx_new(0, &e.ctx, &err)) {
        test_begin("cuda_open");
        test_expect(false, "%s", err.msg);
        test_end();
        return test_status();
    }
    /* SB_CUDA_TESTS=TEXT runs only the tensor-core attention cases whose name
     * contains TEXT ("mma": all of them), for compute-sanitizer, whose racecheck is slow */
    const char *only = getenv("SB_CUDA_TESTS");
    if (only) {
        mma_attention_case(&e, only);
        sb_cuda_ctx_free(e.ctx);
        sb_pool_free(e.pool);
        return test_status();
    }
    static const char *hf[] = {"llama", "llama_bf16", "llama_f16", "mistral", "qwen2", "opt", "gpt2", "phi", "gemma3"};
    for (size_t i = 0; i < sizeof hf / sizeof hf[0]; i++) {
        char dir[512], json[600];
        snprintf(dir, sizeof dir, "%s/%s", models_dir, hf[i]);
        snprintf(json, sizeof json, "%s/reference.json", dir);
        parity_case(&e, hf[i], json, dir, false);
    }
    static const char *gguf[] = {"llama_gguf", "qwen2_gguf"};
    for (size_t i = 0; i < sizeof gguf / sizeof gguf[0]; i++) {
        char json[600];
        snprintf(json, sizeof json, "%s/%s.json", models_dir, gguf[i]);
        parity_case(&e, gguf[i], json, models_dir, true);
    }
    static const char *const rtn4[] = {"bits=4", "group_size=32"};
    static const char *const rtn3[] = {"bits=3", "group_size=32", "symmetric=true"};
    static const char *const rtn8[] = {"bits=8", "group_size=32"};
    static const char *const sparse[] = {"pattern=n:m", "n=2", "m=4"};
    static const char *const csr[] = {"sparsity=0.6", "format=csr"};
    static const char *const lorc[] = {"rank=4"};
    step none = {NULL, NULL, 0};
    format_case(&e, "cuda_format_qint4_asym", (step){"rtn", rtn4, 2}, none);
    format_case(&e, "cuda_format_qint3_sym", (step){"rtn", rtn3, 3}, none);
    format_case(&e, "cuda_format_qint8", (step){"rtn", rtn8, 2}, none);
    format_case(&e, "cuda_format_sparse_2_4", (step){"magnitude", sparse, 3}, none);
    format_case(&e, "cuda_format_sparse_csr", (step){"magnitude", csr, 2}, none);
    format_case(&e, "cuda_format_qint4_lowrank", (step){"rtn", rtn4, 2}, (step){"lorc", lorc, 1});
    mixed_qint_case(&e);
    bidirectional_case(&e);
    mma_attention_case(&e, NULL);
    sliced_case(&e);
    perplexity_case(&e);
    oom_case(&e);
    memory_case(&e);
    sb_cuda_ctx_free(e.ctx);
    sb_pool_free(e.pool);
    return test_status();
}

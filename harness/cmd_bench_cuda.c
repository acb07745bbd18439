/* cmd_bench_cuda.c - `slimbench bench --backend cuda[:N]`: the CUDA
 * backend's speed against what the same GPU can do, measured in the same run.
 *
 * Model: Llama-shaped, about 1.2 B parameters by default (Llama 3.2 1B's
 * shape: 16 layers, d 2048, 32 heads / 8 kv, MLP 8192, vocabulary 128256),
 * random weights stored as bf16 on the device.
 * Full sequence: tokens/s and TFLOP/s of one pass over T tokens (logits for
 * the last position only, as a generation prefill), and that TFLOP/s as a
 * share of cuBLAS's bf16 GEMM peak measured here (8192^3).
 * PyTorch: when python3 with torch and transformers is installed, the same
 * shape as a transformers LlamaForCausalLM in bf16 on the same GPU
 * (sdpa attention), timed the same way; the ratio is ours / theirs. The
 * product never needs python: without it that line says it was skipped.
 * Decode: tokens/s of one-token steps through the KV cache against the
 * bound of reading every weight once per token at the device's measured
 * copy bandwidth. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "backend_cuda.h"
#include "cli.h"
#include "forward.h"
#include "half.h"
#include "model_random.h"

typedef struct {
    sb_backend_choice backend;
    int seq, decode, reps;
    sb_random_shape shape;
    bool no_torch;
} cuda_bench_args;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int int_arg(int argc, char **argv, const char *name, int dflt, int lo, int *out, sb_err *err) {
    const char *v = sb_flag_value(argc, argv, name);
    char *end;
    long x = v ? strtol(v, &end, 10) : dflt;
    if (v && (*end || x < lo || x > 1 << 24))
        return sb_err_set(err, SB_EINPUT, "%s: '%s' is not an integer >= %d", name, v, lo);
    *out = (int)x;
    return SB_OK;
}

static int parse(int argc, char **argv, cuda_bench_args *a, sb_err *err) {
    static const char *const with_value[] = {"--backend", "--seq", "--decode", "--reps", "--layers", "--d-model",
                                             "--heads", "--kv-heads", "--ff", "--vocab", NULL};
    static const char *const switches[] = {"--no-torch", NULL};
    sb_random_shape *s = &a->shape;
    int rc = sb_flags_check(argc, argv, with_value, switches, err);
    if (!rc) rc = sb_backend_parse(sb_flag_value(argc, argv, "--backend"), &a->backend, err);
    if (!rc) rc = int_arg(argc, argv, "--seq", 2048, 8, &a->seq, err);
    if (!rc) rc = int_arg(argc, argv, "--decode", 128, 1, &a->decode, err);
    if (!rc) rc = int_arg(argc, argv, "--reps", 5, 1, &a->reps, err);
    if (!rc) rc = int_arg(argc, argv, "--layers", 16, 1, &s->n_layer, err);
    if (!rc) rc = int_arg(argc, argv, "--d-model", 2048, 8, &s->d_model, err);
    if (!rc) rc = int_arg(argc, argv, "--heads", 32, 1, &s->n_head, err);
    if (!rc) rc = int_arg(argc, argv, "--kv-heads", 8, 1, &s->n_kv_head, err);
    if (!rc) rc = int_arg(argc, argv, "--ff", 8192, 1, &s->ff, err);
    if (!rc) rc = int_arg(argc, argv, "--vocab", 128256, 2, &s->n_vocab, err);
    s->max_positions = a->seq + a->decode + 16;
    s->tied_head = true;
    a->no_torch = sb_flag_present(argc, argv, "--no-torch");
    return rc;
}

static double linear_flops(const sb_model *m, int n_tok, int head_rows) {
    double f = 0;
    for (int l = 0; l < m->n_layer; l++) {
        const sb_block *b = &m->blocks[l];
        const sb_linear *lins[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
        for (size_t i = 0; i < sizeof lins / sizeof lins[0]; i++) f += 2.0 * (double)lins[i]->rows * (double)lins[i]->cols * n_tok;
    }
    return f + 2.0 * (double)m->head.rows * (double)m->head.cols * head_rows;
}

static double attention_flops(const sb_model *m, int n_tok) {
    double pairs = (double)n_tok * (n_tok + 1) / 2, f = 0;
    for (int l = 0; l < m->n_layer; l++) f += 4.0 * pairs * m->blocks[l].n_head * m->blocks[l].head_dim;
    return f;
}

/* Best seconds of a full pass over T tokens (logits of the last one), then
 * one more pass with the device profile on: sec, its device time by operation. */
static int time_full(sb_cuda_ctx *c, const sb_model *m, const cuda_bench_args *a, float *logits, double *best,
                     double sec[SB_CUDA_OP_N], sb_err *err) {
    sb_session *s;
    int T = a->seq;
    int32_t *tokens = sb_malloc(err, sizeof(int32_t) * (size_t)T);
    int rc = tokens ? sb_session_new(m, NULL, 1, T, T, &s, err) : SB_EINTERNAL;
    if (rc) {
        free(tokens);
        return rc;
    }
    for (int t = 0; t < T; t++) tokens[t] = (int32_t)((t * 7919) % m->n_vocab);
    *best = 1e30;
    for (int r = 0; !rc && r < a->reps + 1; r++) { /* the first pass warms up */
        sb_session_reset(s);
        double t0 = now_s();
        rc = sb_session_forward(s, tokens, T, T - 1, logits, err); /* returns after the logits reached the host */
        double t = now_s() - t0;
        if (r > 0 && t < *best) *best = t;
    }
    if (!rc) rc = sb_cuda_profile(c, true, err);
    sb_session_reset(s);
    if (!rc) rc = sb_session_forward(s, tokens, T, T - 1, logits, err);
    sb_cuda_profile_get(c, sec);
    sb_cuda_profile(c, false, err);
    sb_session_free(s);
    free(tokens);
    return rc;
}

/* Where a full pass's device time goes. */
static void print_breakdown(const sb_model *m, const cuda_bench_args *a, const double sec[SB_CUDA_OP_N]) {
    double total = 0;
    for (int i = 0; i < SB_CUDA_OP_N; i++) total += sec[i];
    printf("breakdown       device time %.2f ms:", total * 1e3);
    for (int i = 0; i < SB_CUDA_OP_N; i++) printf(" %s %.2f ms (%.0f%%)", sb_cuda_op_names[i], sec[i] * 1e3, 100 * sec[i] / total);
    printf("\n                linears %.1f TFLOP/s, attention %.1f TFLOP/s\n",
           linear_flops(m, a->seq, 0) / sec[SB_CUDA_OP_LINEAR] / 1e12,
           attention_flops(m, a->seq) / sec[SB_CUDA_OP_ATTENTION] / 1e12);
}

static int time_decode(const sb_model *m, const cuda_bench_args *a, float *logits, double *seconds, sb_err *err) {
    enum { PROMPT = 16 };
    sb_session *s;
    int rc = sb_session_new(m, NULL, 1, PROMPT + a->decode, PROMPT, &s, err);
    if (rc) return rc;
    int32_t tokens[PROMPT];
    for (int t = 0; t < PROMPT; t++) tokens[t] = (int32_t)((t * 104729) % m->n_vocab);
    rc = sb_session_forward(s, tokens, PROMPT, PROMPT - 1, logits, err);
    double t0 = now_s();
    for (int i = 0; !rc && i < a->decode; i++) {
        int32_t next = (int32_t)((i * 7) % m->n_vocab);
        rc = sb_session_forward(s, &next, 1, 0, logits, err);
    }
    *seconds = now_s() - t0;
    sb_session_free(s);
    return rc;
}

/* transformers' LlamaForCausalLM of the same shape, bf16, sdpa, on the same GPU:
 * prints "torch_tokens_per_s X" or "torch_skip WHY". argv: layers d heads kv ff vocab T reps device. */
static const char *torch_script =
    "import sys, time\n"
    "try:\n"
    "    import torch, transformers\n"
    "except Exception as e:\n"
    "    print('torch_skip', type(e).__name__, e); sys.exit(0)\n"
    "L, d, h, kv, ff, V, T, reps, dev = map(int, sys.argv[1:10])\n"
    "if not torch.cuda.is_available(): print('torch_skip torch sees no CUDA device'); sys.exit(0)\n"
    "cfg = transformers.LlamaConfig(num_hidden_layers=L, hidden_size=d, num_attention_heads=h,\n"
    "    num_key_value_heads=kv, intermediate_size=ff, vocab_size=V, max_position_embeddings=T + 16,\n"
    "    tie_word_embeddings=True)\n"
    "cfg._attn_implementation = 'sdpa'\n"
    "torch.cuda.set_device(dev)\n"
    "with torch.device('cuda'):\n"
    "    model = transformers.LlamaForCausalLM(cfg).to(torch.bfloat16).eval()\n"
    "ids = (torch.arange(T, device='cuda') * 7919 % V).unsqueeze(0)\n"
    "def run():\n"
    "    for kw in ({'logits_to_keep': 1}, {'num_logits_to_keep': 1}, {}):\n"
    "        try: return model(ids, use_cache=False, **kw)\n"
    "        except TypeError: pass\n"
    "best = 1e30\n"
    "with torch.inference_mode():\n"
    "    for r in range(reps + 1):\n"
    "        torch.cuda.synchronize(); t0 = time.perf_counter(); run(); torch.cuda.synchronize()\n"
    "        t = time.perf_counter() - t0\n"
    "        if r > 0: best = min(best, t)\n"
    "print('torch_tokens_per_s', T / best, torch.__version__, transformers.__version__)\n";

/* Tokens/s of transformers on the same shape, or 0 with *why set. */
static double torch_tokens_per_s(const cuda_bench_args *a, char *why, size_t why_n) {
    const sb_random_shape *s = &a->shape;
    snprintf(why, why_n, "python3 not found");
    if (system("command -v python3 >/dev/null 2>&1") != 0) return 0;
    char path[4096]; /* the script goes to a temporary file, removed after */
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/slimbench_torch_XXXXXX", tmp && *tmp ? tmp : P_tmpdir);
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    snprintf(why, why_n, "cannot write a temporary script");
    if (!f) return 0;
    fputs(torch_script, f);
    fclose(f);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "python3 %s %d %d %d %d %d %d %d %d %d 2>&1", path, s->n_layer, s->d_model, s->n_head,
             s->n_kv_head, s->ff, s->n_vocab, a->seq, a->reps, a->backend.device);
    FILE *p = popen(cmd, "r");
    double rate = 0;
    char line[1024];
    snprintf(why, why_n, "python3 gave no answer");
    while (p && fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = 0;
        char torch_v[64], tf_v[64];
        if (sscanf(line, "torch_tokens_per_s %lf %63s %63s", &rate, torch_v, tf_v) == 3)
            snprintf(why, why_n, "%s, %s", torch_v, tf_v);
        else if (strncmp(line, "torch_skip", 10) == 0) snprintf(why, why_n, "%.400s", line + 11);
    }
    if (p) pclose(p);
    remove(path);
    return rate;
}

static int run_bench(sb_cuda_ctx *c, sb_model *m, const cuda_bench_args *a, float *logits, sb_err *err) {
    sb_cuda_info in;
    sb_cuda_ctx_info(c, &in);
    printf("device          %s (cuda:%d, compute %d.%d, driver %d, runtime %d, %.1f GiB)\n", in.name, in.device,
           in.cc_major, in.cc_minor, in.driver_version, in.runtime_version, (double)in.total_bytes / (1 << 30));
    double peak = 0, copy_bw = 0;
    int rc = sb_cuda_bench_gemm_bf16(c, 8192, 8192, 8192, a->reps, &peak, err);
    if (!rc) rc = sb_cuda_bench_copy(c, (int64_t)1 << 30, a->reps, &copy_bw, err);
    if (rc) return rc;
    printf("cuBLAS          bf16 GEMM 8192^3 (f32 accumulate): %.1f TFLOP/s; device copy %.1f GB/s (read + write)\n",
           peak, copy_bw / 1e9);
    double full = 0, dec = 0, sec[SB_CUDA_OP_N];
    rc = time_full(c, m, a, logits, &full, sec, err);
    if (rc) return rc;
    double lf = linear_flops(m, a->seq, 1), af = attention_flops(m, a->seq);
    double tflops = (lf + af) / full / 1e12;
    printf("full sequence   T=%d: %.0f tokens/s, %.1f TFLOP/s (%.1f linear + %.1f attention GFLOP in %.4f s) = %.3f "
           "of the bf16 GEMM peak\n",
           a->seq, a->seq / full, tflops, lf / 1e9, af / 1e9, full, tflops / peak);
    print_breakdown(m, a, sec);
    if (!a->no_torch) {
        char why[512];
        double torch = torch_tokens_per_s(a, why, sizeof why);
        if (torch > 0)
            printf("pytorch         transformers bf16 sdpa, same shape and GPU: %.0f tokens/s (torch, transformers %s); "
                   "ratio slimbench / pytorch = %.3f\n",
                   torch, why, a->seq / full / torch);
        else
            printf("pytorch         skipped: %s\n", why);
    }
    rc = time_decode(m, a, logits, &dec, err);
    if (rc) return rc;
    /* per step every block linear and the head are read once (tied: the table counts once) */
    double bytes = 0;
    for (int l = 0; l < m->n_layer; l++) {
        const sb_block *b = &m->blocks[l];
        const sb_linear *lins[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
        for (size_t i = 0; i < sizeof lins / sizeof lins[0]; i++) bytes += (double)lins[i]->fmt->storage_bits(lins[i]) / 8;
    }
    bytes += (double)m->head.fmt->storage_bits(&m->head) / 8;
    /* the copy's traffic (read + write) per second is what the memory delivers; decoding reads only */
    double rate = a->decode / dec, bound = copy_bw / bytes;
    printf("decode          %d steps: %.1f tokens/s; bound %.1f tokens/s (%.2f GB of weights per token at %.1f GB/s) "
           "= %.3f of the bound\n",
           a->decode, rate, bound, bytes / 1e9, copy_bw / 1e9, rate / bound);
    sb_cuda_stats st;
    sb_cuda_stats_get(c, &st);
    printf("attention       %lld of %lld layer calls on the tensor cores (bf16)\n", (long long)st.attention_mma_calls,
           (long long)(st.forward_calls * m->n_layer));
    printf("memory          device weights %.2f GB; allocator peak %.2f GB; device used %.2f GB\n",
           (double)sb_cuda_model_bytes(m->device) / 1e9, (double)st.alloc_peak_bytes / 1e9, (double)st.used_bytes / 1e9);
    return SB_OK;
}

int sb_cmd_bench_cuda(int argc, char **argv) {
    sb_err err = {0};
    cuda_bench_args a = {0};
    if (parse(argc, argv, &a, &err)) return sb_cli_fail(&err);
    if (a.backend.kind != SB_BACKEND_CUDA)
        return sb_err_set(&err, SB_EINPUT, "bench --backend: this benchmark is for cuda[:N]"), sb_cli_fail(&err);
    sb_cuda_ctx *c = NULL;
    sb_model *m = NULL;
    sb_cuda_model *dm = NULL;
    float *logits = NULL;
    int rc = sb_cuda_ctx_new(a.backend.device, &c, &err);
    if (!rc) sb_cuda_ctx_set_tf32(c, a.backend.tf32);
    if (!rc) rc = sb_model_new_random(&a.shape, 1, &m, &err);
    if (!rc) rc = sb_model_round_to_16bit(m, true, &err);
    if (!rc) rc = sb_cuda_model_upload(c, m, &dm, &err);
    if (!rc && !(logits = sb_malloc(&err, sizeof(float) * (size_t)m->n_vocab))) rc = SB_EINTERNAL;
    if (!rc) {
        printf("model           llama-shaped, random bf16 weights: %d layers, d %d, %d heads (%d kv), mlp %d, vocab %d, "
               "%.2f B parameters\n",
               m->n_layer, m->d_model, a.shape.n_head, a.shape.n_kv_head, a.shape.ff, m->n_vocab,
               (double)sb_model_param_count(m) / 1e9);
        m->device = dm;
        rc = run_bench(c, m, &a, logits, &err);
        m->device = NULL;
    }
    free(logits);
    sb_cuda_model_free(dm);
    sb_model_free(m);
    sb_cuda_ctx_free(c);
    return rc ? sb_cli_fail(&err) : 0;
}

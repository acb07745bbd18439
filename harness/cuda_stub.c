/* cuda_stub.c - the CUDA backend's C API in a build without CUDA: every
 * entry point that could be reached says how to get the real one.  With
 * make CUDA=1 this file compiles to nothing and the .cu files of harness/cuda/ provide
 * the functions. */
#include "backend_cuda.h"
#include "gptq_device.h"
#include "hessian_device.h"

#ifndef SB_CUDA

static int not_built(sb_err *err) {
    return sb_err_set(err, SB_EINPUT, "this slimbench was built without CUDA (rebuild with make CUDA=1)");
}

int sb_cuda_device_count(sb_err *err) {
    not_built(err);
    return 0;
}
int sb_cuda_ctx_new(int device, sb_cuda_ctx **out, sb_err *err) {
    (void)device;
    *out = NULL;
    return not_built(err);
}
void sb_cuda_ctx_free(sb_cuda_ctx *c) { (void)c; }
void sb_cuda_ctx_set_tf32(sb_cuda_ctx *c, bool tf32) { (void)c, (void)tf32; }
void sb_cuda_ctx_measure(sb_cuda_ctx *c, bool on) { (void)c, (void)on; }
void sb_cuda_ctx_info(const sb_cuda_ctx *c, sb_cuda_info *out) {
    (void)c;
    *out = (sb_cuda_info){.name = "none"};
}
void sb_cuda_stats_get(sb_cuda_ctx *c, sb_cuda_stats *out) {
    (void)c;
    *out = (sb_cuda_stats){0};
}
void sb_cuda_stats_reset(sb_cuda_ctx *c) { (void)c; }
const char *const sb_cuda_op_names[SB_CUDA_OP_N] = {"linear", "attention", "norm", "head", "other"};
int sb_cuda_profile(sb_cuda_ctx *c, bool on, sb_err *err) {
    (void)c, (void)on;
    return not_built(err);
}
void sb_cuda_profile_get(const sb_cuda_ctx *c, double seconds[SB_CUDA_OP_N]) {
    (void)c;
    for (int i = 0; i < SB_CUDA_OP_N; i++) seconds[i] = 0;
}
int sb_cuda_model_upload(sb_cuda_ctx *c, const sb_model *m, sb_cuda_model **out, sb_err *err) {
    (void)c, (void)m;
    *out = NULL;
    return not_built(err);
}
void sb_cuda_model_free(sb_cuda_model *dm) { (void)dm; }
int64_t sb_cuda_model_bytes(const sb_cuda_model *dm) { return (void)dm, 0; }
int sb_cuda_model_decoded_linears(const sb_cuda_model *dm) { return (void)dm, 0; }
int sb_cuda_session_new(const sb_model *m, int n_seq, int max_ctx, int max_tokens, sb_cuda_session **out,
                        sb_err *err) {
    (void)m, (void)n_seq, (void)max_ctx, (void)max_tokens;
    *out = NULL;
    return not_built(err);
}
/* A session can never be made, so these are never reached with one. */
void sb_cuda_session_free(sb_cuda_session *s) { (void)s; }
void sb_cuda_session_reset(sb_cuda_session *s) { (void)s; }
int sb_cuda_session_n_past(const sb_cuda_session *s) { return (void)s, 0; }
int sb_cuda_session_truncate(sb_cuda_session *s, int n_past, sb_err *err) {
    (void)s, (void)n_past;
    return not_built(err);
}
int sb_cuda_session_forward(sb_cuda_session *s, const int32_t *tokens, int n_tok, int logits_from, float *logits,
                            sb_err *err) {
    (void)s, (void)tokens, (void)n_tok, (void)logits_from, (void)logits;
    return not_built(err);
}
int sb_cuda_session_embed(sb_cuda_session *s, const int32_t *tokens, int n_tok, float *x_out, sb_err *err) {
    (void)s, (void)tokens, (void)n_tok, (void)x_out;
    return not_built(err);
}
int sb_cuda_session_forward_blocks(sb_cuda_session *s, const float *x_in, int n_tok, int layer0, int layer1,
                                   float *x_out, sb_err *err) {
    (void)s, (void)x_in, (void)n_tok, (void)layer0, (void)layer1, (void)x_out;
    return not_built(err);
}
void sb_cuda_session_set_observer(sb_cuda_session *s, sb_linear_observer fn, void *user) { (void)s, (void)fn, (void)user; }
int sb_cuda_session_logits(sb_cuda_session *s, const float *x, int64_t n_rows, float *logits, sb_err *err) {
    (void)s, (void)x, (void)n_rows, (void)logits;
    return not_built(err);
}
void sb_cuda_session_set_attention_capture(sb_cuda_session *s, bool on) { (void)s, (void)on; }
int sb_cuda_bench_gemm_bf16(sb_cuda_ctx *c, int m, int n, int k, int reps, double *tflops, sb_err *err) {
    (void)c, (void)m, (void)n, (void)k, (void)reps;
    *tflops = 0;
    return not_built(err);
}
int sb_cuda_bench_copy(sb_cuda_ctx *c, int64_t bytes, int reps, double *bytes_per_s, sb_err *err) {
    (void)c, (void)bytes, (void)reps;
    *bytes_per_s = 0;
    return not_built(err);
}
int sb_gptq_device_run(sb_cuda_ctx *c, const sb_gptq_device_job *job, sb_err *err) {
    (void)c, (void)job;
    return not_built(err);
}
int sb_hessian_device_new(sb_cuda_ctx *c, int64_t cols, sb_hessian_device **out, sb_err *err) {
    (void)c, (void)cols;
    *out = NULL;
    return not_built(err);
}
/* An accumulator can never be made, so these are never reached with one. */
void sb_hessian_device_free(sb_hessian_device *h) { (void)h; }
int sb_hessian_device_add(sb_hessian_device *h, const float *x, int64_t n_rows, double keep, double add, sb_err *err) {
    (void)h, (void)x, (void)n_rows, (void)keep, (void)add;
    return not_built(err);
}
int sb_hessian_device_get(sb_hessian_device *h, double *out, sb_err *err) {
    (void)h, (void)out;
    return not_built(err);
}

#else
typedef int sb_cuda_stub_unused; /* ISO C wants a declaration in every translation unit */
#endif

/* backend_cuda.h - the CUDA backend seen from C (implemented in the .cu files of harness/cuda/;
 * a build without CUDA links harness/cuda_stub.c, whose functions say so).
 *
 * Three objects, each owning what it allocated on the device:
 *   sb_cuda_ctx      one device: its cuBLAS handle, the allocator's byte counts
 *                    (current and high-water mark), the kernel time of forward calls
 *   sb_cuda_model    a model's weights uploaded once and kept on the device while
 *                    the model does not change (the runner re-uploads after a method)
 *   sb_cuda_session  the KV caches and scratch of a session (forward.h), on the device
 * sb_session_new (forward.c) makes a CUDA session when m->device is set, so
 * tasks run on the device through the ordinary sb_session_* calls.
 *
 * Weights on the device: f32, f16 and bf16 stay in their dtype (16-bit ones
 * multiply as 16-bit inputs with f32 accumulation in cuBLAS); qint (uniform
 * or mixed widths), csr and n:m payloads are copied as they are and read by
 * device kernels (decode tiles + GEMM for many rows, a fused GEMV for up to
 * 4 rows); a low-rank add-on keeps W_c in its own device form plus f32
 * factors (two thin GEMMs); any other format (GGUF's quants, ...) is
 * decoded to f32 rows once, at upload, and counted as such.
 * Activations, norms, the KV cache and attention are f32. */
#ifndef SB_BACKEND_CUDA_H
#define SB_BACKEND_CUDA_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "forward.h"
#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sb_cuda_ctx sb_cuda_ctx;
typedef struct sb_cuda_model sb_cuda_model;
typedef struct sb_cuda_session sb_cuda_session;

/* Number of usable devices; 0 when there is no driver or no device (err says why). */
int sb_cuda_device_count(sb_err *err);

/* Opens device `device` and installs the device-memory hook of measure.h. */
int sb_cuda_ctx_new(int device, sb_cuda_ctx **out, sb_err *err);
void sb_cuda_ctx_free(sb_cuda_ctx *c);
/* Installs (on) or removes (off) this device as measure.h's device-memory
 * hook, so a CPU run beside a CUDA one reports no device figures. */
void sb_cuda_ctx_measure(sb_cuda_ctx *c, bool on);
/* TF32 tensor cores for f32 products from now on. */
void sb_cuda_ctx_set_tf32(sb_cuda_ctx *c, bool tf32);

typedef struct sb_cuda_info {
    char name[256];
    int device, cc_major, cc_minor;
    int driver_version, runtime_version;   /* as CUDA reports them: 12040 = 12.4 */
    int cublas_version;
    int64_t total_bytes;
} sb_cuda_info;

void sb_cuda_ctx_info(const sb_cuda_ctx *c, sb_cuda_info *out);

typedef struct sb_cuda_stats {
    int64_t alloc_bytes;        /* held by this backend's allocations now */
    int64_t alloc_peak_bytes;   /* their high-water mark since the last reset */
    int64_t used_bytes;         /* cudaMemGetInfo: total - free, every process and the runtime included */
    double kernel_s;            /* device time of forward calls (CUDA events) since the last reset */
    int64_t forward_calls;
    int64_t attention_mma_calls; /* attention calls that ran on the tensor cores (16-bit models) */
} sb_cuda_stats;

void sb_cuda_stats_get(sb_cuda_ctx *c, sb_cuda_stats *out);
/* Peak := current allocation, kernel time and calls := 0. */
void sb_cuda_stats_reset(sb_cuda_ctx *c);

/* Uploads m's weights; out-of-memory is an SB_EINPUT error naming the size and the device's free memory. */
int sb_cuda_model_upload(sb_cuda_ctx *c, const sb_model *m, sb_cuda_model **out, sb_err *err);
void sb_cuda_model_free(sb_cuda_model *dm);
int64_t sb_cuda_model_bytes(const sb_cuda_model *dm);
/* Linears that were decoded to f32 at upload because no device kernel reads their format. */
int sb_cuda_model_decoded_linears(const sb_cuda_model *dm);

/* The sb_session_* functions of forward.h on the device of m->device. */
int sb_cuda_session_new(const sb_model *m, int n_seq, int max_ctx, int max_tokens, sb_cuda_session **out,
                        sb_err *err);
void sb_cuda_session_free(sb_cuda_session *s);
void sb_cuda_session_reset(sb_cuda_session *s);
int sb_cuda_session_n_past(const sb_cuda_session *s);
int sb_cuda_session_truncate(sb_cuda_session *s, int n_past, sb_err *err);
int sb_cuda_session_forward(sb_cuda_session *s, const int32_t *tokens, int n_tok, int logits_from, float *logits,
                            sb_err *err);
int sb_cuda_session_embed(sb_cuda_session *s, const int32_t *tokens, int n_tok, float *x_out, sb_err *err);
int sb_cuda_session_forward_blocks(sb_cuda_session *s, const float *x_in, int n_tok, int layer0, int layer1,
                                   float *x_out, sb_err *err);
void sb_cuda_session_set_observer(sb_cuda_session *s, sb_linear_observer fn, void *user);
int sb_cuda_session_logits(sb_cuda_session *s, const float *x, int64_t n_rows, float *logits, sb_err *err);
/* Attention capture is not done on the device: while on, calls fail saying so. */
void sb_cuda_session_set_attention_capture(sb_cuda_session *s, bool on);

/* Device time of forward calls by kind of operation, while profiling is on:
 * every operation is bracketed by CUDA events (recorded without waiting, read
 * at the end of each call), so the figures add up to the call's device time. */
typedef enum {
    SB_CUDA_OP_LINEAR,    /* the block linears (cuBLAS, qint and sparse kernels) */
    SB_CUDA_OP_ATTENTION, /* the attention kernel */
    SB_CUDA_OP_NORM,      /* every norm, the final one included */
    SB_CUDA_OP_HEAD,      /* the head's product and the logits' copy to the host */
    SB_CUDA_OP_OTHER,     /* embedding, rotary, activations, residual adds, KV-cache stores */
    SB_CUDA_OP_N
} sb_cuda_op;

extern const char *const sb_cuda_op_names[SB_CUDA_OP_N];
/* Turns profiling on (zeroing the sums) or off. */
int sb_cuda_profile(sb_cuda_ctx *c, bool on, sb_err *err);
/* Seconds per kind since profiling was turned on. */
void sb_cuda_profile_get(const sb_cuda_ctx *c, double seconds[SB_CUDA_OP_N]);

/* ---- benchmark helpers (cmd_bench.c) ------------------------------------- */

/* Best TFLOP/s of an m x n x k GEMM (bf16 inputs, f32 accumulate and output) over `reps` runs. */
int sb_cuda_bench_gemm_bf16(sb_cuda_ctx *c, int m, int n, int k, int reps, double *tflops, sb_err *err);
/* Device-to-device copy bandwidth (bytes read + written per second) of a `bytes` buffer. */
int sb_cuda_bench_copy(sb_cuda_ctx *c, int64_t bytes, int reps, double *bytes_per_s, sb_err *err);

#ifdef __cplusplus
}
#endif

#endif

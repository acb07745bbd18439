/* cuda_internal.h - what the CUDA backend's files share (C++, device side).
 *
 * Error checking: every CUDA runtime, cuBLAS and cuSOLVER call goes through
 * cuda_ok / cublas_ok / cusolver_ok, which turn a failure into an sb_err naming the call
 * site; a failed allocation becomes a clear "out of device memory" error
 * (SB_EINPUT: the run asked for more than the device has), so the runner
 * records that run as failed and the sweep goes on. */
#ifndef SB_CUDA_INTERNAL_H
#define SB_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

/* The harness's C headers, with C linkage for this C++ code. */
extern "C" {
#include "error.h"
#include "format_lowrank.h"
#include "format_qint.h"
#include "format_sparse.h"
#include "forward.h"
#include "measure.h"
#include "model.h"
}
#include "backend_cuda.h"

struct sb_cuda_ctx {
    int device;
    bool tf32;
    cublasHandle_t blas;
    cudaEvent_t ev_start, ev_stop;
    int64_t alloc_bytes, alloc_peak;
    double kernel_s;
    int64_t forward_calls;
    int64_t attention_mma_calls; /* attention calls that ran on the tensor cores */
    int max_shared;              /* shared memory per block, opt-in maximum */
    sb_cuda_info info;
    struct cuda_profile *profile; /* NULL unless profiling (profile.cu) */
};

/* profile.cu: starts an interval of kind op (sb_cuda_op), ending the one before; no-op unless profiling. */
int profile_mark(sb_cuda_ctx *c, int op, sb_err *err);
/* Ends the last interval of a forward call and adds every interval to the sums. */
int profile_flush(sb_cuda_ctx *c, sb_err *err);
void profile_free(sb_cuda_ctx *c);

/* Turns a CUDA error into an sb_err; returns SB_OK when e == cudaSuccess. */
int cuda_ok(cudaError_t e, const char *file, int line, sb_err *err);
/* After a kernel launch: a launch error (bad configuration, too much shared memory) as an sb_err naming `what`. */
int cuda_launched(const char *what, sb_err *err);
int cublas_ok(cublasStatus_t st, const char *file, int line, sb_err *err);
int cusolver_ok(cusolverStatus_t st, const char *file, int line, sb_err *err);

/* Device allocations, counted for the high-water mark. what names the buffer in errors. */
int cuda_alloc(sb_cuda_ctx *c, void **p, size_t bytes, const char *what, sb_err *err);
void cuda_free(sb_cuda_ctx *c, void *p, size_t bytes);
int cuda_upload(sb_cuda_ctx *c, void **dst, const void *src, size_t bytes, const char *what, sb_err *err);

/* ---- weights on the device -------------------------------------------------- */

typedef enum { DW_F32, DW_F16, DW_BF16, DW_QINT, DW_SPARSE, DW_LOWRANK } dev_weight_kind;

typedef struct dev_linear {
    dev_weight_kind kind;
    int64_t rows, cols;
    void *w;            /* dense [rows, cols] of the kind's dtype, or the qint / sparse payload */
    size_t w_bytes;
    bool shares_w;      /* w belongs to another dev_linear (a tied head) */
    float *bias;        /* [rows] or NULL */
    sb_qint_layout q;   /* DW_QINT */
    sb_sparse_layout sp; /* DW_SPARSE (csr or n:m) */
    /* DW_LOWRANK: W_c + B·A, W_c in its own device form, B [rows, rank] and A [rank, cols] f32 */
    struct dev_linear *inner;
    float *A, *B;
    int rank;
} dev_linear;

typedef struct dev_norm {
    float *weight, *bias;   /* [n] or NULL */
    int64_t n;
    int mean_width;         /* sb_norm's: the divisor of a sliced stream, or 0 */
} dev_norm;

typedef struct dev_block {
    dev_norm attn_norm, mlp_norm, post_attn_norm, post_mlp_norm, q_norm, k_norm;
    dev_linear wq, wk, wv, wo, w_gate, w_up, w_down;
    dev_linear attn_shortcut, mlp_shortcut;   /* SliceGPT's residual maps, absent (w NULL) unless sliced */
    float *rope_inv_freq;   /* [rot/2], or NULL with learned positions */
} dev_block;

struct sb_cuda_model {
    sb_cuda_ctx *ctx;
    const sb_model *m;
    dev_linear tok_embd, head;
    float *pos_embd;        /* [n_pos_rows, d] or NULL */
    dev_block *blocks;
    dev_norm final_norm;
    int64_t bytes;
    int decoded_linears;
    int64_t max_tile_elems; /* largest rows * cols of a qint or sparse linear: the decode tile */
    int max_rank;           /* largest rank of a low-rank add-on: its scratch */
};

/* y[R, rows] = x[R, cols]·Wᵀ + b on the device. half_x: scratch of R * cols
 * halves for 16-bit weights; tile: scratch of at least min(rows * cols, tile_elems)
 * floats for qint decoding. same_input: the caller promises x has not changed
 * since the last product, so a 16-bit conversion of it still in half_x serves
 * again (q, k and v share their input, as do gate and up). */
typedef struct gemm_scratch {
    void *half_x;
    const float *half_of;   /* what half_x holds: the conversion of these half_n floats, or NULL */
    int64_t half_n;
    bool half_bf16;
    float *tile;        /* decoded rows of a qint or sparse weight */
    int64_t tile_elems;
    float *lowrank_t;   /* [R, max_rank]: x·Aᵀ of a low-rank add-on */
} gemm_scratch;

int dev_linear_forward(sb_cuda_ctx *c, const dev_linear *w, const float *x, int64_t R, float *y, bool same_input,
                       gemm_scratch *scratch, sb_err *err);
/* y += x·Wᵀ + b (the product's epilogue adds it): dense f32/f16/bf16 weights only. */
int dev_linear_accumulate(sb_cuda_ctx *c, const dev_linear *w, const float *x, int64_t R, float *y, bool same_input,
                          gemm_scratch *scratch, sb_err *err);
bool dev_linear_is_dense(const dev_linear *w);

/* ---- kernels (kernels.cu); each returns the launch's status ------------------ */

/* out[r] = norm(in[r]) over `width` values every `stride` floats; layer: LayerNorm, else RMS.
 * Mean and mean square divide by div (the width, or a sliced stream's original width). */
int k_norm(const float *in, float *out, const float *w, const float *b, int64_t n_rows, int width, int64_t stride,
           bool layer, float eps, float div, sb_err *err);
/* The same over contiguous rows, written as bf16 or f16 into out16[n_rows, width]: the next product's input. */
int k_norm_to_half(const float *in, void *out16, bool bf16, const float *w, const float *b, int64_t n_rows, int width,
                   bool layer, float eps, float div, sb_err *err);
/* Rotates n_heads heads of head_dim in x[R, n_heads*head_dim]; row r is at position n_past + r % n_tok. */
int k_rope(float *x, int64_t R, int n_heads, int head_dim, int rot_dim, bool pairs, const float *inv_freq,
           int n_past, int n_tok, sb_err *err);
/* a[i] = act(a[i]) (* mul[i] when mul). */
int k_activate(float *a, const float *mul, int64_t n, int act, sb_err *err);
/* The same into out16[n] (bf16 or f16), a left as it was: the next product's 16-bit input. */
int k_activate_to_half(const float *a, const float *mul, int64_t n, int act, void *out16, bool bf16, sb_err *err);
int k_add(float *x, const float *y, int64_t n, sb_err *err);
int k_add_bias(float *y, const float *bias, int64_t R, int64_t rows, sb_err *err);
int k_softcap(float *x, int64_t n, float cap, sb_err *err);
int k_to_half(const float *x, void *out, int64_t n, bool bf16, sb_err *err);
/* x[r] = embed_scale * E[tokens[r]] (+ pos[n_past + r % n_tok + pos_offset]); E dense f32/f16/bf16. */
int k_embed(const dev_linear *E, const int32_t *tokens, int64_t R, int d, float scale, const float *pos,
            int pos_offset, int n_past, int n_tok, float *x, sb_err *err);

typedef struct attn_args {
    const float *q;              /* [R, nh*hd] */
    const void *k_cache, *v_cache; /* [n_seq, max_ctx, nkv*hd] of the precision's dtype (f32, f16 or bf16) */
    float *out;                  /* [R, nh*hd] */
    void *out16;                 /* or, when not NULL, the output there in the precision's 16 bits (tensor-core kernel only) */
    int n_seq, n_tok, n_past, max_ctx;
    int n_head, n_kv_head, head_dim, window;
    float scale, softcap;
    bool bidirectional;          /* every query sees every position of the call (encoders) */
    int precision;               /* ATTN_F32: f32 products on CUDA cores; ATTN_F16 / ATTN_BF16: tensor cores */
    int max_shared;              /* the device's shared memory per block (opt-in), bytes */
} attn_args;

enum { ATTN_MAX_HEAD_DIM = 256 };
enum { ATTN_F32, ATTN_F16, ATTN_BF16 };
/* Bytes of one cached key or value element at this precision (4 or 2). */
size_t k_kv_element_bytes(int precision);
/* Rows r = seq * n_tok + t of k and v [n_seq * n_tok, kvd] into the caches
 * [n_seq, max_ctx, kvd] at position n_past + t, rounded to the precision's dtype. */
int k_store_kv(const float *k, const float *v, void *k_cache, void *v_cache, int precision, int n_seq, int n_tok,
               int n_past, int max_ctx, int kvd, sb_err *err);
/* Causal attention with an online softmax: no score matrix is ever stored. */
int k_attention(const attn_args *a, sb_err *err);
/* Whether k_attention takes the tensor-core kernel (attention_mma.cu) for a:
 * 16-bit precision asked, more than a few queries, a head size it is built for
 * and its shared memory available on this device. */
bool k_attention_uses_mma(const attn_args *a);
size_t k_attention_mma_shared_bytes(int head_dim); /* 0: no kernel for this head size */
int k_attention_mma(const attn_args *a, sb_err *err);

/* qint: rows [row0, row0 + n_rows) of W as f32 into tile[n_rows, cols]. */
int k_qint_decode(const dev_linear *w, int64_t row0, int64_t n_rows, float *tile, sb_err *err);
enum { QINT_GEMV_MAX_ROWS = 4 };
/* y[R, rows] = x[R, cols]·Wᵀ for R <= QINT_GEMV_MAX_ROWS, straight from the packed codes. */
int k_qint_gemv(const dev_linear *w, const float *x, int R, float *y, sb_err *err);
/* The same two for csr and n:m payloads (layout in format_sparse.h). */
int k_sparse_decode(const dev_linear *w, int64_t row0, int64_t n_rows, float *tile, sb_err *err);
int k_sparse_gemv(const dev_linear *w, const float *x, int R, float *y, sb_err *err);

#define CUDA_OK(call, err) cuda_ok((call), __FILE__, __LINE__, (err))
#define CUBLAS_OK(call, err) cublas_ok((call), __FILE__, __LINE__, (err))
#define CUSOLVER_OK(call, err) cusolver_ok((call), __FILE__, __LINE__, (err))

#endif

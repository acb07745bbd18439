/* gptq_device.h - GPTQ's Cholesky steps and column loop on a CUDA device
 * (harness/cuda/gptq.cu; a build without CUDA links harness/cuda_stub.c,
 * whose function says so).
 *
 * This is the O(cols³ + rows·cols²) part of methods/gptq.c's
 * sb_gptq_quantize for the min-max quantizer; the caller (gptq.c,
 * sb_gptq_quantize_cuda) does the O(rows·cols) preparation on the host
 * with the very code the CPU path uses (per-channel and static fits, dead
 * inputs, act-order permutation, damping) and puts the results back in
 * the original column order.  On the device:
 *   U = upper Cholesky factor of H⁻¹ (cuSOLVER potrf, potri, potrf in
 *       float64), kept as float32 as the CPU does;
 *   per block of block_size columns, one warp per row quantizes the
 *       block's columns in order, feeding each error into the block's
 *       later columns (same float32 operations in the same order as the
 *       CPU, no FMA contraction); dynamic groups are fitted at their first
 *       column on the global W, as the CPU does;
 *   the lazy update W[:, i2:] -= Err1·U[i1:i2, i2:] by cublasSgemm (FP32,
 *       never TF32).
 * The lazy update sums in another order than the CPU's BLAS, so weights
 * after the first block differ in their last bits and a code can flip at
 * a near-tie (then that row's later feedback differs a little): the
 * results equal the CPU's "up to ties". */
#ifndef SB_GPTQ_DEVICE_H
#define SB_GPTQ_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "backend_cuda.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One layer, every array on the host, columns in the loop's order
 * ("position" below: act-order permuted when the caller permutes). */
typedef struct sb_gptq_device_job {
    int64_t rows, cols;
    int bits;                /* 2..8 */
    bool sym;
    int64_t group_size;      /* columns per group; cols when per channel */
    int64_t n_groups;        /* parameter sets per row: cols / group_size */
    bool dynamic_groups;     /* fit group g at its first position g·group_size on the
                              * current W; else every group's parameters are given */
    int block_size;          /* >= 1 */
    const float *w;          /* [rows, cols], dead inputs already zeroed */
    const double *h;         /* [cols, cols] H as the loop sees it: dead H_ii = 1, damped */
    const int32_t *group_of; /* [cols] the parameter set (group) used at each position */
    /* [rows, n_groups] row r's group g: given (fixed groups) or written (dynamic);
     * scales already storable (f16 values), as sb_qparams_storable */
    float *scales, *zeros;
    uint8_t *codes;          /* [rows, cols] out */
    float *q;                /* [rows, cols] out: dequantized weights */
    double *row_loss;        /* [rows] out: Σ over the row's positions of (w − q)² / U_ii² / 2 */
} sb_gptq_device_job;

/* Runs the job on c's device. A damped H that is not positive definite is
 * SB_EINPUT, as on the CPU; out of device memory is SB_EINPUT naming the
 * buffer; other CUDA, cuBLAS or cuSOLVER failures SB_EINTERNAL. */
int sb_gptq_device_run(sb_cuda_ctx *c, const sb_gptq_device_job *job, sb_err *err);

#ifdef __cplusplus
}
#endif

#endif

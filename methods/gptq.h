/* gptq.h - GPTQ's column loop for one layer (methods/gptq.c), exposed so
 * tests can check it against the reference fixtures and other methods of
 * the GPTQ family (SliM-LLM, PB-LLM) can build on it. */
#ifndef SB_GPTQ_H
#define SB_GPTQ_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "thread_pool.h"

#include "quantizer.h"

/* A method's own fit of one group's parameters for every row at once
 * (SliM-LLM's salience-weighted calibration), in place of the min-max fit.
 * w: the current weights, row r's group at w[r * cols + col0 .. + n);
 * qz[r]: row r's quantizer (its width); out[r]: the parameters, storable
 * (scale in f16, as sb_qparams_storable). */
typedef void (*sb_gptq_group_fit)(void *user, const float *w, int64_t rows, int64_t cols, int64_t col0, int64_t n,
                                  const sb_quantizer *qz, sb_qparams *out);

typedef struct sb_gptq_opts {
    int bits;
    int group_size;      /* <= 0: one group per row (gptq's groupsize -1) */
    bool sym;
    double damp;         /* fraction of mean(diag H) added to the diagonal */
    int block_size;
    bool act_order, static_groups;
} sb_gptq_opts;

typedef struct sb_gptq_out {
    uint8_t *codes;      /* [rows * cols], original column order */
    float *q;            /* [rows * cols] dequantized weights, or NULL */
    int32_t *g_idx;      /* [cols] group of each column */
    float *scales, *zeros; /* [rows * n_groups], n_groups = cols / group_size (1 per channel) */
    double loss;         /* gptq's printed error: Σ (w − q)² / U_ii² / 2 */
} sb_gptq_out;

/* Quantizes w [rows, cols] given h = H [cols, cols] (float64), which is
 * consumed (damped and overwritten by U). */
int sb_gptq_quantize(const float *w, int64_t rows, int64_t cols, double *h, const sb_gptq_opts *o, sb_pool *pool,
                     sb_gptq_out *out, sb_err *err);

/* sb_gptq_quantize with the Cholesky steps and the column loop on the CUDA
 * device dev (harness/gptq_device.h): the same codes, weights, group index,
 * parameters and loss up to ties (a weight at a rounding midpoint may take
 * the other code, the lazy update summing in another order).  Widths 2..8,
 * the min-max fit only.  A build without CUDA says so (SB_EINPUT). */
struct sb_cuda_ctx;
int sb_gptq_quantize_cuda(struct sb_cuda_ctx *dev, const float *w, int64_t rows, int64_t cols, double *h,
                          const sb_gptq_opts *o, sb_gptq_out *out, sb_err *err);

/* The same with a width per (row, group) (mixed precision, SliM-LLM):
 * group_bits [rows * n_groups] widths 1..8 of the contiguous groups in the
 * original column order (o->bits is then unused); NULL is sb_gptq_quantize.
 * Needs group_size > 0, and static_groups with act_order. */
int sb_gptq_quantize_mixed(const float *w, int64_t rows, int64_t cols, double *h, const sb_gptq_opts *o,
                           const uint8_t *group_bits, sb_pool *pool, sb_gptq_out *out, sb_err *err);

/* sb_gptq_quantize_mixed with a method's own fit of every group (fit
 * called with fit_user when a group's parameters are fitted: at its first
 * column on the current W, or up front with static_groups); fit NULL is the
 * min-max fit.  Needs group_size > 0 and no act_order. */
int sb_gptq_quantize_fitted(const float *w, int64_t rows, int64_t cols, double *h, const sb_gptq_opts *o,
                            const uint8_t *group_bits, sb_gptq_group_fit fit, void *fit_user, sb_pool *pool,
                            sb_gptq_out *out, sb_err *err);

/* GPTQ's column loop with any per-weight quantizer (PB-LLM: binarized and
 * 8-bit weights side by side under a mask).  After dead inputs are zeroed
 * and U is known, prepare(user, w, u, rows, cols, err) sees the weights the
 * loop starts from and U [cols, cols] (float32, upper); then each weight's
 * stored value is quantize(user, row, col, current value), called from
 * several threads at once for different rows, columns in order within a row. */
typedef struct sb_gptq_elementwise {
    int (*prepare)(void *user, const float *w, const float *u, int64_t rows, int64_t cols, sb_err *err);
    float (*quantize)(void *user, int64_t row, int64_t col, float w);
    void *user;
} sb_gptq_elementwise;

/* q [rows, cols] gets the stored values, *loss gptq's Σ (w − q)² / U_ii² / 2.
 * h is consumed as by sb_gptq_quantize; damp and block_size as in sb_gptq_opts. */
int sb_gptq_quantize_elementwise(const float *w, int64_t rows, int64_t cols, double *h, double damp, int block_size,
                                 const sb_gptq_elementwise *e, sb_pool *pool, float *q, double *loss, sb_err *err);

#endif

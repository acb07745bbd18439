/* pb_llm.h - PB-LLM's quantization of one layer (methods/pb_llm.c), exposed
 * so that tests can check it against tests/reference/make_pb_llm_fixtures.py. */
#ifndef SB_PB_LLM_H
#define SB_PB_LLM_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "thread_pool.h"

typedef struct sb_pbllm_opts {
    double salient_frac;     /* fraction r of each group's weights kept in 8 bits */
    bool hessian_salience;   /* s = W²/U_jj² (else |W|) */
    int group_size;          /* columns per binarization group and mask selection; cols: per row */
    double damp;
    int block_size;
} sb_pbllm_opts;

/* The layer's parts in the shape format pbllm packs (format_pbllm.h). */
typedef struct sb_pbllm_result {
    uint8_t *mask, *signs, *codes;  /* [rows * cols] */
    float *scale8, *zero8;          /* [rows] */
    float *alpha, *mu;              /* [rows * n_groups] */
    float *q;                       /* [rows * cols] the stored weights */
    double loss;                    /* gptq's Σ (w − q)² / U_ii² / 2 */
} sb_pbllm_result;

/* w [rows, cols]; h = H [cols, cols] float64, consumed (damped, overwritten).
 * out's arrays are the caller's. */
int sb_pbllm_quantize_layer(const float *w, int64_t rows, int64_t cols, double *h, const sb_pbllm_opts *o,
                            sb_pool *pool, sb_pbllm_result *out, sb_err *err);

#endif

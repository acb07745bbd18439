/* slim_llm.h - the pieces of SliM-LLM (methods/slim_llm.c) that tests check
 * against the reference fixtures (tests/reference/slim_llm/). */
#ifndef SB_SLIM_LLM_H
#define SB_SLIM_LLM_H

#include <stdint.h>

#include "error.h"
#include "quantizer.h"

/* S_g = Σ_i Σ_{j∈g} W_ij² / U_jj² for every column group g (float64), with
 * U the upper Cholesky factor of (H + damp·mean(diag H)·I)⁻¹, dead inputs
 * (H_jj = 0) set to 1 and given no salience, as GPTQ treats them.
 * u_diag [cols] gets U_jj (NULL: not wanted).  h is left untouched. */
int sb_slim_group_salience(const float *w, int64_t rows, int64_t cols, int64_t gs, const double *h, double damp,
                           double *sal, double *u_diag, sb_err *err);

/* The allocation for a given k: groups sorted by salience (ties keep column
 * order), the k least salient get bits-1, the k most salient bits+1. */
void sb_slim_allocate(const double *sal, int64_t n_groups, int bits, int64_t k, uint8_t *out);

/* Salience-weighted quantizer calibration (SQC) of one group, for every
 * row: an sb_gptq_group_fit (gptq.h) whose user is an sb_slim_sqc. */
typedef struct sb_slim_sqc {
    const double *u_diag;    /* [cols] U_jj of the layer */
    double lambda;           /* weight of the salient weights' error */
} sb_slim_sqc;

void sb_slim_sqc_fit(void *user, const float *w, int64_t rows, int64_t cols, int64_t col0, int64_t n,
                     const sb_quantizer *qz, sb_qparams *out);

#endif

/* format_lowrank.h - a low-rank add-on on top of any other weight format.
 *
 *     W_eff = W_c + B·A,  B [rows, rank], A [rank, cols], both f32
 *
 * W_c is any sb_linear (f32, qint, csr, another low-rank add-on...), kept in
 * its own format and multiplied by its own kernel; the add-on then adds
 * (x·Aᵀ)·Bᵀ, two thin products, so W_eff is never materialised.  Storage
 * counts W_c's bits plus 32·rank·(rows + cols) for the factors.
 *
 * Ownership: the wrapped linear's payload owns a heap copy of W_c's struct
 * (and so W_c's payload) and both factors; sb_linear_free frees the whole
 * tree (through sb_linear.free_owned).  W_c's bias moves to the wrapper.
 * The runner's snapshots know that W_c may be older than the add-on (a
 * model's original payload, or an earlier step's): they free the add-on
 * with sb_lowrank_free_addon and W_c only if they do not own it. */
#ifndef SB_FORMAT_LOWRANK_H
#define SB_FORMAT_LOWRANK_H

#include "error.h"
#include "weight_format.h"

extern const sb_format sb_format_lowrank;

/* out = inner + B·A.  Takes over *inner_moved (its payload and bias; it is
 * zeroed on success, left untouched on failure); copies B [rows, rank] and
 * A [rank, cols].  out may equal inner_moved.  SB_EINPUT when inner is
 * absent or rank is not in [1, min(rows, cols)]. */
int sb_lowrank_wrap(sb_linear *inner_moved, int rank, const float *B, const float *A, sb_linear *out, sb_err *err);

/* Frees an add-on's payload (w->owned of a low-rank linear) and its
 * factors but not W_c, for a caller that frees W_c on its own terms. */
void sb_lowrank_free_addon(void *owned);

/* The compressed linear under the add-on, or NULL when w is not low-rank. */
const sb_linear *sb_lowrank_inner(const sb_linear *w);
/* rank, B and A of a low-rank linear (0 / NULL when w is not one). */
int sb_lowrank_rank(const sb_linear *w);
const float *sb_lowrank_b(const sb_linear *w);
const float *sb_lowrank_a(const sb_linear *w);

/* Best rank-`rank` factors of delta [rows, cols] (row-major float64), by
 * a truncated SVD delta ≈ U_r Σ_r V_rᵀ, split evenly:
 *     B = U_r Σ_r^½ [rows, rank],  A = Σ_r^½ V_rᵀ [rank, cols]  (as f32).
 * Method: randomized subspace iteration in float64 (CBLAS only, so it runs
 * with either BLAS; no LAPACK), k = rank + 8 basis vectors, iterated until
 * the captured energy ‖Qᵀ·delta‖_F² gains less than 1e-10 relative (at most
 * 60 iterations), then the exact SVD of the small projected matrix
 * (cyclic Jacobi on its Gram matrix).  When k reaches min(rows, cols) the
 * basis spans the whole space and the result is the exact SVD.
 * Singular values of zero give zero columns of B and rows of A. */
int sb_lowrank_factorize(const double *delta, int64_t rows, int64_t cols, int rank, float *B, float *A, sb_err *err);

#endif

/* linalg.h - the small dense float64 linear algebra calibration methods
 * need: Cholesky factors and the inverse of a symmetric positive definite
 * matrix, written on top of CBLAS so it runs with either BLAS the Makefile
 * selects (BLIS has no LAPACK).
 *
 * Matrices are n x n, row-major, float64. Blocked right-looking
 * algorithms: the O(n^3) work is in dtrsm/dsyrk/dgemm, so a 11008 x 11008
 * Hessian takes seconds to a minute, not hours. */
#ifndef SB_LINALG_H
#define SB_LINALG_H

#include "error.h"

/* A = L·Lᵀ in place: the lower triangle becomes L, the strict upper
 * triangle is zeroed. SB_EINPUT when A is not positive definite (names
 * the failing pivot). */
int sb_cholesky_lower(double *a, int n, sb_err *err);

/* A = Uᵀ·U in place: the upper triangle becomes U, the strict lower
 * triangle is zeroed. */
int sb_cholesky_upper(double *a, int n, sb_err *err);

/* A⁻¹ from its lower Cholesky factor L (as torch.cholesky_inverse):
 * writes the full symmetric inverse to out (n x n; out != l). */
int sb_cholesky_inverse(const double *l, int n, double *out, sb_err *err);

/* U = upper Cholesky factor of A⁻¹ for symmetric positive definite A, in
 * place (the three steps GPTQ uses: Cholesky, inverse from the factor,
 * Cholesky again). */
int sb_inverse_upper_cholesky(double *a, int n, sb_err *err);

/* A = Q·diag(lambda)·Qᵀ for symmetric A (n x n, row-major, destroyed):
 * eigenvalues to lambda[n] in descending order, eigenvectors to the
 * columns of q (n x n, row-major).  Cyclic Jacobi in float64 (EoRA's
 * whitening, SliceGPT's PCA): O(n³) per sweep, a few seconds at n = 768. */
void sb_symmetric_eigen(double *a, int n, double *q, double *lambda);

#endif

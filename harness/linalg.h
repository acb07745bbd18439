/* linalg.h - the small dense float64 linear algebra calibration methods
 * need: Cholesky factors and the inverse of a symmetric positive definite
 * matrix, and the eigendecomposition of a symmetric matrix, written on top of CBLAS so it runs with either BLAS the Makefile
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

/* A = Q·diag(lambda)·Qᵀ for symmetric A (n x n, row-major; only the lower
 * triangle is read; destroyed).  lambda [n] in descending order; q [n x n]
 * row-major with eigenvector j in column j (q[i*n + j]), orthonormal.
 * Householder tridiagonalization (BLAS-2 updates) then implicit-shift QL
 * with the rotations applied to contiguous rows: about 9·n³ flops, against
 * ~60·n³ for cyclic Jacobi.  Eigenvectors of repeated eigenvalues are some
 * orthonormal basis of their space, and every vector's sign is arbitrary.
 * SB_EINTERNAL only when QL does not converge (not seen for finite input)
 * or memory runs out; SB_EINPUT for a non-finite entry. */
int sb_symmetric_eigen(double *a, int n, double *lambda, double *q, sb_err *err);

#endif

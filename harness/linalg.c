/* linalg.c - blocked Cholesky and inverse in float64 over CBLAS, and a
 * symmetric eigensolver. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "linalg.h"

enum { PANEL = 64 }; /* columns factored at a time; the rest is BLAS-3 */

/* Unblocked Cholesky of the nb x nb diagonal block starting at a (stride lda). */
static int factor_diagonal(double *a, int nb, int lda, int offset, sb_err *err) {
    for (int j = 0; j < nb; j++) {
        double d = a[(size_t)j * lda + j];
        for (int k = 0; k < j; k++) d -= a[(size_t)j * lda + k] * a[(size_t)j * lda + k];
        if (!(d > 0))
            return sb_err_set(err, SB_EINPUT, "matrix is not positive definite (pivot %d is %g)", offset + j, d);
        double ljj = sqrt(d);
        a[(size_t)j * lda + j] = ljj;
        for (int i = j + 1; i < nb; i++) {
            double s = a[(size_t)i * lda + j];
            for (int k = 0; k < j; k++) s -= a[(size_t)i * lda + k] * a[(size_t)j * lda + k];
            a[(size_t)i * lda + j] = s / ljj;
        }
    }
    return SB_OK;
}

int sb_cholesky_lower(double *a, int n, sb_err *err) {
    for (int j0 = 0; j0 < n; j0 += PANEL) {
        int nb = n - j0 < PANEL ? n - j0 : PANEL, rest = n - j0 - nb;
        double *diag = a + (size_t)j0 * n + j0;
        int rc = factor_diagonal(diag, nb, n, j0, err);
        if (rc) return rc;
        if (rest == 0) break;
        double *below = diag + (size_t)nb * n; /* rows j0+nb.., columns j0..j0+nb */
        /* L21 = A21 · L11⁻ᵀ */
        cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, rest, nb, 1.0, diag, n, below, n);
        /* A22 -= L21 · L21ᵀ (lower triangle only) */
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, rest, nb, -1.0, below, n, 1.0, below + nb, n);
    }
    for (int i = 0; i < n; i++) memset(a + (size_t)i * n + i + 1, 0, sizeof(double) * (size_t)(n - i - 1));
    return SB_OK;
}

int sb_cholesky_upper(double *a, int n, sb_err *err) {
    int rc = sb_cholesky_lower(a, n, err);
    if (rc) return rc;
    /* U = Lᵀ: swap across the diagonal */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            a[(size_t)i * n + j] = a[(size_t)j * n + i];
            a[(size_t)j * n + i] = 0;
        }
    return SB_OK;
}

int sb_cholesky_inverse(const double *l, int n, double *out, sb_err *err) {
    double *linv = sb_calloc(err, (size_t)n * (size_t)n, sizeof(double));
    if (!linv) return SB_EINTERNAL;
    for (int i = 0; i < n; i++) linv[(size_t)i * n + i] = 1.0;
    /* L⁻¹ by solving L·X = I */
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, n, n, 1.0, l, n, linv, n);
    /* A⁻¹ = L⁻ᵀ·L⁻¹, lower triangle, then mirrored */
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, n, n, 1.0, linv, n, 0.0, out, n);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) out[(size_t)i * n + j] = out[(size_t)j * n + i];
    free(linv);
    return SB_OK;
}

int sb_inverse_upper_cholesky(double *a, int n, sb_err *err) {
    double *inv = sb_malloc(err, sizeof(double) * (size_t)n * (size_t)n);
    if (!inv) return SB_EINTERNAL;
    int rc = sb_cholesky_lower(a, n, err);
    if (!rc) rc = sb_cholesky_inverse(a, n, inv, err);
    if (!rc) rc = sb_cholesky_upper(inv, n, err);
    if (!rc) memcpy(a, inv, sizeof(double) * (size_t)n * (size_t)n);
    free(inv);
    return rc;
}

/* ---- symmetric eigendecomposition (cyclic Jacobi) ------------------------ */

/* One Jacobi rotation zeroing a[p][q] of the symmetric n x n matrix a
 * (row-major), accumulated into the eigenvector columns of v. */
static void jacobi_rotate(double *a, double *v, int n, int p, int q) {
    double apq = a[(size_t)p * n + q];
    double theta = (a[(size_t)q * n + q] - a[(size_t)p * n + p]) / (2 * apq);
    double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
    double c = 1 / sqrt(t * t + 1), s = t * c;
    for (int k = 0; k < n; k++) { /* columns: A·J */
        double akp = a[(size_t)k * n + p], akq = a[(size_t)k * n + q];
        a[(size_t)k * n + p] = c * akp - s * akq;
        a[(size_t)k * n + q] = s * akp + c * akq;
    }
    for (int k = 0; k < n; k++) { /* rows: Jᵀ·(A·J) */
        double apk = a[(size_t)p * n + k], aqk = a[(size_t)q * n + k];
        a[(size_t)p * n + k] = c * apk - s * aqk;
        a[(size_t)q * n + k] = s * apk + c * aqk;
    }
    a[(size_t)p * n + q] = a[(size_t)q * n + p] = 0; /* exact zero, not round-off */
    for (int k = 0; k < n; k++) {
        double vkp = v[(size_t)k * n + p], vkq = v[(size_t)k * n + q];
        v[(size_t)k * n + p] = c * vkp - s * vkq;
        v[(size_t)k * n + q] = s * vkp + c * vkq;
    }
}

static double off_diagonal_sq(const double *a, int n) {
    double s = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) s += a[(size_t)i * n + j] * a[(size_t)i * n + j];
    return 2 * s;
}

/* Sorts the eigenpairs by eigenvalue, largest first (selection sort:
 * O(n²) comparisons and at most n column swaps, nothing next to Jacobi). */
static void sort_descending(double *q, double *lambda, int n) {
    for (int i = 0; i < n; i++) {
        int best = i;
        for (int j = i + 1; j < n; j++)
            if (lambda[j] > lambda[best]) best = j;
        if (best == i) continue;
        double t = lambda[i];
        lambda[i] = lambda[best];
        lambda[best] = t;
        for (int r = 0; r < n; r++) {
            t = q[(size_t)r * n + i];
            q[(size_t)r * n + i] = q[(size_t)r * n + best];
            q[(size_t)r * n + best] = t;
        }
    }
}

/* a = Q·diag(lambda)·Qᵀ (see linalg.h): cyclic Jacobi,
 * sweeps until the off-diagonal mass is below 1e-28 of the total (float64
 * round-off level) or 100 sweeps.  Eigenvectors are q's columns.  Jacobi
 * is chosen over tridiagonal QR for its simplicity and its high relative
 * accuracy on small eigenvalues, which the whitening S relies on. */
void sb_symmetric_eigen(double *a, int n, double *q, double *lambda) {
    double total = 0;
    for (int64_t i = 0; i < (int64_t)n * n; i++) total += a[i] * a[i];
    memset(q, 0, sizeof(double) * (size_t)n * n);
    for (int i = 0; i < n; i++) q[(size_t)i * n + i] = 1;
    for (int sweep = 0; sweep < 100 && off_diagonal_sq(a, n) > 1e-28 * total; sweep++)
        for (int p = 0; p < n; p++)
            for (int r = p + 1; r < n; r++)
                if (a[(size_t)p * n + r] != 0) jacobi_rotate(a, q, n, p, r);
    for (int i = 0; i < n; i++) lambda[i] = a[(size_t)i * n + i];
    sort_descending(q, lambda, n);
}

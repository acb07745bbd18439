/* linalg.c - blocked Cholesky and inverse in float64 over CBLAS. */
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

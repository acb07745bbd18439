/* linalg.c - blocked Cholesky and inverse in float64 over CBLAS. */
#include <float.h>
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

/* ---- symmetric eigendecomposition ---------------------------------------- */

/* Householder reduction of the lower triangle of a to tridiagonal T =
 * Qᵀ·A·Q: d = diagonal, e[k] = T[k+1][k] (e[n-1] = 0).  Reflector k
 * (I - tau[k]·v·vᵀ, v[0] = 1 implicit) is left in column k below the
 * subdiagonal; v is scratch [n]. */
static void tridiagonalize(double *a, int n, double *d, double *e, double *tau, double *v) {
    for (int k = 0; k + 2 < n; k++) {
        int m = n - k - 1; /* the trailing block A22 = a[k+1.., k+1..] is m x m */
        double *col = a + (size_t)(k + 1) * n + k, x0 = col[0];
        double tail = 0;
        for (int i = 1; i < m; i++) tail += col[(size_t)i * n] * col[(size_t)i * n];
        d[k] = a[(size_t)k * n + k];
        if (tail == 0) { /* already tridiagonal in this column */
            e[k] = x0, tau[k] = 0;
            continue;
        }
        double beta = -copysign(sqrt(x0 * x0 + tail), x0);
        tau[k] = (beta - x0) / beta;
        v[0] = 1;
        for (int i = 1; i < m; i++) v[i] = col[(size_t)i * n] / (x0 - beta), col[(size_t)i * n] = v[i];
        e[k] = beta;
        /* A22 <- H·A22·H = A22 - v·wᵀ - w·vᵀ with p = tau·A22·v, w = p - (tau/2)(pᵀv)·v */
        double *a22 = a + (size_t)(k + 1) * n + k + 1, *p = v + m;
        cblas_dsymv(CblasRowMajor, CblasLower, m, tau[k], a22, n, v, 1, 0.0, p, 1);
        double half = -0.5 * tau[k] * cblas_ddot(m, p, 1, v, 1);
        cblas_daxpy(m, half, v, 1, p, 1);
        cblas_dsyr2(CblasRowMajor, CblasLower, m, -1.0, v, 1, p, 1, a22, n);
    }
    if (n >= 2) {
        d[n - 2] = a[(size_t)(n - 2) * n + n - 2];
        e[n - 2] = a[(size_t)(n - 1) * n + n - 2];
    }
    d[n - 1] = a[(size_t)(n - 1) * n + n - 1];
    e[n - 1] = 0;
}

/* q = H_0·H_1·…·H_{n-3}, accumulated from the last reflector back so each
 * touches only its trailing block; v is scratch [2n]. */
static void accumulate_reflectors(const double *a, int n, const double *tau, double *q, double *v) {
    memset(q, 0, sizeof(double) * (size_t)n * (size_t)n);
    for (int i = 0; i < n; i++) q[(size_t)i * n + i] = 1;
    for (int k = n - 3; k >= 0; k--) {
        if (tau[k] == 0) continue;
        int m = n - k - 1;
        v[0] = 1;
        for (int i = 1; i < m; i++) v[i] = a[(size_t)(k + 1 + i) * n + k];
        double *sub = q + (size_t)(k + 1) * n + k + 1, *w = v + m;
        /* sub -= tau·v·(vᵀ·sub) */
        cblas_dgemv(CblasRowMajor, CblasTrans, m, m, 1.0, sub, n, v, 1, 0.0, w, 1);
        cblas_dger(CblasRowMajor, m, m, -tau[k], v, 1, w, 1, sub, n);
    }
}

/* Rows u, v <- the plane rotation that QL applies to columns i, i+1 of the
 * eigenvector matrix (stored transposed, so they are contiguous rows). */
static void rotate_rows(double *u, double *v, int n, double c, double s) {
    for (int k = 0; k < n; k++) {
        double f = v[k];
        v[k] = s * u[k] + c * f;
        u[k] = c * u[k] - s * f;
    }
}

/* Eigenvalues of the tridiagonal (d, e) into d by implicit-shift QL (Wilkinson
 * shift from the leading 2 x 2), rotations accumulated into the rows of zt. */
static int tridiagonal_ql(double *d, double *e, int n, double *zt, sb_err *err) {
    /* An off-diagonal below eps·(|d_m| + |d_m+1|) splits the matrix; so does
     * one below eps·‖T‖, the error the Householder step already made (as in
     * JAMA's tql2), without which a block of (numerically) zero eigenvalues of
     * a rank-deficient covariance, all round-off, may never converge. */
    double norm = 0;
    for (int i = 0; i < n; i++) norm = fmax(norm, fabs(d[i]) + fabs(e[i]) + (i ? fabs(e[i - 1]) : 0));
    double floor_abs = DBL_EPSILON * norm;
    for (int l = 0; l < n; l++) {
        for (int iter = 0;; iter++) {
            int m = l;
            for (; m < n - 1; m++)
                if (fabs(e[m]) <= DBL_EPSILON * (fabs(d[m]) + fabs(d[m + 1])) || fabs(e[m]) <= floor_abs) break;
            if (m == l) break;
            if (iter == 64) return sb_err_set(err, SB_EINTERNAL, "eigen: QL did not converge at eigenvalue %d", l);
            double g = (d[l + 1] - d[l]) / (2 * e[l]), r = hypot(g, 1.0);
            g = d[m] - d[l] + e[l] / (g + copysign(r, g));
            double s = 1, c = 1, p = 0;
            int i = m - 1;
            for (; i >= l; i--) { /* chase the bulge from m up to l */
                double f = s * e[i], b = c * e[i];
                e[i + 1] = r = hypot(f, g);
                if (r == 0) { /* the matrix split: deflate and start again */
                    d[i + 1] -= p, e[m] = 0;
                    break;
                }
                s = f / r, c = g / r;
                g = d[i + 1] - p;
                r = (d[i] - g) * s + 2 * c * b;
                p = s * r;
                d[i + 1] = g + p;
                g = c * r - b;
                rotate_rows(zt + (size_t)i * n, zt + (size_t)(i + 1) * n, n, c, s);
            }
            if (r == 0 && i >= l) continue;
            d[l] -= p, e[l] = g, e[m] = 0;
        }
    }
    return SB_OK;
}

typedef struct ranked {
    double value;
    int index;
} ranked;

/* Descending by value; ties by index, so the order never depends on qsort. */
static int by_value_desc(const void *pa, const void *pb) {
    const ranked *a = pa, *b = pb;
    if (a->value != b->value) return a->value > b->value ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

int sb_symmetric_eigen(double *a, int n, double *lambda, double *q, sb_err *err) {
    if (n < 1) return sb_err_set(err, SB_EINPUT, "eigen: size %d", n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++)
            if (!isfinite(a[(size_t)i * n + j]))
                return sb_err_set(err, SB_EINPUT, "eigen: entry (%d, %d) is %g", i, j, a[(size_t)i * n + j]);
    double *d = sb_malloc(err, sizeof(double) * (size_t)n), *e = sb_malloc(err, sizeof(double) * (size_t)n);
    double *tau = sb_malloc(err, sizeof(double) * (size_t)n), *v = sb_malloc(err, sizeof(double) * 2 * (size_t)n);
    ranked *order = sb_malloc(err, sizeof(ranked) * (size_t)n);
    int rc = d && e && tau && v && order ? SB_OK : SB_EINTERNAL;
    if (!rc) {
        tau[0] = 0; /* n < 3 has no reflectors */
        tridiagonalize(a, n, d, e, tau, v);
        accumulate_reflectors(a, n, tau, q, v);
        /* zt = qᵀ in a (no longer needed): QL rotates its rows */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) a[(size_t)j * n + i] = q[(size_t)i * n + j];
        rc = tridiagonal_ql(d, e, n, a, err);
    }
    if (!rc) {
        for (int j = 0; j < n; j++) order[j] = (ranked){d[j], j};
        qsort(order, (size_t)n, sizeof *order, by_value_desc);
        for (int j = 0; j < n; j++) {
            lambda[j] = order[j].value;
            const double *z = a + (size_t)order[j].index * n;
            for (int i = 0; i < n; i++) q[(size_t)i * n + j] = z[i];
        }
    }
    free(d), free(e), free(tau), free(v), free(order);
    return rc;
}

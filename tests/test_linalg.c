/* test_linalg.c - the symmetric eigensolver (harness/linalg.c).
 *
 *   eigen fixtures   every case of tests/reference/make_linalg_fixtures.py
 *                    (numpy.linalg.eigh): eigenvalues within 1e-12 of the
 *                    largest |λ|; Q orthonormal and A·Q = Q·Λ to the same
 *                    level; each eigenvector whose eigenvalue is apart from
 *                    the others (gap > 1e-6·|λ|max) equal to numpy's up to sign,
 *                    and for repeated eigenvalues the same invariant subspace
 *                    (the projectors Σ q qᵀ over the cluster agree)
 *   eigen random     a 300 x 300 covariance (crosses no special path but is
 *                    bigger than the fixtures): residual and orthogonality
 *   eigen refusals   a NaN entry is an SB_EINPUT error naming the entry */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "linalg.h"

#define FIX "tests/reference/linalg"

static double *read_f64(const char *name, const char *suffix, size_t count) {
    char path[512];
    snprintf(path, sizeof path, FIX "/%s.%s.f64", name, suffix);
    FILE *f = fopen(path, "rb");
    double *p = f ? malloc(sizeof(double) * count) : NULL;
    if (p && fread(p, sizeof(double), count, f) != count) {
        free(p);
        p = NULL;
    }
    if (f) fclose(f);
    test_expect(p != NULL, "%s: could not read %zu doubles", path, count);
    return p;
}

/* max |A·Q - Q·Λ| and max |QᵀQ - I|. */
static void residuals(const double *a, const double *q, const double *w, int n, double *res, double *orth) {
    *res = *orth = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double aq = 0, qq = 0;
            for (int k = 0; k < n; k++) aq += a[i * n + k] * q[k * n + j], qq += q[k * n + i] * q[k * n + j];
            *res = fmax(*res, fabs(aq - q[i * n + j] * w[j]));
            *orth = fmax(*orth, fabs(qq - (i == j)));
        }
}

/* Largest difference between the projectors onto columns [j0, j1) of q and of v. */
static double projector_diff(const double *q, const double *v, int n, int j0, int j1) {
    double worst = 0;
    for (int r = 0; r < n; r++)
        for (int c = 0; c < n; c++) {
            double pq = 0, pv = 0;
            for (int j = j0; j < j1; j++) pq += q[r * n + j] * q[c * n + j], pv += v[r * n + j] * v[c * n + j];
            worst = fmax(worst, fabs(pq - pv));
        }
    return worst;
}

static void check_case(const char *name, int n) {
    size_t nn = (size_t)n * (size_t)n;
    double *a = read_f64(name, "a", nn), *w_ref = read_f64(name, "w", (size_t)n), *v_ref = read_f64(name, "v", nn);
    double *work = malloc(sizeof(double) * nn), *q = malloc(sizeof(double) * nn), *w = malloc(sizeof(double) * (size_t)n);
    sb_err err = {0};
    if (a && w_ref && v_ref && test_expect(work && q && w, "out of memory")) {
        memcpy(work, a, sizeof(double) * nn);
        if (test_expect(sb_symmetric_eigen(work, n, w, q, &err) == SB_OK, "%s: %s", name, err.msg)) {
            double scale = fmax(fabs(w_ref[0]), fabs(w_ref[n - 1])), tol = 1e-12 * fmax(scale, 1e-300);
            double worst = 0, res, orth;
            for (int j = 0; j < n; j++) worst = fmax(worst, fabs(w[j] - w_ref[j]));
            test_expect(worst <= tol, "%s: eigenvalues differ from numpy by %g (scale %g)", name, worst, scale);
            residuals(a, q, w, n, &res, &orth);
            test_expect(res <= 10 * tol, "%s: max |AQ - QΛ| = %g", name, res);
            test_expect(orth <= 1e-12 * n, "%s: max |QᵀQ - I| = %g", name, orth);
            /* clusters of (nearly) equal eigenvalues: compare invariant subspaces */
            for (int j0 = 0, j1; j0 < n; j0 = j1) {
                for (j1 = j0 + 1; j1 < n && w_ref[j1 - 1] - w_ref[j1] <= 1e-6 * scale; j1++) {}
                double d = projector_diff(q, v_ref, n, j0, j1);
                test_expect(d <= 1e-8, "%s: eigenvectors %d..%d span another space than numpy's (%g)", name, j0, j1 - 1, d);
            }
        }
    }
    free(a), free(w_ref), free(v_ref), free(work), free(q), free(w);
}

static void test_fixtures(void) {
    test_begin("eigen_matches_numpy_eigh");
    cJSON *list = test_read_json(FIX "/cases.json");
    if (test_expect(cJSON_IsArray(list) && cJSON_GetArraySize(list) >= 8, FIX "/cases.json: missing or short")) {
        const cJSON *c;
        cJSON_ArrayForEach(c, list) {
            const cJSON *name = cJSON_GetObjectItem(c, "name"), *n = cJSON_GetObjectItem(c, "n");
            if (test_expect(cJSON_IsString(name) && cJSON_IsNumber(n), "bad case entry")) check_case(name->valuestring, n->valueint);
        }
    }
    cJSON_Delete(list);
    test_end();
}

static void test_random(void) {
    test_begin("eigen_random_covariance_300");
    enum { N = 300, T = 200 }; /* T < N: rank-deficient, 100 zero eigenvalues */
    double *x = malloc(sizeof(double) * N * T), *a = malloc(sizeof(double) * N * N), *work = malloc(sizeof(double) * N * N);
    double *q = malloc(sizeof(double) * N * N), *w = malloc(sizeof(double) * N);
    sb_err err = {0};
    if (test_expect(x && a && work && q && w, "out of memory")) {
        uint64_t s = 11;
        for (int i = 0; i < N * T; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            x[i] = (double)(s >> 11) / 9007199254740992.0 - 0.5;
        }
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                double v = 0;
                for (int t = 0; t < T; t++) v += x[t * N + i] * x[t * N + j];
                a[i * N + j] = v;
            }
        memcpy(work, a, sizeof(double) * N * N);
        if (test_expect(sb_symmetric_eigen(work, N, w, q, &err) == SB_OK, "%s", err.msg)) {
            double res, orth;
            residuals(a, q, w, N, &res, &orth);
            test_expect(res <= 1e-11 * w[0], "max |AQ - QΛ| = %g (λmax %g)", res, w[0]);
            test_expect(orth <= 1e-11, "max |QᵀQ - I| = %g", orth);
            bool sorted = true;
            for (int j = 1; j < N; j++) sorted = sorted && w[j] <= w[j - 1];
            test_expect(sorted, "eigenvalues not descending");
            test_expect(fabs(w[T]) <= 1e-11 * w[0] && w[T - 1] > 1e-6 * w[0], "rank: λ[%d] = %g, λ[%d] = %g", T - 1,
                        w[T - 1], T, w[T]);
        }
    }
    free(x), free(a), free(work), free(q), free(w);
    test_end();
}

static void test_refusals(void) {
    test_begin("eigen_refuses_nan");
    double a[9] = {1, 0, 0, 0, 1, 0, 0, NAN, 1}, q[9], w[3];
    sb_err err = {0};
    test_expect(sb_symmetric_eigen(a, 3, w, q, &err) == SB_EINPUT && strstr(err.msg, "(2, 1)"), "NaN accepted: %s", err.msg);
    test_end();
}

int main(void) {
    test_fixtures();
    test_random();
    test_refusals();
    return test_status();
}

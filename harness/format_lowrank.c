/* format_lowrank.c - W_c + B·A on top of any weight format (see the header). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "format_lowrank.h"

typedef struct {
    sb_linear inner;   /* W_c, bias moved to the wrapper */
    int rank;
    float *b;          /* [rows, rank] */
    float *a;          /* [rank, cols] */
} lowrank_payload;

static const lowrank_payload *payload_of(const sb_linear *w) { return w->data; }

void sb_lowrank_free_addon(void *owned) {
    lowrank_payload *p = owned;
    if (!p) return;
    free(p->b);
    free(p->a);
    free(p);
}

static void lowrank_free_owned(void *owned) {
    lowrank_payload *p = owned;
    if (!p) return;
    sb_linear_free(&p->inner);
    sb_lowrank_free_addon(p);
}

/* dst[n_rows, cols] = W_c rows + B rows · A. */
static void lowrank_decode_rows(const sb_linear *w, int64_t row0, int64_t n_rows, float *dst) {
    const lowrank_payload *p = payload_of(w);
    p->inner.fmt->decode_rows(&p->inner, row0, n_rows, dst);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n_rows, (int)w->cols, p->rank, 1.0f,
                p->b + row0 * p->rank, p->rank, p->a, (int)w->cols, 1.0f, dst, (int)w->cols);
}

typedef struct {
    const sb_linear *w;
    const float *x;
    float *y;
    int64_t n_tok, tokens_per_task, floats_per_worker;
    float *scratch;
} addon_job;

/* Tokens [t0, t0 + n) of y += (x·Aᵀ)·Bᵀ, the rank-wide intermediate in the
 * worker's slice of the session scratch (free again once W_c's product
 * has returned). */
static void addon_tokens(void *arg, int task, int worker) {
    const addon_job *j = arg;
    const sb_linear *w = j->w;
    const lowrank_payload *p = payload_of(w);
    int64_t t0 = (int64_t)task * j->tokens_per_task;
    int64_t n = j->n_tok - t0 < j->tokens_per_task ? j->n_tok - t0 : j->tokens_per_task;
    if (n <= 0) return;
    float *t = j->scratch + (int64_t)worker * j->floats_per_worker;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, p->rank, (int)w->cols, 1.0f, j->x + t0 * w->cols,
                (int)w->cols, p->a, (int)w->cols, 0.0f, t, p->rank);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)w->rows, p->rank, 1.0f, t, p->rank, p->b,
                p->rank, 1.0f, j->y + t0 * w->rows, (int)w->rows);
}

/* Without room for even one token's intermediate: dot products, no scratch. */
static void addon_no_scratch(const sb_linear *w, const float *x, int64_t n_tok, float *y) {
    const lowrank_payload *p = payload_of(w);
    for (int64_t t = 0; t < n_tok; t++)
        for (int k = 0; k < p->rank; k++) {
            float s = cblas_sdot((int)w->cols, p->a + (int64_t)k * w->cols, 1, x + t * w->cols, 1);
            cblas_saxpy((int)w->rows, s, p->b + k, p->rank, y + t * w->rows, 1);
        }
}

static void lowrank_matmul(const sb_linear *w, const float *x, int64_t n_tok, float *y, sb_matmul_ctx *ctx) {
    const lowrank_payload *p = payload_of(w);
    p->inner.fmt->matmul(&p->inner, x, n_tok, y, ctx);
    int threads = sb_pool_threads(ctx->pool);
    int64_t per_worker = ctx->scratch_floats / threads;
    int64_t fit = per_worker / p->rank;
    if (fit < 1) {
        addon_no_scratch(w, x, n_tok, y);
        return;
    }
    int64_t per_task = (n_tok + threads - 1) / threads;
    if (per_task > fit) per_task = fit;
    addon_job j = {w, x, y, n_tok, per_task, per_worker, ctx->scratch};
    sb_pool_run(ctx->pool, addon_tokens, &j, (int)((n_tok + per_task - 1) / per_task));
}

static uint64_t lowrank_storage_bits(const sb_linear *w) {
    const lowrank_payload *p = payload_of(w);
    uint64_t factors = 32u * (uint64_t)p->rank * (uint64_t)(w->rows + w->cols);
    return p->inner.fmt->storage_bits(&p->inner) + factors;
}

const sb_format sb_format_lowrank = {"lowrank", lowrank_decode_rows, lowrank_matmul, lowrank_storage_bits};

static float *copy_floats(const float *src, int64_t n, sb_err *err) {
    float *dst = sb_malloc(err, sizeof(float) * (size_t)n);
    if (dst) memcpy(dst, src, sizeof(float) * (size_t)n);
    return dst;
}

int sb_lowrank_wrap(sb_linear *inner_moved, int rank, const float *B, const float *A, sb_linear *out, sb_err *err) {
    if (!inner_moved->fmt) return sb_err_set(err, SB_EINPUT, "low-rank add-on: the wrapped linear is absent");
    int64_t rows = inner_moved->rows, cols = inner_moved->cols;
    int64_t max_rank = rows < cols ? rows : cols;
    if (rank < 1 || rank > max_rank)
        return sb_err_set(err, SB_EINPUT, "low-rank add-on: rank %d outside [1, %lld] for a %lldx%lld weight", rank,
                          (long long)max_rank, (long long)rows, (long long)cols);
    lowrank_payload *p = sb_calloc(err, 1, sizeof *p);
    if (!p) return SB_EINTERNAL;
    p->rank = rank;
    p->b = copy_floats(B, rows * rank, err);
    p->a = p->b ? copy_floats(A, (int64_t)rank * cols, err) : NULL;
    if (!p->a) {
        lowrank_free_owned(p);
        return SB_EINTERNAL;
    }
    p->inner = *inner_moved;
    float *bias = p->inner.bias;
    p->inner.bias = NULL;
    memset(inner_moved, 0, sizeof *inner_moved); /* before writing out: out may be inner_moved */
    *out = (sb_linear){.fmt = &sb_format_lowrank, .rows = rows, .cols = cols, .data = p, .owned = p, .bias = bias,
                       .free_owned = lowrank_free_owned};
    return SB_OK;
}

const sb_linear *sb_lowrank_inner(const sb_linear *w) {
    return w->fmt == &sb_format_lowrank ? &payload_of(w)->inner : NULL;
}
int sb_lowrank_rank(const sb_linear *w) { return w->fmt == &sb_format_lowrank ? payload_of(w)->rank : 0; }
const float *sb_lowrank_b(const sb_linear *w) { return w->fmt == &sb_format_lowrank ? payload_of(w)->b : NULL; }
const float *sb_lowrank_a(const sb_linear *w) { return w->fmt == &sb_format_lowrank ? payload_of(w)->a : NULL; }

/* ---- truncated SVD -------------------------------------------------------
 * Bases are stored as rows (k x len, row-major) so Gram-Schmidt works on
 * contiguous vectors. */

enum { OVERSAMPLE = 8, MAX_ITERATIONS = 60 };
static const double ENERGY_TOL = 1e-10;

/* Modified Gram-Schmidt on the rows of v [k, len], twice ("twice is
 * enough" for orthogonality in floating point).  A row that vanishes
 * against the earlier ones (the matrix has lower rank) is set to zero:
 * it then contributes nothing to the projection. */
static void orthonormalize_rows(double *v, int k, int64_t len) {
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < k; i++) {
            double *vi = v + (int64_t)i * len;
            double before = cblas_dnrm2((int)len, vi, 1);
            for (int j = 0; j < i; j++) {
                const double *vj = v + (int64_t)j * len;
                cblas_daxpy((int)len, -cblas_ddot((int)len, vj, 1, vi, 1), vj, 1, vi, 1);
            }
            double after = cblas_dnrm2((int)len, vi, 1);
            if (after <= 1e-12 * before || after == 0) memset(vi, 0, sizeof(double) * (size_t)len);
            else cblas_dscal((int)len, 1.0 / after, vi, 1);
        }
}

/* Deterministic uniform numbers in [-1, 1) (splitmix64), for the start basis. */
static double next_uniform(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) / 4503599627370496.0 - 1.0;
}

/* Cyclic Jacobi eigendecomposition of the symmetric g [k, k] (destroyed):
 * eigenvalues to lambda (descending), eigenvectors to the columns of vecs. */
static void jacobi_eigen(double *g, int k, double *lambda, double *vecs) {
    for (int i = 0; i < k * k; i++) vecs[i] = 0;
    for (int i = 0; i < k; i++) vecs[i * k + i] = 1;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, diag = 0;
        for (int i = 0; i < k; i++) {
            diag += g[i * k + i] * g[i * k + i];
            for (int j = i + 1; j < k; j++) off += g[i * k + j] * g[i * k + j];
        }
        if (off <= 1e-30 * diag || off == 0) break;
        for (int p = 0; p < k; p++)
            for (int q = p + 1; q < k; q++) {
                double gpq = g[p * k + q];
                if (gpq == 0) continue;
                double theta = (g[q * k + q] - g[p * k + p]) / (2 * gpq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int r = 0; r < k; r++) { /* columns p, q of g */
                    double a = g[r * k + p], b = g[r * k + q];
                    g[r * k + p] = c * a - s * b;
                    g[r * k + q] = s * a + c * b;
                }
                for (int r = 0; r < k; r++) { /* rows p, q of g */
                    double a = g[p * k + r], b = g[q * k + r];
                    g[p * k + r] = c * a - s * b;
                    g[q * k + r] = s * a + c * b;
                }
                for (int r = 0; r < k; r++) {
                    double a = vecs[r * k + p], b = vecs[r * k + q];
                    vecs[r * k + p] = c * a - s * b;
                    vecs[r * k + q] = s * a + c * b;
                }
            }
    }
    /* selection sort by eigenvalue, descending, moving eigenvector columns along */
    for (int i = 0; i < k; i++) lambda[i] = g[i * k + i];
    for (int i = 0; i < k; i++) {
        int best = i;
        for (int j = i + 1; j < k; j++)
            if (lambda[j] > lambda[best]) best = j;
        if (best == i) continue;
        double t = lambda[i];
        lambda[i] = lambda[best];
        lambda[best] = t;
        for (int r = 0; r < k; r++) {
            t = vecs[r * k + i];
            vecs[r * k + i] = vecs[r * k + best];
            vecs[r * k + best] = t;
        }
    }
}

typedef struct {
    const double *delta;
    int64_t rows, cols;
    int k;
    double *qt;   /* [k, rows] orthonormal basis of the column space */
    double *zt;   /* [k, cols] qt·delta */
} subspace;

/* zt = qt·delta; returns ‖zt‖_F², the energy the basis captures. */
static double project(subspace *s) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->k, (int)s->cols, (int)s->rows, 1.0, s->qt,
                (int)s->rows, s->delta, (int)s->cols, 0.0, s->zt, (int)s->cols);
    double e = cblas_dnrm2((int)(s->k * s->cols), s->zt, 1);
    return e * e;
}

/* qt = orthonormalized zt·deltaᵀ (zt's rows made orthonormal first). */
static void power_step(subspace *s) {
    orthonormalize_rows(s->zt, s->k, s->cols);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->k, (int)s->rows, (int)s->cols, 1.0, s->zt, (int)s->cols,
                s->delta, (int)s->cols, 0.0, s->qt, (int)s->rows);
    orthonormalize_rows(s->qt, s->k, s->rows);
}

/* The start basis: the identity when k covers the rows; the range of
 * delta itself when k covers the columns; else a random one, iterated. */
static void find_basis(subspace *s) {
    memset(s->zt, 0, sizeof(double) * (size_t)(s->k * s->cols));
    if (s->k == s->rows) {
        memset(s->qt, 0, sizeof(double) * (size_t)(s->k * s->rows));
        for (int i = 0; i < s->k; i++) s->qt[(int64_t)i * s->rows + i] = 1;
        project(s);
        return;
    }
    uint64_t state = 0x5EED;
    if (s->k == s->cols)
        for (int i = 0; i < s->k; i++) s->zt[(int64_t)i * s->cols + i] = 1;
    else
        for (int64_t i = 0; i < s->k * s->cols; i++) s->zt[i] = next_uniform(&state);
    power_step(s);
    double energy = project(s);
    for (int it = 0; s->k < s->cols && it < MAX_ITERATIONS; it++) {
        power_step(s);
        double next = project(s);
        bool settled = next - energy <= ENERGY_TOL * next;
        energy = next;
        if (settled) break;
    }
}

/* SVD of the projection zt = qt·delta: Gram matrix zt·ztᵀ = W Λ Wᵀ; then
 * u_j = qtᵀ w_j, σ_j = sqrt(λ_j) and σ_j v_jᵀ = w_jᵀ zt. */
static void factors_from_basis(const subspace *s, int rank, const double *w, const double *lambda, float *B,
                               float *A, double *row) {
    int k = s->k;
    for (int j = 0; j < rank; j++) {
        double sigma = lambda[j] > 0 ? sqrt(lambda[j]) : 0;
        bool zero = sigma <= 1e-300 || sigma <= 1e-15 * sqrt(fmax(lambda[0], 0));
        double root = zero ? 0 : sqrt(sigma);
        /* B column j = u_j · sqrt(σ_j) */
        cblas_dgemv(CblasRowMajor, CblasTrans, k, (int)s->rows, 1.0, s->qt, (int)s->rows, w + j, k, 0.0, row, 1);
        for (int64_t r = 0; r < s->rows; r++) B[r * rank + j] = (float)(row[r] * root);
        /* A row j = σ_j v_jᵀ / sqrt(σ_j) */
        cblas_dgemv(CblasRowMajor, CblasTrans, k, (int)s->cols, 1.0, s->zt, (int)s->cols, w + j, k, 0.0, row, 1);
        for (int64_t c = 0; c < s->cols; c++) A[(int64_t)j * s->cols + c] = zero ? 0.0f : (float)(row[c] / root);
    }
}

int sb_lowrank_factorize(const double *delta, int64_t rows, int64_t cols, int rank, float *B, float *A, sb_err *err) {
    int64_t max_rank = rows < cols ? rows : cols;
    if (rank < 1 || rank > max_rank)
        return sb_err_set(err, SB_EINPUT, "low-rank factors: rank %d outside [1, %lld]", rank, (long long)max_rank);
    int k = (int)(rank + OVERSAMPLE < max_rank ? rank + OVERSAMPLE : max_rank);
    int64_t longest = rows > cols ? rows : cols;
    subspace s = {delta, rows, cols, k, NULL, NULL};
    s.qt = sb_malloc(err, sizeof(double) * (size_t)(k * rows));
    s.zt = sb_malloc(err, sizeof(double) * (size_t)(k * cols));
    double *gram = sb_malloc(err, sizeof(double) * (size_t)k * (size_t)k);
    double *w = sb_malloc(err, sizeof(double) * (size_t)k * (size_t)k);
    double *lambda = sb_malloc(err, sizeof(double) * (size_t)k);
    double *row = sb_malloc(err, sizeof(double) * (size_t)longest);
    int rc = s.qt && s.zt && gram && w && lambda && row ? SB_OK : SB_EINTERNAL;
    if (!rc) {
        find_basis(&s);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, k, k, (int)cols, 1.0, s.zt, (int)cols, s.zt, (int)cols,
                    0.0, gram, k);
        jacobi_eigen(gram, k, lambda, w);
        factors_from_basis(&s, rank, w, lambda, B, A, row);
    }
    free(s.qt);
    free(s.zt);
    free(gram);
    free(w);
    free(lambda);
    free(row);
    return rc;
}

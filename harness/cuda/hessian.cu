/* hessian.cu - a linear's input Hessian accumulated on the device
 * (hessian_device.h).
 *
 * The host rows X [n, cols] (row-major float32) are, to column-major
 * cuBLAS, Xᵀ [cols, n] with leading dimension cols; DSYRK with no
 * transpose then forms Xᵀ·X, H's shape.  It writes one triangle only
 * ("upper" to cuBLAS, the lower one row-major); the other is filled on the
 * device before H comes down. */
#include <limits.h>
#include <stdint.h>

#include "cuda_internal.h"
#include "hessian_device.h"

enum { THREADS = 256, MAX_CTAS = 4096, CHUNK_ROWS = 4096 };

struct sb_hessian_device {
    sb_cuda_ctx *c;
    int64_t cols;
    double *h;          /* [cols, cols] */
    float *xf;          /* [cap, cols] the rows as they came */
    double *xd;         /* [cap, cols] the same in float64 */
    int64_t cap;        /* rows the staging holds */
};

static size_t h_bytes(const sb_hessian_device *h) { return sizeof(double) * (size_t)h->cols * (size_t)h->cols; }

static unsigned ctas_for(int64_t n) {
    int64_t ctas = (n + THREADS - 1) / THREADS, most = MAX_CTAS;
    return (unsigned)(ctas < most ? ctas : most);
}

__global__ static void widen_kernel(const float *x, double *y, int64_t n) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < n; k += stride) y[k] = (double)x[k];
}

__global__ static void scale_kernel(double *h, int64_t n, double s) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < n; k += stride) h[k] *= s;
}

/* Row-major h[i, j] for j > i from h[j, i]: the triangle DSYRK did not write. */
__global__ static void mirror_kernel(double *h, int64_t n) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < n * n; k += stride) {
        int64_t i = k / n, j = k % n;
        if (j > i) h[k] = h[j * n + i];
    }
}

extern "C" int sb_hessian_device_new(sb_cuda_ctx *c, int64_t cols, sb_hessian_device **out, sb_err *err) {
    *out = NULL;
    if (cols < 1 || cols > INT_MAX) return sb_err_set(err, SB_EINPUT, "Hessian on CUDA: %lld columns", (long long)cols);
    sb_hessian_device *h = (sb_hessian_device *)sb_calloc(err, 1, sizeof *h);
    if (!h) return SB_EINTERNAL;
    h->c = c;
    h->cols = cols;
    int rc = cuda_alloc(c, (void **)&h->h, h_bytes(h), "a calibration Hessian (float64)", err);
    if (!rc) rc = CUDA_OK(cudaMemset(h->h, 0, h_bytes(h)), err);
    if (rc) {
        sb_hessian_device_free(h);
        return rc;
    }
    *out = h;
    return SB_OK;
}

static void free_staging(sb_hessian_device *h) {
    cuda_free(h->c, h->xf, sizeof(float) * (size_t)(h->cap * h->cols));
    cuda_free(h->c, h->xd, sizeof(double) * (size_t)(h->cap * h->cols));
    h->xf = NULL, h->xd = NULL, h->cap = 0;
}

extern "C" void sb_hessian_device_free(sb_hessian_device *h) {
    if (!h) return;
    free_staging(h);
    cuda_free(h->c, h->h, h_bytes(h));
    free(h);
}

/* Staging for at least `rows` rows (at most CHUNK_ROWS at a time). */
static int reserve(sb_hessian_device *h, int64_t rows, sb_err *err) {
    if (rows > CHUNK_ROWS) rows = CHUNK_ROWS;
    if (rows <= h->cap) return SB_OK;
    free_staging(h);
    size_t n = (size_t)(rows * h->cols);
    int rc = cuda_alloc(h->c, (void **)&h->xf, sizeof(float) * n, "calibration rows (float32)", err);
    if (!rc) rc = cuda_alloc(h->c, (void **)&h->xd, sizeof(double) * n, "calibration rows (float64)", err);
    if (!rc) h->cap = rows;
    else free_staging(h);
    return rc;
}

/* H = beta·H + add·XᵀX for one chunk of nr rows already in h->xf. */
static int add_chunk(sb_hessian_device *h, int64_t nr, double add, double beta, sb_err *err) {
    widen_kernel<<<ctas_for(nr * h->cols), THREADS>>>(h->xf, h->xd, nr * h->cols);
    int rc = cuda_launched("widen", err);
    int n = (int)h->cols;
    if (!rc)
        rc = CUBLAS_OK(cublasDsyrk(h->c->blas, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, n, (int)nr, &add, h->xd, n, &beta,
                                   h->h, n),
                       err);
    return rc;
}

extern "C" int sb_hessian_device_add(sb_hessian_device *h, const float *x, int64_t n_rows, double keep, double add,
                                     sb_err *err) {
    int rc = CUDA_OK(cudaSetDevice(h->c->device), err);
    if (!rc && n_rows < 1) { /* no rows: only the running mean's rescaling */
        scale_kernel<<<ctas_for(h->cols * h->cols), THREADS>>>(h->h, h->cols * h->cols, keep);
        return cuda_launched("scale", err);
    }
    if (!rc) rc = reserve(h, n_rows, err);
    for (int64_t r0 = 0; !rc && r0 < n_rows; r0 += h->cap) {
        int64_t nr = n_rows - r0 < h->cap ? n_rows - r0 : h->cap;
        /* synchronous: the previous chunk's DSYRK (same stream) is done before xf is overwritten */
        rc = CUDA_OK(cudaMemcpy(h->xf, x + r0 * h->cols, sizeof(float) * (size_t)(nr * h->cols),
                                cudaMemcpyHostToDevice),
                     err);
        if (!rc) rc = add_chunk(h, nr, add, r0 == 0 ? keep : 1.0, err);
    }
    return rc ? sb_err_prefix(err, "calibration Hessian on cuda:%d", h->c->device) : SB_OK;
}

extern "C" int sb_hessian_device_get(sb_hessian_device *h, double *out, sb_err *err) {
    mirror_kernel<<<ctas_for(h->cols * h->cols), THREADS>>>(h->h, h->cols);
    int rc = cuda_launched("mirror", err);
    if (!rc) rc = CUDA_OK(cudaMemcpy(out, h->h, h_bytes(h), cudaMemcpyDeviceToHost), err);
    return rc ? sb_err_prefix(err, "calibration Hessian on cuda:%d", h->c->device) : SB_OK;
}

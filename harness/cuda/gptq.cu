/* gptq.cu - GPTQ's Cholesky steps and column loop on the device
 * (gptq_device.h; the host side of the method is methods/gptq.c).
 *
 * Matching the CPU: every per-element operation of the column loop is the
 * CPU's (methods/gptq.c, block_row) in the same order, written with the
 * _rn intrinsics, and the quantizer is the shared quantizer_math.h.  The
 * CPU build is ISO C11, where gcc does not contract a·b + c into an FMA
 * (checked: no vfmadd in gptq.o), so nothing here may be contracted
 * either: the intrinsics are never fused, and the Makefile builds this file
 * with -fmad=false so that the shared quantizer formulas are not fused
 * with their callers.  What differs is the lazy update (cuBLAS and the
 * CPU's BLAS sum in different orders, both with FMAs), hence "up to ties".
 *
 * Layout: everything row-major as on the host.  cuBLAS and cuSOLVER are
 * column-major: a row-major matrix is its transpose to them (see the
 * comments at each call). */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "cuda_internal.h"

extern "C" {
#include "quantizer_math.h"
}
#include "gptq_device.h"

enum { WARP = 32, ROWS_PER_CTA = 4, COPY_THREADS = 256, COPY_CTAS = 4096 };
static constexpr unsigned FULL_WARP = 0xffffffffu;

/* ---- device buffers of one layer ---------------------------------------- */

typedef struct gptq_buffers {
    sb_cuda_ctx *c;
    cusolverDnHandle_t solver;
    double *h;           /* [cols, cols], becomes the factor (float64) */
    double *work;        /* cuSOLVER's workspace */
    int *info;           /* cuSOLVER's status */
    float *u;            /* [cols, cols] upper factor of H⁻¹, float32 */
    float *w;            /* [rows, cols] global W, lazily updated */
    float *w1, *err1;    /* [rows, block] the block in progress */
    float *scales, *zeros; /* [rows, n_groups] */
    int32_t *group_of;   /* [cols] */
    uint8_t *codes;      /* [rows, cols] */
    float *q;            /* [rows, cols] */
    double *row_loss;    /* [rows] */
    size_t h_bytes, work_bytes, u_bytes, w_bytes, blk_bytes, par_bytes, grp_bytes, code_bytes, loss_bytes;
} gptq_buffers;

static void free_buffers(gptq_buffers *b) {
    sb_cuda_ctx *c = b->c;
    cuda_free(c, b->h, b->h_bytes);
    cuda_free(c, b->work, b->work_bytes);
    cuda_free(c, b->info, sizeof(int));
    cuda_free(c, b->u, b->u_bytes);
    cuda_free(c, b->w, b->w_bytes);
    cuda_free(c, b->w1, b->blk_bytes);
    cuda_free(c, b->err1, b->blk_bytes);
    cuda_free(c, b->scales, b->par_bytes);
    cuda_free(c, b->zeros, b->par_bytes);
    cuda_free(c, b->group_of, b->grp_bytes);
    cuda_free(c, b->codes, b->code_bytes);
    cuda_free(c, b->q, b->w_bytes);
    cuda_free(c, b->row_loss, b->loss_bytes);
    if (b->solver) cusolverDnDestroy(b->solver);
}

/* ---- U = upper Cholesky factor of H⁻¹ ------------------------------------ */

/* cuSOLVER's info after a factorization: > 0 means H (or H⁻¹) is not
 * positive definite, the CPU's SB_EINPUT; < 0 a bad argument (our bug). */
static int check_info(const gptq_buffers *b, const char *step, sb_err *err) {
    int info = 0;
    int rc = CUDA_OK(cudaMemcpy(&info, b->info, sizeof info, cudaMemcpyDeviceToHost), err);
    if (rc) return rc;
    if (info > 0)
        return sb_err_set(err, SB_EINPUT, "matrix is not positive definite (cuSOLVER %s: leading minor %d)", step,
                          info);
    if (info < 0) return sb_err_set(err, SB_EINTERNAL, "cuSOLVER %s: argument %d is wrong", step, -info);
    return SB_OK;
}

/* One workspace large enough for potrf and potri on n x n. */
static int alloc_solver_work(gptq_buffers *b, int n, sb_err *err) {
    int lw_potrf = 0, lw_potri = 0;
    int rc = CUSOLVER_OK(cusolverDnDpotrf_bufferSize(b->solver, CUBLAS_FILL_MODE_LOWER, n, b->h, n, &lw_potrf), err);
    if (!rc)
        rc = CUSOLVER_OK(cusolverDnDpotri_bufferSize(b->solver, CUBLAS_FILL_MODE_LOWER, n, b->h, n, &lw_potri), err);
    int lwork = lw_potrf > lw_potri ? lw_potrf : lw_potri;
    b->work_bytes = sizeof(double) * (size_t)(lwork > 0 ? lwork : 1);
    if (!rc) rc = cuda_alloc(b->c, (void **)&b->work, b->work_bytes, "GPTQ's cuSOLVER workspace", err);
    if (!rc) rc = cuda_alloc(b->c, (void **)&b->info, sizeof(int), "GPTQ's cuSOLVER status", err);
    return rc;
}

/* u[i, j] = (float)f[i, j] on and above the diagonal, 0 below (the CPU's
 * float32 copy of U, whose strict lower triangle is zero). */
__global__ static void upper_to_float_kernel(const double *f, float *u, int64_t n) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < n * n; k += stride) {
        int64_t i = k / n, j = k % n;
        u[k] = j >= i ? (float)f[k] : 0.0f;
    }
}

/* H is symmetric, so the row-major H is H to cuSOLVER too.  potrf (lower)
 * gives H = L·Lᵀ; potri (lower) overwrites L with the lower triangle of
 * H⁻¹; potrf (lower) again gives H⁻¹ = L₂·L₂ᵀ.  The upper factor U with
 * H⁻¹ = Uᵀ·U is L₂ᵀ, and L₂ stored column-major is exactly L₂ᵀ = U read
 * row-major, on and above the diagonal; below it lie leftovers of the
 * earlier steps, which the conversion to float32 replaces by zeros. */
static int upper_factor_of_inverse(gptq_buffers *b, int n, sb_err *err) {
    int lwork = (int)(b->work_bytes / sizeof(double));
    int rc = CUSOLVER_OK(cusolverDnDpotrf(b->solver, CUBLAS_FILL_MODE_LOWER, n, b->h, n, b->work, lwork, b->info), err);
    if (!rc) rc = check_info(b, "potrf of H", err);
    if (!rc) rc = CUSOLVER_OK(cusolverDnDpotri(b->solver, CUBLAS_FILL_MODE_LOWER, n, b->h, n, b->work, lwork, b->info), err);
    if (!rc) rc = check_info(b, "potri", err);
    if (!rc) rc = CUSOLVER_OK(cusolverDnDpotrf(b->solver, CUBLAS_FILL_MODE_LOWER, n, b->h, n, b->work, lwork, b->info), err);
    if (!rc) rc = check_info(b, "potrf of H^-1", err);
    if (rc) return rc;
    int64_t ctas = ((int64_t)n * n + COPY_THREADS - 1) / COPY_THREADS, max_ctas = COPY_CTAS;
    upper_to_float_kernel<<<(unsigned)(ctas < max_ctas ? ctas : max_ctas), COPY_THREADS>>>(b->h, b->u, n);
    return cuda_launched("upper_to_float", err);
}

/* H up, U computed, H's float64 buffers given back before the loop needs its own. */
static int prepare_u(gptq_buffers *b, const sb_gptq_device_job *j, sb_err *err) {
    int n = (int)j->cols;
    b->h_bytes = sizeof(double) * (size_t)j->cols * (size_t)j->cols;
    b->u_bytes = sizeof(float) * (size_t)j->cols * (size_t)j->cols;
    int rc = CUSOLVER_OK(cusolverDnCreate(&b->solver), err);
    if (!rc) rc = cuda_upload(b->c, (void **)&b->h, j->h, b->h_bytes, "GPTQ's Hessian (float64)", err);
    if (!rc) rc = alloc_solver_work(b, n, err);
    if (!rc) rc = cuda_alloc(b->c, (void **)&b->u, b->u_bytes, "GPTQ's factor U (float32)", err);
    if (!rc) rc = upper_factor_of_inverse(b, n, err);
    if (!rc) rc = CUDA_OK(cudaDeviceSynchronize(), err);
    cuda_free(b->c, b->h, b->h_bytes);
    cuda_free(b->c, b->work, b->work_bytes);
    b->h = NULL, b->work = NULL;
    return rc;
}

/* ---- the column loop ------------------------------------------------------ */

typedef struct block_args {
    const float *w;          /* [rows, cols] global W: no in-flight updates of this block */
    const float *u;          /* [cols, cols] */
    const int32_t *group_of; /* [cols] */
    float *scales, *zeros;   /* [rows, n_groups] */
    float *w1, *err1;        /* [rows, count] */
    uint8_t *codes;          /* [rows, cols] */
    float *q;                /* [rows, cols] */
    double *row_loss;        /* [rows] */
    int64_t rows, cols, gs, n_groups, i1;
    int count, maxq;
    bool sym, dynamic;
} block_args;

/* Min-max fit of x[0..n) by one warp; every lane returns the same
 * parameters.  Minimum and maximum are exact in any order, and starting
 * at +0 with strict comparisons (NaN ignored, -0 never taken) gives the
 * very range of the CPU's sequential scan (sb_quantizer_fit). */
__device__ static sb_qparams fit_warp(const float *x, int64_t n, int maxq, bool sym, int lane) {
    float lo = 0.0f, hi = 0.0f;
    for (int64_t k = lane; k < n; k += WARP) {
        float v = x[k];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    for (int o = WARP / 2; o > 0; o /= 2) {
        float l = __shfl_xor_sync(FULL_WARP, lo, o), h = __shfl_xor_sync(FULL_WARP, hi, o);
        if (l < lo) lo = l;
        if (h > hi) hi = h;
    }
    return sb_qmath_storable(sb_qmath_fit_range(maxq, sym, lo, hi));
}

__device__ static sb_qparams load_params(const block_args *a, int64_t r, int64_t g) {
    sb_qparams p;
    p.scale = a->scales[r * a->n_groups + g];
    p.zero = a->zeros[r * a->n_groups + g];
    return p;
}

/* The parameters at position c = i1 + i of row r (the CPU's params_at):
 * given ones, or a dynamic group fitted at its first position on the
 * global W (lane 0 records them for the host and for later blocks), or
 * those of a dynamic group begun in an earlier block.  p: the current ones. */
__device__ static sb_qparams params_at(const block_args *a, int64_t r, int i, sb_qparams p, int lane) {
    int64_t c = a->i1 + i, g = a->group_of[c];
    if (!a->dynamic) return load_params(a, r, g);
    if (c % a->gs == 0) {
        p = fit_warp(a->w + r * a->cols + c, a->gs, a->maxq, a->sym, lane);
        if (lane == 0) a->scales[r * a->n_groups + g] = p.scale, a->zeros[r * a->n_groups + g] = p.zero;
        return p;
    }
    return i == 0 ? load_params(a, r, g) : p;
}

/* The owner lane quantizes position i of the block; its error e and loss
 * term come back through *e and *term (the CPU's block_row, op for op). */
__device__ static void quantize_one(const block_args *a, int64_t r, int i, sb_qparams p, float *e, double *term) {
    int64_t c = a->i1 + i;
    float x = a->w1[r * a->count + i];
    uint8_t code = sb_qmath_code(a->maxq, p, x);
    float q = sb_qmath_dequant(p, code), d = a->u[c * a->cols + c];
    a->codes[r * a->cols + c] = code;
    a->q[r * a->cols + c] = q;
    double dx = __dsub_rn((double)x, (double)q);
    *term = __ddiv_rn(__ddiv_rn(__dmul_rn(dx, dx), __dmul_rn((double)d, (double)d)), 2.0);
    *e = __fdiv_rn(__fsub_rn(x, q), d);
    a->err1[r * a->count + i] = *e;
}

/* One warp per row; lane l owns the block's columns j ≡ l (mod 32): it
 * copies them in, updates them and, as owner of column i = j, quantizes
 * it.  A column is only ever touched by its own lane, so the only
 * exchange is the broadcast of each column's error (shuffles, which need
 * all 32 lanes: a warp leaves only as a whole, when its row is past the end). */
__global__ static void __launch_bounds__(ROWS_PER_CTA *WARP) block_kernel(block_args a) {
    int lane = (int)(threadIdx.x % WARP);
    int64_t r = (int64_t)blockIdx.x * ROWS_PER_CTA + threadIdx.x / WARP;
    if (r >= a.rows) return;
    float *w1 = a.w1 + r * a.count;
    for (int j = lane; j < a.count; j += WARP) w1[j] = a.w[r * a.cols + a.i1 + j];
    double loss = a.row_loss[r]; /* every lane sums the same terms in the CPU's order */
    sb_qparams p = {0.0f, 0.0f};
    for (int i = 0; i < a.count; i++) {
        p = params_at(&a, r, i, p, lane);
        int owner = i % WARP;
        float e = 0.0f;
        double term = 0.0;
        if (lane == owner) quantize_one(&a, r, i, p, &e, &term);
        e = __shfl_sync(FULL_WARP, e, owner);
        term = __shfl_sync(FULL_WARP, term, owner);
        loss = __dadd_rn(loss, term);
        const float *urow = a.u + (a.i1 + i) * a.cols + a.i1;
        int j = (i + 1) / WARP * WARP + lane; /* this lane's first column after i */
        if (j <= i) j += WARP;
        for (; j < a.count; j += WARP) w1[j] = __fsub_rn(w1[j], __fmul_rn(e, urow[j]));
    }
    if (lane == 0) a.row_loss[r] = loss;
}

/* W[:, i2:] -= Err1 · U[i1:i2, i2:], row-major.  Column-major that is
 * Wᵀ[i2:, :] -= U[i1:i2, i2:]ᵀ · Err1ᵀ with Wᵀ at w + i2 (ld cols), the U
 * slice at u + i1·cols + i2 (ld cols) and Err1ᵀ at err1 (ld count).
 * CUBLAS_COMPUTE_32F_PEDANTIC: plain FP32, never TF32 or an emulation,
 * whatever the handle's math mode or NVIDIA_TF32_OVERRIDE say. */
static int lazy_update(gptq_buffers *b, const sb_gptq_device_job *j, int64_t i1, int64_t i2, sb_err *err) {
    int m = (int)(j->cols - i2), n = (int)j->rows, k = (int)(i2 - i1), ld = (int)j->cols;
    float minus_one = -1.0f, one = 1.0f;
    return CUBLAS_OK(cublasGemmEx(b->c->blas, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &minus_one, b->u + i1 * j->cols + i2,
                                  CUDA_R_32F, ld, b->err1, CUDA_R_32F, k, &one, b->w + i2, CUDA_R_32F, ld,
                                  CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT),
                     err);
}

static int run_blocks(gptq_buffers *b, const sb_gptq_device_job *j, sb_err *err) {
    block_args a = {b->w, b->u, b->group_of, b->scales, b->zeros, b->w1, b->err1, b->codes, b->q, b->row_loss,
                    j->rows, j->cols, j->group_size, j->n_groups, 0, 0, (1 << j->bits) - 1, j->sym, j->dynamic_groups};
    unsigned ctas = (unsigned)((j->rows + ROWS_PER_CTA - 1) / ROWS_PER_CTA);
    int rc = SB_OK;
    for (int64_t i1 = 0; !rc && i1 < j->cols; i1 += j->block_size) {
        int64_t i2 = i1 + j->block_size < j->cols ? i1 + j->block_size : j->cols;
        a.i1 = i1;
        a.count = (int)(i2 - i1);
        block_kernel<<<ctas, ROWS_PER_CTA * WARP>>>(a);
        rc = cuda_launched("gptq block", err);
        if (!rc && i2 < j->cols) rc = lazy_update(b, j, i1, i2, err);
    }
    return rc;
}

/* ---- the job ----------------------------------------------------------- */

static int upload_inputs(gptq_buffers *b, const sb_gptq_device_job *j, sb_err *err) {
    int64_t blk = j->block_size < j->cols ? j->block_size : j->cols;
    b->w_bytes = sizeof(float) * (size_t)(j->rows * j->cols);
    b->code_bytes = (size_t)(j->rows * j->cols);
    b->blk_bytes = sizeof(float) * (size_t)(j->rows * blk);
    b->par_bytes = sizeof(float) * (size_t)(j->rows * j->n_groups);
    b->grp_bytes = sizeof(int32_t) * (size_t)j->cols;
    b->loss_bytes = sizeof(double) * (size_t)j->rows;
    int rc = cuda_upload(b->c, (void **)&b->w, j->w, b->w_bytes, "GPTQ's weights", err);
    if (!rc) rc = cuda_upload(b->c, (void **)&b->scales, j->scales, b->par_bytes, "GPTQ's scales", err);
    if (!rc) rc = cuda_upload(b->c, (void **)&b->zeros, j->zeros, b->par_bytes, "GPTQ's zeros", err);
    if (!rc) rc = cuda_upload(b->c, (void **)&b->group_of, j->group_of, b->grp_bytes, "GPTQ's group index", err);
    if (!rc) rc = cuda_alloc(b->c, (void **)&b->w1, b->blk_bytes, "GPTQ's block", err);
    if (!rc) rc = cuda_alloc(b->c, (void **)&b->err1, b->blk_bytes, "GPTQ's block errors", err);
    if (!rc) rc = cuda_alloc(b->c, (void **)&b->codes, b->code_bytes, "GPTQ's codes", err);
    if (!rc) rc = cuda_alloc(b->c, (void **)&b->q, b->w_bytes, "GPTQ's quantized weights", err);
    if (!rc) rc = cuda_alloc(b->c, (void **)&b->row_loss, b->loss_bytes, "GPTQ's row losses", err);
    if (!rc) rc = CUDA_OK(cudaMemset(b->row_loss, 0, b->loss_bytes), err);
    return rc;
}

static int download_outputs(const gptq_buffers *b, const sb_gptq_device_job *j, sb_err *err) {
    int rc = CUDA_OK(cudaMemcpy(j->codes, b->codes, b->code_bytes, cudaMemcpyDeviceToHost), err);
    if (!rc) rc = CUDA_OK(cudaMemcpy(j->q, b->q, b->w_bytes, cudaMemcpyDeviceToHost), err);
    if (!rc) rc = CUDA_OK(cudaMemcpy(j->scales, b->scales, b->par_bytes, cudaMemcpyDeviceToHost), err);
    if (!rc) rc = CUDA_OK(cudaMemcpy(j->zeros, b->zeros, b->par_bytes, cudaMemcpyDeviceToHost), err);
    if (!rc) rc = CUDA_OK(cudaMemcpy(j->row_loss, b->row_loss, b->loss_bytes, cudaMemcpyDeviceToHost), err);
    return rc;
}

/* cuBLAS and cuSOLVER take int sizes; the kernel an int block. */
static int check_job(const sb_gptq_device_job *j, sb_err *err) {
    if (j->bits < 2 || j->bits > 8) return sb_err_set(err, SB_EINPUT, "gptq on CUDA: bits %d is not in 2..8", j->bits);
    if (j->rows < 1 || j->cols < 1 || j->rows > INT_MAX || j->cols > INT_MAX || j->block_size < 1)
        return sb_err_set(err, SB_EINPUT, "gptq on CUDA: %lld x %lld weights, block size %d", (long long)j->rows,
                          (long long)j->cols, j->block_size);
    if (j->group_size < 1 || j->n_groups < 1 || j->group_size * j->n_groups != j->cols)
        return sb_err_set(err, SB_EINPUT, "gptq on CUDA: %lld groups of %lld do not make %lld columns",
                          (long long)j->n_groups, (long long)j->group_size, (long long)j->cols);
    return SB_OK;
}

extern "C" int sb_gptq_device_run(sb_cuda_ctx *c, const sb_gptq_device_job *j, sb_err *err) {
    int rc = check_job(j, err);
    if (rc) return rc;
    gptq_buffers b;
    memset(&b, 0, sizeof b);
    b.c = c;
    rc = CUDA_OK(cudaSetDevice(c->device), err);
    if (!rc) rc = prepare_u(&b, j, err);
    if (!rc) rc = upload_inputs(&b, j, err);
    if (!rc) rc = run_blocks(&b, j, err);
    if (!rc) rc = download_outputs(&b, j, err); /* synchronises: a kernel's fault surfaces here */
    free_buffers(&b);
    return rc ? sb_err_prefix(err, "gptq on cuda:%d (%lld x %lld)", c->device, (long long)j->rows, (long long)j->cols)
              : SB_OK;
}

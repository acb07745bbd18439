/* ctx.cu - one CUDA device: opening it, counting allocations, errors,
 * the measurement hook, and the two micro-benchmarks the bench reports
 * its ratios against. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_bf16.h>

#include "cuda_internal.h"

int cuda_ok(cudaError_t e, const char *file, int line, sb_err *err) {
    if (e == cudaSuccess) return SB_OK;
    cudaGetLastError(); /* clear a non-sticky error so the next run starts clean */
    int code = e == cudaErrorMemoryAllocation ? SB_EINPUT : SB_EINTERNAL;
    return sb_err_set(err, code, "CUDA error %s (%s) at %s:%d", cudaGetErrorName(e), cudaGetErrorString(e), file,
                      line);
}

int cuda_launched(const char *what, sb_err *err) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return SB_OK;
    return sb_err_set(err, SB_EINTERNAL, "CUDA kernel %s failed to launch: %s (%s)", what, cudaGetErrorName(e),
                      cudaGetErrorString(e));
}

int cublas_ok(cublasStatus_t st, const char *file, int line, sb_err *err) {
    if (st == CUBLAS_STATUS_SUCCESS) return SB_OK;
    int code = st == CUBLAS_STATUS_ALLOC_FAILED ? SB_EINPUT : SB_EINTERNAL;
    return sb_err_set(err, code, "cuBLAS error %s (%s) at %s:%d", cublasGetStatusName(st), cublasGetStatusString(st),
                      file, line);
}

/* cuSOLVER has no status-to-text function: the statuses it returns here by name. */
static const char *cusolver_status_name(cusolverStatus_t st) {
    switch (st) {
    case CUSOLVER_STATUS_NOT_INITIALIZED: return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED: return "CUSOLVER_STATUS_ALLOC_FAILED (out of device memory)";
    case CUSOLVER_STATUS_INVALID_VALUE: return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH: return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_EXECUTION_FAILED: return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR: return "CUSOLVER_STATUS_INTERNAL_ERROR";
    default: return "a cuSOLVER error";
    }
}

int cusolver_ok(cusolverStatus_t st, const char *file, int line, sb_err *err) {
    if (st == CUSOLVER_STATUS_SUCCESS) return SB_OK;
    int code = st == CUSOLVER_STATUS_ALLOC_FAILED ? SB_EINPUT : SB_EINTERNAL;
    return sb_err_set(err, code, "cuSOLVER error %s (status %d) at %s:%d", cusolver_status_name(st), (int)st, file,
                      line);
}

int cuda_alloc(sb_cuda_ctx *c, void **p, size_t bytes, const char *what, sb_err *err) {
    *p = NULL;
    if (bytes == 0) bytes = 1;
    cudaError_t e = cudaMalloc(p, bytes);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        *p = NULL;
        return sb_err_set(err, SB_EINPUT,
                          "out of device memory: %s needs %zu bytes, cuda:%d has %zu of %zu bytes free "
                          "(this backend holds %lld)",
                          what, bytes, c->device, free_b, total_b, (long long)c->alloc_bytes);
    }
    if (CUDA_OK(e, err)) return sb_err_prefix(err, "allocating %s (%zu bytes)", what, bytes);
    c->alloc_bytes += (int64_t)bytes;
    if (c->alloc_bytes > c->alloc_peak) c->alloc_peak = c->alloc_bytes;
    return SB_OK;
}

void cuda_free(sb_cuda_ctx *c, void *p, size_t bytes) {
    if (!p) return;
    cudaFree(p);
    c->alloc_bytes -= (int64_t)(bytes ? bytes : 1);
}

int cuda_upload(sb_cuda_ctx *c, void **dst, const void *src, size_t bytes, const char *what, sb_err *err) {
    int rc = cuda_alloc(c, dst, bytes, what, err);
    if (rc) return rc;
    return CUDA_OK(cudaMemcpy(*dst, src, bytes, cudaMemcpyHostToDevice), err);
}

/* ---- the measurement hook (measure.h) ---- */

static void hook_reset(void *user) {
    sb_cuda_ctx *c = (sb_cuda_ctx *)user;
    c->alloc_peak = c->alloc_bytes;
}

static int64_t hook_peak(void *user) { return ((sb_cuda_ctx *)user)->alloc_peak; }

/* ---- the device ---- */

extern "C" int sb_cuda_device_count(sb_err *err) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        sb_err_set(err, SB_EINPUT, "no CUDA device: %s (%s)", cudaGetErrorName(e), cudaGetErrorString(e));
        return 0;
    }
    if (n == 0) sb_err_set(err, SB_EINPUT, "no CUDA device: the driver reports none");
    return n;
}

static void describe(sb_cuda_ctx *c) {
    sb_cuda_info *in = &c->info;
    cudaDeviceProp prop;
    memset(in, 0, sizeof *in);
    in->device = c->device;
    if (cudaGetDeviceProperties(&prop, c->device) == cudaSuccess) {
        snprintf(in->name, sizeof in->name, "%s", prop.name);
        in->cc_major = prop.major;
        in->cc_minor = prop.minor;
        in->total_bytes = (int64_t)prop.totalGlobalMem;
        c->max_shared = (int)prop.sharedMemPerBlockOptin;
    }
    cudaDriverGetVersion(&in->driver_version);
    cudaRuntimeGetVersion(&in->runtime_version);
    cublasGetVersion(c->blas, &in->cublas_version);
    cudaGetLastError();
}

extern "C" int sb_cuda_ctx_new(int device, sb_cuda_ctx **out, sb_err *err) {
    *out = NULL;
    int n = sb_cuda_device_count(err);
    if (n == 0) return SB_EINPUT;
    if (device < 0 || device >= n)
        return sb_err_set(err, SB_EINPUT, "backend cuda:%d: this machine has %d CUDA device%s (0 to %d)", device, n,
                          n == 1 ? "" : "s", n - 1);
    sb_cuda_ctx *c = (sb_cuda_ctx *)sb_calloc(err, 1, sizeof *c);
    if (!c) return SB_EINTERNAL;
    c->device = device;
    int rc = CUDA_OK(cudaSetDevice(device), err);
    if (!rc) rc = CUBLAS_OK(cublasCreate(&c->blas), err);
    if (!rc) rc = CUDA_OK(cudaEventCreate(&c->ev_start), err);
    if (!rc) rc = CUDA_OK(cudaEventCreate(&c->ev_stop), err);
    if (rc) {
        sb_cuda_ctx_free(c);
        return sb_err_prefix(err, "opening cuda:%d", device);
    }
    describe(c);
    sb_cuda_ctx_measure(c, true);
    *out = c;
    return SB_OK;
}

extern "C" void sb_cuda_ctx_free(sb_cuda_ctx *c) {
    if (!c) return;
    sb_measure_set_device_hook(NULL);
    if (c->ev_start) cudaEventDestroy(c->ev_start);
    if (c->ev_stop) cudaEventDestroy(c->ev_stop);
    if (c->blas) cublasDestroy(c->blas);
    profile_free(c);
    free(c);
}

extern "C" void sb_cuda_ctx_measure(sb_cuda_ctx *c, bool on) {
    sb_device_mem_hook hook = {hook_reset, hook_peak, c};
    sb_measure_set_device_hook(on ? &hook : NULL);
}

extern "C" void sb_cuda_ctx_set_tf32(sb_cuda_ctx *c, bool tf32) { c->tf32 = tf32; }

extern "C" void sb_cuda_ctx_info(const sb_cuda_ctx *c, sb_cuda_info *out) { *out = c->info; }

extern "C" void sb_cuda_stats_get(sb_cuda_ctx *c, sb_cuda_stats *out) {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) cudaGetLastError();
    *out = (sb_cuda_stats){c->alloc_bytes, c->alloc_peak,   (int64_t)(total_b - free_b),
                           c->kernel_s,    c->forward_calls, c->attention_mma_calls};
}

extern "C" void sb_cuda_stats_reset(sb_cuda_ctx *c) {
    c->alloc_peak = c->alloc_bytes;
    c->kernel_s = 0;
    c->forward_calls = 0;
    c->attention_mma_calls = 0;
}

/* ---- micro-benchmarks ---- */

/* Seconds of the fastest of `reps` runs of fn(user), timed by CUDA events. */
static int best_time(sb_cuda_ctx *c, int reps, int (*fn)(sb_cuda_ctx *, void *, sb_err *), void *user, double *best,
                     sb_err *err) {
    *best = 1e30;
    for (int i = 0; i < reps + 1; i++) { /* the first run warms up and is not counted */
        int rc = CUDA_OK(cudaEventRecord(c->ev_start, 0), err);
        if (!rc) rc = fn(c, user, err);
        if (!rc) rc = CUDA_OK(cudaEventRecord(c->ev_stop, 0), err);
        if (!rc) rc = CUDA_OK(cudaEventSynchronize(c->ev_stop), err);
        float ms = 0;
        if (!rc) rc = CUDA_OK(cudaEventElapsedTime(&ms, c->ev_start, c->ev_stop), err);
        if (rc) return rc;
        if (i > 0 && ms * 1e-3 < *best) *best = ms * 1e-3;
    }
    return SB_OK;
}

typedef struct {
    int m, n, k;
    void *a, *b;
    float *y;
} gemm_job;

static int run_gemm(sb_cuda_ctx *c, void *user, sb_err *err) {
    gemm_job *j = (gemm_job *)user;
    float one = 1, zero = 0;
    return CUBLAS_OK(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, j->m, j->n, j->k, &one, j->a, CUDA_R_16BF, j->k,
                                  j->b, CUDA_R_16BF, j->k, &zero, j->y, CUDA_R_32F, j->m, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT),
                     err);
}

extern "C" int sb_cuda_bench_gemm_bf16(sb_cuda_ctx *c, int m, int n, int k, int reps, double *tflops, sb_err *err) {
    gemm_job j = {m, n, k, NULL, NULL, NULL};
    size_t a_b = (size_t)m * k * 2, b_b = (size_t)n * k * 2, y_b = (size_t)m * n * 4;
    double s = 0;
    *tflops = 0;
    int rc = cuda_alloc(c, &j.a, a_b, "GEMM benchmark A", err);
    if (!rc) rc = cuda_alloc(c, &j.b, b_b, "GEMM benchmark B", err);
    if (!rc) rc = cuda_alloc(c, (void **)&j.y, y_b, "GEMM benchmark C", err);
    /* zeros are as fast as any values for the tensor cores, and need no generator */
    if (!rc) rc = CUDA_OK(cudaMemset(j.a, 0, a_b), err);
    if (!rc) rc = CUDA_OK(cudaMemset(j.b, 0, b_b), err);
    if (!rc) rc = best_time(c, reps, run_gemm, &j, &s, err);
    if (!rc) *tflops = 2.0 * m * n * k / s / 1e12;
    cuda_free(c, j.a, a_b);
    cuda_free(c, j.b, b_b);
    cuda_free(c, j.y, y_b);
    return rc;
}

typedef struct {
    void *src, *dst;
    size_t bytes;
} copy_job;

static int run_copy(sb_cuda_ctx *c, void *user, sb_err *err) {
    (void)c;
    copy_job *j = (copy_job *)user;
    return CUDA_OK(cudaMemcpyAsync(j->dst, j->src, j->bytes, cudaMemcpyDeviceToDevice, 0), err);
}

extern "C" int sb_cuda_bench_copy(sb_cuda_ctx *c, int64_t bytes, int reps, double *bytes_per_s, sb_err *err) {
    copy_job j = {NULL, NULL, (size_t)bytes};
    double s = 0;
    *bytes_per_s = 0;
    int rc = cuda_alloc(c, &j.src, j.bytes, "copy benchmark source", err);
    if (!rc) rc = cuda_alloc(c, &j.dst, j.bytes, "copy benchmark destination", err);
    if (!rc) rc = CUDA_OK(cudaMemset(j.src, 0, j.bytes), err);
    if (!rc) rc = best_time(c, reps, run_copy, &j, &s, err);
    if (!rc) *bytes_per_s = 2.0 * (double)bytes / s;
    cuda_free(c, j.src, j.bytes);
    cuda_free(c, j.dst, j.bytes);
    return rc;
}

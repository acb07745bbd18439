#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "vec.h"
#include "weight_format.h"

/* Rows decoded per CBLAS call when many tokens share the product: large
 * enough for GEMM to run near peak, small enough to stay in L2/L3. */
enum { GEMM_TILE_ROWS = 256 };
/* Rows each thread decodes at a time on the few-token path. */
enum { DOT_CHUNK_ROWS = 64 };
/* Up to this many tokens the few-token path is used. */
enum { FEW_TOKENS = 4 };

/* One tile per thread (DOT_CHUNK_ROWS <= GEMM_TILE_ROWS). */
int64_t sb_matmul_scratch_floats(int64_t max_cols, int n_threads) { return (int64_t)n_threads * GEMM_TILE_ROWS * max_cols; }

bool sb_linear_present(const sb_linear *w) { return w->fmt != NULL; }

void sb_linear_forward(const sb_linear *w, const float *x, int64_t n_tok, float *y, sb_matmul_ctx *ctx) {
    w->fmt->matmul(w, x, n_tok, y, ctx);
    if (!w->bias) return;
    for (int64_t t = 0; t < n_tok; t++) {
        float *row = y + t * w->rows;
        for (int64_t r = 0; r < w->rows; r++) row[r] += w->bias[r];
    }
}

int sb_linear_replace(sb_linear *lin, sb_linear *built, sb_err *err) {
    if (lin->bias) {
        built->bias = sb_malloc(err, sizeof(float) * (size_t)lin->rows);
        if (!built->bias) {
            sb_linear_free(built);
            return SB_EINTERNAL;
        }
        memcpy(built->bias, lin->bias, sizeof(float) * (size_t)lin->rows);
    }
    *lin = *built;
    return SB_OK;
}

void sb_linear_free(sb_linear *w) {
    if (w->free_owned) w->free_owned(w->owned);
    else free(w->owned);
    free(w->bias);
    memset(w, 0, sizeof *w);
}

uint64_t sb_linear_storage_bits(const sb_linear *w) {
    if (!w->fmt) return 0;
    return w->fmt->storage_bits(w) + (w->bias ? 32u * (uint64_t)w->rows : 0);
}

typedef struct {
    const sb_linear *w;
    const float *x;
    int64_t n_tok;
    float *y;
    sb_matmul_ctx *ctx;
    int64_t rows_per_task;
} matmul_job;

static int64_t task_rows(const matmul_job *j, int task, int64_t *row0) {
    *row0 = (int64_t)task * j->rows_per_task;
    int64_t n = j->w->rows - *row0;
    return n < j->rows_per_task ? n : j->rows_per_task;
}

/* Few tokens: decode a chunk of rows and take dot products. */
static void dot_chunk(void *arg, int task, int worker) {
    matmul_job *j = arg;
    const sb_linear *w = j->w;
    int64_t row0, n = task_rows(j, task, &row0);
    float *rows = j->ctx->scratch + (int64_t)worker * GEMM_TILE_ROWS * w->cols;
    w->fmt->decode_rows(w, row0, n, rows);
    for (int64_t t = 0; t < j->n_tok; t++) {
        const float *xt = j->x + t * w->cols;
        for (int64_t r = 0; r < n; r++) j->y[t * w->rows + row0 + r] = sb_vec_dot(rows + r * w->cols, xt, w->cols);
    }
}

/* Many tokens: decode a tile of rows and multiply it with CBLAS:
 * y[:, row0:row0+n] = x · tileᵀ, written with the full row stride of y. */
static void gemm_tile(void *arg, int task, int worker) {
    matmul_job *j = arg;
    const sb_linear *w = j->w;
    int64_t row0, n = task_rows(j, task, &row0);
    float *tile = j->ctx->scratch + (int64_t)worker * GEMM_TILE_ROWS * w->cols;
    w->fmt->decode_rows(w, row0, n, tile);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->n_tok, (int)n, (int)w->cols, 1.0f, j->x,
                (int)w->cols, tile, (int)w->cols, 0.0f, j->y + row0, (int)w->rows);
}

static int task_count(const matmul_job *j) { return (int)((j->w->rows + j->rows_per_task - 1) / j->rows_per_task); }

void sb_matmul_by_decoding(const sb_linear *w, const float *x, int64_t n_tok, float *y, sb_matmul_ctx *ctx) {
    matmul_job j = {w, x, n_tok, y, ctx, n_tok <= FEW_TOKENS ? DOT_CHUNK_ROWS : GEMM_TILE_ROWS};
    sb_pool_run(ctx->pool, n_tok <= FEW_TOKENS ? dot_chunk : gemm_tile, &j, task_count(&j));
}

/* f32 weights need no decoding: each task multiplies an equal slice of
 * rows straight from the weight (GEMV for a single token). */
static void f32_slice(void *arg, int task, int worker) {
    (void)worker;
    matmul_job *j = arg;
    const sb_linear *w = j->w;
    int64_t row0, n = task_rows(j, task, &row0);
    if (n <= 0) return;
    const float *W = (const float *)w->data + row0 * w->cols;
    if (j->n_tok == 1)
        sb_vec_matvec(W, n, w->cols, j->x, j->y + row0);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->n_tok, (int)n, (int)w->cols, 1.0f, j->x,
                    (int)w->cols, W, (int)w->cols, 0.0f, j->y + row0, (int)w->rows);
}

void sb_matmul_f32_slices(const sb_linear *w, const float *x, int64_t n_tok, float *y, sb_matmul_ctx *ctx) {
    /* A GEMM gets one equal slice per thread (bigger products run faster);
     * a matrix-vector product, bound by memory, gets several per thread so
     * a thread that started late does not hold up the rest. Slices are
     * rounded up to 16 rows to stay SIMD-friendly. */
    int slices = sb_pool_threads(ctx->pool) * (n_tok == 1 ? 4 : 1);
    int64_t per = (w->rows + slices - 1) / slices;
    per = (per + 15) / 16 * 16;
    matmul_job j = {w, x, n_tok, y, ctx, per};
    sb_pool_run(ctx->pool, f32_slice, &j, task_count(&j));
}

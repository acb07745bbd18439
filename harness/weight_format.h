/* weight_format.h - a linear layer whose weight is stored in some format.
 *
 * y = x·Wᵀ + b with W of shape [rows = out features, cols = in features].
 * How W is stored is the business of its sb_format, a small table of
 * functions in the manner of ggml's type traits: decode rows to f32, the
 * matrix product, and the exact number of storage bits.  The forward pass
 * only ever calls through the table, so a method that produces a 3-bit
 * format gets a 3-bit product and 3-bit memory figures without the engine
 * knowing which method made the weight. */
#ifndef SB_WEIGHT_FORMAT_H
#define SB_WEIGHT_FORMAT_H

#include <stdbool.h>
#include <stdint.h>

#include "thread_pool.h"

typedef struct sb_linear sb_linear;

/* Scratch that matrix products may use; owned by the caller's session so
 * the per-token loop never allocates. */
typedef struct sb_matmul_ctx {
    sb_pool *pool;
    float *scratch;          /* at least sb_matmul_scratch_floats(max_cols, threads) */
    int64_t scratch_floats;
} sb_matmul_ctx;

typedef struct sb_format {
    const char *name;
    /* Rows [row0, row0 + n_rows) of W as f32, row-major, into dst. */
    void (*decode_rows)(const sb_linear *w, int64_t row0, int64_t n_rows, float *dst);
    /* y[n_tok, rows] = x[n_tok, cols]·Wᵀ, without the bias. */
    void (*matmul)(const sb_linear *w, const float *x, int64_t n_tok, float *y, sb_matmul_ctx *ctx);
    /* Exact bits the stored weight occupies (payload and any scales, zeros, masks). */
    uint64_t (*storage_bits)(const sb_linear *w);
} sb_format;

struct sb_linear {
    const sb_format *fmt;    /* NULL: the layer is absent */
    int64_t rows, cols;
    const void *data;        /* the format's payload; may point into a mapped file */
    void *owned;             /* what to free(), if the payload was allocated */
    float *bias;             /* [rows] or NULL; always owned */
    /* How to free `owned` when it holds further allocations (a low-rank
     * add-on owns its factors and the linear it wraps); NULL: free(). */
    void (*free_owned)(void *owned);
};

extern const sb_format sb_format_f32;
extern const sb_format sb_format_f16;
extern const sb_format sb_format_bf16;

/* y = x·Wᵀ + b. */
void sb_linear_forward(const sb_linear *w, const float *x, int64_t n_tok, float *y, sb_matmul_ctx *ctx);
void sb_linear_free(sb_linear *w);
/* What every compression method does last: *lin becomes `built` (a linear
 * it just packed, without a bias) with a copy of lin's bias.  The old
 * payload and bias belong to the model's snapshot and are never freed here.
 * On failure `built` is freed and *lin is unchanged. */
int sb_linear_replace(sb_linear *lin, sb_linear *built, sb_err *err);
bool sb_linear_present(const sb_linear *w);
uint64_t sb_linear_storage_bits(const sb_linear *w); /* weight and bias */

/* Scratch a session must provide for products with up to max_cols inputs. */
int64_t sb_matmul_scratch_floats(int64_t max_cols, int n_threads);

/* Products for formats that can only decode rows: decode tiles of rows to
 * f32 and hand them to CBLAS (many tokens), or decode small row chunks per
 * thread and take dot products (few tokens, where memory bandwidth rules). */
void sb_matmul_by_decoding(const sb_linear *w, const float *x, int64_t n_tok, float *y, sb_matmul_ctx *ctx);
/* The f32 product: slices of rows multiplied in parallel, straight from W. */
void sb_matmul_f32_slices(const sb_linear *w, const float *x, int64_t n_tok, float *y, sb_matmul_ctx *ctx);

#endif

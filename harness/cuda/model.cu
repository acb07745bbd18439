/* model.cu - a model's weights on the device, and the linear product.
 *
 * Upload happens once per model state (the runner uploads again only after
 * a method changed the model). Dense 16-bit weights keep their 2 bytes and
 * multiply as 16-bit cuBLAS inputs with f32 accumulation; qint, csr and n:m
 * payloads are copied byte for byte and read by kernels.cu; a low-rank
 * add-on is its inner weight plus f32 factors; any other format is decoded
 * to f32 rows on the host, a tile of rows at a time, and uploaded as f32
 * (correct for every format; its memory is that of f32, so the count of
 * such linears is reported). */
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

enum { DECODE_TILE_BYTES = 64 << 20 };   /* host staging when decoding a foreign format */

/* ---- upload ---- */

static int upload_floats(sb_cuda_model *dm, float **dst, const float *src, int64_t n, const char *what, sb_err *err) {
    *dst = NULL;
    if (!src) return SB_OK;
    int rc = cuda_upload(dm->ctx, (void **)dst, src, sizeof(float) * (size_t)n, what, err);
    if (!rc) dm->bytes += (int64_t)sizeof(float) * n;
    return rc;
}

static int upload_norm(sb_cuda_model *dm, dev_norm *dn, const sb_norm *n, int64_t width, sb_err *err) {
    dn->n = width;
    dn->mean_width = n->mean_width;
    int rc = upload_floats(dm, &dn->weight, n->weight, width, "a norm's weights", err);
    if (!rc) rc = upload_floats(dm, &dn->bias, n->bias, width, "a norm's bias", err);
    return rc;
}

/* Rows decoded on the host by the format's own decode_rows, then copied up as f32. */
static int upload_decoded(sb_cuda_model *dm, dev_linear *d, const sb_linear *w, sb_err *err) {
    d->kind = DW_F32;
    d->w_bytes = sizeof(float) * (size_t)(w->rows * w->cols);
    int rc = cuda_alloc(dm->ctx, &d->w, d->w_bytes, "a decoded weight", err);
    int64_t tile_rows = DECODE_TILE_BYTES / (int64_t)(sizeof(float) * (size_t)w->cols);
    if (tile_rows < 1) tile_rows = 1;
    if (tile_rows > w->rows) tile_rows = w->rows;
    float *host = rc ? NULL : (float *)sb_malloc(err, sizeof(float) * (size_t)(tile_rows * w->cols));
    if (!rc && !host) rc = SB_EINTERNAL;
    for (int64_t r0 = 0; !rc && r0 < w->rows; r0 += tile_rows) {
        int64_t n = w->rows - r0 < tile_rows ? w->rows - r0 : tile_rows;
        w->fmt->decode_rows(w, r0, n, host);
        rc = CUDA_OK(cudaMemcpy((float *)d->w + r0 * w->cols, host, sizeof(float) * (size_t)(n * w->cols),
                                cudaMemcpyHostToDevice),
                     err);
    }
    free(host);
    dm->decoded_linears++;
    return rc;
}

static int upload_linear(sb_cuda_model *dm, dev_linear *d, const sb_linear *w, sb_err *err);

/* W_c + B·A: W_c uploaded in its own form, the factors as f32. */
static int upload_lowrank(sb_cuda_model *dm, dev_linear *d, const sb_linear *w, sb_err *err) {
    d->kind = DW_LOWRANK;
    d->rank = sb_lowrank_rank(w);
    if (d->rank > dm->max_rank) dm->max_rank = d->rank;
    d->inner = (dev_linear *)sb_calloc(err, 1, sizeof *d->inner);
    if (!d->inner) return SB_EINTERNAL;
    int rc = upload_linear(dm, d->inner, sb_lowrank_inner(w), err);
    if (!rc) rc = upload_floats(dm, &d->B, sb_lowrank_b(w), w->rows * d->rank, "low-rank factor B", err);
    if (!rc) rc = upload_floats(dm, &d->A, sb_lowrank_a(w), d->rank * w->cols, "low-rank factor A", err);
    return rc;
}

static int upload_linear(sb_cuda_model *dm, dev_linear *d, const sb_linear *w, sb_err *err) {
    memset(d, 0, sizeof *d);
    if (!sb_linear_present(w)) return SB_OK;
    d->rows = w->rows;
    d->cols = w->cols;
    int rc;
    size_t n = (size_t)(w->rows * w->cols);
    if (w->fmt == &sb_format_f32 || w->fmt == &sb_format_f16 || w->fmt == &sb_format_bf16) {
        d->kind = w->fmt == &sb_format_f32 ? DW_F32 : w->fmt == &sb_format_f16 ? DW_F16 : DW_BF16;
        d->w_bytes = n * (d->kind == DW_F32 ? 4 : 2);
        rc = cuda_upload(dm->ctx, &d->w, w->data, d->w_bytes, "a weight", err);
    } else if (sb_lowrank_inner(w)) {
        rc = upload_lowrank(dm, d, w, err);
    } else if (sb_qint_layout_of(w, &d->q)) {
        d->kind = DW_QINT;
        d->w_bytes = d->q.total_bytes;
        rc = cuda_upload(dm->ctx, &d->w, w->data, d->w_bytes, "a qint weight", err);
        if ((int64_t)n > dm->max_tile_elems) dm->max_tile_elems = (int64_t)n;
    } else if (sb_sparse_layout_of(w, &d->sp)) {
        d->kind = DW_SPARSE;
        d->w_bytes = d->sp.total_bytes;
        rc = cuda_upload(dm->ctx, &d->w, w->data, d->w_bytes, "a sparse weight", err);
        if ((int64_t)n > dm->max_tile_elems) dm->max_tile_elems = (int64_t)n;
    } else {
        rc = upload_decoded(dm, d, w, err);
    }
    if (!rc) dm->bytes += (int64_t)d->w_bytes;
    if (!rc) rc = upload_floats(dm, &d->bias, w->bias, w->rows, "a bias", err);
    return rc;
}

static void free_linear(sb_cuda_ctx *c, dev_linear *d) {
    if (!d->shares_w) cuda_free(c, d->w, d->w_bytes);
    cuda_free(c, d->bias, sizeof(float) * (size_t)d->rows);
    if (d->inner) free_linear(c, d->inner);
    free(d->inner);
    cuda_free(c, d->A, sizeof(float) * (size_t)(d->rank * d->cols));
    cuda_free(c, d->B, sizeof(float) * (size_t)(d->rows * d->rank));
}

static void free_norm(sb_cuda_ctx *c, dev_norm *n) {
    cuda_free(c, n->weight, sizeof(float) * (size_t)n->n);
    cuda_free(c, n->bias, sizeof(float) * (size_t)n->n);
}

static int upload_block(sb_cuda_model *dm, dev_block *db, const sb_block *b, sb_err *err) {
    const sb_model *m = dm->m;
    /* the stream's widths around this block (all d_model unless sliced) */
    int64_t d_in = sb_block_width_in(b), d_mid = sb_block_width_mid(b), d_down = b->w_down.rows;
    int rc = upload_norm(dm, &db->attn_norm, &b->attn_norm, d_in, err);
    if (!rc) rc = upload_norm(dm, &db->mlp_norm, &b->mlp_norm, d_mid, err);
    if (!rc) rc = upload_norm(dm, &db->post_attn_norm, &b->post_attn_norm, d_mid, err);
    if (!rc) rc = upload_norm(dm, &db->post_mlp_norm, &b->post_mlp_norm, d_down, err);
    if (!rc) rc = upload_norm(dm, &db->q_norm, &b->q_norm, b->head_dim, err);
    if (!rc) rc = upload_norm(dm, &db->k_norm, &b->k_norm, b->head_dim, err);
    const sb_linear *src[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down,
                              &b->attn_shortcut, &b->mlp_shortcut};
    dev_linear *dst[] = {&db->wq, &db->wk, &db->wv, &db->wo, &db->w_gate, &db->w_up, &db->w_down,
                         &db->attn_shortcut, &db->mlp_shortcut};
    for (int i = 0; !rc && i < 9; i++) rc = upload_linear(dm, dst[i], src[i], err);
    if (!rc && m->positions != SB_POS_LEARNED && !b->rope_inv_freq)
        rc = sb_err_set(err, SB_EINTERNAL, "a rotary block without its frequency table");
    if (!rc && m->positions != SB_POS_LEARNED)
        rc = upload_floats(dm, &db->rope_inv_freq, b->rope_inv_freq, m->rot_dim / 2, "rotary frequencies", err);
    return rc;
}

static void free_block(sb_cuda_ctx *c, const sb_model *m, dev_block *db) {
    dev_norm *norms[] = {&db->attn_norm, &db->mlp_norm, &db->post_attn_norm, &db->post_mlp_norm, &db->q_norm, &db->k_norm};
    for (int i = 0; i < 6; i++) free_norm(c, norms[i]);
    dev_linear *lin[] = {&db->wq, &db->wk, &db->wv, &db->wo, &db->w_gate, &db->w_up, &db->w_down,
                         &db->attn_shortcut, &db->mlp_shortcut};
    for (int i = 0; i < 9; i++) free_linear(c, lin[i]);
    cuda_free(c, db->rope_inv_freq, sizeof(float) * (size_t)(m->rot_dim / 2));
}

/* The embedding table must be a dense dtype the lookup kernel reads; a
 * foreign format is decoded to f32 by upload_linear. */
static int upload_embeddings(sb_cuda_model *dm, sb_err *err) {
    const sb_model *m = dm->m;
    int64_t bytes_before = dm->bytes;
    int rc = upload_linear(dm, &dm->tok_embd, &m->tok_embd, err);
    bool dense = dm->tok_embd.kind == DW_F32 || dm->tok_embd.kind == DW_F16 || dm->tok_embd.kind == DW_BF16;
    if (!rc && !dense) { /* the lookup reads dense rows: decode this table instead */
        free_linear(dm->ctx, &dm->tok_embd);
        dm->bytes = bytes_before;
        memset(&dm->tok_embd, 0, sizeof dm->tok_embd);
        dm->tok_embd.rows = m->tok_embd.rows;
        dm->tok_embd.cols = m->tok_embd.cols;
        rc = upload_decoded(dm, &dm->tok_embd, &m->tok_embd, err);
        if (!rc) dm->bytes += (int64_t)dm->tok_embd.w_bytes;
    }
    if (!rc && m->pos_embd)
        rc = upload_floats(dm, &dm->pos_embd, m->pos_embd, (int64_t)m->n_pos_rows * sb_model_embed_width(m),
                           "learned positions", err);
    if (rc) return rc;
    bool tied = m->head.data == m->tok_embd.data && m->head.fmt == m->tok_embd.fmt;
    if (!tied) return upload_linear(dm, &dm->head, &m->head, err);
    dm->head = dm->tok_embd; /* one copy of the shared table */
    dm->head.shares_w = true;
    dm->head.bias = NULL;
    return upload_floats(dm, &dm->head.bias, m->head.bias, m->head.rows, "the head's bias", err);
}

extern "C" void sb_cuda_model_free(sb_cuda_model *dm) {
    if (!dm) return;
    sb_cuda_ctx *c = dm->ctx;
    const sb_model *m = dm->m;
    for (int l = 0; dm->blocks && l < m->n_layer; l++) free_block(c, m, &dm->blocks[l]);
    free(dm->blocks);
    free_linear(c, &dm->head);
    free_linear(c, &dm->tok_embd);
    cuda_free(c, dm->pos_embd, sizeof(float) * (size_t)m->n_pos_rows * (size_t)sb_model_embed_width(m));
    free_norm(c, &dm->final_norm);
    free(dm);
}

extern "C" int sb_cuda_model_upload(sb_cuda_ctx *c, const sb_model *m, sb_cuda_model **out, sb_err *err) {
    *out = NULL;
    if (m->vision || !m->tok_embd.fmt)
        return sb_err_set(err, SB_EINPUT, "%s: image models run on the CPU backend only (no CUDA patch embedding yet)",
                          m->path ? m->path : "the model");
    if (m->reducer)
        return sb_err_set(err, SB_EINPUT, "token reduction runs on the CPU backend only (not yet on CUDA)");
    sb_cuda_model *dm = (sb_cuda_model *)sb_calloc(err, 1, sizeof *dm);
    if (!dm) return SB_EINTERNAL;
    dm->ctx = c;
    dm->m = m;
    int rc = CUDA_OK(cudaSetDevice(c->device), err);
    dm->blocks = rc ? NULL : (dev_block *)sb_calloc(err, (size_t)m->n_layer, sizeof *dm->blocks);
    if (!rc && !dm->blocks) rc = SB_EINTERNAL;
    if (!rc) rc = upload_embeddings(dm, err);
    for (int l = 0; !rc && l < m->n_layer; l++) rc = upload_block(dm, &dm->blocks[l], &m->blocks[l], err);
    if (!rc) rc = upload_norm(dm, &dm->final_norm, &m->final_norm, m->head.cols, err);
    if (rc) {
        sb_cuda_model_free(dm);
        return sb_err_prefix(err, "uploading %s to cuda:%d", m->path ? m->path : "the model", c->device);
    }
    *out = dm;
    return SB_OK;
}

extern "C" int64_t sb_cuda_model_bytes(const sb_cuda_model *dm) { return dm->bytes; }
extern "C" int sb_cuda_model_decoded_linears(const sb_cuda_model *dm) { return dm->decoded_linears; }

/* ---- the product ----
 * Row-major y[R, rows] = x[R, cols]·Wᵀ is, in cuBLAS's column-major terms,
 * Y'(rows x R) = W'ᵀ · X' with W' = W seen as cols x rows (ld cols) and
 * X' = x seen as cols x R (ld cols): op(A) = T, op(B) = N. */

static int gemm_beta(sb_cuda_ctx *c, const void *W, cudaDataType wt, const void *X, int64_t rows, int64_t cols,
                     int64_t R, float *Y, int64_t ldy, float beta, sb_err *err) {
    if (rows > INT32_MAX || cols > INT32_MAX || R > INT32_MAX)
        return sb_err_set(err, SB_EINPUT, "a %lld x %lld x %lld product is past cuBLAS's 32-bit sizes", (long long)R,
                          (long long)rows, (long long)cols);
    float one = 1;
    cublasComputeType_t ct = wt == CUDA_R_32F && c->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    return CUBLAS_OK(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, (int)R, (int)cols, &one, W, wt,
                                  (int)cols, X, wt, (int)cols, &beta, Y, CUDA_R_32F, (int)ldy, ct, CUBLAS_GEMM_DEFAULT),
                     err);
}

static int gemm(sb_cuda_ctx *c, const void *W, cudaDataType wt, const void *X, int64_t rows, int64_t cols, int64_t R,
                float *Y, int64_t ldy, sb_err *err) {
    return gemm_beta(c, W, wt, X, rows, cols, R, Y, ldy, 0.0f, err);
}

/* y = x·W_cᵀ, then t = x·Aᵀ [R, rank] and y += t·Bᵀ: W_c + B·A is never formed. */
static int lowrank_forward(sb_cuda_ctx *c, const dev_linear *w, const float *x, int64_t R, float *y, bool same_input,
                           gemm_scratch *s, sb_err *err) {
    int rc = dev_linear_forward(c, w->inner, x, R, y, same_input, s, err);
    if (!rc) rc = gemm(c, w->A, CUDA_R_32F, x, w->rank, w->cols, R, s->lowrank_t, w->rank, err);
    if (!rc) rc = gemm_beta(c, w->B, CUDA_R_32F, s->lowrank_t, w->rows, w->rank, R, y, w->rows, 1.0f, err);
    return rc;
}

/* Many rows: decode tiles of W's rows to f32 (qint or sparse) and multiply each (columns r0.. of y). */
static int by_tiles(sb_cuda_ctx *c, const dev_linear *w, const float *x, int64_t R, float *y, gemm_scratch *s,
                    sb_err *err) {
    int64_t tile_rows = s->tile_elems / w->cols;
    if (tile_rows < 1) return sb_err_set(err, SB_EINTERNAL, "qint decode tile smaller than one row");
    if (tile_rows > w->rows) tile_rows = w->rows;
    int rc = SB_OK;
    for (int64_t r0 = 0; !rc && r0 < w->rows; r0 += tile_rows) {
        int64_t n = w->rows - r0 < tile_rows ? w->rows - r0 : tile_rows;
        rc = w->kind == DW_QINT ? k_qint_decode(w, r0, n, s->tile, err) : k_sparse_decode(w, r0, n, s->tile, err);
        if (!rc) rc = gemm(c, s->tile, CUDA_R_32F, x, n, w->cols, R, y + r0, w->rows, err);
    }
    return rc;
}

/* x in 16 bits in scratch->half_x: converted now, or still there from the last product on the same input. */
static int half_input(const float *x, int64_t n, bool bf16, bool same_input, gemm_scratch *s, sb_err *err) {
    if (same_input && s->half_of == x && s->half_n == n && s->half_bf16 == bf16) return SB_OK;
    s->half_of = NULL;
    int rc = k_to_half(x, s->half_x, n, bf16, err);
    if (rc) return rc;
    s->half_of = x;
    s->half_n = n;
    s->half_bf16 = bf16;
    return SB_OK;
}

bool dev_linear_is_dense(const dev_linear *w) { return w->kind == DW_F32 || w->kind == DW_F16 || w->kind == DW_BF16; }

/* y = x·Wᵀ + beta·y for a dense weight: f32 as it is, 16-bit weights on x's 16-bit copy. */
static int dense_product(sb_cuda_ctx *c, const dev_linear *w, const float *x, int64_t R, float *y, bool same_input,
                         float beta, gemm_scratch *scratch, sb_err *err) {
    if (w->kind == DW_F32) return gemm_beta(c, w->w, CUDA_R_32F, x, w->rows, w->cols, R, y, w->rows, beta, err);
    bool bf16 = w->kind == DW_BF16;
    int rc = half_input(x, R * w->cols, bf16, same_input, scratch, err);
    return rc ? rc
              : gemm_beta(c, w->w, bf16 ? CUDA_R_16BF : CUDA_R_16F, scratch->half_x, w->rows, w->cols, R, y, w->rows,
                          beta, err);
}

/* The residual add folded into cuBLAS's epilogue (beta = 1): one pass over y
 * instead of a product into scratch and an add kernel reading it back. */
int dev_linear_accumulate(sb_cuda_ctx *c, const dev_linear *w, const float *x, int64_t R, float *y, bool same_input,
                          gemm_scratch *scratch, sb_err *err) {
    if (!dev_linear_is_dense(w)) return sb_err_set(err, SB_EINTERNAL, "accumulating product on a packed weight");
    if (!same_input) scratch->half_of = NULL;
    int rc = dense_product(c, w, x, R, y, same_input, 1.0f, scratch, err);
    if (!rc && w->bias) rc = k_add_bias(y, w->bias, R, w->rows, err);
    return rc;
}

int dev_linear_forward(sb_cuda_ctx *c, const dev_linear *w, const float *x, int64_t R, float *y, bool same_input,
                       gemm_scratch *scratch, sb_err *err) {
    int rc;
    /* a chain of products on one input starts with same_input false: whatever
     * half_x held belongs to another input (or an older state of this one) */
    if (!same_input) scratch->half_of = NULL;
    switch (w->kind) {
    case DW_F32:
    case DW_F16:
    case DW_BF16:
        rc = dense_product(c, w, x, R, y, same_input, 0.0f, scratch, err);
        break;
    case DW_LOWRANK:
        rc = lowrank_forward(c, w, x, R, y, same_input, scratch, err);
        break;
    case DW_QINT:
        rc = R <= QINT_GEMV_MAX_ROWS ? k_qint_gemv(w, x, (int)R, y, err) : by_tiles(c, w, x, R, y, scratch, err);
        break;
    case DW_SPARSE:
        rc = R <= QINT_GEMV_MAX_ROWS ? k_sparse_gemv(w, x, (int)R, y, err) : by_tiles(c, w, x, R, y, scratch, err);
        break;
    default:
        rc = sb_err_set(err, SB_EINTERNAL, "device weight of unknown kind %d", (int)w->kind);
    }
    if (!rc && w->bias) rc = k_add_bias(y, w->bias, R, w->rows, err);
    return rc;
}

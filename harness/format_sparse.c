/* format_sparse.c - the "csr" and "n:m" weight formats (layouts in
 * format_sparse.h). */
#include <stdlib.h>
#include <string.h>

#include "format_sparse.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define SB_SPARSE_AVX2 1
#endif

enum { HEADER_BYTES = 64, ALIGN = 64 };
/* Up to this many tokens the fused kernels run (as in sb_matmul_by_decoding). */
enum { FEW_TOKENS = 4 };

typedef enum { KIND_CSR = 1, KIND_NM = 2 } sparse_kind;

/* The fixed header at offset 0 of both payloads. */
typedef struct sparse_header {
    int32_t kind;             /* sparse_kind: tells a csr payload from an n:m one */
    int32_t index_bytes;      /* csr: 2 or 4 */
    int32_t n, m, pos_bits;   /* n:m */
    int32_t unused;
    uint64_t stored;          /* values stored: nnz (csr), rows * cols / m * n (n:m) */
    uint64_t row_ptr_off;     /* csr */
    uint64_t values_off;      /* both */
    uint64_t index_off;       /* csr: column indices; n:m: packed positions */
    uint64_t pos_row_bytes;   /* n:m */
} sparse_header;

_Static_assert(sizeof(sparse_header) <= HEADER_BYTES, "the sparse header must fit its 64 bytes");

static const sparse_header *header_of(const sb_linear *w) { return (const sparse_header *)w->data; }
static const uint8_t *payload(const sb_linear *w) { return (const uint8_t *)w->data; }

static uint64_t round_up(uint64_t x, uint64_t to) { return (x + to - 1) / to * to; }

/* One zeroed allocation of HEADER_BYTES + body bytes, rounded up to ALIGN
 * as aligned_alloc requires. */
static uint8_t *alloc_payload(uint64_t body, sb_err *err) {
    uint64_t total = round_up(HEADER_BYTES + body, ALIGN);
    uint8_t *p = aligned_alloc(ALIGN, (size_t)total);
    if (!p) {
        sb_err_set(err, SB_EINTERNAL, "out of memory (%llu bytes for a sparse weight)", (unsigned long long)total);
        return NULL;
    }
    memset(p, 0, (size_t)total);
    return p;
}

/* ---- parallel row chunks, shared by both fused products ------------------ */

typedef struct row_job {
    const sb_linear *w;
    const float *x;   /* [n_tok, cols] */
    int64_t n_tok;
    float *y;         /* [n_tok, rows] */
    int64_t rows_per_task;
    /* y[t * rows + r] for r in [row0, row0 + n_rows), every token t */
    void (*rows_fn)(const struct row_job *j, int64_t row0, int64_t n_rows);
} row_job;

static void run_row_task(void *arg, int task, int worker) {
    (void)worker;
    const row_job *j = arg;
    int64_t row0 = (int64_t)task * j->rows_per_task;
    int64_t n = j->w->rows - row0 < j->rows_per_task ? j->w->rows - row0 : j->rows_per_task;
    if (n > 0) j->rows_fn(j, row0, n);
}

/* Memory-bound like a dense matrix-vector product: several slices per
 * thread so a thread that started late does not hold up the rest. */
static void run_rows(row_job *j, sb_matmul_ctx *ctx) {
    int slices = sb_pool_threads(ctx->pool) * 4;
    int64_t per = (j->w->rows + slices - 1) / slices;
    j->rows_per_task = per < 16 ? 16 : per;
    int tasks = (int)((j->w->rows + j->rows_per_task - 1) / j->rows_per_task);
    sb_pool_run(ctx->pool, run_row_task, j, tasks);
}

/* ---- csr ------------------------------------------------------------------ */

static const uint32_t *csr_row_ptr(const sb_linear *w) { return (const uint32_t *)(payload(w) + header_of(w)->row_ptr_off); }
static const float *csr_values(const sb_linear *w) { return (const float *)(payload(w) + header_of(w)->values_off); }
static const void *csr_index(const sb_linear *w) { return payload(w) + header_of(w)->index_off; }

static uint64_t csr_column(const sb_linear *w, uint64_t k) {
    const void *idx = csr_index(w);
    return header_of(w)->index_bytes == 2 ? ((const uint16_t *)idx)[k] : ((const uint32_t *)idx)[k];
}

int sb_sparse_pack_csr(int64_t rows, int64_t cols, const float *dense, sb_linear *out, sb_err *err) {
    if (rows <= 0 || cols <= 0 || cols > UINT32_MAX)
        return sb_err_set(err, SB_EINPUT, "csr: bad shape %lld x %lld", (long long)rows, (long long)cols);
    uint64_t nnz = 0;
    for (int64_t i = 0; i < rows * cols; i++) nnz += dense[i] != 0;
    if (nnz > UINT32_MAX) return sb_err_set(err, SB_EINPUT, "csr: %llu non-zeros exceed 2^32 - 1", (unsigned long long)nnz);
    int index_bytes = cols <= 65536 ? 2 : 4;
    sparse_header h = {.kind = KIND_CSR, .index_bytes = index_bytes, .stored = nnz};
    h.row_ptr_off = HEADER_BYTES;
    h.values_off = h.row_ptr_off + 4 * ((uint64_t)rows + 1);
    h.index_off = h.values_off + 4 * nnz;
    uint8_t *p = alloc_payload(h.index_off + (uint64_t)index_bytes * nnz - HEADER_BYTES, err);
    if (!p) return SB_EINTERNAL;
    memcpy(p, &h, sizeof h);
    uint32_t *row_ptr = (uint32_t *)(p + h.row_ptr_off);
    float *values = (float *)(p + h.values_off);
    uint64_t k = 0;
    for (int64_t r = 0; r < rows; r++) {
        row_ptr[r] = (uint32_t)k;
        for (int64_t c = 0; c < cols; c++) {
            float v = dense[r * cols + c];
            if (v == 0) continue;
            values[k] = v;
            if (index_bytes == 2) ((uint16_t *)(p + h.index_off))[k] = (uint16_t)c; /* c <= 65535 */
            else ((uint32_t *)(p + h.index_off))[k] = (uint32_t)c;
            k++;
        }
    }
    row_ptr[rows] = (uint32_t)k;
    *out = (sb_linear){.fmt = &sb_format_csr, .rows = rows, .cols = cols, .data = p, .owned = p};
    return SB_OK;
}

static void csr_decode_rows(const sb_linear *w, int64_t row0, int64_t n_rows, float *dst) {
    const uint32_t *row_ptr = csr_row_ptr(w);
    const float *values = csr_values(w);
    memset(dst, 0, sizeof(float) * (size_t)(n_rows * w->cols));
    for (int64_t r = 0; r < n_rows; r++) {
        float *row = dst + r * w->cols;
        for (uint64_t k = row_ptr[row0 + r]; k < row_ptr[row0 + r + 1]; k++) row[csr_column(w, k)] = values[k];
    }
}

/* Σ v[k] · x[idx[k]] over one row's n entries.  The 8 x values are
 * loaded one by one into a vector rather than with vgatherdps: on the AMD
 * Zen cores this was measured on, the gather instruction is slower than 8
 * scalar loads (a 61440 x 576 layer at 50 %, one thread: gather 6.7 ms,
 * scalar loads into vectors 3.4 ms, plain scalar code 4.5 ms). */
static float csr_dot16(const float *v, const uint16_t *idx, uint32_t n, const float *x) {
    uint32_t k = 0;
    float sum = 0;
#ifdef SB_SPARSE_AVX2
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (; k + 16 <= n; k += 16) {
        const uint16_t *i = idx + k;
        __m256 x0 = _mm256_setr_ps(x[i[0]], x[i[1]], x[i[2]], x[i[3]], x[i[4]], x[i[5]], x[i[6]], x[i[7]]);
        __m256 x1 = _mm256_setr_ps(x[i[8]], x[i[9]], x[i[10]], x[i[11]], x[i[12]], x[i[13]], x[i[14]], x[i[15]]);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(v + k), x0, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(v + k + 8), x1, a1);
    }
    __m256 a = _mm256_add_ps(a0, a1);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    sum = _mm_cvtss_f32(s);
#endif
    for (; k < n; k++) sum += v[k] * x[idx[k]];
    return sum;
}

/* 32-bit indices (cols > 65536: rare, kept scalar). */
static float csr_dot32(const float *v, const uint32_t *idx, uint32_t n, const float *x) {
    float sum = 0;
    for (uint32_t k = 0; k < n; k++) sum += v[k] * x[idx[k]];
    return sum;
}

/* Each row's entries (a few KB) are read from memory once, then from L1
 * for the second and later tokens. */
static void csr_rows(const row_job *j, int64_t row0, int64_t n_rows) {
    const sb_linear *w = j->w;
    const uint32_t *row_ptr = csr_row_ptr(w);
    const float *values = csr_values(w);
    bool narrow = header_of(w)->index_bytes == 2;
    for (int64_t r = row0; r < row0 + n_rows; r++) {
        uint32_t k0 = row_ptr[r], n = row_ptr[r + 1] - k0;
        for (int64_t t = 0; t < j->n_tok; t++) {
            const float *x = j->x + t * w->cols;
            j->y[t * w->rows + r] = narrow ? csr_dot16(values + k0, (const uint16_t *)csr_index(w) + k0, n, x)
                                           : csr_dot32(values + k0, (const uint32_t *)csr_index(w) + k0, n, x);
        }
    }
}

static void csr_matmul(const sb_linear *w, const float *x, int64_t n_tok, float *y, sb_matmul_ctx *ctx) {
    if (n_tok > FEW_TOKENS) {
        sb_matmul_by_decoding(w, x, n_tok, y, ctx);
        return;
    }
    row_job j = {.w = w, .x = x, .n_tok = n_tok, .y = y, .rows_fn = csr_rows};
    run_rows(&j, ctx);
}

static uint64_t csr_storage_bits(const sb_linear *w) {
    const sparse_header *h = header_of(w);
    return 32 * ((uint64_t)w->rows + 1) + (32 + 8 * (uint64_t)h->index_bytes) * h->stored;
}

const sb_format sb_format_csr = {"csr", csr_decode_rows, csr_matmul, csr_storage_bits};

/* ---- n:m ------------------------------------------------------------------ */

static int bits_for(int m) {
    int b = 0;
    while ((1 << b) < m) b++;
    return b;
}

static int64_t nm_per_row(const sb_linear *w) { return w->cols / header_of(w)->m * header_of(w)->n; }
static const float *nm_values(const sb_linear *w) { return (const float *)(payload(w) + header_of(w)->values_off); }
static const uint8_t *nm_positions(const sb_linear *w, int64_t row) {
    const sparse_header *h = header_of(w);
    return payload(w) + h->index_off + (uint64_t)row * h->pos_row_bytes;
}

/* Entry e of a row's position stream (pb <= 8, so it spans at most two bytes). */
static unsigned read_pos(const uint8_t *stream, uint64_t row_bytes, int64_t e, int pb) {
    uint64_t bit = (uint64_t)e * (uint64_t)pb, byte = bit / 8;
    unsigned word = stream[byte] | (byte + 1 < row_bytes ? (unsigned)stream[byte + 1] << 8 : 0u);
    return (word >> (bit % 8)) & ((1u << pb) - 1);
}

static void write_pos(uint8_t *stream, int64_t e, int pb, unsigned pos) {
    uint64_t bit = (uint64_t)e * (uint64_t)pb;
    for (int i = 0; i < pb; i++, bit++)
        if (pos >> i & 1u) stream[bit / 8] |= (uint8_t)(1u << (bit % 8));
}

/* The n positions of one group: its non-zeros, then the lowest free
 * positions (holding zeros) until there are n, all ascending. Returns the
 * count of non-zeros (> n means the group does not fit). */
static int group_positions(const float *group, int n, int m, unsigned *pos) {
    int nz = 0;
    for (int i = 0; i < m; i++) nz += group[i] != 0;
    if (nz > n) return nz;
    int free_needed = n - nz, k = 0;
    for (int i = 0; i < m; i++) {
        bool take = group[i] != 0 || (free_needed > 0 && group[i] == 0);
        if (group[i] == 0 && take) free_needed--;
        if (take) pos[k++] = (unsigned)i;
    }
    return nz;
}

static int nm_check(int64_t rows, int64_t cols, int n, int m, sb_err *err) {
    if (m < 2 || m > 256 || n < 1 || n >= m) return sb_err_set(err, SB_EINPUT, "n:m: need 1 <= n < m <= 256, got %d:%d", n, m);
    if (rows <= 0 || cols <= 0 || cols % m)
        return sb_err_set(err, SB_EINPUT, "n:m: shape %lld x %lld (m = %d must divide the columns)", (long long)rows,
                          (long long)cols, m);
    return SB_OK;
}

/* Fills row r's values and positions; SB_EINPUT if a group is too full. */
static int nm_pack_row(const float *row, int64_t r, int64_t cols, const sparse_header *h, float *values,
                       uint8_t *stream, sb_err *err) {
    unsigned pos[256];
    for (int64_t g = 0; g < cols / h->m; g++) {
        const float *group = row + g * h->m;
        int nz = group_positions(group, h->n, h->m, pos);
        if (nz > h->n)
            return sb_err_set(err, SB_EINPUT, "n:m: row %lld, group %lld has %d non-zeros, more than n = %d", (long long)r,
                              (long long)g, nz, h->n);
        for (int j = 0; j < h->n; j++) {
            values[g * h->n + j] = group[pos[j]];
            write_pos(stream, g * h->n + j, h->pos_bits, pos[j]);
        }
    }
    return SB_OK;
}

int sb_sparse_pack_nm(int64_t rows, int64_t cols, int n, int m, const float *dense, sb_linear *out, sb_err *err) {
    int rc = nm_check(rows, cols, n, m, err);
    if (rc) return rc;
    int64_t per_row = cols / m * n;
    sparse_header h = {.kind = KIND_NM, .n = n, .m = m, .pos_bits = bits_for(m), .stored = (uint64_t)(rows * per_row)};
    h.pos_row_bytes = round_up((uint64_t)per_row * (uint64_t)h.pos_bits, 8) / 8;
    h.values_off = HEADER_BYTES;
    h.index_off = h.values_off + 4 * h.stored;
    uint8_t *p = alloc_payload(h.index_off + (uint64_t)rows * h.pos_row_bytes - HEADER_BYTES, err);
    if (!p) return SB_EINTERNAL;
    memcpy(p, &h, sizeof h);
    for (int64_t r = 0; !rc && r < rows; r++)
        rc = nm_pack_row(dense + r * cols, r, cols, &h, (float *)(p + h.values_off) + r * per_row,
                         p + h.index_off + (uint64_t)r * h.pos_row_bytes, err);
    if (rc) {
        free(p);
        return rc;
    }
    *out = (sb_linear){.fmt = &sb_format_nm, .rows = rows, .cols = cols, .data = p, .owned = p};
    return SB_OK;
}

static void nm_decode_rows(const sb_linear *w, int64_t row0, int64_t n_rows, float *dst) {
    const sparse_header *h = header_of(w);
    int64_t per_row = nm_per_row(w);
    memset(dst, 0, sizeof(float) * (size_t)(n_rows * w->cols));
    for (int64_t r = 0; r < n_rows; r++) {
        const float *v = nm_values(w) + (row0 + r) * per_row;
        const uint8_t *stream = nm_positions(w, row0 + r);
        for (int64_t e = 0; e < per_row; e++)
            dst[r * w->cols + e / h->n * h->m + read_pos(stream, h->pos_row_bytes, e, h->pos_bits)] = v[e];
    }
}

/* Entries [e0, per_row) of a row, any n:m. */
static float nm_dot_scalar(const sparse_header *h, const float *v, const uint8_t *stream, int64_t e0, int64_t per_row,
                           const float *x) {
    float sum = 0;
    for (int64_t e = e0; e < per_row; e++)
        sum += v[e] * x[e / h->n * h->m + read_pos(stream, h->pos_row_bytes, e, h->pos_bits)];
    return sum;
}

/* 2:4, 16 inputs (4 groups, 8 values, 16 bits of positions) per step, with
 * no gather: the positions become lane indices for two in-register
 * permutes of x, whose halves are blended (lanes 0-3 come from inputs
 * 0-7, lanes 4-7 from inputs 8-15). Returns the entries done. */
static int64_t nm24_dot(const float *v, const uint8_t *stream, int64_t cols, const float *x, float *sum) {
    int64_t i = 0;
#ifdef SB_SPARSE_AVX2
    const __m256i shifts = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256i group_base = _mm256_setr_epi32(0, 0, 4, 4, 0, 0, 4, 4);
    const __m256i three = _mm256_set1_epi32(3);
    __m256 acc = _mm256_setzero_ps();
    for (; i + 16 <= cols; i += 16) {
        int bits = stream[i / 8] | stream[i / 8 + 1] << 8;
        __m256i lane = _mm256_add_epi32(_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(bits), shifts), three), group_base);
        __m256 lo = _mm256_permutevar8x32_ps(_mm256_loadu_ps(x + i), lane);
        __m256 hi = _mm256_permutevar8x32_ps(_mm256_loadu_ps(x + i + 8), lane);
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(v + i / 2), _mm256_blend_ps(lo, hi, 0xF0), acc);
    }
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    *sum = _mm_cvtss_f32(s);
#else
    (void)v, (void)stream, (void)cols, (void)x;
    *sum = 0;
#endif
    return i / 2;
}

static void nm_rows(const row_job *j, int64_t row0, int64_t n_rows) {
    const sb_linear *w = j->w;
    const sparse_header *h = header_of(w);
    int64_t per_row = nm_per_row(w);
    bool two_four = h->n == 2 && h->m == 4;
    for (int64_t r = row0; r < row0 + n_rows; r++) {
        const float *v = nm_values(w) + r * per_row;
        const uint8_t *stream = nm_positions(w, r);
        for (int64_t t = 0; t < j->n_tok; t++) {
            const float *x = j->x + t * w->cols;
            float sum = 0;
            int64_t done = two_four ? nm24_dot(v, stream, w->cols, x, &sum) : 0;
            j->y[t * w->rows + r] = sum + nm_dot_scalar(h, v, stream, done, per_row, x);
        }
    }
}

static void nm_matmul(const sb_linear *w, const float *x, int64_t n_tok, float *y, sb_matmul_ctx *ctx) {
    if (n_tok > FEW_TOKENS) {
        sb_matmul_by_decoding(w, x, n_tok, y, ctx);
        return;
    }
    row_job j = {.w = w, .x = x, .n_tok = n_tok, .y = y, .rows_fn = nm_rows};
    run_rows(&j, ctx);
}

static uint64_t nm_storage_bits(const sb_linear *w) {
    const sparse_header *h = header_of(w);
    return 32 * h->stored + 8 * (uint64_t)w->rows * h->pos_row_bytes;
}

const sb_format sb_format_nm = {"n:m", nm_decode_rows, nm_matmul, nm_storage_bits};

/* ---- inspection ----------------------------------------------------------- */

bool sb_sparse_stored_values(const sb_linear *w, uint64_t *out) {
    if (w->fmt != &sb_format_csr && w->fmt != &sb_format_nm) return false;
    *out = header_of(w)->stored;
    return true;
}

bool sb_sparse_nm_of(const sb_linear *w, int *n, int *m) {
    if (w->fmt != &sb_format_nm) return false;
    *n = header_of(w)->n;
    *m = header_of(w)->m;
    return true;
}

bool sb_sparse_layout_of(const sb_linear *w, sb_sparse_layout *out) {
    if (w->fmt != &sb_format_csr && w->fmt != &sb_format_nm) return false;
    const sparse_header *h = header_of(w);
    bool nm = h->kind == KIND_NM;
    uint64_t end = nm ? h->index_off + (uint64_t)w->rows * h->pos_row_bytes : h->index_off + h->stored * (uint64_t)h->index_bytes;
    *out = (sb_sparse_layout){nm, h->index_bytes, h->n, h->m, h->pos_bits, h->stored, h->row_ptr_off, h->values_off,
                              h->index_off, h->pos_row_bytes, end};
    return true;
}

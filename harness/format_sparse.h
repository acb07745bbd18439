/* format_sparse.h - pruned weights stored sparse for real.
 *
 * Two formats, both keeping the surviving weights as exact f32 values (so
 * a pruned model differs from the dense one only where weights were
 * removed; an f16 value array would mix quantization error into every
 * pruning result):
 *
 *   "csr"  unstructured sparsity, compressed sparse rows.
 *   "n:m"  semi-structured: in every group of m consecutive inputs of a row
 *          exactly n values are stored, with their positions in the group.
 *
 * Both payloads are one owned allocation, 64-byte aligned.  A fixed header
 * (dimensions and offsets, kept in the payload for convenience) comes
 * first and is not counted as storage, as the shape of a dense weight is
 * not counted either.  storage_bits is exactly 8 x the bytes of the arrays.
 *
 * ---- csr -----------------------------------------------------------------
 *   offset 0          sb_sparse header (64 bytes)
 *   row_ptr_off       uint32 [rows + 1]: row r's entries are [row_ptr[r], row_ptr[r+1])
 *   values_off        f32 [nnz], row-major, columns ascending within a row
 *   index_off         column of each value: uint16 [nnz] when cols <= 65536, else uint32 [nnz]
 *   storage_bits = 32 (rows + 1) + 32 nnz + (16 or 32) nnz
 *   (50 % sparsity with 16-bit indices: 24 bits per weight plus 32 / cols.)
 * A layer is limited to 2^32 - 1 stored values (16 GB of them).
 *
 * ---- n:m -----------------------------------------------------------------
 *   offset 0          header (64 bytes)
 *   values_off        f32 [rows * (cols / m) * n]: entry e = g * n + j of row r
 *                     (group g, j-th kept value, positions ascending) at r * per_row + e
 *   pos_off           positions, pb = ceil(log2 m) bits each; row r's positions are a
 *                     little-endian bit stream of pos_row_bytes bytes starting at
 *                     pos_off + r * pos_row_bytes: entry e occupies bits
 *                     [e * pb, e * pb + pb), bit k of the stream being bit k % 8 of
 *                     byte k / 8; the last byte of a row is zero-padded.
 *   storage_bits = 32 rows (cols / m) n + 8 rows pos_row_bytes
 *   (2:4: 16 + 1 = 17 bits per weight when cols is a multiple of 4 groups.)
 * A group with fewer than n non-zeros stores zero values at its lowest free
 * positions, so every group has exactly n distinct positions.
 *
 * Products: decode_rows is exact (the stored f32 values, zeros elsewhere;
 * a -0.0 weight decodes as +0.0).  Up to 4 tokens a fused kernel reads the
 * stored entries directly (no decoded copy of W); more tokens decode tiles
 * of rows to f32 and hand them to CBLAS (sb_matmul_by_decoding), which at
 * the sparsities pruning reaches (50-60 %) beats a sparse x dense product. */
#ifndef SB_FORMAT_SPARSE_H
#define SB_FORMAT_SPARSE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "weight_format.h"

extern const sb_format sb_format_csr; /* name "csr" */
extern const sb_format sb_format_nm;  /* name "n:m" */

/* A CSR linear holding the non-zeros of dense [rows * cols] (row-major f32;
 * NaNs count as non-zero). out gets fmt, rows, cols, data and owned;
 * out->bias is NULL (copy the bias yourself). */
int sb_sparse_pack_csr(int64_t rows, int64_t cols, const float *dense, sb_linear *out, sb_err *err);

/* An N:M linear from dense [rows * cols]: 1 <= n < m <= 256, m divides
 * cols, and every group of m inputs has at most n non-zeros (else an
 * SB_EINPUT error naming the row and group). */
int sb_sparse_pack_nm(int64_t rows, int64_t cols, int n, int m, const float *dense, sb_linear *out, sb_err *err);

/* Stored entries: non-zeros of a csr linear, rows * cols / m * n for n:m;
 * false when w is neither. */
bool sb_sparse_stored_values(const sb_linear *w, uint64_t *out);
/* n and m of an n:m linear; false when w is not one. */
bool sb_sparse_nm_of(const sb_linear *w, int *n, int *m);

/* Where the arrays of a csr or n:m payload lie (byte offsets from w->data),
 * for a device backend that copies the payload as it is and reads it in
 * place; total_bytes covers every array. False when w is neither. */
typedef struct sb_sparse_layout {
    bool nm;                  /* n:m, else csr */
    int index_bytes;          /* csr: 2 or 4 */
    int n, m, pos_bits;       /* n:m */
    uint64_t stored, row_ptr_off, values_off, index_off, pos_row_bytes, total_bytes;
} sb_sparse_layout;

bool sb_sparse_layout_of(const sb_linear *w, sb_sparse_layout *out);

#endif

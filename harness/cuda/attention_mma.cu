/* attention_mma.cu - causal attention on the tensor cores, for models whose
 * weights are 16-bit (their linears already take 16-bit inputs).
 *
 * The f32 kernels of kernels.cu do every product on CUDA cores out of shared
 * memory: about 8 TFLOP/s on an H100, which made attention most of a
 * 2048-token pass. Here both products, S = Q·Kᵀ and O += P·V, are
 * mma.sync.m16n8k16 tensor-core instructions with 16-bit inputs (bf16 or
 * f16, as the model's weights) and f32 accumulation; the softmax is f32.
 *
 * The register layouts of m16n8k16 are fixed by the PTX ISA (section
 * "Matrix Fragments for mma.m16n8k16"), with g = lane / 4, t = lane % 4:
 *   A (16x16, row-major): regs {A[g][2t..2t+1]}, {A[g+8][2t..]}, {A[g][2t+8..]}, {A[g+8][2t+8..]}
 *   B (16x8, "col"):      regs {B[2t..2t+1][g]}, {B[2t+8..2t+9][g]}
 *   C (16x8, f32):        C[g][2t], C[g][2t+1], C[g+8][2t], C[g+8][2t+1]
 * so a thread holds two query rows (g and g+8) of S and O, and the row-wise
 * softmax (max, rescale, sum) happens in registers with two shuffles across
 * the 4 threads of a row; and the C layout of two adjacent 8-key tiles of S is
 * the A layout of P for the next product, so P never leaves the registers.
 *
 * One block of 8 warps per (sequence, head, tile of 128 queries); warp w
 * owns queries 16w..16w+15. The KV cache is already 16-bit (kernels.cu), so
 * tiles of 64 keys and values go from it into shared memory with cp.async,
 * two buffers deep: the next tile's copy runs while the tensor cores work
 * on this one. Running max m and sum l per row as in FlashAttention-2;
 * nothing of size T x T exists. A warp skips the tiles none of its rows
 * can see, and masks only the tiles that cut through its rows' windows.
 * Blocks of the last query tiles (the most keys, under a causal mask) are
 * launched first, so the short ones fill the tail.
 *
 * Measured on an H200 (2026-11-26, 1.2 B Llama shape, head size 64), and
 * left out for being slower: two 16-row tiles per warp, as FlashAttention-2
 * has, so each K and V fragment feeds two products (237 registers, half the
 * warps per SM: 90 against 116 TFLOP/s at T = 2048); and three blocks per
 * SM forced by __launch_bounds__ (80 registers with spills: 97 TFLOP/s).
 *
 * Key tiles start at multiples of 64 positions, whatever the call's first
 * query: a query then meets its keys in the same groups, hence the same
 * roundings, whether the sequence came in one call or several. Keys outside
 * a query's window [lo, hi] get probability 0; zero-filled rows stand in
 * for keys past the call and queries past n_tok. */
#include <math.h>
#include <stdint.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda_internal.h"

enum { MMA_WARPS = 8, MMA_Q = 16 * MMA_WARPS, MMA_K = 64, LANES = 32 };

/* Shared-memory rows are padded by 8 elements (16 bytes): rows then start 4
 * banks apart, so the 8 rows x 4 columns a fragment load touches hit 32
 * different banks. */
template <int HD> struct mma_shape {
    static const int ld = HD + 8; /* Q, K and V rows */
    static const size_t q_bytes = 2 * (size_t)MMA_Q * ld;
    static const size_t kv_bytes = 2 * (size_t)MMA_K * ld; /* one tile of K or V */
    static const size_t total = q_bytes + 4 * kv_bytes;    /* Q, then K and V twice (double buffer) */
};

/* ---- the 16-bit type: conversion and the mma instruction ---- */

template <typename T> struct half_ops;

template <> struct half_ops<__nv_bfloat16> {
    __device__ static __nv_bfloat16 from(float x) { return __float2bfloat16(x); }
    __device__ static uint32_t pack(float lo, float hi) {
        __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        return *(uint32_t *)&v;
    }
    __device__ static void mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

template <> struct half_ops<__half> {
    __device__ static __half from(float x) { return __float2half(x); }
    __device__ static uint32_t pack(float lo, float hi) {
        __half2 v = __floats2half2_rn(lo, hi);
        return *(uint32_t *)&v;
    }
    __device__ static void mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

/* ldmatrix: four 8x8 matrices of 16-bit values from shared memory into
 * registers, lanes 8i .. 8i+7 giving the addresses of matrix i's rows (16
 * bytes each, 16-byte aligned). Thread (g, t) receives row g, columns 2t and
 * 2t+1 of each matrix; with .trans, row 2t and 2t+1 of column g, i.e. the
 * matrix transposed, which turns row-major V into P·V's B fragments. */
__device__ static void ldmatrix_x4(uint32_t r[4], const void *row_addr) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(row_addr);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

__device__ static void ldmatrix_x4_trans(uint32_t r[4], const void *row_addr) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(row_addr);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

/* ---- loading tiles into shared memory ---- */

/* Q: dst[r][c] = src[r][c] as T for rows r < n_rows, 0 for rows n_rows .. n_fill - 1.
 * hd is a multiple of 16 and source rows start 16-byte aligned: float4 reads. */
template <typename T, int HD>
__device__ static void load_rows(T *dst, int ld, const float *src, int64_t src_ld, int n_rows, int n_fill) {
    const int per_row = HD / 4;
    for (int idx = threadIdx.x; idx < n_fill * per_row; idx += blockDim.x) {
        int r = idx / per_row, c = 4 * (idx % per_row);
        float4 v = r < n_rows ? *(const float4 *)(src + (int64_t)r * src_ld + c) : make_float4(0, 0, 0, 0);
        uint32_t *d = (uint32_t *)(dst + r * ld + c); /* 8-byte aligned: c % 4 == 0, ld even */
        d[0] = half_ops<T>::pack(v.x, v.y);
        d[1] = half_ops<T>::pack(v.z, v.w);
    }
}

/* cp.async: 16 bytes from global to shared memory without passing through
 * registers; with a source size of 0 it writes 16 zero bytes instead. */
__device__ static void copy16_async(void *dst, const void *src, bool valid) {
    uint32_t d = (uint32_t)__cvta_generic_to_shared(dst);
    int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(n));
}
__device__ static void copies_commit() { asm volatile("cp.async.commit_group;\n" ::); }
/* Wait until at most `pending` committed groups of this thread are still in flight. */
template <int pending> __device__ static void copies_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(pending)); }

/* A tile of MMA_K cache rows (16-bit, HD each; row starts 16-byte aligned
 * since HD is a multiple of 16) into dst; rows n_rows .. MMA_K - 1 are zeros:
 * past the call they may hold anything, and 0 · NaN would reach the output. */
template <typename T, int HD> __device__ static void load_cache_tile(T *dst, const T *src, int64_t src_ld, int n_rows) {
    const int ld = mma_shape<HD>::ld, per_row = HD / 8;
    for (int idx = threadIdx.x; idx < MMA_K * per_row; idx += blockDim.x) {
        int r = idx / per_row, c = 8 * (idx % per_row);
        bool valid = r < n_rows;
        copy16_async(dst + r * ld + c, valid ? src + (int64_t)r * src_ld + c : src, valid);
    }
}

/* ---- one (sequence, head, query tile) ---- */

__device__ static int first_key(int p, int window) { return window > 0 && p - window + 1 > 0 ? p - window + 1 : 0; }

/* What a thread needs to know about one of its two query rows. */
typedef struct query_row {
    bool active;  /* a real query of this call */
    int lo, hi;   /* its visible keys */
    float m, l;   /* running max (scaled scores, base-2 units) and this thread's share of the sum */
} query_row;

__device__ static query_row row_at(const attn_args &a, int t) {
    query_row q;
    int p = a.n_past + t;
    q.active = t < a.n_tok;
    q.lo = first_key(p, a.window);
    q.hi = a.bidirectional ? a.n_past + a.n_tok - 1 : p;
    q.m = -INFINITY;
    q.l = 0;
    return q;
}

/* S[16, 64] = Q_w · K_tileᵀ: s[j] is the C fragment of keys 8j .. 8j+7.
 * Q's A fragment (columns 16kc..): matrices rows 0-7 / 8-15 x columns +0 / +8,
 * in register order; K's B fragments for key tiles j, j+1: matrices keys
 * 8j.. x dims +0, keys 8j.. x dims +8, then the same for keys 8j+8.. */
template <typename T, int HD> __device__ static void tile_scores(const T *qw, const T *ks, float s[8][4]) {
    const int ld = mma_shape<HD>::ld;
    int lane = threadIdx.x % LANES, m = lane / 8, r = lane % 8;
#pragma unroll
    for (int j = 0; j < 8; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0;
#pragma unroll
    for (int kc = 0; kc < HD / 16; kc++) {
        uint32_t a[4];
        ldmatrix_x4(a, qw + (r + 8 * (m % 2)) * ld + kc * 16 + 8 * (m / 2));
#pragma unroll
        for (int j = 0; j < 8; j += 2) {
            uint32_t b[4];
            ldmatrix_x4(b, ks + (8 * j + r + 8 * (m / 2)) * ld + kc * 16 + 8 * (m % 2));
            half_ops<T>::mma(s[j], a, b[0], b[1]);
            half_ops<T>::mma(s[j + 1], a, b[2], b[3]);
        }
    }
}

/* Scale and soft-cap one score, in base-2 units (times log2 e): the softmax
 * then takes exp2 directly, which is what __expf does after its own multiply. */
__device__ static float scaled(const attn_args &a, float s) {
    const float log2e = 1.4426950408889634f;
    if (a.softcap > 0) return a.softcap * tanhf(s * a.scale / a.softcap) * log2e;
    return s * (a.scale * log2e);
}

/* Scale, soft-cap and mask one score of row q at key `key`: -inf when not visible. */
__device__ static float masked(const attn_args &a, const query_row &q, int key, float s) {
    if (!q.active || key < q.lo || key > q.hi) return -INFINITY;
    return scaled(a, s);
}

/* The largest of four threads' values (the 4 threads of a row: lanes 4g .. 4g+3). */
__device__ static float row_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

__device__ static float row_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

/* Online softmax over one tile: s becomes P (unnormalised), the rows' m and l
 * move on, and corr[i] is the factor the row's earlier output must take.
 * all_visible: every key of the tile is visible to every row of the warp,
 * so the per-key mask (the same result) is skipped. */
__device__ static void softmax_tile(const attn_args &a, int k0, bool all_visible, float s[8][4], query_row row[2],
                                    float corr[2]) {
    int t = threadIdx.x % 4;
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            s[j][e] = all_visible ? scaled(a, s[j][e]) : masked(a, row[e / 2], k0 + 8 * j + 2 * t + e % 2, s[j][e]);
            mx[e / 2] = fmaxf(mx[e / 2], s[j][e]);
        }
    float m_new[2];
    for (int i = 0; i < 2; i++) {
        m_new[i] = fmaxf(row[i].m, row_max(mx[i]));
        /* nothing visible yet: stay at 0 output and 0 sum (avoid -inf - -inf) */
        corr[i] = m_new[i] == -INFINITY ? 1.0f : exp2f(row[i].m - m_new[i]);
    }
    float sum[2] = {0, 0};
#pragma unroll
    for (int j = 0; j < 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            /* a visible score and its row's max are finite; a masked one is -inf */
            float p = all_visible || s[j][e] != -INFINITY ? exp2f(s[j][e] - m_new[e / 2]) : 0.0f;
            s[j][e] = p;
            sum[e / 2] += p;
        }
    for (int i = 0; i < 2; i++) {
        row[i].m = m_new[i];
        row[i].l = row[i].l * corr[i] + sum[i]; /* this thread's share; the 4 shares add up at the end */
    }
}

/* O_w = O_w · diag(corr) + P · V_tile, P straight from the registers of S. */
template <typename T, int HD>
__device__ static void tile_output(const float p[8][4], const T *vs, const float corr[2], float o[HD / 8][4]) {
    const int ld = mma_shape<HD>::ld;
    int lane = threadIdx.x % LANES, m = lane / 8, r = lane % 8;
#pragma unroll
    for (int j = 0; j < HD / 8; j++) {
        o[j][0] *= corr[0];
        o[j][1] *= corr[0];
        o[j][2] *= corr[1];
        o[j][3] *= corr[1];
    }
#pragma unroll
    for (int kc = 0; kc < MMA_K / 16; kc++) {
        /* keys 16kc .. 16kc+15: the C fragments of 8-key tiles 2kc and 2kc+1 are this A fragment */
        uint32_t a[4] = {half_ops<T>::pack(p[2 * kc][0], p[2 * kc][1]), half_ops<T>::pack(p[2 * kc][2], p[2 * kc][3]),
                         half_ops<T>::pack(p[2 * kc + 1][0], p[2 * kc + 1][1]),
                         half_ops<T>::pack(p[2 * kc + 1][2], p[2 * kc + 1][3])};
        /* B fragments of dims 8j.. and 8j+8..: V (keys x dims) transposed, matrices
         * keys 16kc.. / 16kc+8.. x dims 8j.., then the same for dims 8j+8.. */
#pragma unroll
        for (int j = 0; j < HD / 8; j += 2) {
            uint32_t b[4];
            ldmatrix_x4_trans(b, vs + (kc * 16 + r + 8 * (m % 2)) * ld + 8 * (j + m / 2));
            half_ops<T>::mma(o[j], a, b[0], b[1]);
            half_ops<T>::mma(o[j + 1], a, b[2], b[3]);
        }
    }
}

/* Shared memory: Q, then buffer 0's K and V tiles, then buffer 1's (which: 0 K, 1 V). */
template <typename T, int HD> __device__ static T *tile_buffer(unsigned char *smem, int buf, int which) {
    return (T *)(smem + mma_shape<HD>::q_bytes + (2 * buf + which) * mma_shape<HD>::kv_bytes);
}

/* Which keys a warp's 16 rows see, for skipping and unmasked tiles. */
typedef struct warp_keys {
    bool any_row;         /* the warp has a real query */
    int lo_min, hi_max;   /* union of the rows' windows */
    int lo_max, hi_min;   /* intersection (all rows real) */
    bool all_rows;        /* all 16 rows are real queries */
} warp_keys;

__device__ static warp_keys keys_of_warp(const attn_args &a, int tq_first) {
    warp_keys w;
    int tq_last = tq_first + 15 < a.n_tok - 1 ? tq_first + 15 : a.n_tok - 1;
    w.any_row = tq_first < a.n_tok;
    w.all_rows = tq_first + 15 < a.n_tok;
    int last_key = a.n_past + a.n_tok - 1;
    w.lo_min = first_key(a.n_past + tq_first, a.window);
    w.lo_max = first_key(a.n_past + tq_last, a.window);
    w.hi_min = a.bidirectional ? last_key : a.n_past + tq_first;
    w.hi_max = a.bidirectional ? last_key : a.n_past + tq_last;
    return w;
}

template <typename T, int HD> __global__ static void __launch_bounds__(MMA_WARPS *LANES) attention_mma_kernel(attn_args a) {
    typedef mma_shape<HD> sh;
    extern __shared__ __align__(16) unsigned char smem[];
    T *qs = (T *)smem;
    /* the query tile varies slowest, from the last (the most keys) to the first */
    int n_qtiles = (a.n_tok + MMA_Q - 1) / MMA_Q, per_tile = a.n_seq * a.n_head;
    int t0 = (n_qtiles - 1 - (int)(blockIdx.x / per_tile)) * MMA_Q;
    int h = (int)(blockIdx.x % per_tile) % a.n_head, seq = (int)(blockIdx.x % per_tile) / a.n_head;
    int kvh = h / (a.n_head / a.n_kv_head);
    int n_q = a.n_tok - t0 < MMA_Q ? a.n_tok - t0 : MMA_Q;
    int warp = threadIdx.x / LANES, g = (threadIdx.x % LANES) / 4, t = threadIdx.x % 4;
    int kvd = a.n_kv_head * HD, qd = a.n_head * HD;
    /* keys any query of the block may see, the first tile aligned to MMA_K positions */
    int blk_lo = first_key(a.n_past + t0, a.window) / MMA_K * MMA_K;
    int blk_hi = a.bidirectional ? a.n_past + a.n_tok - 1 : a.n_past + t0 + n_q - 1;
    int n_tiles = (blk_hi - blk_lo) / MMA_K + 1;
    const T *K = (const T *)a.k_cache + (int64_t)seq * a.max_ctx * kvd + (int64_t)kvh * HD;
    const T *V = (const T *)a.v_cache + (int64_t)seq * a.max_ctx * kvd + (int64_t)kvh * HD;
    int nk0 = blk_hi - blk_lo + 1 < MMA_K ? blk_hi - blk_lo + 1 : MMA_K;
    load_cache_tile<T, HD>(tile_buffer<T, HD>(smem, 0, 0), K + (int64_t)blk_lo * kvd, kvd, nk0);
    load_cache_tile<T, HD>(tile_buffer<T, HD>(smem, 0, 1), V + (int64_t)blk_lo * kvd, kvd, nk0);
    copies_commit();
    load_rows<T, HD>(qs, sh::ld, a.q + ((int64_t)seq * a.n_tok + t0) * qd + (int64_t)h * HD, qd, n_q, MMA_Q);
    int tq = t0 + 16 * warp + g; /* this thread's rows: tq and tq + 8 */
    query_row row[2] = {row_at(a, tq), row_at(a, tq + 8)};
    warp_keys wk = keys_of_warp(a, t0 + 16 * warp);
    float o[HD / 8][4];
#pragma unroll
    for (int j = 0; j < HD / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0;
    for (int i = 0; i < n_tiles; i++) {
        int k0 = blk_lo + i * MMA_K, buf = i % 2;
        if (i + 1 < n_tiles) { /* the next tile into the other buffer, freed at the end of the last iteration */
            int k1 = k0 + MMA_K, nk1 = blk_hi - k1 + 1 < MMA_K ? blk_hi - k1 + 1 : MMA_K;
            load_cache_tile<T, HD>(tile_buffer<T, HD>(smem, 1 - buf, 0), K + (int64_t)k1 * kvd, kvd, nk1);
            load_cache_tile<T, HD>(tile_buffer<T, HD>(smem, 1 - buf, 1), V + (int64_t)k1 * kvd, kvd, nk1);
            copies_commit();
            copies_wait<1>(); /* this tile's copies are done, the next tile's may still run */
        } else {
            copies_wait<0>();
        }
        __syncthreads(); /* every thread's copies of this tile (and Q) are visible */
        bool seen = wk.any_row && k0 <= wk.hi_max && k0 + MMA_K - 1 >= wk.lo_min;
        if (seen) { /* warp-uniform */
            bool all_visible = wk.all_rows && k0 >= wk.lo_max && k0 + MMA_K - 1 <= wk.hi_min;
            float s[8][4], corr[2];
            tile_scores<T, HD>(qs + 16 * warp * sh::ld, tile_buffer<T, HD>(smem, buf, 0), s);
            softmax_tile(a, k0, all_visible, s, row, corr);
            tile_output<T, HD>(s, tile_buffer<T, HD>(smem, buf, 1), corr, o);
        }
        __syncthreads(); /* every warp is done with this buffer before the next iteration refills it */
    }
    for (int i = 0; i < 2; i++) {
        float l = row_sum(row[i].l);
        int tr = tq + 8 * i;
        if (!row[i].active || l <= 0) continue;
        int64_t at = ((int64_t)seq * a.n_tok + tr) * qd + (int64_t)h * HD + 2 * t;
        if (a.out16) { /* the next product's 16-bit input: pairs of values, 4-byte aligned (at is even) */
            uint32_t *out = (uint32_t *)((T *)a.out16 + at);
#pragma unroll
            for (int j = 0; j < HD / 8; j++) out[4 * j] = half_ops<T>::pack(o[j][2 * i] / l, o[j][2 * i + 1] / l);
        } else {
            float *out = a.out + at;
#pragma unroll
            for (int j = 0; j < HD / 8; j++) *(float2 *)(out + 8 * j) = make_float2(o[j][2 * i] / l, o[j][2 * i + 1] / l);
        }
    }
}

template <typename T, int HD> static int launch(const attn_args *a, sb_err *err) {
    size_t shared = mma_shape<HD>::total;
    cudaError_t e = cudaFuncSetAttribute(attention_mma_kernel<T, HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)shared);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return sb_err_set(err, SB_EINTERNAL, "tensor-core attention: %zu bytes of shared memory per block refused: %s",
                          shared, cudaGetErrorString(e));
    }
    int64_t blocks = (int64_t)a->n_seq * a->n_head * ((a->n_tok + MMA_Q - 1) / MMA_Q);
    attention_mma_kernel<T, HD><<<(unsigned)blocks, MMA_WARPS * LANES, shared>>>(*a);
    return cuda_launched("tensor-core attention", err);
}

size_t k_attention_mma_shared_bytes(int head_dim) {
    switch (head_dim) {
    case 32: return mma_shape<32>::total;
    case 64: return mma_shape<64>::total;
    case 128: return mma_shape<128>::total;
    case 256: return mma_shape<256>::total;
    }
    return 0;
}

template <typename T> static int launch_for(const attn_args *a, sb_err *err) {
    switch (a->head_dim) {
    case 32: return launch<T, 32>(a, err);
    case 64: return launch<T, 64>(a, err);
    case 128: return launch<T, 128>(a, err);
    case 256: return launch<T, 256>(a, err);
    }
    return sb_err_set(err, SB_EINTERNAL, "tensor-core attention for head_dim %d", a->head_dim);
}

int k_attention_mma(const attn_args *a, sb_err *err) {
    return a->precision == ATTN_BF16 ? launch_for<__nv_bfloat16>(a, err) : launch_for<__half>(a, err);
}
